//! Walks every row of the log store's crash table in `docs/FORMAT.md` ("## Crash analysis"):
//! each row names a scenario here, and a row without one (or a scenario without a row) fails.
//!
//! A scenario runs a workload on a `SimFs`, picks from the clean run's trace of file operations
//! those the row is about (the write of the buffer, the sync of a segment, the rename of a
//! checkpoint, ...), and stops the machine at each in turn. Every crash is then reopened as a
//! power loss with several seeds (any subset of unsynced pages kept, torn pages and holes
//! included) and as a process crash, and checked: every object acknowledged `Durable` reads
//! back exactly, nothing unknown appears, and the row's outcome (a torn tail cut, a checkpoint
//! used or ignored, damage refused) is seen.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::Obj;
use spillway::format::{marker, segment};
use spillway::store::RecoveryReport;
use spillway::vfs::{OpenMode, SimFs, SimOp, Vfs};
use spillway::{BlobStore, ContentKey, Durability, LogStore, LogStoreOptions};

const DOC: &str = include_str!("../../../docs/FORMAT.md");
const DIR: &str = "/store";
/// Power-loss images taken of each crash.
const IMAGES: u64 = 6;

fn opts() -> LogStoreOptions {
    LogStoreOptions::default()
        .segment_size(4096)
        .write_buffer(1500)
        .checkpoint_every(1 << 40)
        .compact_below(0.9)
}

fn open(fs: &SimFs, o: LogStoreOptions) -> spillway::Result<LogStore> {
    LogStore::open_on(Arc::new(fs.clone()), Path::new(DIR), o)
}

fn path(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

fn is_segment(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .and_then(segment::parse_file_name)
        .is_some()
}

/// The rows of the crash table: their first cell.
fn rows() -> Vec<String> {
    let start = DOC
        .lines()
        .position(|l| l == "## Crash analysis")
        .expect("FORMAT.md has a crash analysis");
    DOC.lines()
        .skip(start + 1)
        .skip_while(|l| !l.starts_with("| crash during"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .collect()
}

/// What the workload was told: every object, and which were acknowledged durable.
#[derive(Default, Clone)]
struct Acks {
    objs: HashMap<ContentKey, Obj>,
    durable: Vec<ContentKey>,
    deleted: Vec<ContentKey>,
}

/// Puts objects in small batches, with durable and written flushes, checkpoints, a delete
/// and compaction; stops at the first error. `marks` records the op count around each
/// compaction (start, end) for the compaction rows.
fn workload(store: &LogStore, fs: &SimFs, acks: &mut Acks, marks: &mut Vec<(u64, u64)>) {
    let mut pending = Vec::new();
    for i in 0..40u64 {
        let o = Obj::generated(i, 300 + (i as usize * 37) % 500, Vec::new());
        acks.objs.insert(o.key, o.clone());
        if store.put(o.put()).is_err() {
            return;
        }
        pending.push(o.key);
        let step = match i % 7 {
            2 | 5 => store.flush(Durability::Durable).map(|_| true),
            3 => store.flush(Durability::Written).map(|_| false),
            6 => store.checkpoint().map(|_| true),
            _ => Ok(false),
        };
        match step {
            Ok(true) => acks.durable.append(&mut pending),
            Ok(false) => {}
            Err(_) => return,
        }
        if i == 20 {
            // Deleting makes the early segments mostly dead, for compaction.
            let victims: Vec<_> = acks.durable.drain(..8).collect();
            if store.delete(&victims).is_err() || store.flush(Durability::Durable).is_err() {
                return;
            }
            acks.deleted.extend(victims);
        }
        if i == 30 {
            let start = fs.ops();
            if store.compact().is_err() {
                return;
            }
            marks.push((start, fs.ops()));
        }
    }
}

/// Checks a reopened store against the acknowledgements.
fn check(store: &LogStore, acks: &Acks, what: &str) {
    for k in &acks.durable {
        let got = store
            .get(k)
            .unwrap_or_else(|e| panic!("{what}: get {k}: {e}"));
        assert_eq!(got, Some(acks.objs[k].blob()), "{what}: durable {k}");
    }
    for k in store.keys().expect("keys") {
        let o = acks
            .objs
            .get(&k)
            .unwrap_or_else(|| panic!("{what}: unknown key {k}"));
        assert_eq!(store.get(&k).expect("get"), Some(o.blob()), "{what}: {k}");
    }
}

/// Crashes the workload at every op the trace filter picks; returns how many crash points and
/// every recovery report of the reopened images.
fn sweep(pick: impl Fn(&[SimOp], usize, &[(u64, u64)]) -> bool) -> (usize, Vec<RecoveryReport>) {
    let fs = SimFs::new();
    let store = open(&fs, opts()).expect("open");
    let mut marks = Vec::new();
    workload(&store, &fs, &mut Acks::default(), &mut marks);
    drop(store);
    let trace = fs.trace();
    let points: Vec<u64> = (0..trace.len())
        .filter(|&i| pick(&trace, i, &marks))
        .map(|i| trace[i].n)
        .collect();
    assert!(
        !points.is_empty(),
        "the workload never reached the row's operation"
    );
    let mut reports = Vec::new();
    for &n in &points {
        let fs = SimFs::new();
        fs.fail_at(n);
        let mut acks = Acks::default();
        if let Ok(store) = open(&fs, opts()) {
            workload(&store, &fs, &mut acks, &mut Vec::new());
            drop(store);
        }
        assert!(fs.has_failed(), "fail_at({n}) never fired");
        let images = (0..IMAGES)
            .map(|s| {
                (
                    format!("fail_at({n}), power loss {s}"),
                    fs.power_loss_image(n * 31 + s),
                )
            })
            .chain([(
                format!("fail_at({n}), process crash"),
                fs.process_crash_image(),
            )]);
        for (what, img) in images {
            let store = open(&img, opts()).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
            check(&store, &acks, &what);
            reports.push(store.recovery().clone());
        }
    }
    (points.len(), reports)
}

fn on_file(op: &SimOp, name: &str) -> bool {
    op.path == path(name)
}

fn torn_cut(reports: &[RecoveryReport]) -> usize {
    reports.iter().filter(|r| r.torn_tail.is_some()).count()
}

fn row_buffering() -> usize {
    let fs = SimFs::new();
    let store = open(&fs, opts()).expect("open");
    let o = Obj::generated(1, 100, Vec::new());
    store.put(o.put()).expect("put");
    assert_eq!(store.get(&o.key).expect("get"), Some(o.blob()));
    let img = fs.power_loss_image(1);
    drop(store);
    let store = open(&img, opts()).expect("reopen");
    assert_eq!(store.get(&o.key).expect("get"), None, "Applied is lost");
    1
}

fn row_buffer_write() -> usize {
    let (n, reports) = sweep(|t, i, _| t[i].kind == "write" && is_segment(&t[i].path));
    assert!(torn_cut(&reports) > 0, "no torn tail was cut");
    n
}

fn row_segment_sync() -> usize {
    let (n, reports) = sweep(|t, i, _| {
        t[i].kind == "sync_data"
            && is_segment(&t[i].path)
            && t.get(i + 1).is_some_and(|o| on_file(o, "SYNC"))
    });
    assert!(torn_cut(&reports) > 0, "no torn tail was cut");
    n
}

fn row_sync_record() -> usize {
    let (n, reports) = sweep(|t, i, _| on_file(&t[i], "SYNC"));
    assert!(
        reports
            .iter()
            .all(|r| r.durable_mark.is_some() || !r.found_damage())
    );
    n
}

fn row_sealing() -> usize {
    sweep(|t, i, _| {
        t[i].kind == "sync_data"
            && is_segment(&t[i].path)
            && t.get(i + 1)
                .is_some_and(|o| o.kind == "create" && is_segment(&o.path))
    })
    .0
}

fn row_next_segment() -> usize {
    let (n, reports) = sweep(|t, i, _| {
        is_segment(&t[i].path)
            && t[i].path != path(&segment::file_name(1))
            && (t[i].kind == "create"
                || (t[i].kind == "write"
                    && t[..i]
                        .iter()
                        .rev()
                        .find(|o| o.path == t[i].path)
                        .is_some_and(|o| o.kind == "create")))
    });
    assert!(torn_cut(&reports) > 0, "no half-created segment was reset");
    n
}

fn row_checkpoint_tmp() -> usize {
    let (n, reports) = sweep(|t, i, _| on_file(&t[i], "index.ckpt.tmp") && t[i].kind != "rename");
    assert!(
        reports.iter().all(|r| r.checkpoint_problem.is_none()),
        "the temporary file is never read"
    );
    n
}

fn row_checkpoint_rename() -> usize {
    let (n, reports) = sweep(|t, i, _| on_file(&t[i], "index.ckpt.tmp") && t[i].kind == "rename");
    assert!(reports.iter().all(|r| r.checkpoint_problem.is_none()));
    n
}

/// Ops of a compaction before (or after) the rename of its checkpoint.
fn in_compaction(t: &[SimOp], i: usize, marks: &[(u64, u64)], before: bool) -> bool {
    marks.iter().any(|&(a, b)| {
        let n = t[i].n;
        let rename = t
            .iter()
            .find(|o| o.n > a && o.n <= b && o.kind == "rename" && on_file(o, "index.ckpt.tmp"))
            .map_or(b, |o| o.n);
        n > a && n <= b && if before { n < rename } else { n > rename }
    })
}

fn row_compaction_before() -> usize {
    sweep(|t, i, m| in_compaction(t, i, m, true)).0
}

fn row_compaction_after() -> usize {
    sweep(|t, i, m| in_compaction(t, i, m, false)).0
}

/// A store whose last segment holds durable records, then written ones, and a power loss: over
/// many seeds some image keeps a later page and loses an earlier one.
fn row_power_loss() -> usize {
    let fs = SimFs::new();
    let store = open(&fs, opts().segment_size(1 << 20).write_buffer(1 << 20)).expect("open");
    let mut acks = Acks::default();
    for i in 0..4u64 {
        let o = Obj::generated(100 + i, 3000, Vec::new());
        store.put(o.put()).expect("put");
        acks.objs.insert(o.key, o.clone());
        acks.durable.push(o.key);
    }
    store.flush(Durability::Durable).expect("flush");
    for i in 0..8u64 {
        let o = Obj::generated(200 + i, 3000, Vec::new());
        store.put(o.put()).expect("put");
        acks.objs.insert(o.key, o);
    }
    store.flush(Durability::Written).expect("flush");
    let seg = path(&segment::file_name(1));
    let mut holes = 0;
    let seeds = 64;
    for seed in 0..seeds {
        let img = fs.power_loss_image(seed);
        let data = img.read_file(&seg).expect("segment");
        // A hole: a zero page before the end of the data kept.
        let last = data.iter().rposition(|&b| b != 0).unwrap_or(0);
        if data[..last]
            .chunks(4096)
            .any(|c| c.len() == 4096 && c.iter().all(|&b| b == 0))
        {
            holes += 1;
        }
        let store = open(&img, opts()).unwrap_or_else(|e| panic!("power loss {seed}: {e}"));
        check(&store, &acks, &format!("power loss {seed}"));
    }
    drop(store);
    assert!(holes > 0, "no image had a hole");
    seeds as usize
}

/// A store given `n` objects, then closed (with a checkpoint) or, `killed`, made durable and
/// killed (no checkpoint, so an open scans the whole log).
fn store_of(n: u64, killed: bool) -> (SimFs, Vec<Obj>) {
    let fs = SimFs::new();
    let store = open(&fs, opts()).expect("open");
    let objs: Vec<_> = (0..n)
        .map(|i| Obj::generated(i, 1000, Vec::new()))
        .collect();
    for o in &objs {
        store.put(o.put()).expect("put");
    }
    if !killed {
        store.close().expect("close");
        return (fs, objs);
    }
    store.flush(Durability::Durable).expect("flush");
    let img = fs.process_crash_image();
    drop(store);
    (img, objs)
}

fn closed_store(n: u64) -> (SimFs, Vec<Obj>) {
    store_of(n, false)
}

fn durable_store(n: u64) -> (SimFs, Vec<Obj>) {
    store_of(n, true)
}

fn last_segment(fs: &SimFs) -> PathBuf {
    let mut names: Vec<_> = fs
        .read_dir(Path::new(DIR))
        .expect("list")
        .into_iter()
        .filter(|n| segment::parse_file_name(n).is_some())
        .collect();
    names.sort();
    path(names.last().expect("a segment"))
}

fn row_bit_rot() -> usize {
    let (fs, objs) = durable_store(7);
    let seg = last_segment(&fs);
    fs.corrupt(&seg, 32 + 36 + 10, &[0xee]).expect("corrupt");
    let err = open(&fs, opts()).expect_err("damage before the mark");
    let msg = err.to_string();
    assert!(err.is_corruption(), "{msg}");
    assert!(
        msg.contains(&format!("{} offset 32", seg.display())),
        "{msg}"
    );
    assert!(msg.contains("acknowledged data that was damaged"), "{msg}");
    let store = open(&fs, opts().repair(true)).expect("repair");
    assert!(store.recovery().found_damage());
    let kept = objs
        .iter()
        .filter(|o| store.get(&o.key).ok().flatten().is_some())
        .count();
    assert_eq!(kept, objs.len() - 1, "every other object salvaged");
    1
}

/// A last segment with a durable record, a hole, then a valid record: what a power loss leaves.
fn holed_store(sync: bool) -> (SimFs, PathBuf) {
    let (fs, _) = durable_store(6);
    let seg = last_segment(&fs);
    let data = fs.read_file(&seg).expect("read");
    // Records start at 32; the first is 1036 bytes: zero it, keep what follows.
    let f = fs.open(&seg, OpenMode::ReadWrite).expect("open");
    f.write_at(&vec![0u8; 1036], 32).expect("zero");
    f.sync_data().expect("sync");
    assert!(data.len() > 32 + 1036 * 2, "a record follows the hole");
    if !sync {
        fs.remove_file(&path("SYNC")).expect("remove");
    }
    (fs, seg)
}

fn row_version_1() -> usize {
    // Without a mark, a hole with valid records after it is refused.
    let (fs, seg) = holed_store(false);
    let err = open(&fs, opts()).expect_err("refused");
    assert!(err.to_string().contains("valid records follow"), "{err}");
    assert!(
        err.to_string().contains(&seg.display().to_string()),
        "{err}"
    );
    // With the mark, the same hole is damage to acknowledged data.
    let (fs, _) = holed_store(true);
    let err = open(&fs, opts()).expect_err("refused");
    assert!(
        err.to_string()
            .contains("acknowledged data that was damaged"),
        "{err}"
    );
    // And with nothing valid after it, cut.
    let (fs, objs) = durable_store(6);
    fs.remove_file(&path("SYNC")).expect("remove");
    let seg = last_segment(&fs);
    let len = fs.read_file(&seg).expect("read").len();
    fs.corrupt(&seg, len - 10, &[0xee]).expect("corrupt");
    let store = open(&fs, opts()).expect("cut");
    assert!(store.recovery().torn_tail.is_some());
    assert_eq!(store.keys().expect("keys").len(), objs.len() - 1);
    2
}

fn row_upgrade() -> usize {
    let mut points = 0;
    let (base, objs) = closed_store(4);
    base.remove_file(&path("SYNC")).expect("remove");
    let m = base.open(&path("STORE"), OpenMode::Create).expect("marker");
    m.write_at(&marker::encode(1), 0).expect("v1");
    m.sync_data().expect("sync");
    let probe = base.process_crash_image();
    drop(open(&probe, opts()).expect("upgrade"));
    let upgrade_ops = probe.ops();
    assert_eq!(
        probe.read_file(&path("STORE")).expect("marker"),
        marker::encode(2)
    );
    for n in 1..=upgrade_ops {
        let fs = base.process_crash_image();
        fs.fail_at(n);
        let _ = open(&fs, opts());
        for img in [fs.power_loss_image(n), fs.process_crash_image()] {
            let store = open(&img, opts()).unwrap_or_else(|e| panic!("fail_at({n}): {e}"));
            for o in &objs {
                assert_eq!(store.get(&o.key).expect("get"), Some(o.blob()));
            }
            drop(store);
            assert!(
                !img.read_dir(Path::new(DIR))
                    .expect("list")
                    .contains(&"STORE.tmp".into())
            );
        }
        points += 1;
    }
    points
}

/// Salvage of a damaged sealed segment stopped at each of its operations: before its
/// checkpoint, a normal open refuses the damage again; after it, the store opens; a second
/// repair always ends with every undamaged object.
fn salvage(before: bool) -> usize {
    let (base, objs) = closed_store(9);
    base.corrupt(&path(&segment::file_name(1)), 32 + 36 + 500, &[0x5a])
        .expect("corrupt");
    let probe = base.process_crash_image();
    drop(open(&probe, opts().repair(true)).expect("repair"));
    let trace = probe.trace();
    let rename = trace
        .iter()
        .find(|o| o.kind == "rename" && on_file(o, "index.ckpt.tmp"))
        .expect("salvage writes a checkpoint")
        .n;
    let mut points = 0;
    for op in trace
        .iter()
        .filter(|o| if before { o.n < rename } else { o.n > rename })
    {
        let fs = base.process_crash_image();
        fs.fail_at(op.n);
        let _ = open(&fs, opts().repair(true));
        let img = fs.process_crash_image();
        if !before {
            drop(open(&img, opts()).unwrap_or_else(|e| panic!("fail_at({}): {e}", op.n)));
        }
        let store = open(&img, opts().repair(true)).expect("second repair");
        let kept = objs
            .iter()
            .filter(|o| store.get(&o.key).ok().flatten().is_some())
            .count();
        assert_eq!(kept, objs.len() - 1, "fail_at({})", op.n);
        points += 1;
    }
    assert!(points > 0);
    points
}

#[test]
fn every_row_of_the_crash_table_holds() {
    type Scenario = (&'static str, fn() -> usize);
    let scenarios: Vec<Scenario> = vec![
        ("buffering (Applied)", row_buffering),
        ("the write of the buffer", row_buffer_write),
        ("`fdatasync` of the active segment", row_segment_sync),
        ("writing the sync record", row_sync_record),
        ("sealing (sync of the full segment)", row_sealing),
        ("creating the next segment", row_next_segment),
        ("writing `index.ckpt.tmp`", row_checkpoint_tmp),
        ("the rename of the checkpoint", row_checkpoint_rename),
        ("compaction, before its checkpoint", row_compaction_before),
        ("compaction, after its checkpoint", row_compaction_after),
        ("power loss with unsynced tail bytes", row_power_loss),
        (
            "no crash: a bit flips in acknowledged data of the last segment",
            row_bit_rot,
        ),
        (
            "power loss in a version 1 store (no `SYNC` file)",
            row_version_1,
        ),
        ("the upgrade of a version 1 marker", row_upgrade),
        ("salvage, before its checkpoint", || salvage(true)),
        ("salvage, after its checkpoint", || salvage(false)),
    ];
    let rows = rows();
    let names: Vec<&str> = scenarios.iter().map(|(n, _)| *n).collect();
    assert_eq!(rows, names, "the crash table and the scenarios differ");
    let mut total = 0;
    for (row, run) in scenarios {
        let points = run();
        eprintln!("{row}: {points} crash points");
        total += points;
    }
    eprintln!("{} rows, {total} crash points", rows.len());
}
