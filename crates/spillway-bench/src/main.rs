//! `spillway-bench`: runs workloads against spillway and its peers, each contender in its own
//! child process, repeated and interleaved, and prints a Markdown report with the machine and its
//! measured limits.
//!
//! The parent re-invokes its own executable as `spillway-bench --child '<job as JSON>'` for
//! spillway's contenders, and runs the peer executables (built from the projects under
//! `bench-peers/`, each with its own lock file) as `peer-X --job '<job as JSON>'` for the others.
//! A child opens the contender in a fresh directory, runs the workload, and prints one JSON line
//! of [`shared::Measurement`] on stdout. A child is a clean process, so its peak RSS (`VmHWM`) is
//! the contender's own and no allocator or page-cache state leaks from one contender to the
//! next.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use clap::Parser;

mod cases;
mod contender;
mod limits;
mod machine;
mod plots;
mod report;
#[allow(
    dead_code,
    reason = "shared with the peer executables, which use the parts this binary does not"
)]
mod shared;
mod workload;

use cases::Case;
use contender::ContenderId;
use limits::{LimitSizes, Limits};
use machine::Machine;
use report::{Report, Sample};
use shared::{Job, Kind, Measurement};
use workload::Workload;

/// Benchmark spillway against its peers; print a Markdown report.
#[derive(Debug, Parser)]
#[command(name = "spillway-bench", version)]
struct Cli {
    /// Directory under which the stores and limit files are created (a temporary directory is
    /// made inside it and removed at the end). Put it on the disk you mean to measure.
    /// Default: the system temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,

    /// Repetitions of the whole set, interleaved (default 3, or 1 with `--quick`).
    #[arg(long)]
    runs: Option<usize>,

    /// Tiny sizes that finish in seconds, for smoke tests; peers off unless `--peers`.
    #[arg(long)]
    quick: bool,

    /// Build and run the peer contenders (default: on, off with `--quick`).
    #[arg(long, conflicts_with = "no_peers")]
    peers: bool,

    /// Run spillway's contenders only; nothing under `bench-peers/` is built.
    #[arg(long)]
    no_peers: bool,

    /// Contenders, comma-separated (default: all that a workload measures).
    #[arg(long, value_delimiter = ',', value_enum)]
    contenders: Vec<ContenderId>,

    /// Workloads to run, by id prefix, comma-separated (e.g. `W1,W4,R`; default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,

    /// Multiplies every default object and operation count (e.g. 0.1 for a shorter run).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,

    /// A W1/W2 workload as COUNTxSIZE (e.g. 1000000x128, 50000x16K, 1000x1M); repeat for several.
    /// Default: 1000000x128, 50000x16K, 1000x1M (with `--quick`: 20000x128, 2000x16K, 16x1M).
    #[arg(long = "workload", short = 'w')]
    workloads: Vec<Workload>,

    /// Objects per `put_batch`.
    #[arg(long, default_value_t = 1000)]
    batch: usize,

    /// At most this many payload bytes per `put_batch` (suffixes K, M, G).
    #[arg(long, default_value = "16M", value_parser = parse_bytes)]
    batch_bytes: usize,

    /// Seed of the payloads and of the access orders.
    #[arg(long, default_value_t = 0x5EED_5EED)]
    seed: u64,

    /// Skip measuring the machine's limits.
    #[arg(long)]
    no_limits: bool,

    /// Skip the untimed warm-up child before each workload.
    #[arg(long)]
    no_warmup: bool,

    /// Also write the Markdown report to this file. If the file already holds the report's
    /// begin/end markers, only the text between them is replaced.
    #[arg(long)]
    markdown_out: Option<PathBuf>,

    /// Also write every sample as JSON to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,

    /// Write the plots (SVG) into this directory.
    #[arg(long)]
    plots_out: Option<PathBuf>,

    /// Internal: run one job (JSON) in this process and print its measurement.
    #[arg(long, hide = true)]
    child: Option<String>,
}

fn parse_bytes(s: &str) -> Result<usize, String> {
    format!("1x{s}")
        .parse::<Workload>()
        .map(|w| w.size)
        .map_err(|_| format!("{s:?} is not a size such as 16M"))
}

fn main() {
    let cli = Cli::parse();
    let result = match &cli.child {
        Some(job) => child_main(job),
        None => parent_main(&cli),
    };
    if let Err(e) = result {
        eprintln!("spillway-bench: {e:#}");
        std::process::exit(1);
    }
}

fn child_main(job: &str) -> anyhow::Result<()> {
    let job: Job = serde_json::from_str(job).context("parsing the child's job")?;
    let id = ContenderId::from_name(&job.contender)
        .with_context(|| format!("unknown contender {:?}", job.contender))?;
    let m = match (id, job.spec.kind) {
        (ContenderId::SpillwayPoolLru, _) => {
            contender::spillway_pool::run(&job, spillway::memory::PolicyKind::Lru, id.backend())
                .map_err(|e| anyhow::anyhow!("{e}"))?
        }
        (
            ContenderId::SpillwayPoolS3fifo
            | ContenderId::SpillwayPoolDir
            | ContenderId::SpillwayPoolSqlite
            | ContenderId::SpillwayPoolS3
            | ContenderId::SpillwayPoolS3Cached,
            _,
        ) => {
            contender::spillway_pool::run(&job, spillway::memory::PolicyKind::S3Fifo, id.backend())
                .map_err(|e| anyhow::anyhow!("{e}"))?
        }
        (_, Kind::Kv) => workload::run(&job, id)?,
        (_, kind) => bail!("{} does not run {kind:?} in this process", id.name()),
    };
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

/// The repository root (this crate is `crates/spillway-bench`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where the peer executables are built.
fn peer_target_dir() -> PathBuf {
    repo_root().join("target").join("bench-peers")
}

/// Builds the peer projects the cases need, once, in release mode.
fn build_peers(projects: &[&str]) -> anyhow::Result<()> {
    for p in projects {
        let manifest = repo_root().join("bench-peers").join(p).join("Cargo.toml");
        eprintln!("building peer project bench-peers/{p} (release) ...");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .arg("build")
            .arg("--release")
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(peer_target_dir())
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("starting cargo for bench-peers/{p}"))?;
        if !status.success() {
            bail!("building bench-peers/{p} failed ({status})");
        }
    }
    Ok(())
}

fn peer_exe(project: &str) -> PathBuf {
    peer_target_dir()
        .join("release")
        .join(format!("peer-{}", project.replace('_', "-")))
}

/// Runs `job` in a child process: this executable for spillway's contenders, the peer's own
/// executable for the others.
fn run_child(job: &Job, id: ContenderId) -> anyhow::Result<Measurement> {
    let json = serde_json::to_string(job)?;
    let mut cmd = match id.peer_project() {
        None => {
            let mut c = Command::new(std::env::current_exe().context("finding this executable")?);
            c.arg("--child").arg(json);
            c
        }
        Some(p) => {
            let mut c = Command::new(peer_exe(p));
            c.arg("--job").arg(json);
            c
        }
    };
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting the child for {}", id.name()))?;
    if !out.status.success() {
        bail!("the child for {} failed ({})", id.name(), out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("the child printed no result")?;
    Ok(serde_json::from_str(line)?)
}

fn parent_main(cli: &Cli) -> anyhow::Result<()> {
    let runs = cli.runs.unwrap_or(if cli.quick { 1 } else { 3 }).max(1);
    let peers = if cli.no_peers {
        false
    } else {
        cli.peers || !cli.quick
    };
    let kv: Vec<Workload> = if !cli.workloads.is_empty() {
        cli.workloads.clone()
    } else if cli.quick {
        vec![w(20_000, 128), w(2_000, 16 << 10), w(16, 1 << 20)]
    } else {
        vec![w(1_000_000, 128), w(50_000, 16 << 10), w(1_000, 1 << 20)]
    };
    let cases: Vec<Case> = cases::all(&cases::Options {
        quick: cli.quick,
        scale: cli.scale,
        kv,
        peers,
        contenders: cli.contenders.clone(),
        only: cli.only.clone(),
    });
    if cases.is_empty() {
        bail!("no workload left to run (see --only and --contenders)");
    }
    if peers {
        let mut projects: Vec<&str> = cases
            .iter()
            .flat_map(|c| c.contenders.iter().filter_map(|id| id.peer_project()))
            .collect();
        projects.sort_unstable();
        projects.dedup();
        build_peers(&projects)?;
    }
    let limit_sizes = if cli.quick {
        LimitSizes::QUICK
    } else {
        LimitSizes::FULL
    };
    let parent_dir = cli.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent_dir)
        .with_context(|| format!("creating {}", parent_dir.display()))?;
    let base = tempfile::Builder::new()
        .prefix("spillway-bench-")
        .tempdir_in(&parent_dir)
        .with_context(|| format!("creating a directory in {}", parent_dir.display()))?;
    let machine = Machine::describe(base.path());
    eprintln!("machine: {}", machine.summary());

    let mut limits: Vec<Limits> = Vec::new();
    let mut disk: Vec<report::DiskSample> = Vec::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut failures = Vec::new();
    let mut errors = Vec::new();
    for run in 0..runs {
        if !cli.no_limits {
            eprintln!("run {}/{runs}: measuring limits", run + 1);
            settle();
            limits.push(limits::measure(base.path(), limit_sizes)?);
        }
        for case in &cases {
            if !cli.no_warmup && case.writes_disk() {
                // An untimed child that writes and deletes about as much as the case does, so
                // that the first measured contender follows the same kind of activity as the
                // others (on some virtual disks a write right after a delete runs faster).
                let dir = base.path().join(format!("run{run}-warmup"));
                let job = case.warmup_job(cli.seed, dir.clone());
                settle();
                if let Err(e) = run_child(&job, ContenderId::SpillwayLogWritten) {
                    eprintln!("warm-up failed: {e:#}");
                }
                remove_dir(&dir)?;
            }
            // The disk beside this workload, before its contenders (and after them, below): the
            // figure the puts are read against, and its spread.
            let measure_disk = |disk: &mut Vec<report::DiskSample>| -> anyhow::Result<()> {
                if !cli.no_limits && case.writes_disk() {
                    settle();
                    disk.push(report::DiskSample {
                        run,
                        case: case.id.clone(),
                        limit: limits::measure_disk(base.path(), limit_sizes.disk_bytes)?,
                    });
                }
                Ok(())
            };
            measure_disk(&mut disk)?;
            // Rotate the order from run to run so that no contender always goes first.
            let mut order = case.contenders.clone();
            let shift = run % order.len().max(1);
            order.rotate_left(shift);
            for id in order {
                let dir = base.path().join(format!("run{run}-{}", id.name()));
                let spec = case.spec_for(id);
                let job = Job {
                    contender: id.name().to_string(),
                    spec,
                    batch: Workload {
                        count: spec.count,
                        size: spec.size,
                    }
                    .batch_len(cli.batch, cli.batch_bytes),
                    seed: cli.seed,
                    dir: dir.clone(),
                };
                eprint!("run {}/{runs}: {} on {} ... ", run + 1, case.id, id.name());
                settle();
                match run_child(&job, id) {
                    Ok(m) => {
                        eprintln!(
                            "{:.2} s + {:.2} s, peak RSS {} MiB",
                            m.put_secs,
                            m.get_secs,
                            m.peak_rss_bytes >> 20
                        );
                        if m.failed() {
                            failures.push(format!(
                                "{} on {}: {} mismatches, {} missing",
                                case.id,
                                id.name(),
                                m.mismatches,
                                m.missing
                            ));
                        }
                        samples.push(Sample {
                            run,
                            case: case.id.clone(),
                            contender: id,
                            spec,
                            m,
                        });
                    }
                    Err(e) => {
                        eprintln!("failed: {e:#}");
                        errors.push(format!("{} on {}: {e:#}", case.id, id.name()));
                    }
                }
                remove_dir(&dir)?;
            }
            measure_disk(&mut disk)?;
        }
    }

    let report = Report {
        command: shown_command(),
        date: report::today_utc(),
        machine,
        runs,
        batch: cli.batch,
        batch_bytes: cli.batch_bytes,
        warmup: !cli.no_warmup,
        cases,
        limits,
        disk,
        samples,
        errors,
    };
    let md = report.markdown();
    println!("{md}");
    if let Some(path) = &cli.markdown_out {
        let existing = std::fs::read_to_string(path).ok();
        std::fs::write(path, report::splice(existing.as_deref(), &md))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &cli.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(dir) = &cli.plots_out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, svg) in plots::all(&report) {
            let path = dir.join(name);
            std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if !failures.is_empty() {
        bail!("wrong data returned:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

/// Lets the previous measurement's dirty pages reach the disk before the next one starts, so that
/// no measurement pays for another's writeback. Best effort: `sync` may be missing.
fn settle() {
    let _ = Command::new("sync")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn w(count: u64, size: usize) -> Workload {
    Workload { count, size }
}

fn remove_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}

/// The command line as it can be shown in a report: the `cargo xtask bench` form, with any
/// absolute path (which would name this machine's layout) replaced by a placeholder.
fn shown_command() -> String {
    let mut parts = vec!["cargo xtask bench".to_string()];
    for arg in std::env::args().skip(1) {
        let shown = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") && value.starts_with('/') => {
                format!("{flag}=<path>")
            }
            _ if arg.starts_with('/') => "<path>".to_string(),
            _ => arg,
        };
        parts.push(shown);
    }
    parts.join(" ")
}
