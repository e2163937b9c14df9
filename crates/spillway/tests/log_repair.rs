//! Damage and repair: a normal open tells a torn write (cut) from lost durable data (refused,
//! nothing changed); repair mode keeps every record a checksum still vouches for, salvages
//! damaged segments crash-safely, and names what is lost.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{Obj, objects_of_1000 as objects};
use spillway::format::record::RECORD_HEADER_LEN;
use spillway::format::{checkpoint, segment};
use spillway::vfs::{SimFs, Vfs};
use spillway::{BlobStore, ContentKey, Durability, LogStore, LogStoreOptions};

const DIR: &str = "/store";

fn opts() -> LogStoreOptions {
    LogStoreOptions::default().segment_size(4096)
}

const REC: u64 = RECORD_HEADER_LEN as u64 + 1000;

/// Offset of the `i`-th record of a segment whose records all have `REC` bytes.
fn nth(i: u64) -> u64 {
    segment::SEGMENT_HEADER_LEN as u64 + i * REC
}

fn seg(id: u64) -> PathBuf {
    Path::new(DIR).join(segment::file_name(id))
}

fn open(fs: &SimFs, opts: LogStoreOptions) -> spillway::Result<LogStore> {
    LogStore::open_on(Arc::new(fs.clone()), Path::new(DIR), opts)
}

/// A cleanly closed store holding `objs` (so its checkpoint's tail is at the end of the log).
fn closed_store(objs: &[Obj]) -> SimFs {
    let fs = SimFs::new();
    let store = open(&fs, opts()).expect("open");
    for o in objs {
        store.put(o.put()).expect("put");
    }
    store.close().expect("close");
    fs
}

/// A store closed after `checkpointed`, then given `after` durably and killed before closing:
/// the image a process crash leaves, whose checkpoint's tail is before `after`.
fn crashed_store(checkpointed: &[Obj], after: &[Obj]) -> SimFs {
    let fs = closed_store(checkpointed);
    let store = open(&fs, opts()).expect("reopen");
    for o in after {
        store.put(o.put()).expect("put");
    }
    store.flush(Durability::Durable).expect("flush");
    let img = fs.process_crash_image();
    drop(store);
    img
}

/// A closed store of nine objects with a payload byte of object 4 flipped: the middle record
/// of segment 2, a sealed segment under the checkpoint.
fn object_4_damaged(objs: &[Obj]) -> SimFs {
    let fs = closed_store(objs);
    fs.corrupt(&seg(2), (nth(1) + 500) as usize, &[0x5a])
        .expect("corrupt");
    fs
}

fn len(fs: &SimFs, path: &Path) -> u64 {
    fs.read_file(path).expect("read").len() as u64
}

fn cut_to(fs: &SimFs, path: &Path, new_len: u64) {
    let data = fs.read_file(path).expect("read");
    fs.remove_file(path).expect("remove");
    let f = fs
        .open(path, spillway::vfs::OpenMode::Create)
        .expect("create");
    f.write_at(&data[..new_len as usize], 0).expect("write");
    f.sync_data().expect("sync");
    fs.sync_dir(Path::new(DIR)).expect("sync dir");
}

/// Every file's bytes, to show that a refusal changed nothing.
fn snapshot(fs: &SimFs) -> Vec<(String, Vec<u8>)> {
    let mut names = fs.read_dir(Path::new(DIR)).expect("list");
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let bytes = fs.read_file(&Path::new(DIR).join(&n)).unwrap_or_default();
            (n, bytes)
        })
        .collect()
}

fn assert_holds(store: &LogStore, objs: &[Obj]) {
    for o in objs {
        assert_eq!(
            store.get(&o.key).expect("get"),
            Some(o.blob()),
            "object {}",
            o.key
        );
    }
}

fn assert_lacks(store: &LogStore, objs: &[Obj]) {
    for o in objs {
        assert_eq!(store.get(&o.key).expect("get"), None, "object {}", o.key);
    }
}

fn keys(objs: &[Obj]) -> Vec<ContentKey> {
    let mut k: Vec<_> = objs.iter().map(|o| o.key).collect();
    k.sort_unstable();
    k
}

#[test]
fn a_torn_tail_after_the_checkpoint_is_cut_and_reported() {
    let objs = objects(6);
    // Three more objects after the checkpoint, two durable and one written, then the process
    // dies: segment 2 holds them, and its last record (never acknowledged durable) is torn in
    // half as a crash mid-write would leave it.
    let fs = closed_store(&objs[..3]);
    let store = open(&fs, opts()).expect("reopen");
    for o in &objs[3..5] {
        store.put(o.put()).expect("put");
    }
    store.flush(Durability::Durable).expect("flush");
    store.put(objs[5].put()).expect("put");
    store.flush(Durability::Written).expect("flush");
    let img = fs.process_crash_image();
    drop(store);
    assert_eq!(len(&img, &seg(2)), nth(3));
    cut_to(&img, &seg(2), nth(3) - REC / 2);

    let store = open(&img, opts()).expect("a torn tail is not an error");
    let report = store.recovery().clone();
    let cut = report.torn_tail.clone().expect("torn tail reported");
    assert_eq!((cut.segment, cut.offset), (2, nth(2)));
    assert_eq!(cut.bytes_cut, REC - REC / 2);
    assert!(report.checkpoint_used, "{report:?}");
    assert!(!report.found_damage(), "{report:?}");
    assert_holds(&store, &objs[..5]);
    assert_lacks(&store, &objs[5..]);
    assert_eq!(len(&img, &seg(2)), nth(2), "cut on disk");
}

#[test]
fn lost_durable_bytes_are_refused_and_nothing_is_changed() {
    let objs = objects(7);
    // Segments 1 and 2 full, segment 3 holding object 6; the checkpoint's tail is after it.
    let fs = closed_store(&objs);
    cut_to(&fs, &seg(3), nth(1) - 5);
    let before = snapshot(&fs);
    for read_only in [false, true] {
        let err = open(&fs, opts().read_only(read_only)).expect_err("durable data is gone");
        assert!(err.is_corruption(), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&segment::file_name(3)), "{msg}");
        assert!(msg.contains("durable data is gone (1 object)"), "{msg}");
        assert!(msg.contains("verify --repair"), "{msg}");
    }
    assert_eq!(snapshot(&fs), before, "a refused open changes nothing");

    // Read-only repair mode tells what repair would do, and changes nothing either.
    let dry = open(&fs, opts().read_only(true).repair(true)).expect("read-only repair");
    let r = dry.recovery().clone();
    assert_eq!(r.lost_keys, keys(&objs[6..]));
    assert_eq!(r.missing.len(), 1);
    assert_eq!((r.missing[0].segment, r.missing[0].objects), (3, 1));
    assert_holds(&dry, &objs[..6]);
    drop(dry);
    assert_eq!(snapshot(&fs), before);

    // Repair cuts the torn record and names the key it lost; the store then opens normally.
    let store = open(&fs, opts().repair(true)).expect("repair");
    let r = store.recovery().clone();
    assert_eq!(r.lost_keys, keys(&objs[6..]));
    let cut = r.torn_tail.expect("cut");
    assert_eq!((cut.segment, cut.offset), (3, nth(0)));
    assert_holds(&store, &objs[..6]);
    assert_lacks(&store, &objs[6..]);
    store.close().expect("close");
    let store = open(&fs, opts()).expect("normal open after repair");
    assert!(!store.recovery().found_damage());
    assert_eq!(store.keys().expect("keys").len(), 6);
}

#[test]
fn a_deleted_segment_is_refused_and_repair_names_every_object_it_held() {
    let objs = objects(9);
    for (victim, lost) in [(3u64, 6..9), (2, 3..6), (1, 0..3)] {
        let fs = closed_store(&objs);
        fs.remove_file(&seg(victim)).expect("remove");
        let err = open(&fs, opts()).expect_err("a segment is gone");
        assert!(err.is_corruption(), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&segment::file_name(victim)), "{msg}");
        assert!(msg.contains("the file is missing"), "{msg}");
        assert!(msg.contains("durable data is gone (3 objects)"), "{msg}");

        let store = open(&fs, opts().repair(true)).expect("repair");
        let r = store.recovery().clone();
        assert_eq!(r.lost_keys, keys(&objs[lost.clone()]), "segment {victim}");
        assert_eq!(r.missing[0].segment, victim);
        for (i, o) in objs.iter().enumerate() {
            let want = (!lost.contains(&i)).then(|| o.blob());
            assert_eq!(store.get(&o.key).expect("get"), want);
        }
        store.close().expect("close");
        open(&fs, opts()).expect("opens after repair");
    }
}

#[test]
fn a_missing_segment_after_the_checkpoint_is_noticed_by_the_gap() {
    let objs = objects(12);
    // Nine more objects after the checkpoint: segments 2, 3 and 4 (the active one, which
    // starts with object 9), durable, then a crash.
    let img = crashed_store(&objs[..3], &objs[3..]);
    assert!(img.read_file(&seg(4)).is_ok());
    img.remove_file(&seg(3)).expect("remove");
    let err = open(&img, opts()).expect_err("a hole in the log");
    assert!(err.to_string().contains(&segment::file_name(3)), "{err}");
    let store = open(&img, opts().repair(true)).expect("repair");
    assert_eq!(store.recovery().missing[0].segment, 3);
    assert_holds(&store, &objs[..6]);
    assert_lacks(&store, &objs[6..9]);
    assert_holds(&store, &objs[9..]);
}

#[test]
fn repair_salvages_a_sealed_segment_with_a_flipped_byte() {
    let objs = objects(9);
    let fs = object_4_damaged(&objs);
    // A normal open does not scan under the checkpoint; the damage shows when read.
    let store = open(&fs, opts()).expect("open");
    assert!(
        store
            .get(&objs[4].key)
            .expect_err("damaged")
            .is_corruption()
    );
    drop(store);

    let store = open(&fs, opts().repair(true)).expect("repair");
    let r = store.recovery().clone();
    assert_eq!(r.damaged.len(), 1, "{r:?}");
    let d = &r.damaged[0];
    assert_eq!((d.segment, d.start, d.end), (2, nth(1), nth(2)));
    assert_eq!(r.lost_keys, keys(&objs[4..5]));
    let s = r.salvage.expect("salvaged");
    assert_eq!(s.segments, vec![2]);
    assert_eq!(s.records_copied, 2, "objects 3 and 5 copied out");
    assert_eq!(s.bytes_dropped, REC);
    assert!(
        fs.read_file(&seg(2)).is_err(),
        "the damaged segment is gone"
    );
    let kept: Vec<Obj> = objs
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != 4)
        .map(|(_, o)| o.clone())
        .collect();
    assert_holds(&store, &kept);
    assert_lacks(&store, &objs[4..5]);
    store.close().expect("close");
    let store = open(&fs, opts()).expect("reopen");
    assert_holds(&store, &kept);
    let v = spillway::store::log::verify_on(Arc::new(fs.clone()), Path::new(DIR)).expect("verify");
    assert!(v.is_clean(), "{:?}", v.problems);
}

#[test]
fn repair_keeps_the_valid_records_after_damage_in_the_last_segment() {
    let objs = objects(3);
    let fs = closed_store(&objs);
    fs.remove_file(&Path::new(DIR).join(checkpoint::CHECKPOINT_FILE))
        .expect("remove");
    fs.corrupt(&seg(1), (nth(1) + 40) as usize, &[0x01])
        .expect("corrupt");
    let before = snapshot(&fs);
    let err = open(&fs, opts()).expect_err("valid records follow: damage");
    assert!(err.is_corruption(), "{err}");
    assert!(
        err.to_string().contains(&format!("offset {}", nth(1))),
        "{err}"
    );
    assert_eq!(snapshot(&fs), before);

    let store = open(&fs, opts().repair(true)).expect("repair");
    let r = store.recovery().clone();
    assert!(r.torn_tail.is_none(), "salvaged, not cut: {r:?}");
    assert_eq!(r.salvage.expect("salvage").segments, vec![1]);
    assert_holds(&store, &[objs[0].clone(), objs[2].clone()]);
    assert_lacks(&store, &objs[1..2]);
    // The repaired store takes writes and keeps them.
    let fresh = Obj::generated(50, 700, Vec::new());
    store.put(fresh.put()).expect("put");
    store.close().expect("close");
    let store = open(&fs, opts()).expect("reopen");
    assert_holds(&store, &[objs[0].clone(), objs[2].clone(), fresh]);
}

#[test]
fn repair_salvages_the_record_behind_a_damaged_header() {
    let objs = objects(7);
    let fs = closed_store(&objs);
    fs.corrupt(&seg(3), 0, b"XXXX").expect("corrupt");
    let err = open(&fs, opts()).expect_err("damage under the checkpoint");
    assert!(err.is_corruption(), "{err}");
    let store = open(&fs, opts().repair(true)).expect("repair");
    let r = store.recovery().clone();
    assert!(r.lost_keys.is_empty(), "{r:?}");
    assert_eq!(r.salvage.expect("salvage").segments, vec![3]);
    assert_holds(&store, &objs);
    store.close().expect("close");
    let store = open(&fs, opts()).expect("reopen");
    assert_holds(&store, &objs);
}

#[test]
fn a_repair_cut_before_the_checkpoint_tail_survives_a_crash() {
    let objs = objects(7);
    let fs = closed_store(&objs);
    // A store without a durable mark (as a version 1 store is): the only record of segment 3
    // is damaged and nothing follows it, so repair cuts it, before the old checkpoint's tail.
    // New writes then fill the segment again past that tail.
    fs.remove_file(&Path::new(DIR).join("SYNC"))
        .expect("remove");
    fs.corrupt(&seg(3), (nth(0) + 300) as usize, &[0xff])
        .expect("corrupt");
    let store = open(&fs, opts().repair(true)).expect("repair");
    let cut = store.recovery().torn_tail.clone().expect("a cut");
    assert_eq!((cut.segment, cut.offset), (3, nth(0)));
    assert_eq!(store.recovery().lost_keys, keys(&objs[6..]));
    let fresh = [
        Obj::generated(100, 500, Vec::new()),
        Obj::generated(101, 1200, Vec::new()),
    ];
    for o in &fresh {
        store.put(o.put()).expect("put");
    }
    store.flush(Durability::Durable).expect("flush");
    // The process dies before closing: the old checkpoint must not be trusted over the new
    // contents of the segment it described.
    let img = fs.process_crash_image();
    drop(store);
    let store = open(&img, opts()).expect("reopen after the crash");
    assert_holds(&store, &objs[..6]);
    assert_lacks(&store, &objs[6..]);
    assert_holds(&store, &fresh);
    assert_eq!(store.keys().expect("keys").len(), 8);
}

/// Salvage stopped by an I/O failure at every step in turn, then power loss or a process crash:
/// a second repair always ends with every undamaged object, and nothing else lost.
#[test]
fn salvage_is_crash_safe_at_every_step() {
    let objs = objects(9);
    let kept: Vec<Obj> = objs
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != 4)
        .map(|(_, o)| o.clone())
        .collect();
    let mut completed = false;
    for n in 1..200u64 {
        let fs = object_4_damaged(&objs);
        fs.fail_at(n);
        let first = open(&fs, opts().repair(true));
        let failed = fs.has_failed();
        if let Ok(store) = &first {
            assert_holds(store, &kept);
        }
        let images = [
            ("power loss", fs.power_loss_image(n)),
            ("process crash", fs.process_crash_image()),
        ];
        drop(first);
        for (what, img) in images {
            let store = open(&img, opts().repair(true))
                .unwrap_or_else(|e| panic!("fail_at({n}), {what}: repair again: {e}"));
            for o in &kept {
                assert_eq!(
                    store.get(&o.key).expect("get"),
                    Some(o.blob()),
                    "fail_at({n}), {what}: object {}",
                    o.key
                );
            }
            store.close().expect("close");
            let store = open(&img, opts()).expect("normal open after the second repair");
            assert_holds(&store, &kept);
        }
        if !failed {
            // Opening, cutting, copying, syncing, the checkpoint, the removal: many steps.
            assert!(
                n > 10,
                "only {n} steps: the failures did not reach the salvage"
            );
            completed = true;
            break;
        }
    }
    assert!(completed, "the repair never ran to completion");
}

#[test]
fn compaction_stops_at_damage_under_a_live_record_and_drops_dead_damage() {
    let objs = objects(9);
    let fs = object_4_damaged(&objs);
    let store = open(&fs, opts()).expect("open");
    // Objects 3 and 5 deleted: segment 2 is mostly dead, a compaction victim, and the damaged
    // object 4 in it is live.
    store.delete(&[objs[3].key, objs[5].key]).expect("delete");
    let err = store.compact().expect_err("damage under a live record");
    assert!(err.is_corruption(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&segment::file_name(2)) && msg.contains(&format!("offset {}", nth(1))),
        "{msg}"
    );
    assert!(fs.read_file(&seg(2)).is_ok(), "nothing removed");
    assert_holds(&store, &[objs[0].clone(), objs[8].clone()]);
    // Once the damaged object is deleted, its bytes are dead and go with the segment.
    store.delete(&[objs[4].key]).expect("delete");
    let report = store.compact().expect("compact");
    assert!(report.segments_removed >= 1, "{report:?}");
    assert!(fs.read_file(&seg(2)).is_err());
    assert_holds(&store, &[objs[0].clone(), objs[6].clone(), objs[8].clone()]);
}

#[test]
fn compaction_reports_the_net_space_it_gives_back() {
    let objs = objects(9);
    let fs = closed_store(&objs);
    // Every record live: even the loosest threshold rewrites nothing.
    let store = open(&fs, opts().compact_below(1.0)).expect("open");
    let r = store.compact().expect("compact");
    assert_eq!((r.segments_removed, r.bytes_reclaimed), (0, 0), "{r:?}");
    // Two of three objects of segment 1 deleted: the third is copied, the segment removed.
    store.delete(&[objs[0].key, objs[1].key]).expect("delete");
    let r = store.compact().expect("compact");
    assert_eq!(r.segments_removed, 1, "{r:?}");
    assert_eq!(r.bytes_removed, nth(3));
    // The copy, plus a segment header if it started a new segment.
    assert!(r.bytes_copied == REC || r.bytes_copied == nth(1), "{r:?}");
    assert_eq!(r.bytes_reclaimed, nth(3) - r.bytes_copied);
    assert_holds(&store, &objs[2..]);
}

/// A `SYNC` file with no valid slot: `verify` reports it (as a normal open refuses the store),
/// and a repair writes it again from the log, after which the store opens and holds everything.
#[test]
fn a_damaged_sync_record_is_reported_by_verify_and_written_again_by_repair() {
    let objs = objects(20);
    let fs = closed_store(&objs);
    let sync = Path::new(DIR).join(spillway::format::sync::SYNC_FILE);
    let clean =
        spillway::store::log::verify_on(Arc::new(fs.clone()), Path::new(DIR)).expect("verify");
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    let garbage = vec![0x5a; 4144];
    let f = fs
        .open(&sync, spillway::vfs::OpenMode::Create)
        .expect("open SYNC");
    f.write_at(&garbage, 0).expect("write");
    f.sync_data().expect("sync");
    let report =
        spillway::store::log::verify_on(Arc::new(fs.clone()), Path::new(DIR)).expect("verify");
    assert!(
        report.problems.iter().any(|p| p.contains("SYNC")),
        "{:?}",
        report.problems
    );
    assert!(
        open(&fs, opts()).is_err(),
        "a normal open refuses the store"
    );
    drop(open(&fs, opts().repair(true)).expect("repair"));
    let store = open(&fs, opts()).expect("open after repair");
    assert_holds(&store, &objs);
    drop(store);
    let after = spillway::store::log::verify_on(Arc::new(fs), Path::new(DIR)).expect("verify");
    assert!(after.problems.is_empty(), "{:?}", after.problems);
}
