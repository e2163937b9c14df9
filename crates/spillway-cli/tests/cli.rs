//! The `spillway` binary end to end: exit codes and what it prints.

mod common;

use std::path::Path;

use common::{spillway, text};

#[test]
fn demo_verifies_everything_and_keeps_the_store_for_inspection() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let d = dir.to_str().unwrap();
    let o = spillway(&["demo", "--budget", "1MiB", "--seed", "7", "--dir", d]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("mismatches") && out.contains("ok: every value"),
        "{out}"
    );

    let o = spillway(&["inspect", d]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("demo/build"), "{}", text(&o));
    assert!(text(&o).contains("format      version 3\n"), "{}", text(&o));

    let o = spillway(&["verify", d]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let o = spillway(&["gc", d]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("deleted 0"),
        "everything is reachable from the root: {}",
        text(&o)
    );
}

#[test]
fn inspect_says_that_a_version_1_store_holds_values_without_type_tags() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../spillway/tests/fixtures/log-store-v1");
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&fixture).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    let o = spillway(&["inspect", tmp.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("format      version 1: values without type tags, which a pool refuses"),
        "{}",
        text(&o)
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["demo", "--budget", "12XB"][..],
        &["demo", "--scale", "0"],
        &["demo", "--store", "floppy"],
        &["no-such-command"],
        &["inspect", "/no/such/store"],
        &["verify", "/no/such/store"],
        &["demo", "--dir", "/no/such/parent/store"],
    ] {
        let o = spillway(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    }
}

#[test]
fn a_corrupted_store_fails_verification_with_the_place_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let d = dir.to_str().unwrap();
    let o = spillway(&["demo", "--budget", "1MiB", "--dir", d]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Flip one payload byte in the middle of the first segment.
    let seg = dir.join("seg-0000000000000001.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    let o = spillway(&["verify", d]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("seg-0000000000000001.log offset"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_directory_that_is_not_a_store_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "hello").unwrap();
    let o = spillway(&["inspect", tmp.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is not a spillway store"), "{}", text(&o));
    assert!(Path::new(&tmp.path().join("notes.txt")).exists());
}

#[test]
fn verify_reports_damage_even_when_the_store_does_not_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let d = dir.to_str().unwrap();
    // Without its checkpoint, open must scan the segment, and refuses the damage in it (valid
    // records follow, so it is not a torn tail); verify still reports record by record.
    let o = spillway(&["demo", "--budget", "1MiB", "--dir", d]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::fs::remove_file(dir.join("index.ckpt")).unwrap();
    let seg = dir.join("seg-0000000000000001.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    let o = spillway(&["verify", d]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("seg-0000000000000001.log offset"), "{out}");
    assert!(
        out.contains("segments") && out.contains("records"),
        "a report, not just an error: {out}"
    );
}

#[test]
fn demo_refuses_what_cannot_work_on_this_machine_before_writing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let d = dir.to_str().unwrap();
    for (args, needle) in [
        (
            &["demo", "--budget", "64KiB", "--dir", d][..],
            "too small for the demo",
        ),
        (&["demo", "--budget", "1", "--dir", d], "use --budget"),
        (
            &["demo", "--budget", "64TiB", "--dir", d],
            "more than this machine's memory",
        ),
        (
            // 12 × 8 GiB × 100: far more than any test machine's free disk space.
            &["demo", "--budget", "8GiB", "--scale", "100", "--dir", d],
            "would not fit in the",
        ),
    ] {
        let o = spillway(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(needle), "{args:?}: {}", text(&o));
        assert!(!dir.exists(), "{args:?} wrote a store");
    }
}

#[test]
fn demo_on_the_memory_store_has_no_reopen_row() {
    let o = spillway(&["demo", "--budget", "1MiB", "--store", "mem"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("mismatches"), "{out}");
    assert!(!out.contains("reopen"), "{out}");
}
