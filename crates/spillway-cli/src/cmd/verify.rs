//! `spillway verify DIR [--repair]`: check everything; with `--repair`, first salvage what a
//! checksum still vouches for, then check again.

use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};
use spillway::LogStoreOptions;
use spillway::store::check::CheckReport;
use spillway::store::log::{RecoveryReport, VerifyReport, verify};

use super::{damaged_json, keys_json, missing_json, open_existing, segment_file, torn_json};
use crate::output::Output;
use crate::paths::Location;
use crate::size::human;

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store: a directory (a log store or a directory store), a SQLite store's file, or
    /// `s3://BUCKET/PREFIX`. Every object is read back and checked against its key, and every
    /// root's graph must be whole.
    #[arg(value_parser = crate::paths::location, value_name = "DIR|FILE|s3://BUCKET/PREFIX")]
    pub store: Location,
    /// Repair a log store first: cut a torn tail; copy every record a checksum still vouches for out of
    /// damaged segments, then remove them; write a new index checkpoint (and a damaged STORE
    /// marker). Lists every key and byte range it drops. Takes the store's write lock.
    #[arg(long)]
    repair: bool,
    #[command(flatten)]
    pub out: Output,
}

/// Runs `verify`; exits 1 if anything is wrong (after the repair, with `--repair`).
pub fn run(args: Args) -> spillway::Result<ExitCode> {
    let out = args.out;
    let dir = match &args.store {
        Location::Log(dir) => dir,
        Location::Container(path) if !args.repair => {
            return super::container::verify(path, &out);
        }
        other => {
            if args.repair {
                return Err(super::stores::log_only(other, "--repair"));
            }
            let pb = out.progress("verifying");
            let report = super::stores::check(other);
            pb.finish_and_clear();
            return Ok(show_check(&out, &other.name(), &report?));
        }
    };
    let repaired = if args.repair {
        let pb = out.progress("repairing");
        let store = open_existing(dir, LogStoreOptions::default().repair(true));
        pb.finish_and_clear();
        let store = store?;
        let r = store.recovery().clone();
        store.close()?;
        Some(r)
    } else {
        None
    };
    let pb = out.progress("verifying");
    let report = verify(dir);
    pb.finish_and_clear();
    let report = report?;
    Ok(show(&out, dir, repaired.as_ref(), &report))
}

/// Prints the report (and the repair's) and returns the exit code.
fn show(
    out: &Output,
    dir: &Path,
    repaired: Option<&RecoveryReport>,
    report: &VerifyReport,
) -> ExitCode {
    if out.json {
        out.print_json(&json!({
            "ok": report.is_clean(),
            "store": dir.display().to_string(),
            "repair": repaired.map(|r| repair_json(dir, r)),
            "verify": verify_json(dir, report),
        }));
    } else {
        if let Some(r) = repaired {
            print_repair(dir, r);
            if !report.is_clean() {
                crate::say!(
                    "the repair kept everything a checksum vouches for; what it cannot restore follows"
                );
            }
        }
        print_verify(report);
    }
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::DAMAGE)
    }
}

/// Prints the check of a store that has no log (S3, a directory store, a SQLite file) and
/// returns the exit code.
pub fn show_check(out: &Output, store: &str, r: &CheckReport) -> ExitCode {
    if out.json {
        out.print_json(&json!({
            "ok": r.is_clean(),
            "store": store,
            "objects": r.objects,
            "bytes": r.bytes,
            "problems": r.problems,
            "problem_count": r.problem_count,
            "notes": r.notes,
        }));
    } else {
        crate::say!("{} objects, {}", r.objects, human(r.bytes));
        for n in &r.notes {
            crate::say!("note: {n}");
        }
        for p in &r.problems {
            crate::say!("problem: {p}");
        }
        if r.problem_count > r.problems.len() as u64 {
            crate::say!(
                "… and {} more problems",
                r.problem_count - r.problems.len() as u64
            );
        }
        if r.is_clean() {
            crate::say!("ok");
        } else {
            crate::say!("DAMAGED: {} problems (see above)", r.problem_count);
        }
    }
    if r.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::DAMAGE)
    }
}

fn print_repair(dir: &Path, r: &RecoveryReport) {
    crate::say!("repair of {}:", dir.display());
    let mut did = false;
    if r.marker_rewritten {
        crate::say!("  wrote the damaged STORE marker again");
        did = true;
    }
    if let Some(why) = &r.sync_damaged {
        crate::say!("  wrote the damaged SYNC record again: {why}");
        did = true;
    }
    if let Some(t) = &r.torn_tail {
        crate::say!(
            "  cut {} at offset {}: {} bytes removed ({})",
            segment_file(dir, t.segment),
            t.offset,
            t.bytes_cut,
            t.reason
        );
        did = true;
    }
    for d in &r.damaged {
        crate::say!(
            "  dropped {} bytes {}..{} ({} bytes): {}",
            segment_file(dir, d.segment),
            d.start,
            d.end,
            d.end - d.start,
            d.reason
        );
    }
    if let Some(s) = &r.salvage {
        for id in &s.segments {
            crate::say!(
                "  salvaged {}: its verified records copied to the end of the log, then the file removed",
                segment_file(dir, *id)
            );
        }
        crate::say!(
            "  copied {} records and {} tombstones; dropped {}",
            s.records_copied,
            s.tombstones_copied,
            human(s.bytes_dropped)
        );
        did = true;
    }
    for m in &r.missing {
        crate::say!(
            "  lost {}: {} ({})",
            segment_file(dir, m.segment),
            m.detail,
            spillway::error::count(m.objects, "object")
        );
        did = true;
    }
    if !r.lost_keys.is_empty() {
        crate::say!(
            "  lost {} that the old index checkpoint listed:",
            spillway::error::count(r.lost_keys.len() as u64, "object")
        );
        for k in &r.lost_keys {
            crate::say!("    {k}");
        }
    }
    if !did {
        crate::say!("  no damage in the log");
    }
    crate::say!("  wrote a new index checkpoint");
}

fn print_verify(r: &VerifyReport) {
    crate::say!(
        "{} segments, {} records ({} puts, {} tombstones), {}, {} live objects, {} roots",
        r.segments,
        r.records,
        r.puts,
        r.tombstones,
        human(r.bytes),
        r.live_objects,
        r.roots.len()
    );
    for n in &r.notes {
        crate::say!("note: {n}");
    }
    for p in &r.problems {
        crate::say!("problem: {p}");
    }
    if r.is_clean() {
        crate::say!("ok");
    } else {
        let dangling: Vec<&str> = r
            .roots
            .iter()
            .filter(|c| !c.is_whole())
            .map(|c| c.name.as_str())
            .collect();
        if !dangling.is_empty() {
            crate::say!("roots that dangle: {}", dangling.join(", "));
        }
        crate::say!("DAMAGED: {} problems (see above)", r.problems.len());
    }
}

fn repair_json(dir: &Path, r: &RecoveryReport) -> Value {
    let salvage = r.salvage.as_ref().map(|s| {
        json!({
            "segments": s.segments.iter().map(|&id| json!({"segment": id, "file": segment_file(dir, id)})).collect::<Vec<_>>(),
            "records_copied": s.records_copied,
            "tombstones_copied": s.tombstones_copied,
            "bytes_dropped": s.bytes_dropped,
        })
    });
    json!({
        "marker_rewritten": r.marker_rewritten,
        "sync_rewritten": r.sync_damaged,
        "torn_tail_cut": torn_json(dir, &r.torn_tail),
        "damaged": damaged_json(dir, &r.damaged),
        "salvage": salvage,
        "missing": missing_json(dir, &r.missing),
        "lost_keys": keys_json(&r.lost_keys),
    })
}

fn verify_json(dir: &Path, r: &VerifyReport) -> Value {
    json!({
        "segments": r.segments,
        "records": r.records,
        "puts": r.puts,
        "tombstones": r.tombstones,
        "bytes": r.bytes,
        "live_objects": r.live_objects,
        "problems": r.problems,
        "notes": r.notes,
        "damaged": damaged_json(dir, &r.damaged),
        "missing": missing_json(dir, &r.missing),
        "lost_keys": keys_json(&r.lost_keys),
        "torn_tail": torn_json(dir, &r.torn_tail),
        "roots": r.roots.iter().map(|c| json!({
            "name": c.name,
            "key": c.key.to_string(),
            "whole": c.is_whole(),
            "objects": c.objects,
            "missing_count": c.missing_count,
            "missing": keys_json(&c.missing),
        })).collect::<Vec<_>>(),
        "dangling_children": r.dangling_children,
    })
}
