//! `spillway demo`: the main job.
//!
//! Builds a dependency graph of build actions (each action's output plus the keys of the
//! actions it depends on, with popular shared toolchain nodes and repeated actions that dedup),
//! stores it bottom-up in a store, closes and reopens the store, then reads it back with a
//! skewed access pattern and checks every object against its content key.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use spillway::{BlobStore, ContentKey, Durability, LogStore, MemStore, Put};

use crate::size::human;

/// Which store backend the demo runs on.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StoreKind {
    /// The embedded crash-safe log store (the default).
    Log,
    /// An in-memory store (nothing survives the run).
    Mem,
}

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Size multiplier: scale 1 is 100,000 build actions (about 110 MiB of payload).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    scale: u32,
    /// Seed of the generated graph and of the access pattern.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep the store in this directory (otherwise a temporary one is removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The store backend.
    #[arg(long, value_enum, default_value_t = StoreKind::Log)]
    store: StoreKind,
}

struct Graph {
    keys: Vec<ContentKey>,
    payload_bytes: u64,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{what:>8} [{{bar:40}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
    )) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// Generates the graph and stores it; returns the key of every action in creation order.
fn build(store: &dyn BlobStore, actions: usize, rng: &mut StdRng) -> spillway::Result<Graph> {
    let toolchains = 64.min(actions.max(1));
    let mut keys: Vec<ContentKey> = Vec::with_capacity(actions);
    let mut payloads: Vec<(Vec<u8>, Vec<ContentKey>)> = Vec::with_capacity(1000);
    let mut payload_bytes = 0u64;
    let pb = bar(actions as u64, "store");
    for i in 0..actions {
        // One action in ten repeats an earlier one exactly (same command, same inputs): same
        // key, stored once.
        let repeat = i > toolchains && rng.random_ratio(1, 10);
        let (payload, children) = if repeat {
            let j = rng.random_range(toolchains..i);
            // Rebuild the earlier action's content deterministically from its index.
            action_content(j, &keys, toolchains, &mut StdRng::seed_from_u64(j as u64))
        } else {
            action_content(i, &keys, toolchains, &mut StdRng::seed_from_u64(i as u64))
        };
        keys.push(ContentKey::of(&payload, &children));
        payload_bytes += payload.len() as u64;
        payloads.push((payload, children));
        if payloads.len() == 1000 || i + 1 == actions {
            let batch: Vec<Put<'_>> = payloads.iter().map(|(p, c)| Put::new(p, c)).collect();
            store.put_batch(&batch)?;
            pb.inc(payloads.len() as u64);
            payloads.clear();
        }
    }
    pb.finish_and_clear();
    Ok(Graph {
        keys,
        payload_bytes,
    })
}

/// The output and dependencies of action `i`, a pure function of `i` and the earlier keys.
fn action_content(
    i: usize,
    keys: &[ContentKey],
    toolchains: usize,
    rng: &mut StdRng,
) -> (Vec<u8>, Vec<ContentKey>) {
    let mut children = Vec::new();
    if i >= toolchains {
        // Every action uses one of the popular toolchain nodes, plus up to three recent inputs.
        children.push(keys[rng.random_range(0..toolchains)]);
        for _ in 0..rng.random_range(0..4) {
            let back = rng.random_range(1..=i.min(5000));
            children.push(keys[i - back]);
        }
    }
    // Most outputs are small, a few are large (a linked binary, a bundle).
    let len = if rng.random_ratio(1, 100) {
        rng.random_range(16 << 10..64 << 10)
    } else {
        rng.random_range(200..1600)
    };
    let mut payload = format!("action {i}: cc -c unit_{i}.c -o unit_{i}.o\n").into_bytes();
    let start = payload.len();
    payload.resize(start + len, 0);
    rng.fill_bytes(&mut payload[start..]);
    (payload, children)
}

/// Reads `reads` objects with a skewed pattern (a hot tenth of the graph gets most reads) and
/// checks each against its key. Returns the number of mismatches.
fn walk(store: &dyn BlobStore, g: &Graph, reads: usize, rng: &mut StdRng) -> spillway::Result<u64> {
    let n = g.keys.len();
    let hot = (n / 10).max(1);
    let mut bad = 0;
    let pb = bar(reads as u64, "verify");
    for r in 0..reads {
        let i = if rng.random_ratio(9, 10) {
            n - 1 - rng.random_range(0..hot)
        } else {
            rng.random_range(0..n)
        };
        let key = g.keys[i];
        match store.get(&key)? {
            Some(blob) if blob.key() == key => {}
            Some(blob) => {
                bad += 1;
                eprintln!(
                    "mismatch: object {key} read back with content hashing to {}",
                    blob.key()
                );
            }
            None => {
                bad += 1;
                eprintln!("missing: object {key} is not in the store");
            }
        }
        if r % 1024 == 0 {
            pb.set_position(r as u64);
        }
    }
    pb.finish_and_clear();
    Ok(bad)
}

fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs the demo; exits 0 only if every object read back matched its key.
pub fn run(args: Args) -> spillway::Result<ExitCode> {
    let actions = args.scale as usize * 100_000;
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().map_err(|e| {
                spillway::Error::io("create temporary directory", std::env::temp_dir(), e)
            })?;
            tmp.path().join("store")
        }
    };
    let mut rng = StdRng::seed_from_u64(args.seed);
    let open = |kind: StoreKind| -> spillway::Result<Arc<dyn BlobStore>> {
        Ok(match kind {
            StoreKind::Log => Arc::new(LogStore::open(&dir)?),
            StoreKind::Mem => Arc::new(MemStore::new()),
        })
    };

    println!(
        "spillway demo: {actions} build actions, seed {}, {:?} store",
        args.seed, args.store
    );
    let store = open(args.store)?;
    let t = Instant::now();
    let graph = build(store.as_ref(), actions, &mut rng)?;
    store.flush(Durability::Durable)?;
    let store_secs = t.elapsed().as_secs_f64();
    let written = store.stats();

    // Reopen: everything must come back from disk.
    let store = match args.store {
        StoreKind::Log => {
            drop(store);
            open(args.store)?
        }
        StoreKind::Mem => store,
    };
    let t = Instant::now();
    let reads = actions * 2;
    let bad = walk(store.as_ref(), &graph, reads, &mut rng)?;
    let read_secs = t.elapsed().as_secs_f64();
    let s = store.stats();

    let row = |k: &str, v: String| println!("| {k:<28} | {v:>22} |");
    println!("| {:<28} | {:>22} |", "measure", "value");
    println!("|{:-<30}|{:->24}|", "", "");
    row("actions generated", actions.to_string());
    row("distinct objects stored", s.objects.to_string());
    row("dedup hits", written.dedup_hits.to_string());
    row("payload generated", human(graph.payload_bytes));
    row("stored (live records)", human(s.live_bytes));
    row("on disk", human(s.disk_bytes));
    row(
        "store rate (objects/s)",
        format!("{:.0}", actions as f64 / store_secs),
    );
    row(
        "store rate (MiB/s)",
        format!("{:.1}", graph.payload_bytes as f64 / store_secs / 1048576.0),
    );
    row("verified reads", reads.to_string());
    row(
        "read rate (objects/s)",
        format!("{:.0}", reads as f64 / read_secs),
    );
    row("fsyncs", written.syncs.to_string());
    row("mismatches", bad.to_string());
    if let Some(rss) = peak_rss() {
        row("peak RSS", human(rss));
    }
    if args.dir.is_some() {
        println!("store kept in {}", dir.display());
    }
    if bad == 0 {
        println!("ok: every object read back matched its content key");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("FAILED: {bad} objects did not match");
        Ok(ExitCode::FAILURE)
    }
}
