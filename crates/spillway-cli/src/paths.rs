//! Paths on the command line: a missing or wrong path is a usage error (exit 2), caught before
//! anything is opened.

use std::path::PathBuf;

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

/// A store on the command line: a directory (a log store or a directory store), a SQLite
/// database file, or a prefix in S3-compatible object storage.
#[derive(Debug, Clone)]
pub enum Location {
    /// A directory without a directory store's marker: a log store (or not a store at all,
    /// which opening it tells).
    Log(PathBuf),
    /// A directory store: a directory holding the `DIRSTORE` marker.
    DirStore(PathBuf),
    /// A SQLite store: a file that begins with SQLite's header.
    Sqlite(PathBuf),
    /// `s3://BUCKET/PREFIX`; the endpoint and credentials come from the `AWS_*` variables.
    S3(String),
    /// A container file (`.spw`): a file that begins with the container magic.
    Container(PathBuf),
}

impl Location {
    /// True for a log store's directory.
    pub fn is_log(&self) -> bool {
        matches!(self, Location::Log(_))
    }

    /// The location as the user gave it, for messages and JSON.
    pub fn name(&self) -> String {
        match self {
            Location::Log(p)
            | Location::DirStore(p)
            | Location::Sqlite(p)
            | Location::Container(p) => p.display().to_string(),
            Location::S3(url) => url.clone(),
        }
    }
}

/// The first bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Parses a store location: `s3://BUCKET/PREFIX`, a SQLite database file, or a directory that
/// must exist (a directory store if it holds the marker, a log store otherwise).
pub fn location(s: &str) -> Result<Location, String> {
    if s.starts_with("s3://") {
        return Ok(Location::S3(s.to_string()));
    }
    let p = PathBuf::from(s);
    match std::fs::metadata(&p) {
        Ok(m) if m.is_dir() => {
            if p.join(spillway::store::dir::MARKER_FILE).exists() {
                Ok(Location::DirStore(p))
            } else {
                Ok(Location::Log(p))
            }
        }
        Ok(_) => {
            let mut f = std::fs::File::open(&p).map_err(|e| format!("{s}: {e}"))?;
            let mut head = [0u8; 16];
            match std::io::Read::read_exact(&mut f, &mut head) {
                Ok(()) if &head == SQLITE_HEADER => Ok(Location::Sqlite(p)),
                Ok(()) if head[..8] == spillway::container::CONTAINER_MAGIC => {
                    Ok(Location::Container(p))
                }
                _ => Err(format!(
                    "{s} is a file but neither a SQLite database nor a container file: give a store directory, a SQLite store's file, a container file or s3://BUCKET/PREFIX"
                )),
            }
        }
        Err(e) => Err(format!("{s}: {e}")),
    }
}
