//! Writes through the write pipeline into a `LogStore` (its own write path, `submit_puts`):
//! writes/s at each durability level with 1 and 2 producers, group commit with 16 to 128
//! concurrent durable waiters (64 against a loop that fsyncs every write), and the latency of
//! each wait; and 64 durable waiters through a generic pipeline (`StoreWriter`) on top of the
//! store. Prints a Markdown table.
//!
//! `cargo run --release -p spillway-bench --bin pipeline-bench -- [--dir DIR] [--secs S] [--only TEXT]`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use spillway::store::{Blob, StoreWriter};
use spillway::write::Config;
use spillway::{BlobStore, Durability, LogStore, Put};

#[derive(Debug, Parser)]
struct Args {
    /// Directory for the stores (put it on the disk you mean to measure).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    secs: f64,
    /// Run only the rows whose name contains this text (the baseline always runs).
    #[arg(long)]
    only: Option<String>,
}

fn payload(producer: u64, i: u64) -> Vec<u8> {
    let mut p = vec![0u8; 128];
    p[..8].copy_from_slice(&producer.to_le_bytes());
    p[8..16].copy_from_slice(&i.to_le_bytes());
    p
}

struct Run {
    writes: u64,
    secs: f64,
    latencies_us: Vec<f64>,
}

/// Runs `threads` writers for `secs` seconds; each calls `write(thread, n)` for its `n`-th write
/// and the time from the call's start to its return is that write's latency.
fn run_writers(threads: u64, secs: f64, write: impl Fn(u64, u64) + Sync) -> Run {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let results: Vec<(u64, Vec<f64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let write = &write;
                s.spawn(move || {
                    let mut n = 0u64;
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let at = Instant::now();
                        write(t, n);
                        lat.push(at.elapsed().as_secs_f64() * 1e6);
                        n += 1;
                    }
                    (n, lat)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut latencies_us = Vec::new();
    let mut writes = 0;
    for (n, l) in results {
        writes += n;
        latencies_us.extend(l);
    }
    Run {
        writes,
        secs,
        latencies_us,
    }
}

/// `producers` threads each put one 128 B object into a `LogStore` through its write pipeline
/// (`submit_puts`) and wait for `level` before the next, for `secs` seconds.
fn log_store(dir: &std::path::Path, producers: u64, level: Durability, secs: f64) -> Result<Run> {
    let store = LogStore::open(dir).context("open store")?;
    Ok(run_writers(producers, secs, |p, n| {
        let payload = payload(p, n);
        let h = store
            .submit_puts(&[Put::new(&payload, &[])])
            .expect("submit");
        h.wait(level).expect("write reached its level");
    }))
}

/// The same through a generic pipeline on top of the store: a `StoreWriter`, whose flusher is
/// `put_batch` + `flush(Written)` and whose sync is `flush(Durable)`.
fn store_writer(
    dir: &std::path::Path,
    producers: u64,
    level: Durability,
    secs: f64,
) -> Result<Run> {
    let store = Arc::new(LogStore::open(dir).context("open store")?);
    let writer = StoreWriter::new(store, Config::default())?;
    let run = run_writers(producers, secs, |p, n| {
        let h = writer
            .put(vec![Blob {
                children: vec![],
                payload: payload(p, n),
            }])
            .expect("pipeline open");
        h.wait(level).expect("write reached its level");
    });
    writer.shutdown()?;
    Ok(run)
}

/// The baseline: one writer that stores one object and fsyncs, per write.
fn fsync_every_write(dir: &std::path::Path, secs: f64) -> Result<Run> {
    let store = LogStore::open(dir).context("open store")?;
    Ok(run_writers(1, secs, |t, n| {
        let p = payload(t, n);
        store.put(Put::new(&p, &[])).expect("put");
        store.flush(Durability::Durable).expect("durable");
    }))
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Which path a row measures.
#[derive(Clone, Copy)]
enum Path {
    LogStore,
    StoreWriter,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let base = tempfile::Builder::new()
        .prefix("pipeline-bench-")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let mut case = 0;
    let mut next_dir = || {
        case += 1;
        base.path().join(format!("store-{case}"))
    };
    let mut rows = Vec::new();
    let mut row = |what: String, mut r: Run| {
        let rate = r.writes as f64 / r.secs;
        rows.push((
            what,
            rate,
            pct(&mut r.latencies_us, 0.5),
            pct(&mut r.latencies_us, 0.99),
        ));
        rate
    };
    let baseline = fsync_every_write(&next_dir(), args.secs)?;
    let base_rate = row(
        "baseline: put + flush(Durable) per write, 1 writer".to_string(),
        baseline,
    );
    let mut ratios = Vec::new();
    for (path, level, producers) in [
        (Path::LogStore, Durability::Applied, 1),
        (Path::LogStore, Durability::Applied, 2),
        (Path::LogStore, Durability::Written, 1),
        (Path::LogStore, Durability::Written, 2),
        (Path::LogStore, Durability::Durable, 1),
        (Path::LogStore, Durability::Durable, 2),
        (Path::LogStore, Durability::Durable, 16),
        (Path::LogStore, Durability::Durable, 32),
        (Path::LogStore, Durability::Durable, 64),
        (Path::LogStore, Durability::Durable, 128),
        (Path::StoreWriter, Durability::Durable, 64),
    ] {
        let name = match path {
            Path::LogStore => "LogStore submit_puts",
            Path::StoreWriter => "StoreWriter over a LogStore",
        };
        let what = format!("{name}, {producers} producer(s), wait({level:?}) per write");
        if args
            .only
            .as_ref()
            .is_some_and(|only| !what.contains(only.as_str()))
        {
            continue;
        }
        let run = match path {
            Path::LogStore => log_store(&next_dir(), producers, level, args.secs)?,
            Path::StoreWriter => store_writer(&next_dir(), producers, level, args.secs)?,
        };
        let rate = row(what, run);
        if level == Durability::Durable && producers == 64 {
            ratios.push((name, rate / base_rate));
        }
    }
    println!("| 128 B writes | writes/s | latency p50 | latency p99 |");
    println!("|---|---|---|---|");
    for (what, rate, p50, p99) in &rows {
        println!("| {what} | {rate:.0} | {p50:.0} µs | {p99:.0} µs |");
    }
    println!();
    for (name, ratio) in ratios {
        println!(
            "{name}, Durable with 64 concurrent waiters: {ratio:.1}× the fsync-per-write loop (target ≥ 20×)."
        );
    }
    Ok(())
}
