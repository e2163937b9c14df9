//! Project tasks that are too long or too heavy for the test suite, run as `cargo xtask <task>`.
//!
//! - `ci`: formatting, lints and the test suite, exactly as CI runs them, the examples, plus
//!   short smokes of the fuzzers, the crash sweep and the benchmark;
//! - `fuzz [--seconds N] [TARGET...]`: runs the cargo-fuzz targets (installs cargo-fuzz into the
//!   nightly toolchain's cargo if missing);
//! - `crash-sweep [--iters N]`: the out-of-process kill -9 crash tests, of the log store and of
//!   a pool (kills aimed inside its operations), N iterations each (default 500), each ending
//!   with a line of totals; fails if an acknowledged write or root was lost;
//! - `faults [--seeds N]`: the pool workload with one injected I/O fault at every I/O call in
//!   turn (five kinds), for N workload seeds (default 16), ending with a line of totals;
//! - `soak [--minutes N]`: a pool under budget pressure for N minutes (default 10) with a
//!   watchdog on memory, descriptors, threads and disk; fails on a breach;
//! - `bench [ARGS...]`: the benchmark harness in release mode; arguments go to it.
//!
//! `cargo xtask --help` (or `-h`, or no task) prints the usage and exits 0; an unknown task or
//! flag prints it and exits 2; a task that fails exits 1.

use std::env;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

const FUZZ_TARGETS: &[&str] = &[
    "decode_record",
    "decode_checkpoint",
    "recover_log",
    "verify_store",
    "open_container",
    "open_pack",
    "pool_ops",
    "decode_small_files",
    "decode_value",
];

/// The examples of the `spillway` crate, run in release mode by `ci`.
/// The examples CI runs: (package, example).
const EXAMPLES: &[(&str, &str)] = &[
    ("spillway", "build_cache"),
    ("spillway", "matrices"),
    ("spillway", "bytes_speed"),
    ("spillway-write", "kv"),
];

/// The tag of the line of totals that the crash test prints at its end.
const CRASH_TOTALS_TAG: &str = "CRASH-SWEEP-TOTALS";

fn usage() -> String {
    let lines = [
        "usage: cargo xtask <task> [FLAGS]".to_string(),
        String::new(),
        "tasks:".to_string(),
        "  ci                              fmt, clippy, tests, the examples, and short smokes"
            .into(),
        "                                  of the rest (longer than CI's)".into(),
        "  fuzz [--seconds N] [TARGET...]  run the fuzz targets, N seconds each (default 60);"
            .into(),
        format!(
            "                                  targets: {}",
            FUZZ_TARGETS.join(", ")
        ),
        "  crash-sweep [--iters N]         kill -9 crash test, N iterations of two kills each"
            .into(),
        "                                  (default 500); ends with a line of totals and fails"
            .into(),
        "                                  if an acknowledged write was lost".into(),
        "  faults [--seeds N]              one injected I/O fault at every I/O call of a pool"
            .into(),
        "                                  workload in turn, N seeds (default 16); ends with"
            .into(),
        "                                  a line of totals".into(),
        "  soak [--minutes N]              a pool under budget pressure for N minutes (default"
            .into(),
        "                                  10), watching memory, descriptors, threads, disk".into(),
        "  bench [ARGS...]                 the benchmark harness in release mode; ARGS go to"
            .into(),
        "                                  it (try: cargo xtask bench --help)".into(),
        String::new(),
        "cargo xtask --help (or -h, or no task) shows this.".into(),
    ];
    lines.join("\n")
}

/// Why a task did not succeed: the command line was wrong (exit 2), or the task failed (exit 1).
enum Failure {
    Usage(String),
    Task(String),
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Task(e)
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("$ {cmd:?}");
    let status = cmd
        .current_dir(root())
        .status()
        .map_err(|e| format!("could not start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

/// Cargo, with none of the variables that the `cargo run` that started this task set for it
/// alone (`CARGO_MANIFEST_DIR` and the like): a build script that reads one (ring's does)
/// would otherwise run again, and everything above it build again, each time a build
/// alternates between here and a plain `cargo` command (minutes in CI).
fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if PER_PACKAGE_VARS.contains(&name) || name.starts_with("CARGO_PKG_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// What `cargo run` sets for the package it runs (besides `CARGO_PKG_*`).
const PER_PACKAGE_VARS: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
];

fn has_cargo_fuzz() -> bool {
    Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn fuzz(seconds: u64, targets: &[String]) -> Result<(), String> {
    if !has_cargo_fuzz() {
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let targets: Vec<String> = if targets.is_empty() {
        FUZZ_TARGETS.iter().map(|t| t.to_string()).collect()
    } else {
        targets.to_vec()
    };
    let mut done = Vec::new();
    for t in &targets {
        let corpus = root().join("fuzz").join("corpus").join(t);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let executions = fuzz_one(
            Command::new("cargo")
                .env_remove("CARGO")
                .env_remove("RUSTUP_TOOLCHAIN")
                .args(["+nightly", "fuzz", "run", t])
                .arg(&corpus)
                .arg(root().join("fuzz").join("seeds").join(t))
                .args([
                    "--",
                    &format!("-max_total_time={seconds}"),
                    "-rss_limit_mb=4096",
                    "-print_final_stats=1",
                ]),
        );
        match executions {
            Ok(n) => done.push((t.clone(), n)),
            Err(e) => {
                print_executions(&done, seconds);
                return Err(e);
            }
        }
    }
    print_executions(&done, seconds);
    Ok(())
}

/// Runs one fuzz target, passing its output through; returns the executions libFuzzer counted
/// (its final `stat::number_of_executed_units`).
fn fuzz_one(cmd: &mut Command) -> Result<u64, String> {
    let mut executions = None;
    relay(cmd, Stream::Err, |line| {
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            executions = n.trim().parse().ok();
        }
    })?;
    executions.ok_or_else(|| format!("{cmd:?} printed no count of executions"))
}

fn print_executions(done: &[(String, u64)], seconds: u64) {
    println!("| fuzz target | seconds | executions | per second |");
    println!("|---|---|---|---|");
    for (t, n) in done {
        println!("| {t} | {seconds} | {n} | {} |", n / seconds.max(1));
    }
}

/// Runs `cmd` with its standard output relayed line by line to ours, handing each line to
/// `on_line` too.
fn run_reading(cmd: &mut Command, on_line: impl FnMut(&str)) -> Result<(), String> {
    relay(cmd, Stream::Out, on_line)
}

/// Which output of a command [`relay`] reads.
#[derive(Clone, Copy)]
enum Stream {
    Out,
    Err,
}

/// Runs `cmd` with one of its outputs relayed line by line to the same output of ours, handing
/// each line to `on_line` too; fails if the command fails.
fn relay(cmd: &mut Command, stream: Stream, mut on_line: impl FnMut(&str)) -> Result<(), String> {
    eprintln!("$ {cmd:?}");
    match stream {
        Stream::Out => cmd.stdout(Stdio::piped()),
        Stream::Err => cmd.stderr(Stdio::piped()),
    };
    let mut child = cmd
        .current_dir(root())
        .spawn()
        .map_err(|e| format!("could not start {cmd:?}: {e}"))?;
    let output: Box<dyn std::io::Read> = match stream {
        Stream::Out => child.stdout.take().map(|o| Box::new(o) as _),
        Stream::Err => child.stderr.take().map(|o| Box::new(o) as _),
    }
    .ok_or_else(|| format!("{cmd:?}: no output to read"))?;
    for line in BufReader::new(output).lines() {
        let line = line.map_err(|e| format!("{cmd:?}: reading its output: {e}"))?;
        match stream {
            Stream::Out => println!("{line}"),
            Stream::Err => eprintln!("{line}"),
        }
        on_line(&line);
    }
    let status = child
        .wait()
        .map_err(|e| format!("{cmd:?}: waiting for it: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

/// The totals the crash test prints at its end, as `name=value` pairs.
#[derive(Debug, Default)]
struct CrashTotals {
    iterations: u64,
    kills: u64,
    checked: u64,
    lost: u64,
    undeleted: u64,
    unknown: u64,
}

impl CrashTotals {
    fn parse(line: &str) -> Option<CrashTotals> {
        let rest = &line[line.find(CRASH_TOTALS_TAG)? + CRASH_TOTALS_TAG.len()..];
        let mut t = CrashTotals::default();
        for pair in rest.split_whitespace() {
            let (name, value) = pair.split_once('=')?;
            let value: u64 = value.parse().ok()?;
            match name {
                "iterations" => t.iterations = value,
                "kills" => t.kills = value,
                "checked" => t.checked = value,
                "lost" => t.lost = value,
                "undeleted" => t.undeleted = value,
                "unknown" => t.unknown = value,
                _ => {}
            }
        }
        Some(t)
    }
}

fn crash_sweep(iters: u64) -> Result<(), String> {
    let mut totals = None;
    let outcome = run_reading(
        cargo()
            .env("SPILLWAY_CRASH_ITERS", iters.to_string())
            .args([
                "test",
                "--release",
                "-p",
                "spillway",
                "--test",
                "log_crash_process",
            ])
            .args(["--", "--nocapture"]),
        |line| {
            if let Some(t) = CrashTotals::parse(line) {
                totals = Some(t);
            }
        },
    );
    let Some(t) = totals else {
        outcome?;
        return Err("the crash test ended without its line of totals".into());
    };
    println!(
        "crash sweep: {} iterations, {} kills, {} acknowledged writes checked, lost: {}{}",
        t.iterations,
        t.kills,
        t.checked,
        t.lost,
        if t.undeleted + t.unknown > 0 {
            format!(
                ", deletes undone: {}, unknown keys: {}",
                t.undeleted, t.unknown
            )
        } else {
            String::new()
        }
    );
    outcome?;
    if t.lost + t.undeleted + t.unknown > 0 {
        return Err("the crash test found acknowledged writes lost or undone".into());
    }
    if t.iterations != iters {
        return Err(format!(
            "the crash test ran {} iterations, not {iters}",
            t.iterations
        ));
    }
    pool_crash_sweep(iters)
}

/// The tag of the line of totals that the pool's crash test prints at its end.
const POOL_CRASH_TOTALS_TAG: &str = "POOL-CRASH-TOTALS";

/// The pool's kill -9 test: kills aimed inside page-outs, root changes, collections and
/// compactions.
fn pool_crash_sweep(iters: u64) -> Result<(), String> {
    let t = tagged_totals(
        cargo()
            .env("SPILLWAY_CRASH_ITERS", iters.to_string())
            .args(["test", "--release", "-p", "spillway"])
            .args(["--test", "pool_crash_process", "--", "--nocapture"]),
        POOL_CRASH_TOTALS_TAG,
    )?;
    println!("pool crash sweep: {t}");
    Ok(())
}

/// The tag of the line of totals that the fault test prints at its end.
const FAULT_TOTALS_TAG: &str = "FAULT-SWEEP-TOTALS";

fn faults(seeds: u64) -> Result<(), String> {
    let t = tagged_totals(
        cargo()
            .env("SPILLWAY_FAULT_SEEDS", seeds.to_string())
            .env("SPILLWAY_FAULT_STRIDE", "1")
            .args([
                "test",
                "--release",
                "-p",
                "spillway",
                "--test",
                "pool_faults",
            ])
            .args(["--", "--nocapture"]),
        FAULT_TOTALS_TAG,
    )?;
    println!("fault sweep: {t}");
    Ok(())
}

/// Runs a test that ends with a line `TAG totals...`; returns the totals. Fails if the test
/// failed (after printing them) or printed no such line.
fn tagged_totals(cmd: &mut Command, tag: &str) -> Result<String, String> {
    let mut totals = None;
    let outcome = run_reading(cmd, |line| {
        if let Some(rest) = line.split(tag).nth(1) {
            totals = Some(rest.trim().to_string());
        }
    });
    match (totals, outcome) {
        (Some(t), Ok(())) => Ok(t),
        (Some(t), Err(e)) => Err(format!("{e}; its totals: {t}")),
        (None, Err(e)) => Err(e),
        (None, Ok(())) => Err(format!("the test ended without its line of totals ({tag})")),
    }
}

fn bench(args: &[String]) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", "spillway-bench", "--"])
        .args(args);
    // The S3 rows need a server: the local test server, started here unless one is configured
    // already (or this is the quick smoke, which leaves them out) and stopped at the end.
    let server = if std::env::var_os("SPILLWAY_S3_URL").is_none()
        && !args
            .iter()
            .any(|a| a == "--quick" || a == "--help" || a == "-h")
    {
        start_s3_server(&mut cmd)
    } else {
        None
    };
    let result = run(&mut cmd);
    if let Some(pid) = server {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    result
}

/// Starts the local S3 test server (`.ci/s3-server`) and passes its environment to `cmd`;
/// returns its process id. Without it (no Python here, say) the S3 rows are left out.
fn start_s3_server(cmd: &mut Command) -> Option<u32> {
    let script = root().join(".ci").join("s3-server");
    let out = match Command::new("bash").arg(&script).output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!(
                "the S3 test server did not start ({}): the S3 rows are left out",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return None;
        }
        Err(e) => {
            eprintln!(
                "cannot run {}: {e}; the S3 rows are left out",
                script.display()
            );
            return None;
        }
    };
    let mut pid = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
            if k == "SPILLWAY_S3_SERVER_PID" {
                pid = v.parse().ok();
            }
            cmd.env(k, v);
        }
    }
    pid
}

fn examples() -> Result<(), String> {
    for (package, example) in EXAMPLES {
        run(cargo().args(["run", "--release", "-p", package, "--example", example]))?;
    }
    Ok(())
}

fn ci() -> Result<(), String> {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args(["test", "--workspace"]))?;
    examples()?;
    crash_sweep(20)?;
    bench(&["--quick".to_string()])?;
    fuzz(20, &[])
}

/// Takes `name N` out of `args`; the rest are returned, in order.
fn flag(args: &[String], name: &str, default: u64) -> Result<(u64, Vec<String>), Failure> {
    let mut rest = Vec::new();
    let mut value = default;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == name {
            let v = it
                .next()
                .ok_or_else(|| Failure::Usage(format!("{name} needs a value")))?;
            value = v
                .parse()
                .map_err(|_| Failure::Usage(format!("{name}: {v:?} is not a number")))?;
        } else {
            rest.push(a.clone());
        }
    }
    Ok((value, rest))
}

/// Refuses arguments a task does not take.
fn no_more(task: &str, rest: &[String]) -> Result<(), Failure> {
    match rest.first() {
        None => Ok(()),
        Some(a) => Err(Failure::Usage(format!("{task}: unexpected argument {a:?}"))),
    }
}

fn run_task(task: &str, args: &[String]) -> Result<(), Failure> {
    match task {
        "ci" => {
            no_more(task, args)?;
            Ok(ci()?)
        }
        "fuzz" => {
            let (seconds, targets) = flag(args, "--seconds", 60)?;
            if let Some(t) = targets.iter().find(|t| !FUZZ_TARGETS.contains(&t.as_str())) {
                return Err(Failure::Usage(format!(
                    "fuzz: unknown target or flag {t:?}"
                )));
            }
            Ok(fuzz(seconds, &targets)?)
        }
        "crash-sweep" => {
            let (iters, rest) = flag(args, "--iters", 500)?;
            no_more(task, &rest)?;
            Ok(crash_sweep(iters)?)
        }
        "faults" => {
            let (seeds, rest) = flag(args, "--seeds", 16)?;
            no_more(task, &rest)?;
            Ok(faults(seeds)?)
        }
        "soak" => {
            let (minutes, rest) = flag(args, "--minutes", 10)?;
            no_more(task, &rest)?;
            Ok(run(cargo()
                .args([
                    "run",
                    "--release",
                    "-p",
                    "spillway",
                    "--example",
                    "soak",
                    "--",
                ])
                .args(["--seconds", &(minutes * 60).to_string()]))?)
        }
        "bench" => Ok(bench(args)?),
        _ => Err(Failure::Usage(format!("unknown task {task:?}"))),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some(task) = args.first() else {
        println!("{}", usage());
        return ExitCode::SUCCESS;
    };
    // `bench` hands its arguments, `--help` included, to the harness.
    let help = |a: &String| a == "--help" || a == "-h" || a == "help";
    if help(task) || (task != "bench" && args[1..].iter().any(help)) {
        println!("{}", usage());
        return ExitCode::SUCCESS;
    }
    match run_task(task, &args[1..]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("error: {e}\n\n{}", usage());
            ExitCode::from(2)
        }
        Err(Failure::Task(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_crash_tests_totals_after_the_harness_words() {
        let t = CrashTotals::parse(
            "test x ... CRASH-SWEEP-TOTALS iterations=3 kills=6 checked=99 lost=1 undeleted=0 unknown=2",
        )
        .expect("a line of totals");
        assert_eq!(
            (
                t.iterations,
                t.kills,
                t.checked,
                t.lost,
                t.undeleted,
                t.unknown
            ),
            (3, 6, 99, 1, 0, 2)
        );
        assert!(CrashTotals::parse("test result: ok").is_none());
        assert!(CrashTotals::parse("CRASH-SWEEP-TOTALS lost=x").is_none());
    }
}
