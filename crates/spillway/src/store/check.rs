//! Checking a whole store without changing it: every object read back and checked against its
//! key, every child and every named root's graph present. The stores' own `check` methods add
//! what only they can see (SQLite's integrity check, a directory's foreign files).

use std::collections::HashSet;

use super::BlobStore;
use crate::error::{Result, count};
use crate::key::{BuildKeyHasher, ContentKey};

/// The most problems listed one by one; the counts are always whole.
pub const MAX_PROBLEMS: usize = 100;

/// What a store's `check` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// Objects read.
    pub objects: u64,
    /// Payload bytes read.
    pub bytes: u64,
    /// Every problem found (up to [`MAX_PROBLEMS`]), one sentence each naming the object or file.
    /// The store is damaged if and only if `problem_count` is not zero.
    pub problems: Vec<String>,
    /// How many problems there are in all.
    pub problem_count: u64,
    /// Remarks that are not damage (a file the store did not create, a leftover of a crash).
    pub notes: Vec<String>,
}

impl CheckReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problem_count == 0
    }

    /// Records a problem.
    pub fn problem(&mut self, text: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(text);
        }
    }
}

/// Checks any store as [`check_objects`] does: for stores without files of their own to check
/// (an S3 prefix, say). The log, directory and SQLite stores have `check`/`verify` of their own,
/// which add what only they can see.
pub fn check(store: &dyn BlobStore) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    check_objects(store, &mut report)?;
    Ok(report)
}

/// Reads every object of `store` (its key recomputed from its payload and children), checks
/// that every child is stored and that every named root's graph is whole.
pub fn check_objects(store: &dyn BlobStore, report: &mut CheckReport) -> Result<()> {
    let keys = store.keys()?;
    let stored: HashSet<ContentKey, BuildKeyHasher> = keys.iter().copied().collect();
    let mut dangling = 0u64;
    for k in &keys {
        match store.get(k) {
            Ok(Some(blob)) => {
                report.objects += 1;
                report.bytes += blob.payload.len() as u64;
                if !k.is_reserved() && blob.key() != *k {
                    report.problem(format!("object {k} holds data whose key is {}", blob.key()));
                }
                if blob.children.iter().any(|c| !stored.contains(c)) {
                    dangling += 1;
                }
            }
            Ok(None) => {}
            Err(e) => report.problem(format!("object {k}: {e}")),
        }
    }
    if dangling > 0 {
        report.problem(format!(
            "{} refer to children that are not stored",
            count(dangling, "object")
        ));
    }
    for (name, root) in store.roots()? {
        let mut seen: HashSet<ContentKey, BuildKeyHasher> = HashSet::default();
        let mut todo = vec![root];
        let mut missing = 0u64;
        while let Some(k) = todo.pop() {
            if !seen.insert(k) {
                continue;
            }
            match store.children(&k) {
                Ok(Some(children)) => todo.extend(children),
                Ok(None) => missing += 1,
                // Reported with the object above.
                Err(_) => {}
            }
        }
        if missing > 0 {
            report.problem(format!(
                "root {name:?} ({root}): its graph misses {}",
                count(missing, "object")
            ));
        }
    }
    Ok(())
}
