//! A build cache that survives restarts: a tiny build system keeps its build graph in a
//! `Pool` over a log store and names it as a root, so that the next run of the build finds
//! everything it built before and rebuilds only what an edit reaches.
//!
//! The project has 6 libraries of 8 C-like source files and a header each. Each source compiles
//! to an object (from the source and its library's header), the objects of a library are
//! archived, and two binaries are linked: `bin/app` from every library, `bin/tool` from three.
//! Each target is an `Artifact` value holding `Paged` handles to the outputs it was built
//! from, so the build is a Merkle DAG: a target is up to date when the content keys of its
//! inputs are those its previous artifact recorded, which the build reads without loading a
//! single output.
//!
//! The example runs the build four times, each time as a new process would: it opens a pool on
//! the store directory, takes the root `build`, builds, names the new build as the root,
//! collects what the old one alone reached, and drops the pool.
//!
//! 1. build: on a new store everything is built;
//! 2. restart, nothing changed: nothing is rebuilt and nothing is written;
//! 3. one function edited: its object, its library and `bin/app` are rebuilt; `bin/tool` is not;
//! 4. one comment edited: the object is recompiled, comes out the same and is stored once
//!    (dedup), so nothing after it is rebuilt (early cutoff).
//!
//! Each time, every target's output is read back through the pool and compared with a build
//! from scratch in plain memory, and the set of rebuilt targets with the set the edit should
//! reach; the example panics (exits non-zero) if either differs. The budget (1 MiB) is about
//! 40% of one build's outputs (2.5 MiB), so values are paged out and back in along the way.
//!
//! ```sh
//! cargo run --release -p spillway --example build_cache
//! cargo run --release -p spillway --example build_cache -- --dir DIR  # keeps the store in DIR
//! ```
//!
//! Without `--dir` the store lives in a temporary directory that is removed at the end. With
//! `--dir` it is kept: run the example again on it and its first build finds everything stored
//! by the last run (only the two edited files differ from it).
//!
//! `cargo test -p spillway --examples` runs the example as a test.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use spillway::{Paged, Pool, PoolStats};

/// The budget for resident values.
const BUDGET: u64 = 1 << 20;
/// The name of the root that holds the last build.
const ROOT: &str = "build";
const LIBS: [&str; 6] = ["core", "util", "io", "net", "db", "ui"];
const FILES: [&str; 8] = [
    "alloc", "buf", "fmt", "hash", "list", "main", "parse", "sort",
];
/// `bin/tool` links only these libraries.
const TOOL_LIBS: usize = 3;
/// Version 1 of the sources changes a function in this file...
const EDITED_CODE: &str = "src/net/parse.c";
/// ...and version 2 a comment in this one.
const EDITED_COMMENT: &str = "src/core/alloc.c";

/// The contents of a file: a source's text or what a rule produced.
#[derive(Serialize, Deserialize, get_size2::GetSize)]
struct Data(Vec<u8>);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, get_size2::GetSize)]
enum Rule {
    /// A file of the project, read from the version of the sources being built.
    Source,
    Compile,
    Archive,
    Link,
}

/// What a build made of one target: its output and the outputs it was made from.
#[derive(Serialize, Deserialize, get_size2::GetSize)]
struct Artifact {
    rule: Rule,
    inputs: Vec<Paged<Data>>,
    output: Paged<Data>,
}

/// One build of the whole project: the root.
#[derive(Serialize, Deserialize, get_size2::GetSize)]
struct Build {
    /// The version of the sources it was built from.
    version: u32,
    /// Every target by name, in the order of the plan.
    targets: Vec<(String, Paged<Artifact>)>,
}

/// A target of the build plan; `inputs` are indexes of earlier targets.
struct Target {
    name: String,
    rule: Rule,
    inputs: Vec<usize>,
}

/// The build plan, in an order where every target comes after its inputs.
fn plan() -> Vec<Target> {
    let mut plan = Vec::new();
    let mut add = |name: String, rule, inputs| {
        plan.push(Target { name, rule, inputs });
        plan.len() - 1
    };
    let mut libs = Vec::new();
    for lib in LIBS {
        let header = add(format!("include/{lib}.h"), Rule::Source, vec![]);
        let mut objects = Vec::new();
        for file in FILES {
            let source = add(format!("src/{lib}/{file}.c"), Rule::Source, vec![]);
            objects.push(add(
                format!("obj/{lib}/{file}.o"),
                Rule::Compile,
                vec![source, header],
            ));
        }
        libs.push(add(format!("lib/lib{lib}.a"), Rule::Archive, objects));
    }
    add("bin/app".into(), Rule::Link, libs.clone());
    add("bin/tool".into(), Rule::Link, libs[..TOOL_LIBS].to_vec());
    plan
}

/// A pseudo-random number from `x` (splitmix64), to generate the sources.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The text of a project file in a version of the sources: a few hundred lines of functions
/// and comments, about 7 KiB.
fn source_text(path: &str, version: u32) -> Vec<u8> {
    let seed = path
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| mix(h ^ u64::from(b)));
    let mut text = format!("// {path}\n");
    for i in 0..200u64 {
        let r = mix(seed ^ i);
        if r.is_multiple_of(5) {
            text.push_str(&format!("// step {i}: {r:x}\n"));
        } else {
            text.push_str(&format!(
                "int f{i}(int x) {{ return x * {} + {}; }}\n",
                r % 97,
                (r >> 8) % 1000
            ));
        }
    }
    let mut edit = |from: &str, to: &str| {
        let edited = text.replacen(from, to, 1);
        assert_ne!(edited, text, "{path}: the edit applies");
        text = edited;
    };
    if version >= 1 && path == EDITED_CODE {
        edit("int f1(int x) { return", "int f1(int x) { return 1 +");
    }
    if version >= 2 && path == EDITED_COMMENT {
        edit(&format!("// {path}\n"), "// the allocator\n");
    }
    text.into_bytes()
}

/// A rule at work: it takes its inputs one at a time, so that a build holds only one of them
/// in memory. Compiling drops comments, so a comment-only edit compiles to the same object.
struct RuleRun {
    rule: Rule,
    out: Vec<u8>,
}

impl RuleRun {
    fn new(target: &Target, version: u32) -> RuleRun {
        let out = match target.rule {
            Rule::Source => source_text(&target.name, version),
            Rule::Compile => b"OBJ\n".to_vec(),
            Rule::Archive => b"!<arch>\n".to_vec(),
            Rule::Link => b"\x7fELF".to_vec(),
        };
        RuleRun {
            rule: target.rule,
            out,
        }
    }

    fn input(&mut self, contents: &[u8]) {
        match self.rule {
            Rule::Source => unreachable!("a source has no inputs"),
            Rule::Compile => {
                for line in contents.split(|&b| b == b'\n') {
                    if !line.is_empty() && !line.starts_with(b"//") {
                        self.out
                            .extend(line.iter().map(|b| b.rotate_left(3) ^ 0x5a));
                        self.out.push(b'\n');
                    }
                }
            }
            Rule::Archive | Rule::Link => {
                self.out
                    .extend_from_slice(&(contents.len() as u64).to_le_bytes());
                self.out.extend_from_slice(contents);
            }
        }
    }
}

/// Every target's output for a version of the sources, built from scratch in plain memory:
/// what the cached build must read back.
fn reference(plan: &[Target], version: u32) -> Vec<Vec<u8>> {
    let mut outputs: Vec<Vec<u8>> = Vec::new();
    for t in plan {
        let mut run = RuleRun::new(t, version);
        for &i in &t.inputs {
            run.input(&outputs[i]);
        }
        outputs.push(run.out);
    }
    outputs
}

/// The targets a build of `version` must run after a build of `previous`: those with an input
/// whose contents differ (every target after no build at all).
fn expected_rebuilds(plan: &[Target], previous: Option<u32>, version: u32) -> BTreeSet<String> {
    let new = reference(plan, version);
    let old = previous.map(|v| reference(plan, v));
    plan.iter()
        .filter(|t| t.rule != Rule::Source)
        .filter(|t| match &old {
            None => true,
            Some(old) => t.inputs.iter().any(|&i| old[i] != new[i]),
        })
        .map(|t| t.name.clone())
        .collect()
}

/// The content keys of `handles`, storing the values that were never stored.
fn keys_of(handles: &[Paged<Data>]) -> spillway::Result<Vec<spillway::ContentKey>> {
    handles.iter().map(Paged::key).collect()
}

/// Builds `version` of the sources, reusing whatever `previous` built from the same inputs.
/// Returns the new build and the targets whose rules ran.
fn build(
    pool: &Pool,
    plan: &[Target],
    version: u32,
    previous: Option<&Build>,
) -> spillway::Result<(Paged<Build>, BTreeSet<String>)> {
    let before: HashMap<&str, &Paged<Artifact>> = previous
        .map(|b| b.targets.iter().map(|(n, a)| (n.as_str(), a)).collect())
        .unwrap_or_default();
    let mut outputs: Vec<Paged<Data>> = Vec::with_capacity(plan.len());
    let mut targets = Vec::with_capacity(plan.len());
    let mut rebuilt = BTreeSet::new();
    for t in plan {
        let old_handle = before.get(t.name.as_str()).copied();
        let old = old_handle.map(Paged::get).transpose()?;
        let artifact = match t.rule {
            Rule::Source => {
                // A source is read and stored: its key says whether it changed, and an unchanged
                // file is stored already, so storing it writes nothing.
                let text = pool.insert(Data(RuleRun::new(t, version).out))?;
                match (old_handle, &old) {
                    (Some(a), Some(o)) if o.output.key()? == text.key()? => a.clone(),
                    _ => pool.insert(Artifact {
                        rule: t.rule,
                        inputs: vec![],
                        output: text,
                    })?,
                }
            }
            _ => {
                let inputs: Vec<Paged<Data>> =
                    t.inputs.iter().map(|&i| outputs[i].clone()).collect();
                let keys = keys_of(&inputs)?;
                // Up to date if the last build ran the same rule on inputs with the same keys.
                // Reading the old artifact's input keys loads neither its inputs nor its output.
                match (old_handle, &old) {
                    (Some(a), Some(o)) if o.rule == t.rule && keys_of(&o.inputs)? == keys => {
                        a.clone()
                    }
                    _ => {
                        let mut run = RuleRun::new(t, version);
                        for input in &inputs {
                            run.input(&input.get()?.0);
                        }
                        let output = pool.insert(Data(run.out))?;
                        rebuilt.insert(t.name.clone());
                        pool.insert(Artifact {
                            rule: t.rule,
                            inputs,
                            output,
                        })?
                    }
                }
            }
        };
        outputs.push(artifact.get()?.output.clone());
        targets.push((t.name.clone(), artifact));
    }
    Ok((pool.insert(Build { version, targets })?, rebuilt))
}

/// Reads every target's output back through the pool and compares it with a build from
/// scratch.
fn check_outputs(plan: &[Target], build: &Build) -> spillway::Result<()> {
    let expected = reference(plan, build.version);
    for (i, (name, artifact)) in build.targets.iter().enumerate() {
        let output = artifact.get()?.output.get()?;
        assert_eq!(
            name, &plan[i].name,
            "the build lists its targets in plan order"
        );
        assert!(
            output.0 == expected[i],
            "{name}: the cached output differs from a build from scratch"
        );
    }
    Ok(())
}

/// One run of the build tool on the store in `dir`, for `version` of the sources.
fn run(plan: &[Target], dir: &Path, step: &str, version: u32) -> spillway::Result<()> {
    let t = Instant::now();
    let pool = Pool::builder().budget(BUDGET).dir(dir).build()?;
    let stored_before = pool.stats().stored_objects;
    let previous_root: Option<Paged<Build>> = pool.root(ROOT)?;
    let previous = previous_root.as_ref().map(Paged::get).transpose()?;
    let (current, rebuilt) = build(&pool, plan, version, previous.as_deref())?;
    let expected = expected_rebuilds(plan, previous.as_ref().map(|b| b.version), version);
    // Every handle into the old build goes before the collection, which keeps what they reach.
    drop(previous);
    drop(previous_root);
    pool.set_root(ROOT, &current)?;
    // The old build is no longer named: collect what only it reached.
    let gc = pool.gc()?;
    let secs = t.elapsed().as_secs_f64();
    let s: PoolStats = pool.stats();
    check_outputs(plan, &*current.get()?)?;
    let rebuilt_list = if rebuilt.len() < plan.len() / 2 {
        rebuilt.iter().cloned().collect::<Vec<_>>().join(", ")
    } else {
        "(all)".into()
    };
    println!(
        "{step:<28} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9} {:>6.0}  {rebuilt_list}",
        rebuilt.len(),
        stored_before,
        s.objects_written,
        s.dedup_hits,
        gc.deleted,
        s.stored_objects,
        format!("{} KiB", s.bytes_read >> 10),
        format!("{} KiB", s.peak_resident_bytes >> 10),
        secs * 1e3,
    );
    assert_eq!(
        rebuilt, expected,
        "{step}: the targets rebuilt are not those the edit reaches"
    );
    if expected.is_empty() {
        assert_eq!(
            s.objects_written, 0,
            "{step}: nothing changed, nothing to write"
        );
    }
    assert_eq!(s.errors, 0, "{step}: background errors: {:?}", s.last_error);
    Ok(())
}

const USAGE: &str =
    "usage: build_cache [--dir DIR]  (DIR keeps the store; default: a temporary directory)";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = Some(PathBuf::from(args.next().ok_or("--dir needs a path")?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => {
                eprintln!("{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let tmp;
    let dir = match dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().join("store")
        }
    };
    run_all(&dir)?;
    Ok(())
}

/// The four builds on the store in `dir`.
fn run_all(dir: &Path) -> spillway::Result<()> {
    let plan = plan();
    println!(
        "build_cache: {} files, {} targets, budget {} KiB, store in {}",
        plan.iter().filter(|t| t.rule == Rule::Source).count(),
        plan.iter().filter(|t| t.rule != Rule::Source).count(),
        BUDGET >> 10,
        dir.display()
    );
    println!(
        "{:<28} {:>7} {:-^39} {:>9} {:>9}",
        "", "targets", " stored objects ", "read from", "peak"
    );
    println!(
        "{:<28} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9} {:>6}  targets rebuilt",
        "run",
        "rebuilt",
        "before",
        "written",
        "dedup",
        "gc'd",
        "after",
        "the store",
        "resident",
        "ms"
    );
    run(&plan, dir, "1. build", 0)?;
    run(&plan, dir, "2. restart, nothing changed", 0)?;
    run(&plan, dir, "3. one function edited", 1)?;
    run(&plan, dir, "4. one comment edited", 2)?;
    println!("ok: each build rebuilt exactly what its edit reached, and every output matched");
    Ok(())
}

/// `cargo test -p spillway --examples` runs the example too.
#[test]
fn builds_only_what_each_edit_reaches() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    run_all(&tmp.path().join("store")).expect("the builds");
}
