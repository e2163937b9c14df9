//! A data pipeline whose intermediate matrices together are several times larger than the
//! memory budget: every stage reads the matrices before it through [`Paged`] blocks and writes
//! a new matrix, the pool pages cold blocks out to its store and back in when a stage touches
//! them, and resident memory stays within the budget.
//!
//! The pipeline, on `N`×`N` matrices of `f64` cut into 128×128 blocks (one `Paged<Block>` each):
//!
//! 1. `X`: the input data (generated);
//! 2. `C`: `X` with each column's mean subtracted (a pass down each block column for the means,
//!    then another to subtract them);
//! 3. `W`: the weights (generated);
//! 4. `Z = C·W`: a blocked matrix product (each output block reads a block row of `C` and a block
//!    column of `W`, so all of `W` is read again for every block row);
//! 5. `R = max(Z, 0)`;
//! 6. `P`: `R` with each row scaled to sum to 1;
//! 7. `T = Pᵀ`: a transpose, which reads blocks across the matrix;
//! 8. `G = P + T`.
//!
//! All eight matrices are kept to the end (8 MiB each in release, 64 MiB in all, with a budget
//! of 8 MiB; a quarter of that in debug builds, with a budget of 2 MiB). At the end `G` is
//! checked: it must be symmetric, sum to `2N` (each row of `P` sums to 1), and a few entries
//! computed directly from the generators, in plain memory without the pool, must match. The
//! example panics (exits non-zero) if a check fails, if the resident bytes ever went past the
//! budget, or if nothing was paged out.
//!
//! ```sh
//! cargo run --release -p spillway --example matrices
//! ```
//!
//! The store is a log store in a temporary directory, removed when the pool is dropped.
//! `cargo test -p spillway --examples` runs the example as a test, with the debug sizes.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use spillway::{Paged, Pool};

/// Rows and columns of a block.
const BS: usize = 128;
/// Rows and columns of a matrix: smaller in debug builds, which run far slower.
const N: usize = if cfg!(debug_assertions) { 512 } else { 1024 };
/// Blocks along a side.
const NB: usize = N / BS;
/// The budget: one matrix's worth of bytes, an eighth of the pipeline's matrices.
const BUDGET: u64 = (N * N * size_of::<f64>()) as u64;

/// A `BS`×`BS` block of a matrix, row-major.
#[derive(Serialize, Deserialize, get_size2::GetSize)]
struct Block(Vec<f64>);

/// A matrix: `NB`×`NB` handles to blocks, row-major. The handles are small; the blocks' values
/// live in the pool, in memory or in its store.
struct Matrix {
    blocks: Vec<Paged<Block>>,
}

impl Matrix {
    fn block(&self, bi: usize, bj: usize) -> &Paged<Block> {
        &self.blocks[bi * NB + bj]
    }

    /// A matrix whose block `(bi, bj)` is `f(bi, bj)`, built block row by block row.
    fn build(
        pool: &Pool,
        mut f: impl FnMut(usize, usize) -> spillway::Result<Vec<f64>>,
    ) -> spillway::Result<Matrix> {
        let mut blocks = Vec::with_capacity(NB * NB);
        for bi in 0..NB {
            for bj in 0..NB {
                blocks.push(pool.insert(Block(f(bi, bj)?))?);
            }
        }
        Ok(Matrix { blocks })
    }

    /// A matrix whose entries are `f` of this one's, block by block.
    fn map(&self, pool: &Pool, f: impl Fn(f64) -> f64) -> spillway::Result<Matrix> {
        Matrix::build(pool, |bi, bj| {
            Ok(self.block(bi, bj).get()?.0.iter().map(|&x| f(x)).collect())
        })
    }
}

/// A pseudo-random number from `x` (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Entry `(i, j)` of a generated matrix: uniform in [-1, 1), from `seed` and the position.
fn generated(seed: u64, i: usize, j: usize) -> f64 {
    let r = mix(seed ^ mix((i * N + j) as u64));
    (r >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// The input data.
fn x(i: usize, j: usize) -> f64 {
    generated(1, i, j)
}

/// The weights, scaled so that the entries of `Z` stay near 1 whatever `N` is.
fn w(i: usize, j: usize) -> f64 {
    generated(2, i, j) / (N as f64).sqrt()
}

fn generate(pool: &Pool, f: fn(usize, usize) -> f64) -> spillway::Result<Matrix> {
    Matrix::build(pool, |bi, bj| {
        let mut b = Vec::with_capacity(BS * BS);
        for r in 0..BS {
            for c in 0..BS {
                b.push(f(bi * BS + r, bj * BS + c));
            }
        }
        Ok(b)
    })
}

/// `x` with each column's mean subtracted.
fn center_columns(pool: &Pool, x: &Matrix) -> spillway::Result<Matrix> {
    let mut means = vec![0.0; N];
    for bj in 0..NB {
        for bi in 0..NB {
            let b = x.block(bi, bj).get()?;
            for row in b.0.chunks_exact(BS) {
                for (m, v) in means[bj * BS..][..BS].iter_mut().zip(row) {
                    *m += v;
                }
            }
        }
    }
    means.iter_mut().for_each(|m| *m /= N as f64);
    Matrix::build(pool, |bi, bj| {
        let b = x.block(bi, bj).get()?;
        let means = &means[bj * BS..][..BS];
        Ok(b.0
            .chunks_exact(BS)
            .flat_map(|row| row.iter().zip(means).map(|(v, m)| v - m))
            .collect())
    })
}

/// `acc += a·b` for blocks.
fn mul_add(acc: &mut [f64], a: &[f64], b: &[f64]) {
    for (out, a_row) in acc.chunks_exact_mut(BS).zip(a.chunks_exact(BS)) {
        for (&a_ik, b_row) in a_row.iter().zip(b.chunks_exact(BS)) {
            for (o, &b_kj) in out.iter_mut().zip(b_row) {
                *o += a_ik * b_kj;
            }
        }
    }
}

/// The product `a·b`, block by block: the guards of one pair of input blocks at a time.
fn multiply(pool: &Pool, a: &Matrix, b: &Matrix) -> spillway::Result<Matrix> {
    Matrix::build(pool, |bi, bj| {
        let mut acc = vec![0.0; BS * BS];
        for bk in 0..NB {
            mul_add(
                &mut acc,
                &a.block(bi, bk).get()?.0,
                &b.block(bk, bj).get()?.0,
            );
        }
        Ok(acc)
    })
}

/// `r` with each row scaled to sum to 1 (a row of zeros stays zero).
fn normalize_rows(pool: &Pool, r: &Matrix) -> spillway::Result<Matrix> {
    let mut sums = vec![0.0; N];
    for bi in 0..NB {
        for bj in 0..NB {
            let b = r.block(bi, bj).get()?;
            for (s, row) in sums[bi * BS..][..BS].iter_mut().zip(b.0.chunks_exact(BS)) {
                *s += row.iter().sum::<f64>();
            }
        }
    }
    Matrix::build(pool, |bi, bj| {
        let b = r.block(bi, bj).get()?;
        let sums = &sums[bi * BS..][..BS];
        Ok(b.0
            .chunks_exact(BS)
            .zip(sums)
            .flat_map(|(row, &s)| row.iter().map(move |v| if s > 0.0 { v / s } else { 0.0 }))
            .collect())
    })
}

fn transpose(pool: &Pool, m: &Matrix) -> spillway::Result<Matrix> {
    Matrix::build(pool, |bi, bj| {
        let b = m.block(bj, bi).get()?;
        let mut t = vec![0.0; BS * BS];
        for r in 0..BS {
            for c in 0..BS {
                t[c * BS + r] = b.0[r * BS + c];
            }
        }
        Ok(t)
    })
}

fn add(pool: &Pool, a: &Matrix, b: &Matrix) -> spillway::Result<Matrix> {
    Matrix::build(pool, |bi, bj| {
        let (a, b) = (a.block(bi, bj).get()?, b.block(bi, bj).get()?);
        Ok(a.0.iter().zip(&b.0).map(|(x, y)| x + y).collect())
    })
}

/// The entries of `G` checked against a direct computation, corners included.
const SAMPLES: [(usize, usize); 5] = [
    (0, 0),
    (0, N - 1),
    (N - 1, 0),
    (N / 3, 2 * N / 3),
    (N / 2 + 5, 7),
];

/// Row `i` of `P`, computed directly from the generators in plain memory (`means` are the
/// column means of `X`).
fn p_row(i: usize, means: &[f64]) -> Vec<f64> {
    let c_row: Vec<f64> = (0..N).map(|m| x(i, m) - means[m]).collect();
    let r: Vec<f64> = (0..N)
        .map(|k| (0..N).map(|m| c_row[m] * w(m, k)).sum::<f64>().max(0.0))
        .collect();
    let s: f64 = r.iter().sum();
    r.iter()
        .map(|v| if s > 0.0 { v / s } else { 0.0 })
        .collect()
}

/// Checks `G` against what it must be; returns its sum and the largest error of the sampled
/// entries.
fn check(g: &Matrix) -> spillway::Result<(f64, f64)> {
    // Symmetry and the sum, reading every block of G (and its mirror) back through the pool.
    let mut sum = 0.0;
    for bi in 0..NB {
        for bj in 0..NB {
            let (b, mirror) = (g.block(bi, bj).get()?, g.block(bj, bi).get()?);
            sum += b.0.iter().sum::<f64>();
            for r in 0..BS {
                for c in 0..BS {
                    assert!(
                        b.0[r * BS + c] == mirror.0[c * BS + r],
                        "G is not symmetric at ({}, {})",
                        bi * BS + r,
                        bj * BS + c
                    );
                }
            }
        }
    }
    let want = 2.0 * N as f64;
    assert!(
        (sum - want).abs() < 1e-9 * want,
        "G sums to {sum}, not {want}"
    );
    // A few entries against a direct computation.
    let means: Vec<f64> = (0..N)
        .map(|m| (0..N).map(|i| x(i, m)).sum::<f64>() / N as f64)
        .collect();
    let mut max_err: f64 = 0.0;
    for (i, j) in SAMPLES {
        let want = p_row(i, &means)[j] + p_row(j, &means)[i];
        let got = g.block(i / BS, j / BS).get()?.0[(i % BS) * BS + j % BS];
        let err = (got - want).abs();
        assert!(
            err <= 1e-12 + 1e-9 * want.abs(),
            "G[{i}][{j}] is {got}, a direct computation gives {want}"
        );
        max_err = max_err.max(err);
    }
    Ok((sum, max_err))
}

/// The process's peak resident set, where the system tells it.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

/// Prints a stage's line: its time, and the pool's resident bytes and paging so far.
fn report(pool: &Pool, stage: &str, start: Instant) {
    let s = pool.stats();
    println!(
        "{stage:<30} {:>8.0} {:>12} {:>10} {:>10}",
        start.elapsed().as_secs_f64() * 1e3,
        mib(s.resident_bytes),
        s.page_outs,
        s.page_ins
    );
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn main() -> spillway::Result<()> {
    let start = Instant::now();
    // A log store in a temporary directory, removed when the pool is dropped.
    let pool = Pool::builder().budget(BUDGET).build()?;
    println!(
        "matrices: {N}x{N} f64 in {BS}x{BS} blocks ({} a matrix), budget {}",
        mib(BUDGET),
        mib(BUDGET)
    );
    println!(
        "{:<30} {:>8} {:>12} {:>10} {:>10}",
        "stage", "ms", "resident", "paged out", "paged in"
    );
    // Every matrix is kept to the end, as a pipeline keeps intermediates it may inspect later.
    let t = Instant::now();
    let xm = generate(&pool, x)?;
    report(&pool, "X = data", t);
    let t = Instant::now();
    let cm = center_columns(&pool, &xm)?;
    report(&pool, "C = X, columns centered", t);
    let t = Instant::now();
    let wm = generate(&pool, w)?;
    report(&pool, "W = weights", t);
    let t = Instant::now();
    let zm = multiply(&pool, &cm, &wm)?;
    report(&pool, "Z = C.W", t);
    let t = Instant::now();
    let rm = zm.map(&pool, |v| v.max(0.0))?;
    report(&pool, "R = max(Z, 0)", t);
    let t = Instant::now();
    let pm = normalize_rows(&pool, &rm)?;
    report(&pool, "P = R, rows summing to 1", t);
    let t = Instant::now();
    let tm = transpose(&pool, &pm)?;
    report(&pool, "T = P transposed", t);
    let t = Instant::now();
    let gm = add(&pool, &pm, &tm)?;
    report(&pool, "G = P + T", t);
    let held = [&xm, &cm, &wm, &zm, &rm, &pm, &tm, &gm];

    let t = Instant::now();
    let (sum, max_err) = check(&gm)?;
    report(&pool, "check G", t);
    let s = pool.stats();
    let held_bytes = (held.len() * N * N * size_of::<f64>()) as u64;
    println!(
        "held: {} matrices, {} of blocks; budget {}; peak resident {} ({:.0}% of the budget)",
        held.len(),
        mib(held_bytes),
        mib(s.budget_bytes),
        mib(s.peak_resident_bytes),
        100.0 * s.peak_resident_bytes as f64 / s.budget_bytes as f64
    );
    println!(
        "store: {} objects, {} live; written {}, read {}{}",
        s.stored_objects,
        mib(s.stored_bytes),
        mib(s.bytes_written),
        mib(s.bytes_read),
        peak_rss()
            .map(|b| format!("; process peak RSS {}", mib(b)))
            .unwrap_or_default()
    );
    println!(
        "check: G is symmetric, sums to {sum:.6} (2N = {}), {} sampled entries match a direct \
         computation (largest error {max_err:.1e})",
        2 * N,
        SAMPLES.len()
    );
    assert!(
        s.peak_resident_bytes <= s.budget_bytes,
        "resident bytes went past the budget"
    );
    assert!(s.page_outs > 0, "nothing was paged out");
    assert_eq!(s.errors, 0, "background errors: {:?}", s.last_error);
    println!(
        "ok: {} of matrices through a budget of {} in {:.1} s",
        mib(held_bytes),
        mib(BUDGET),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `cargo test -p spillway --examples` runs the example too (with the debug sizes).
#[test]
fn the_pipeline_stays_within_its_budget_and_computes_g() {
    main().expect("the pipeline");
}
