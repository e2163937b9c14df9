//! Plots of a report as small hand-written SVG line charts (no plotting dependency): throughput
//! against value size (W1/W2) and hit ratio against budget (W4).

use std::fmt::Write as _;

use crate::contender::ContenderId;
use crate::report::Report;
use crate::shared::Kind;
use crate::workload::format_size;

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLORS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

struct Chart<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    x_ticks: Vec<(f64, String)>,
    y_log: bool,
    y_max: Option<f64>,
    series: Vec<Series>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Chart<'_> {
    fn svg(&self) -> String {
        let xs: Vec<f64> = self.x_ticks.iter().map(|t| t.0).collect();
        let (x0, x1) = (
            xs.iter().copied().fold(f64::INFINITY, f64::min),
            xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        let ys: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|y| y.is_finite() && (!self.y_log || *y > 0.0))
            .collect();
        let (mut y0, mut y1) = (
            ys.iter().copied().fold(f64::INFINITY, f64::min),
            ys.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        if self.y_log {
            y0 = 10f64.powf(y0.max(1e-9).log10().floor());
            y1 = 10f64.powf(y1.max(1e-9).log10().ceil());
        } else {
            y0 = 0.0;
            y1 = self.y_max.unwrap_or(y1 * 1.1);
        }
        if y1.partial_cmp(&y0) != Some(std::cmp::Ordering::Greater) {
            y1 = y0 + 1.0;
        }
        let pw = W - LEFT - RIGHT;
        let ph = H - TOP - BOTTOM;
        let px = |x: f64| {
            if x1 > x0 {
                LEFT + (x - x0) / (x1 - x0) * pw
            } else {
                LEFT + pw / 2.0
            }
        };
        let py = |y: f64| {
            let f = if self.y_log {
                (y.log10() - y0.log10()) / (y1.log10() - y0.log10())
            } else {
                (y - y0) / (y1 - y0)
            };
            TOP + ph - f * ph
        };
        let mut o = String::new();
        let _ = writeln!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(o, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            o,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
            LEFT + pw / 2.0,
            esc(self.title)
        );
        // Y grid and labels.
        let y_ticks: Vec<f64> = if self.y_log {
            let mut v = Vec::new();
            let mut t = y0;
            while t <= y1 * 1.0001 {
                v.push(t);
                t *= 10.0;
            }
            v
        } else {
            (0..=5)
                .map(|i| y0 + (y1 - y0) * f64::from(i) / 5.0)
                .collect()
        };
        for t in y_ticks {
            let y = py(t);
            let label = if self.y_log {
                format!("{t}")
            } else if y1 <= 1.0 {
                format!("{:.0} %", t * 100.0)
            } else {
                format!("{t:.0}")
            };
            let _ = writeln!(
                o,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0
            );
        }
        for (x, label) in &self.x_ticks {
            let x = px(*x);
            let _ = writeln!(
                o,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                TOP + ph,
                TOP + ph + 18.0,
                esc(label)
            );
        }
        let _ = writeln!(
            o,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
        );
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            H - 18.0,
            esc(self.x_label)
        );
        let _ = writeln!(
            o,
            r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">{}</text>"#,
            TOP + ph / 2.0,
            TOP + ph / 2.0,
            esc(self.y_label)
        );
        for (i, s) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let pts: Vec<String> = s
                .points
                .iter()
                .filter(|p| p.1.is_finite() && (!self.y_log || p.1 > 0.0))
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            let _ = writeln!(
                o,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                pts.join(" ")
            );
            for p in &pts {
                let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(o, r#"<circle cx="{x}" cy="{y}" r="3" fill="{color}"/>"#);
            }
            let ly = TOP + 10.0 + 18.0 * i as f64;
            let lx = W - RIGHT + 14.0;
            let _ = writeln!(
                o,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
                lx + 18.0,
                lx + 24.0,
                ly + 4.0,
                esc(&s.name)
            );
        }
        let _ = writeln!(o, "</svg>");
        o
    }
}

/// Every plot of `r` as (file name, SVG).
pub fn all(r: &Report) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // Throughput against value size.
    let kv: Vec<_> = r.cases.iter().filter(|c| c.spec.kind == Kind::Kv).collect();
    if kv.len() >= 2 {
        let mut contenders: Vec<ContenderId> =
            kv.iter().flat_map(|c| c.contenders.clone()).collect();
        contenders.sort();
        contenders.dedup();
        let x_ticks: Vec<(f64, String)> = kv
            .iter()
            .map(|c| ((c.spec.size as f64).log2(), format_size(c.spec.size)))
            .collect();
        for (file, what, put) in [
            ("throughput-put.svg", "put", true),
            ("throughput-get.svg", "get", false),
        ] {
            let series = contenders
                .iter()
                .map(|&id| Series {
                    name: id.name().to_string(),
                    points: kv
                        .iter()
                        .map(|c| {
                            let v = r.median(&c.id, id, |s| {
                                let b = (s.spec.count * s.spec.size as u64) as f64;
                                b / if put { s.m.put_secs } else { s.m.get_secs } / 1e6
                            });
                            ((c.spec.size as f64).log2(), v)
                        })
                        .collect(),
                })
                .collect();
            let title = format!("W1/W2: {what} throughput against value size");
            out.push((
                file.to_string(),
                Chart {
                    title: &title,
                    x_label: "value size",
                    y_label: "MB/s (log scale)",
                    x_ticks: x_ticks.clone(),
                    y_log: true,
                    y_max: None,
                    series,
                }
                .svg(),
            ));
        }
    }
    // Hit ratio against budget.
    let mut zipf: Vec<_> = r
        .cases
        .iter()
        .filter(|c| c.spec.kind == Kind::Zipf && c.spec.threads == 1)
        .collect();
    zipf.sort_by_key(|c| c.spec.budget);
    if zipf.len() >= 2 {
        let pct = |c: &crate::cases::Case| c.spec.budget as f64 * 100.0 / c.bytes() as f64;
        let contenders = zipf[0].contenders.clone();
        let series = contenders
            .iter()
            .map(|&id| Series {
                name: id.name().to_string(),
                points: zipf
                    .iter()
                    .map(|c| {
                        (
                            pct(c),
                            r.median(&c.id, id, |s| {
                                let (h, m) =
                                    (s.m.counter("hits") as f64, s.m.counter("misses") as f64);
                                h / (h + m)
                            }),
                        )
                    })
                    .collect(),
            })
            .collect();
        let x_ticks = zipf
            .iter()
            .map(|c| (pct(c), format!("{:.0} %", pct(c))))
            .collect();
        out.push((
            "hit-ratio-vs-budget.svg".to_string(),
            Chart {
                title: "W4: hit ratio against budget (Zipf 0.99, 1 thread)",
                x_label: "budget, % of the data set",
                y_label: "hit ratio",
                x_ticks,
                y_log: false,
                y_max: Some(1.0),
                series,
            }
            .svg(),
        ));
    }
    out
}
