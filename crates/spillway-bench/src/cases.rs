//! The workloads of a run ("cases"): each a [`Spec`] and the contenders it is measured on.
//!
//! | id | what | contenders |
//! |---|---|---|
//! | W1, W2 | put N objects, flush, get all in a random order | each spillway store (S3 with and without a local cache), peers' stores |
//! | W3 | graph of 1M nodes, half the child references shared: page out, walk back | pool (log, S3, cached S3), pagable |
//! | W4 | Zipf(0.99) reads over 10× the budget, 1 and 2 threads; and a budget sweep | pool (each store), foyer, file_backed |
//! | W5 | 80/20 reads/puts, budget 10 % of the data | pool, foyer, file_backed |
//! | W6 | insert 10× the budget, keep every handle: peak RSS | pool, file_backed, pagable |
//! | R1–R3 | the runtime: resident get, page-out/page-in, memory per paged-out handle | pool |

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::contender::ContenderId;
use crate::shared::{Job, Kind, Spec};
use crate::workload::{Workload, format_size, group_digits};

/// One workload of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Case {
    /// Short id, e.g. `W1`, `W4-2t`, `R2-16K`.
    pub id: String,
    /// What it is, for headings.
    pub title: String,
    pub spec: Spec,
    pub contenders: Vec<ContenderId>,
    /// Smaller object counts for contenders too slow for the full size (the table says so).
    pub caps: BTreeMap<ContenderId, u64>,
}

impl Case {
    /// The spec contender `id` runs: the case's, with its count capped if it has a cap.
    pub fn spec_for(&self, id: ContenderId) -> Spec {
        let mut s = self.spec;
        if let Some(&cap) = self.caps.get(&id)
            && cap < s.count
        {
            // The budget stays the same share of the (smaller) data set; 0 (no budget) stays 0.
            if s.budget != 0 {
                s.budget = (s.budget as f64 * cap as f64 / s.count as f64)
                    .round()
                    .max(1.0) as u64;
            }
            s.count = cap;
            // Reads in proportion too: the same number of operations per object.
            if s.ops != 0 {
                s.ops = (s.ops as f64 * cap as f64 / self.spec.count as f64)
                    .round()
                    .max(1.0) as u64;
            }
        }
        s
    }

    /// Payload bytes of the case's data set.
    pub fn bytes(&self) -> u64 {
        self.spec.count * self.spec.size as u64
    }

    /// True if the contenders write to disk during the case.
    pub fn writes_disk(&self) -> bool {
        !matches!(self.spec.kind, Kind::ResidentGet)
    }

    /// An untimed log-store job that writes about as much as the case (at most 256 MiB).
    pub fn warmup_job(&self, seed: u64, dir: PathBuf) -> Job {
        let size = if self.spec.size == 0 {
            4096
        } else {
            self.spec.size
        };
        let bytes = self.bytes().clamp(1 << 20, 256 << 20);
        crate::workload::kv_job(
            ContenderId::SpillwayLogWritten,
            (bytes / size as u64).max(1),
            size,
            1000.min((16 << 20) / size).max(1),
            seed ^ 0xAAAA,
            dir,
        )
    }
}

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    pub scale: f64,
    pub kv: Vec<Workload>,
    pub peers: bool,
    pub contenders: Vec<ContenderId>,
    pub only: Vec<String>,
}

fn spec(kind: Kind, count: u64, size: usize, budget: u64, threads: usize, ops: u64) -> Spec {
    Spec {
        kind,
        count,
        size,
        budget,
        threads,
        ops,
    }
}

/// Every case of a run, filtered by the options.
pub fn all(o: &Options) -> Vec<Case> {
    use ContenderId::*;
    let q = o.quick;
    let n = |full: u64, quick: u64| -> u64 {
        ((if q { quick } else { full }) as f64 * o.scale)
            .round()
            .max(1.0) as u64
    };
    let mut cases = Vec::new();
    let mut push = |id: String, title: String, spec: Spec, contenders: Vec<ContenderId>| {
        cases.push(Case {
            id,
            title,
            spec,
            contenders,
            caps: BTreeMap::new(),
        });
    };

    // W1/W2: the stores.
    for w in &o.kv {
        let id = if w.size <= 1024 { "W1" } else { "W2" };
        let count = ((w.count as f64) * o.scale).round().max(1.0) as u64;
        let bytes = count * w.size as u64;
        push(
            format!("{id} {}", format_size(w.size)),
            format!(
                "{id}: put {} × {}, then get all in a random order",
                group_digits(count),
                format_size(w.size)
            ),
            spec(Kind::Kv, count, w.size, (bytes / 10).max(1), 1, 0),
            vec![
                SpillwayLogWritten,
                SpillwayLogDurable,
                SpillwayMem,
                SpillwayDir,
                SpillwaySqlite,
                SpillwayS3,
                SpillwayS3Cached,
                PagableSqlite,
                Sqlite,
                Foyer,
                FoyerTuned,
                FileBackedFbstore,
                FileBackedRedb,
                FileBackedFbstoreBincode,
            ],
        );
    }

    // W3: a graph.
    push(
        "W3".into(),
        format!(
            "W3: a graph of {} nodes (half of the child references to shared subtrees): page out (timed until the data is handed to the OS, Written, on both sides: spillway's `flush(Written)`, pagable's `flush` with SQLite's journal and sync off), then walk back from the root",
            group_digits(n(1_000_000, 20_000))
        ),
        spec(Kind::Graph, n(1_000_000, 20_000), 32, 0, 1, 0),
        vec![
            SpillwayPoolS3fifo,
            SpillwayPoolS3,
            SpillwayPoolS3Cached,
            PagableSqlite,
        ],
    );

    // W4: Zipf reads over 10× the budget.
    let (zc, zs) = (n(200_000, 5_000), 1024usize);
    let zbytes = zc * zs as u64;
    let cache = vec![
        SpillwayPoolS3fifo,
        SpillwayPoolLru,
        Foyer,
        FoyerTuned,
        FileBackedFbstore,
    ];
    for t in [1usize, 2] {
        let mut contenders = cache.clone();
        contenders.splice(
            2..2,
            [
                SpillwayPoolDir,
                SpillwayPoolSqlite,
                SpillwayPoolS3,
                SpillwayPoolS3Cached,
            ],
        );
        push(
            format!("W4-{t}t"),
            format!(
                "W4: Zipf(0.99) reads over {} × {} (budget 10 % of the data), {t} thread(s)",
                group_digits(zc),
                format_size(zs)
            ),
            spec(Kind::Zipf, zc, zs, zbytes / 10, t, n(1_000_000, 50_000)),
            contenders,
        );
    }
    for pct in [2u64, 5, 20, 40] {
        push(
            format!("W4-budget-{pct}%"),
            format!("W4 sweep: budget {pct} % of the data, 1 thread"),
            spec(
                Kind::Zipf,
                zc,
                zs,
                zbytes * pct / 100,
                1,
                n(300_000, 20_000),
            ),
            cache.clone(),
        );
    }

    // W5: mixed.
    push(
        "W5".into(),
        format!(
            "W5: 80 % Zipf reads / 20 % puts over {} × {} (budget 10 % of the data), 1 thread",
            group_digits(zc),
            format_size(zs)
        ),
        spec(Kind::Mixed, zc, zs, zbytes / 10, 1, n(500_000, 20_000)),
        cache,
    );

    // W6: RSS under a budget.
    let budget6: u64 = if q { 4 << 20 } else { 64 << 20 };
    let c6 = (((budget6 * 10) / (16 << 10)) as f64 * o.scale)
        .round()
        .max(1.0) as u64;
    push(
        "W6".into(),
        format!(
            "W6: insert {} × 16 KiB (10× a {} budget), keeping every handle",
            group_digits(c6),
            format_size(budget6 as usize)
        ),
        spec(Kind::Rss, c6, 16 << 10, budget6, 1, 0),
        vec![
            SpillwayPoolS3fifo,
            FileBackedFbstore,
            FileBackedRedb,
            PagableSqlite,
        ],
    );

    // The runtime.
    for t in [1usize, 2] {
        push(
            format!("R1-{t}t"),
            format!("R1: resident `Paged::get` against `Arc`, {t} thread(s)"),
            spec(Kind::ResidentGet, 1024, 8, 0, t, n(20_000_000, 1_000_000)),
            vec![SpillwayPoolS3fifo],
        );
    }
    for (count, size) in [(n(500_000, 20_000), 128usize), (n(50_000, 1_000), 16 << 10)] {
        push(
            format!("R2-{}", format_size(size).replace(' ', "")),
            format!(
                "R2: page-out then page-in of {} × {} through the pool",
                group_digits(count),
                format_size(size)
            ),
            spec(Kind::Paging, count, size, 0, 1, 0),
            vec![SpillwayPoolS3fifo],
        );
    }
    push(
        "R3".into(),
        format!(
            "R3: memory per paged-out handle, {} handles",
            group_digits(n(1_000_000, 20_000))
        ),
        spec(Kind::Handles, n(1_000_000, 20_000), 8, 0, 1, 0),
        vec![SpillwayPoolS3fifo],
    );

    // Caps for slow peers: file_backed's file-per-item store at 1M objects, and its shipped
    // bincode codec (one write system call per byte) everywhere.
    for c in &mut cases {
        if c.spec.kind == Kind::Kv {
            if c.spec.count > 200_000 {
                c.caps.insert(FileBackedFbstore, 200_000);
                c.caps.insert(FileBackedRedb, 200_000);
            }
            let bincode_cap = ((4u64 << 20) / c.spec.size.max(1) as u64).max(2);
            c.caps.insert(FileBackedFbstoreBincode, bincode_cap);
        }
        // The S3 server is a local test server (an emulator in Python): a request costs
        // about a millisecond, so the S3 rows run smaller data sets (the tables say how many).
        let s3_cap = match c.spec.kind {
            Kind::Kv => ((32u64 << 20) / c.spec.size.max(1) as u64).clamp(16, 2_000),
            _ => 2_000,
        };
        let s3_cap = if q { s3_cap.min(500) } else { s3_cap };
        for id in [
            SpillwayS3,
            SpillwayS3Cached,
            SpillwayPoolS3,
            SpillwayPoolS3Cached,
        ] {
            c.caps.insert(id, s3_cap);
        }
    }
    let s3 = crate::contender::spillway_stores::s3_configured();
    if !s3 && !q {
        eprintln!(
            "no S3 server configured ({} unset): the S3 contenders are left out",
            crate::contender::spillway_stores::S3_URL_VAR
        );
    }

    cases
        .into_iter()
        .filter(|c| o.only.is_empty() || o.only.iter().any(|p| c.id.starts_with(p.as_str())))
        .map(|mut c| {
            c.contenders.retain(|id| {
                (s3 || !id.needs_s3())
                    && (o.peers || id.is_spillway())
                    && (o.contenders.is_empty() || o.contenders.contains(id))
            });
            c
        })
        .filter(|c| !c.contenders.is_empty())
        .collect()
}
