//! The maintenance commands on the stores that are not a log store: a directory store, a SQLite
//! store's file, and an S3 prefix (`s3://BUCKET/PREFIX`, with the endpoint and credentials of
//! the `AWS_*` environment variables). A build without the `sqlite` or `s3` feature says so.
//!
//! These stores have no log to repair or compact: `verify` runs the store's own check (every
//! object read back against its key, every child and root graph present, plus what only that
//! store can see), `inspect` lists objects and roots, `gc` collects through a pool as it does
//! on a log store.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;
use spillway::BlobStore;
use spillway::store::CheckReport;

use crate::output::Output;
use crate::paths::Location;
use crate::size::human;

/// What kind of store `loc` is, for messages.
pub fn kind(loc: &Location) -> &'static str {
    match loc {
        Location::Log(_) => "log store",
        Location::DirStore(_) => "directory store",
        Location::Sqlite(_) => "SQLite store",
        Location::S3(_) => "S3 store",
        Location::Container(_) => "container file",
    }
}

/// The usage error of a log-only operation (`what`) asked of another kind of store.
pub fn log_only(loc: &Location, what: &str) -> spillway::Error {
    spillway::Error::InvalidArgument(format!(
        "{}: {what} works on a log store directory; {} {} has no log to {}",
        loc.name(),
        if matches!(loc, Location::S3(_)) {
            "an"
        } else {
            "a"
        },
        kind(loc),
        if what.contains("repair") {
            "repair (its open recovers what a crash left)"
        } else {
            "compact (what gc deletes gives its space back, or leaves it for reuse)"
        }
    ))
}

/// Opens the store at `loc`, which must exist, for writing or read-only. A log store is the
/// caller's: it has options of its own.
pub fn open(loc: &Location, write: bool) -> spillway::Result<Arc<dyn BlobStore>> {
    match loc {
        Location::Log(dir) => Ok(Arc::new(super::open_existing(
            dir,
            spillway::LogStoreOptions::default().read_only(!write),
        )?)),
        Location::DirStore(dir) => Ok(Arc::new(open_dir(dir, write)?)),
        Location::Sqlite(path) => open_sqlite(path, write),
        Location::S3(url) => open_s3(url),
        Location::Container(path) => Err(spillway::Error::InvalidArgument(format!(
            "{} is a container file, not a store: inspect and verify read it",
            path.display()
        ))),
    }
}

fn open_dir(dir: &Path, write: bool) -> spillway::Result<spillway::DirStore> {
    spillway::DirStore::open_with(
        dir,
        spillway::store::DirStoreOptions::default()
            .read_only(!write)
            .create(false),
    )
}

#[cfg(feature = "sqlite")]
fn sqlite(path: &Path, write: bool) -> spillway::Result<spillway::SqliteStore> {
    spillway::SqliteStore::open_with(
        path,
        spillway::store::SqliteStoreOptions::default()
            .read_only(!write)
            .create(false),
    )
}

#[cfg(feature = "sqlite")]
fn open_sqlite(path: &Path, write: bool) -> spillway::Result<Arc<dyn BlobStore>> {
    Ok(Arc::new(sqlite(path, write)?))
}

/// Without the `sqlite` feature: a usage error that says how to get it.
#[cfg(not(feature = "sqlite"))]
fn open_sqlite(path: &Path, _write: bool) -> spillway::Result<Arc<dyn BlobStore>> {
    Err(spillway::Error::InvalidArgument(format!(
        "{}: this build of spillway has no SQLite support; build the command with the `sqlite` feature",
        path.display()
    )))
}

/// Opens the S3 store at `url`.
#[cfg(feature = "s3")]
pub fn open_s3(url: &str) -> spillway::Result<Arc<dyn BlobStore>> {
    Ok(Arc::new(spillway::S3Store::open(
        url,
        spillway::S3StoreOptions::default(),
    )?))
}

/// Without the `s3` feature: a usage error that says how to get it.
#[cfg(not(feature = "s3"))]
pub fn open_s3(url: &str) -> spillway::Result<Arc<dyn BlobStore>> {
    Err(spillway::Error::InvalidArgument(format!(
        "{url}: this build of spillway has no S3 support; build the command with the `s3` feature"
    )))
}

/// The store's own check, read-only: a directory store's and a SQLite store's `check` (which
/// add foreign files, kept graphs, SQLite's integrity check), the generic check on S3.
pub fn check(loc: &Location) -> spillway::Result<CheckReport> {
    match loc {
        Location::DirStore(dir) => open_dir(dir, false)?.check(),
        #[cfg(feature = "sqlite")]
        Location::Sqlite(path) => sqlite(path, false)?.check(),
        _ => spillway::store::check::check(open(loc, false)?.as_ref()),
    }
}

/// `inspect` of a store that is not a log: its objects, bytes (where the store knows them
/// without reading every object) and roots, and a directory store's kept graphs.
pub fn inspect(loc: &Location, out: &Output) -> spillway::Result<ExitCode> {
    let name = loc.name();
    let pb = out.progress("listing");
    // A directory store is opened once, as itself: its kept graphs are its own.
    let (store, kept): (spillway::Result<Arc<dyn BlobStore>>, _) = match loc {
        Location::DirStore(dir) => match open_dir(dir, false) {
            Ok(s) => {
                let kept = s.kept();
                (Ok(Arc::new(s)), Some(kept))
            }
            Err(e) => (Err(e), None),
        },
        _ => (open(loc, false), None),
    };
    let listed = store.and_then(|s| {
        let keys = s.keys()?;
        Ok((s.stats(), keys, s.roots()))
    });
    pb.finish_and_clear();
    let (stats, keys, roots) = listed?;
    let objects = keys.iter().filter(|k| !k.is_reserved()).count();
    // An S3 store counts only what this process did; the others know their whole contents.
    let bytes = (!matches!(loc, Location::S3(_))).then_some(stats.live_bytes);
    let ok = roots.is_ok() && kept.as_ref().is_none_or(|k| k.is_ok());
    if out.json {
        let roots_json = match &roots {
            Ok(r) => json!(
                r.iter()
                    .map(|(n, k)| json!({"name": n, "key": k.to_string()}))
                    .collect::<Vec<_>>()
            ),
            Err(_) => serde_json::Value::Null,
        };
        let kept_json = match &kept {
            Some(Ok(k)) => json!(
                k.iter()
                    .map(|g| json!({"name": g.name, "root": g.root.to_string(), "objects": g.objects}))
                    .collect::<Vec<_>>()
            ),
            _ => serde_json::Value::Null,
        };
        out.print_json(&json!({
            "ok": ok,
            "store": name,
            "kind": kind(loc),
            "objects": objects,
            "live_bytes": bytes,
            "roots": roots_json,
            "roots_problem": roots.as_ref().err().map(|e| e.to_string()),
            "kept": kept_json,
            "kept_problem": kept.as_ref().and_then(|k| k.as_ref().err()).map(|e| e.to_string()),
        }));
    } else {
        crate::say!("store       {name} ({})", kind(loc));
        crate::say!("objects     {objects}");
        if let Some(b) = bytes {
            crate::say!("live bytes  {}", human(b));
        }
        match &roots {
            Ok(r) => {
                crate::say!("roots       {}", r.len());
                for (name, key) in r.iter().take(20) {
                    crate::say!("  {key}  {name}");
                }
            }
            Err(e) => crate::say!("roots       unreadable: {e}"),
        }
        match &kept {
            Some(Ok(k)) => {
                crate::say!("kept graphs {}", k.len());
                for g in k.iter().take(20) {
                    crate::say!("  {}  {} ({} objects)", g.root, g.name, g.objects);
                }
            }
            Some(Err(e)) => crate::say!("kept graphs unreadable: {e}"),
            None => {}
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::DAMAGE)
    })
}
