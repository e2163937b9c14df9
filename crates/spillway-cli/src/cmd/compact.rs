//! `spillway compact DIR`: rewrite mostly-dead segments.

use std::path::PathBuf;
use std::process::ExitCode;

use spillway::{LogStore, LogStoreOptions};

use crate::size::human;

/// Arguments of `compact`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory.
    #[arg(value_parser = crate::paths::existing_dir)]
    dir: PathBuf,
    /// Rewrite segments whose live share is below this fraction.
    #[arg(long, default_value_t = 0.5, value_parser = parse_fraction)]
    below: f64,
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{s:?} is not a fraction between 0 and 1")),
    }
}

/// Runs `compact`.
pub fn run(args: Args) -> spillway::Result<ExitCode> {
    let store = LogStore::open_with(
        &args.dir,
        LogStoreOptions::default()
            .create(false)
            .compact_below(args.below),
    )?;
    let r = store.compact()?;
    store.close()?;
    println!(
        "removed {} segments, copied {} records and {} tombstones, reclaimed {}",
        r.segments_removed,
        r.records_copied,
        r.tombstones_copied,
        human(r.bytes_reclaimed)
    );
    Ok(ExitCode::SUCCESS)
}
