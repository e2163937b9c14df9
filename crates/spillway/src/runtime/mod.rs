//! The paging runtime: [`Pool`], [`Paged<T>`] handles and [`Guard`]s.
//!
//! A pool holds values in memory up to a byte budget. Values are immutable and reached through
//! handles; when the budget is exceeded the coldest unpinned values (chosen by the eviction
//! policy of [`memory`](crate::memory)) are stored, bottom-up as a Merkle DAG, and dropped from
//! memory, to come back on their next access.
//!
//! # Eviction: when it runs and what the policy sees
//!
//! - An insert or a page-in that would pass the budget first evicts, in the caller: resident
//!   bytes never pass the budget, unless every resident value is pinned or the store fails a
//!   page-out.
//! - Page-out runs between two watermarks (98 % and 95 % of the budget by default,
//!   [`PoolBuilder::page_out_watermarks`]): once resident bytes pass the start mark, a
//!   background thread pages out down to the stop mark, off the callers' path; a caller that
//!   finds the budget full before the thread got there does that page-out itself, in one batch.
//! - A [deterministic](PoolBuilder::deterministic) pool has no background thread: a caller
//!   evicts exactly the bytes it needs (whole values, so at least that) and no more, so one
//!   sequence of calls always gives the same counts, and the misses of a cache simulator.
//! - The policy is told what a cache simulator would be told for the same requests: a value
//!   that comes into memory (inserted, or paged in by this read) is a miss, an insertion; a read
//!   of a resident value (or one that waited for another caller's page-in) is a use; a value
//!   evicted from S3-FIFO's small queue leaves a ghost under its content key, which every evicted
//!   value has (it was stored to be evicted) and which its page-in presents again. Entry ids
//!   stay the same while any handle lives, so an object is one id to the policy across page-outs.
//!
//! # Parts, in dependency order
//!
//! Each module imports only modules listed before it (`use super::...`), never one after it:
//!
//! | module | holds | imports |
//! |---|---|---|
//! | `value` | [`Pageable`], [`DeepSize`]: what can be paged | – |
//! | `schema` | stored types: the type tag of a value, its check on decode, upgrades | value |
//! | `counter` | `ThreadCounter`: a count bumped on every read, a cache line per thread | – |
//! | `stats` | counters, background errors, [`PoolStats`] | counter |
//! | `hazard` | the hazard slots and fences that let a resident `get` read without the slot's lock | – |
//! | `drop_queue` | iterative dropping of deep graphs; which drops descend from a page-out | – |
//! | `counted` | `Counted`: the counted pointer to an entry, in a cell of its own | – |
//! | `erased` | an entry without its value type (`ErasedEntry`, `ErasedRef`), `Encoded` | counted, hazard |
//! | `threads` | the I/O threads, the background thread's wake-up signal | – |
//! | `loading` | page-ins in progress: what their waiters share, by entry id | erased |
//! | `registry` | live entries by key; entry ids | counted, erased |
//! | `gc` | mark and sweep; [`GcOptions`], [`GcReport`]; what writers protect | registry, stats |
//! | `page_out` | encoding graphs bottom-up, writing batches; the thread's batch (its pool, its entries) | erased, gc, registry, stats |
//! | `residency` | budget, reservation, admission, access log, eviction | counted, erased, hazard, page_out, threads |
//! | `metadata` | the pool's own memory charged to its budget (opt-in) | stats |
//! | `pool_table` | pools by number, for entries to name their pool in two bytes | – |
//! | `shared` | `PoolShared`: the parts put together | counted, erased, gc, loading, metadata, page_out, pool_table, registry, residency, schema, stats, threads |
//! | `entry` | one object's state and lifecycle: insert, page-in, single flight, evict | counted, drop_queue, erased, hazard, loading, page_out, shared, value |
//! | `handle` | [`Paged`], [`Guard`], [`Ref`], [`GetFuture`]; handles' serde | counted, drop_queue, entry, erased, loading, page_out, shared, value |
//! | `build` | [`PoolBuilder`], starting and stopping the threads, the background loop | gc, hazard, loading, metadata, pool_table, registry, residency, schema, shared, stats, threads, value |
//! | `sections` | [`Sections`]: container sections under the budget, spilled when values cannot go | residency, shared |
//! | `pool` | the façade, [`Pool`]: the public API | build, entry, gc, handle, sections, shared, stats, value |
//!
//! Nothing below `entry` knows a value's type: page-out and eviction hold entries as
//! `ErasedEntry`, the registry keeps a table per entry type through the same trait, and typed
//! entries are made only by `entry` (for inserts and for keys, through the registry's
//! `find_or_add`).
//!
//! # Invariants, by the part that keeps them
//!
//! - `entry`: an object's lifecycle (`Resident` → `Evicted` → `Loading` → `Resident`), pins,
//!   single flight, and the bytes an entry is charged.
//! - `hazard`: a slot is written only while its entry is not settled, and a value is taken
//!   from its slot only after a barrier that followed the entry's withdrawal and a look at the
//!   hazard slots that found none naming it; so a `get` that counts a value without the lock
//!   never counts one being taken.
//! - `loading`: a load is in the table exactly while its entry is `Loading`.
//! - `residency`: resident bytes within the budget, every resident entry tracked, when a
//!   reservation may pass the hard limit.
//! - `metadata`: what is charged for metadata is in the budget's count, and never more than
//!   three quarters of it.
//! - `registry`: one entry handed out per key, every live entry counted.
//! - `page_out`: children stored before parents; entries registered in the critical section
//!   that writes them; values that cannot be stored stay resident; a pool stores only its own
//!   handles.
//! - `gc`: nothing in use is swept; a damaged graph stops the collection.
//! - `schema`: a stored value is decoded only as the type its tag names, at the version it
//!   names, or through an upgrade registered for that version; the registrations are fixed
//!   when the pool is built.
//!
//! Lock order across the parts: the collector's `lock` → its `state` → a registry shard; a
//! load's wait lock → its entry's slot lock → a shard of the loads table; the residents lock →
//! an entry's slot lock (through the policy's questions); the residents lock → the access log;
//! the metadata update's lock → each of a registry shard, the residents lock, the loads table,
//! the fixed-size table and the store's index, one at a time.
//! No count of an entry (`Counted`) is dropped under the residents lock, a registry shard lock or the
//! fixed-size table's lock (dropping the last one takes them), and values are dropped outside
//! every lock.

mod build;
mod counted;
mod counter;
mod drop_queue;
mod entry;
mod erased;
mod gc;
mod handle;
mod hazard;
mod loading;
mod metadata;
mod page_out;
mod pool;
mod pool_table;
mod registry;
mod residency;
mod schema;
mod sections;
mod shared;
mod stats;
mod threads;
mod value;

pub use build::PoolBuilder;
pub use gc::{GcOptions, GcReport, MAX_MISSING_LISTED};
pub use handle::{GetFuture, Guard, Paged, Ref};
pub use pool::Pool;
pub use sections::{Priority, SectionOptions, SectionStats, Sections, Tier};
pub(crate) use shared::PoolShared;
pub use stats::PoolStats;
pub use value::{DeepSize, Pageable, encode_into};

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Every module of the runtime but this one, with its source.
    const SOURCES: &[(&str, &str)] = &[
        ("build", include_str!("build.rs")),
        ("counted", include_str!("counted.rs")),
        ("counter", include_str!("counter.rs")),
        ("drop_queue", include_str!("drop_queue.rs")),
        ("entry", include_str!("entry.rs")),
        ("erased", include_str!("erased.rs")),
        ("gc", include_str!("gc.rs")),
        ("handle", include_str!("handle.rs")),
        ("hazard", include_str!("hazard.rs")),
        ("loading", include_str!("loading.rs")),
        ("metadata", include_str!("metadata.rs")),
        ("page_out", include_str!("page_out.rs")),
        ("pool", include_str!("pool.rs")),
        ("pool_table", include_str!("pool_table.rs")),
        ("registry", include_str!("registry.rs")),
        ("residency", include_str!("residency.rs")),
        ("schema", include_str!("schema.rs")),
        ("sections", include_str!("sections.rs")),
        ("shared", include_str!("shared.rs")),
        ("stats", include_str!("stats.rs")),
        ("threads", include_str!("threads.rs")),
        ("value", include_str!("value.rs")),
    ];

    /// The rows of the table in this module's doc: a module and the modules it imports.
    fn table() -> Vec<(String, BTreeSet<String>)> {
        include_str!("mod.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `"))
            .map(|row| {
                let module = row.split('`').next().unwrap_or_default().to_string();
                let imports = row.trim_end_matches(" |").rsplit(" | ").next();
                let imports = imports
                    .unwrap_or_default()
                    .split(", ")
                    .filter(|m| *m != "–")
                    .map(str::to_string)
                    .collect();
                (module, imports)
            })
            .collect()
    }

    /// The sibling modules that `source` names in code (doc comments and comments left out).
    fn imports(source: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for line in source.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("super::") {
                let name: String = line[i + "super::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
        out
    }

    #[test]
    fn modules_import_what_the_table_says_and_only_modules_before_them() {
        let table = table();
        let listed: Vec<&str> = table.iter().map(|(m, _)| m.as_str()).collect();
        let mut sources: Vec<&str> = SOURCES.iter().map(|(m, _)| *m).collect();
        let mut in_table = listed.clone();
        sources.sort_unstable();
        in_table.sort_unstable();
        assert_eq!(in_table, sources, "the table lists every module once");
        for (i, (module, said)) in table.iter().enumerate() {
            let source = SOURCES
                .iter()
                .find(|(m, _)| m == module)
                .map(|(_, s)| *s)
                .unwrap_or_default();
            assert_eq!(&imports(source), said, "imports of `{module}`");
            for m in said {
                assert!(
                    listed[..i].contains(&m.as_str()),
                    "`{module}` imports `{m}`, which is not listed before it"
                );
            }
        }
    }
}
