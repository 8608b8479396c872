//! What a run simulates besides the connections: the real servers, how the pool changes
//! during the run, and the presets that bundle both with a synthetic workload.

use std::net::Ipv4Addr;

use crate::rng::Rng;
use crate::workload::{Synthetic, Workload};

/// A real server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSpec {
    /// `s1`, `s2`, ... in the order they are first added.
    pub name: String,
    /// How many connections it serves at full speed at once (see `sim.rs`).
    pub cores: u32,
    /// The ipvsadm weight it is given (`-w`).
    pub weight: i32,
}

impl ServerSpec {
    /// Server number `n` (1-based), called `s<n>`.
    pub fn numbered(n: usize, cores: u32, weight: i32) -> Self {
        ServerSpec {
            name: format!("s{n}"),
            cores,
            weight,
        }
    }

    /// Its address: 172.16.<n / 256>.<n % 256> (port 80), from the number in its name.
    pub fn addr(&self) -> Ipv4Addr {
        let n: u32 = self.name[1..].parse().unwrap_or(0);
        Ipv4Addr::from(0xac10_0000 | (n & 0xffff))
    }
}

/// One change to the pool of real servers.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeKind {
    /// `ipvsadm -a`: a new server, inserted at the head of the list.
    Add(ServerSpec),
    /// `ipvsadm -d`: a healthy server taken out; connections already on it run to their
    /// end.
    Remove(String),
    /// The server dies: its connections are cut, the health checker sets its weight to 0
    /// at once (`ipvsadm -e -w 0`) and deletes it [`FAIL_REMOVE_AFTER`] seconds later.
    Fail(String),
}

/// Seconds between a failed server's quiescing and its deletion.
pub const FAIL_REMOVE_AFTER: f64 = 2.0;

/// A change at a point of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolChange {
    /// Seconds since the start.
    pub at: f64,
    pub kind: ChangeKind,
}

impl PoolChange {
    /// A short label: `+s7`, `-s4`, `fail s5`.
    pub fn label(&self) -> String {
        match &self.kind {
            ChangeKind::Add(s) => format!("+{}", s.name),
            ChangeKind::Remove(n) => format!("-{n}"),
            ChangeKind::Fail(n) => format!("fail {n}"),
        }
    }

    /// What happened, in words.
    pub fn describe(&self) -> String {
        match &self.kind {
            ChangeKind::Add(s) => {
                format!("{} added ({} cores, weight {})", s.name, s.cores, s.weight)
            }
            ChangeKind::Remove(n) => format!("{n} removed (ipvsadm -d)"),
            ChangeKind::Fail(n) => format!(
                "{n} failed (connections cut, weight 0, removed {FAIL_REMOVE_AFTER} s later)"
            ),
        }
    }
}

/// Everything one run replays, the same for every scheduler.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `preset hetero`, or the workload file.
    pub name: String,
    pub servers: Vec<ServerSpec>,
    pub changes: Vec<PoolChange>,
    pub workload: Workload,
    /// Seconds simulated.
    pub duration: f64,
    /// Seconds a closed connection stays in the table as inactive (IPVS TIME_WAIT: 120).
    pub time_wait: f64,
}

impl Scenario {
    /// Total cores of the initial servers.
    pub fn capacity(&self) -> u32 {
        self.servers.iter().map(|s| s.cores).sum()
    }

    /// Work offered per second over the initial capacity.
    pub fn offered_load(&self) -> f64 {
        self.workload.total_work() / self.duration / f64::from(self.capacity().max(1))
    }
}

/// The built-in scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// Six servers of 16, 16, 8, 8, 4 and 4 cores weighted by cores; one added, one
    /// removed, one failing.
    Hetero,
    /// Eight equal servers; one added, one removed, one failing.
    Uniform,
    /// Ten equal servers and a pool change every 5% of the run.
    Churn,
}

/// Mean work of a preset's connection: 20 ms, a short web request.
pub const PRESET_MEAN_WORK: f64 = 0.02;
/// Seconds a preset runs unless `--duration` says otherwise.
pub const PRESET_DURATION: f64 = 300.0;

impl Preset {
    /// The name `--preset` takes.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Hetero => "hetero",
            Preset::Uniform => "uniform",
            Preset::Churn => "churn",
        }
    }

    /// Offered load as a share of the initial capacity.
    pub fn load(self) -> f64 {
        match self {
            Preset::Hetero | Preset::Uniform => 0.65,
            Preset::Churn => 0.6,
        }
    }

    /// The servers and pool changes of a run lasting `duration` seconds.
    pub fn pool(self, duration: f64, seed: u64) -> (Vec<ServerSpec>, Vec<PoolChange>) {
        let at = |share: f64| duration * share;
        match self {
            Preset::Hetero => {
                let servers: Vec<ServerSpec> = [16, 16, 8, 8, 4, 4]
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| ServerSpec::numbered(i + 1, c, c as i32))
                    .collect();
                let changes = vec![
                    PoolChange {
                        at: at(0.25),
                        kind: ChangeKind::Add(ServerSpec::numbered(7, 8, 8)),
                    },
                    PoolChange {
                        at: at(0.5),
                        kind: ChangeKind::Remove("s4".into()),
                    },
                    PoolChange {
                        at: at(0.75),
                        kind: ChangeKind::Fail("s5".into()),
                    },
                ];
                (servers, changes)
            }
            Preset::Uniform => {
                let servers = (1..=8).map(|n| ServerSpec::numbered(n, 8, 8)).collect();
                let changes = vec![
                    PoolChange {
                        at: at(0.25),
                        kind: ChangeKind::Add(ServerSpec::numbered(9, 8, 8)),
                    },
                    PoolChange {
                        at: at(0.5),
                        kind: ChangeKind::Remove("s3".into()),
                    },
                    PoolChange {
                        at: at(0.75),
                        kind: ChangeKind::Fail("s6".into()),
                    },
                ];
                (servers, changes)
            }
            Preset::Churn => {
                let servers: Vec<ServerSpec> =
                    (1..=10).map(|n| ServerSpec::numbered(n, 8, 8)).collect();
                let changes = churn(&servers, duration, seed);
                (servers, changes)
            }
        }
    }

    /// The whole scenario for `seed`, `duration` seconds long, with `load` overriding the
    /// preset's offered load.
    pub fn scenario(self, seed: u64, duration: f64, load: Option<f64>) -> Scenario {
        let (servers, changes) = self.pool(duration, seed);
        let capacity: u32 = servers.iter().map(|s| s.cores).sum();
        let load = load.unwrap_or(self.load());
        Scenario {
            name: format!("preset {}", self.name()),
            servers,
            changes,
            workload: preset_workload(capacity, load, duration).generate(seed),
            duration,
            time_wait: 120.0,
        }
    }
}

/// The presets' workload: `load` of `capacity` cores for `duration` seconds, 20 ms
/// connections on average, from 20,000 clients of Zipf(0.8) activity.
pub fn preset_workload(capacity: u32, load: f64, duration: f64) -> Synthetic {
    Synthetic {
        rate: load * f64::from(capacity) / PRESET_MEAN_WORK,
        duration,
        clients: 20_000,
        client_skew: 0.8,
        mean_work: PRESET_MEAN_WORK,
    }
}

/// A change every 5% of the run: a server added, removed or failing, at random (from
/// `seed`), keeping between 6 and 14 servers in the pool.
fn churn(servers: &[ServerSpec], duration: f64, seed: u64) -> Vec<PoolChange> {
    let mut rng = Rng::stream(seed, "churn");
    let mut pool: Vec<String> = servers.iter().map(|s| s.name.clone()).collect();
    let mut next = servers.len() + 1;
    let mut changes = Vec::new();
    for step in 1..20 {
        let at = duration * f64::from(step) / 20.0;
        let roll = rng.below(3);
        let kind = if pool.len() <= 6 || (roll == 0 && pool.len() < 14) {
            let s = ServerSpec::numbered(next, 8, 8);
            next += 1;
            pool.push(s.name.clone());
            ChangeKind::Add(s)
        } else {
            let gone = pool.remove(rng.below(pool.len() as u64) as usize);
            if roll == 1 {
                ChangeKind::Remove(gone)
            } else {
                ChangeKind::Fail(gone)
            }
        };
        changes.push(PoolChange { at, kind });
    }
    changes
}

/// Parses `--servers`: a comma list of `CORES` or `CORES:WEIGHT` (weight defaults to the
/// cores), named s1, s2, ... in order.
///
/// # Errors
/// An item that is not of that form, a zero core count or a negative weight.
pub fn parse_servers(spec: &str) -> Result<Vec<ServerSpec>, String> {
    let servers = spec
        .split(',')
        .enumerate()
        .map(|(i, item)| parse_server(item.trim(), i + 1))
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err("--servers: no servers".into());
    }
    Ok(servers)
}

fn parse_server(item: &str, n: usize) -> Result<ServerSpec, String> {
    let (cores, weight) = match item.split_once(':') {
        Some((c, w)) => (c, Some(w)),
        None => (item, None),
    };
    let cores: u32 = cores
        .parse()
        .ok()
        .filter(|&c| c > 0)
        .ok_or_else(|| format!("server `{item}`: cores must be a whole number >= 1"))?;
    let weight: i32 = match weight {
        None => i32::try_from(cores).map_err(|_| format!("server `{item}`: too many cores"))?,
        Some(w) => w
            .parse()
            .ok()
            .filter(|&w| w >= 0)
            .ok_or_else(|| format!("server `{item}`: weight must be a whole number >= 0"))?,
    };
    Ok(ServerSpec::numbered(n, cores, weight))
}

/// Parses `--changes`: `none`, or a comma list of `add:CORES[:WEIGHT]@SECS`,
/// `remove:NAME@SECS` and `fail:NAME@SECS`, checked against `servers` (added servers are
/// numbered after them) and the run's `duration`.
///
/// # Errors
/// A malformed item, a time outside the run, or a name that is not in the pool then.
pub fn parse_changes(
    spec: &str,
    servers: &[ServerSpec],
    duration: f64,
) -> Result<Vec<PoolChange>, String> {
    if spec.trim() == "none" {
        return Ok(Vec::new());
    }
    let mut next = servers.len() + 1;
    let mut changes = Vec::new();
    for item in spec.split(',').map(str::trim) {
        let (what, at) = item
            .rsplit_once('@')
            .ok_or_else(|| format!("change `{item}`: missing @SECONDS"))?;
        let at: f64 = at
            .parse()
            .ok()
            .filter(|t: &f64| t.is_finite() && *t > 0.0)
            .ok_or_else(|| format!("change `{item}`: `{at}` is not a time in seconds > 0"))?;
        let (verb, arg) = what.split_once(':').ok_or_else(|| {
            format!("change `{item}`: expected add:CORES, remove:NAME or fail:NAME")
        })?;
        let kind = match verb {
            "add" => {
                let s = parse_server(arg, next).map_err(|e| format!("change `{item}`: {e}"))?;
                next += 1;
                ChangeKind::Add(s)
            }
            "remove" => ChangeKind::Remove(arg.to_string()),
            "fail" => ChangeKind::Fail(arg.to_string()),
            _ => {
                return Err(format!(
                    "change `{item}`: unknown kind `{verb}` (add, remove or fail)"
                ))
            }
        };
        changes.push(PoolChange { at, kind });
    }
    changes.sort_by(|a, b| a.at.total_cmp(&b.at));
    validate_changes(servers, &changes, duration)?;
    Ok(changes)
}

/// Checks that every change happens during the run and names a server in the pool at
/// that time.
///
/// # Errors
/// The first change that does not.
pub fn validate_changes(
    servers: &[ServerSpec],
    changes: &[PoolChange],
    duration: f64,
) -> Result<(), String> {
    let mut pool: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    for c in changes {
        if c.at >= duration {
            return Err(format!(
                "change `{}` at {} s is not before the end of the run ({} s)",
                c.label(),
                c.at,
                duration
            ));
        }
        match &c.kind {
            ChangeKind::Add(s) => pool.push(&s.name),
            ChangeKind::Remove(name) | ChangeKind::Fail(name) => {
                let i = pool.iter().position(|n| n == name).ok_or_else(|| {
                    format!(
                        "change `{}` at {} s: no server `{name}` in the pool then (it has {})",
                        c.label(),
                        c.at,
                        pool.join(", ")
                    )
                })?;
                pool.remove(i);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_servers_spec() {
        let s = parse_servers("16, 8:2,4:0").unwrap();
        assert_eq!(
            s,
            vec![
                ServerSpec::numbered(1, 16, 16),
                ServerSpec::numbered(2, 8, 2),
                ServerSpec::numbered(3, 4, 0)
            ]
        );
        assert_eq!(s[1].addr(), Ipv4Addr::new(172, 16, 0, 2));
        for bad in ["", "0", "x", "4:-1", "4:a", "4,,4"] {
            assert!(parse_servers(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scenario_changes_spec() {
        let servers = parse_servers("8,8,8").unwrap();
        let c = parse_changes("fail:s2@20, add:4@10,remove:s4@30", &servers, 60.0).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(
            c[0].kind,
            ChangeKind::Add(ServerSpec::numbered(4, 4, 4)),
            "sorted by time"
        );
        assert_eq!(c[1].label(), "fail s2");
        assert_eq!(c[2].label(), "-s4");
        assert!(parse_changes("none", &servers, 60.0).unwrap().is_empty());
        let errors = [
            ("remove:s9@10", "no server `s9` in the pool then"),
            ("remove:s1@10,fail:s1@20", "no server `s1`"),
            ("add:4@70", "is not before the end of the run"),
            ("remove:s1", "missing @SECONDS"),
            ("remove:s1@-3", "is not a time"),
            ("drop:s1@3", "unknown kind `drop`"),
            ("add:0@3", "cores must be"),
            ("s1@3", "expected add:CORES"),
        ];
        for (spec, want) in errors {
            let e = parse_changes(spec, &servers, 60.0).unwrap_err();
            assert!(e.contains(want), "{spec}: {e}");
        }
    }

    #[test]
    fn scenario_presets_are_valid_and_reproducible() {
        for preset in [Preset::Hetero, Preset::Uniform, Preset::Churn] {
            let (servers, changes) = preset.pool(300.0, 5);
            validate_changes(&servers, &changes, 300.0).unwrap();
            assert_eq!(preset.pool(300.0, 5), (servers, changes));
        }
        let (_, churn) = Preset::Churn.pool(300.0, 5);
        assert_eq!(churn.len(), 19);
        let s = Preset::Hetero.scenario(1, 30.0, None);
        assert_eq!(s.capacity(), 56);
        assert!(
            (s.offered_load() - 0.65).abs() < 0.08,
            "{}",
            s.offered_load()
        );
    }
}
