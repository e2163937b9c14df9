//! `spillway demo`: the main job.
//!
//! Builds the dependency graph of a large build (actions with their outputs, each depending on
//! earlier actions and on one of a few shared toolchains; some actions repeated exactly, which
//! content addressing stores once) in a [`Pool`] whose budget is a fraction of the data, names
//! it as a root, walks it with a skewed access pattern, then reopens the store and walks it
//! again from the root. Every value read back is checked twice: against its content key (the
//! bytes it encodes to hash to the key its handle has) and against the generator (its output is
//! the one generated for its id).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use get_size2::GetSize;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use spillway::container::{KeyIndex, U64Column, View};
use spillway::{ContentKey, MemStore, Paged, Pool, PoolStats, SectionOptions, Sections};

use crate::size::{human, parse_size};

/// Which store backend the demo runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded crash-safe log store (the default).
    Log,
    /// A directory store: one file per object (`--dir` is its directory).
    Dir,
    /// A SQLite store: one database file, `store.sqlite` in `--dir`.
    Sqlite,
    /// An in-memory store (paged-out values stay in RAM; nothing survives the run).
    Mem,
    /// S3-compatible object storage at `s3://BUCKET/PREFIX` (endpoint and credentials from the
    /// `AWS_*` variables), behind a local log-store cache; the reopen phase starts from an empty
    /// cache, as another machine would.
    S3(String),
}

impl StoreKind {
    fn parse(s: &str) -> Result<StoreKind, String> {
        match s {
            "log" => Ok(StoreKind::Log),
            "dir" => Ok(StoreKind::Dir),
            "sqlite" => Ok(StoreKind::Sqlite),
            "mem" => Ok(StoreKind::Mem),
            url if url.starts_with("s3://") => Ok(StoreKind::S3(url.to_string())),
            other => Err(format!(
                "{other:?} is not a store: use log, dir, sqlite, mem or s3://BUCKET/PREFIX"
            )),
        }
    }

    fn describe(&self) -> String {
        match self {
            StoreKind::Log => "log store".into(),
            StoreKind::Dir => "directory store".into(),
            StoreKind::Sqlite => "SQLite store".into(),
            StoreKind::Mem => "memory store".into(),
            StoreKind::S3(url) => format!("S3 store {url} (with a local cache)"),
        }
    }
}

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Memory budget of the pool, such as 64MiB or 1GiB: its resident values and its own
    /// metadata (entries, tables, the store's index).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    budget: u64,
    /// Budget values only: the pool's metadata is reported but not counted in the budget.
    #[arg(long)]
    metadata_outside_budget: bool,
    /// Size multiplier: the graph holds about 12 × budget × scale bytes of action outputs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    scale: u32,
    /// Seed of the generated graph and of the access pattern.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep the store in this directory (otherwise a temporary one is removed at the end).
    #[arg(long, value_parser = crate::paths::store_dir)]
    dir: Option<PathBuf>,
    /// The store backend.
    #[arg(long, default_value = "log", value_parser = StoreKind::parse, value_name = "log|dir|sqlite|mem|s3://BUCKET/PREFIX")]
    store: StoreKind,
    /// No progress bars on standard error.
    #[arg(long, short)]
    quiet: bool,
}

/// A compiler or SDK: large, shared by many actions.
#[derive(Serialize, Deserialize, GetSize)]
struct Toolchain {
    name: String,
    image: Vec<u8>,
}

/// One build action: its command, its output, and what it depends on.
#[derive(Serialize, Deserialize, GetSize)]
struct Action {
    id: u64,
    command: String,
    output: Vec<u8>,
    toolchain: Paged<Toolchain>,
    deps: Vec<Paged<Action>>,
}

/// The list of every action, named as the graph's root.
#[derive(Serialize, Deserialize, GetSize)]
struct Build {
    actions: Vec<Paged<Action>>,
}

const ROOT: &str = "demo/build";
const TOOLCHAINS: u64 = 8;

/// What action `id` outputs: a pure function of the seed and the id.
fn output_of(seed: u64, id: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let len = if rng.random_ratio(1, 100) {
        rng.random_range(64 << 10..256 << 10)
    } else {
        rng.random_range(1 << 10..16 << 10)
    };
    let mut out = vec![0u8; len];
    rng.fill_bytes(&mut out);
    out
}

/// Set by `--quiet`: no progress bars.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A progress bar on standard error; hidden with `--quiet` or when standard error is not a
/// terminal.
fn bar(len: u64, what: &str) -> ProgressBar {
    use std::io::IsTerminal;
    if QUIET.load(std::sync::atomic::Ordering::Relaxed) || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{what:>9} [{{bar:40}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
    )) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

struct Built {
    actions: Vec<Paged<Action>>,
    /// The id whose content each action has (a repeated action has an earlier id's content).
    content_id: Vec<u64>,
    output_bytes: u64,
}

/// Generates the graph into the pool.
fn build(pool: &Pool, seed: u64, target_bytes: u64) -> spillway::Result<Built> {
    let mut rng = StdRng::seed_from_u64(seed);
    let toolchains: Vec<Paged<Toolchain>> = (0..TOOLCHAINS)
        .map(|t| {
            pool.insert(Toolchain {
                name: format!("toolchain-{t}"),
                image: output_of(seed ^ 0x7001, t).repeat(16),
            })
        })
        .collect::<spillway::Result<_>>()?;
    let mut actions: Vec<Paged<Action>> = Vec::new();
    let mut content_id = Vec::new();
    let mut deps_of: Vec<Vec<usize>> = Vec::new();
    let mut output_bytes = 0u64;
    let pb = bar(target_bytes, "build");
    while output_bytes < target_bytes {
        let i = actions.len();
        // One action in ten repeats an earlier one exactly: same command, same inputs, same
        // output, hence the same key, stored once.
        let (cid, deps) = if i > 100 && rng.random_ratio(1, 10) {
            let j = rng.random_range(0..i);
            (content_id[j], deps_of[j].clone())
        } else {
            let mut deps = Vec::new();
            for _ in 0..rng.random_range(0..4usize) {
                if i > 0 {
                    // Mostly recent actions (a module's own objects), sometimes far back (a
                    // shared library).
                    let back = if rng.random_ratio(3, 4) {
                        rng.random_range(1..=i.min(200))
                    } else {
                        rng.random_range(1..=i)
                    };
                    deps.push(i - back);
                }
            }
            (i as u64, deps)
        };
        let output = output_of(seed, cid);
        output_bytes += output.len() as u64;
        let action = Action {
            id: cid,
            command: format!("cc -O2 -c unit_{cid}.c -o unit_{cid}.o"),
            output,
            toolchain: toolchains[(cid % TOOLCHAINS) as usize].clone(),
            deps: deps.iter().map(|&d| actions[d].clone()).collect(),
        };
        actions.push(pool.insert(action)?);
        content_id.push(cid);
        deps_of.push(deps);
        pb.set_position(output_bytes.min(target_bytes));
    }
    pb.finish_and_clear();
    Ok(Built {
        actions,
        content_id,
        output_bytes,
    })
}

/// The demo's container of sections, in its directory.
const SECTIONS_FILE: &str = "graph.spw";
/// Section: the content key of every action, sorted.
const KEYS_SECTION: &str = "action-keys";
/// Section: every action's simulated build time in microseconds, in build order.
const TIMES_SECTION: &str = "action-times";

/// The simulated build time of the action with content `id`: a pure function of the seed.
fn build_micros(seed: u64, id: u64) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7153 ^ id.wrapping_mul(0x2545_f491_4f6c_dd1d));
    rng.random_range(500..50_000)
}

/// A damaged `graph.spw` (from an earlier run) stops the demo with what to do: the file holds
/// only what the demo writes again.
fn damaged_sections(path: &std::path::Path, e: spillway::Error) -> spillway::Error {
    if !e.is_corruption() {
        return e;
    }
    spillway::Error::Corrupted {
        what: "the demo's section file",
        location: path.display().to_string(),
        detail: format!(
            "{e}. The file holds only the build's key index and timings, which the demo writes \
             again: `spillway verify {}` shows the damage; remove the file and run the demo again",
            path.display()
        ),
    }
}

/// Writes the demo's two sections (the actions' keys and build times) into `graph.spw`.
fn write_sections(
    sections: &Sections,
    actions: &[Paged<Action>],
    content_id: &[u64],
    seed: u64,
) -> spillway::Result<()> {
    let keys = actions
        .iter()
        .map(|a| a.key())
        .collect::<spillway::Result<Vec<ContentKey>>>()?;
    let times: Vec<u64> = content_id.iter().map(|&c| build_micros(seed, c)).collect();
    put_section(sections, KEYS_SECTION, KeyIndex::new(keys))?;
    put_section(sections, TIMES_SECTION, U64Column(times))
}

/// Creates section `name` holding `value`, or replaces what an earlier run left there.
fn put_section<T: spillway::container::Section>(
    sections: &Sections,
    name: &str,
    value: T,
) -> spillway::Result<()> {
    if sections
        .attach::<T>(name, SectionOptions::default())
        .is_ok()
    {
        sections.update(name, |v: &mut T| *v = value)?;
        sections.checkpoint()
    } else {
        sections.create(name, value, SectionOptions::default())
    }
}

/// Checks the sections against the actions: every key in the index, every time as generated.
/// Returns the number of mismatches.
fn check_sections(
    sections: &Sections,
    actions: &[Paged<Action>],
    content_id: &[u64],
    seed: u64,
) -> spillway::Result<u64> {
    let keys = actions
        .iter()
        .map(|a| a.key())
        .collect::<spillway::Result<Vec<ContentKey>>>()?;
    let missing = sections.read(KEYS_SECTION, |v: View<'_, KeyIndex>| {
        keys.iter().filter(|k| !v.contains(k)).count() as u64
    })?;
    let wrong = sections.read(TIMES_SECTION, |v: View<'_, U64Column>| {
        let mut wrong = (v.len() != content_id.len()) as u64;
        for (i, &c) in content_id.iter().enumerate() {
            if v.get(i) != Some(build_micros(seed, c)) {
                wrong += 1;
            }
        }
        wrong
    })?;
    if missing + wrong > 0 {
        eprintln!(
            "{SECTIONS_FILE}: {missing} action keys missing from {KEYS_SECTION}, {wrong} wrong \
             times in {TIMES_SECTION}"
        );
    }
    Ok(missing + wrong)
}

/// Checks one action read back: its encoding hashes to its key, and its content is the one
/// generated for its id.
fn check(pool: &Pool, handle: &Paged<Action>, expect_id: u64, seed: u64) -> spillway::Result<bool> {
    let key = handle.key()?;
    let value = handle.get()?;
    let hashes_to_key = pool.key_of(&*value)? == key;
    let generated = value.id == expect_id && value.output == output_of(seed, expect_id);
    if !hashes_to_key {
        eprintln!("object {key}: its content no longer hashes to its key");
    }
    if !generated {
        eprintln!(
            "object {key}: action {} does not hold the output generated for action {expect_id}",
            value.id
        );
    }
    Ok(hashes_to_key && generated)
}

/// Reads `reads` actions with a skewed pattern (nine reads in ten go to a hot tenth of the
/// graph), each with its direct dependencies; returns the number of bad values.
fn walk(
    pool: &Pool,
    actions: &[Paged<Action>],
    content_id: &[u64],
    seed: u64,
    reads: u64,
    rng: &mut StdRng,
    what: &str,
) -> spillway::Result<u64> {
    let n = actions.len();
    let hot = (n / 10).max(1);
    let hot_start = rng.random_range(0..=n - hot);
    let mut bad = 0;
    let pb = bar(reads, what);
    for r in 0..reads {
        let i = if rng.random_ratio(9, 10) {
            hot_start + rng.random_range(0..hot)
        } else {
            rng.random_range(0..n)
        };
        if !check(pool, &actions[i], content_id[i], seed)? {
            bad += 1;
        }
        let deps: Vec<Paged<Action>> = actions[i].get()?.deps.clone();
        for d in &deps {
            let id = d.get()?.id;
            if !check(pool, d, id, seed)? {
                bad += 1;
            }
        }
        if r % 256 == 0 {
            pb.set_position(r);
        }
    }
    pb.finish_and_clear();
    Ok(bad)
}

/// The largest value the demo makes for `seed`: the biggest shared toolchain image.
fn largest_value(seed: u64) -> u64 {
    (0..TOOLCHAINS)
        .map(|t| 16 * output_of(seed ^ 0x7001, t).len() as u64)
        .max()
        .unwrap_or(0)
}

/// The smallest budget the demo accepts: 1 MiB, and room for two of its largest values.
fn min_budget(seed: u64) -> u64 {
    (1 << 20).max(2 * largest_value(seed))
}

/// Refuses, before anything is written, a run that cannot work on this machine: a budget too
/// small for the demo's values or larger than the machine's memory, or a graph that would not
/// fit in the free space of the store's file system.
fn check_limits(args: &Args, dir: &std::path::Path, target: u64) -> Result<(), String> {
    let min = min_budget(args.seed);
    if args.budget < min {
        return Err(format!(
            "a budget of {} is too small for the demo: its largest values (shared toolchain images, for seed {}) take {}, and the budget must hold at least two of them; use --budget {} or more",
            human(args.budget),
            args.seed,
            human(largest_value(args.seed)),
            human_flag(min)
        ));
    }
    if let Some(total) = machine_memory()
        && args.budget > total
    {
        return Err(format!(
            "a budget of {} is more than this machine's memory ({}); pick a budget below it, such as --budget {}",
            human(args.budget),
            human(total),
            human_flag(total / 8)
        ));
    }
    // The graph is stored once (deduplicated), plus record headers: its size bounds the log
    // store; in front of S3, the two phases' local caches are bounded by their budgets.
    let on_disk = match args.store {
        StoreKind::Log | StoreKind::Sqlite => Some(target),
        // A file per object: its last block is part empty, about 2 KiB each on average.
        StoreKind::Dir => Some(target + target / 16),
        StoreKind::S3(_) => Some(2 * cache_budget(args.budget)),
        StoreKind::Mem => None,
    };
    if let Some(need) = on_disk {
        let probe = existing_ancestor(dir);
        if let Some(free) = free_space(&probe)
            && need > free
        {
            return Err(format!(
                "the demo's data on this disk (about {} for --budget {} and --scale {}) would not fit in the {} free on the file system of {}; free some space, pick a smaller --budget or --scale, or another --dir",
                human(need),
                human(args.budget),
                args.scale,
                human(free),
                probe.display()
            ));
        }
    }
    Ok(())
}

/// A size as a `--budget` value: whole MiB, rounded up.
fn human_flag(bytes: u64) -> String {
    format!("{}MiB", bytes.div_ceil(1 << 20))
}

/// The nearest directory at or above `dir` that exists (the store's may not exist yet).
fn existing_ancestor(dir: &std::path::Path) -> PathBuf {
    let mut p = dir.to_path_buf();
    while !p.is_dir() {
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent.to_path_buf(),
            _ => return PathBuf::from("."),
        }
    }
    p
}

/// Bytes free for an unprivileged writer on the file system holding `path`.
fn free_space(path: &std::path::Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The machine's memory, from `/proc/meminfo` (Linux).
fn machine_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The local cache's disk budget in front of S3.
fn cache_budget(budget: u64) -> u64 {
    (256 << 20).max(4 * budget)
}

/// The pool of one phase of the demo (0: build and walk; 1: reopen and walk again).
fn open_pool(
    args: &Args,
    dir: &std::path::Path,
    mem: &Option<Arc<MemStore>>,
    phase: u32,
) -> spillway::Result<Pool> {
    let builder = Pool::builder()
        .budget(args.budget)
        .budget_includes_metadata(!args.metadata_outside_budget);
    match (&args.store, mem) {
        (_, Some(m)) => builder.store(Arc::clone(m) as _),
        (StoreKind::S3(url), _) => builder.store(s3_cache(url, dir, phase, args.budget)?),
        (StoreKind::Dir, _) => builder.store(Arc::new(spillway::DirStore::open(dir)?)),
        (StoreKind::Sqlite, _) => builder.store(sqlite_store(dir)?),
        _ => builder.dir(dir),
    }
    .gc_after(0)
    .build()
}

/// The SQLite store of the demo: `store.sqlite` in `dir`.
#[cfg(feature = "sqlite")]
fn sqlite_store(dir: &std::path::Path) -> spillway::Result<Arc<dyn spillway::BlobStore>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| spillway::Error::io("create the store's directory", dir, e))?;
    Ok(Arc::new(spillway::SqliteStore::open(
        dir.join(SQLITE_FILE),
    )?))
}

#[cfg(not(feature = "sqlite"))]
fn sqlite_store(dir: &std::path::Path) -> spillway::Result<Arc<dyn spillway::BlobStore>> {
    Err(spillway::Error::InvalidArgument(format!(
        "{}: this build of spillway has no SQLite support; build the command with the `sqlite` feature",
        dir.display()
    )))
}

/// The SQLite store's file in the demo's directory.
const SQLITE_FILE: &str = "store.sqlite";

/// An S3 store behind a cache of its own for `phase` (a fresh one each phase).
#[cfg(feature = "s3")]
fn s3_cache(
    url: &str,
    dir: &std::path::Path,
    phase: u32,
    budget: u64,
) -> spillway::Result<Arc<dyn spillway::BlobStore>> {
    let remote = Arc::new(spillway::S3Store::open(
        url,
        spillway::S3StoreOptions::default(),
    )?);
    let local = spillway::LogStore::open(dir.join(format!("cache-{phase}")))?;
    Ok(Arc::new(spillway::store::CachedStore::open(
        local,
        remote,
        cache_budget(budget),
    )?))
}

#[cfg(not(feature = "s3"))]
fn s3_cache(
    url: &str,
    _dir: &std::path::Path,
    _phase: u32,
    _budget: u64,
) -> spillway::Result<Arc<dyn spillway::BlobStore>> {
    crate::cmd::s3::open(url)
}

fn print_table(rows: &[(&str, String)]) {
    crate::say!("| {:<32} | {:>20} |", "measure", "value");
    crate::say!("|{:-<34}|{:->22}|", "", "");
    for (k, v) in rows {
        crate::say!("| {k:<32} | {v:>20} |");
    }
}

/// Runs the demo; exits 0 only if every value read back matched.
pub fn run(args: Args) -> spillway::Result<ExitCode> {
    QUIET.store(args.quiet, std::sync::atomic::Ordering::Relaxed);
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().map_err(|e| {
                spillway::Error::io("create temporary directory", std::env::temp_dir(), e)
            })?;
            tmp.path().join("store")
        }
    };
    let mem = (args.store == StoreKind::Mem).then(|| Arc::new(MemStore::new()));
    let target = args
        .budget
        .saturating_mul(12)
        .saturating_mul(u64::from(args.scale));
    if let Err(why) = check_limits(&args, &dir, target) {
        eprintln!("error: {why}");
        return Ok(ExitCode::from(crate::exit::USAGE));
    }
    crate::say!(
        "spillway demo: budget {}, graph of about {} of build outputs, seed {}, {}",
        human(args.budget),
        human(target),
        args.seed,
        args.store.describe()
    );

    let pool = open_pool(&args, &dir, &mem, 0)?;
    let t = Instant::now();
    let built = build(&pool, args.seed, target)?;
    let manifest = pool.insert(Build {
        actions: built.actions.clone(),
    })?;
    pool.set_root(ROOT, &manifest)?;
    drop(manifest);
    let build_secs = t.elapsed().as_secs_f64();
    let n = built.actions.len() as u64;

    let mut rng = StdRng::seed_from_u64(args.seed ^ 0xdead_beef);
    let t = Instant::now();
    let reads = n;
    let mut bad = walk(
        &pool,
        &built.actions,
        &built.content_id,
        args.seed,
        reads,
        &mut rng,
        "walk",
    )?;
    let walk_secs = t.elapsed().as_secs_f64();
    // The build's index and timings, as sections of `graph.spw` under the same budget.
    std::fs::create_dir_all(&dir)
        .map_err(|e| spillway::Error::io("create the demo's directory", &dir, e))?;
    let sections_path = dir.join(SECTIONS_FILE);
    let sections = pool
        .sections(&sections_path)
        .and_then(|s| {
            write_sections(&s, &built.actions, &built.content_id, args.seed)?;
            Ok(s)
        })
        .map_err(|e| damaged_sections(&sections_path, e))?;
    bad += check_sections(&sections, &built.actions, &built.content_id, args.seed)?;
    let section_bytes: u64 = sections.stats().iter().map(|s| s.file_bytes).sum();
    drop(sections);
    let first: PoolStats = pool.stats();
    drop(built.actions);

    // Reopen: the graph comes back lazily from its root. A memory store keeps nothing across
    // a restart, so there is nothing to reopen.
    let mut second: Option<PoolStats> = None;
    let mut reopen_secs = None;
    if mem.is_none() {
        drop(pool);
        let t = Instant::now();
        let pool = open_pool(&args, &dir, &mem, 1)?;
        let manifest: Paged<Build> = match pool.root(ROOT)? {
            Some(m) => m,
            None => {
                eprintln!("the root {ROOT:?} is missing after reopening the store");
                return Ok(ExitCode::FAILURE);
            }
        };
        let actions = manifest.get()?.actions.clone();
        // The sections come back from the file, read in place until the budget takes them.
        let sections = pool.sections(&sections_path)?;
        sections.attach::<KeyIndex>(KEYS_SECTION, SectionOptions::default())?;
        sections.attach::<U64Column>(TIMES_SECTION, SectionOptions::default())?;
        bad += check_sections(&sections, &actions, &built.content_id, args.seed)?;
        drop(sections);
        let reopen_reads = (n / 4).max(1);
        bad += walk(
            &pool,
            &actions,
            &built.content_id,
            args.seed,
            reopen_reads,
            &mut rng,
            "reopened",
        )?;
        reopen_secs = Some(t.elapsed().as_secs_f64());
        second = Some(pool.stats());
    }

    let rss = peak_rss();
    let mut rows = vec![
        ("budget", human(first.budget_bytes)),
        ("actions", n.to_string()),
        ("action outputs generated", human(built.output_bytes)),
        ("stored objects", first.stored_objects.to_string()),
        ("stored bytes (live records)", human(first.stored_bytes)),
        (
            "stored / budget",
            format!(
                "{:.1}x",
                first.stored_bytes as f64 / first.budget_bytes as f64
            ),
        ),
        (
            "dedup ratio",
            format!("{:.1}%", 100.0 * first.dedup_ratio()),
        ),
        (
            "peak resident (budget count)",
            human(
                first
                    .peak_resident_bytes
                    .max(second.as_ref().map_or(0, |s| s.peak_resident_bytes)),
            ),
        ),
        ("page-outs", first.page_outs.to_string()),
        (
            "page-ins",
            (first.page_ins + second.as_ref().map_or(0, |s| s.page_ins)).to_string(),
        ),
        (
            "hit ratio (walk)",
            format!("{:.1}%", 100.0 * first.hit_ratio()),
        ),
        ("live entries", first.entries.to_string()),
        ("pool metadata in memory", human(first.metadata_bytes)),
        ("store index in memory", human(first.store_index_bytes)),
        (
            "metadata charged to the budget",
            human(first.metadata_charged_bytes),
        ),
        ("sections in graph.spw", human(section_bytes)),
        (
            "build rate",
            format!(
                "{:.1} MiB/s",
                built.output_bytes as f64 / build_secs / 1048576.0
            ),
        ),
        (
            "walk rate (actions + deps)",
            format!(
                "{:.0} reads/s",
                (first.hits + first.misses) as f64 / walk_secs
            ),
        ),
        ("mismatches", bad.to_string()),
    ];
    if let Some(secs) = reopen_secs {
        rows.insert(rows.len() - 1, ("reopen + walk", format!("{secs:.2} s")));
    }
    if let Some(rss) = rss {
        rows.push(("peak RSS", human(rss)));
        rows.push((
            "peak RSS / budget",
            format!("{:.2}", rss as f64 / args.budget as f64),
        ));
    }
    print_table(&rows);
    if let Some(e) = first.last_error.or(second.and_then(|s| s.last_error)) {
        crate::say!("background error seen: {e}");
    }
    if args.dir.is_some() {
        let kept = match args.store {
            StoreKind::Sqlite => dir.join(SQLITE_FILE),
            _ => dir.clone(),
        };
        crate::say!("store kept in {}", kept.display());
    }
    if bad == 0 {
        crate::say!("ok: every value read back matched its content key and its generator");
        Ok(ExitCode::SUCCESS)
    } else {
        crate::say!("FAILED: {bad} values did not match");
        Ok(ExitCode::FAILURE)
    }
}
