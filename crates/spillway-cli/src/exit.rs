//! Exit codes, and how an error reaches the user: each cause once, a hint where one helps,
//! and with `--json` a JSON document too.

use std::process::ExitCode;

use crate::output::Output;

/// The exit codes, as every subcommand's `--help` states them.
pub const CODES: &str = "\
Exit codes:
  0  all is well
  1  damage found, or the command could not finish (the message says what and where)
  2  usage error, or the store cannot be opened (not a store, locked by another process,
     written by a newer spillway)";

/// The demo's exit codes.
pub const DEMO_CODES: &str = "\
Exit codes:
  0  every value read back matched its content key and its generator
  1  a value did not match, or the run failed
  2  usage error (a bad flag, a budget too small for the demo or larger than this machine's
     memory, a graph that would not fit in the free disk space)";

/// Usage error or cannot open.
pub const USAGE: u8 = 2;
/// Damage found, or the command failed.
pub const DAMAGE: u8 = 1;

/// The exit code for an error: 2 when the store cannot be opened as given, 1 otherwise.
pub fn code_for(e: &spillway::Error) -> u8 {
    use spillway::Error as E;
    match e.root() {
        E::NotAStore { .. }
        | E::Locked { .. }
        | E::UnsupportedVersion { .. }
        | E::InvalidArgument(_) => USAGE,
        E::Io { source, .. }
            if matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            USAGE
        }
        _ => DAMAGE,
    }
}

/// The error and its causes, each once: a cause whose text the message before it already
/// holds is not repeated.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut lines = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !lines.last().is_some_and(|prev| prev.contains(&text)) {
            lines.push(text);
        }
        source = s.source();
    }
    lines
}

/// What to run instead, for errors where the next step is not obvious.
fn hint(e: &spillway::Error, log: bool) -> Option<String> {
    match e.root() {
        spillway::Error::Locked { path, .. } => Some(format!(
            "`spillway inspect {0}` and `spillway verify {0}` (without --repair) read the store while it is locked",
            path.display()
        )),
        // A container file's damage: its own message says what to do; no store to repair.
        spillway::Error::Corrupted { what, .. }
        | spillway::Error::ChecksumMismatch { what, .. }
            if what.contains("section") || what.contains("container") || what.contains("pack") =>
        {
            None
        }
        e if e.is_corruption() && log => Some(
            "`spillway verify` on the store reports all the damage; `spillway verify --repair` keeps every record a checksum vouches for and lists what it drops".to_string(),
        ),
        e if e.is_corruption() => Some(
            "`spillway verify` on the store lists all the damage; a damaged object is an error when read, never wrong data".to_string(),
        ),
        _ => None,
    }
}

/// Prints `e` (and, with `--json`, a JSON document on standard output) and returns the exit
/// code. `log`: the store is a log store, which `verify --repair` can repair.
pub fn report(e: &spillway::Error, out: &Output, log: bool) -> ExitCode {
    let code = code_for(e);
    let lines = chain(e);
    let hint = hint(e, log);
    eprintln!("error: {}", lines[0]);
    for cause in &lines[1..] {
        eprintln!("  caused by: {cause}");
    }
    if let Some(h) = &hint {
        eprintln!("hint: {h}");
    }
    if out.json {
        out.print_json(&serde_json::json!({
            "ok": false,
            "exit_code": code,
            "error": {
                "message": lines[0],
                "causes": &lines[1..],
                "hint": hint,
                "damage": code == DAMAGE && e.is_corruption(),
            },
        }));
    }
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_not_printed_again() {
        let io = std::io::Error::other("disk on fire");
        let e = spillway::Error::io("write", "/store/seg-1.log", io);
        let lines = chain(&e);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("disk on fire"));
        // A cause the message does not hold is printed.
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("could not finish")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(chain(&e), vec!["could not finish", "disk on fire"]);
    }

    #[test]
    fn exit_codes_follow_the_convention() {
        let e = spillway::Error::NotAStore {
            path: "/x".into(),
            detail: "the directory is empty".into(),
        };
        assert_eq!(code_for(&e), USAGE);
        let e = spillway::Error::Corrupted {
            what: "record",
            location: "here".into(),
            detail: "bad".into(),
        };
        assert_eq!(code_for(&e), DAMAGE);
        assert_eq!(
            code_for(&spillway::Error::Shared(std::sync::Arc::new(e))),
            DAMAGE
        );
    }
}
