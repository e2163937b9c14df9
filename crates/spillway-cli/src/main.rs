//! The `spillway` command-line tool: run the demo, and inspect, verify and repair stores.
//!
//! Exit codes: 0 on success, 1 when the command ran but found a problem (or failed), 2 on a
//! usage error (bad flag, bad size, bad path).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod paths;
mod size;

/// Keep objects in memory up to a byte budget and page the cold ones to storage.
#[derive(Debug, Parser)]
#[command(name = "spillway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a large object graph in a store, read it back with a skewed pattern, verify it.
    Demo(cmd::demo::Args),
    /// Show what a store holds.
    Inspect(cmd::inspect::Args),
    /// Check every record of a store (checksums, keys, children); `--repair` cuts a damaged tail.
    Verify(cmd::verify::Args),
    /// Rewrite mostly-dead segments of a store and give their space back.
    Compact(cmd::compact::Args),
    /// Delete stored objects that no named root reaches.
    Gc(cmd::gc::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Verify(a) => cmd::verify::run(a),
        Command::Compact(a) => cmd::compact::run(a),
        Command::Gc(a) => cmd::gc::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}
