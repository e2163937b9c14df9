//! `spillway verify DIR [--repair]`: check every record; optionally cut a damaged log tail.

use std::path::PathBuf;
use std::process::ExitCode;

use spillway::store::log::verify;
use spillway::{LogStore, LogStoreOptions};

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory.
    #[arg(value_parser = crate::paths::existing_dir)]
    dir: PathBuf,
    /// Cut the last segment at its first damaged record (the records after it are lost), then
    /// verify again.
    #[arg(long)]
    repair: bool,
}

/// Runs `verify`; exits 1 if anything is wrong.
pub fn run(args: Args) -> spillway::Result<ExitCode> {
    if args.repair {
        let store = LogStore::open_with(
            &args.dir,
            LogStoreOptions::default().create(false).repair(true),
        )?;
        if let Some(t) = &store.recovery().torn_tail {
            println!(
                "repaired: cut segment {} at offset {} ({} bytes removed: {})",
                t.segment, t.offset, t.bytes_cut, t.reason
            );
        }
        store.close()?;
    }
    let r = verify(&args.dir)?;
    println!(
        "{} segments, {} records ({} puts, {} tombstones), {} bytes, {} live objects",
        r.segments, r.records, r.puts, r.tombstones, r.bytes, r.live_objects
    );
    for p in &r.problems {
        println!("problem: {p}");
    }
    if r.dangling_children > 0 {
        println!(
            "{} objects refer to children that are not stored",
            r.dangling_children
        );
    }
    if r.is_clean() {
        println!("ok");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}
