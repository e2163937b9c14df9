//! Golden fixture of values as a pool stores them (log store format 3, value payloads with type
//! tags): `fixtures/pool-values-v3`, a graph under the root `doc`, checked in. This build must
//! read it back as the types it was written as, refuse it as another type, and encode the same
//! values to the same keys (a key covers the payload, tag included, so equal keys are equal
//! bytes).
//!
//! Every type is registered under a stable name: a default name (the Rust path) is not the
//! same across compilers, which a fixture must not depend on.
//!
//! Regenerate (only for a deliberate format change, as a new fixture beside this one) with
//! `cargo test -p spillway --test pool_golden -- --ignored regenerate_fixture`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use spillway::{ErrorKind, Paged, Pool};

const FIXTURE: &str = "pool-values-v3";

/// A measurement: a time and a signed value.
#[derive(Serialize, Deserialize, get_size2::GetSize, Debug, Clone, PartialEq)]
struct Point {
    at: u64,
    value: i32,
}

/// A tag with a weight.
#[derive(Serialize, Deserialize, get_size2::GetSize, Debug, Clone, PartialEq)]
struct Label {
    text: String,
    weight: i16,
}

#[derive(Serialize, Deserialize, get_size2::GetSize)]
struct Doc {
    title: String,
    points: Vec<Paged<Point>>,
    label: Paged<Label>,
}

fn points() -> Vec<Point> {
    (0..3)
        .map(|i| Point {
            at: 1_700_000_000 + i,
            value: -300 * i as i32,
        })
        .collect()
}

fn label() -> Label {
    Label {
        text: "golden".into(),
        weight: -2,
    }
}

fn pool(dir: &Path) -> Pool {
    Pool::builder()
        .budget(1 << 20)
        .dir(dir)
        .deterministic(true)
        .schema::<Point>("point", 1)
        .schema::<Label>("label", 0)
        .schema::<Doc>("doc", 200)
        .build()
        .expect("pool")
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(FIXTURE)
}

/// A copy of the fixture (a pool opens its store for writing).
fn copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join(FIXTURE);
    fs::create_dir(&dir).expect("mkdir");
    for e in fs::read_dir(fixture()).expect("list") {
        let e = e.expect("entry");
        fs::copy(e.path(), dir.join(e.file_name())).expect("copy");
    }
    (tmp, dir)
}

#[test]
#[ignore = "regenerates the checked-in fixture"]
fn regenerate_fixture() {
    let dir = fixture();
    if dir.exists() {
        fs::remove_dir_all(&dir).expect("remove old fixture");
    }
    {
        let pool = pool(&dir);
        let points = points()
            .into_iter()
            .map(|p| pool.insert(p))
            .collect::<spillway::Result<Vec<_>>>()
            .expect("insert");
        let label = pool.insert(label()).expect("insert");
        let doc = pool
            .insert(Doc {
                title: "a golden graph".into(),
                points,
                label,
            })
            .expect("insert");
        pool.set_root("doc", &doc).expect("root");
    }
    fs::remove_file(dir.join("LOCK")).expect("remove lock");
}

#[test]
fn the_fixture_reads_back_as_its_types_and_encodes_to_its_keys() {
    let (_tmp, dir) = copy();
    let pool = pool(&dir);
    let doc: Paged<Doc> = pool.root("doc").expect("roots").expect("the root");
    let d = doc.get().expect("the doc");
    assert_eq!(d.title, "a golden graph");
    assert_eq!(pool.key_of(&*d).expect("key"), doc.key().expect("key"));
    for (h, p) in d.points.iter().zip(points()) {
        assert_eq!(*h.get().expect("a point"), p);
        assert_eq!(pool.key_of(&p).expect("key"), h.key().expect("key"));
    }
    assert_eq!(d.points.len(), 3);
    assert_eq!(*d.label.get().expect("the label"), label());
    assert_eq!(
        pool.key_of(&label()).expect("key"),
        d.label.key().expect("key")
    );
}

#[test]
fn the_fixture_read_as_other_types_is_refused() {
    let (_tmp, dir) = copy();
    let pool = pool(&dir);
    let wrong: Paged<Label> = pool.root("doc").expect("roots").expect("the root");
    let err = wrong.get().map(|_| ()).expect_err("a doc is not a label");
    assert_eq!(err.kind(), ErrorKind::TypeMismatch, "{err}");
    assert!(
        err.to_string().contains("stored as \"doc\" version 200"),
        "{err}"
    );
    drop((wrong, pool));
    // A pool that reads "doc" at a later version, without an upgrade.
    let later = Pool::builder()
        .budget(1 << 20)
        .dir(&dir)
        .schema::<Doc>("doc", 201)
        .build()
        .expect("pool");
    let doc: Paged<Doc> = later.root("doc").expect("roots").expect("the root");
    let err = doc.get().map(|_| ()).expect_err("version 200 read at 201");
    assert_eq!(err.kind(), ErrorKind::SchemaVersion, "{err}");
}
