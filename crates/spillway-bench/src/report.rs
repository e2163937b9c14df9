//! Turning samples into the Markdown report: medians with min–max over runs, fractions of the
//! measured limits, and ratios against the targets.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::cases::Case;
use crate::contender::ContenderId;
use crate::limits::{DiskLimit, Limits};
use crate::machine::Machine;
use crate::shared::{Kind, Measurement, Spec};
use crate::workload::{format_size, group_digits};

/// Markers between which a regenerated report replaces an existing file's content, so that
/// hand-written text around them survives.
pub const BEGIN_MARKER: &str = "<!-- spillway-bench:begin (generated; do not edit by hand) -->";
pub const END_MARKER: &str = "<!-- spillway-bench:end -->";

/// One child's measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub run: usize,
    /// The case's id.
    pub case: String,
    pub contender: ContenderId,
    /// The spec the contender ran (its count may be capped).
    pub spec: Spec,
    pub m: Measurement,
}

/// One measurement of the disk beside a workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskSample {
    pub run: usize,
    /// The case's id.
    pub case: String,
    pub limit: DiskLimit,
}

/// Everything a run of the harness produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub command: String,
    pub date: String,
    pub machine: Machine,
    pub runs: usize,
    pub batch: usize,
    pub batch_bytes: usize,
    pub warmup: bool,
    pub cases: Vec<Case>,
    /// Limits measured at the start of each run, by run index.
    pub limits: Vec<Limits>,
    /// The disk measured before and after each workload that writes, in each run.
    #[serde(default)]
    pub disk: Vec<DiskSample>,
    pub samples: Vec<Sample>,
    /// Children that failed to run.
    pub errors: Vec<String>,
}

/// Median, min and max of some values.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn spread(values: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
    })
}

/// `1.23 M`, `456 k`, `78`.
fn count_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0} k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Megabytes (10^6 bytes) with sensible precision.
fn mb(v: f64) -> String {
    let v = v / 1e6;
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn percent(v: f64) -> String {
    format!("{:.0} %", v * 100.0)
}

fn micros(v: f64) -> String {
    format!("{:.0} µs", v * 1e6)
}

fn mib(v: f64) -> String {
    format!("{:.0} MiB", v / f64::from(1u32 << 20))
}

/// `median (min–max)`, or just the median for a single run.
fn cell(values: &[f64], fmt: impl Fn(f64) -> String) -> String {
    match spread(values) {
        None => "–".to_string(),
        Some(s) if values.len() == 1 || s.min == s.max => fmt(s.median),
        Some(s) => format!("{} ({}–{})", fmt(s.median), fmt(s.min), fmt(s.max)),
    }
}

/// The spillway contender each peer is compared with, pair by pair.
fn reference(kind: Kind) -> ContenderId {
    match kind {
        Kind::Kv => ContenderId::SpillwayLogWritten,
        _ => ContenderId::SpillwayPoolS3fifo,
    }
}

fn times(v: f64) -> String {
    format!("{v:.2}×")
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "–".to_string()
    }
}

fn hit_ratio(m: &Measurement) -> f64 {
    let (h, x) = (m.counter("hits") as f64, m.counter("misses") as f64);
    if h + x > 0.0 { h / (h + x) } else { f64::NAN }
}

impl Report {
    pub fn samples_of(&self, case: &str, c: ContenderId) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.case == case && s.contender == c)
            .collect()
    }

    pub fn per_sample(&self, case: &str, c: ContenderId, f: impl Fn(&Sample) -> f64) -> Vec<f64> {
        self.samples_of(case, c).into_iter().map(f).collect()
    }

    /// The median of `f` over the samples of `c` in `case`.
    pub fn median(&self, case: &str, c: ContenderId, f: impl Fn(&Sample) -> f64) -> f64 {
        spread(&self.per_sample(case, c, f)).map_or(f64::NAN, |s| s.median)
    }

    fn limit(&self, f: impl Fn(&Limits) -> f64) -> Vec<f64> {
        self.limits.iter().map(f).collect()
    }

    /// Put bytes/s of a sample over the sequential write + fsync bandwidth of its own run.
    fn put_fraction_of_seq_write(&self, s: &Sample) -> f64 {
        match self.limits.get(s.run) {
            Some(l) if l.seq_write_fsync > 0.0 => {
                (s.spec.count * s.spec.size as u64) as f64 / s.m.put_secs / l.seq_write_fsync
            }
            _ => f64::NAN,
        }
    }

    /// The "put ÷ disk" cell: the median put bandwidth over the median of the contender's disk
    /// limit beside the case; a put above every measurement of that limit is marked as noise
    /// rather than read as a fraction.
    fn put_vs_disk(&self, case: &Case, c: ContenderId) -> String {
        match self.put_fraction(case, c) {
            Some((frac, false)) => percent(frac),
            Some((frac, true)) => format!("{}, above the limit: noise", percent(frac)),
            // A report without disk measurements beside the workloads (an older one): the
            // limit of each run's start.
            None if self.disk.is_empty() && !self.limits.is_empty() => cell(
                &self.per_sample(&case.id, c, |s| self.put_fraction_of_seq_write(s)),
                percent,
            ),
            None => "–".to_string(),
        }
    }

    /// The median put bandwidth of `c` on `case` over the median of its disk limit beside the
    /// case (write + `fdatasync` for a contender whose puts end with a sync, plain writes for
    /// the others), and whether the put was faster than every measurement of that limit (noise: the
    /// limit measured wrong, or the disk changed speed, not a store beating the disk).
    fn put_fraction(&self, case: &Case, c: ContenderId) -> Option<(f64, bool)> {
        self.put_fraction_with(case, c, c.put_ends_with_sync())
    }

    /// [`put_fraction`](Self::put_fraction) against the write + sync limit (`sync`) or the
    /// plain writes.
    fn put_fraction_with(&self, case: &Case, c: ContenderId, sync: bool) -> Option<(f64, bool)> {
        let bytes = |s: &Sample| (s.spec.count * s.spec.size as u64) as f64 / s.m.put_secs;
        let put = self.median(&case.id, c, bytes);
        let limit: Vec<f64> = self
            .disk
            .iter()
            .filter(|d| d.case == case.id)
            .map(|d| {
                if sync {
                    d.limit.write_fsync
                } else {
                    d.limit.write
                }
            })
            .collect();
        let l = spread(&limit)?;
        (l.median > 0.0 && put.is_finite()).then(|| (put / l.median, put > l.max))
    }

    /// The line under a table that says what the disk did beside its workload.
    fn disk_note(&self, case: &Case, o: &mut String) {
        let here: Vec<&DiskSample> = self.disk.iter().filter(|d| d.case == case.id).collect();
        if here.is_empty() {
            return;
        }
        let write: Vec<f64> = here.iter().map(|d| d.limit.write).collect();
        let sync: Vec<f64> = here.iter().map(|d| d.limit.write_fsync).collect();
        let fmt = |v: f64| format!("{} MB/s", mb(v));
        let _ = writeln!(
            o,
            "Disk beside this workload ({} measurements, before and after it in each run): \
             writes {}, writes + one fdatasync {}. `put ÷ disk` reads a contender whose puts end \
             with a sync against the second, the others against the first; a put faster than \
             every measurement of its limit is marked as noise.\n",
            here.len(),
            cell(&write, fmt),
            cell(&sync, fmt)
        );
    }

    fn cases_of(&self, kind: Kind) -> impl Iterator<Item = &Case> {
        self.cases.iter().filter(move |c| c.spec.kind == kind)
    }

    /// The report as Markdown, between the begin and end markers.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "{BEGIN_MARKER}");
        let _ = writeln!(o);
        let _ = writeln!(o, "Generated by `{}` on {}.", self.command, self.date);
        let _ = writeln!(o);
        let _ = writeln!(o, "**Machine:** {}.", self.machine.summary());
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{} run(s); in each run the limits are measured first, then every workload against \
             every contender, each contender in its own child process, in an order rotated from \
             run to run{}. Cells show the median over runs and, in parentheses, min–max. MB = \
             10^6 bytes of payload. Ratios compare spillway with each peer pair by pair \
             (spillway ÷ peer for rates, so above 1 means spillway is faster). Peak RSS is the \
             child's `VmHWM`, the harness's own bookkeeping included (keys, handles, one batch).",
            self.runs,
            if self.warmup {
                "; before each workload an untimed child writes and deletes about as much data \
                 (at most 256 MiB) through the log store, so that the first contender follows \
                 the same kind of disk activity as the others"
            } else {
                ""
            }
        );
        let _ = writeln!(o);
        self.limits_table(&mut o);
        self.kv_tables(&mut o);
        self.graph_table(&mut o);
        self.cache_tables(&mut o);
        self.sweep_table(&mut o);
        self.rss_table(&mut o);
        self.runtime_tables(&mut o);
        self.targets_table(&mut o);
        if !self.errors.is_empty() {
            let _ = writeln!(o, "### Children that failed\n");
            for e in &self.errors {
                let _ = writeln!(o, "- {e}");
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(o, "{END_MARKER}");
        o
    }

    fn limits_table(&self, o: &mut String) {
        if self.limits.is_empty() {
            let _ = writeln!(o, "_Physical limits were not measured in this run._\n");
            return;
        }
        let _ = writeln!(
            o,
            "### Physical limits (this run, bench directory's disk)\n"
        );
        let _ = writeln!(o, "| limit | median (min–max) |");
        let _ = writeln!(o, "|---|---|");
        type Row = (&'static str, Vec<f64>, fn(f64) -> String);
        let rows: [Row; 6] = [
            ("memcpy", self.limit(|l| l.memcpy), |v| {
                format!("{} MB/s", mb(v))
            }),
            ("BLAKE3, 1 KiB inputs", self.limit(|l| l.blake3_1k), |v| {
                format!("{} MB/s", mb(v))
            }),
            ("BLAKE3, 1 MiB inputs", self.limit(|l| l.blake3_1m), |v| {
                format!("{} MB/s", mb(v))
            }),
            (
                "sequential write (1 MiB chunks) + one fdatasync",
                self.limit(|l| l.seq_write_fsync),
                |v| format!("{} MB/s", mb(v)),
            ),
            (
                "4 KiB append + fdatasync, median latency",
                self.limit(|l| l.fsync_4k_median),
                micros,
            ),
            (
                "4 KiB append + fdatasync, p99 latency",
                self.limit(|l| l.fsync_4k_p99),
                micros,
            ),
        ];
        for (name, values, fmt) in rows {
            let _ = writeln!(o, "| {name} | {} |", cell(&values, fmt));
        }
        let _ = writeln!(o);
    }

    fn kv_tables(&self, o: &mut String) {
        for case in self.cases_of(Kind::Kv) {
            let r = reference(Kind::Kv);
            let _ = writeln!(o, "### {}\n", case.title);
            let _ = writeln!(
                o,
                "Peers with a memory budget (file_backed's item capacity, foyer's memory) get 10 % \
                 of the data ({}).\n",
                format_size(case.spec.budget as usize)
            );
            self.disk_note(case, o);
            let _ = writeln!(
                o,
                "| contender | objects | end of puts | put obj/s | put MB/s | put ÷ disk | get obj/s | get MB/s | spillway ÷ it: put / get | peak RSS | lost / wrong |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|");
            let ref_put = self.median(&case.id, r, |s| s.spec.count as f64 / s.m.put_secs);
            let ref_get = self.median(&case.id, r, |s| s.spec.count as f64 / s.m.get_secs);
            for &c in &case.contenders {
                let samples = self.samples_of(&case.id, c);
                if samples.is_empty() {
                    continue;
                }
                let put = |s: &Sample| s.spec.count as f64 / s.m.put_secs;
                let get = |s: &Sample| s.spec.count as f64 / s.m.get_secs;
                let frac = if c.uses_disk() {
                    self.put_vs_disk(case, c)
                } else {
                    "–".to_string()
                };
                let ratios = if c == r || c.is_spillway() {
                    "–".to_string()
                } else {
                    format!(
                        "{} / {}",
                        ratio(ref_put, self.median(&case.id, c, put)),
                        ratio(ref_get, self.median(&case.id, c, get))
                    )
                };
                let lost: u64 = samples.iter().map(|s| s.m.counter("lost")).sum();
                let bad: u64 = samples.iter().map(|s| s.m.mismatches + s.m.missing).sum();
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {frac} | {} | {} | {ratios} | {} | {lost} / {bad} |",
                    c.name(),
                    group_digits(case.spec_for(c).count),
                    c.level_label(),
                    cell(&self.per_sample(&case.id, c, put), count_rate),
                    cell(
                        &self.per_sample(&case.id, c, |s| (s.spec.count * s.spec.size as u64)
                            as f64
                            / s.m.put_secs),
                        mb
                    ),
                    cell(&self.per_sample(&case.id, c, get), count_rate),
                    cell(
                        &self.per_sample(&case.id, c, |s| (s.spec.count * s.spec.size as u64)
                            as f64
                            / s.m.get_secs),
                        mb
                    ),
                    cell(
                        &self.per_sample(&case.id, c, |s| s.m.peak_rss_bytes as f64),
                        mib
                    ),
                );
            }
            let _ = writeln!(o);
        }
    }

    fn graph_table(&self, o: &mut String) {
        for case in self.cases_of(Kind::Graph) {
            let r = reference(Kind::Graph);
            let _ = writeln!(o, "### {}\n", case.title);
            let _ = writeln!(
                o,
                "| contender | nodes | page-out nodes/s | walk nodes/s | spillway ÷ it: page-out / walk | objects stored | S3 GETs in the walk | RSS before page-out | peak RSS | missing / wrong |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|");
            let out = |s: &Sample| s.spec.count as f64 / s.m.put_secs;
            let walk = |s: &Sample| s.spec.count as f64 / s.m.get_secs;
            let (ro, rw) = (
                self.median(&case.id, r, out),
                self.median(&case.id, r, walk),
            );
            for &c in &case.contenders {
                let samples = self.samples_of(&case.id, c);
                if samples.is_empty() {
                    continue;
                }
                let ratios = if c == r {
                    "–".to_string()
                } else {
                    format!(
                        "{} / {}",
                        ratio(ro, self.median(&case.id, c, out)),
                        ratio(rw, self.median(&case.id, c, walk))
                    )
                };
                let bad: u64 = samples.iter().map(|s| s.m.mismatches + s.m.missing).sum();
                let fetched = if samples
                    .iter()
                    .any(|s| s.m.counters.contains_key("remote_gets"))
                {
                    group_digits(
                        self.median(&case.id, c, |s| s.m.counter("remote_gets") as f64) as u64,
                    )
                } else {
                    "–".to_string()
                };
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {ratios} | {} | {fetched} | {} | {} | {bad} |",
                    c.name(),
                    group_digits(case.spec_for(c).count),
                    cell(&self.per_sample(&case.id, c, out), count_rate),
                    cell(&self.per_sample(&case.id, c, walk), count_rate),
                    group_digits(
                        self.median(&case.id, c, |s| s.m.counter("stored_objects") as f64) as u64
                    ),
                    mib(self.median(&case.id, c, |s| s.m.rss_after_put.anon as f64)),
                    cell(
                        &self.per_sample(&case.id, c, |s| s.m.peak_rss_bytes as f64),
                        mib
                    ),
                );
            }
            let _ = writeln!(o);
        }
    }

    fn cache_rows(&self, o: &mut String, case: &Case) {
        let r = reference(case.spec.kind);
        let _ = writeln!(
            o,
            "| contender | ops/s | hit ratio | lost | spillway ÷ it: ops/s | load obj/s | peak RSS | peak RSS ÷ budget | wrong |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
        let ops = |s: &Sample| s.m.counter("ops") as f64 / s.m.get_secs;
        let rops = self.median(&case.id, r, ops);
        for &c in &case.contenders {
            let samples = self.samples_of(&case.id, c);
            if samples.is_empty() {
                continue;
            }
            let lost: u64 = samples.iter().map(|s| s.m.counter("lost")).sum();
            let bad: u64 = samples.iter().map(|s| s.m.mismatches + s.m.missing).sum();
            let spec = case.spec_for(c);
            let name = if spec.count < case.spec.count {
                format!(
                    "{} ({} objects, {} reads)",
                    c.name(),
                    group_digits(spec.count),
                    group_digits(spec.ops)
                )
            } else {
                c.name().to_string()
            };
            let _ = writeln!(
                o,
                "| {name} | {} | {} | {lost} | {} | {} | {} | {:.1} | {bad} |",
                cell(&self.per_sample(&case.id, c, ops), count_rate),
                cell(&self.per_sample(&case.id, c, |s| hit_ratio(&s.m)), percent),
                if c == r {
                    "–".to_string()
                } else {
                    ratio(rops, self.median(&case.id, c, ops))
                },
                cell(
                    &self.per_sample(&case.id, c, |s| s.spec.count as f64 / s.m.put_secs),
                    count_rate
                ),
                cell(
                    &self.per_sample(&case.id, c, |s| s.m.peak_rss_bytes as f64),
                    mib
                ),
                self.median(&case.id, c, |s| s.m.peak_rss_bytes as f64) / spec.budget as f64,
            );
        }
        let _ = writeln!(o);
    }

    fn cache_tables(&self, o: &mut String) {
        for case in self.cases.iter().filter(|c| {
            (c.spec.kind == Kind::Zipf && !c.id.contains("budget")) || c.spec.kind == Kind::Mixed
        }) {
            let _ = writeln!(o, "### {}\n", case.title);
            let _ = writeln!(
                o,
                "{} operations after loading the data set; budget {}. A hit is a read served \
                 from memory; foyer's `lost` are reads of objects it dropped (counted as misses).\n",
                group_digits(case.spec.ops),
                format_size(case.spec.budget as usize)
            );
            self.cache_rows(o, case);
        }
    }

    fn sweep_table(&self, o: &mut String) {
        let sweep: Vec<&Case> = self
            .cases
            .iter()
            .filter(|c| c.spec.kind == Kind::Zipf && c.id.contains("budget"))
            .collect();
        let Some(first) = sweep.first() else { return };
        let _ = writeln!(
            o,
            "### W4 sweep: hit ratio and ops/s against the budget (1 thread, {} reads)\n",
            group_digits(first.spec.ops)
        );
        let _ = write!(o, "| contender |");
        for c in &sweep {
            let _ = write!(
                o,
                " {} % |",
                (c.spec.budget as f64 * 100.0 / c.bytes() as f64).round()
            );
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "|---|{}", "---|".repeat(sweep.len()));
        for &c in &first.contenders {
            let _ = write!(o, "| {} |", c.name());
            for case in &sweep {
                let _ = write!(
                    o,
                    " {} hits, {} ops/s |",
                    percent(self.median(&case.id, c, |s| hit_ratio(&s.m))),
                    count_rate(
                        self.median(&case.id, c, |s| s.m.counter("ops") as f64 / s.m.get_secs)
                    )
                );
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(o);
    }

    fn rss_table(&self, o: &mut String) {
        for case in self.cases_of(Kind::Rss) {
            let _ = writeln!(o, "### {}\n", case.title);
            let _ = writeln!(
                o,
                "| contender | insert obj/s | peak RSS | peak RSS ÷ budget | RSS after inserts: anon | wrong |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|---|");
            for &c in &case.contenders {
                let samples = self.samples_of(&case.id, c);
                if samples.is_empty() {
                    continue;
                }
                let bad: u64 = samples.iter().map(|s| s.m.mismatches + s.m.missing).sum();
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {bad} |",
                    c.name(),
                    cell(
                        &self.per_sample(&case.id, c, |s| s.spec.count as f64 / s.m.put_secs),
                        count_rate
                    ),
                    cell(
                        &self.per_sample(&case.id, c, |s| s.m.peak_rss_bytes as f64),
                        mib
                    ),
                    cell(
                        &self.per_sample(&case.id, c, |s| s.m.peak_rss_bytes as f64
                            / case.spec.budget as f64),
                        |v| format!("{v:.2}")
                    ),
                    mib(self.median(&case.id, c, |s| s.m.rss_after_put.anon as f64)),
                );
            }
            let _ = writeln!(o);
        }
    }

    fn runtime_tables(&self, o: &mut String) {
        let p = ContenderId::SpillwayPoolS3fifo;
        let r1: Vec<&Case> = self.cases_of(Kind::ResidentGet).collect();
        if !r1.is_empty() {
            let _ = writeln!(
                o,
                "### R1: resident `Paged::get` and `Paged::read` against `Arc` (ns per read)\n"
            );
            let _ = writeln!(
                o,
                "| threads | `Paged::get` (`Guard` made and dropped) | `Paged::read` (`Ref` made and dropped) | `Arc` deref | `Arc::clone` + deref + drop | get ÷ clone | read ÷ clone |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|---|---|");
            for c in r1 {
                let v = |name: &'static str| self.per_sample(&c.id, p, move |s| s.m.value(name));
                let ns = |x: f64| format!("{x:.1}");
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    c.spec.threads,
                    cell(&v("ns_paged_get"), ns),
                    cell(&v("ns_paged_read"), ns),
                    cell(&v("ns_arc_deref"), ns),
                    cell(&v("ns_arc_clone"), ns),
                    cell(&v("get_over_clone"), times),
                    cell(&v("read_over_clone"), times),
                );
            }
            let _ = writeln!(
                o,
                "\nEach thread reads 1,024 resident values in a fixed random order; with 2 threads \
                 both read the same values, so the reference counts are shared. Each run times the four \
                 loops in turn, nine rounds of them; a figure is the median of a run's rounds, a \
                 ratio the median of its rounds' ratios (each between loops timed a fraction of a \
                 second apart), and the table gives the median of the runs and their range.\n"
            );
        }
        let r2: Vec<&Case> = self.cases_of(Kind::Paging).collect();
        if !r2.is_empty() {
            let _ = writeln!(o, "### R2: page-out and page-in through the pool\n");
            let _ = writeln!(
                o,
                "| values | page-out obj/s | page-out MB/s | page-in obj/s | page-in MB/s | peak RSS |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|---|");
            for c in r2 {
                let n = c.spec.count as f64;
                let b = c.bytes() as f64;
                let _ = writeln!(
                    o,
                    "| {} × {} | {} | {} | {} | {} | {} |",
                    group_digits(c.spec.count),
                    format_size(c.spec.size),
                    cell(&self.per_sample(&c.id, p, |s| n / s.m.put_secs), count_rate),
                    cell(&self.per_sample(&c.id, p, |s| b / s.m.put_secs), mb),
                    cell(&self.per_sample(&c.id, p, |s| n / s.m.get_secs), count_rate),
                    cell(&self.per_sample(&c.id, p, |s| b / s.m.get_secs), mb),
                    cell(
                        &self.per_sample(&c.id, p, |s| s.m.peak_rss_bytes as f64),
                        mib
                    ),
                );
            }
            let _ = writeln!(
                o,
                "\nPage-out = computing every value's key and storing it (`Paged::key`), then \
                 `Pool::shrink_to(0)`; page-in = one `get` per value in a random order, each a \
                 store read and a decode.\n"
            );
        }
        for c in self.cases_of(Kind::Handles) {
            let _ = writeln!(o, "### {}\n", c.title);
            let _ = writeln!(o, "| figure | value |");
            let _ = writeln!(o, "|---|---|");
            let v = |name: &'static str| self.median(&c.id, p, move |s| s.m.value(name));
            let _ = writeln!(
                o,
                "| RSS (anon) delta ÷ handles, all evicted | {:.0} B |",
                v("bytes_per_handle")
            );
            let _ = writeln!(
                o,
                "| the same without the harness's `Vec` of handles | {:.0} B |",
                v("bytes_per_handle_without_vec")
            );
            for (name, what) in [
                (
                    "heap_in_use_per_handle",
                    "of which heap in use (the pool's and the store's records), without the `Vec`",
                ),
                (
                    "metadata_per_handle",
                    "of which the pool's own records (`PoolStats::metadata_bytes`)",
                ),
                (
                    "store_index_per_handle",
                    "of which the store's index (`PoolStats::store_index_bytes`)",
                ),
                (
                    "heap_free_per_handle",
                    "heap freed but kept by the allocator (paged-out values' holes, old tables)",
                ),
            ] {
                let x = v(name);
                if x.is_finite() {
                    let _ = writeln!(o, "| {what} | {x:.0} B |");
                }
            }
            let _ = writeln!(
                o,
                "| `size_of::<Paged<T>>()` | {:.0} B |",
                v("size_of_handle")
            );
            let _ = writeln!(
                o,
                "| handles evicted | {} |",
                group_digits(self.median(&c.id, p, |s| s.m.counter("evicted") as f64) as u64)
            );
            let _ = writeln!(o);
        }
    }

    fn targets_table(&self, o: &mut String) {
        let mut rows: Vec<(String, f64, String)> = Vec::new();
        let sp = ContenderId::SpillwayLogWritten;
        if let Some(w1) = self.cases_of(Kind::Kv).find(|c| c.spec.size <= 1024) {
            let pg = ContenderId::PagableSqlite;
            let put = |s: &Sample| s.spec.count as f64 / s.m.put_secs;
            let get = |s: &Sample| s.spec.count as f64 / s.m.get_secs;
            for (what, f) in [("put", &put as &dyn Fn(&Sample) -> f64), ("get", &get)] {
                let r = self.median(&w1.id, sp, f) / self.median(&w1.id, pg, f);
                if r.is_finite() {
                    rows.push((
                        format!("{}: spillway ≥ 10× pagable-sqlite objects/s, {what}", w1.id),
                        r / 10.0,
                        format!("{r:.1}×"),
                    ));
                }
            }
        }
        for case in self.cases_of(Kind::Kv) {
            for fb in [ContenderId::FileBackedFbstore, ContenderId::FileBackedRedb] {
                let get = |s: &Sample| s.spec.count as f64 / s.m.get_secs;
                let put = |s: &Sample| s.spec.count as f64 / s.m.put_secs;
                for (what, f) in [("put", &put as &dyn Fn(&Sample) -> f64), ("get", &get)] {
                    let r = self.median(&case.id, sp, f) / self.median(&case.id, fb, f);
                    if r.is_finite() {
                        rows.push((
                            format!("{}: spillway ≥ 5× {} ({what})", case.id, fb.name()),
                            r / 5.0,
                            format!("{r:.1}×"),
                        ));
                    }
                }
            }
        }
        for case in self
            .cases
            .iter()
            .filter(|c| c.spec.kind == Kind::Zipf && !c.id.contains("budget"))
        {
            let p = ContenderId::SpillwayPoolS3fifo;
            // Against foyer set up so that it keeps what it is given: the default one drops most
            // of a bulk load, and beating a cache that lost the data measures the loss.
            let f = ContenderId::FoyerTuned;
            let ops = |s: &Sample| s.m.counter("ops") as f64 / s.m.get_secs;
            let r = self.median(&case.id, p, ops) / self.median(&case.id, f, ops);
            let hp = self.median(&case.id, p, |s| hit_ratio(&s.m));
            let hf = self.median(&case.id, f, |s| hit_ratio(&s.m));
            if r.is_finite() {
                rows.push((
                    format!("{}: pool ≥ 1.0× foyer-tuned ops/s", case.id),
                    r,
                    format!("{r:.2}×"),
                ));
                rows.push((
                    format!("{}: pool hit ratio ≥ foyer-tuned's", case.id),
                    if hf > 0.0 { hp / hf } else { f64::INFINITY },
                    format!("{} vs {}", percent(hp), percent(hf)),
                ));
            }
        }
        if let Some(w2) = self.cases_of(Kind::Kv).find(|c| c.spec.size == 16 << 10) {
            for c in [
                ContenderId::SpillwayLogWritten,
                ContenderId::SpillwayLogDurable,
            ] {
                // The target as it was set: against the disk's writes + fdatasync, whatever
                // level the contender ends at.
                let what = format!("{}: {} put ≥ 80 % of seq. write + fsync", w2.id, c.name());
                match self.put_fraction_with(w2, c, true) {
                    // Above every measurement of the limit: noise, which says nothing either way.
                    Some((v, true)) => rows.push((
                        what,
                        f64::NAN,
                        format!("{}, above the limit: noise", percent(v)),
                    )),
                    Some((v, false)) => rows.push((what, v / 0.8, percent(v))),
                    None => {}
                }
            }
        }
        for case in self.cases_of(Kind::Rss) {
            let p = ContenderId::SpillwayPoolS3fifo;
            let peak = self.median(&case.id, p, |s| s.m.peak_rss_bytes as f64);
            let budget = case.spec.budget as f64;
            // Fixed overhead: the process with its libraries, the harness's handles and the
            // store index, allowed up to 32 MiB.
            let allowed = 1.1 * budget + f64::from(32u32 << 20);
            if peak.is_finite() {
                rows.push((
                    format!("{}: pool peak RSS ≤ 1.1 × budget + 32 MiB", case.id),
                    allowed / peak,
                    format!("{} vs {} allowed", mib(peak), mib(allowed)),
                ));
            }
            for c in [
                ContenderId::FileBackedFbstore,
                ContenderId::FileBackedRedb,
                ContenderId::PagableSqlite,
            ] {
                let v = self.median(&case.id, c, |s| s.m.peak_rss_bytes as f64);
                if v.is_finite() {
                    rows.push((
                        format!("{}: {} peak RSS (for comparison)", case.id, c.name()),
                        f64::NAN,
                        format!("{} = {:.2} × budget", mib(v), v / budget),
                    ));
                }
            }
        }
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(o, "### Against the targets (medians)\n");
        let _ = writeln!(o, "| target | measured | verdict |");
        let _ = writeln!(o, "|---|---|---|");
        for (what, score, shown) in rows {
            let verdict = if score.is_nan() {
                "not judged".to_string()
            } else if score >= 1.0 {
                "met".to_string()
            } else {
                format!("not met ({:.0} % of target)", score * 100.0)
            };
            let _ = writeln!(o, "| {what} | {shown} | {verdict} |");
        }
        let _ = writeln!(o);
    }
}

/// Puts `generated` (which carries its own markers) into `existing`: between the markers if
/// `existing` has them, otherwise `generated` alone.
pub fn splice(existing: Option<&str>, generated: &str) -> String {
    if let Some(text) = existing
        && let (Some(b), Some(e)) = (text.find(BEGIN_MARKER), text.find(END_MARKER))
        && b < e
    {
        let after = &text[e + END_MARKER.len()..];
        let after = after.strip_prefix('\n').unwrap_or(after);
        return format!("{}{generated}{after}", &text[..b]);
    }
    generated.to_string()
}

/// Today's UTC date as `YYYY-MM-DD`.
pub fn today_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_median_min_max() {
        let s = spread(&[3.0, 1.0, 2.0]).map(|s| (s.median, s.min, s.max));
        assert_eq!(s, Some((2.0, 1.0, 3.0)));
        let s = spread(&[4.0, 1.0, 2.0, 3.0]).map(|s| s.median);
        assert_eq!(s, Some(2.5));
        assert!(spread(&[]).is_none());
    }

    #[test]
    fn splice_keeps_hand_written_text() {
        let old = format!("intro\n{BEGIN_MARKER}\nold\n{END_MARKER}\nreading\n");
        let new = format!("{BEGIN_MARKER}\nnew\n{END_MARKER}\n");
        assert_eq!(
            splice(Some(&old), &new),
            format!("intro\n{BEGIN_MARKER}\nnew\n{END_MARKER}\nreading\n")
        );
        assert_eq!(splice(Some("no markers"), &new), new);
        assert_eq!(splice(None, &new), new);
    }

    #[test]
    fn formats() {
        assert_eq!(count_rate(1_234_000.0), "1.23 M");
        assert_eq!(count_rate(79_000.0), "79 k");
        assert_eq!(cell(&[1e6, 2e6, 3e6], mb), "2.0 (1.0–3.0)");
        assert_eq!(today_utc().len(), 10);
    }
}
