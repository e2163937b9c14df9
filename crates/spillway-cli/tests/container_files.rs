//! `inspect` and `verify` of a container file: sections listed with their checksum status,
//! damage named by section or slot (exit 1), a torn newest slot a note (exit 0), and the
//! store-only commands a usage error (exit 2).

use std::fs;
use std::path::{Path, PathBuf};

mod common;

use common::{expect, spillway, text};
use spillway::container::{Change, Container, SectionData, types};

fn section<'a>(name: &'a str, kind: u32, bytes: &'a [u8]) -> Change<'a> {
    Change::Put(SectionData {
        name,
        kind,
        version: 2,
        required: true,
        mmap: true,
        index: false,
        bytes: bytes.into(),
    })
}

/// A container after two checkpoints: "keys" and "times", then "times" replaced.
fn container() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("graph.spw");
    let mut c = Container::open(&path).expect("create");
    c.checkpoint([
        section("keys", types::KEY_INDEX, &[1; 9000]),
        section("times", types::U64_COLUMN, &[2; 100]),
    ])
    .expect("checkpoint");
    c.checkpoint([section("times", types::U64_COLUMN, &[3; 4000])])
        .expect("checkpoint");
    drop(c);
    (tmp, path)
}

fn flip(path: &Path, at: u64) {
    let mut b = fs::read(path).expect("read");
    b[at as usize] ^= 0x20;
    fs::write(path, b).expect("write");
}

fn offset_of(path: &Path, name: &str) -> u64 {
    let c = Container::open_with(path, spillway::container::ContainerOptions::read_only())
        .expect("open");
    c.section(name).expect("section").offset
}

#[test]
fn inspect_lists_header_slots_and_sections() {
    let (_tmp, path) = container();
    let p = path.to_str().expect("utf-8");
    let o = spillway(&["inspect", p]);
    expect(
        &o,
        0,
        &[
            "container file",
            "iteration 3",
            "keys",
            "times",
            "required,mmap,data",
        ],
    );
    let o = spillway(&["inspect", "--json", p]);
    expect(&o, 0, &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["ok"], true);
    assert_eq!(v["page_size"], 4096);
    assert_eq!(v["sections"].as_array().expect("sections").len(), 2);
    assert_eq!(v["sections"][1]["len"], 4000);
    assert_eq!(v["sections"][1]["version"], 2);
    assert_eq!(v["sections"][1]["checksum"], "ok");
    let states: Vec<&str> = v["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| s["state"].as_str().expect("state"))
        .collect();
    assert_eq!(states, ["valid", "valid"]);
    expect(
        &spillway(&["verify", p]),
        0,
        &["ok: 2 sections of iteration 3"],
    );
}

#[test]
fn a_damaged_section_is_named_and_exits_1() {
    let (_tmp, path) = container();
    let p = path.to_str().expect("utf-8");
    flip(&path, offset_of(&path, "times") + 17);
    expect(
        &spillway(&["verify", p]),
        1,
        &["damaged section \"times\"", "1 of 2"],
    );
    let o = spillway(&["inspect", "--json", p]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["sections"][0]["checksum"], "ok");
    assert!(
        v["sections"][1]["checksum"]
            .as_str()
            .expect("status")
            .contains("checksum mismatch")
    );
}

#[test]
fn a_damaged_newest_slot_is_a_note_and_both_are_damage() {
    let (_tmp, path) = container();
    let p = path.to_str().expect("utf-8");
    // Iteration 3 is in slot 0 (1 was, then 2 in slot 1, then 3 in slot 0 again).
    flip(&path, 4096 + 12);
    expect(
        &spillway(&["verify", p]),
        0,
        &["note: slot 0 does not check out", "iteration 2 is used"],
    );
    expect(
        &spillway(&["inspect", p]),
        0,
        &["slot 0      damaged or torn"],
    );
    flip(&path, 2 * 4096 + 12);
    expect(&spillway(&["verify", p]), 1, &["no commit slot is usable"]);
    expect(&spillway(&["inspect", p]), 1, &["no commit slot is usable"]);
}

#[test]
fn store_commands_and_repair_are_usage_errors_on_a_container() {
    let (_tmp, path) = container();
    let p = path.to_str().expect("utf-8");
    let before = fs::read(&path).expect("read");
    expect(&spillway(&["gc", p]), 2, &["container file"]);
    expect(&spillway(&["compact", p]), 2, &["container file"]);
    expect(
        &spillway(&["verify", "--repair", p]),
        2,
        &["container file"],
    );
    assert_eq!(fs::read(&path).expect("read"), before, "nothing changed");
    // A file that is neither: a usage error naming what is accepted.
    let other = path.with_file_name("other.bin");
    fs::write(&other, b"not a container, not a database").expect("write");
    expect(
        &spillway(&["inspect", other.to_str().expect("utf-8")]),
        2,
        &["neither a SQLite database nor a container file"],
    );
    // The magic, then garbage: the header's checksum fails, which is damage.
    let mut garbage = b"SPILLCTR".to_vec();
    garbage.extend_from_slice(&[0x55; 20_000]);
    fs::write(&other, garbage).expect("write");
    expect(
        &spillway(&["verify", other.to_str().expect("utf-8")]),
        1,
        &["container header"],
    );
}

#[test]
fn a_damaged_directory_of_the_newest_slot_is_damage_not_a_quiet_rollback() {
    let (_tmp, path) = container();
    let p = path.to_str().expect("utf-8");
    // Slot 0 holds iteration 3; its directory offset is at bytes 16..24 of the slot.
    let b = fs::read(&path).expect("read");
    let dir = u64::from_le_bytes(b[4096 + 16..4096 + 24].try_into().expect("8 bytes"));
    flip(&path, dir + 40);
    expect(
        &spillway(&["verify", p]),
        1,
        &[
            "damaged: slot 0 (iteration 3) checks out but directory",
            "opened at the older iteration 2",
        ],
    );
    let o = spillway(&["inspect", "--json", p]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["slots"][0]["state"], "broken");
    assert_eq!(v["iteration"], 2);
}
