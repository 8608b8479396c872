//! Hand-written SVG plots of a report: plain polylines and rectangles, no plotting crate.
//!
//! * `load.svg` — small multiples, one panel per scheduler: ActiveConn of each server over
//!   time, pool changes marked. Panels share one y scale so they compare at a glance; a
//!   panel whose peak is far above the others' (fo piling everything on one server) gets
//!   its own scale, drawn in orange and said so in its title.
//! * `balance.svg` — bars of the time-averaged CV of ActiveConn and of ActiveConn per core.
//! * `moved.svg` — bars of the share of clients moved by pool changes.

use std::fmt::Write;

use crate::report::{Report, SchedulerReport};

const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#7f7f7f",
];
const OWN_SCALE: &str = "#d95f02";
const FONT: &str = "font-family=\"Helvetica,Arial,sans-serif\"";
/// At most this many points per polyline (samples are averaged in buckets).
const MAX_POINTS: usize = 100;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" tick step (1, 2 or 5 × 10^k) giving about `ticks` ticks up to `max`.
fn nice_step(max: f64, ticks: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / ticks;
    let magnitude = 10f64.powf(raw.log10().floor());
    let residual = raw / magnitude;
    let nice = if residual <= 1.0 {
        1.0
    } else if residual <= 2.0 {
        2.0
    } else if residual <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// The axis maximum: `max` rounded up to a whole number of nice steps.
fn nice_max(max: f64, ticks: f64) -> (f64, f64) {
    let step = nice_step(max, ticks);
    let top = ((max / step).ceil() * step).max(step);
    (top, step)
}

fn tick_label(v: f64, step: f64) -> String {
    if step >= 1000.0 && v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if step >= 1.0 {
        format!("{v:.0}")
    } else {
        let decimals = (-step.log10().floor()) as usize;
        format!("{v:.decimals$}")
    }
}

/// Averages `values` into at most `MAX_POINTS` buckets; a bucket with no value is a gap.
fn downsample(times: &[f64], values: &[Option<u32>]) -> Vec<(f64, Option<f64>)> {
    let n = values.len().min(times.len());
    let per = n.div_ceil(MAX_POINTS).max(1);
    (0..n)
        .step_by(per)
        .map(|start| {
            let stop = (start + per).min(n);
            let present: Vec<f64> = values[start..stop]
                .iter()
                .flatten()
                .map(|&v| f64::from(v))
                .collect();
            let t = (times[start] + times[stop - 1]) / 2.0;
            let v =
                (!present.is_empty()).then(|| present.iter().sum::<f64>() / present.len() as f64);
            (t, v)
        })
        .collect()
}

fn color(i: usize) -> (&'static str, &'static str) {
    // Past ten servers, colours repeat with a dashed line.
    let dash = if (i / PALETTE.len()) % 2 == 1 {
        " stroke-dasharray=\"4 2\""
    } else {
        ""
    };
    (PALETTE[i % PALETTE.len()], dash)
}

fn panel_peak(s: &SchedulerReport) -> f64 {
    s.series
        .active
        .iter()
        .flat_map(|a| a.active.iter().flatten())
        .copied()
        .max()
        .map_or(0.0, f64::from)
}

/// `load.svg`: ActiveConn per server over time, one panel per scheduler.
pub fn load_over_time(report: &Report) -> String {
    let scheds = &report.schedulers;
    let cols = if scheds.len() <= 4 {
        scheds.len().max(1)
    } else {
        3
    };
    let rows = scheds.len().div_ceil(cols).max(1);
    let (pw, ph) = (330.0, 190.0);
    let (ml, mr, mt, mb) = (44.0, 12.0, 30.0, 26.0);
    let width = cols as f64 * pw + 20.0;
    let duration = report.scenario.duration_s;

    let peaks: Vec<f64> = scheds.iter().map(panel_peak).collect();
    let mut sorted = peaks.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted
        .get(sorted.len() / 2)
        .copied()
        .unwrap_or(1.0)
        .max(1.0);
    let shared = peaks
        .iter()
        .copied()
        .filter(|&p| p <= 3.0 * median)
        .fold(1.0, f64::max);

    // Every server that ever served, in the order of the first panel (all panels share it).
    let names: Vec<(String, String)> = match scheds.first() {
        Some(s) => s
            .series
            .active
            .iter()
            .map(|a| (a.name.clone(), format!(" {}c w{}", a.cores, a.weight)))
            .collect(),
        None => Vec::new(),
    };

    // The legend, wrapped to the width: (x, y) of each entry.
    let mut legend = Vec::with_capacity(names.len());
    let (mut lx, mut ly) = (10.0, 56.0);
    for (name, info) in &names {
        let w = 30.0 + 6.5 * (name.len() + info.len()) as f64;
        if lx + w > width - 10.0 && lx > 10.0 {
            lx = 10.0;
            ly += 16.0;
        }
        legend.push((lx, ly));
        lx += w;
    }
    let top = ly + 22.0;
    let height = top + rows as f64 * ph + 10.0;
    // Many changes (churn) would bury the panels in labels: lines only, the header lists them.
    let label_changes = report.scenario.pool_changes.len() <= 6;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" {FONT} font-size=\"11\">"
    );
    let _ = writeln!(svg, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        svg,
        "<text x=\"10\" y=\"20\" font-size=\"15\" font-weight=\"bold\">Active connections per \
         server over time</text>"
    );
    let _ = writeln!(
        svg,
        "<text x=\"10\" y=\"38\" fill=\"#555\">{}, seed {}, {} s simulated, {} connections. \
         Dashed lines: pool changes. Shared y scale unless marked.</text>",
        escape(&report.scenario.name),
        report.scenario.seed,
        duration,
        report.scenario.connections
    );
    for (i, ((name, info), (x, y))) in names.iter().zip(&legend).enumerate() {
        let (c, dash) = color(i);
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.0}\" y1=\"{y:.0}\" x2=\"{:.0}\" y2=\"{y:.0}\" stroke=\"{c}\" stroke-width=\"3\"{dash}/>\
             <text x=\"{:.0}\" y=\"{:.0}\">{}{}</text>",
            x + 16.0,
            x + 20.0,
            y + 4.0,
            escape(name),
            escape(info)
        );
    }

    for (k, s) in scheds.iter().enumerate() {
        let ox = 10.0 + (k % cols) as f64 * pw;
        let oy = top + (k / cols) as f64 * ph;
        let (x0, y0) = (ox + ml, oy + mt);
        let (w, h) = (pw - ml - mr, ph - mt - mb);
        let own = peaks[k] > shared;
        let (ymax, ystep) = nice_max(if own { peaks[k] } else { shared }, 4.0);
        let axis_color = if own { OWN_SCALE } else { "#444" };
        let sx = |t: f64| x0 + t / duration * w;
        let sy = |v: f64| y0 + h - v / ymax * h;

        let flags = if s.flags.is_empty() {
            String::new()
        } else {
            format!(" ({})", s.flags.join(","))
        };
        let cv = s
            .balance
            .cv_load
            .map_or(String::new(), |v| format!("CV load {v:.2}"));
        let scale = if own { "own scale" } else { "" };
        let _ = writeln!(
            svg,
            "<text x=\"{x0:.0}\" y=\"{:.0}\"><tspan font-weight=\"bold\" font-size=\"13\">{}{}</tspan>\
             <tspan fill=\"#555\" dx=\"8\">{}</tspan><tspan fill=\"{OWN_SCALE}\" dx=\"8\">{}</tspan></text>",
            oy + 18.0,
            escape(&s.name),
            escape(&flags),
            cv,
            scale
        );
        // Grid and y ticks.
        let mut v = 0.0;
        while v <= ymax + 1e-9 {
            let y = sy(v);
            let _ = writeln!(
                svg,
                "<line x1=\"{x0:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{axis_color}\">{}</text>",
                x0 + w,
                x0 - 4.0,
                y + 4.0,
                tick_label(v, ystep)
            );
            v += ystep;
        }
        // x ticks.
        let (_, tstep) = nice_max(duration, 4.0);
        let mut t = 0.0;
        while t <= duration + 1e-9 {
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#444\">{}</text>",
                sx(t),
                y0 + h + 14.0,
                tick_label(t, tstep)
            );
            t += tstep;
        }
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#888\" font-size=\"9\">s</text>",
            x0 + w,
            y0 + h + 24.0
        );
        let _ = writeln!(
            svg,
            "<rect x=\"{x0:.1}\" y=\"{y0:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"none\" stroke=\"#bbb\"/>"
        );
        // Pool changes.
        for c in &report.scenario.pool_changes {
            let x = sx(c.at_s);
            let _ = writeln!(
                svg,
                "<line x1=\"{x:.1}\" y1=\"{y0:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#999\" \
                 stroke-dasharray=\"3 3\"/>",
                y0 + h
            );
            if label_changes {
                let _ = writeln!(
                    svg,
                    "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#777\" font-size=\"9\">{}</text>",
                    x + 2.0,
                    y0 + 9.0,
                    escape(&c.label)
                );
            }
        }
        // Series.
        for (i, series) in s.series.active.iter().enumerate() {
            let (c, dash) = color(i);
            let points = downsample(&s.series.t_s, &series.active);
            let mut run: Vec<String> = Vec::new();
            let flush = |run: &mut Vec<String>, svg: &mut String| {
                if run.len() > 1 {
                    let _ = writeln!(
                        svg,
                        "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"1.3\"{dash} points=\"{}\"/>",
                        run.join(" ")
                    );
                }
                run.clear();
            };
            for (t, v) in points {
                match v {
                    Some(v) => run.push(format!("{:.1},{:.1}", sx(t), sy(v.min(ymax)))),
                    None => flush(&mut run, &mut svg),
                }
            }
            flush(&mut run, &mut svg);
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// One bar series of [`bars`].
struct BarSeries<'a> {
    name: &'a str,
    color: &'a str,
    values: Vec<Option<f64>>,
}

/// A horizontal bar chart: one row per category, one bar per series.
fn bars(
    title: &str,
    subtitle: &str,
    categories: &[String],
    series: &[BarSeries<'_>],
    label: &dyn Fn(f64) -> String,
) -> String {
    let bar_h = 12.0;
    let row_h = bar_h * series.len() as f64 + 10.0;
    let (ml, mr, mt) = (110.0, 60.0, 70.0);
    let w = 420.0;
    let width = ml + w + mr;
    let height = mt + row_h * categories.len() as f64 + 30.0;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .copied()
        .fold(0.0, f64::max);
    let (xmax, step) = nice_max(max, 5.0);
    let sx = |v: f64| ml + v / xmax * w;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" {FONT} font-size=\"11\">"
    );
    let _ = writeln!(svg, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        svg,
        "<text x=\"10\" y=\"20\" font-size=\"15\" font-weight=\"bold\">{}</text>\
         <text x=\"10\" y=\"37\" fill=\"#555\">{}</text>",
        escape(title),
        escape(subtitle)
    );
    let mut lx = ml;
    for s in series {
        let _ = writeln!(
            svg,
            "<rect x=\"{lx:.0}\" y=\"47\" width=\"12\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{:.0}\" y=\"56\">{}</text>",
            s.color,
            lx + 16.0,
            escape(s.name)
        );
        lx += 30.0 + 6.5 * s.name.len() as f64;
    }
    let bottom = mt + row_h * categories.len() as f64;
    let mut v = 0.0;
    while v <= xmax + 1e-9 {
        let x = sx(v);
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{mt:.0}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#444\">{}</text>",
            bottom + 14.0,
            label(v)
        );
        v += step;
    }
    for (r, cat) in categories.iter().enumerate() {
        let y = mt + r as f64 * row_h + 5.0;
        let _ = writeln!(
            svg,
            "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            ml - 8.0,
            y + row_h / 2.0,
            escape(cat)
        );
        for (k, s) in series.iter().enumerate() {
            let by = y + k as f64 * bar_h;
            match s.values[r] {
                Some(v) => {
                    let _ = writeln!(
                        svg,
                        "<rect x=\"{ml:.0}\" y=\"{by:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>\
                         <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#333\" font-size=\"10\">{}</text>",
                        (sx(v) - ml).max(0.5),
                        bar_h - 2.0,
                        s.color,
                        sx(v) + 4.0,
                        by + bar_h - 3.0,
                        label(v)
                    );
                }
                None => {
                    let _ = writeln!(
                        svg,
                        "<text x=\"{:.0}\" y=\"{:.1}\" fill=\"#999\" font-size=\"10\">n/a</text>",
                        ml + 4.0,
                        by + bar_h - 3.0
                    );
                }
            }
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn with_flags(s: &SchedulerReport) -> String {
    if s.flags.is_empty() {
        s.name.clone()
    } else {
        format!("{} ({})", s.name, s.flags.join(","))
    }
}

/// `balance.svg`: time-averaged CV of ActiveConn and of ActiveConn per core, best first.
pub fn balance(report: &Report) -> String {
    let mut order: Vec<&SchedulerReport> = report.schedulers.iter().collect();
    order.sort_by(|a, b| {
        let key = |s: &SchedulerReport| s.balance.cv_load.unwrap_or(f64::INFINITY);
        key(a).total_cmp(&key(b))
    });
    let categories: Vec<String> = order.iter().map(|s| with_flags(s)).collect();
    bars(
        "Balance: spread of active connections across servers",
        &format!(
            "{}, seed {}: coefficient of variation, averaged over time (lower is more even)",
            report.scenario.name, report.scenario.seed
        ),
        &categories,
        &[
            BarSeries {
                name: "CV of ActiveConn per core (load)",
                color: PALETTE[0],
                values: order.iter().map(|s| s.balance.cv_load).collect(),
            },
            BarSeries {
                name: "CV of ActiveConn",
                color: PALETTE[1],
                values: order.iter().map(|s| s.balance.cv_active).collect(),
            },
        ],
        &|v| format!("{v:.2}"),
    )
}

/// `moved.svg`: share of clients moved by pool changes, least first.
pub fn moved(report: &Report) -> String {
    let mut order: Vec<&SchedulerReport> = report.schedulers.iter().collect();
    order.sort_by(|a, b| {
        let key = |s: &SchedulerReport| s.moved.share.unwrap_or(f64::INFINITY);
        key(a).total_cmp(&key(b))
    });
    let categories: Vec<String> = order.iter().map(|s| with_flags(s)).collect();
    bars(
        "Disruption: clients moved by pool changes",
        &format!(
            "{}, seed {}: share of returning clients sent to another server though theirs still served",
            report.scenario.name, report.scenario.seed
        ),
        &categories,
        &[BarSeries {
            name: "moved",
            color: PALETTE[2],
            values: order.iter().map(|s| s.moved.share).collect(),
        }],
        &|v| format!("{:.0}%", v * 100.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_nice_steps() {
        assert_eq!(nice_step(100.0, 4.0), 50.0);
        assert_eq!(nice_step(7.0, 4.0), 2.0);
        assert_eq!(nice_step(0.8, 4.0), 0.2);
        assert_eq!(nice_max(300.0, 4.0), (300.0, 100.0));
        assert_eq!(nice_max(0.0, 4.0), (1.0, 1.0));
        assert_eq!(tick_label(0.4, 0.2), "0.4");
        assert_eq!(tick_label(20_000.0, 10_000.0), "20k");
        assert_eq!(tick_label(500.0, 100.0), "500");
    }

    #[test]
    fn svg_downsample_averages_and_keeps_gaps() {
        let times: Vec<f64> = (0..300).map(f64::from).collect();
        let values: Vec<Option<u32>> = (0..300)
            .map(|i| {
                if (100..200).contains(&i) {
                    None
                } else {
                    Some(i)
                }
            })
            .collect();
        let pts = downsample(&times, &values);
        assert_eq!(pts.len(), 100);
        assert_eq!(pts[0], (1.0, Some(1.0)));
        assert_eq!(pts[40].1, None);
        assert_eq!(pts[99].1, Some(298.0));
    }

    #[test]
    fn svg_escapes_text() {
        assert_eq!(escape("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}
