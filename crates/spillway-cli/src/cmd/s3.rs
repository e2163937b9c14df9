//! The maintenance commands on an S3 prefix (`s3://BUCKET/PREFIX`), with the endpoint and
//! credentials of the `AWS_*` environment variables. A build without the `s3` feature says so.

use std::process::ExitCode;
use std::sync::Arc;

use spillway::BlobStore;

use crate::output::Output;

/// Opens the S3 store at `url`.
#[cfg(feature = "s3")]
pub fn open(url: &str) -> spillway::Result<Arc<dyn BlobStore>> {
    Ok(Arc::new(spillway::S3Store::open(
        url,
        spillway::S3StoreOptions::default(),
    )?))
}

/// Without the `s3` feature: a usage error that says how to get it.
#[cfg(not(feature = "s3"))]
pub fn open(url: &str) -> spillway::Result<Arc<dyn BlobStore>> {
    Err(spillway::Error::InvalidArgument(format!(
        "{url}: this build of spillway has no S3 support; build the command with the `s3` feature"
    )))
}

/// `inspect s3://…`: the objects and the roots under the prefix.
pub fn inspect(url: &str, out: &Output) -> spillway::Result<ExitCode> {
    let store = open(url)?;
    let pb = out.progress("listing");
    let keys = store.keys();
    let roots = store.roots();
    pb.finish_and_clear();
    let keys = keys?;
    let objects = keys.iter().filter(|k| !k.is_reserved()).count();
    if out.json {
        let roots_json = match &roots {
            Ok(r) => serde_json::json!(
                r.iter()
                    .map(|(n, k)| serde_json::json!({"name": n, "key": k.to_string()}))
                    .collect::<Vec<_>>()
            ),
            Err(_) => serde_json::Value::Null,
        };
        out.print_json(&serde_json::json!({
            "ok": roots.is_ok(),
            "store": url,
            "objects": objects,
            "roots": roots_json,
            "roots_problem": roots.as_ref().err().map(|e| e.to_string()),
        }));
    } else {
        crate::say!("store       {url}");
        crate::say!("objects     {objects}");
        match &roots {
            Ok(r) => {
                crate::say!("roots       {}", r.len());
                for (name, key) in r.iter().take(20) {
                    crate::say!("  {key}  {name}");
                }
            }
            Err(e) => crate::say!("roots       unreadable: {e}"),
        }
    }
    Ok(if roots.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::DAMAGE)
    })
}
