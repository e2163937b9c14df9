//! Golden fixture of the container format, version 1: a file written by this build and checked
//! in, so that a change that cannot read it, or that writes other bytes for the same
//! checkpoints (a container is deterministic: same sections, same bytes), fails here.
//!
//! `fixtures/container-v1.spw`: three checkpoints (sections of several types and flags, one
//! replaced, one removed, one empty), so that both slots are in use.
//!
//! Regenerate (only for a deliberate format change, with a new version) with
//! `cargo test -p spillway --test container_golden -- --ignored regenerate_fixture`.

use std::path::{Path, PathBuf};

use spillway::container::{Change, Container, ContainerOptions, SectionData, SlotState, types};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/container-v1.spw")
}

fn section<'a>(
    name: &'a str,
    kind: u32,
    version: u32,
    flags: (bool, bool, bool),
    bytes: &'a [u8],
) -> Change<'a> {
    Change::Put(SectionData {
        name,
        kind,
        version,
        required: flags.0,
        mmap: flags.1,
        index: flags.2,
        bytes: bytes.into(),
    })
}

fn keys() -> Vec<u8> {
    (0..700u64).flat_map(|i| (i * 31).to_le_bytes()).collect()
}

fn times(n: u64) -> Vec<u8> {
    (0..n).flat_map(|i| (i * i + 7).to_le_bytes()).collect()
}

/// Writes the fixture's three checkpoints into a new container at `path`.
fn write(path: &Path) {
    let mut c = Container::open(path).expect("create");
    let (k, t1, t2) = (keys(), times(100), times(900));
    c.checkpoint([
        section("keys", types::KEY_INDEX, 1, (true, true, false), &k),
        section("times", types::U64_COLUMN, 1, (true, true, false), &t1),
        section(
            "scratch",
            types::U64_COLUMN,
            1,
            (false, false, false),
            b"temp",
        ),
    ])
    .expect("checkpoint 1");
    c.checkpoint([
        section("times", types::U64_COLUMN, 2, (true, true, false), &t2),
        Change::Remove("scratch"),
    ])
    .expect("checkpoint 2");
    c.checkpoint([section(
        "empty-index",
        types::KEY_INDEX,
        1,
        (false, true, true),
        &[],
    )])
    .expect("checkpoint 3");
}

#[test]
fn the_fixture_reads_back_and_this_build_writes_the_same_bytes() {
    let c = Container::open_with(fixture(), ContainerOptions::read_only()).expect("open fixture");
    assert_eq!(c.iteration(), 4);
    assert!(
        c.slots()
            .iter()
            .all(|s| matches!(s, SlotState::Valid { .. }))
    );
    let names: Vec<String> = c.sections().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["keys", "times", "empty-index"]);
    assert_eq!(c.read("keys").expect("keys"), Some(keys()));
    assert_eq!(c.read("times").expect("times"), Some(times(900)));
    assert_eq!(c.section("times").expect("times").version, 2);
    let e = c.section("empty-index").expect("empty");
    assert!(e.index && e.mmap && !e.required && e.len == 0);
    assert!(c.verify().expect("verify").is_empty());
    drop(c);

    let dir = tempfile::tempdir().expect("tempdir");
    let again = dir.path().join("again.spw");
    write(&again);
    assert!(
        std::fs::read(&again).expect("read") == std::fs::read(fixture()).expect("read fixture"),
        "the same checkpoints wrote other bytes than the fixture"
    );
}

#[test]
#[ignore = "rewrites the checked-in fixture; run only for a deliberate format change"]
fn regenerate_fixture() {
    let path = fixture();
    let _ = std::fs::remove_file(&path);
    write(&path);
    let _ = std::fs::remove_file(spillway::container::lock_path(&path));
}
