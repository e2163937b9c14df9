//! `spillway export` and `spillway import`: a root's graph into a pack file (a container of its
//! objects, their index and its roots), and a pack's graph into a store.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;
use spillway::store::{PackStore, export_pack, import_pack};
use spillway::{BlobStore, LogStoreOptions};

use crate::output::Output;
use crate::paths::Location;
use crate::size::human;

/// Arguments of `export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A root to export (and everything it reaches); give it once per root.
    #[arg(long = "root", value_name = "NAME", required = true)]
    pub roots: Vec<String>,
    /// The store: a directory (a log store or a directory store), a SQLite store's file, or
    /// `s3://BUCKET/PREFIX`.
    #[arg(value_parser = crate::paths::location, value_name = "DIR|FILE|s3://BUCKET/PREFIX")]
    pub store: Location,
    /// The pack file to write; it must not exist.
    #[arg(short = 'o', long = "output", value_name = "FILE.spw")]
    pub output: PathBuf,
    #[command(flatten)]
    pub out: Output,
}

/// Arguments of `import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The pack file.
    #[arg(value_name = "FILE.spw")]
    pub pack: PathBuf,
    /// The store to copy into: a directory (a log store, created if it does not exist, or a
    /// directory store), a SQLite store's file, or `s3://BUCKET/PREFIX`.
    #[arg(value_name = "DIR|FILE|s3://BUCKET/PREFIX")]
    pub store: String,
    /// Set the pack's roots even where the store has a root of the same name that names
    /// another graph (that graph is then no longer kept by the name).
    #[arg(long)]
    pub replace_roots: bool,
    #[command(flatten)]
    pub out: Output,
}

/// Runs `export`.
pub fn export(args: ExportArgs) -> spillway::Result<ExitCode> {
    let out = args.out;
    let store = super::stores::open(&args.store, false)?;
    let pb = out.progress("exporting");
    let report = export_pack(store.as_ref(), &args.roots, &args.output);
    pb.finish_and_clear();
    let report = report?;
    if out.json {
        out.print_json(&json!({
            "ok": true,
            "store": args.store.name(),
            "pack": args.output.display().to_string(),
            "roots": report.roots.iter().map(|(n, k)| json!({"name": n, "key": k.to_string()})).collect::<Vec<_>>(),
            "objects": report.objects,
            "object_bytes": report.object_bytes,
            "file_bytes": report.file_bytes,
        }));
    } else {
        crate::say!(
            "exported {} objects ({}) of {} root(s) into {} ({})",
            report.objects,
            human(report.object_bytes),
            report.roots.len(),
            args.output.display(),
            human(report.file_bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `import`.
pub fn import(args: ImportArgs) -> spillway::Result<ExitCode> {
    let out = args.out;
    let pack = PackStore::open(&args.pack)?;
    if let Some(why) = &pack.open_report().index_rebuilt {
        out.note(&format!(
            "{}: the pack's index was rebuilt from its objects ({why})",
            args.pack.display()
        ));
    }
    if !pack.open_report().damaged_ranges.is_empty() {
        return Err(spillway::Error::Corrupted {
            what: "pack",
            location: args.pack.display().to_string(),
            detail: format!(
                "{} byte ranges of its objects do not decode; nothing was imported (check it \
                 with `spillway verify`)",
                pack.open_report().damaged_ranges.len()
            ),
        });
    }
    // Checked before a store is created or touched.
    pack.verify_objects()?;
    let path = PathBuf::from(&args.store);
    let (store, name): (Arc<dyn BlobStore>, String) = if !args.store.starts_with("s3://")
        && !path.exists()
    {
        (
            Arc::new(spillway::LogStore::open_with(
                &path,
                LogStoreOptions::default(),
            )?),
            path.display().to_string(),
        )
    } else {
        let loc = crate::paths::location(&args.store).map_err(spillway::Error::InvalidArgument)?;
        (super::stores::open(&loc, true)?, loc.name())
    };
    let pb = out.progress("importing");
    let report = import_pack(&pack, store.as_ref(), args.replace_roots);
    pb.finish_and_clear();
    let report = report?;
    if out.json {
        out.print_json(&json!({
            "ok": true,
            "pack": args.pack.display().to_string(),
            "store": name,
            "objects": report.objects,
            "roots": report.roots.iter().map(|(n, k)| json!({"name": n, "key": k.to_string()})).collect::<Vec<_>>(),
        }));
    } else {
        crate::say!(
            "imported {} objects and {} root(s) into {name}",
            report.objects,
            report.roots.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
