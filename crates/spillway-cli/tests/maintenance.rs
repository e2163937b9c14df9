//! The maintenance commands on stores damaged the ordinary ways (a cut or deleted segment, a
//! flipped byte, garbage in a small file, an empty directory, a held lock): each case asserts
//! the exit code, the message, and that nothing a checksum still vouches for is deleted.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
mod common;

use std::process::Command;

use common::{expect, spillway, text};

use spillway::store::log::verify;
use spillway::{BlobStore, ContentKey, LogStore, LogStoreOptions};

/// A store of a rooted graph: 240 leaves of 1 KiB, 24 parents of 10 leaves each, and the root
/// over the parents, written last (so it is the last record of the last segment); plus 20
/// unrooted objects (garbage for gc). 64 KiB segments: several of them.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    root: ContentKey,
    /// Every stored key.
    all: BTreeSet<ContentKey>,
    garbage: BTreeSet<ContentKey>,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("store");
        let store = LogStore::open_with(&dir, LogStoreOptions::default().segment_size(64 << 10))
            .expect("create");
        let common::Graph {
            root, all, garbage, ..
        } = common::write_graph(&store, 20, 24, 10, 1000);
        store.close().expect("close");
        let f = Fixture {
            _tmp: tmp,
            dir,
            root,
            all,
            garbage,
        };
        assert!(f.segments().len() >= 4, "several segments");
        f
    }

    fn d(&self) -> &str {
        self.dir.to_str().expect("utf-8 path")
    }

    fn segments(&self) -> Vec<PathBuf> {
        let mut s: Vec<PathBuf> = fs::read_dir(&self.dir)
            .expect("list")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        s.sort();
        s
    }

    /// Every file's bytes: a refused command must leave them all as they were.
    fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(&self.dir)
            .expect("list")
            .map(|e| e.expect("entry").path())
            .filter(|p| !p.ends_with("LOCK"))
            .map(|p| {
                let b = fs::read(&p).expect("read");
                (p, b)
            })
            .collect();
        files.sort();
        files
    }

    /// Keys of every put record that a checksum vouches for, wherever it is (read-only repair
    /// mode steps over damage and changes nothing).
    fn vouched(&self) -> BTreeSet<ContentKey> {
        let store = LogStore::open_with(
            &self.dir,
            LogStoreOptions::default().read_only(true).repair(true),
        )
        .expect("read-only repair open");
        store.keys().expect("keys").into_iter().collect()
    }
}

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).expect("read");
    b[at] ^= 0x40;
    fs::write(path, b).expect("write");
}

fn cut(path: &Path, by: u64) {
    let f = fs::OpenOptions::new().write(true).open(path).expect("open");
    let len = f.metadata().expect("stat").len();
    f.set_len(len - by).expect("truncate");
}

#[test]
fn gc_on_a_store_whose_root_object_is_cut_off_deletes_nothing() {
    let f = Fixture::new();
    let last = f.segments().pop().expect("a segment");
    cut(&last, 5);
    let before = f.snapshot();
    let o = spillway(&["gc", f.d()]);
    expect(
        &o,
        1,
        &[
            "durable data is gone",
            "Nothing was changed",
            "verify --repair",
        ],
    );
    assert_eq!(f.snapshot(), before, "gc changed the store");

    // Repair cuts the torn record and names the lost key; the root now dangles.
    let o = spillway(&["verify", "--repair", f.d()]);
    expect(
        &o,
        1,
        &[
            &f.root.to_string(),
            "lost",
            "root \"graph\" dangles",
            "what it cannot restore",
        ],
    );
    let vouched = f.vouched();
    assert_eq!(vouched.len(), f.all.len() - 1);
    // A second verify still says so.
    expect(
        &spillway(&["verify", f.d()]),
        1,
        &["root \"graph\" dangles"],
    );
    // And gc still deletes nothing: its graph has a hole.
    let o = spillway(&["gc", f.d()]);
    expect(
        &o,
        1,
        &["deleted nothing", "root \"graph\"", &f.root.to_string()],
    );
    assert_eq!(f.vouched(), vouched);
}

#[test]
fn gc_on_a_store_whose_last_segment_is_deleted_deletes_nothing() {
    let f = Fixture::new();
    let last = f.segments().pop().expect("a segment");
    fs::remove_file(&last).expect("remove");
    let before = f.snapshot();
    for args in [&["gc"][..], &["compact"], &["gc", "--force"]] {
        let mut a = args.to_vec();
        a.push(f.d());
        let o = spillway(&a);
        expect(&o, 1, &["the file is missing", "durable data is gone"]);
        assert_eq!(f.snapshot(), before, "{args:?} changed the store");
    }
    let o = spillway(&["verify", f.d()]);
    expect(&o, 1, &["the file is missing", "root \"graph\" dangles"]);
}

#[test]
fn a_deleted_sealed_segment_is_found_and_forced_gc_keeps_what_survives() {
    let f = Fixture::new();
    let segs = f.segments();
    fs::remove_file(&segs[1]).expect("remove");
    let seg_name = segs[1]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    expect(
        &spillway(&["verify", f.d()]),
        1,
        &[&seg_name, "the file is missing"],
    );
    expect(&spillway(&["gc", f.d()]), 1, &[&seg_name]);
    let o = spillway(&["verify", "--repair", f.d()]);
    expect(&o, 1, &["that the old index checkpoint listed"]);
    let vouched = f.vouched();
    assert!(vouched.len() < f.all.len());
    // Kept counts only what is stored: never more objects than the store holds.
    expect(&spillway(&["gc", f.d()]), 1, &["deleted nothing"]);
    let o = spillway(&["gc", "--force", "--json", f.d()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let kept = j["kept"].as_u64().expect("kept");
    let deleted = j["deleted"].as_u64().expect("deleted");
    assert!(j["missing"].as_u64().expect("missing") > 0);
    assert_eq!(j["damaged_roots"], serde_json::json!(["graph"]));
    let after = f.vouched();
    assert_eq!(kept, after.len() as u64, "kept = found and reachable: {j}");
    assert_eq!(kept + deleted, vouched.len() as u64);
    // Only unreachable objects went: every survivor of the rooted graph is still there.
    assert!(after.contains(&f.root));
    for g in &f.garbage {
        assert!(!after.contains(g));
    }
}

#[test]
fn verify_finds_every_kind_of_damage_to_the_roots_file() {
    for (what, bytes) in [
        ("garbage", Some(b"not a roots file at all".to_vec())),
        ("zero-length", Some(Vec::new())),
        ("one flipped byte", None),
    ] {
        let f = Fixture::new();
        let roots = f.dir.join("ROOTS");
        match bytes {
            Some(b) => fs::write(&roots, b).expect("write"),
            None => flip(&roots, 20),
        }
        let o = spillway(&["verify", f.d()]);
        expect(&o, 1, &["the roots file is damaged"]);
        expect(&spillway(&["inspect", f.d()]), 1, &["roots"]);
        let before = f.snapshot();
        let o = spillway(&["gc", f.d()]);
        expect(&o, 1, &["roots file"]);
        assert_eq!(f.snapshot(), before, "{what}: gc changed the store");
        // Repair cannot invent root names: it says so and the store stays flagged.
        let o = spillway(&["verify", "--repair", f.d()]);
        expect(&o, 1, &["the roots file is damaged", "set the roots again"]);
        assert_eq!(f.vouched(), f.all, "{what}");
    }
}

#[test]
fn garbage_in_the_sync_file_is_reported_refused_and_repaired() {
    for (what, bytes) in [
        (
            "garbage",
            b"not a sync record, and longer than one slot of it: 48 bytes".to_vec(),
        ),
        ("a flipped byte", Vec::new()),
    ] {
        let f = Fixture::new();
        let sync = f.dir.join("SYNC");
        if bytes.is_empty() {
            flip(&sync, 4096 + 20);
            flip(&sync, 20);
        } else {
            fs::write(&sync, bytes).expect("write");
        }
        expect(
            &spillway(&["verify", f.d()]),
            1,
            &["the sync record is damaged"],
        );
        let before = f.snapshot();
        for cmd in ["gc", "compact"] {
            expect(&spillway(&[cmd, f.d()]), 1, &["sync record"]);
            assert_eq!(f.snapshot(), before, "{what}: {cmd} changed the store");
        }
        let o = spillway(&["verify", "--repair", f.d()]);
        expect(&o, 0, &["wrote the damaged SYNC record again"]);
        expect(&spillway(&["verify", f.d()]), 0, &["ok"]);
        assert_eq!(f.vouched(), f.all, "{what}");
    }
}

#[test]
fn maintenance_on_an_empty_directory_exits_2_and_creates_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().to_str().expect("utf-8");
    for args in [
        &["verify", "--repair"][..],
        &["verify"],
        &["compact"],
        &["gc"],
        &["gc", "--force"],
        &["inspect"],
    ] {
        let mut a = args.to_vec();
        a.push(d);
        let o = spillway(&a);
        expect(
            &o,
            2,
            &["is not a spillway store", "the directory is empty"],
        );
        assert_eq!(
            fs::read_dir(tmp.path()).expect("list").count(),
            0,
            "{args:?} created something"
        );
    }
}

#[test]
fn salvage_keeps_every_undamaged_record_of_a_segment_with_a_flipped_byte() {
    let f = Fixture::new();
    let seg = f.segments()[1].clone();
    let len = fs::metadata(&seg).expect("stat").len() as usize;
    flip(&seg, len / 2);
    let vouched = f.vouched();
    assert_eq!(vouched.len(), f.all.len() - 1, "one record damaged");
    let lost: Vec<&ContentKey> = f.all.difference(&vouched).collect();
    // A normal open does not scan under the checkpoint: gc meets the damage when it reads
    // the record, and stops.
    let before = f.snapshot();
    expect(
        &spillway(&["gc", f.d()]),
        1,
        &["checksum mismatch", "verify --repair"],
    );
    assert_eq!(f.snapshot(), before);

    let o = spillway(&["verify", "--repair", f.d()]);
    let name = seg.file_name().expect("name").to_string_lossy().to_string();
    expect(
        &o,
        1,
        &[
            &format!("dropped {}", seg.display()),
            &format!("salvaged {}", seg.display()),
            &lost[0].to_string(),
            "root \"graph\" dangles",
        ],
    );
    assert!(!seg.exists(), "{name} was rewritten and removed");
    assert_eq!(f.vouched(), vouched, "every undamaged record kept");
    let report = verify(&f.dir).expect("verify");
    assert!(report.damaged.is_empty() && report.lost_keys.is_empty());
}

#[test]
fn json_output_parses_and_carries_the_documented_fields() {
    let f = Fixture::new();
    let parse = |args: &[&str], code: i32| -> serde_json::Value {
        let o = spillway(args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", text(&o));
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}): {}", text(&o)))
    };
    let has = |v: &serde_json::Value, fields: &[&str]| {
        for field in fields {
            assert!(v.get(*field).is_some(), "no {field:?} in {v}");
        }
    };
    let v = parse(&["inspect", "--json", f.d()], 0);
    has(
        &v,
        &[
            "ok",
            "store",
            "objects",
            "live_bytes",
            "disk_bytes",
            "segments",
            "live_share",
            "checkpoint",
            "scan",
            "roots",
            "torn_tail",
            "damaged",
            "missing",
            "lost_keys",
        ],
    );
    assert_eq!(v["objects"].as_u64(), Some(f.all.len() as u64));
    assert_eq!(v["roots"][0]["name"], "graph");
    let v = parse(&["verify", "--json", f.d()], 0);
    has(&v, &["ok", "store", "repair", "verify"]);
    has(
        &v["verify"],
        &[
            "segments",
            "records",
            "puts",
            "tombstones",
            "bytes",
            "live_objects",
            "problems",
            "notes",
            "damaged",
            "missing",
            "lost_keys",
            "torn_tail",
            "roots",
            "dangling_children",
        ],
    );
    assert_eq!(v["ok"], true);
    assert_eq!(v["verify"]["roots"][0]["whole"], true);
    let v = parse(&["verify", "--repair", "--json", f.d()], 0);
    has(
        &v["repair"],
        &[
            "marker_rewritten",
            "sync_rewritten",
            "torn_tail_cut",
            "damaged",
            "salvage",
            "missing",
            "lost_keys",
        ],
    );
    let v = parse(&["gc", "--json", f.d()], 0);
    has(
        &v,
        &[
            "ok",
            "store",
            "roots",
            "kept",
            "deleted",
            "freed_bytes",
            "forced",
            "missing",
            "missing_keys",
            "damaged_roots",
        ],
    );
    assert_eq!(v["deleted"].as_u64(), Some(f.garbage.len() as u64));
    assert_eq!(
        v["kept"].as_u64(),
        Some((f.all.len() - f.garbage.len()) as u64)
    );
    let v = parse(&["compact", "--json", "--below", "1", f.d()], 0);
    has(
        &v,
        &[
            "ok",
            "store",
            "segments_removed",
            "records_copied",
            "tombstones_copied",
            "bytes_removed",
            "bytes_copied",
            "bytes_reclaimed",
            "disk_bytes_before",
            "disk_bytes_after",
        ],
    );
    assert_eq!(
        v["disk_bytes_before"].as_u64().expect("before")
            - v["disk_bytes_after"].as_u64().expect("after"),
        v["bytes_reclaimed"].as_u64().expect("reclaimed"),
        "what compact reports is what the disk gives back: {v}"
    );
    // An error is one JSON document too.
    let tmp = tempfile::tempdir().expect("tempdir");
    let v = parse(&["gc", "--json", tmp.path().to_str().expect("utf-8")], 2);
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit_code"], 2);
    has(&v["error"], &["message", "causes", "hint", "damage"]);
}

#[test]
fn a_locked_store_is_refused_with_the_holder_named_and_what_to_run_instead() {
    let f = Fixture::new();
    let held = LogStore::open(&f.dir).expect("hold the lock");
    for cmd in ["gc", "compact"] {
        let o = spillway(&[cmd, f.d()]);
        expect(
            &o,
            2,
            &[
                "locked for writing by process",
                "hint:",
                "spillway inspect",
                "spillway verify",
            ],
        );
    }
    expect(&spillway(&["verify", "--repair", f.d()]), 2, &["locked"]);
    // The commands the hint names work while the lock is held.
    expect(&spillway(&["inspect", f.d()]), 0, &["graph"]);
    expect(&spillway(&["verify", f.d()]), 0, &["ok"]);
    drop(held);
}

#[test]
fn every_subcommand_states_its_exit_codes_and_gc_says_it_deletes() {
    for cmd in ["demo", "inspect", "verify", "compact", "gc"] {
        let o = spillway(&[cmd, "--help"]);
        expect(&o, 0, &["Exit codes:", "  0  ", "  1  ", "  2  "]);
    }
    expect(&spillway(&["gc", "--help"]), 0, &["DELETES"]);
    expect(&spillway(&["--help"]), 0, &["Exit codes:"]);
}

#[test]
fn no_color_is_respected() {
    let run = |no_color: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_spillway"));
        c.args(["verify", "--no-such-flag"])
            .env("CLICOLOR_FORCE", "1");
        if no_color {
            c.env("NO_COLOR", "1");
        } else {
            c.env_remove("NO_COLOR");
        }
        c.output().expect("run")
    };
    let colored = run(false);
    assert_eq!(colored.status.code(), Some(2));
    assert!(
        colored.stderr.contains(&0x1b),
        "forced colour should colour the usage error (the check below would prove nothing)"
    );
    let plain = run(true);
    assert_eq!(plain.status.code(), Some(2));
    assert!(!plain.stderr.contains(&0x1b), "{}", text(&plain));
}

/// The demo on S3 (through its local cache), then inspect, verify and gc on the prefix; skipped
/// without the local S3 test server (CI always starts one).
#[test]
fn the_commands_work_on_an_s3_prefix() {
    let Ok(base) = std::env::var("SPILLWAY_S3_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must start the S3 test server"
        );
        eprintln!("skipped: no S3 test server (run `eval \"$(.ci/s3-server)\"` first)");
        return;
    };
    let url = format!("{base}/cli-{}", std::process::id());
    let o = spillway(&["demo", "-q", "--budget", "1MiB", "--store", &url]);
    expect(&o, 0, &["ok: every value", "S3 store"]);
    expect(&spillway(&["inspect", &url]), 0, &["demo/build"]);
    expect(&spillway(&["verify", &url]), 0, &["ok"]);
    let o = spillway(&["gc", "--json", &url]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["deleted"], 0, "{v}");
    assert!(v["kept"].as_u64().expect("kept") > 100, "{v}");
    expect(
        &spillway(&["verify", "--repair", &url]),
        2,
        &["no log to repair"],
    );
    expect(
        &spillway(&["compact", &url]),
        2,
        &["an S3 store has no log to compact"],
    );
}
