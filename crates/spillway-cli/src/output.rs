//! Where output goes: human text or one JSON document on standard output; progress and
//! messages on standard error, shown only on a terminal and never with `--quiet`.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// `println!` that ends the process quietly when standard output is closed (the reader of a
/// pipe such as `spillway verify DIR | head` went away) instead of panicking.
#[macro_export]
macro_rules! say {
    () => { $crate::output::say_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::output::say_line(format_args!($($arg)*)) };
}

/// See [`say!`].
pub fn say_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|_| stdout.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // What a shell reports for a process ended by SIGPIPE.
            std::process::exit(141);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Output flags shared by the maintenance commands.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Output {
    /// Print one JSON document on standard output instead of text (fields: docs/CLI.md).
    #[arg(long)]
    pub json: bool,
    /// No progress display and no notes on standard error (errors are still printed).
    #[arg(long, short)]
    pub quiet: bool,
}

impl Output {
    /// A spinner with `what` on standard error while a long step runs; hidden when standard
    /// error is not a terminal or with `--quiet`. Finish it with `finish_and_clear`.
    pub fn progress(&self, what: &str) -> ProgressBar {
        if self.quiet || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            pb.set_style(style);
        }
        pb.set_message(what.to_string());
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    }

    /// A note on standard error (a repair's cut, say), unless `--quiet` or `--json`.
    pub fn note(&self, text: &str) {
        if !self.quiet && !self.json {
            eprintln!("note: {text}");
        }
    }

    /// Prints a JSON document on standard output.
    pub fn print_json(&self, v: &serde_json::Value) {
        match serde_json::to_string_pretty(v) {
            Ok(s) => say_line(format_args!("{s}")),
            Err(e) => eprintln!("error: cannot print JSON: {e}"),
        }
    }
}
