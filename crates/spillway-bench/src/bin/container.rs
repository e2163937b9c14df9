//! The container file: checkpoint bandwidth of a 1 GiB section set against the disk's sequential
//! write + `fdatasync` bandwidth measured in the same run (before and after), spill and reload
//! of a 256 MiB section under a pool's budget, reads from a spilled section against reads in
//! memory, and pack export and import. Prints a Markdown table.
//!
//! `cargo run --release -p spillway-bench --bin container-bench -- [--dir DIR] [--mib N]`

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use spillway::container::{Bytes, Change, Container, SectionData, U64Column, View, types};
use spillway::store::{PackStore, export_pack, import_pack};
use spillway::{BlobStore, Durability, LogStore, MemStore, Pool, Put, SectionOptions};

#[derive(Debug, Parser)]
struct Args {
    /// Directory for the files (put it on the disk you mean to measure).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Size of the checkpointed section set in MiB (4 sections); the spilled section and the
    /// exported graph are a quarter of it.
    #[arg(long, default_value_t = 1024)]
    mib: u64,
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// Sequential 1 MiB writes of `bytes` to a new file, then one `fdatasync`: bytes per second.
fn disk_write_fsync(dir: &Path, bytes: u64) -> Result<f64> {
    let path = dir.join("disk-limit.tmp");
    let chunk = random(1 << 20, 7);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    let t = Instant::now();
    for _ in 0..bytes.div_ceil(1 << 20) {
        f.write_all(&chunk)?;
    }
    f.sync_data()?;
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(bytes as f64 / secs)
}

fn mbs(bytes: u64, secs: f64) -> String {
    format!("{:.0} MB/s", bytes as f64 / secs / 1e6)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let base = args.dir.unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base)?;
    let tmp = tempfile::Builder::new()
        .prefix("spillway-container-bench-")
        .tempdir_in(&base)
        .context("temporary directory")?;
    let dir = tmp.path();
    let total = args.mib << 20;
    let quarter = (total / 4) as usize;
    let mut rows: Vec<(String, String)> = Vec::new();

    // 1. Checkpoint of a section set, three times, each between two measurements of the disk.
    let sets: Vec<Vec<u8>> = (0..4).map(|i| random(quarter, i)).collect();
    let mut disk = vec![disk_write_fsync(dir, total)?];
    let mut ckpt = Vec::new();
    for round in 0..3 {
        let path = dir.join(format!("set-{round}.spw"));
        let mut c = Container::open(&path)?;
        let t = Instant::now();
        c.checkpoint(sets.iter().enumerate().map(|(i, b)| {
            Change::Put(SectionData {
                name: ["s0", "s1", "s2", "s3"][i],
                kind: types::U64_COLUMN,
                version: 1,
                required: true,
                mmap: true,
                index: false,
                bytes: Bytes::Slice(b),
            })
        }))?;
        ckpt.push(total as f64 / t.elapsed().as_secs_f64());
        drop(c);
        std::fs::remove_file(&path)?;
        disk.push(disk_write_fsync(dir, total)?);
    }
    drop(sets);
    let range = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let (disk_med, disk_min, disk_max) = range(&mut disk);
    let (ckpt_med, ckpt_min, ckpt_max) = range(&mut ckpt);
    rows.push((
        format!(
            "disk: sequential write + fdatasync of {} MiB, median (min–max) of {}",
            args.mib,
            disk.len()
        ),
        format!(
            "{:.0} MB/s ({:.0}–{:.0})",
            disk_med / 1e6,
            disk_min / 1e6,
            disk_max / 1e6
        ),
    ));
    let verdict = if ckpt_med > disk_max {
        "above the disk's fastest measurement: the disk figure is no limit in this run (noise)"
            .to_string()
    } else {
        format!("{:.0} % of the disk's median", 100.0 * ckpt_med / disk_med)
    };
    rows.push((
        format!(
            "checkpoint of {} MiB in 4 sections (checksums, writes, 2 syncs), median (min–max) of 3",
            args.mib
        ),
        format!(
            "{:.0} MB/s ({:.0}–{:.0}); {verdict}",
            ckpt_med / 1e6,
            ckpt_min / 1e6,
            ckpt_max / 1e6
        ),
    ));

    // 2. Spill and reload of a section of a quarter of the set, under a pool's budget.
    let values = quarter as u64 / 8;
    let pool = Pool::builder()
        .budget(quarter as u64 * 2 + (64 << 20))
        .store(Arc::new(MemStore::new()))
        .deterministic(true)
        .build()?;
    let sections = pool.sections(dir.join("spill.spw"))?;
    let column = U64Column((0..values).map(|i| i.wrapping_mul(0x9E37_79B9)).collect());
    sections.create("col", column, SectionOptions::default())?;
    sections.update("col", |c: &mut U64Column| c.0[0] = 1)?;
    let t = Instant::now();
    sections.spill("col")?;
    let spill = t.elapsed().as_secs_f64();
    // Reads from the map (spilled) against reads in memory, random positions.
    let reads = 10_000_000u64;
    let mut rng = SmallRng::seed_from_u64(3);
    let idx: Vec<usize> = (0..reads)
        .map(|_| rng.random_range(0..values as usize))
        .collect();
    let sum_reads = |v: View<'_, U64Column>| -> u64 {
        idx.iter()
            .map(|&i| v.get(i).unwrap_or(0))
            .fold(0u64, u64::wrapping_add)
    };
    // Reads with the section mapped: the manager reloads it on a read when the budget has
    // room, so the mapped reads go through a tier that keeps it on disk.
    drop(sections);
    let sections = pool.sections(dir.join("spill.spw"))?;
    sections.attach::<U64Column>("col", SectionOptions::tier(spillway::Tier::Disk))?;
    let t = Instant::now();
    let a = sections.read("col", sum_reads)?;
    let mapped = t.elapsed().as_secs_f64();
    drop(sections);
    let sections = pool.sections(dir.join("spill.spw"))?;
    sections.attach::<U64Column>("col", SectionOptions::default())?;
    let t = Instant::now();
    sections.read("col", |v: View<'_, U64Column>| v.len())?;
    let reload = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        sections.stats()[0].in_ram,
        "the section should be back in memory"
    );
    let t = Instant::now();
    let b = sections.read("col", sum_reads)?;
    let ram = t.elapsed().as_secs_f64();
    anyhow::ensure!(a == b, "mapped and in-memory reads disagree");
    rows.push((
        format!(
            "spill of a {} MiB section (written, then dropped)",
            quarter >> 20
        ),
        format!("{:.2} s ({})", spill, mbs(quarter as u64, spill)),
    ));
    rows.push((
        "reload of it (checksum, decode into memory)".to_string(),
        format!("{:.2} s ({})", reload, mbs(quarter as u64, reload)),
    ));
    rows.push((
        "random reads, spilled (mapped) against in memory".into(),
        format!(
            "{:.1} ns against {:.1} ns ({:.2}×)",
            mapped * 1e9 / reads as f64,
            ram * 1e9 / reads as f64,
            mapped / ram
        ),
    ));
    drop(sections);
    drop(pool);

    // 3. Export and import of a graph: a root over 16 KiB leaves.
    let leaves = quarter / (16 << 10);
    let store = LogStore::open(dir.join("store"))?;
    let mut keys = Vec::with_capacity(leaves);
    for chunk in 0..leaves.div_ceil(256) {
        let payloads: Vec<Vec<u8>> = (chunk * 256..((chunk + 1) * 256).min(leaves))
            .map(|i| random(16 << 10, 1000 + i as u64))
            .collect();
        let puts: Vec<Put<'_>> = payloads.iter().map(|p| Put::new(p, &[])).collect();
        keys.extend(puts.iter().map(|p| p.key));
        store.put_batch(&puts)?;
    }
    let root = Put::new(b"root", &keys);
    store.put(root)?;
    store.flush(Durability::Durable)?;
    store.set_root("graph", Some(root.key))?;
    let pack = dir.join("graph.spw");
    let t = Instant::now();
    let report = export_pack(&store, &["graph".to_string()], &pack)?;
    let export = t.elapsed().as_secs_f64();
    drop(store);
    let p = PackStore::open(&pack)?;
    let target = LogStore::open(dir.join("target"))?;
    let t = Instant::now();
    import_pack(&p, &target, false)?;
    let import = t.elapsed().as_secs_f64();
    rows.push((
        format!(
            "export of {} objects ({} MiB) from a log store",
            report.objects,
            report.object_bytes >> 20
        ),
        mbs(report.object_bytes, export),
    ));
    rows.push((
        "import of that pack into a new log store (durable)".into(),
        mbs(report.object_bytes, import),
    ));

    println!("| container figure | value |");
    println!("|---|---|");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
    Ok(())
}
