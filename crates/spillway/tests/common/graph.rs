//! A graph of labelled nodes for pool tests: each node's data follows from its label, so a
//! reader can check every node it reads without keeping the graph.

use serde::{Deserialize, Serialize};
use spillway::Paged;

#[derive(Serialize, Deserialize, get_size2::GetSize)]
pub struct Node {
    pub label: u64,
    pub data: Vec<u8>,
    pub children: Vec<Paged<Node>>,
}

impl Node {
    /// A node labelled `label` over `children`.
    pub fn new(label: u64, children: Vec<Paged<Node>>) -> Node {
        Node {
            label,
            data: data(label, 400),
            children,
        }
    }

    /// A node labelled `label` with data of up to `max` bytes, over `children`.
    pub fn sized(label: u64, max: usize, children: Vec<Paged<Node>>) -> Node {
        Node {
            label,
            data: data(label, max),
            children,
        }
    }
}

/// The data of node `label`: 20 to `max + 19` bytes, following from the label alone.
pub fn data(label: u64, max: usize) -> Vec<u8> {
    let len = (label.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize % max + 20;
    (0..len).map(|j| (label as usize * 13 + j) as u8).collect()
}

/// Reads the whole graph under `h`, loading what is paged out: its node count, or the first
/// error. A node whose data does not match its label fails the test at once (`at` says where):
/// a read may fail, never return something else.
pub fn count(h: &Paged<Node>, max: usize, at: &str) -> spillway::Result<usize> {
    let mut stack = vec![h.clone()];
    let mut n = 0;
    while let Some(h) = stack.pop() {
        let g = h.get()?;
        assert!(
            g.data == data(g.label, max),
            "{at}: node {} read back wrong",
            g.label
        );
        n += 1;
        stack.extend(g.children.iter().cloned());
    }
    Ok(n)
}
