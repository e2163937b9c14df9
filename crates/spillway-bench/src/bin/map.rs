//! `PagedMap` at scale: a map of `--entries` `u64` keys to 24-byte values, in a pool whose
//! budget is 5 % of the map's bytes, against a `BTreeMap` in RAM and against SQLite's index on
//! the same keys. Each contender runs in a process of its own (this program, run again with
//! `--contender`), so that its peak RSS is its own. Prints a Markdown table.
//!
//! For each: the bulk load of the keys in order (PagedMap: `from_sorted`, then `save` and a
//! durable flush; SQLite: one transaction of inserts in key order, committed with
//! `synchronous=FULL` in WAL mode; BTreeMap: collected), random lookups of present keys, and
//! random inserts of new keys ended by one durable point (PagedMap: `save` and a durable flush;
//! SQLite: one transaction, committed durably; BTreeMap: nothing to make durable).
//!
//! `cargo run --release -p spillway-bench --bin map-bench -- [--entries N] [--dir DIR]`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use spillway::{Durability, PagedMap, Pool};

#[derive(Debug, Parser)]
struct Args {
    /// Entries in the map.
    #[arg(long, default_value_t = 10_000_000)]
    entries: u64,
    /// Random lookups, and random inserts, timed.
    #[arg(long, default_value_t = 200_000)]
    ops: u64,
    /// Directory for the files (put it on the disk you mean to measure).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Run one contender in this process (what the parent runs each child with).
    #[arg(long)]
    contender: Option<String>,
}

const VALUE: usize = 24;
/// The contenders, each run in a process of its own: `PagedMap` with the pool's default
/// background collection (after 100,000 dropped objects), and with none during the inserts and
/// one collection at their end (timed with them); SQLite with its default page cache (2 MB) and
/// with one as large as PagedMap's budget.
const CONTENDERS: [&str; 5] = [
    "PagedMap",
    "PagedMap-gc-at-end",
    "BTreeMap",
    "SQLite",
    "SQLite-cache-as-budget",
];

/// PagedMap's budget for `entries`: 5 % of the keys' and values' bytes.
fn budget(entries: u64) -> u64 {
    entries * (8 + VALUE as u64) / 20
}

/// Key `i` of the map (even numbers: the odd ones are free for inserts).
fn key(i: u64) -> u64 {
    i * 2
}

fn value(k: u64) -> [u8; VALUE] {
    let mut v = [0u8; VALUE];
    for (j, b) in v.iter_mut().enumerate() {
        *b = (k as usize).wrapping_mul(31).wrapping_add(j) as u8;
    }
    v
}

/// What one contender measured.
struct Figures {
    load_secs: f64,
    lookups_per_sec: f64,
    inserts_per_sec: f64,
    disk_bytes: u64,
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(|e| e.ok()?.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    })
}

fn peak_rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn paged(args: &Args, dir: &Path, gc_at_end: bool) -> Result<Figures> {
    let n = args.entries;
    let budget = budget(n);
    let mut builder = Pool::builder().budget(budget).dir(dir);
    if gc_at_end {
        builder = builder.gc_after(0);
    }
    let pool = builder.build()?;
    let t = Instant::now();
    let mut map = PagedMap::from_sorted(&pool, (0..n).map(|i| (key(i), value(key(i)))))?;
    map.save(&pool, "map")?;
    pool.flush(Durability::Durable)?;
    let load_secs = t.elapsed().as_secs_f64();
    let mut rng = SmallRng::seed_from_u64(1);
    let t = Instant::now();
    for _ in 0..args.ops {
        let k = key(rng.random_range(0..n));
        let v = map.get(&k)?;
        if v != Some(value(k)) {
            bail!("PagedMap: key {k} read back {v:?}");
        }
    }
    let lookups_per_sec = args.ops as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..args.ops {
        let k = key(rng.random_range(0..n)) + 1;
        map.insert(k, value(k))?;
    }
    map.save(&pool, "map")?;
    if gc_at_end {
        pool.gc()?;
    }
    pool.flush(Durability::Durable)?;
    let inserts_per_sec = args.ops as f64 / t.elapsed().as_secs_f64();
    let stats = pool.stats();
    eprintln!(
        "PagedMap: depth {}, budget {} MiB, peak resident {} MiB, {} collections deleted {} objects",
        map.depth()?,
        budget >> 20,
        stats.peak_resident_bytes >> 20,
        stats.gc_runs,
        stats.gc_deleted
    );
    Ok(Figures {
        load_secs,
        lookups_per_sec,
        inserts_per_sec,
        disk_bytes: dir_bytes(dir),
    })
}

fn btree(args: &Args) -> Result<Figures> {
    let n = args.entries;
    let t = Instant::now();
    let mut map: std::collections::BTreeMap<u64, [u8; VALUE]> =
        (0..n).map(|i| (key(i), value(key(i)))).collect();
    let load_secs = t.elapsed().as_secs_f64();
    let mut rng = SmallRng::seed_from_u64(1);
    let t = Instant::now();
    for _ in 0..args.ops {
        let k = key(rng.random_range(0..n));
        if map.get(&k) != Some(&value(k)) {
            bail!("BTreeMap: key {k} read back wrong");
        }
    }
    let lookups_per_sec = args.ops as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..args.ops {
        let k = key(rng.random_range(0..n)) + 1;
        map.insert(k, value(k));
    }
    let inserts_per_sec = args.ops as f64 / t.elapsed().as_secs_f64();
    std::hint::black_box(&map);
    Ok(Figures {
        load_secs,
        lookups_per_sec,
        inserts_per_sec,
        disk_bytes: 0,
    })
}

fn sqlite(args: &Args, dir: &Path, cache_as_budget: bool) -> Result<Figures> {
    let n = args.entries;
    std::fs::create_dir_all(dir)?;
    let mut db = rusqlite::Connection::open(dir.join("map.db"))?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    if cache_as_budget {
        // A negative cache size is in KiB.
        db.pragma_update(None, "cache_size", -((budget(n) >> 10) as i64))?;
    }
    db.execute_batch("CREATE TABLE m (k INTEGER PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")?;
    let t = Instant::now();
    {
        let tx = db.transaction()?;
        {
            let mut ins = tx.prepare("INSERT INTO m (k, v) VALUES (?1, ?2)")?;
            for i in 0..n {
                let k = key(i);
                ins.execute(rusqlite::params![k as i64, &value(k)[..]])?;
            }
        }
        tx.commit()?;
    }
    let load_secs = t.elapsed().as_secs_f64();
    let mut rng = SmallRng::seed_from_u64(1);
    let t = Instant::now();
    {
        let mut get = db.prepare_cached("SELECT v FROM m WHERE k = ?1")?;
        for _ in 0..args.ops {
            let k = key(rng.random_range(0..n));
            let v: Vec<u8> = get.query_row([k as i64], |r| r.get(0))?;
            if v != value(k) {
                bail!("SQLite: key {k} read back wrong");
            }
        }
    }
    let lookups_per_sec = args.ops as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    {
        let tx = db.transaction()?;
        {
            let mut ins = tx.prepare("INSERT OR REPLACE INTO m (k, v) VALUES (?1, ?2)")?;
            for _ in 0..args.ops {
                let k = key(rng.random_range(0..n)) + 1;
                ins.execute(rusqlite::params![k as i64, &value(k)[..]])?;
            }
        }
        tx.commit()?;
    }
    let inserts_per_sec = args.ops as f64 / t.elapsed().as_secs_f64();
    Ok(Figures {
        load_secs,
        lookups_per_sec,
        inserts_per_sec,
        disk_bytes: dir_bytes(dir),
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let tmp;
    let base = match &args.dir {
        Some(d) => d.join("map-bench"),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().join("map-bench")
        }
    };
    if let Some(c) = &args.contender {
        let dir = base.join(c);
        let _ = std::fs::remove_dir_all(&dir);
        let f = match c.as_str() {
            "PagedMap" => paged(&args, &dir, false)?,
            "PagedMap-gc-at-end" => paged(&args, &dir, true)?,
            "BTreeMap" => btree(&args)?,
            "SQLite" => sqlite(&args, &dir, false)?,
            "SQLite-cache-as-budget" => sqlite(&args, &dir, true)?,
            other => bail!("unknown contender {other:?}"),
        };
        println!(
            "{} {} {} {} {}",
            f.load_secs,
            f.lookups_per_sec,
            f.inserts_per_sec,
            f.disk_bytes,
            peak_rss()
        );
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    println!(
        "{} entries (u64 keys, {VALUE}-byte values), {} random lookups and {} random inserts; PagedMap's budget 5 % of the map's {} MiB of keys and values\n",
        args.entries,
        args.ops,
        args.ops,
        (args.entries * (8 + VALUE as u64)) >> 20
    );
    println!(
        "| contender | bulk load | lookups/s | inserts/s (then one durable point) | peak RSS | on disk |"
    );
    println!("|---|---|---|---|---|---|");
    for c in CONTENDERS {
        let mut cmd = Command::new(&exe);
        cmd.args(["--contender", c])
            .args(["--entries", &args.entries.to_string()])
            .args(["--ops", &args.ops.to_string()]);
        if let Some(d) = &args.dir {
            cmd.arg("--dir").arg(d);
        }
        let out = cmd.output().with_context(|| format!("run {c}"))?;
        if !out.status.success() {
            bail!("{c} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8_lossy(&out.stdout);
        let f: Vec<f64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        let [load, lookups, inserts, disk, rss] = f[..] else {
            bail!("{c} printed {line:?}");
        };
        println!(
            "| {c} | {load:.1} s ({:.2} M entries/s) | {:.0} k | {:.0} k | {} MiB | {} |",
            args.entries as f64 / load / 1e6,
            lookups / 1e3,
            inserts / 1e3,
            rss as u64 >> 20,
            if disk > 0.0 {
                format!("{} MiB", disk as u64 >> 20)
            } else {
                "—".into()
            }
        );
    }
    Ok(())
}
