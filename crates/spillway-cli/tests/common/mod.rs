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

/// Asserts the exit code of `o` and that its output holds every needle.
#[track_caller]
pub fn expect(o: &Output, code: i32, needles: &[&str]) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(code), "{t}");
    for n in needles {
        assert!(t.contains(n), "expected {n:?} in:\n{t}");
    }
}

/// Standard output and standard error, together.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A rooted graph written into a store: `parents` parents of `leaves` leaves each (leaf `i`
/// holds `leaf_len + i` bytes), a root over the parents written last and named "graph", and
/// `garbage` unrooted objects written first.
pub struct Graph {
    pub root: spillway::ContentKey,
    /// Every leaf, in the order written.
    pub leaves: Vec<spillway::ContentKey>,
    /// The unrooted objects.
    pub garbage: std::collections::BTreeSet<spillway::ContentKey>,
    /// Every key written.
    pub all: std::collections::BTreeSet<spillway::ContentKey>,
}

pub fn write_graph(
    store: &dyn spillway::BlobStore,
    garbage: u32,
    parents: u32,
    leaves: u32,
    leaf_len: usize,
) -> Graph {
    use spillway::Put;
    let mut g = Graph {
        root: spillway::ContentKey::reserved(0),
        leaves: Vec::new(),
        garbage: Default::default(),
        all: Default::default(),
    };
    for i in 0..garbage {
        let payload = format!("garbage {i}").repeat(50).into_bytes();
        let p = Put::new(&payload, &[]);
        store.put(p).expect("put");
        g.garbage.insert(p.key);
        g.all.insert(p.key);
    }
    let mut parent_keys = Vec::new();
    for p in 0..parents {
        let mut children = Vec::new();
        for l in 0..leaves {
            let i = p * leaves + l;
            let payload = vec![i as u8; leaf_len + i as usize];
            let put = Put::new(&payload, &[]);
            store.put(put).expect("put");
            children.push(put.key);
            g.all.insert(put.key);
        }
        let payload = format!("parent {p}").into_bytes();
        let put = Put::new(&payload, &children);
        store.put(put).expect("put");
        parent_keys.push(put.key);
        g.all.insert(put.key);
        g.leaves.extend(children);
    }
    let root = Put::new(b"the root", &parent_keys);
    store.put(root).expect("put");
    g.all.insert(root.key);
    store.set_root("graph", Some(root.key)).expect("root");
    g.root = root.key;
    g
}
