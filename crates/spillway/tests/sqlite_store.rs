//! The SQLite store beyond the common contract: what it refuses (a newer schema, another
//! program's database, a file that is not a database, a second writer), damage reported naming
//! the file, durable flushes that share a sync, and its check.

#![cfg(feature = "sqlite")]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::Obj;
use spillway::store::{SqliteStore, SqliteStoreOptions};
use spillway::{BlobStore, Durability, Error, ErrorKind};

fn db(dir: &Path) -> std::path::PathBuf {
    dir.join("store.sqlite")
}

#[test]
fn a_newer_schema_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = db(tmp.path());
    SqliteStore::open(&path)
        .expect("create")
        .close()
        .expect("close");
    let conn = rusqlite::Connection::open(&path).expect("open with rusqlite");
    let current = spillway::store::sqlite::SCHEMA_VERSION;
    conn.execute("UPDATE spillway_schema SET version = ?1", [current + 1])
        .expect("bump the version");
    drop(conn);
    let err = SqliteStore::open(&path).expect_err("newer");
    match &err {
        Error::UnsupportedVersion {
            path: p,
            found,
            supported,
        } => assert_eq!((p, *found, *supported), (&path, current + 1, current)),
        e => panic!("{e}"),
    }
    assert!(err.to_string().contains("upgrade spillway"), "{err}");
}

#[test]
fn files_that_are_not_spillway_stores_are_refused_and_left_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Another program's database.
    let other = tmp.path().join("other.sqlite");
    let conn = rusqlite::Connection::open(&other).expect("open");
    conn.execute_batch("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('mine');")
        .expect("create");
    drop(conn);
    let before = std::fs::read(&other).expect("read");
    let err = SqliteStore::open(&other).expect_err("another program's");
    assert_eq!(err.kind(), ErrorKind::NotAStore, "{err}");
    assert!(err.to_string().contains("other.sqlite"), "{err}");
    assert_eq!(std::fs::read(&other).expect("read"), before, "changed");
    // Not a database at all.
    let text = tmp.path().join("text.sqlite");
    std::fs::write(&text, vec![b'x'; 5000]).expect("write");
    let err = SqliteStore::open(&text).expect_err("not a database");
    assert_eq!(err.kind(), ErrorKind::NotAStore, "{err}");
    assert!(err.to_string().contains("text.sqlite"), "{err}");
    // A directory; a missing file opened read-only.
    assert_eq!(
        SqliteStore::open(tmp.path()).expect_err("dir").kind(),
        ErrorKind::NotAStore
    );
    let missing = tmp.path().join("missing.sqlite");
    let ro = SqliteStoreOptions::default().read_only(true);
    assert_eq!(
        SqliteStore::open_with(&missing, ro)
            .expect_err("missing")
            .kind(),
        ErrorKind::NotAStore
    );
    assert!(!missing.exists());
}

#[test]
fn a_second_writer_is_refused_and_a_reader_sees_the_writes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = db(tmp.path());
    let store = SqliteStore::open(&path).expect("open");
    let o = Obj::generated(1, 100, vec![]);
    store.put(o.put()).expect("put");
    let err = SqliteStore::open(&path).expect_err("locked");
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("process {}", std::process::id())),
        "{err}"
    );
    // Written, not yet durable: a read-only store (another connection) sees it.
    let ro = SqliteStore::open_with(&path, SqliteStoreOptions::default().read_only(true))
        .expect("read-only");
    assert_eq!(ro.get(&o.key).expect("get"), Some(o.blob()));
    assert_eq!(
        ro.put(Obj::generated(2, 1, vec![]).put())
            .expect_err("read-only")
            .kind(),
        ErrorKind::ReadOnly
    );
}

/// Replaces the first occurrence of `needle` in the file at `path` with `needle` with one bit
/// flipped at `at`.
fn flip_in_file(path: &Path, needle: &[u8], at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    let pos = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the bytes are in the database file");
    bytes[pos + at] ^= 0x04;
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn a_one_byte_corruption_is_reported_naming_the_file_never_returned() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = db(tmp.path());
    let child = Obj::generated(3, 50, vec![]);
    let o = Obj::generated(4, 3000, vec![child.key]);
    let store = SqliteStore::open(&path).expect("open");
    store.put_batch(&[child.put(), o.put()]).expect("put");
    // Closing checkpoints the log into the database file.
    store.close().expect("close");
    flip_in_file(&path, &o.payload[1000..1064], 7);
    let store = SqliteStore::open(&path).expect("open");
    let err = store.get(&o.key).expect_err("a flipped payload byte");
    assert_eq!(err.kind(), ErrorKind::ChecksumMismatch, "{err}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains(&o.key.to_string()), "{text}");
    // The child keys are apart from the payload: still whole.
    assert_eq!(
        store.children(&o.key).expect("children"),
        Some(vec![child.key])
    );
    let report = store.check().expect("check");
    assert!(!report.is_clean());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains(&o.key.to_string())),
        "{report:?}"
    );
    store.close().expect("close");
    // A flipped child key: children() and get() both refuse.
    flip_in_file(&path, child.key.as_bytes(), 3);
    let store = SqliteStore::open(&path).expect("open");
    let err = store.children(&o.key).expect_err("a flipped child key");
    assert!(err.is_corruption(), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn concurrent_durable_flushes_share_syncs_and_survive_a_reopen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = db(tmp.path());
    let store = Arc::new(SqliteStore::open(&path).expect("open"));
    let before = store.stats().syncs;
    store.flush(Durability::Durable).expect("nothing to sync");
    assert_eq!(
        store.stats().syncs,
        before,
        "nothing written, nothing synced"
    );
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..25 {
                    let o = Obj::generated(1000 * t + i, 200, vec![]);
                    store.put(o.put()).expect("put");
                    store.flush(Durability::Durable).expect("flush");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let syncs = store.stats().syncs - before;
    assert!((1..=100).contains(&syncs), "{syncs} syncs for 100 flushes");
    assert_eq!(store.stats().objects, 100);
    drop(store);
    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(store.keys().expect("keys").len(), 100);
    assert_eq!(store.stats().objects, 100);
    let report = store.check().expect("check");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.objects, 100);
}
