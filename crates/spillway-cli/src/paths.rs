//! Paths on the command line: a missing or wrong path is a usage error (exit 2), caught before
//! anything is opened.

use std::path::PathBuf;

/// A directory that must exist already (a store to inspect, verify, compact or collect).
pub fn existing_dir(s: &str) -> Result<PathBuf, String> {
    if s.starts_with("s3://") {
        return Err(format!(
            "{s}: this command works on a store directory (an S3 store has no log files)"
        ));
    }
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

/// A store on the command line: a directory, or a prefix in S3-compatible object storage.
#[derive(Debug, Clone)]
pub enum Location {
    /// A store directory that exists.
    Dir(PathBuf),
    /// `s3://BUCKET/PREFIX`; the endpoint and credentials come from the `AWS_*` variables.
    S3(String),
}

/// Parses a store location: `s3://BUCKET/PREFIX`, or a directory that must exist.
pub fn location(s: &str) -> Result<Location, String> {
    if s.starts_with("s3://") {
        Ok(Location::S3(s.to_string()))
    } else {
        existing_dir(s).map(Location::Dir)
    }
}
