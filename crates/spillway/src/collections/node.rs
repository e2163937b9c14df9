//! The nodes of a [`PagedMap`](super::PagedMap): leaves of sorted entries, branches of sorted
//! separators over child handles. A node is an immutable paged value; a change makes new nodes
//! along one root-to-leaf path and shares the rest.
//!
//! Invariants of a node (checked by the map's tests through its public behaviour):
//! - a leaf's entries are sorted by key, keys unique; only the root may be empty (an empty map
//!   has no root at all);
//! - a branch has `keys.len() + 1` children, at least two (a root branch left with one is
//!   replaced by its child); `keys` are sorted, unique, and
//!   `keys[i]` is the smallest key under `children[i + 1]`; every key under `children[i]` is
//!   below `keys[i]`;
//! - every leaf is at the same depth;
//! - a node holds at most the map's `max_entries` entries or children, and when it holds more
//!   than one, at most its `max_node_bytes` by deep size (a single entry larger than that is a
//!   node of its own).

use std::fmt::Debug;

use get_size2::GetSize;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::runtime::Paged;

/// What a key or a value of a map must be: stored like any paged value, cloned out of nodes.
pub trait Item: Clone + Serialize + DeserializeOwned + GetSize + Send + Sync + 'static {}

impl<T: Clone + Serialize + DeserializeOwned + GetSize + Send + Sync + 'static> Item for T {}

/// One node of a map.
#[derive(Serialize, Deserialize, GetSize)]
#[serde(bound(
    serialize = "K: Serialize, V: Serialize",
    deserialize = "K: DeserializeOwned, V: DeserializeOwned"
))]
pub enum Node<K: Item + Ord, V: Item> {
    /// Entries, sorted by key.
    Leaf(Vec<(K, V)>),
    /// Separators and children: see the module docs.
    Branch {
        /// `keys[i]` is the smallest key under `children[i + 1]`.
        keys: Vec<K>,
        /// One more than `keys`.
        children: Vec<Paged<Node<K, V>>>,
    },
}

impl<K: Item + Ord, V: Item> Debug for Node<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Node::Leaf(e) => write!(f, "Leaf({} entries)", e.len()),
            Node::Branch { children, .. } => write!(f, "Branch({} children)", children.len()),
        }
    }
}

/// Bounds on a node's size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub max_entries: usize,
    pub max_bytes: usize,
}

impl Bounds {
    /// True if `items` (entries or children, with their deep size `bytes`) are too many for
    /// one node.
    pub fn over(&self, items: usize, bytes: usize) -> bool {
        items > self.max_entries || (items > 1 && bytes > self.max_bytes)
    }

    /// True if a node of `items` entries (a leaf) or children (a branch) should be merged with
    /// a sibling: under a quarter of the largest, and always an empty leaf or a branch of one
    /// child (only the root may be one, and it is then replaced by its child).
    pub fn under(&self, items: usize, branch: bool) -> bool {
        items < self.max_entries.div_ceil(4).max(if branch { 2 } else { 1 })
    }
}

/// Deep size of a run of entries.
pub(crate) fn entries_bytes<K: GetSize, V: GetSize>(entries: &[(K, V)]) -> usize {
    entries
        .iter()
        .map(|(k, v)| k.get_size() + v.get_size())
        .sum()
}

/// Splits `items` into runs that each fit `bounds`, filled to about `fill` (a share of
/// `max_entries`, 1.0 for full), of about equal count: what a node that grew too large becomes,
/// or the nodes of a bulk build. An item larger than `max_bytes` alone is a run of its own. No
/// run but a lone one is shorter than `min_run` (2 for the children of a branch): a short last
/// run joins the one before it, which may then pass `max_bytes`.
pub(crate) fn split_runs<T>(
    items: Vec<T>,
    bounds: Bounds,
    fill: f64,
    min_run: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let max_count = ((bounds.max_entries as f64 * fill) as usize).max(2);
    let max_bytes = ((bounds.max_bytes as f64 * fill) as usize).max(1);
    let total: usize = items.iter().map(&size).sum();
    let parts = items
        .len()
        .div_ceil(max_count)
        .max(total.div_ceil(max_bytes))
        .clamp(1, items.len().max(1));
    let per = items.len().div_ceil(parts).max(1);
    let mut out: Vec<Vec<T>> = Vec::with_capacity(parts);
    let mut run: Vec<T> = Vec::with_capacity(per);
    let mut run_bytes = 0;
    for item in items {
        let b = size(&item);
        if !run.is_empty() && (run.len() == per || run_bytes + b > bounds.max_bytes) {
            out.push(std::mem::replace(&mut run, Vec::with_capacity(per)));
            run_bytes = 0;
        }
        run_bytes += b;
        run.push(item);
    }
    if !run.is_empty() {
        out.push(run);
    }
    // A run shorter than `min_run` (a branch of one child) joins the one before it, and the two
    // are halved if that is too many for one node.
    while out.len() >= 2 && out.last().is_some_and(|r| r.len() < min_run) {
        let last = out.pop().unwrap_or_default();
        let prev = out.last_mut().expect("two runs");
        prev.extend(last);
        if prev.len() > bounds.max_entries {
            let half = prev.split_off(prev.len() / 2);
            out.push(half);
        }
    }
    out
}
