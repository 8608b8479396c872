//! The results of a run, as JSON (`results.json`) and as a table for the terminal. Both are
//! built from one [`Report`], so they cannot disagree.
//!
//! Everything outside the `measured` objects is a function of the scenario and the seed
//! alone; `measured` holds what depends on the machine (wall-clock speed, resident memory)
//! and is left out with `--no-timing`, so that two runs with the same seed write
//! byte-identical JSON.

use masq_core::control::SchedFlags;
use serde::Serialize;

use crate::scenario::Scenario;
use crate::sim::{RunOutcome, VIP};
use crate::stats::{percentile, sig};

/// How the `moved` figure is defined (also written into the JSON).
pub const MOVED_DEFINITION: &str = "At each pool change, take every client address whose \
last connection before the change went to a server that is still in the pool with a \
non-zero weight after it, and that connects again before the next change: moved is the \
share of those clients whose first connection after the change went to a different server \
(or found no server). Ideal: 0 when a server leaves; about 1/(n+1) when one joins a pool \
of n. Schedulers without client affinity move about (n-1)/n whether the pool changes or not.";

const BALANCE_DEFINITION: &str = "ActiveConn of the servers in the pool with a non-zero \
weight, sampled at regular instants: max/mean and the coefficient of variation (population \
standard deviation / mean) at each instant, averaged over the instants where the mean is \
above 0. cv_load is the same for ActiveConn per core: 0 means every server is as busy as \
its size allows.";

const RESPONSE_DEFINITION: &str = "Seconds from a connection's arrival to its end: its work \
if its server had a free core the whole time, longer when the server was oversubscribed. \
Connections still open at the end of the run count with the time they had so far (a lower \
bound); connections cut by a failing server are not counted.";

const MEASURED_DEFINITION: &str = "Machine-dependent: decisions_per_s is schedule() calls per \
second of wall-clock time spent inside schedule() (the cost of reading the clock around each \
call, timer_overhead_ns, subtracted); sched_mem_bytes (outside measured) is the peak heap \
held by the scheduler's own state.";

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub scenario: ScenarioInfo,
    pub definitions: Definitions,
    pub schedulers: Vec<SchedulerReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured: Option<RunMeasured>,
}

#[derive(Debug, Serialize)]
pub struct Definitions {
    pub balance: &'static str,
    pub moved: &'static str,
    pub response_s: &'static str,
    pub measured: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub workload: String,
    pub seed: u64,
    pub duration_s: f64,
    pub vip: String,
    pub connections: usize,
    pub clients: usize,
    pub capacity_cores: u32,
    /// Work offered per second over the initial capacity.
    pub offered_load: f64,
    pub time_wait_s: f64,
    pub servers: Vec<ServerInfo>,
    pub pool_changes: Vec<ChangeInfo>,
}

#[derive(Debug, Serialize)]
pub struct ServerInfo {
    pub name: String,
    pub addr: String,
    pub cores: u32,
    pub weight: i32,
}

#[derive(Debug, Serialize)]
pub struct ChangeInfo {
    pub at_s: f64,
    pub label: String,
    pub change: String,
}

#[derive(Debug, Serialize)]
pub struct SchedulerReport {
    pub name: String,
    /// `-b` flags as ipvsadm names them.
    pub flags: Vec<String>,
    pub connections: u64,
    pub unscheduled: u64,
    pub broken: u64,
    pub balance: Balance,
    pub response_s: Response,
    pub moved: Moved,
    pub servers: Vec<ServerShare>,
    /// Peak heap bytes of the scheduler's own state; null when not measured.
    pub sched_mem_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured: Option<SchedMeasured>,
    /// ActiveConn of each server over time (null while a server is not in the pool).
    pub series: Series,
}

#[derive(Debug, Serialize)]
pub struct Balance {
    pub max_over_mean_active: Option<f64>,
    pub cv_active: Option<f64>,
    pub cv_load: Option<f64>,
    pub peak_active: u32,
}

#[derive(Debug, Serialize)]
pub struct Response {
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Moved {
    /// `clients_moved / clients_compared` over all changes; null when nobody came back.
    pub share: Option<f64>,
    pub clients_compared: u64,
    pub clients_moved: u64,
    pub per_change: Vec<MovedAt>,
}

#[derive(Debug, Serialize)]
pub struct MovedAt {
    pub at_s: f64,
    pub change: String,
    pub clients_compared: u64,
    pub clients_moved: u64,
    pub share: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ServerShare {
    pub name: String,
    pub connections: u64,
    /// Share of the scheduled connections.
    pub share: f64,
    /// Share of the bytes.
    pub bytes_share: f64,
}

#[derive(Debug, Serialize)]
pub struct SchedMeasured {
    pub decisions: u64,
    pub decisions_per_s: f64,
    pub ns_per_decision: f64,
    /// Before subtracting the timer's own cost.
    pub ns_per_decision_raw: f64,
    pub wall_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Series {
    pub t_s: Vec<f64>,
    pub active: Vec<ServerSeries>,
}

#[derive(Debug, Serialize)]
pub struct ServerSeries {
    pub name: String,
    pub cores: u32,
    pub weight: i32,
    pub active: Vec<Option<u32>>,
}

#[derive(Debug, Serialize)]
pub struct RunMeasured {
    pub wall_s: f64,
    pub peak_rss_bytes: Option<u64>,
    pub timer_overhead_ns: f64,
}

/// The `-b` flags of `flags` as ipvsadm lists them for `scheduler`.
pub fn flag_names(scheduler: &str, flags: SchedFlags) -> Vec<String> {
    let names = match scheduler {
        "sh" => ["sh-fallback", "sh-port", "flag-3"],
        "mh" => ["mh-fallback", "mh-port", "flag-3"],
        _ => ["flag-1", "flag-2", "flag-3"],
    };
    (0..3)
        .filter(|bit| flags.0 & (1 << bit) != 0)
        .map(|bit| names[bit].to_string())
        .collect()
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| sig(part as f64 / whole as f64, 4))
}

impl Report {
    /// Builds the report of `outcomes` run on `scenario` with `seed`. `timer_overhead_ns`
    /// is `None` when wall-clock measurements are left out.
    pub fn new(
        scenario: &Scenario,
        seed: u64,
        outcomes: &[RunOutcome],
        timer_overhead_ns: Option<f64>,
        wall_s: f64,
        peak_rss_bytes: Option<u64>,
    ) -> Self {
        let info = ScenarioInfo {
            name: scenario.name.clone(),
            workload: scenario.workload.source.clone(),
            seed,
            duration_s: scenario.duration,
            vip: format!("{VIP}:80"),
            connections: scenario.workload.arrivals.len(),
            clients: scenario.workload.clients,
            capacity_cores: scenario.capacity(),
            offered_load: sig(scenario.offered_load(), 3),
            time_wait_s: scenario.time_wait,
            servers: scenario
                .servers
                .iter()
                .map(|s| ServerInfo {
                    name: s.name.clone(),
                    addr: format!("{}:80", s.addr()),
                    cores: s.cores,
                    weight: s.weight,
                })
                .collect(),
            pool_changes: scenario
                .changes
                .iter()
                .map(|c| ChangeInfo {
                    at_s: sig(c.at, 6),
                    label: c.label(),
                    change: c.describe(),
                })
                .collect(),
        };
        let schedulers = outcomes
            .iter()
            .map(|o| scheduler_report(o, timer_overhead_ns))
            .collect();
        Report {
            tool: "masq-bench schedulers",
            scenario: info,
            definitions: Definitions {
                balance: BALANCE_DEFINITION,
                moved: MOVED_DEFINITION,
                response_s: RESPONSE_DEFINITION,
                measured: MEASURED_DEFINITION,
            },
            schedulers,
            measured: timer_overhead_ns.map(|t| RunMeasured {
                wall_s: sig(wall_s, 4),
                peak_rss_bytes,
                timer_overhead_ns: sig(t, 3),
            }),
        }
    }

    /// The JSON text.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("the report serializes");
        s.push('\n');
        s
    }

    /// The table for the terminal, with a header saying what ran and a footer saying what
    /// the columns mean.
    pub fn table(&self) -> String {
        let sc = &self.scenario;
        let mut out = String::new();
        out += &format!(
            "masq-bench schedulers: {}, seed {}, {} s simulated\n",
            sc.name, sc.seed, sc.duration_s
        );
        out += &format!(
            "  {} connections from {} clients to {}, offered load {:.0}% of {} cores, TIME_WAIT {} s\n",
            thousands(sc.connections as u64),
            thousands(sc.clients as u64),
            sc.vip,
            sc.offered_load * 100.0,
            sc.capacity_cores,
            sc.time_wait_s
        );
        let servers: Vec<String> = sc
            .servers
            .iter()
            .map(|s| format!("{} {}c w{}", s.name, s.cores, s.weight))
            .collect();
        out += &format!("  servers: {}\n", servers.join(", "));
        if !sc.pool_changes.is_empty() {
            let changes: Vec<String> = sc
                .pool_changes
                .iter()
                .map(|c| format!("{} s {}", c.at_s, c.change))
                .collect();
            out += &format!("  pool: {}\n", changes.join("; "));
        }
        out += "\n";

        let header = [
            "sched",
            "unsched",
            "broken",
            "max/mean",
            "CV act",
            "CV load",
            "p50 ms",
            "p99 ms",
            "moved",
            "decisions/s",
            "sched mem",
        ];
        let rows: Vec<Vec<String>> = self
            .schedulers
            .iter()
            .map(|s| {
                let name = if s.flags.is_empty() {
                    s.name.clone()
                } else {
                    format!("{} ({})", s.name, s.flags.join(","))
                };
                vec![
                    name,
                    percent(ratio(s.unscheduled, s.connections)),
                    thousands(s.broken),
                    fixed(s.balance.max_over_mean_active, 2),
                    fixed(s.balance.cv_active, 2),
                    fixed(s.balance.cv_load, 2),
                    millis(s.response_s.p50),
                    millis(s.response_s.p99),
                    percent(s.moved.share),
                    s.measured
                        .as_ref()
                        .map_or("-".into(), |m| si(m.decisions_per_s)),
                    s.sched_mem_bytes.map_or("-".into(), bytes),
                ]
            })
            .collect();
        out += &align(&header, &rows);
        out += "\n";
        out += "  max/mean, CV act: ActiveConn across the servers in the pool, averaged over time \
                (1.00 and 0 = even)\n";
        out += "  CV load: the same for ActiveConn per core (0 = every server as busy as its size allows)\n";
        out += "  p50/p99: connection response time (work alone: 20 ms mean in the presets)\n";
        out += "  moved: clients sent to another server after a pool change although theirs \
                still served (see results.json)\n";
        out += "  decisions/s: wall clock inside schedule() only, less the ~25 ns of reading the \
                clock (so +-5 ns; cargo bench --bench schedulers measures it precisely)\n";
        out += "  sched mem: peak heap held by the scheduler's own state\n";
        let pinned: Vec<&str> = self
            .schedulers
            .iter()
            .map(|s| s.name.as_str())
            .filter(|n| matches!(*n, "dh" | "lblc" | "lblcr"))
            .collect();
        if !pinned.is_empty() {
            out += &format!(
                "  note: {} key on the destination address; with one VIP every connection \
                 has the same one\n",
                pinned.join(", ")
            );
        }
        out
    }
}

fn scheduler_report(o: &RunOutcome, timer_overhead_ns: Option<f64>) -> SchedulerReport {
    let mut response = o.response.clone();
    let mean = (!response.is_empty())
        .then(|| sig(response.iter().sum::<f64>() / response.len() as f64, 4));
    let p50 = percentile(&mut response, 50.0).map(|v| sig(v, 4));
    let p99 = percentile(&mut response, 99.0).map(|v| sig(v, 4));
    let max = response.last().map(|&v| sig(v, 4));
    let (compared, moved) = o.moved_total();
    let scheduled: u64 = o.servers.iter().map(|s| s.connections).sum();
    let total_bytes: u64 = o.servers.iter().map(|s| s.bytes).sum();
    let measured = timer_overhead_ns.map(|overhead| {
        let raw = o.schedule_time.as_nanos() as f64 / o.decisions.max(1) as f64;
        let ns = (raw - overhead).max(0.1);
        SchedMeasured {
            decisions: o.decisions,
            decisions_per_s: sig(1e9 / ns, 3),
            ns_per_decision: sig(ns, 3),
            ns_per_decision_raw: sig(raw, 3),
            wall_s: sig(o.wall.as_secs_f64(), 3),
        }
    });
    SchedulerReport {
        name: o.scheduler.clone(),
        flags: flag_names(&o.scheduler, o.flags),
        connections: o.connections,
        unscheduled: o.unscheduled,
        broken: o.broken,
        balance: Balance {
            max_over_mean_active: o.max_over_mean.map(|v| sig(v, 4)),
            cv_active: o.cv_active.map(|v| sig(v, 4)),
            cv_load: o.cv_load.map(|v| sig(v, 4)),
            peak_active: o.peak_active,
        },
        response_s: Response {
            mean,
            p50,
            p99,
            max,
        },
        moved: Moved {
            share: ratio(moved, compared),
            clients_compared: compared,
            clients_moved: moved,
            per_change: o
                .changes
                .iter()
                .map(|c| MovedAt {
                    at_s: sig(c.at, 6),
                    change: c.label.clone(),
                    clients_compared: c.compared,
                    clients_moved: c.moved,
                    share: ratio(c.moved, c.compared),
                })
                .collect(),
        },
        servers: o
            .servers
            .iter()
            .map(|s| ServerShare {
                name: s.spec.name.clone(),
                connections: s.connections,
                share: ratio(s.connections, scheduled).unwrap_or(0.0),
                bytes_share: ratio(s.bytes, total_bytes).unwrap_or(0.0),
            })
            .collect(),
        sched_mem_bytes: o.sched_mem_peak,
        measured,
        series: Series {
            t_s: o.sample_times.iter().map(|&t| sig(t, 6)).collect(),
            active: o
                .servers
                .iter()
                .map(|s| ServerSeries {
                    name: s.spec.name.clone(),
                    cores: s.spec.cores,
                    weight: s.spec.weight,
                    active: s.active.clone(),
                })
                .collect(),
        },
    }
}

fn fixed(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

/// Seconds as milliseconds: one decimal below 100 ms, whole and grouped above.
fn millis(v: Option<f64>) -> String {
    match v.map(|s| s * 1000.0) {
        None => "-".into(),
        Some(ms) if ms < 100.0 => format!("{ms:.1}"),
        Some(ms) => thousands(ms.round() as u64),
    }
}

fn percent(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

/// 12345678 → "12.3 M".
fn si(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if v >= 1e7 {
        format!("{:.0} M", v / 1e6)
    } else if v >= 1e6 {
        format!("{:.1} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// 1536 → "1.5 KiB".
fn bytes(v: usize) -> String {
    if v >= 1 << 20 {
        format!("{:.1} MiB", v as f64 / f64::from(1 << 20))
    } else if v >= 1 << 10 {
        format!("{:.1} KiB", v as f64 / 1024.0)
    } else {
        format!("{v} B")
    }
}

/// 1234567 → "1,234,567".
fn thousands(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The first column left-aligned, the others right-aligned.
fn align(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == 0 {
                s += &format!("{cell:<w$}");
            } else {
                s += &format!("  {cell:>w$}");
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_number_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(si(12_345_678.0), "12 M");
        assert_eq!(si(2_345_678.0), "2.3 M");
        assert_eq!(millis(Some(0.0106)), "10.6");
        assert_eq!(millis(Some(73.24)), "73,240");
        assert_eq!(si(950.0), "950");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(8), "8 B");
        assert_eq!(percent(Some(0.1234)), "12.3%");
        assert_eq!(fixed(None, 2), "-");
    }

    #[test]
    fn report_flag_names_follow_ipvsadm() {
        assert_eq!(flag_names("sh", SchedFlags(3)), ["sh-fallback", "sh-port"]);
        assert_eq!(flag_names("mh", SchedFlags(2)), ["mh-port"]);
        assert_eq!(flag_names("rr", SchedFlags(5)), ["flag-1", "flag-3"]);
        assert!(flag_names("wlc", SchedFlags(0)).is_empty());
    }

    #[test]
    fn report_table_aligns_columns() {
        let t = align(
            &["a", "bb"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
        );
        assert_eq!(t, "a    bb\nxyz   1\nq    22\n");
    }
}
