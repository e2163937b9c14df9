//! Running the `spillway` binary in the tests.

#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs `spillway` with `args` (with `NO_COLOR` cleared, so that output does not depend on the
/// caller's environment).
pub fn spillway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spillway"))
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .expect("run the spillway binary")
}

/// Standard output and standard error, together.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
