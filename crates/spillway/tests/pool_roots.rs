//! Named roots and persisted graphs survive the process: a child process builds a graph in a pool
//! over a log store directory, names it with `set_root`, persists another graph and exits; the
//! parent opens a new pool on the directory and gets both back, lazily.
//!
//! The child is this test binary run again with `SPILLWAY_ROOTS_CHILD` set, selecting the
//! ignored `roots_child` test, so it works under `cargo test` and `cargo nextest run` alike.

use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use spillway::{ContentKey, Paged, Pool};

const CHILD_ENV: &str = "SPILLWAY_ROOTS_CHILD";

#[derive(Serialize, Deserialize, get_size2::GetSize)]
struct Node {
    name: String,
    data: Vec<u32>,
    children: Vec<Paged<Node>>,
}

/// What a node reads back as, with its whole subgraph, for comparison.
#[derive(Debug, PartialEq)]
struct Plain {
    name: String,
    data: Vec<u32>,
    children: Vec<Plain>,
}

/// The graph the child builds: `fan` subtrees sharing one leaf.
fn expected(fan: u32) -> Plain {
    let shared = Plain {
        name: "shared".into(),
        data: vec![42; 100],
        children: vec![],
    };
    let shared_copy = || Plain {
        name: shared.name.clone(),
        data: shared.data.clone(),
        children: vec![],
    };
    Plain {
        name: "root".into(),
        data: vec![1, 2, 3],
        children: (0..fan)
            .map(|i| Plain {
                name: format!("branch {i}"),
                data: (0..i * 10).collect(),
                children: vec![
                    shared_copy(),
                    Plain {
                        name: format!("leaf {i}"),
                        data: vec![i; 50],
                        children: vec![],
                    },
                ],
            })
            .collect(),
    }
}

fn build(pool: &Pool, p: &Plain) -> Paged<Node> {
    let children = p.children.iter().map(|c| build(pool, c)).collect();
    pool.insert(Node {
        name: p.name.clone(),
        data: p.data.clone(),
        children,
    })
    .expect("insert")
}

fn read(h: &Paged<Node>) -> Plain {
    let g = h.get().expect("get");
    Plain {
        name: g.name.clone(),
        data: g.data.clone(),
        children: g.children.iter().map(read).collect(),
    }
}

#[test]
#[ignore = "the child process of roots_and_persisted_graphs_survive_a_new_process"]
fn roots_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let pool = Pool::builder()
        .budget(1 << 20)
        .dir(Path::new(&dir))
        .build()
        .expect("child: open pool");
    let root = build(&pool, &expected(20));
    pool.set_root("main", &root).expect("child: set_root");
    let other = build(&pool, &expected(3));
    let key = pool.persist(&other).expect("child: persist");
    // On its own line: the test harness prints its own words around the test's output.
    println!("\nPERSISTED {key}");
}

#[test]
fn roots_and_persisted_graphs_survive_a_new_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .args([
            "roots_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .expect("spawn the child");
    assert!(out.status.success(), "the child failed: {:?}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let persisted: ContentKey = stdout
        .lines()
        .find_map(|l| l.split_once("PERSISTED ").map(|(_, k)| k))
        .unwrap_or_else(|| panic!("the child printed no key: {stdout}"))
        .trim()
        .parse()
        .expect("a content key");

    let pool = Pool::builder()
        .budget(1 << 20)
        .dir(dir.path())
        .build()
        .expect("reopen");
    let roots = pool.roots().expect("roots");
    assert!(
        roots.iter().any(|(n, _)| n == "main"),
        "roots after reopen: {roots:?}"
    );
    let root: Paged<Node> = pool
        .root("main")
        .expect("root")
        .expect("the root named main");
    assert!(!root.is_resident(), "a root comes back lazily");
    assert_eq!(pool.stats().page_ins, 0);
    assert_eq!(read(&root), expected(20));
    assert!(root.is_resident());
    // The shared leaf is one object in memory.
    let g = root.get().expect("get");
    let a = g.children[0].get().expect("get").children[0].clone();
    let b = g.children[1].get().expect("get").children[0].clone();
    assert!(Paged::ptr_eq(&a, &b));

    let other: Paged<Node> = pool.load(persisted).expect("load the persisted key");
    assert_eq!(read(&other), expected(3));
    assert!(pool.root::<Node>("missing").expect("root").is_none());
    // Collection keeps both graphs.
    drop((g, a, b, root, other));
    pool.gc().expect("gc");
    let root: Paged<Node> = pool
        .root("main")
        .expect("root")
        .expect("the root named main");
    assert_eq!(read(&root), expected(20));
    assert_eq!(read(&pool.load(persisted).expect("load")), expected(3));
}
