//! `spillway gc DIR`: delete stored objects that no named root (or persisted graph) reaches.
//!
//! Offline, no handle is live, so only roots keep objects. A root whose graph misses an object
//! (a damaged store) stops the collection before anything is deleted; `--force` goes past it
//! and deletes only what the surviving parts of the graphs do not reach.

use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;
use spillway::{BlobStore, GcOptions, LogStoreOptions, Pool};

use super::{keys_json, note_recovery, open_existing};
use crate::output::Output;
use crate::paths::Location;
use crate::size::human;

/// Arguments of `gc`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store: a directory (a log store or a directory store), a SQLite store's file, or
    /// `s3://BUCKET/PREFIX` (objects younger than the S3 store's grace period, one hour, are
    /// kept: another machine may be uploading them).
    #[arg(value_parser = crate::paths::location, value_name = "DIR|FILE|s3://BUCKET/PREFIX")]
    pub store: Location,
    /// Collect even if a root's graph misses objects (a damaged store): only what the
    /// surviving parts of the graphs do not reach is deleted, which includes whatever only the
    /// missing objects referred to. Run `spillway verify` first.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    pub out: Output,
}

/// Runs `gc`.
pub fn run(args: Args) -> spillway::Result<ExitCode> {
    let out = args.out;
    let (store, name): (Arc<dyn BlobStore>, String) = match &args.store {
        Location::Log(dir) => {
            let store = open_existing(dir, LogStoreOptions::default())?;
            note_recovery(&out, dir, store.recovery());
            (Arc::new(store), dir.display().to_string())
        }
        other => (super::stores::open(other, true)?, other.name()),
    };
    collect(store, &name, &args.store, args.force, &out)
}

/// Collects the garbage of `store`, whatever its kind.
fn collect(
    store: Arc<dyn BlobStore>,
    name: &str,
    loc: &Location,
    force: bool,
    out: &Output,
) -> spillway::Result<ExitCode> {
    let pool = Pool::builder()
        .store(Arc::clone(&store) as Arc<dyn BlobStore>)
        .gc_after(0)
        .build()?;
    let roots = store.roots()?.len();
    let before = store.stats();
    let pb = out.progress("marking and sweeping");
    let report = pool.gc_with(GcOptions::default().force(force));
    pb.finish_and_clear();
    let report = report?;
    store.flush(spillway::Durability::Durable)?;
    let after = store.stats();
    let freed = before.live_bytes.saturating_sub(after.live_bytes);
    if out.json {
        out.print_json(&json!({
            "ok": report.missing == 0,
            "store": name,
            "roots": roots,
            "kept": report.marked,
            "deleted": report.deleted,
            "freed_bytes": freed,
            "forced": force,
            "missing": report.missing,
            "missing_keys": keys_json(&report.missing_keys),
            "damaged_roots": report.damaged_roots,
        }));
    } else {
        if let Location::S3(_) = loc {
            crate::say!(
                "kept {} objects reachable from {} roots, deleted {} (objects younger than the grace period are kept even if unreachable: another machine may be uploading them)",
                report.marked,
                roots,
                report.deleted
            );
        } else if let Location::DirStore(_) | Location::Sqlite(_) = loc {
            crate::say!(
                "kept {} objects reachable from {} roots, deleted {} ({} freed)",
                report.marked,
                roots,
                report.deleted,
                human(freed)
            );
        } else {
            crate::say!(
                "kept {} objects reachable from {} roots, deleted {} ({} of live records freed; run `spillway compact` to give the disk space back)",
                report.marked,
                roots,
                report.deleted,
                human(freed)
            );
        }
        if report.missing > 0 {
            crate::say!(
                "forced past {} missing objects (the graphs of {} had holes); first missing: {}",
                report.missing,
                report.damaged_roots.join(", "),
                report
                    .missing_keys
                    .iter()
                    .take(10)
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    // A forced collection over a damaged store ran, but the store is still damaged.
    Ok(if report.missing > 0 {
        ExitCode::from(crate::exit::DAMAGE)
    } else {
        ExitCode::SUCCESS
    })
}
