//! Changing a stored type: a program stores `Config` at version 1, a later version of it adds a
//! field, and reads every old record through a registered upgrade.
//!
//! Run with `cargo run --release -p spillway --example migrate`. It asserts what it claims and
//! exits non-zero if the upgrade is not applied.
//!
//! The two versions of the type live side by side here (`v1::Config` and `Config`); in a real
//! program `v1::Config` is the old definition kept for the upgrade, and both are registered
//! under one stable name, `"config"`, so that moving or renaming the Rust type changes nothing
//! stored.

use get_size2::GetSize;
use serde::{Deserialize, Serialize};
use spillway::{ErrorKind, Paged, Pool, PoolBuilder};

/// The type as version 1 of the program stored it.
mod v1 {
    use super::*;

    #[derive(Serialize, Deserialize, GetSize, Clone)]
    pub struct Config {
        pub name: String,
        pub threads: u32,
    }
}

/// The type at version 2: `retries` added. `#[serde(default)]` would not help: postcard is not
/// self-describing, so an old record simply ends before the new field.
#[derive(Serialize, Deserialize, GetSize, Clone, Debug, PartialEq)]
struct Config {
    name: String,
    threads: u32,
    retries: u32,
}

const RECORDS: u32 = 1000;

fn builder(dir: &std::path::Path) -> PoolBuilder {
    Pool::builder().budget(8 << 20).dir(dir)
}

fn root_name(i: u32) -> String {
    format!("config-{i:04}")
}

/// Version 1 of the program: stores the records, each under a named root.
fn write_version_1(dir: &std::path::Path) -> spillway::Result<()> {
    let pool = builder(dir).schema::<v1::Config>("config", 1).build()?;
    for i in 0..RECORDS {
        let c = pool.insert(v1::Config {
            name: format!("service {i}"),
            threads: i % 16 + 1,
        })?;
        pool.set_root(&root_name(i), &c)?;
    }
    Ok(())
}

/// Version 2 of the program: `Config` at version 2, with an upgrade from version 1.
fn version_2(dir: &std::path::Path) -> spillway::Result<Pool> {
    builder(dir)
        .schema::<Config>("config", 2)
        .upgrade::<v1::Config, Config>(1, |old| Config {
            name: old.name,
            threads: old.threads,
            retries: 3,
        })
        .build()
}

fn main() -> spillway::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_version_1(dir.path())?;

    // Without the upgrade, an old record is an error that says what to do, never wrong data.
    {
        let pool = builder(dir.path()).schema::<Config>("config", 2).build()?;
        let h: Paged<Config> = pool.root(&root_name(0))?.expect("the root");
        let err = h
            .get()
            .map(|_| ())
            .expect_err("version 1 read without an upgrade");
        assert_eq!(err.kind(), ErrorKind::SchemaVersion, "{err}");
        println!("without an upgrade: {err}");
    }

    // With it, every old record reads as the new type.
    let pool = version_2(dir.path())?;
    let roots = pool.roots()?;
    assert_eq!(roots.len(), RECORDS as usize);
    let mut upgraded = 0;
    for (i, (name, key)) in roots.iter().enumerate() {
        let i = i as u32;
        assert_eq!(*name, root_name(i));
        let h: Paged<Config> = pool.root(name)?.expect("the root");
        let c = h.get()?;
        assert_eq!(
            *c,
            Config {
                name: format!("service {i}"),
                threads: i % 16 + 1,
                retries: 3,
            },
            "record {i} was not upgraded"
        );
        // The handle keeps the key the record is stored under.
        assert_eq!(h.key()?, *key);
        upgraded += 1;
    }
    println!("read {upgraded} version 1 records as version 2 through the upgrade");

    // An update stores the value at version 2, under a new key, which the root then names.
    let first: Paged<Config> = pool.root(&root_name(0))?.expect("the root");
    let rewritten = pool.update(&first, |c| c.retries = 5)?;
    pool.set_root(&root_name(0), &rewritten)?;
    let new_key = rewritten.key()?;
    assert_ne!(new_key, first.key()?);
    drop((first, rewritten, pool));

    // A pool without the upgrade reads the rewritten record, and still refuses the others.
    let pool = builder(dir.path()).schema::<Config>("config", 2).build()?;
    let h: Paged<Config> = pool.root(&root_name(0))?.expect("the root");
    assert_eq!(h.get()?.retries, 5);
    let old: Paged<Config> = pool.root(&root_name(1))?.expect("the root");
    assert_eq!(
        old.get().map(|_| ()).expect_err("still version 1").kind(),
        ErrorKind::SchemaVersion
    );
    println!("record 0 rewritten at version 2 as {new_key}; the others stay at version 1");
    Ok(())
}
