//! One module per subcommand, and what the maintenance commands share: opening a store that
//! must exist, and telling what recovery did.

use std::path::Path;

use serde_json::{Value, json};
use spillway::store::log::{DamagedRange, MissingData, RecoveryReport, TornTail};
use spillway::{LogStore, LogStoreOptions};

use crate::output::Output;

pub mod compact;
pub mod container;
pub mod demo;
pub mod gc;
pub mod inspect;
pub mod pack;
pub mod stores;
pub mod verify;

/// Opens the store in `dir`, which must exist: maintenance never creates a store (an empty
/// or foreign directory is "not a store", exit 2).
pub fn open_existing(dir: &Path, opts: LogStoreOptions) -> spillway::Result<LogStore> {
    LogStore::open_with(dir, opts.create(false))
}

/// Tells on standard error what recovery changed when a maintenance command opened the store
/// for writing (a torn tail it cut).
pub fn note_recovery(out: &Output, dir: &Path, r: &RecoveryReport) {
    if let Some(t) = &r.torn_tail {
        out.note(&format!(
            "opening {} cut a torn write at the end of {} (offset {}, {} bytes: {}): a crash during a write that was never acknowledged as durable",
            dir.display(),
            segment_file(dir, t.segment),
            t.offset,
            t.bytes_cut,
            t.reason
        ));
    }
}

/// A segment's file, for messages and JSON.
pub fn segment_file(dir: &Path, id: u64) -> String {
    dir.join(spillway::store::log::segment_file_name(id))
        .display()
        .to_string()
}

pub fn torn_json(dir: &Path, t: &Option<TornTail>) -> Value {
    match t {
        Some(t) => json!({
            "segment": t.segment,
            "file": segment_file(dir, t.segment),
            "offset": t.offset,
            "bytes": t.bytes_cut,
            "reason": t.reason,
        }),
        None => Value::Null,
    }
}

pub fn damaged_json(dir: &Path, d: &[DamagedRange]) -> Value {
    d.iter()
        .map(|d| {
            json!({
                "segment": d.segment,
                "file": segment_file(dir, d.segment),
                "start": d.start,
                "end": d.end,
                "reason": d.reason,
            })
        })
        .collect()
}

pub fn missing_json(dir: &Path, m: &[MissingData]) -> Value {
    m.iter()
        .map(|m| {
            json!({
                "segment": m.segment,
                "file": segment_file(dir, m.segment),
                "objects": m.objects,
                "detail": m.detail,
            })
        })
        .collect()
}

pub fn keys_json(keys: &[spillway::ContentKey]) -> Value {
    keys.iter().map(|k| Value::String(k.to_string())).collect()
}
