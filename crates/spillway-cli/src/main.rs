//! The `spillway` command-line tool: run the demo, and inspect, verify, repair, compact and
//! collect stores.
//!
//! Every subcommand exits 0 when all is well, 1 when it found damage (or could not finish),
//! and 2 on a usage error or a store it cannot open (not a store, locked, a newer version).
//! With `--json`, the maintenance commands print one JSON document on standard output
//! (`docs/CLI.md` gives its fields); messages and progress go to standard error.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod allocator;
mod cmd;
mod exit;
mod output;
mod paths;
mod size;

/// Keep objects in memory up to a byte budget and page the cold ones to storage.
#[derive(Debug, Parser)]
#[command(name = "spillway", version, about, after_help = exit::CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a large object graph in a store, read it back with a skewed pattern, verify it.
    #[command(after_help = exit::DEMO_CODES)]
    Demo(cmd::demo::Args),
    /// Show what a store holds. Reads only: works while another process writes the store.
    #[command(after_help = exit::CODES)]
    Inspect(cmd::inspect::Args),
    /// Check every record, file, root and graph of a store; `--repair` salvages what a checksum
    /// still vouches for. Without `--repair` it reads only: works while another process
    /// writes the store.
    #[command(after_help = exit::CODES)]
    Verify(cmd::verify::Args),
    /// Rewrite mostly-dead segments of a store and give their space back.
    #[command(after_help = exit::CODES)]
    Compact(cmd::compact::Args),
    /// DELETES stored objects that no named root reaches (the whole graph under each root
    /// stays). Stops and deletes nothing if a root's graph has a missing object.
    #[command(after_help = exit::CODES)]
    Gc(cmd::gc::Args),
    /// Write the graphs of named roots into a pack file (one container file, to copy to another
    /// machine and open or import there). Reads the store only.
    #[command(after_help = exit::CODES)]
    Export(cmd::pack::ExportArgs),
    /// Copy a pack's objects into a store (a new log store if the directory does not exist),
    /// make them durable, then set the pack's roots.
    #[command(after_help = exit::CODES)]
    Import(cmd::pack::ImportArgs),
}

fn main() -> ExitCode {
    allocator::configure();
    let mut command = Cli::command();
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        command = command.color(clap::ColorChoice::Never);
    }
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // A log store's damage can be repaired with `verify --repair`; the hint says so only there.
    let (result, out, log) = match cli.command {
        Command::Demo(a) => (cmd::demo::run(a), output::Output::default(), true),
        Command::Inspect(a) => {
            let (out, log) = (a.out, a.store.is_log());
            (cmd::inspect::run(a), out, log)
        }
        Command::Verify(a) => {
            let (out, log) = (a.out, a.store.is_log());
            (cmd::verify::run(a), out, log)
        }
        Command::Compact(a) => {
            let (out, log) = (a.out, a.store.is_log());
            (cmd::compact::run(a), out, log)
        }
        Command::Gc(a) => {
            let (out, log) = (a.out, a.store.is_log());
            (cmd::gc::run(a), out, log)
        }
        Command::Export(a) => {
            let (out, log) = (a.out, a.store.is_log());
            (cmd::pack::export(a), out, log)
        }
        Command::Import(a) => {
            let out = a.out;
            (cmd::pack::import(a), out, false)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => exit::report(&e, &out, log),
    }
}
