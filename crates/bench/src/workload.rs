//! Workloads: the connections a run replays, either drawn from a seed (Poisson arrivals,
//! Pareto durations, Zipf-skewed clients) or read from a CSV file.
//!
//! A connection's duration is its *work*: how long it lasts on a server core that serves
//! nothing else. How long it really lasts depends on the server it lands on and how busy
//! that server is (see `sim.rs`).
//!
//! CSV format, one connection per line, sorted by arrival time:
//!
//! ```text
//! # comments and blank lines are ignored; a header line is optional
//! arrival_s,client_addr,client_port,duration_s,bytes
//! 0.000,198.51.100.7,40312,0.020,18000
//! 0.013,203.0.113.9,51022,1.500,2400000
//! ```
//!
//! Arrival times are seconds from any origin (the first line becomes time 0).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::rng::Rng;

/// One connection to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// Seconds since the start of the run.
    pub at: f64,
    /// Dense index of the client address (0..[`Workload::clients`]).
    pub client: u32,
    pub addr: Ipv4Addr,
    pub port: u16,
    /// Seconds of one core's time the connection needs.
    pub work: f64,
    pub bytes: u64,
}

/// The connections of a run, sorted by arrival.
#[derive(Debug, Clone)]
pub struct Workload {
    pub arrivals: Vec<Arrival>,
    /// Number of distinct client addresses.
    pub clients: usize,
    /// Where it came from, for the report (`synthetic` or the file name).
    pub source: String,
}

impl Workload {
    /// Total work, in core-seconds.
    pub fn total_work(&self) -> f64 {
        self.arrivals.iter().map(|a| a.work).sum()
    }

    /// Keeps only the connections that arrive before `end` seconds.
    pub fn truncate(&mut self, end: f64) {
        let keep = self.arrivals.partition_point(|a| a.at < end);
        self.arrivals.truncate(keep);
    }
}

/// Parameters of a synthetic workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthetic {
    /// Connections per second (Poisson).
    pub rate: f64,
    /// Seconds.
    pub duration: f64,
    /// Number of distinct client addresses.
    pub clients: u32,
    /// Zipf exponent of how often each client connects (0 = all equally often).
    pub client_skew: f64,
    /// Mean work per connection, seconds (Pareto, tail index [`PARETO_ALPHA`]).
    pub mean_work: f64,
}

/// Tail index of the work distribution: heavy-tailed (infinite variance), as measured for
/// web transfer sizes (Crovella & Bestavros 1997 found 1.1–1.5).
pub const PARETO_ALPHA: f64 = 1.5;
/// No connection needs more than this many seconds of work (a cap on the Pareto tail, so
/// a short run is not dominated by one draw).
pub const MAX_WORK: f64 = 60.0;
/// Bytes a connection moves per second of work (100 Mbit/s).
const BYTES_PER_WORK_SECOND: f64 = 12.5e6;

impl Synthetic {
    /// Draws the workload for `seed`.
    pub fn generate(&self, seed: u64) -> Workload {
        let mut gaps = Rng::stream(seed, "arrivals");
        let mut who = Rng::stream(seed, "clients");
        let mut work = Rng::stream(seed, "work");
        let cdf = zipf_cdf(self.clients, self.client_skew);
        let scale = self.mean_work * (PARETO_ALPHA - 1.0) / PARETO_ALPHA;
        let mut arrivals = Vec::with_capacity((self.rate * self.duration * 1.05) as usize);
        let mut at = 0.0;
        loop {
            at += gaps.exponential(self.rate);
            if at >= self.duration {
                break;
            }
            let u = who.next_f64();
            let client = cdf.partition_point(|&c| c <= u).min(cdf.len() - 1) as u32;
            let port = 32768 + who.below(60999 - 32768 + 1) as u16;
            let w = work.pareto(scale, PARETO_ALPHA).min(MAX_WORK);
            arrivals.push(Arrival {
                at,
                client,
                addr: client_addr(client),
                port,
                work: w,
                bytes: (w * BYTES_PER_WORK_SECOND).round() as u64,
            });
        }
        Workload {
            arrivals,
            clients: self.clients as usize,
            source: "synthetic".to_string(),
        }
    }
}

/// Cumulative distribution of a Zipf law over `n` ranks.
fn zipf_cdf(n: u32, skew: f64) -> Vec<f64> {
    let weights: Vec<f64> = (1..=n).map(|k| f64::from(k).powf(-skew)).collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect()
}

/// The address of synthetic client `index`: spread over 10.0.0.0/8 by an odd multiplier
/// (a bijection on 24 bits), so that neighbouring ranks do not get neighbouring addresses.
pub fn client_addr(index: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 | (index.wrapping_add(1).wrapping_mul(0x9E37_79B1) & 0x00ff_ffff))
}

/// What is wrong with a workload file; every variant names the file, and the line when
/// there is one.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("cannot read workload {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: no connections (only comments, blank lines or a header)")]
    Empty { path: String },
}

const FIELDS: [&str; 5] = [
    "arrival_s",
    "client_addr",
    "client_port",
    "duration_s",
    "bytes",
];

/// Reads a workload file.
///
/// # Errors
/// The file cannot be read, or a line is malformed: the error names the line and the
/// field.
pub fn read_csv(path: &Path) -> Result<Workload, WorkloadError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| WorkloadError::Read {
        path: name.clone(),
        source,
    })?;
    parse_csv(&text, &name)
}

/// Parses the text of a workload file called `name` (see the module doc for the format).
///
/// # Errors
/// A malformed line: the error names the line and the field.
pub fn parse_csv(text: &str, name: &str) -> Result<Workload, WorkloadError> {
    let mut arrivals: Vec<Arrival> = Vec::new();
    let mut clients: HashMap<Ipv4Addr, u32> = HashMap::new();
    let mut seen_data_or_header = false;
    let mut origin = None;
    let mut last_raw = f64::NEG_INFINITY;
    for (i, raw_line) in text.lines().enumerate() {
        let line_no = i + 1;
        let err = |message: String| WorkloadError::Line {
            path: name.to_string(),
            line: line_no,
            message,
        };
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if !seen_data_or_header && fields[0].starts_with(|c: char| c.is_ascii_alphabetic()) {
            seen_data_or_header = true;
            if fields.len() != FIELDS.len() {
                return Err(err(format!(
                    "header has {} fields, expected {}: {}",
                    fields.len(),
                    FIELDS.len(),
                    FIELDS.join(",")
                )));
            }
            continue;
        }
        seen_data_or_header = true;
        if fields.len() != FIELDS.len() {
            return Err(err(format!(
                "{} fields, expected {} ({})",
                fields.len(),
                FIELDS.len(),
                FIELDS.join(",")
            )));
        }
        let number = |index: usize| -> Result<f64, WorkloadError> {
            let v: f64 = fields[index].parse().map_err(|_| {
                err(format!(
                    "{} `{}` is not a number",
                    FIELDS[index], fields[index]
                ))
            })?;
            if !v.is_finite() || v < 0.0 {
                return Err(err(format!(
                    "{} `{}` must be a finite number >= 0",
                    FIELDS[index], fields[index]
                )));
            }
            Ok(v)
        };
        let raw_at = number(0)?;
        let addr: Ipv4Addr = fields[1].parse().map_err(|_| {
            err(format!(
                "client_addr `{}` is not an IPv4 address (masq's data path is IPv4 only)",
                fields[1]
            ))
        })?;
        let port: u16 = fields[2].parse().map_err(|_| {
            err(format!(
                "client_port `{}` is not a port number (0-65535)",
                fields[2]
            ))
        })?;
        let work = number(3)?;
        let bytes: u64 = fields[4]
            .parse()
            .map_err(|_| err(format!("bytes `{}` is not a whole number >= 0", fields[4])))?;
        if raw_at < last_raw {
            return Err(err(format!(
                "arrival {raw_at} is earlier than the line before ({last_raw}); \
                 sort the file by arrival time (sort -t, -k1,1g)"
            )));
        }
        last_raw = raw_at;
        let origin = *origin.get_or_insert(raw_at);
        let next = clients.len() as u32;
        let client = *clients.entry(addr).or_insert(next);
        arrivals.push(Arrival {
            at: raw_at - origin,
            client,
            addr,
            port,
            work,
            bytes,
        });
    }
    if arrivals.is_empty() {
        return Err(WorkloadError::Empty {
            path: name.to_string(),
        });
    }
    Ok(Workload {
        arrivals,
        clients: clients.len(),
        source: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_text(text: &str) -> String {
        parse_csv(text, "w.csv").unwrap_err().to_string()
    }

    #[test]
    fn csv_good_file_with_header_comments_and_offset_origin() {
        let text = "# a trace\n\
                    arrival_s,client_addr,client_port,duration_s,bytes\n\
                    \n\
                    100.5, 198.51.100.7 ,40312,0.020,18000\n\
                    100.5,203.0.113.9,51022,1.5,2400000\n\
                    # mid-file comment\n\
                    101.25,198.51.100.7,40313,0,0\n";
        let w = parse_csv(text, "w.csv").unwrap();
        assert_eq!(w.clients, 2);
        assert_eq!(w.arrivals.len(), 3);
        assert_eq!(
            w.arrivals[0],
            Arrival {
                at: 0.0,
                client: 0,
                addr: Ipv4Addr::new(198, 51, 100, 7),
                port: 40312,
                work: 0.020,
                bytes: 18000,
            }
        );
        assert_eq!(w.arrivals[1].client, 1);
        assert_eq!((w.arrivals[2].at, w.arrivals[2].client), (0.75, 0));
        assert_eq!(w.source, "w.csv");
    }

    #[test]
    fn csv_without_header() {
        let w = parse_csv("0,10.0.0.1,1000,1,10\n", "w.csv").unwrap();
        assert_eq!(w.arrivals.len(), 1);
    }

    #[test]
    fn csv_bad_lines_name_the_line_and_the_field() {
        let cases = [
            ("0,10.0.0.1,1000,1\n", "w.csv:1: 4 fields, expected 5"),
            (
                "# c\n0,10.0.0.1,1000,1,1\nx1,10.0.0.1,1000,1,1\n",
                "w.csv:3: arrival_s `x1` is not a number",
            ),
            (
                "0,10.0.0.1,1000,1,1\n1,10.0.0.300,1000,1,1\n",
                "w.csv:2: client_addr `10.0.0.300` is not an IPv4 address",
            ),
            (
                "0,2001:db8::1,1000,1,1\n",
                "w.csv:1: client_addr `2001:db8::1`",
            ),
            (
                "0,10.0.0.1,70000,1,1\n",
                "w.csv:1: client_port `70000` is not a port number",
            ),
            (
                "0,10.0.0.1,1,-2,1\n",
                "w.csv:1: duration_s `-2` must be a finite number >= 0",
            ),
            ("0,10.0.0.1,1,NaN,1\n", "w.csv:1: duration_s `NaN` must be"),
            (
                "0,10.0.0.1,1,1,1.5\n",
                "w.csv:1: bytes `1.5` is not a whole",
            ),
            (
                "5,10.0.0.1,1,1,1\n4,10.0.0.1,1,1,1\n",
                "w.csv:2: arrival 4 is earlier than the line before (5)",
            ),
            (
                "arrival,addr,port\n0,10.0.0.1,1,1,1\n",
                "w.csv:1: header has 3 fields",
            ),
            ("# nothing\n\n", "w.csv: no connections"),
            ("arrival_s,a,b,c,d\n", "w.csv: no connections"),
        ];
        for (text, want) in cases {
            let got = err_text(text);
            assert!(
                got.starts_with(want),
                "{text:?}: got {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn csv_missing_file_is_an_error_not_a_panic() {
        let e = read_csv(Path::new("/nonexistent/w.csv")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read workload /nonexistent/w.csv:"),
            "{e}"
        );
    }

    #[test]
    fn synthetic_is_reproducible_and_has_its_rates() {
        let s = Synthetic {
            rate: 1000.0,
            duration: 20.0,
            clients: 500,
            client_skew: 0.8,
            mean_work: 0.02,
        };
        let a = s.generate(9);
        assert_eq!(a.arrivals, s.generate(9).arrivals);
        assert_ne!(a.arrivals, s.generate(10).arrivals);
        let n = a.arrivals.len() as f64;
        assert!((n - 20_000.0).abs() < 500.0, "{n}");
        assert!(a.arrivals.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(a.arrivals.iter().all(|x| x.at < 20.0 && x.work > 0.0));
        let mean = a.total_work() / n;
        assert!((mean - 0.02).abs() < 0.004, "{mean}");
        // Zipf: client 0 is the busiest.
        let first = a.arrivals.iter().filter(|x| x.client == 0).count();
        let last = a.arrivals.iter().filter(|x| x.client == 499).count();
        assert!(first > 10 * last.max(1), "{first} {last}");
    }

    #[test]
    fn synthetic_client_addresses_are_distinct() {
        let addrs: std::collections::HashSet<Ipv4Addr> = (0..100_000).map(client_addr).collect();
        assert_eq!(addrs.len(), 100_000);
    }
}
