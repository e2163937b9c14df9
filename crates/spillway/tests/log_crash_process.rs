//! Out-of-process crash test: a child process writes to a `LogStore`, printing each write once
//! `flush(Durable)` has acknowledged it; the parent kills it with SIGKILL at a random moment,
//! reopens the store and checks every acknowledged write (and delete).
//!
//! The child is this test binary run again with `SPILLWAY_CRASH_CHILD` set, selecting the
//! ignored `crash_child` test, so it works under `cargo test` and `cargo nextest run` alike.
//! `SPILLWAY_CRASH_ITERS=n` sets the number of iterations, two kills each (default 5). The
//! test checks everything before it fails, and ends with one line of totals (iterations,
//! kills, acknowledged writes checked, and what was lost), which `cargo xtask crash-sweep`
//! reads.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Obj, env_count};
use rand::Rng;
use spillway::{BlobStore, Durability, LogStore, LogStoreOptions};

const CHILD_ENV: &str = "SPILLWAY_CRASH_CHILD";

fn opts() -> LogStoreOptions {
    common::busy_opts()
}

/// Object `i` of the child's (deterministic) workload.
fn object(i: u64) -> Obj {
    let children = if i.is_multiple_of(3) || i < 2 {
        Vec::new()
    } else {
        vec![object(i - 1).key]
    };
    Obj::generated(i, (i as usize * 37) % 1500, children)
}

/// Iteration `i` writes objects `3i .. 3i+3` and, from iteration 2 on, deletes object `3i - 5`.
fn written(i: u64) -> std::ops::Range<u64> {
    3 * i..3 * i + 3
}

fn deleted(i: u64) -> Option<u64> {
    (i >= 2).then(|| 3 * i - 5)
}

#[test]
#[ignore = "the child process of kill_9_loses_no_acknowledged_write"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = LogStore::open_with(Path::new(&dir), opts()).expect("child: open");
    let start: u64 = std::env::var("SPILLWAY_CRASH_START")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut out = std::io::stdout();
    for i in start.. {
        let objs: Vec<Obj> = written(i).map(object).collect();
        let puts: Vec<_> = objs.iter().map(Obj::put).collect();
        store.put_batch(&puts).expect("child: put");
        if let Some(d) = deleted(i) {
            store.delete(&[object(d).key]).expect("child: delete");
        }
        store.flush(Durability::Durable).expect("child: flush");
        writeln!(out, "ACK {i}")
            .and_then(|()| out.flush())
            .expect("child: stdout");
        if i % 16 == 15 {
            store.compact().expect("child: compact");
        }
    }
}

/// Runs the child until a random moment after its first acknowledgement; returns the last
/// acknowledged iteration, if any, and whether the child was killed by the signal.
fn run_child(dir: &Path, start: u64, rng: &mut impl Rng) -> (Option<u64>, bool) {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .env("SPILLWAY_CRASH_START", start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut last = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(i) = line.strip_prefix("ACK ") {
                let i: u64 = i.trim().parse().expect("ack line");
                if last.is_none() {
                    let _ = tx.send(());
                }
                last = Some(i);
            }
        }
        last
    });
    // Wait for the child to get going (or to die), then let it run a little longer.
    let _ = rx.recv_timeout(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(rng.random_range(0..250)));
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    let last = reader.join().expect("reader thread");
    assert!(
        last.is_some() || status.code().is_none(),
        "the child exited on its own: {status}"
    );
    (last, status.code().is_none())
}

/// What a sweep checked, and what it found wrong.
#[derive(Debug, Default)]
struct Totals {
    iterations: u64,
    /// Children killed with SIGKILL while writing.
    kills: u64,
    /// Acknowledged writes checked after a reopen (each round checks every write the store
    /// acknowledged so far, its earlier rounds' included).
    checked: u64,
    /// Acknowledged puts missing or changed after a reopen.
    lost: u64,
    /// Acknowledged deletes undone after a reopen.
    undeleted: u64,
    /// Keys the child never wrote.
    unknown: u64,
}

/// Reopens the store after the child acknowledging iterations `..=last` was killed, checks
/// every acknowledged write, and counts what it found in `totals`.
fn check(dir: &Path, last: u64, at: &str, totals: &mut Totals) {
    let store = LogStore::open_with(dir, opts()).unwrap_or_else(|e| panic!("{at}: reopen: {e}"));
    for i in 0..=last {
        for k in written(i) {
            let o = object(k);
            // Deleted by an acknowledged later iteration, or not at all.
            let deleted_at = (k + 5)
                .is_multiple_of(3)
                .then_some((k + 5) / 3)
                .filter(|&d| d >= 2);
            let got = store.get(&o.key).expect("get");
            totals.checked += 1;
            match deleted_at {
                Some(d) if d <= last => {
                    if got.is_some() {
                        eprintln!("{at}: object {k}, deleted at {d}, is back");
                        totals.undeleted += 1;
                    }
                }
                // The delete may or may not have landed before the kill.
                Some(d) if d == last + 1 => {
                    if got.as_ref().is_some_and(|b| *b != o.blob()) {
                        eprintln!("{at}: object {k}, acknowledged at {i}, changed");
                        totals.lost += 1;
                    }
                }
                _ => {
                    if got != Some(o.blob()) {
                        let what = if got.is_none() { "missing" } else { "changed" };
                        eprintln!("{at}: object {k}, acknowledged at {i}, {what}");
                        totals.lost += 1;
                    }
                }
            }
        }
    }
    // Nothing the child never wrote.
    let max_key = 3 * (last + 2);
    let known: std::collections::HashSet<_> = (0..max_key).map(|k| object(k).key).collect();
    for k in store.keys().expect("keys") {
        if !known.contains(&k) {
            eprintln!("{at}: unknown key {k}");
            totals.unknown += 1;
        }
    }
}

/// The line a sweep ends with; `cargo xtask crash-sweep` reads it from the output.
const TOTALS_TAG: &str = "CRASH-SWEEP-TOTALS";

#[test]
fn kill_9_loses_no_acknowledged_write() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let iters = env_count("SPILLWAY_CRASH_ITERS", 5);
    let mut rng = rand::rng();
    let mut totals = Totals::default();
    for iter in 0..iters {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("store");
        // The child continues where the previous run of this store was killed, so later kills
        // also hit stores that have been recovered before.
        let mut next = 0;
        for round in 0..2 {
            let (last, killed) = run_child(&dir, next, &mut rng);
            totals.kills += u64::from(killed);
            // Killed before its first acknowledgement: nothing to check yet.
            let Some(last) = last else { continue };
            eprintln!(
                "iteration {iter}.{round}: killed after acknowledging {}..={last}",
                next
            );
            check(
                &dir,
                last,
                &format!("iteration {iter}.{round}"),
                &mut totals,
            );
            next = last + 1;
        }
        totals.iterations += 1;
    }
    // On its own line: the test harness prints its own words around the test's output.
    println!(
        "\n{TOTALS_TAG} iterations={} kills={} checked={} lost={} undeleted={} unknown={}",
        totals.iterations,
        totals.kills,
        totals.checked,
        totals.lost,
        totals.undeleted,
        totals.unknown
    );
    assert_eq!(
        (totals.lost, totals.undeleted, totals.unknown),
        (0, 0, 0),
        "acknowledged writes lost, deletes undone, unknown keys: {totals:?}"
    );
}
