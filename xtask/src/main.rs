//! Project tasks that are too long or too heavy for the test suite, run as `cargo xtask <task>`.
//!
//! - `ci`: formatting, lints and the test suite, exactly as CI runs them, plus short smokes of
//!   the fuzzers, the crash sweep and the benchmark;
//! - `fuzz [--seconds N] [TARGET...]`: runs the cargo-fuzz targets (installs cargo-fuzz into the
//!   nightly toolchain's cargo if missing);
//! - `crash-sweep [--iters N]`: the out-of-process kill -9 crash test, N times (default 500);
//! - `bench [ARGS...]`: the benchmark harness in release mode; arguments go to it.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const FUZZ_TARGETS: &[&str] = &["decode_record", "decode_checkpoint", "recover_log"];

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

fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

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
    for t in &targets {
        let corpus = root().join("fuzz").join("corpus").join(t);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        run(Command::new("cargo")
            .env_remove("CARGO")
            .env_remove("RUSTUP_TOOLCHAIN")
            .args(["+nightly", "fuzz", "run", t])
            .arg(&corpus)
            .arg(root().join("fuzz").join("seeds").join(t))
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-rss_limit_mb=4096",
            ]))?;
    }
    Ok(())
}

fn crash_sweep(iters: u64) -> Result<(), String> {
    run(cargo()
        .env("SPILLWAY_CRASH_ITERS", iters.to_string())
        .args([
            "test",
            "--release",
            "-p",
            "spillway",
            "--test",
            "log_crash_process",
        ])
        .args(["--", "--nocapture"]))
}

fn bench(args: &[String]) -> Result<(), String> {
    run(cargo()
        .args(["run", "--release", "-p", "spillway-bench", "--"])
        .args(args))
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
    crash_sweep(20)?;
    bench(&["--quick".to_string()])?;
    fuzz(20, &[])
}

fn flag(args: &[String], name: &str, default: u64) -> Result<(u64, Vec<String>), String> {
    let mut rest = Vec::new();
    let mut value = default;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == name {
            let v = it.next().ok_or(format!("{name} needs a value"))?;
            value = v
                .parse()
                .map_err(|_| format!("{name}: {v:?} is not a number"))?;
        } else {
            rest.push(a.clone());
        }
    }
    Ok((value, rest))
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("fuzz") => flag(&args[1..], "--seconds", 60).and_then(|(s, t)| fuzz(s, &t)),
        Some("crash-sweep") => flag(&args[1..], "--iters", 500).and_then(|(n, _)| crash_sweep(n)),
        Some("bench") => bench(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 ci                              fmt, clippy, tests, and short smokes of the rest\n  \
                 fuzz [--seconds N] [TARGET...]  run the fuzz targets (default 60 s each): {}\n  \
                 crash-sweep [--iters N]         kill -9 crash test, N runs (default 500)\n  \
                 bench [ARGS...]                 benchmark harness (try --help)",
                FUZZ_TARGETS.join(", ")
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
