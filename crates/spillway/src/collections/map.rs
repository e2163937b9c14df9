//! [`PagedMap`]: a persistent ordered map whose nodes are paged values.

use std::cmp::Ordering;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use get_size2::GetSize;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::node::{Bounds, Item, Node, entries_bytes, split_runs};
use crate::error::{Error, Result};
use crate::key::ContentKey;
use crate::runtime::{Guard, Paged, Pool, PoolShared};

/// Sizes of a map's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MapOptions {
    /// Most entries in a leaf, and most children of a branch (at least 4).
    pub max_entries: usize,
    /// Most bytes (by deep size) of a node's entries or separators, when it holds more than one.
    pub max_node_bytes: usize,
}

impl Default for MapOptions {
    /// 128 entries or 16 KiB a node: a lookup in a paged-out leaf reads and decodes about that.
    fn default() -> MapOptions {
        MapOptions {
            max_entries: 128,
            max_node_bytes: 16 << 10,
        }
    }
}

impl MapOptions {
    /// Nodes of at most `max_entries` entries (at least 4) and `max_node_bytes` bytes.
    pub fn new(max_entries: usize, max_node_bytes: usize) -> MapOptions {
        MapOptions {
            max_entries: max_entries.max(4),
            max_node_bytes: max_node_bytes.max(64),
        }
    }

    fn bounds(self) -> Bounds {
        Bounds {
            max_entries: self.max_entries.max(4),
            max_bytes: self.max_node_bytes.max(64),
        }
    }
}

/// A persistent ordered map from `K` to `V` in a [`Pool`]: a B+-tree whose nodes are paged
/// values, so a map far larger than the budget pages in only the nodes a lookup touches.
///
/// Nodes are immutable and content-addressed. A change makes new nodes along one root-to-leaf
/// path and shares every other node with the map before it, so [`Clone`] is an O(1) snapshot
/// that later changes do not affect, and nodes two versions share are stored once. Reads return
/// clones of keys and values. A map is kept across restarts with [`save`](Self::save) and
/// [`open`](Self::open).
///
/// ```
/// use spillway::{PagedMap, Pool};
///
/// let pool = Pool::builder().budget(1 << 20).build()?;
/// let mut map = PagedMap::from_sorted(&pool, (0..10_000u64).map(|i| (i, i * i)))?;
/// assert_eq!(map.insert(7, 0)?, Some(49));
/// assert_eq!(map.get(&7)?, Some(0));
/// let snapshot = map.clone();
/// map.remove(&8)?;
/// assert_eq!(snapshot.get(&8)?, Some(64)); // a snapshot keeps its contents
/// let some: Vec<(u64, u64)> = map.range(5..10).collect::<spillway::Result<_>>()?;
/// assert_eq!(some.iter().map(|e| e.0).collect::<Vec<_>>(), [5, 6, 7, 9]);
/// # Ok::<(), spillway::Error>(())
/// ```
pub struct PagedMap<K: Item + Ord, V: Item> {
    pool: Arc<PoolShared>,
    root: Option<Paged<Node<K, V>>>,
    len: u64,
    bounds: Bounds,
}

impl<K: Item + Ord, V: Item> Clone for PagedMap<K, V> {
    fn clone(&self) -> Self {
        PagedMap {
            pool: Arc::clone(&self.pool),
            root: self.root.clone(),
            len: self.len,
            bounds: self.bounds,
        }
    }
}

impl<K: Item + Ord, V: Item> std::fmt::Debug for PagedMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagedMap")
            .field("len", &self.len)
            .field("root", &self.root)
            .finish()
    }
}

/// What [`PagedMap::save`] stores under a root name.
#[derive(Serialize, Deserialize, GetSize)]
#[serde(bound(
    serialize = "K: Serialize, V: Serialize",
    deserialize = "K: DeserializeOwned, V: DeserializeOwned"
))]
struct Header<K: Item + Ord, V: Item> {
    root: Option<Paged<Node<K, V>>>,
    len: u64,
    max_entries: u64,
    max_node_bytes: u64,
}

/// A child of a branch with the separator before it (`None` for the first).
type Child<K, V> = (Option<K>, Paged<Node<K, V>>);
/// The items of a branch.
type Items<K, V> = Vec<Child<K, V>>;

/// A node's contents before it is made a node: what a change produces and a parent may merge.
enum Content<K: Item + Ord, V: Item> {
    Leaf(Vec<(K, V)>),
    Branch(Items<K, V>),
}

impl<K: Item + Ord, V: Item> Content<K, V> {
    fn len(&self) -> usize {
        match self {
            Content::Leaf(e) => e.len(),
            Content::Branch(i) => i.len(),
        }
    }

    fn of(node: &Node<K, V>) -> Content<K, V> {
        match node {
            Node::Leaf(e) => Content::Leaf(e.clone()),
            Node::Branch { keys, children } => Content::Branch(items(keys, children)),
        }
    }

    /// `self` followed by `right`, whose smallest key is `sep` (both of one kind).
    fn concat(self, sep: K, right: Content<K, V>) -> Content<K, V> {
        match (self, right) {
            (Content::Leaf(mut a), Content::Leaf(b)) => {
                a.extend(b);
                Content::Leaf(a)
            }
            (Content::Branch(mut a), Content::Branch(b)) => {
                let mut b = b.into_iter();
                if let Some((_, first)) = b.next() {
                    a.push((Some(sep), first));
                }
                a.extend(b);
                Content::Branch(a)
            }
            // Every leaf is at one depth, so siblings are of one kind.
            (a, _) => a,
        }
    }
}

fn items<K: Item + Ord, V: Item>(keys: &[K], children: &[Paged<Node<K, V>>]) -> Items<K, V> {
    std::iter::once(None)
        .chain(keys.iter().cloned().map(Some))
        .zip(children.iter().cloned())
        .collect()
}

/// Deep size of a branch item: its separator and a handle.
fn item_bytes<K: GetSize, N>(item: &(Option<K>, N)) -> usize {
    item.0.as_ref().map_or(0, GetSize::get_size) + 16
}

impl<K: Item + Ord, V: Item> PagedMap<K, V> {
    /// An empty map in `pool`, with nodes of the default size.
    pub fn new(pool: &Pool) -> PagedMap<K, V> {
        PagedMap::with_options(pool, MapOptions::default())
    }

    /// An empty map in `pool`, with nodes of the given size.
    pub fn with_options(pool: &Pool, options: MapOptions) -> PagedMap<K, V> {
        PagedMap {
            pool: Arc::clone(pool.shared()),
            root: None,
            len: 0,
            bounds: options.bounds(),
        }
    }

    /// A map of `entries`, which must come in strictly increasing key order, built bottom-up
    /// (leaves filled to three quarters, to leave room for inserts): much faster than inserting
    /// them one by one. Fails, having built nothing, if a key is not above the one before it.
    pub fn from_sorted(
        pool: &Pool,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<PagedMap<K, V>> {
        PagedMap::from_sorted_with(pool, MapOptions::default(), entries)
    }

    /// [`from_sorted`](Self::from_sorted) with node sizes.
    pub fn from_sorted_with(
        pool: &Pool,
        options: MapOptions,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<PagedMap<K, V>> {
        let mut map = PagedMap::with_options(pool, options);
        let fill_count = (map.bounds.max_entries * 3 / 4).max(2);
        let fill_bytes = map.bounds.max_bytes * 3 / 4;
        let mut level: Items<K, V> = Vec::new();
        let mut run: Vec<(K, V)> = Vec::with_capacity(fill_count);
        let mut run_bytes = 0;
        let mut n: u64 = 0;
        for (k, v) in entries {
            // Checked before a full run is flushed: `run` is empty only before the first entry.
            if let Some((last, _)) = run.last()
                && k <= *last
            {
                return Err(Error::InvalidArgument(format!(
                    "PagedMap::from_sorted: entry {n} is not above the one before it; keys \
                     must come in strictly increasing order (sort and deduplicate them first, or \
                     insert them one by one)"
                )));
            }
            let b = k.get_size() + v.get_size();
            if !run.is_empty() && (run.len() == fill_count || run_bytes + b > fill_bytes) {
                let full = std::mem::replace(&mut run, Vec::with_capacity(fill_count));
                map.push_leaf(&mut level, full)?;
                run_bytes = 0;
            }
            run_bytes += b;
            run.push((k, v));
            n += 1;
        }
        if !run.is_empty() {
            map.push_leaf(&mut level, run)?;
        }
        // Branches, level by level, up to one root.
        while level.len() > 1 {
            let runs = split_runs(level, map.bounds, 0.75, 2, item_bytes);
            level = Vec::with_capacity(runs.len());
            for r in runs {
                level.push(map.branch(r)?);
            }
        }
        map.root = level.pop().map(|(_, h)| h);
        map.len = n;
        Ok(map)
    }

    /// Stores a full leaf of a bulk build, with the separator before it (its first key) unless
    /// it is the first leaf.
    fn push_leaf(&self, level: &mut Items<K, V>, entries: Vec<(K, V)>) -> Result<()> {
        let sep = (!level.is_empty()).then(|| entries[0].0.clone());
        let h = Paged::insert_in(&self.pool, Node::Leaf(entries))?;
        level.push((sep, h));
        Ok(())
    }

    /// Makes a branch node of `run` (its first item's separator goes up: returned with it).
    fn branch(&self, mut run: Items<K, V>) -> Result<Child<K, V>> {
        let up = run.first_mut().and_then(|i| i.0.take());
        let mut keys = Vec::with_capacity(run.len().saturating_sub(1));
        let mut children = Vec::with_capacity(run.len());
        for (i, (k, c)) in run.into_iter().enumerate() {
            if i > 0 {
                keys.push(
                    k.ok_or_else(|| Error::Internal("a branch item without its key".into()))?,
                );
            }
            children.push(c);
        }
        Ok((
            up,
            Paged::insert_in(&self.pool, Node::Branch { keys, children })?,
        ))
    }

    /// Makes nodes of `content`, split into as many as its size needs: the pieces, each with
    /// the smallest key under it (`None` for the first, which keeps its place's separator).
    fn pieces(&self, content: Content<K, V>) -> Result<Items<K, V>> {
        match content {
            Content::Leaf(entries) => {
                let runs = if self.bounds.over(entries.len(), entries_bytes(&entries)) {
                    split_runs(entries, self.bounds, 1.0, 1, |(k, v)| {
                        k.get_size() + v.get_size()
                    })
                } else {
                    vec![entries]
                };
                let mut out = Vec::with_capacity(runs.len());
                for (i, r) in runs.into_iter().enumerate() {
                    let sep = (i > 0).then(|| r[0].0.clone());
                    out.push((sep, Paged::insert_in(&self.pool, Node::Leaf(r))?));
                }
                Ok(out)
            }
            Content::Branch(items) => {
                let bytes = items.iter().map(item_bytes).sum();
                let runs = if self.bounds.over(items.len(), bytes) {
                    split_runs(items, self.bounds, 1.0, 2, item_bytes)
                } else {
                    vec![items]
                };
                let mut out = Vec::with_capacity(runs.len());
                for (i, r) in runs.into_iter().enumerate() {
                    let (up, h) = self.branch(r)?;
                    out.push((if i == 0 { None } else { up }, h));
                }
                Ok(out)
            }
        }
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `key`, if any (a clone). Pages in the nodes on the way to it.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let Some(mut node) = self.root.clone() else {
            return Ok(None);
        };
        loop {
            let g = node.get()?;
            let next = match &*g {
                Node::Leaf(e) => {
                    return Ok(e
                        .binary_search_by(|(k, _)| k.cmp(key))
                        .ok()
                        .map(|i| e[i].1.clone()));
                }
                Node::Branch { keys, children } => {
                    children[keys.partition_point(|s| s <= key)].clone()
                }
            };
            drop(g);
            node = next;
        }
    }

    /// True if the map holds `key`.
    pub fn contains_key(&self, key: &K) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Sets `key` to `value`; returns the value it had. New nodes are made along the path to
    /// the key's leaf (split when they grow past their size); the rest is shared.
    pub fn insert(&mut self, key: K, value: V) -> Result<Option<V>> {
        let Some(root) = self.root.clone() else {
            self.root = Some(Paged::insert_in(
                &self.pool,
                Node::Leaf(vec![(key, value)]),
            )?);
            self.len = 1;
            return Ok(None);
        };
        let (content, old) = self.insert_at(&root, key, value)?;
        let mut pieces = self.pieces(content)?;
        self.root = Some(if pieces.len() == 1 {
            pieces.remove(0).1
        } else {
            self.branch(pieces)?.1
        });
        if old.is_none() {
            self.len += 1;
        }
        Ok(old)
    }

    /// The contents `node` has once `key` is set to `value`, and the key's old value.
    fn insert_at(
        &self,
        node: &Paged<Node<K, V>>,
        key: K,
        value: V,
    ) -> Result<(Content<K, V>, Option<V>)> {
        let g = node.get()?;
        match &*g {
            Node::Leaf(e) => {
                let mut e = e.clone();
                drop(g);
                match e.binary_search_by(|(k, _)| k.cmp(&key)) {
                    Ok(i) => {
                        let old = std::mem::replace(&mut e[i].1, value);
                        Ok((Content::Leaf(e), Some(old)))
                    }
                    Err(i) => {
                        e.insert(i, (key, value));
                        Ok((Content::Leaf(e), None))
                    }
                }
            }
            Node::Branch { keys, children } => {
                let i = keys.partition_point(|s| s <= &key);
                let mut items = items(keys, children);
                drop(g);
                let (child, old) = self.insert_at(&items[i].1, key, value)?;
                let mut pieces = self.pieces(child)?.into_iter();
                if let Some((_, first)) = pieces.next() {
                    items[i].1 = first;
                }
                for (j, p) in pieces.enumerate() {
                    items.insert(i + 1 + j, p);
                }
                Ok((Content::Branch(items), old))
            }
        }
    }

    /// Removes `key`; returns its value. A node left with fewer than a quarter of its largest
    /// size is merged with a neighbour (and split again if the two are too many for one).
    pub fn remove(&mut self, key: &K) -> Result<Option<V>> {
        let Some(root) = self.root.clone() else {
            return Ok(None);
        };
        let Some((old, content)) = self.remove_at(&root, key)? else {
            return Ok(None);
        };
        self.len -= 1;
        self.root = match content {
            Content::Leaf(e) if e.is_empty() => None,
            // A root branch left with one child: the child is the root.
            Content::Branch(mut items) if items.len() == 1 => items.pop().map(|(_, h)| h),
            c => {
                let mut pieces = self.pieces(c)?;
                Some(if pieces.len() == 1 {
                    pieces.remove(0).1
                } else {
                    self.branch(pieces)?.1
                })
            }
        };
        Ok(Some(old))
    }

    /// The old value and the contents `node` has without `key`; `None` if it has no such key
    /// (nothing is copied then).
    fn remove_at(&self, node: &Paged<Node<K, V>>, key: &K) -> Result<Option<(V, Content<K, V>)>> {
        let g = node.get()?;
        match &*g {
            Node::Leaf(e) => match e.binary_search_by(|(k, _)| k.cmp(key)) {
                Ok(i) => {
                    let mut e = e.clone();
                    drop(g);
                    let (_, v) = e.remove(i);
                    Ok(Some((v, Content::Leaf(e))))
                }
                Err(_) => Ok(None),
            },
            Node::Branch { keys, children } => {
                let i = keys.partition_point(|s| s <= key);
                let mut items = items(keys, children);
                drop(g);
                let Some((old, child)) = self.remove_at(&items[i].1, key)? else {
                    return Ok(None);
                };
                let is_branch = matches!(child, Content::Branch(_));
                if self.bounds.under(child.len(), is_branch) && items.len() > 1 {
                    // Merge with the right neighbour (the left one for the last child).
                    let (lo, hi) = if i + 1 < items.len() {
                        (i, i + 1)
                    } else {
                        (i - 1, i)
                    };
                    let sibling = {
                        let g = items[if lo == i { hi } else { lo }].1.get()?;
                        Content::of(&g)
                    };
                    let sep = items[hi]
                        .0
                        .clone()
                        .ok_or_else(|| Error::Internal("a branch item without its key".into()))?;
                    let merged = if lo == i {
                        child.concat(sep, sibling)
                    } else {
                        sibling.concat(sep, child)
                    };
                    let pieces = if merged.len() == 0 {
                        Vec::new()
                    } else {
                        self.pieces(merged)?
                    };
                    let keep = items[lo].0.take();
                    items.splice(lo..=hi, pieces);
                    if let Some(first) = items.get_mut(lo) {
                        first.0 = keep;
                    }
                    if lo == 0
                        && let Some(first) = items.first_mut()
                    {
                        first.0 = None;
                    }
                } else {
                    let mut pieces = self.pieces(child)?.into_iter();
                    if let Some((_, first)) = pieces.next() {
                        items[i].1 = first;
                    }
                    for (j, p) in pieces.enumerate() {
                        items.insert(i + 1 + j, p);
                    }
                }
                Ok(Some((old, Content::Branch(items))))
            }
        }
    }

    /// The entries whose keys are in `range`, in key order, paged in a leaf at a time (the
    /// path to the current leaf stays pinned while the iterator lives). Items are clones; an
    /// error ends the iteration.
    pub fn range<R: RangeBounds<K>>(&self, range: R) -> Range<K, V> {
        Range {
            root: self.root.clone(),
            start: range.start_bound().cloned(),
            end: range.end_bound().cloned(),
            stack: Vec::new(),
            started: false,
            done: false,
        }
    }

    /// Every entry, in key order (see [`range`](Self::range)).
    pub fn iter(&self) -> Range<K, V> {
        self.range(..)
    }

    /// The entry with the smallest key.
    pub fn first(&self) -> Result<Option<(K, V)>> {
        self.iter().next().transpose()
    }

    /// The entry with the largest key.
    pub fn last(&self) -> Result<Option<(K, V)>> {
        let Some(mut node) = self.root.clone() else {
            return Ok(None);
        };
        loop {
            let g = node.get()?;
            let next = match &*g {
                Node::Leaf(e) => return Ok(e.last().cloned()),
                Node::Branch { children, .. } => children[children.len() - 1].clone(),
            };
            drop(g);
            node = next;
        }
    }

    /// Levels of nodes from the root to a leaf (0 for an empty map).
    pub fn depth(&self) -> Result<usize> {
        let mut depth = 0;
        let mut node = self.root.clone();
        while let Some(n) = node {
            depth += 1;
            let g = n.get()?;
            node = match &*g {
                Node::Leaf(_) => None,
                Node::Branch { children, .. } => Some(children[0].clone()),
            };
        }
        Ok(depth)
    }

    /// Keeps the map under the root `name` of `pool` (durably, as
    /// [`Pool::set_root`] does), for [`open`](Self::open) after a restart.
    pub fn save(&self, pool: &Pool, name: &str) -> Result<ContentKey> {
        let header = pool.insert(Header {
            root: self.root.clone(),
            len: self.len,
            max_entries: self.bounds.max_entries as u64,
            max_node_bytes: self.bounds.max_bytes as u64,
        })?;
        pool.set_root(name, &header)
    }

    /// The map [`save`](Self::save)d under `name`, if there is one: nothing of it is read but
    /// its header until it is used.
    pub fn open(pool: &Pool, name: &str) -> Result<Option<PagedMap<K, V>>> {
        let Some(h) = pool.root::<Header<K, V>>(name)? else {
            return Ok(None);
        };
        let g = h.get()?;
        Ok(Some(PagedMap {
            pool: Arc::clone(pool.shared()),
            root: g.root.clone(),
            len: g.len,
            bounds: MapOptions::new(g.max_entries as usize, g.max_node_bytes as usize).bounds(),
        }))
    }
}

/// An iterator over a range of a [`PagedMap`], from [`PagedMap::range`].
pub struct Range<K: Item + Ord, V: Item> {
    root: Option<Paged<Node<K, V>>>,
    start: Bound<K>,
    end: Bound<K>,
    /// The path to the current leaf: each node pinned, with the index of the child (or, in the
    /// leaf, the entry) to visit next.
    stack: Vec<(Guard<Node<K, V>>, usize)>,
    started: bool,
    done: bool,
}

impl<K: Item + Ord, V: Item> std::fmt::Debug for Range<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Range")
            .field("depth", &self.stack.len())
            .field("done", &self.done)
            .finish()
    }
}

impl<K: Item + Ord, V: Item> Range<K, V> {
    /// Descends from `node` to a leaf: along the start bound if `seek`, else leftmost.
    fn descend(&mut self, mut node: Paged<Node<K, V>>, seek: bool) -> Result<()> {
        loop {
            let g = node.get()?;
            match &*g {
                Node::Leaf(e) => {
                    let pos = match (&self.start, seek) {
                        (Bound::Included(k), true) => e.partition_point(|(x, _)| x < k),
                        (Bound::Excluded(k), true) => e.partition_point(|(x, _)| x <= k),
                        _ => 0,
                    };
                    self.stack.push((g, pos));
                    return Ok(());
                }
                Node::Branch { keys, children } => {
                    let i = match (&self.start, seek) {
                        (Bound::Included(k) | Bound::Excluded(k), true) => {
                            keys.partition_point(|s| s <= k)
                        }
                        _ => 0,
                    };
                    let next = children[i].clone();
                    self.stack.push((g, i));
                    node = next;
                }
            }
        }
    }

    fn past_end(end: &Bound<K>, k: &K) -> bool {
        match end {
            Bound::Included(e) => k.cmp(e) == Ordering::Greater,
            Bound::Excluded(e) => k.cmp(e) != Ordering::Less,
            Bound::Unbounded => false,
        }
    }

    fn step(&mut self) -> Result<Option<(K, V)>> {
        if !self.started {
            self.started = true;
            if let Some(root) = self.root.take() {
                self.descend(root, true)?;
            }
        }
        loop {
            let Some((node, pos)) = self.stack.last_mut() else {
                return Ok(None);
            };
            let end = &self.end;
            match &**node {
                Node::Leaf(e) => {
                    if let Some((k, v)) = e.get(*pos) {
                        if Self::past_end(end, k) {
                            self.stack.clear();
                            return Ok(None);
                        }
                        *pos += 1;
                        return Ok(Some((k.clone(), v.clone())));
                    }
                    self.stack.pop();
                }
                Node::Branch { children, .. } => {
                    *pos += 1;
                    match children.get(*pos) {
                        Some(c) => {
                            let c = c.clone();
                            self.descend(c, false)?;
                        }
                        None => {
                            self.stack.pop();
                        }
                    }
                }
            }
        }
    }
}

impl<K: Item + Ord, V: Item> Iterator for Range<K, V> {
    type Item = Result<(K, V)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                self.stack.clear();
                Some(Err(e))
            }
        }
    }
}
