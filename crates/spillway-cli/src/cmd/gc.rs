//! `spillway gc DIR`: delete stored objects that no named root (or persisted graph) reaches.

use std::path::PathBuf;
use std::process::ExitCode;

use spillway::Pool;

use crate::size::human;

/// Arguments of `gc`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory.
    #[arg(value_parser = crate::paths::existing_dir)]
    dir: PathBuf,
}

/// Runs `gc`. Offline, no handle is live, so only roots keep objects.
pub fn run(args: Args) -> spillway::Result<ExitCode> {
    // Never create a store here: a wrong but empty directory is an error, not a new store.
    let store = spillway::LogStore::open_with(
        &args.dir,
        spillway::LogStoreOptions::default().create(false),
    )?;
    let pool = Pool::builder()
        .store(std::sync::Arc::new(store))
        .gc_after(0)
        .build()?;
    let before = pool.store().stats();
    let report = pool.gc()?;
    pool.store().flush(spillway::Durability::Durable)?;
    let after = pool.store().stats();
    println!(
        "kept {} objects reachable from {} roots, deleted {} ({} of live records freed; run `spillway compact` to give the disk space back)",
        report.marked,
        pool.store().roots()?.len(),
        report.deleted,
        human(before.live_bytes.saturating_sub(after.live_bytes))
    );
    Ok(ExitCode::SUCCESS)
}
