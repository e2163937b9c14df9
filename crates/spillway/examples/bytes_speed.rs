//! Why byte buffers belong in [`Bytes`] fields: 64 buffers of 1 MiB, held in a `Vec<u8>`
//! field and then in a `Bytes` field, are paged out and back in through a pool over a memory
//! store, and the rates are printed side by side.
//!
//! Serde encodes a `Vec<u8>` as a sequence, one serializer call per byte, and decodes it by
//! pushing one byte at a time; a `Bytes` is a length and one copy each way. Both are stored
//! alike (a length and the bytes), so the store holds the same records either way.
//!
//! ```sh
//! cargo run --release -p spillway --example bytes_speed
//! ```
//!
//! Each round inserts 64 fresh buffers, pages them all out (encode, key, write: `shrink_to(0)`)
//! and reads them all back (read, decode: `get`); the best of five rounds is printed. The
//! example checks every buffer that comes back against its generator and exits non-zero if one
//! differs. It asserts nothing about speed: the figures are for reading.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use spillway::{Bytes, MemStore, Pageable, Paged, Pool};

const BUFFERS: u64 = 64;
const LEN: usize = 1 << 20;
const ROUNDS: u64 = 5;

#[derive(Serialize, Deserialize, get_size2::GetSize)]
struct VecBuffer {
    data: Vec<u8>,
}

#[derive(Serialize, Deserialize, get_size2::GetSize)]
struct BytesBuffer {
    data: Bytes,
}

/// A value holding one buffer.
trait Buffer: Pageable + Sized {
    const FIELD: &'static str;
    fn new(data: Vec<u8>) -> Self;
    fn data(&self) -> &[u8];
}

impl Buffer for VecBuffer {
    const FIELD: &'static str = "Vec<u8>";
    fn new(data: Vec<u8>) -> Self {
        VecBuffer { data }
    }
    fn data(&self) -> &[u8] {
        &self.data
    }
}

impl Buffer for BytesBuffer {
    const FIELD: &'static str = "Bytes";
    fn new(data: Vec<u8>) -> Self {
        BytesBuffer { data: data.into() }
    }
    fn data(&self) -> &[u8] {
        &self.data
    }
}

/// `LEN` bytes of every value, in no simple pattern, from `seed`.
fn generate(seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..LEN)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

/// The fastest page-out and page-in of `ROUNDS` rounds.
fn measure<B: Buffer>() -> Result<(Duration, Duration), spillway::Error> {
    let mut best = (Duration::MAX, Duration::MAX);
    for round in 0..ROUNDS {
        let pool = Pool::builder()
            .budget(4 * BUFFERS * LEN as u64)
            .store(Arc::new(MemStore::new()))
            .deterministic(true)
            .build()?;
        let seeds: Vec<u64> = (0..BUFFERS).map(|i| round * BUFFERS + i).collect();
        let handles: Vec<Paged<B>> = seeds
            .iter()
            .map(|&s| pool.insert(B::new(generate(s))))
            .collect::<Result<_, _>>()?;
        let start = Instant::now();
        pool.shrink_to(0)?;
        let out = start.elapsed();
        assert!(handles.iter().all(|h| !h.is_resident()), "all paged out");
        let start = Instant::now();
        let guards = handles
            .iter()
            .map(|h| h.get())
            .collect::<Result<Vec<_>, _>>()?;
        let page_in = start.elapsed();
        assert_eq!(pool.stats().page_ins, BUFFERS);
        for (g, &s) in guards.iter().zip(&seeds) {
            assert!(g.data() == generate(s), "buffer {s} came back changed");
        }
        best = (best.0.min(out), best.1.min(page_in));
    }
    Ok(best)
}

fn rate(d: Duration) -> f64 {
    (BUFFERS as f64 * LEN as f64) / (1 << 20) as f64 / d.as_secs_f64()
}

fn main() -> Result<(), spillway::Error> {
    let vec = measure::<VecBuffer>()?;
    let bytes = measure::<BytesBuffer>()?;
    println!(
        "{BUFFERS} buffers of {} KiB over a memory store, best of {ROUNDS} rounds{}",
        LEN >> 10,
        if cfg!(debug_assertions) {
            " (a debug build: run with --release for figures that mean something)"
        } else {
            ""
        }
    );
    println!("| field | page-out MiB/s | page-in MiB/s |");
    println!("|---|---:|---:|");
    for (field, (out, page_in)) in [(VecBuffer::FIELD, vec), (BytesBuffer::FIELD, bytes)] {
        println!("| {field} | {:.0} | {:.0} |", rate(out), rate(page_in));
    }
    Ok(())
}
