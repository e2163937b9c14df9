//! Container files: round trips, damage, unknown sections, crashes at every step of a
//! checkpoint, locking, and offsets past 4 GiB.

mod common;

use std::path::Path;
use std::sync::Arc;

use spillway::ErrorKind;
use spillway::container::{
    Bytes, Change, Container, ContainerOptions, SectionData, SlotState, lock_path, types,
};
use spillway::format::container as fmt;
use spillway::vfs::{OpenMode, SimFs, Vfs};

const FILE: &str = "/c/graph.spw";

fn put<'a>(name: &'a str, kind: u32, bytes: &'a [u8]) -> Change<'a> {
    common::section(name, kind, true, bytes)
}

fn optional<'a>(name: &'a str, kind: u32, bytes: &'a [u8]) -> Change<'a> {
    common::section(name, kind, false, bytes)
}

/// A section of `len` bytes of `byte`, streamed in chunks of 1,000.
fn streamed(name: &str, len: usize, byte: u8) -> Change<'_> {
    let mut left = len;
    Change::Put(SectionData {
        name,
        kind: types::KEY_INDEX,
        version: 1,
        required: true,
        mmap: true,
        index: false,
        bytes: Bytes::Stream(Box::new(move |w| {
            while left > 0 {
                let n = left.min(1000);
                w.write(&vec![byte; n])?;
                left -= n;
            }
            Ok(())
        })),
    })
}

fn sim() -> (SimFs, Arc<dyn Vfs>) {
    let fs = SimFs::new();
    fs.create_dir_all(Path::new("/c")).expect("mkdir");
    let vfs: Arc<dyn Vfs> = Arc::new(fs.clone());
    (fs, vfs)
}

fn open(vfs: &Arc<dyn Vfs>) -> spillway::Result<Container> {
    Container::open_on(
        Arc::clone(vfs),
        Path::new(FILE),
        ContainerOptions::default(),
    )
}

/// A container's sections: name and bytes, in directory order.
type Contents = Vec<(String, Vec<u8>)>;

/// Every section's name and bytes.
fn contents(c: &Container) -> Contents {
    c.sections()
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                c.read(&s.name).expect("read").expect("there"),
            )
        })
        .collect()
}

fn keys_bytes(n: u64) -> Vec<u8> {
    (0..n).flat_map(|i| (i * 7).to_le_bytes()).collect()
}

#[test]
fn sections_of_several_types_round_trip_through_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("graph.spw");
    let keys = keys_bytes(10_000);
    let column: Vec<u8> = (0..5000u64).flat_map(|i| (i * i).to_le_bytes()).collect();
    {
        let mut c = Container::open(&path).expect("create");
        assert_eq!(c.iteration(), 1);
        assert!(c.sections().is_empty());
        c.checkpoint([
            put("keys", types::KEY_INDEX, &keys),
            put("times", types::U64_COLUMN, &column),
            optional("empty", types::U64_COLUMN, &[]),
        ])
        .expect("checkpoint");
        assert_eq!(c.iteration(), 2);
    }
    let c = Container::open_with(&path, ContainerOptions::read_only()).expect("reopen");
    assert_eq!(c.iteration(), 2);
    assert_eq!(
        contents(&c),
        vec![
            ("keys".to_string(), keys.clone()),
            ("times".to_string(), column.clone()),
            ("empty".to_string(), Vec::new()),
        ]
    );
    let s = c.section("times").expect("listed");
    assert_eq!(
        (s.kind, s.version, s.required, s.mmap, s.index),
        (types::U64_COLUMN, 1, true, true, false)
    );
    assert_eq!(s.offset % 4096, 0, "sections start on a page");
    assert!(c.section("empty").expect("listed").index);
    assert!(c.verify().expect("verify").is_empty());
    assert_eq!(c.read("nothing").expect("read"), None);
}

#[test]
fn unchanged_sections_keep_their_place_and_freed_space_is_reused() {
    let (_fs, vfs) = sim();
    let mut c = open(&vfs).expect("create");
    let big = vec![1u8; 64 << 10];
    c.checkpoint([
        put("stays", types::KEY_INDEX, &big),
        put("moves", types::U64_COLUMN, &[2; 5000]),
    ])
    .expect("first");
    let stays = c.section("stays").expect("stays").offset;
    let mut lens = Vec::new();
    for i in 0..20u8 {
        c.checkpoint([put(
            "moves",
            types::U64_COLUMN,
            &vec![i; 5000 + usize::from(i)],
        )])
        .expect("rewrite");
        assert_eq!(c.section("stays").expect("stays").offset, stays);
        let f = vfs.open(Path::new(FILE), OpenMode::Read).expect("open");
        lens.push(f.len().expect("len"));
    }
    // Two states are kept at most (the current and the one before): the file stops growing.
    assert_eq!(lens[5], lens[19], "the file keeps growing: {lens:?}");
    c.checkpoint([Change::Remove("moves")]).expect("remove");
    drop(c);
    let c = open(&vfs).expect("reopen");
    assert_eq!(contents(&c), vec![("stays".to_string(), big)]);
}

#[test]
fn a_damaged_newest_slot_falls_back_to_the_previous_state_and_two_are_refused() {
    let (fs, vfs) = sim();
    let mut c = open(&vfs).expect("create");
    c.checkpoint([put("a", types::KEY_INDEX, b"first")])
        .expect("1");
    c.checkpoint([put("a", types::KEY_INDEX, b"second")])
        .expect("2");
    let newest = c
        .slots()
        .iter()
        .position(|s| matches!(s, SlotState::Valid { iteration: 3, .. }))
        .expect("slot of iteration 3");
    drop(c);
    // One flipped byte in the newest slot: the previous state, intact.
    let at = 4096 * (1 + newest) + 20;
    fs.corrupt(Path::new(FILE), at, &[0xff]).expect("corrupt");
    let c = open(&vfs).expect("falls back");
    assert_eq!(c.iteration(), 2);
    assert_eq!(c.read("a").expect("read"), Some(b"first".to_vec()));
    assert!(matches!(c.slots()[newest], SlotState::Damaged(_)));
    drop(c);
    // Both damaged: refused, never opened empty.
    let other = 4096 * (2 - newest) + 9;
    fs.corrupt(Path::new(FILE), other, &[0xff])
        .expect("corrupt");
    let e = open(&vfs).expect_err("no valid slot");
    assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
    assert!(e.to_string().contains("no commit slot is usable"), "{e}");
}

#[test]
fn a_torn_slot_write_keeps_the_state_before_it() {
    let (fs, vfs) = sim();
    let mut c = open(&vfs).expect("create");
    c.checkpoint([put("a", types::KEY_INDEX, b"kept")])
        .expect("1");
    drop(c);
    // The other slot half-written, as a crash in step 3 leaves it.
    let torn = fmt::encode_slot(&fmt::Slot {
        iteration: 3,
        dir_offset: 3 * 4096,
        count: 0,
        dir_crc: 0,
        file_len: 4 * 4096,
    });
    fs.corrupt(Path::new(FILE), 4096, &torn[..30])
        .expect("tear");
    let c = open(&vfs).expect("open");
    assert_eq!(c.read("a").expect("read"), Some(b"kept".to_vec()));
}

#[test]
fn a_damaged_section_is_reported_by_name() {
    let (fs, vfs) = sim();
    let mut c = open(&vfs).expect("create");
    c.checkpoint([
        put("good", types::KEY_INDEX, &[5; 3000]),
        put("bad", types::U64_COLUMN, &[6; 3000]),
    ])
    .expect("checkpoint");
    let at = c.section("bad").expect("bad").offset as usize + 1234;
    drop(c);
    fs.corrupt(Path::new(FILE), at, &[0]).expect("corrupt");
    let c = open(&vfs).expect("the directory is fine");
    assert_eq!(c.read("good").expect("good"), Some(vec![5; 3000]));
    let e = c.read("bad").expect_err("damaged");
    assert_eq!(e.kind(), ErrorKind::ChecksumMismatch);
    assert!(e.to_string().contains("section \"bad\""), "{e}");
    let bad = c.verify().expect("verify");
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, "bad");
}

#[test]
fn unknown_required_sections_are_refused_and_optional_ones_skipped_and_kept() {
    let (_fs, vfs) = sim();
    let user = types::FIRST_USER + 5;
    let mut c = Container::open_on(
        Arc::clone(&vfs),
        Path::new(FILE),
        ContainerOptions::default().known_types([user, user + 1]),
    )
    .expect("create");
    c.checkpoint([optional("extra", user + 1, b"skip me")])
        .expect("optional");
    drop(c);
    // A reader that does not know the optional type skips it, and keeps it on a checkpoint.
    let mut c = open(&vfs).expect("optional unknown: fine");
    assert!(c.sections().is_empty());
    assert_eq!(c.read("extra").expect("read"), None);
    c.checkpoint([put("mine", types::KEY_INDEX, b"k")])
        .expect("checkpoint");
    drop(c);
    let all = Container::open_on(
        Arc::clone(&vfs),
        Path::new(FILE),
        ContainerOptions::default().any_type(true),
    )
    .expect("any type");
    assert_eq!(all.read("extra").expect("read"), Some(b"skip me".to_vec()));
    drop(all);
    // A required section of an unknown type: refused, with the section named.
    let mut c = Container::open_on(
        Arc::clone(&vfs),
        Path::new(FILE),
        ContainerOptions::default().known_types([user]),
    )
    .expect("knows it");
    c.checkpoint([put("needed", user, b"must understand")])
        .expect("required");
    drop(c);
    let e = open(&vfs).expect_err("unknown required");
    assert!(
        e.to_string().contains("\"needed\"") && e.to_string().contains("required"),
        "{e}"
    );
}

#[test]
fn files_that_are_not_containers_or_are_newer_are_refused() {
    let (fs, vfs) = sim();
    let f = vfs.open(Path::new(FILE), OpenMode::Create).expect("create");
    f.write_at(&[7u8; 100_000], 0).expect("garbage");
    drop(f);
    let e = open(&vfs).expect_err("garbage");
    assert_eq!(e.kind(), ErrorKind::NotAStore, "{e}");
    let newer = fmt::Header {
        version: fmt::CONTAINER_VERSION + 1,
        ..fmt::Header::new(4096)
    };
    fs.corrupt(Path::new(FILE), 0, &fmt::encode_header(&newer))
        .expect("header");
    let e = open(&vfs).expect_err("newer");
    assert_eq!(e.kind(), ErrorKind::UnsupportedVersion, "{e}");
    let short = Path::new("/c/short.spw");
    vfs.open(short, OpenMode::Create)
        .expect("create")
        .write_at(b"SPILL", 0)
        .expect("write");
    let e = Container::open_on(Arc::clone(&vfs), short, ContainerOptions::default())
        .expect_err("short");
    assert_eq!(e.kind(), ErrorKind::NotAStore, "{e}");
}

#[test]
fn one_writer_at_a_time_and_read_only_refuses_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("g.spw");
    let mut w = Container::open(&path).expect("writer");
    let e = Container::open(&path).expect_err("second writer");
    assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
    assert!(lock_path(&path).exists());
    w.checkpoint([put("a", types::KEY_INDEX, b"x")])
        .expect("write");
    let mut r = Container::open_with(&path, ContainerOptions::read_only()).expect("reader");
    assert_eq!(r.read("a").expect("read"), Some(b"x".to_vec()));
    let e = r
        .checkpoint([put("b", types::KEY_INDEX, b"y")])
        .expect_err("read-only");
    assert_eq!(e.kind(), ErrorKind::ReadOnly);
    let e = Container::open_with(dir.path().join("none.spw"), ContainerOptions::read_only())
        .expect_err("missing");
    assert!(e.to_string().contains("none.spw"), "{e}");
    let e = w
        .checkpoint([put("", types::KEY_INDEX, b"")])
        .expect_err("empty name");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

/// The states a checkpoint goes between, as (name, bytes) lists.
fn before_and_after() -> (Contents, Contents) {
    (
        vec![
            ("a".to_string(), vec![1; 10_000]),
            ("b".to_string(), vec![2; 100]),
        ],
        vec![
            ("a".to_string(), vec![1; 10_000]),
            ("b".to_string(), vec![3; 20_000]),
            ("c".to_string(), vec![4; 5000]),
        ],
    )
}

/// A container at the "before" state, then the checkpoint to "after", on `fs`; with
/// `fail_at`, the checkpoint's `n`-th mutating operation and every one after it fail. Returns
/// whether the checkpoint succeeded and how many mutating operations it made.
fn run_checkpoint(vfs: &Arc<dyn Vfs>, fs: &SimFs, fail_at: Option<u64>) -> (bool, u64) {
    let mut c = open(vfs).expect("create");
    c.checkpoint([
        put("a", types::KEY_INDEX, &[1; 10_000]),
        put("b", types::KEY_INDEX, &[2; 100]),
    ])
    .expect("before");
    // An older state too, so that space is reused on the way.
    c.checkpoint([put("b", types::KEY_INDEX, &[2; 100])])
        .expect("again");
    if let Some(n) = fail_at {
        fs.fail_at(n);
    }
    let start = fs.ops();
    // "c" is streamed, in chunks, while the checkpoint runs.
    let ok = c
        .checkpoint([
            put("b", types::KEY_INDEX, &[3; 20_000]),
            streamed("c", 5000, 4),
        ])
        .is_ok();
    (ok, fs.ops() - start)
}

#[test]
fn a_crash_at_every_step_of_a_checkpoint_leaves_the_previous_or_the_new_state() {
    let (before, after) = before_and_after();
    let (fs, vfs) = sim();
    let (ok, steps) = run_checkpoint(&vfs, &fs, None);
    assert!(ok && steps >= 5, "{steps} operations");
    let mut outcomes = [0usize; 2];
    for n in 1..=steps + 1 {
        for image in 0..3u64 {
            let (fs, vfs) = sim();
            let (ok, _) = run_checkpoint(&vfs, &fs, Some(n));
            let crashed = match image {
                0 => fs.process_crash_image(),
                s => fs.power_loss_image(s),
            };
            let vfs: Arc<dyn Vfs> = Arc::new(crashed);
            let c = open(&vfs).unwrap_or_else(|e| panic!("failure at step {n}: {e}"));
            let got = contents(&c);
            if ok && image == 0 {
                assert_eq!(got, after, "a checkpoint that returned Ok is kept");
            }
            if got == before {
                outcomes[0] += 1;
            } else if got == after {
                outcomes[1] += 1;
            } else {
                panic!("failure at step {n}, image {image}: neither state: {got:?}");
            }
            assert!(c.verify().expect("verify").is_empty());
        }
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

#[test]
fn a_failed_checkpoint_poisons_the_container_until_reopened() {
    let (fs, vfs) = sim();
    let mut c = open(&vfs).expect("create");
    fs.fail_at(1);
    let e = c
        .checkpoint([put("a", types::KEY_INDEX, b"x")])
        .expect_err("fails");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    let e = c
        .checkpoint([put("a", types::KEY_INDEX, b"x")])
        .expect_err("poisoned");
    assert_eq!(e.kind(), ErrorKind::Poisoned, "{e}");
}

#[cfg(unix)]
#[test]
fn sections_past_4_gib_are_written_and_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.spw");
    let mut c = Container::open(&path).expect("create");
    // Zeros past the end of the file are left as a hole: this costs no disk space.
    let hole = vec![0u8; (4 << 30) + 4096];
    c.checkpoint([put("hole", types::KEY_INDEX, &hole)])
        .expect("hole");
    drop(hole);
    c.checkpoint([put("far", types::U64_COLUMN, b"past four gibibytes")])
        .expect("far");
    let far = c.section("far").expect("far");
    assert!(far.offset > 4 << 30, "offset {}", far.offset);
    drop(c);
    let c = Container::open_with(&path, ContainerOptions::read_only()).expect("reopen");
    assert_eq!(
        c.read("far").expect("read"),
        Some(b"past four gibibytes".to_vec())
    );
    assert_eq!(c.section("hole").expect("hole").len, (4 << 30) + 4096);
}

#[test]
fn streamed_sections_round_trip_and_a_failed_stream_changes_nothing() {
    let (_fs, vfs) = sim();
    let mut c = open(&vfs).expect("create");
    c.checkpoint([
        streamed("big", 1_000_000, 7),
        put("small", types::U64_COLUMN, b"in memory"),
        streamed("empty", 0, 0),
    ])
    .expect("checkpoint");
    let big = c.section("big").expect("big");
    assert_eq!(big.len, 1_000_000);
    assert_eq!(big.offset % 4096, 0);
    assert_eq!(c.read("big").expect("read"), Some(vec![7; 1_000_000]));
    assert_eq!(c.read("empty").expect("read"), Some(Vec::new()));
    // A stream that fails half-way: an error, the state as it was, the container usable.
    let failing = Change::Put(SectionData {
        name: "broken",
        kind: types::KEY_INDEX,
        version: 1,
        required: true,
        mmap: false,
        index: false,
        bytes: Bytes::Stream(Box::new(|w| {
            w.write(&[1; 5000])?;
            Err(spillway::Error::InvalidArgument(
                "the source ran dry".into(),
            ))
        })),
    });
    let e = c.checkpoint([failing]).expect_err("stream fails");
    assert!(e.to_string().contains("ran dry"), "{e}");
    assert!(c.section("broken").is_none());
    c.checkpoint([Change::Remove("big")]).expect("still usable");
    drop(c);
    let c = open(&vfs).expect("reopen");
    let names: Vec<String> = c.sections().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["small", "empty"]);
}

/// State 5 (slot 0): its directory in the page-5 gap, a streamed "big" at pages 8..11, past
/// state 4's end (8 pages). The file is then cut to 8 pages: state 5 checks out but points
/// past the end (broken), and the container opens at state 4.
fn cut_after_five_states() -> (SimFs, Arc<dyn Vfs>) {
    let (fs, vfs) = sim();
    let mut c = open(&vfs).expect("create");
    c.checkpoint([put("a", types::KEY_INDEX, b"aaaaaaaaaa")])
        .expect("2");
    c.checkpoint([put("b", types::KEY_INDEX, b"bbbbbbbbbb")])
        .expect("3");
    c.checkpoint([Change::Remove("a")]).expect("4");
    c.checkpoint([Change::Remove("b"), streamed("big", 3 * 4096, 0xaa)])
        .expect("5");
    assert_eq!(
        (c.section("big").expect("big").offset, c.iteration()),
        (8 * 4096, 5)
    );
    drop(c);
    let f = vfs
        .open(Path::new(FILE), OpenMode::ReadWrite)
        .expect("open");
    f.set_len(8 * 4096).expect("cut");
    f.sync_data().expect("sync");
    drop(f);
    let c = open(&vfs).expect("reopen");
    assert_eq!(c.iteration(), 4);
    assert!(matches!(
        c.slots()[0],
        SlotState::Broken { iteration: 5, .. }
    ));
    (fs, vfs)
}

#[test]
fn a_broken_slot_never_comes_back_after_a_failed_checkpoint() {
    let steps = {
        let (fs, vfs) = cut_after_five_states();
        let mut c = open(&vfs).expect("open");
        let start = fs.ops();
        c.checkpoint([streamed("d", 4 * 4096, 0xbb)])
            .expect("checkpoint");
        fs.ops() - start
    };
    for n in 1..=steps {
        let (fs, vfs) = cut_after_five_states();
        let mut c = open(&vfs).expect("open");
        fs.fail_at(n);
        let _ = c.checkpoint([streamed("d", 4 * 4096, 0xbb)]);
        drop(c);
        let vfs: Arc<dyn Vfs> = Arc::new(fs.process_crash_image());
        let c = open(&vfs).expect("reopen");
        let bad = c.verify().expect("verify");
        assert!(
            bad.is_empty(),
            "failure at step {n} of {steps}: opened at iteration {} with damaged sections {bad:?}",
            c.iteration()
        );
    }
}
