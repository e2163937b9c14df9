//! [`DirStore::check`]: the whole store read back, without changing it.

use super::DirStore;
use crate::error::Result;
use crate::store::check::{CheckReport, check_objects};

impl DirStore {
    /// Reads every object back and checks it against its key, checks that every child and
    /// every named root's graph is stored, and that every kept graph has all its files.
    /// Entries the store did not create, and leftovers of a crash (when opened read-only),
    /// are noted, not counted as damage. Changes nothing.
    pub fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        for u in &self.report.unknown {
            report.notes.push(format!(
                "{}: not created by the store; left alone",
                u.display()
            ));
        }
        for r in &self.report.removed {
            let done = if self.read_only {
                "left by a crash"
            } else {
                "removed on open"
            };
            report
                .notes
                .push(format!("{}: a temporary file {done}", r.display()));
        }
        check_objects(self, &mut report)?;
        for kept in self.kept()? {
            let manifest = self.manifest(&kept.name)?;
            let dir = self.kept_dir(&kept.name);
            for k in &manifest.keys {
                let path = dir.join(k.to_string());
                if let Err(e) = self.check_kept_file(&path, k) {
                    report.problem(format!("kept graph {:?}: {e}", kept.name));
                }
            }
        }
        Ok(report)
    }
}
