//! The command line, and its checks: every bad name, value or combination becomes one
//! clear error line before anything runs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use masq_core::control::SchedFlags;
use masq_core::sched::SCHEDULER_NAMES;

use crate::scenario::{
    parse_changes, parse_servers, preset_workload, validate_changes, PoolChange, Preset, Scenario,
    ServerSpec, PRESET_DURATION,
};
use crate::workload::read_csv;

/// The schedulers run when `--schedulers` is not given: all but `none` (never schedules)
/// and dh, lblc and lblcr, which key on the destination address — one VIP here, so they
/// send everything to one server (name them to see it).
pub const DEFAULT_SCHEDULERS: &str = "rr,wrr,lc,wlc,sed,nq,fo,ovf,twos,sh,mh";

/// masq-bench: measure masq's schedulers.
#[derive(Debug, Parser)]
#[command(name = "masq-bench", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay a workload through the real schedulers and report balance, disruption by
    /// pool changes, response times, speed and memory.
    Schedulers(SchedulersArgs),
}

/// `masq-bench schedulers`.
#[derive(Debug, Args)]
pub struct SchedulersArgs {
    /// Built-in scenario (the default is hetero when no --workload is given).
    #[arg(long, value_enum, conflicts_with = "workload")]
    pub preset: Option<Preset>,

    /// Replay connections from a CSV file: arrival_s,client_addr,client_port,duration_s,bytes.
    #[arg(long, value_name = "FILE.csv")]
    pub workload: Option<PathBuf>,

    /// Comma-separated ipvsadm scheduler names.
    #[arg(long, value_name = "LIST", default_value = DEFAULT_SCHEDULERS)]
    pub schedulers: String,

    /// Seed of the synthetic workload (and of twos's random choices).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Seconds to simulate (presets: 300; a workload file: cut it there).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// Directory for results.json and the SVG plots.
    #[arg(long, value_name = "DIR", default_value = "bench-out")]
    pub out: PathBuf,

    /// Print the JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Scheduler flags as ipvsadm -b takes them: flag-1,flag-2,flag-3 apply to every
    /// scheduler, sh-fallback,sh-port only to sh, mh-fallback,mh-port only to mh.
    #[arg(short = 'b', long = "sched-flags", value_name = "FLAGS")]
    pub sched_flags: Option<String>,

    /// Real servers: comma list of CORES or CORES:WEIGHT, named s1, s2, ...
    /// (default: the preset's; 16,16,8,8,4,4 for a workload file).
    #[arg(long, value_name = "SPEC")]
    pub servers: Option<String>,

    /// Pool changes: `none` or a comma list of add:CORES[:WEIGHT]@SECS, remove:NAME@SECS,
    /// fail:NAME@SECS (default: the preset's; for a file, hetero's at 25/50/75% of it).
    #[arg(long, value_name = "SPEC")]
    pub changes: Option<String>,

    /// Offered load as a share of the initial capacity (synthetic workloads; presets: 0.65,
    /// churn 0.6).
    #[arg(long, value_name = "FRACTION", conflicts_with = "workload")]
    pub load: Option<f64>,

    /// Seconds a closed connection stays inactive in the table (IPVS TIME_WAIT).
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    pub time_wait: f64,

    /// Leave wall-clock measurements out, so that runs with the same seed write identical
    /// JSON.
    #[arg(long)]
    pub no_timing: bool,
}

/// Everything a run needs, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenario: Scenario,
    /// Scheduler names with the flags each gets.
    pub schedulers: Vec<(String, SchedFlags)>,
    pub seed: u64,
    pub out: PathBuf,
    pub json: bool,
    pub timing: bool,
}

/// Reads `--schedulers`.
///
/// # Errors
/// An empty list, an unknown name or a name given twice.
pub fn parse_schedulers(list: &str) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(format!("--schedulers `{list}`: empty name"));
        }
        if !SCHEDULER_NAMES.contains(&name) {
            return Err(format!(
                "unknown scheduler `{name}` in --schedulers (known: {})",
                SCHEDULER_NAMES.join(", ")
            ));
        }
        if names.iter().any(|n| n == name) {
            return Err(format!(
                "scheduler `{name}` is listed twice in --schedulers"
            ));
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// Reads `-b` for the schedulers `names`: the flags each one gets.
///
/// # Errors
/// An unknown flag, or an sh-/mh- flag without sh/mh among `names` (ipvsadm's
/// "incompatible scheduler flag").
pub fn parse_sched_flags(list: &str, names: &[String]) -> Result<Vec<SchedFlags>, String> {
    let mut common = 0u8;
    let (mut sh, mut mh) = (0u8, 0u8);
    for flag in list.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let (bit, only) = match flag {
            "flag-1" => (SchedFlags::FLAG1, None),
            "flag-2" => (SchedFlags::FLAG2, None),
            "flag-3" => (SchedFlags::FLAG3, None),
            "sh-fallback" => (SchedFlags::FLAG1, Some("sh")),
            "sh-port" => (SchedFlags::FLAG2, Some("sh")),
            "mh-fallback" => (SchedFlags::FLAG1, Some("mh")),
            "mh-port" => (SchedFlags::FLAG2, Some("mh")),
            _ => {
                return Err(format!(
                    "invalid scheduler flag `{flag}` in -b (flag-1, flag-2, flag-3, \
                     sh-fallback, sh-port, mh-fallback, mh-port)"
                ))
            }
        };
        match only {
            None => common |= bit,
            Some(s) if names.iter().any(|n| n == s) => {
                if s == "sh" {
                    sh |= bit;
                } else {
                    mh |= bit;
                }
            }
            Some(s) => {
                return Err(format!(
                    "incompatible scheduler flag `{flag}`: it applies to {s}, which is not \
                     in --schedulers"
                ))
            }
        }
    }
    Ok(names
        .iter()
        .map(|n| {
            SchedFlags(
                common
                    | match n.as_str() {
                        "sh" => sh,
                        "mh" => mh,
                        _ => 0,
                    },
            )
        })
        .collect())
}

fn positive(value: f64, what: &str) -> Result<f64, String> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(format!("{what} must be a number > 0, not {value}"))
    }
}

impl SchedulersArgs {
    /// Checks the arguments and builds the scenario (drawing or reading the workload).
    ///
    /// # Errors
    /// One line saying what is wrong.
    pub fn plan(&self) -> Result<Plan, String> {
        let names = parse_schedulers(&self.schedulers)?;
        let flags = match &self.sched_flags {
            Some(list) => parse_sched_flags(list, &names)?,
            None => vec![SchedFlags::default(); names.len()],
        };
        if let Some(d) = self.duration {
            positive(d, "--duration")?;
        }
        if !(self.time_wait.is_finite() && self.time_wait >= 0.0) {
            return Err(format!(
                "--time-wait must be a number >= 0, not {}",
                self.time_wait
            ));
        }
        let scenario = match &self.workload {
            Some(path) => {
                let mut workload = read_csv(path).map_err(|e| e.to_string())?;
                let last = workload.arrivals.last().map_or(0.0, |a| a.at);
                let duration = match self.duration {
                    Some(d) => {
                        workload.truncate(d);
                        if workload.arrivals.is_empty() {
                            return Err(format!(
                                "--duration {d}: no connection of {} arrives that early",
                                path.display()
                            ));
                        }
                        d
                    }
                    None => last.floor() + 1.0,
                };
                let (servers, changes) = self.pool(Preset::Hetero, duration)?;
                Scenario {
                    name: format!("workload {}", path.display()),
                    servers,
                    changes,
                    workload,
                    duration,
                    time_wait: self.time_wait,
                }
            }
            None => {
                let preset = self.preset.unwrap_or(Preset::Hetero);
                let duration = self.duration.unwrap_or(PRESET_DURATION);
                let load = positive(self.load.unwrap_or(preset.load()), "--load")?;
                let (servers, changes) = self.pool(preset, duration)?;
                let capacity: u32 = servers.iter().map(|s| s.cores).sum();
                let custom = if self.servers.is_some() || self.changes.is_some() {
                    ", custom pool"
                } else {
                    ""
                };
                Scenario {
                    name: format!("preset {}{custom}", preset.name()),
                    servers,
                    changes,
                    workload: preset_workload(capacity, load, duration).generate(self.seed),
                    duration,
                    time_wait: self.time_wait,
                }
            }
        };
        Ok(Plan {
            scenario,
            schedulers: names.into_iter().zip(flags).collect(),
            seed: self.seed,
            out: self.out.clone(),
            json: self.json,
            timing: !self.no_timing,
        })
    }

    /// The servers and pool changes: `preset`'s, unless --servers / --changes say.
    fn pool(
        &self,
        preset: Preset,
        duration: f64,
    ) -> Result<(Vec<ServerSpec>, Vec<PoolChange>), String> {
        let (mut servers, mut changes) = preset.pool(duration, self.seed);
        if let Some(spec) = &self.servers {
            servers = parse_servers(spec).map_err(|e| format!("--servers: {e}"))?;
        }
        match &self.changes {
            Some(spec) => {
                changes = parse_changes(spec, &servers, duration)
                    .map_err(|e| format!("--changes: {e}"))?
            }
            None => validate_changes(&servers, &changes, duration).map_err(|e| {
                format!(
                    "the {} pool changes do not fit --servers: {e}; give --changes too",
                    preset.name()
                )
            })?,
        }
        Ok((servers, changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<SchedulersArgs, clap::Error> {
        let mut argv = vec!["masq-bench", "schedulers"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Schedulers(a) => a,
        })
    }

    fn plan_err(extra: &[&str]) -> String {
        args(extra).unwrap().plan().unwrap_err()
    }

    #[test]
    fn cli_defaults() {
        let plan = args(&["--duration", "5"]).unwrap().plan().unwrap();
        assert_eq!(plan.scenario.name, "preset hetero");
        assert_eq!(plan.schedulers.len(), 11);
        assert_eq!(plan.out, PathBuf::from("bench-out"));
        assert!(plan.timing && !plan.json);
        assert_eq!(plan.scenario.servers.len(), 6);
        assert_eq!(plan.scenario.changes.len(), 3);
    }

    #[test]
    fn cli_scheduler_names_are_checked() {
        let e = plan_err(&["--schedulers", "rr,wlcc"]);
        assert!(
            e.starts_with("unknown scheduler `wlcc` in --schedulers (known: rr, wrr"),
            "{e}"
        );
        assert!(plan_err(&["--schedulers", "rr,,wlc"]).contains("empty name"));
        assert!(plan_err(&["--schedulers", "rr,rr"]).contains("listed twice"));
    }

    #[test]
    fn cli_sched_flags_go_to_their_scheduler() {
        let plan = args(&[
            "--duration",
            "5",
            "--schedulers",
            "rr,sh,mh",
            "-b",
            "sh-port,mh-fallback,flag-3",
        ])
        .unwrap()
        .plan()
        .unwrap();
        let flags: Vec<u8> = plan.schedulers.iter().map(|(_, f)| f.0).collect();
        assert_eq!(flags, [4, 4 | 2, 4 | 1]);
        let e = plan_err(&["--schedulers", "rr,wlc", "-b", "sh-port"]);
        assert!(
            e.starts_with("incompatible scheduler flag `sh-port`"),
            "{e}"
        );
        let e = plan_err(&["-b", "sh-prt"]);
        assert!(e.starts_with("invalid scheduler flag `sh-prt`"), "{e}");
    }

    #[test]
    fn cli_bad_combinations_and_values() {
        let e = args(&["--preset", "uniform", "--workload", "w.csv"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        let e = args(&["--load", "0.5", "--workload", "w.csv"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert!(args(&["--preset", "nosuch"]).is_err());
        assert!(plan_err(&["--duration", "0"]).contains("--duration must be a number > 0"));
        assert!(plan_err(&["--duration", "nan"]).contains("--duration must be"));
        assert!(plan_err(&["--load=-1"]).contains("--load must be"));
        assert!(plan_err(&["--time-wait=-1"]).contains("--time-wait must be"));
        let custom = args(&["--servers", "8,8", "--changes", "none", "--duration", "5"]);
        assert_eq!(
            custom.unwrap().plan().unwrap().scenario.name,
            "preset hetero, custom pool"
        );
        let e = plan_err(&["--servers", "8,8"]);
        assert!(e.contains("give --changes too"), "{e}");
        let e = plan_err(&["--servers", "8,8", "--changes", "fail:s3@10"]);
        assert!(e.starts_with("--changes: change `fail s3`"), "{e}");
        let e = plan_err(&["--workload", "/nonexistent.csv"]);
        assert!(
            e.starts_with("cannot read workload /nonexistent.csv"),
            "{e}"
        );
    }

    #[test]
    fn cli_workload_file_gets_the_hetero_pool_scaled_to_it() {
        let dir = std::env::temp_dir().join(format!("masq-bench-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("w.csv");
        let mut text = String::from("arrival_s,client_addr,client_port,duration_s,bytes\n");
        for i in 0..400 {
            text += &format!(
                "{}.{:02},10.0.{}.{},{},0.05,1000\n",
                1000 + i / 10,
                (i % 10) * 10,
                i % 7,
                i % 50,
                40000 + i
            );
        }
        std::fs::write(&file, text).unwrap();
        let path = file.to_str().unwrap();
        let plan = args(&["--workload", path]).unwrap().plan().unwrap();
        assert_eq!(plan.scenario.duration, 40.0);
        assert_eq!(plan.scenario.workload.arrivals.len(), 400);
        assert_eq!(plan.scenario.changes[0].at, 10.0);
        let plan = args(&["--workload", path, "--duration", "20", "--changes", "none"])
            .unwrap()
            .plan()
            .unwrap();
        assert_eq!(plan.scenario.workload.arrivals.len(), 200);
        assert!(plan.scenario.changes.is_empty());
        std::fs::write(&file, "0,10.0.0.1,1,0.1,1\n1,10.0.0.1,x,0.1,1\n").unwrap();
        let e = args(&["--workload", path]).unwrap().plan().unwrap_err();
        assert_eq!(
            e,
            format!("{path}:2: client_port `x` is not a port number (0-65535)")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
