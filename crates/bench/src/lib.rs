//! masq-bench: replays workloads through masq's real schedulers (`masq_core::sched`) on a
//! virtual clock and reports, per scheduler, how evenly the servers are loaded, how many
//! clients a pool change moves, how long connections take, how fast a decision is and how
//! much memory the scheduler holds — as a terminal table, `results.json` and SVG plots.
//!
//! The parts: [`workload`] (synthetic or CSV connections), [`scenario`] (servers, pool
//! changes, presets), [`service`] (the virtual service and its scheduler), [`sim`] (the
//! event-driven run of one scheduler), [`report`] (JSON and table), [`svg`] (plots),
//! [`cli`] (the command line and its checks).
#![deny(unsafe_code)]

pub mod alloc;
pub mod cli;
pub mod progress;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod service;
pub mod sim;
pub mod stats;
pub mod svg;
pub mod workload;

use std::path::{Path, PathBuf};
use std::time::Instant;

use cli::Plan;
use progress::Progress;
use report::Report;
use sim::RunConfig;

/// Samples of the per-server counters per run (the plots' resolution).
pub const SAMPLES: usize = 400;

/// Runs every scheduler of `plan` on its scenario, showing a progress bar on stderr when
/// `show_progress`.
pub fn execute(plan: &Plan, show_progress: bool) -> Report {
    let started = Instant::now();
    let overhead = plan.timing.then(sim::timer_overhead_ns);
    let mut progress = Progress::new(plan.schedulers.len(), show_progress);
    let mut outcomes = Vec::with_capacity(plan.schedulers.len());
    for (i, (name, flags)) in plan.schedulers.iter().enumerate() {
        let config = RunConfig {
            scenario: &plan.scenario,
            scheduler: name,
            flags: *flags,
            seed: plan.seed,
            samples: SAMPLES,
        };
        outcomes.push(sim::run(&config, &mut |f| progress.update(i, name, f)));
    }
    progress.finish();
    Report::new(
        &plan.scenario,
        plan.seed,
        &outcomes,
        overhead,
        started.elapsed().as_secs_f64(),
        plan.timing.then(alloc::peak_rss_bytes).flatten(),
    )
}

/// Writes `results.json`, `load.svg`, `balance.svg` and `moved.svg` into `dir` (created if
/// needed); returns their paths.
///
/// # Errors
/// The directory or a file cannot be written; the error names it.
pub fn write_outputs(report: &Report, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let files = [
        ("results.json", report.to_json()),
        ("load.svg", svg::load_over_time(report)),
        ("balance.svg", svg::balance(report)),
        ("moved.svg", svg::moved(report)),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
