//! `masq-bench schedulers`: see the crate documentation and
//! docs/benchmarking-schedulers.md.
#![deny(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use masq_bench::cli::{Cli, Command};

#[global_allocator]
static ALLOC: masq_bench::alloc::Counting = masq_bench::alloc::Counting;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Schedulers(args) = cli.command;
    let plan = match args.plan() {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("masq-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let report = masq_bench::execute(&plan, std::io::stderr().is_terminal());
    let written = match masq_bench::write_outputs(&report, &plan.out) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("masq-bench: {e:#}");
            return ExitCode::from(1);
        }
    };
    if plan.json {
        print!("{}", report.to_json());
    } else {
        print!("{}", report.table());
        let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        println!("\nwrote {}", names.join(", "));
    }
    ExitCode::SUCCESS
}
