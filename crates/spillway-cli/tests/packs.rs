//! `export` and `import`: the demo's graph into a pack, the pack checked by `inspect` and
//! `verify`, imported into a new store whose graph is whole; refusals exit 2, a damaged pack 1.

use std::fs;
use std::path::Path;

mod common;

use common::{expect, spillway, text};

/// A store kept by the demo (1 MiB budget) in `dir`.
fn demo_store(dir: &Path) {
    let o = spillway(&[
        "demo",
        "--budget",
        "1MiB",
        "--seed",
        "3",
        "--dir",
        dir.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn export_then_import_carries_the_graph_and_its_root() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    demo_store(&store);
    let s = store.to_str().expect("utf-8");
    let pack = tmp.path().join("build.spw");
    let p = pack.to_str().expect("utf-8");
    let o = spillway(&["export", "--root", "demo/build", s, "-o", p, "--json"]);
    expect(&o, 0, &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let objects = v["objects"].as_u64().expect("objects");
    assert!(objects > 100, "{v}");
    expect(
        &spillway(&["inspect", p]),
        0,
        &[
            "objects",
            "object-index",
            "roots",
            "required,mmap,data",
            "mmap,index",
        ],
    );
    expect(&spillway(&["verify", p]), 0, &["ok: 3 sections"]);
    // Deterministic: a second export of the same root is the same file.
    let again = tmp.path().join("again.spw");
    expect(
        &spillway(&[
            "export",
            "--root",
            "demo/build",
            s,
            "-o",
            again.to_str().expect("utf-8"),
        ]),
        0,
        &["exported"],
    );
    assert!(fs::read(&pack).expect("read") == fs::read(&again).expect("read"));
    // Into a new store: the graph whole, the root set.
    let target = tmp.path().join("target");
    let t = target.to_str().expect("utf-8");
    expect(
        &spillway(&["import", p, t]),
        0,
        &[&format!("imported {objects} objects and 1 root(s)")],
    );
    expect(&spillway(&["verify", t]), 0, &[]);
    let o = spillway(&["inspect", "--json", t]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(v.to_string().contains("demo/build"), "{v}");
}

#[test]
fn refusals_and_a_damaged_pack() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    demo_store(&store);
    let s = store.to_str().expect("utf-8");
    let pack = tmp.path().join("p.spw");
    let p = pack.to_str().expect("utf-8");
    expect(
        &spillway(&["export", "--root", "nope", s, "-o", p]),
        2,
        &["\"nope\""],
    );
    assert!(!pack.exists());
    expect(
        &spillway(&["export", "--root", "demo/build", s, "-o", p]),
        0,
        &[],
    );
    expect(
        &spillway(&["export", "--root", "demo/build", s, "-o", p]),
        2,
        &["exists"],
    );
    // A flipped byte in the objects: verify names the section, import refuses (exit 1) and
    // leaves no store behind.
    let c = spillway::container::Container::open_with(
        &pack,
        spillway::container::ContainerOptions::read_only(),
    )
    .expect("open");
    let at = c.section("objects").expect("objects").offset as usize + 5000;
    drop(c);
    let mut b = fs::read(&pack).expect("read");
    b[at] ^= 0x10;
    fs::write(&pack, b).expect("write");
    expect(
        &spillway(&["verify", p]),
        1,
        &["damaged section \"objects\""],
    );
    let target = tmp.path().join("target");
    expect(
        &spillway(&["import", p, target.to_str().expect("utf-8")]),
        1,
        &["checksum mismatch in pack objects section", "\"objects\""],
    );
    assert!(!target.exists(), "a refused import created the store");
}
