//! `spillway inspect DIR`: what a store holds, read-only.
//!
//! A store that a normal open refuses as damaged is opened again in read-only repair mode, so
//! that what is left can still be shown; the exit code is then 1.

use std::process::ExitCode;

use serde_json::json;
use spillway::{BlobStore, LogStore, LogStoreOptions};

use super::{damaged_json, keys_json, missing_json, segment_file, torn_json};
use crate::output::Output;
use crate::paths::Location;
use crate::size::human;

/// Arguments of `inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store: a directory (a log store or a directory store), a SQLite store's file, or
    /// `s3://BUCKET/PREFIX`.
    #[arg(value_parser = crate::paths::location, value_name = "DIR|FILE|s3://BUCKET/PREFIX")]
    pub store: Location,
    #[command(flatten)]
    pub out: Output,
}

/// Runs `inspect`.
pub fn run(args: Args) -> spillway::Result<ExitCode> {
    let out = args.out;
    let dir = match &args.store {
        Location::Log(dir) => dir,
        Location::Container(path) => return super::container::inspect(path, &out),
        other => return super::stores::inspect(other, &out),
    };
    let opts = LogStoreOptions::default().read_only(true).create(false);
    let (store, refused) = match LogStore::open_with(dir, opts.clone()) {
        Ok(s) => (s, None),
        Err(e) if e.is_corruption() => {
            let pb = out.progress("reading the damaged store");
            let s = LogStore::open_with(dir, opts.repair(true));
            pb.finish_and_clear();
            (s?, Some(e.to_string()))
        }
        Err(e) => return Err(e),
    };
    let s = store.stats();
    let r = store.recovery();
    let roots = store.roots();
    let live_share = if s.disk_bytes == 0 {
        1.0
    } else {
        s.live_bytes as f64 / s.disk_bytes as f64
    };
    let damaged =
        refused.is_some() || r.found_damage() || roots.is_err() || r.checkpoint_problem.is_some();
    let checkpoint = match (&r.checkpoint_problem, r.checkpoint_used) {
        (Some(p), _) => ("unusable", Some(p.clone())),
        (None, true) => ("used", None),
        (None, false) if refused.is_some() => ("not used (damaged store)", None),
        (None, false) => ("none", None),
    };
    if out.json {
        let roots_json = match &roots {
            Ok(list) => json!(
                list.iter()
                    .map(|(n, k)| json!({"name": n, "key": k.to_string()}))
                    .collect::<Vec<_>>()
            ),
            Err(_) => serde_json::Value::Null,
        };
        out.print_json(&json!({
            "ok": !damaged,
            "store": dir.display().to_string(),
            "format_version": store.format_version(),
            "pool_refuses": store.untagged_values().map(|e| e.to_string()),
            "objects": s.objects,
            "live_bytes": s.live_bytes,
            "disk_bytes": s.disk_bytes,
            "segments": s.segments,
            "live_share": live_share,
            "checkpoint": {"state": checkpoint.0, "problem": checkpoint.1},
            "scan": {"records": r.records_replayed, "bytes": r.bytes_scanned},
            "roots": roots_json,
            "roots_problem": roots.as_ref().err().map(|e| e.to_string()),
            "torn_tail": torn_json(dir, &r.torn_tail),
            "refused": refused,
            "damaged": damaged_json(dir, &r.damaged),
            "missing": missing_json(dir, &r.missing),
            "lost_keys": keys_json(&r.lost_keys),
        }));
        return Ok(exit(damaged));
    }
    crate::say!("store       {}", dir.display());
    match store.untagged_values() {
        None => crate::say!("format      version {}", store.format_version()),
        Some(_) => crate::say!(
            "format      version {}: values without type tags, which a pool refuses",
            store.format_version()
        ),
    }
    crate::say!("objects     {}", s.objects);
    crate::say!(
        "live bytes  {} ({} bytes)",
        human(s.live_bytes),
        s.live_bytes
    );
    crate::say!(
        "disk bytes  {} ({} bytes)",
        human(s.disk_bytes),
        s.disk_bytes
    );
    crate::say!("segments    {}", s.segments);
    crate::say!("live share  {:.1}%", 100.0 * live_share);
    match &checkpoint.1 {
        Some(p) => crate::say!("checkpoint  {}: {p}", checkpoint.0),
        None => crate::say!("checkpoint  {}", checkpoint.0),
    }
    crate::say!(
        "scan        {} records, {}",
        r.records_replayed,
        human(r.bytes_scanned)
    );
    match &roots {
        Ok(roots) => {
            crate::say!("roots       {}", roots.len());
            for (name, key) in roots.iter().take(20) {
                crate::say!("  {key}  {name}");
            }
            if roots.len() > 20 {
                crate::say!("  ... and {} more", roots.len() - 20);
            }
        }
        Err(e) => crate::say!("roots       unreadable: {e}"),
    }
    if let Some(t) = &r.torn_tail {
        crate::say!(
            "torn tail   {} offset {}: {} bytes after it would be cut when opened for writing ({})",
            segment_file(dir, t.segment),
            t.offset,
            t.bytes_cut,
            t.reason
        );
    }
    if let Some(e) = &refused {
        crate::say!("DAMAGED     a normal open refuses the store: {e}");
        for d in &r.damaged {
            crate::say!(
                "  {} offset {}..{}: {}",
                segment_file(dir, d.segment),
                d.start,
                d.end,
                d.reason
            );
        }
        for m in &r.missing {
            crate::say!("  {}: {}", segment_file(dir, m.segment), m.detail);
        }
        if !r.lost_keys.is_empty() {
            crate::say!("  {} objects lost", r.lost_keys.len());
        }
        crate::say!(
            "  run `spillway verify {}` for the whole report",
            dir.display()
        );
    }
    Ok(exit(damaged))
}

fn exit(damaged: bool) -> ExitCode {
    if damaged {
        ExitCode::from(crate::exit::DAMAGE)
    } else {
        ExitCode::SUCCESS
    }
}
