//! The commands on a directory store and a SQLite store: the demo runs on each, `inspect`,
//! `verify` and `gc` work on them, the log-only operations are usage errors, and damage (a
//! flipped byte, a deleted object file, a cut database) is reported with exit 1 while nothing
//! is deleted.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

use common::{expect, spillway, text};
use spillway::{BlobStore, ContentKey, DirStore, Durability, SqliteStore};

/// Writes a rooted graph (8 parents of 5 leaves, a root over the parents, named "graph") and
/// 6 unrooted objects into `store`, durably; returns the leaves.
fn fill(store: &dyn BlobStore) -> Vec<ContentKey> {
    let g = common::write_graph(store, 6, 8, 5, 700);
    store.flush(Durability::Durable).expect("flush");
    g.leaves
}

/// Objects in the rooted graph: the root, 8 parents, 40 leaves.
const ROOTED: u64 = 1 + 8 + 40;

fn dir_store() -> (tempfile::TempDir, PathBuf, Vec<ContentKey>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let store = DirStore::open(&dir).expect("create");
    let leaves = fill(&store);
    store.close().expect("close");
    (tmp, dir, leaves)
}

fn sqlite_store() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("store.sqlite");
    let store = SqliteStore::open(&path).expect("create");
    fill(&store);
    store.close().expect("close");
    (tmp, path)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != "LOCK") {
                out.push((p.clone(), fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("json: {e}\n{}", text(o)))
}

#[test]
fn a_directory_store_is_inspected_verified_and_collected() {
    let (_tmp, dir, _) = dir_store();
    let o = spillway(&["inspect", "--json", s(&dir)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = json(&o);
    assert_eq!(v["kind"], "directory store", "{v}");
    assert_eq!(v["objects"], ROOTED + 6, "{v}");
    assert_eq!(v["roots"][0]["name"], "graph", "{v}");
    expect(&spillway(&["verify", s(&dir)]), 0, &["ok"]);

    let o = spillway(&["gc", "--json", s(&dir)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = json(&o);
    assert_eq!(v["deleted"], 6, "{v}");
    assert_eq!(v["kept"], ROOTED, "{v}");
    let v = json(&spillway(&["verify", "--json", s(&dir)]));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["objects"], ROOTED, "{v}");

    // The log's own operations are usage errors that change nothing.
    let before = snapshot(&dir);
    expect(
        &spillway(&["compact", s(&dir)]),
        2,
        &["a directory store has no log to compact"],
    );
    expect(
        &spillway(&["verify", "--repair", s(&dir)]),
        2,
        &["a directory store has no log to repair"],
    );
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn damage_in_a_directory_store_is_reported_and_nothing_is_deleted() {
    let (_tmp, dir, leaves) = dir_store();
    let object = |k: &ContentKey| {
        let store = DirStore::open_with(
            &dir,
            spillway::store::DirStoreOptions::default().read_only(true),
        )
        .expect("open");
        store.object_path(k)
    };
    // A flipped byte in a leaf's payload: verify names the file. gc does not read payloads
    // (it follows children, which the leaf has none of): it deletes only the unreachable
    // objects and leaves the damaged file as it is.
    let flipped = object(&leaves[3]);
    let mut bytes = fs::read(&flipped).expect("read");
    let at = bytes.len() - 10;
    bytes[at] ^= 0x40;
    fs::write(&flipped, &bytes).expect("write");
    let o = spillway(&["verify", s(&dir)]);
    expect(&o, 1, &[s(&flipped), "checksum mismatch", "DAMAGED"]);
    let o = spillway(&["gc", "--json", s(&dir)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(json(&o)["deleted"], 6, "{}", text(&o));
    assert_eq!(fs::read(&flipped).expect("read"), bytes);
    let o = spillway(&["inspect", s(&leaves_parent(&flipped))]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // A deleted leaf: the root's graph has a hole, gc deletes nothing.
    let deleted = object(&leaves[7]);
    fs::remove_file(&deleted).expect("remove");
    let before = snapshot(&dir);
    let o = spillway(&["verify", s(&dir)]);
    expect(&o, 1, &["root \"graph\"", "misses 1 object"]);
    let o = spillway(&["gc", s(&dir)]);
    expect(
        &o,
        1,
        &["stopped and deleted nothing", &leaves[7].to_string()],
    );
    assert!(
        !text(&o).contains("--repair"),
        "a directory store has no repair to suggest: {}",
        text(&o)
    );
    assert_eq!(snapshot(&dir), before, "gc changed a damaged store");
}

/// The shard directory of an object file: not a store of any kind.
fn leaves_parent(file: &Path) -> PathBuf {
    file.parent().expect("shard directory").to_path_buf()
}

#[test]
fn a_sqlite_store_is_inspected_verified_and_collected() {
    let (_tmp, path) = sqlite_store();
    let o = spillway(&["inspect", "--json", s(&path)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = json(&o);
    assert_eq!(v["kind"], "SQLite store", "{v}");
    assert_eq!(v["objects"], ROOTED + 6, "{v}");
    expect(&spillway(&["verify", s(&path)]), 0, &["ok"]);
    let v = json(&spillway(&["gc", "--json", s(&path)]));
    assert_eq!(v["deleted"], 6, "{v}");
    assert_eq!(v["kept"], ROOTED, "{v}");
    let v = json(&spillway(&["verify", "--json", s(&path)]));
    assert_eq!(
        (v["ok"].clone(), v["objects"].clone()),
        (true.into(), ROOTED.into()),
        "{v}"
    );
    expect(
        &spillway(&["compact", s(&path)]),
        2,
        &["a SQLite store has no log to compact"],
    );
}

#[test]
fn a_damaged_or_foreign_sqlite_file_is_refused_and_left_alone() {
    let (tmp, path) = sqlite_store();
    // A file that is not a database at all: a usage error.
    let foreign = tmp.path().join("notes.txt");
    fs::write(&foreign, "not a database, just some notes").expect("write");
    expect(
        &spillway(&["verify", s(&foreign)]),
        2,
        &["is a file but neither a SQLite database nor a container file"],
    );
    // Cut in half: every command reports the damage, naming the file; nothing changes.
    let mut bytes = fs::read(&path).expect("read");
    bytes.truncate(bytes.len() / 2);
    fs::write(&path, &bytes).expect("write");
    for cmd in ["inspect", "verify", "gc"] {
        let o = spillway(&[cmd, s(&path)]);
        expect(&o, 1, &[s(&path), "SQLite database is corrupted"]);
        assert!(!text(&o).contains("--repair"), "{}", text(&o));
        assert_eq!(
            fs::read(&path).expect("read"),
            bytes,
            "{cmd} changed the file"
        );
    }
}

/// The demo on the directory store and on the SQLite store, kept and verified afterwards.
#[test]
fn the_demo_runs_on_the_directory_and_sqlite_stores() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for kind in ["dir", "sqlite"] {
        let dir = tmp.path().join(kind);
        let o = spillway(&[
            "demo",
            "-q",
            "--budget",
            "1MiB",
            "--store",
            kind,
            "--dir",
            s(&dir),
        ]);
        expect(&o, 0, &["ok: every value", "store kept in"]);
        let store = if kind == "sqlite" {
            dir.join("store.sqlite")
        } else {
            dir.clone()
        };
        expect(&spillway(&["verify", s(&store)]), 0, &["ok"]);
        expect(&spillway(&["inspect", s(&store)]), 0, &["demo/build"]);
    }
}
