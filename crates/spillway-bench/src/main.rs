//! `spillway-bench`: runs workloads against contenders, each contender in its own child process,
//! repeated and interleaved, and prints a Markdown table with the machine and its measured limits.
//!
//! The parent re-invokes its own executable as `spillway-bench --child '<job as JSON>'`; the child
//! opens the contender in a fresh directory, runs the workload, and prints one JSON line of
//! [`workload::Measurement`] on stdout. A child is a clean process, so its peak RSS (`VmHWM`) is
//! the contender's own and no allocator or page-cache state leaks from one contender to the next.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use clap::Parser;

mod contender;
mod limits;
mod machine;
mod report;
mod workload;

use contender::ContenderId;
use limits::{LimitSizes, Limits};
use machine::Machine;
use report::{Report, Sample};
use workload::{Job, Measurement, Workload};

/// Benchmark spillway's stores; print a Markdown report.
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

    /// Tiny sizes that finish in a few seconds, for smoke tests.
    #[arg(long)]
    quick: bool,

    /// Contenders, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    contenders: Vec<ContenderId>,

    /// A workload as COUNTxSIZE (e.g. 1000000x128, 50000x16K, 1000x1M); repeat for several.
    /// Default: 1000000x128, 50000x16K, 1000x1M (with `--quick`: 20000x128, 2000x16K, 16x1M).
    #[arg(long = "workload", short = 'w')]
    workloads: Vec<Workload>,

    /// Objects per `put_batch`.
    #[arg(long, default_value_t = 1000)]
    batch: usize,

    /// At most this many payload bytes per `put_batch` (suffixes K, M, G).
    #[arg(long, default_value = "16M", value_parser = parse_bytes)]
    batch_bytes: usize,

    /// Seed of the payloads and of the get order.
    #[arg(long, default_value_t = 0x5EED_5EED)]
    seed: u64,

    /// Skip measuring the machine's limits.
    #[arg(long)]
    no_limits: bool,

    /// Also write the Markdown report to this file. If the file already holds the report's
    /// begin/end markers, only the text between them is replaced.
    #[arg(long)]
    markdown_out: Option<PathBuf>,

    /// Also write every sample as JSON to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,

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
    let m = workload::run(&job)?;
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

/// Runs `job` in a child process of this executable.
fn run_child(job: &Job) -> anyhow::Result<Measurement> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let out = Command::new(exe)
        .arg("--child")
        .arg(serde_json::to_string(job)?)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("starting a child")?;
    if !out.status.success() {
        bail!(
            "the child for {} on {} failed ({})",
            job.contender.name(),
            job.workload,
            out.status
        );
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
    let contenders = if cli.contenders.is_empty() {
        ContenderId::all()
    } else {
        cli.contenders.clone()
    };
    let workloads: Vec<Workload> = if !cli.workloads.is_empty() {
        cli.workloads.clone()
    } else if cli.quick {
        vec![w(20_000, 128), w(2_000, 16 << 10), w(16, 1 << 20)]
    } else {
        vec![w(1_000_000, 128), w(50_000, 16 << 10), w(1_000, 1 << 20)]
    };
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
    let mut samples: Vec<Sample> = Vec::new();
    let mut failures = Vec::new();
    for run in 0..runs {
        if !cli.no_limits {
            eprintln!("run {}/{runs}: measuring limits", run + 1);
            settle();
            limits.push(limits::measure(base.path(), limit_sizes)?);
        }
        for &workload in &workloads {
            // Rotate the order from run to run so that no contender always goes first.
            let mut order = contenders.clone();
            let shift = run % order.len().max(1);
            order.rotate_left(shift);
            for contender in order {
                let dir = base.path().join(format!("run{run}-{}", contender.name()));
                let job = Job {
                    contender,
                    workload,
                    batch: workload.batch_len(cli.batch, cli.batch_bytes),
                    seed: cli.seed,
                    dir: dir.clone(),
                };
                eprint!(
                    "run {}/{runs}: {workload} on {} ... ",
                    run + 1,
                    contender.name()
                );
                settle();
                let m = run_child(&job)?;
                eprintln!(
                    "put {:.2} s, get {:.2} s, peak RSS {} MiB",
                    m.put_secs,
                    m.get_secs,
                    m.peak_rss_bytes >> 20
                );
                if m.failed() {
                    failures.push(format!(
                        "{workload} on {}: {} mismatches, {} missing",
                        contender.name(),
                        m.mismatches,
                        m.missing
                    ));
                }
                remove_dir(&dir)?;
                samples.push(Sample {
                    run,
                    workload,
                    contender,
                    m,
                });
            }
        }
    }

    let report = Report {
        command: shown_command(),
        date: report::today_utc(),
        machine,
        runs,
        batch: cli.batch,
        batch_bytes: cli.batch_bytes,
        workloads,
        contenders,
        limits,
        samples,
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

/// The command line as it can be shown in a report: this crate's `cargo run` form, with any
/// absolute path (which would name this machine's layout) replaced by a placeholder.
fn shown_command() -> String {
    let mut parts = vec!["cargo run --release -p spillway-bench --".to_string()];
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
