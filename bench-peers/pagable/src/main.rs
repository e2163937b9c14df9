//! Peer contender: `pagable` 0.3.3 with its SQLite storage (`synchronous=OFF`,
//! `journal_mode=OFF`).
//!
//! - W1/W2 (`kv`): `store_data` per object, `flush` at the end, `fetch_arc_or_data_blocking` per
//!   get.
//! - W3 (`graph`): the graph as `PagableArc<Node>`s, paged out through the storage's own
//!   `page_out_item` (which serializes nested arcs bottom-up, shared ones once), then hydrated
//!   from the root's key and walked.
//! - W6 (`rss`): `PagableArc`s unpinned as they are inserted. The SQLite storage does not page
//!   out by itself (its `schedule_for_paging` panics), so a thin wrapper queues the unpinned arcs
//!   and pages them out by hand, through `page_out_item`, whenever the queued bytes pass the
//!   budget: the least a user of this storage has to write.
//!
//! Run by the harness as `peer-pagable --job <json>`; prints one JSON line of results.

use std::any::TypeId;
use std::path::Path;
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use either::Either;
use pagable::arc_erase::ArcEraseDyn;
use pagable::storage::data::PagableData;
use pagable::storage::handle::PagableStorageHandle;
use pagable::storage::sqlite::SqliteBackedPagableStorage;
use pagable::storage::support::SerializerForPaging;
use pagable::storage::traits::PagableStorage;
use pagable::{DataKey, Pagable, PagableArc, SessionContext};
use peer_common::{
    CachePeer, GRAPH_NODE_BYTES, Job, Kind, KvPeer, Measurement, Read, Res, Rss, emit,
    graph_children, job_from_args, peak_rss_bytes, run_kv, run_rss, tagged_index, tagged_payload,
};

/// The SQLite storage, with unpinned arcs queued for a page-out driven by the caller.
struct HandDriven {
    inner: SqliteBackedPagableStorage,
    pending: Mutex<Vec<Box<dyn ArcEraseDyn>>>,
}

impl HandDriven {
    fn open(dir: &Path) -> Res<Arc<HandDriven>> {
        Ok(Arc::new(HandDriven {
            inner: SqliteBackedPagableStorage::try_new(dir).map_err(|e| format!("{e:#}"))?,
            pending: Mutex::new(Vec::new()),
        }))
    }

    /// Serializes every queued arc that still holds its value, stores it with its nested arcs,
    /// and drops the value from memory; then flushes the storage.
    fn page_out_pending(&self) -> anyhow::Result<usize> {
        let items = std::mem::take(
            &mut *self
                .pending
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?,
        );
        let finished = DashMap::new();
        let mut n = 0;
        for v in items {
            if !v.needs_paging_out() {
                continue;
            }
            let key = self.page_out_one(&*v, &finished)?;
            v.set_data_key(key);
            n += 1;
        }
        self.inner.flush()?;
        Ok(n)
    }

    fn page_out_one(
        &self,
        v: &dyn ArcEraseDyn,
        finished: &DashMap<usize, DataKey>,
    ) -> anyhow::Result<DataKey> {
        let ctx = self.inner.session_context();
        let mut s = SerializerForPaging::new(ctx);
        v.serialize(&mut s)?;
        let (data, arcs) = s.finish();
        self.inner.page_out_item(data, arcs, finished, ctx)
    }
}

#[async_trait::async_trait]
impl PagableStorage for HandDriven {
    fn fetch_arc_or_data_blocking(
        &self,
        type_id: &TypeId,
        key: &DataKey,
    ) -> anyhow::Result<Either<Box<dyn ArcEraseDyn>, Arc<PagableData>>> {
        self.inner.fetch_arc_or_data_blocking(type_id, key)
    }

    async fn fetch_data(&self, key: &DataKey) -> anyhow::Result<Arc<PagableData>> {
        // The storage's own async path needs its `tokio` feature; its blocking one is the same
        // SQLite read.
        match self
            .inner
            .fetch_arc_or_data_blocking(&TypeId::of::<()>(), key)?
        {
            Either::Right(data) => Ok(data),
            Either::Left(_) => Err(anyhow::anyhow!("unexpected cached arc for {key:?}")),
        }
    }

    fn on_arc_deserialized(
        &self,
        typeid: TypeId,
        key: DataKey,
        arc: Box<dyn ArcEraseDyn>,
    ) -> Option<Box<dyn ArcEraseDyn>> {
        self.inner.on_arc_deserialized(typeid, key, arc)
    }

    fn schedule_for_paging(&self, arc: Box<dyn ArcEraseDyn>) {
        // Called with the arc's lock held: only queue it here.
        if let Ok(mut p) = self.pending.lock() {
            p.push(arc);
        }
    }

    fn session_context(&self) -> &SessionContext {
        self.inner.session_context()
    }

    fn store_data(&self, data: PagableData) -> anyhow::Result<DataKey> {
        self.inner.store_data(data)
    }

    fn flush(&self) -> anyhow::Result<()> {
        self.inner.flush()
    }
}

fn handle(s: &Arc<HandDriven>) -> PagableStorageHandle {
    PagableStorageHandle::new(Arc::clone(s) as Arc<dyn PagableStorage>)
}

fn any_err(e: anyhow::Error) -> peer_common::BoxError {
    format!("{e:#}").into()
}

// ---- W1/W2 ----

struct Kv {
    storage: Arc<HandDriven>,
    keys: Vec<DataKey>,
}

impl KvPeer for Kv {
    fn put_batch(&mut self, _first: u64, payloads: &[&[u8]]) -> Res<()> {
        for p in payloads {
            let key = self
                .storage
                .store_data(PagableData {
                    data: p.to_vec(),
                    arcs: Vec::new(),
                })
                .map_err(any_err)?;
            self.keys.push(key);
        }
        Ok(())
    }

    fn flush(&mut self) -> Res<()> {
        self.storage.flush().map_err(any_err)
    }

    fn get(&mut self, index: u64) -> Res<Option<Vec<u8>>> {
        let key = &self.keys[index as usize];
        match self
            .storage
            .fetch_arc_or_data_blocking(&TypeId::of::<Vec<u8>>(), key)
        {
            Ok(Either::Right(data)) => Ok(Some(data.data.clone())),
            Ok(Either::Left(_)) => Err("unexpected cached arc".into()),
            Err(_) => Ok(None),
        }
    }
}

// ---- W3 ----

#[derive(Pagable)]
struct Node {
    id: u64,
    data: Vec<u8>,
    children: Vec<PagableArc<Node>>,
}

fn run_graph(job: &Job) -> Res<Measurement> {
    let n = job.spec.count;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    let mut m = Measurement::default();
    let t = std::time::Instant::now();
    let storage = HandDriven::open(&job.dir)?;
    m.open_secs = t.elapsed().as_secs_f64();
    let h = handle(&storage);

    // Build, children before parents; every arc unpinned so that it can be paged out.
    let mut nodes: Vec<Option<PagableArc<Node>>> = (0..n).map(|_| None).collect();
    for i in (0..n).rev() {
        let children = graph_children(job.seed, n, i)
            .into_iter()
            .map(|c| {
                let a = nodes[c as usize].clone().ok_or("child not built")?;
                a.unpin();
                Ok::<_, peer_common::BoxError>(a)
            })
            .collect::<Res<Vec<_>>>()?;
        let a = PagableArc::new(
            Node {
                id: i,
                data: tagged_payload(job.seed, i, GRAPH_NODE_BYTES),
                children,
            },
            h.clone(),
        );
        nodes[i as usize] = Some(a);
    }
    let root = nodes[0].take().ok_or("no root")?;
    for a in nodes.iter().flatten() {
        a.unpin();
    }
    drop(nodes);
    root.unpin();
    m.rss_after_put = Rss::now();

    // Page out: the root and, through `page_out_item`, everything under it.
    let t = std::time::Instant::now();
    let finished = DashMap::new();
    let root_key = {
        let erased: Box<dyn ArcEraseDyn> = Box::new(root.clone());
        let key = storage.page_out_one(&*erased, &finished).map_err(any_err)?;
        erased.set_data_key(key);
        key
    };
    storage.flush().map_err(any_err)?;
    m.put_secs = t.elapsed().as_secs_f64();
    m.counters
        .insert("stored_objects".into(), finished.len() as u64 + 1);
    drop(finished);
    storage.pending.lock().map_err(|_| "poisoned")?.clear();
    drop(root);

    // Walk back from the root's key: hydrate, then visit every node once.
    let t = std::time::Instant::now();
    let (visited, bad) = rt.block_on(async {
        let root: Node = h
            .deserialize_pagable_data::<Node>(&root_key)
            .await
            .map_err(any_err)?;
        let mut seen = vec![false; n as usize];
        let mut visited = 0u64;
        let mut bad = 0u64;
        let mut stack: Vec<PagableArc<Node>> = Vec::new();
        let mut visit = |node: &Node, stack: &mut Vec<PagableArc<Node>>| {
            visited += 1;
            if tagged_index(&node.data) != Some(node.id) {
                bad += 1;
            }
            for c in &node.children {
                stack.push(c.clone());
            }
        };
        seen[0] = true;
        visit(&root, &mut stack);
        while let Some(a) = stack.pop() {
            let p = a.pin().await.map_err(any_err)?;
            let id = p.id as usize;
            if id >= seen.len() || seen[id] {
                continue;
            }
            seen[id] = true;
            visit(&p, &mut stack);
        }
        Ok::<_, peer_common::BoxError>((visited, bad))
    })?;
    m.get_secs = t.elapsed().as_secs_f64();
    m.mismatches = bad;
    m.missing = n - visited;
    m.counters.insert("nodes".into(), visited);
    m.rss_after_get = Rss::now();
    m.peak_rss_bytes = peak_rss_bytes().unwrap_or(0);
    Ok(m)
}

// ---- W6 ----

#[derive(Pagable)]
struct Blob {
    data: Vec<u8>,
}

struct Budgeted {
    storage: Arc<HandDriven>,
    h: PagableStorageHandle,
    rt: tokio::runtime::Runtime,
    arcs: Vec<PagableArc<Blob>>,
    queued: u64,
    budget: u64,
    page_outs: u64,
}

impl CachePeer for Budgeted {
    fn insert(&mut self, _index: u64, payload: Vec<u8>) -> Res<()> {
        let len = payload.len() as u64;
        let a = PagableArc::new(Blob { data: payload }, self.h.clone());
        a.unpin();
        self.arcs.push(a);
        self.queued += len;
        if self.queued > self.budget {
            self.page_outs += self.storage.page_out_pending().map_err(any_err)? as u64;
            self.queued = 0;
        }
        Ok(())
    }

    fn read(&self, index: u64) -> Res<Read> {
        let a = &self.arcs[index as usize];
        let p = self.rt.block_on(a.pin()).map_err(any_err)?;
        Ok(Read {
            tag: tagged_index(&p.data),
            hit: false,
        })
    }

    fn counters(&self) -> std::collections::BTreeMap<String, u64> {
        [("page_outs".to_string(), self.page_outs)].into()
    }
}

fn run(job: &Job) -> Res<Measurement> {
    match job.spec.kind {
        Kind::Kv => run_kv(
            || {
                Ok(Kv {
                    storage: HandDriven::open(&job.dir)?,
                    keys: Vec::new(),
                })
            },
            job,
        ),
        Kind::Graph => run_graph(job),
        Kind::Rss => {
            let storage = HandDriven::open(&job.dir)?;
            let mut p = Budgeted {
                h: handle(&storage),
                storage,
                rt: tokio::runtime::Builder::new_current_thread()
                    .build()
                    .map_err(|e| e.to_string())?,
                arcs: Vec::new(),
                queued: 0,
                budget: job.spec.budget,
                page_outs: 0,
            };
            run_rss(&mut p, job)
        }
        k => Err(format!("pagable: workload {k:?} is not measured for this contender").into()),
    }
}

fn main() {
    emit(job_from_args().map_err(Into::into).and_then(|j| run(&j)));
}
