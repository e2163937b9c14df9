//! `spillway compact DIR`: rewrite mostly-dead segments and give their space back.

use std::process::ExitCode;

use serde_json::json;
use spillway::{BlobStore, LogStoreOptions};

use super::{note_recovery, open_existing};
use crate::output::Output;
use crate::paths::Location;
use crate::size::human;

/// Arguments of `compact`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log store's directory.
    #[arg(value_parser = crate::paths::location, value_name = "DIR")]
    pub store: Location,
    /// Rewrite sealed segments whose live share (of the bytes their records take) is below
    /// this fraction; 1 rewrites every segment with any dead record.
    #[arg(long, default_value_t = 0.5, value_parser = parse_fraction)]
    below: f64,
    #[command(flatten)]
    pub out: Output,
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{s:?} is not a fraction between 0 and 1")),
    }
}

/// Runs `compact`.
pub fn run(args: Args) -> spillway::Result<ExitCode> {
    let out = args.out;
    let dir = match &args.store {
        Location::Log(dir) => dir,
        other => return Err(super::stores::log_only(other, "compact")),
    };
    let store = open_existing(dir, LogStoreOptions::default().compact_below(args.below))?;
    note_recovery(&out, dir, store.recovery());
    let before = store.stats().disk_bytes;
    let pb = out.progress("compacting");
    let r = store.compact();
    pb.finish_and_clear();
    let r = r?;
    let after = store.stats().disk_bytes;
    store.close()?;
    if out.json {
        out.print_json(&json!({
            "ok": true,
            "store": dir.display().to_string(),
            "segments_removed": r.segments_removed,
            "records_copied": r.records_copied,
            "tombstones_copied": r.tombstones_copied,
            "bytes_removed": r.bytes_removed,
            "bytes_copied": r.bytes_copied,
            "bytes_reclaimed": r.bytes_reclaimed,
            "disk_bytes_before": before,
            "disk_bytes_after": after,
        }));
    } else if r.segments_removed == 0 {
        crate::say!(
            "nothing to compact: no sealed segment is less than {:.0}% live ({} on disk)",
            100.0 * args.below,
            human(after)
        );
    } else {
        crate::say!(
            "removed {} segments ({}), copied {} records and {} tombstones ({}) forward: reclaimed {}; {} on disk now",
            r.segments_removed,
            human(r.bytes_removed),
            r.records_copied,
            r.tombstones_copied,
            human(r.bytes_copied),
            human(r.bytes_reclaimed),
            human(after)
        );
    }
    Ok(ExitCode::SUCCESS)
}
