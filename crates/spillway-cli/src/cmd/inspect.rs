//! `spillway inspect DIR`: what a store holds, read-only.

use std::path::PathBuf;
use std::process::ExitCode;

use spillway::{BlobStore, LogStore, LogStoreOptions};

use crate::size::human;

/// Arguments of `inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory.
    #[arg(value_parser = crate::paths::existing_dir)]
    dir: PathBuf,
}

/// Runs `inspect`.
pub fn run(args: Args) -> spillway::Result<ExitCode> {
    let store = LogStore::open_with(&args.dir, LogStoreOptions::default().read_only(true))?;
    let s = store.stats();
    let r = store.recovery();
    println!("store       {}", args.dir.display());
    println!("objects     {}", s.objects);
    println!(
        "live bytes  {} ({} bytes)",
        human(s.live_bytes),
        s.live_bytes
    );
    println!(
        "disk bytes  {} ({} bytes)",
        human(s.disk_bytes),
        s.disk_bytes
    );
    println!("segments    {}", s.segments);
    let live = if s.disk_bytes == 0 {
        100.0
    } else {
        100.0 * s.live_bytes as f64 / s.disk_bytes as f64
    };
    println!("live share  {live:.1}%");
    println!(
        "checkpoint  {}",
        match (&r.checkpoint_problem, r.checkpoint_used) {
            (Some(p), _) => format!("unusable: {p}"),
            (None, true) => "used".to_string(),
            (None, false) => "none".to_string(),
        }
    );
    println!(
        "tail scan   {} records, {}",
        r.records_replayed,
        human(r.bytes_scanned)
    );
    let roots = store.roots()?;
    println!("roots       {}", roots.len());
    for (name, key) in roots.iter().take(20) {
        println!("  {key}  {name}");
    }
    if roots.len() > 20 {
        println!("  ... and {} more", roots.len() - 20);
    }
    if let Some(t) = &r.torn_tail {
        println!(
            "torn tail   segment {} offset {}: {} bytes after it would be cut when opened for writing ({})",
            t.segment, t.offset, t.bytes_cut, t.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}
