//! Paths on the command line: a missing or wrong path is a usage error (exit 2), caught before
//! anything is opened.

use std::path::PathBuf;

/// A directory that must exist already (a store to inspect, verify, compact or collect).
pub fn existing_dir(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    match std::fs::metadata(&p) {
        Ok(m) if m.is_dir() => Ok(p),
        Ok(_) => Err(format!("{s} is a file, not a store directory")),
        Err(e) => Err(format!("{s}: {e}")),
    }
}

/// A directory for a new or existing store: its parent must exist.
pub fn store_dir(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if p.is_file() {
        return Err(format!("{s} is a file, not a store directory"));
    }
    match p.parent() {
        Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => Err(format!(
            "{s}: its parent directory {} does not exist",
            parent.display()
        )),
        _ => Ok(p),
    }
}
