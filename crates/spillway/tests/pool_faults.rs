//! Faults at every I/O call of a pool over a log store: a scripted pool workload (inserts under a
//! small budget, so page-outs; page-ins; named roots set and removed; garbage collection;
//! compaction; a reopen half-way) runs once per injection point, with one fault at one I/O call:
//! a failed write, a write cut in half, a full disk, a failed read, or a power cut (the machine
//! stops there; only what was synced survives, with some of what was not).
//!
//! For every run:
//! - no call panics, and every call returns a result or an error;
//! - every read that returns a value returns the right one (a graph is checked node by node);
//! - after the run, the store reopens (from what the process left, and from a power-loss image
//!   of it) and every root acknowledged by `set_root` is there with its whole graph intact, every
//!   acknowledged removal stays removed, and a root whose call failed is either absent or intact.
//!
//! `SPILLWAY_FAULT_SEEDS=n` runs `n` workload seeds (default 1) and `SPILLWAY_FAULT_STRIDE=k`
//! aims at every `k`-th call (default 4; 1 for every call): `cargo xtask faults` runs the long
//! sweep.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::env_count;
use common::graph::{Node, count};
use spillway::vfs::{Fault, FaultFs, SimFs, Vfs};
use spillway::{BlobStore, Durability, LogStore, LogStoreOptions, Paged, Pool};

const DIR: &str = "/store";

/// Labels of tree `t` of workload `seed`: a parent over `LEAVES` leaves, one of them shared with
/// the previous tree (so graphs overlap and deduplicate).
const LEAVES: u64 = 5;

fn leaf_label(seed: u64, t: u64, i: u64) -> u64 {
    if i == 0 && t > 0 {
        leaf_label(seed, t - 1, 1)
    } else {
        seed * 1_000_000 + t * 100 + i
    }
}

fn parent_label(seed: u64, t: u64) -> u64 {
    seed * 1_000_000 + t * 100 + 99
}

/// Reads the whole graph under `h`: its node count, or the first error.
fn check(h: &Paged<Node>, what: &str) -> spillway::Result<usize> {
    count(h, 400, what)
}

fn opts() -> LogStoreOptions {
    common::crash_opts()
}

fn open(vfs: Arc<dyn Vfs>) -> spillway::Result<(Arc<LogStore>, Pool)> {
    let store = Arc::new(LogStore::open_on(vfs, Path::new(DIR), opts())?);
    let pool = Pool::builder()
        .budget(6 << 10)
        .deterministic(true)
        .gc_after(u64::MAX)
        .store(Arc::clone(&store) as Arc<dyn BlobStore>)
        .build()?;
    Ok((store, pool))
}

/// What the workload was told about its roots.
#[derive(Default, Debug)]
struct Model {
    /// Roots acknowledged set: name → (root label, node count).
    set: BTreeMap<String, (u64, usize)>,
    /// Roots acknowledged removed.
    removed: BTreeMap<String, ()>,
    /// Roots whose set or removal failed: name → the graph it would name.
    open: BTreeMap<String, (u64, usize)>,
    /// Calls that returned an error.
    errors: u64,
}

impl Model {
    fn note<T>(&mut self, r: spillway::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                // An error a user can act on: it says something.
                assert!(!e.to_string().is_empty());
                self.errors += 1;
                None
            }
        }
    }
}

const TREES: u64 = 10;

/// The workload: every call's outcome goes into `model`; a panic is a test failure.
fn workload(vfs: Arc<dyn Vfs>, seed: u64, model: &mut Model) {
    let Some((mut store, mut pool)) = model.note(open(Arc::clone(&vfs))) else {
        return;
    };
    let mut live: Vec<(u64, Paged<Node>)> = Vec::new();
    for t in 0..TREES {
        // Build tree t: the budget holds about a tree, so earlier ones are paged out.
        let mut leaves = Vec::new();
        for i in 0..LEAVES {
            let label = leaf_label(seed, t, i);
            let shared = i == 0 && t > 0;
            let leaf = if shared {
                live.last().and_then(|(_, p)| {
                    let g = model.note(p.get())?;
                    Some(g.children[1].clone())
                })
            } else {
                model.note(pool.insert(Node::new(label, vec![])))
            };
            leaves.extend(leaf);
        }
        let count = leaves.len() + 1;
        let label = parent_label(seed, t);
        let Some(parent) = model.note(pool.insert(Node::new(label, leaves))) else {
            continue;
        };
        // Read an earlier tree back whole (page-ins).
        if let Some((_, h)) = live.get((t as usize * 7) % live.len().max(1)) {
            let _ = model.note(check(h, "an earlier tree"));
        }
        let name = format!("t{t}");
        model.open.insert(name.clone(), (label, count));
        if model.note(pool.set_root(&name, &parent)).is_some() {
            model.open.remove(&name);
            model.set.insert(name.clone(), (label, count));
        }
        live.push((label, parent));
        if t % 3 == 2 {
            // Remove the root of an earlier tree.
            let old = format!("t{}", t - 2);
            if let Some(graph) = model.set.remove(&old) {
                model.open.insert(old.clone(), graph);
                if model.note(pool.remove_root(&old)).is_some() {
                    model.open.remove(&old);
                    model.removed.insert(old, ());
                }
            }
        }
        if t % 4 == 3 {
            // Drop some handles first, so that the collection has something to delete.
            live.drain(..live.len() / 2);
            let _ = model.note(pool.gc());
        }
        if t % 5 == 4 {
            let _ = model.note(store.compact());
            let _ = model.note(pool.flush(Durability::Durable));
        }
        if t == TREES / 2 {
            // Reopen: the pool and the store go, handles with them; roots bring graphs back.
            live.clear();
            drop(pool);
            drop(store);
            let Some((s, p)) = model.note(open(Arc::clone(&vfs))) else {
                return;
            };
            (store, pool) = (s, p);
            let names: Vec<(String, u64)> = model
                .set
                .iter()
                .map(|(n, &(l, _))| (n.clone(), l))
                .collect();
            for (name, label) in names {
                if let Some(Some(h)) = model.note(pool.root::<Node>(&name)) {
                    live.push((label, h));
                }
            }
        }
    }
    let _ = model.note(pool.flush(Durability::Durable));
}

/// Reopens the store on `vfs` (no faults) and checks every acknowledged root.
fn verify(vfs: Arc<dyn Vfs>, model: &Model, what: &str) {
    let (_store, pool) = open(vfs).unwrap_or_else(|e| panic!("{what}: reopening failed: {e}"));
    for (name, &(label, count)) in &model.set {
        let h = pool
            .root::<Node>(name)
            .unwrap_or_else(|e| panic!("{what}: root {name}: {e}"))
            .unwrap_or_else(|| panic!("{what}: acknowledged root {name} is missing"));
        let got = check(&h, what).unwrap_or_else(|e| panic!("{what}: graph of {name}: {e}"));
        assert_eq!(got, count, "{what}: graph of {name} has {got} nodes");
        let got_label = h.get().map(|g| g.label);
        assert_eq!(got_label.ok(), Some(label), "{what}: root {name}");
    }
    for name in model.removed.keys() {
        assert!(
            matches!(pool.root::<Node>(name), Ok(None)),
            "{what}: root {name} was removed, acknowledged, and is back"
        );
    }
    for (name, &(_, count)) in &model.open {
        let root = pool
            .root::<Node>(name)
            .unwrap_or_else(|e| panic!("{what}: root {name}: {e}"));
        if let Some(h) = root {
            // Set (or not removed) after all: then whole.
            let got = check(&h, what).unwrap_or_else(|e| panic!("{what}: graph of {name}: {e}"));
            assert_eq!(got, count, "{what}: graph of {name} (its call failed)");
        }
    }
}

/// One run: the workload with one planned fault, then the checks. Returns whether the fault
/// fired and how many calls returned an error.
fn run(seed: u64, plan: Option<(Kind, u64)>) -> (bool, u64, (u64, u64)) {
    let sim = SimFs::new();
    let faulty = FaultFs::new(Arc::new(sim.clone()));
    let what = format!("seed {seed}, fault {plan:?}");
    let mut model = Model::default();
    match plan {
        Some((Kind::Io(f), n)) => faulty.plan(f, n),
        Some((Kind::PowerCut, n)) => sim.fail_at(n),
        None => {}
    }
    let vfs: Arc<dyn Vfs> = Arc::new(faulty.clone());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        workload(vfs, seed, &mut model);
    }));
    if let Err(p) = outcome {
        eprintln!("{what}: the workload panicked");
        std::panic::resume_unwind(p);
    }
    let fired = match plan {
        Some((Kind::PowerCut, _)) => sim.has_failed(),
        _ => faulty.fired(),
    };
    if !matches!(plan, Some((Kind::PowerCut, _))) {
        verify(
            Arc::new(sim.process_crash_image()),
            &model,
            &format!("{what}, reopened"),
        );
    }
    verify(
        Arc::new(sim.power_loss_image(seed)),
        &model,
        &format!("{what}, after a power loss"),
    );
    (fired, model.errors, (faulty.mutations(), faulty.reads()))
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Io(Fault),
    PowerCut,
}

#[test]
fn every_io_call_of_a_pool_workload_can_fail() {
    let seeds = env_count("SPILLWAY_FAULT_SEEDS", 1);
    let stride = env_count("SPILLWAY_FAULT_STRIDE", 4).max(1);
    let mut runs = 0;
    let mut fired = 0;
    let mut errors = 0;
    for seed in 0..seeds {
        let (_, clean_errors, (mutations, reads)) = run(seed, None);
        assert_eq!(
            clean_errors, 0,
            "seed {seed}: the workload fails without faults"
        );
        let kinds = Fault::ALL
            .iter()
            .map(|&f| Kind::Io(f))
            .chain([Kind::PowerCut]);
        for kind in kinds {
            let calls = match kind {
                Kind::Io(f) if f.on_reads() => reads,
                _ => mutations,
            };
            for n in (1..=calls).step_by(stride as usize) {
                let (f, e, _) = run(seed, Some((kind, n)));
                runs += 1;
                fired += u64::from(f);
                errors += e;
            }
        }
        eprintln!("seed {seed}: {mutations} mutating calls and {reads} reads per clean run");
    }
    eprintln!(
        "{runs} runs, {fired} injected faults fired, {errors} calls returned an error; no panic, \
         no wrong value, no acknowledged root lost"
    );
    // For `cargo xtask faults`.
    println!(
        "FAULT-SWEEP-TOTALS seeds={seeds} stride={stride} runs={runs} fired={fired} errors={errors}"
    );
    assert!(
        fired * 10 >= runs * 9,
        "only {fired} of {runs} planned faults fired"
    );
}
