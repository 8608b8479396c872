//! `masq-bench schedulers` end to end: reproducibility, what the outputs hold, and how the
//! binary answers bad input.

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use masq_bench::cli::{Cli, Command as Sub, Plan};

fn plan(args: &[&str]) -> Plan {
    let mut argv = vec!["masq-bench", "schedulers"];
    argv.extend_from_slice(args);
    let Sub::Schedulers(a) = Cli::try_parse_from(argv).expect("valid arguments").command;
    a.plan().expect("a valid plan")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("masq-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn same_seed_gives_identical_json() {
    let args = ["--duration", "30", "--no-timing", "--seed", "5"];
    let a = masq_bench::execute(&plan(&args), false).to_json();
    let b = masq_bench::execute(&plan(&args), false).to_json();
    assert_eq!(a, b);
    let v: serde_json::Value = serde_json::from_str(&a).unwrap();
    assert!(v.get("measured").is_none());
    assert!(v["schedulers"][0].get("measured").is_none());
    assert!(v["schedulers"][0]["balance"]["cv_load"].as_f64().unwrap() > 0.0);
    let c = masq_bench::execute(
        &plan(&["--duration", "30", "--no-timing", "--seed", "6"]),
        false,
    )
    .to_json();
    assert_ne!(a, c);
}

#[test]
fn timing_only_adds_the_measured_objects() {
    let args = ["--duration", "10", "--schedulers", "rr,mh,twos"];
    let strip = |json: String| {
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v.as_object_mut().unwrap().remove("measured");
        for s in v["schedulers"].as_array_mut().unwrap() {
            let m = s
                .as_object_mut()
                .unwrap()
                .remove("measured")
                .expect("measured");
            assert!(m["decisions_per_s"].as_f64().unwrap() > 0.0);
        }
        v
    };
    let timed = strip(masq_bench::execute(&plan(&args), false).to_json());
    let mut untimed_args = args.to_vec();
    untimed_args.push("--no-timing");
    let untimed: serde_json::Value =
        serde_json::from_str(&masq_bench::execute(&plan(&untimed_args), false).to_json()).unwrap();
    assert_eq!(timed, untimed);
}

#[test]
fn wrr_shares_follow_the_weights() {
    let report = masq_bench::execute(
        &plan(&[
            "--duration",
            "30",
            "--schedulers",
            "wrr",
            "--changes",
            "none",
            "--no-timing",
        ]),
        false,
    );
    let wrr = &report.schedulers[0];
    assert_eq!(wrr.unscheduled, 0);
    let weights = [16.0, 16.0, 8.0, 8.0, 4.0, 4.0];
    for (server, w) in wrr.servers.iter().zip(weights) {
        let want = w / 56.0;
        assert!(
            (server.share - want).abs() < 0.001,
            "{}: {} vs {want}",
            server.name,
            server.share
        );
    }
}

#[test]
fn writes_the_table_the_json_and_the_plots() {
    let dir = temp_dir("out");
    let report = masq_bench::execute(&plan(&["--duration", "20", "--preset", "churn"]), false);
    let written = masq_bench::write_outputs(&report, &dir).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["results.json", "load.svg", "balance.svg", "moved.svg"]
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["scenario"]["name"], "preset churn");
    assert_eq!(json["schedulers"].as_array().unwrap().len(), 11);
    assert_eq!(
        json["scenario"]["pool_changes"].as_array().unwrap().len(),
        19
    );
    let load = std::fs::read_to_string(dir.join("load.svg")).unwrap();
    assert!(load.starts_with("<svg "), "{}", &load[..40]);
    assert!(load.trim_end().ends_with("</svg>"));
    assert_eq!(load.matches("CV load").count(), 11);
    assert!(load.contains("<polyline"));
    let table = report.table();
    for name in [
        "rr", "wrr", "lc", "wlc", "sed", "nq", "fo", "ovf", "twos", "sh", "mh",
    ] {
        assert!(
            table
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name} missing from\n{table}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn masq_bench(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_masq-bench"))
        .args(args)
        .output()
        .expect("masq-bench runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn binary_answers_bad_input_with_one_clear_line() {
    let dir = temp_dir("bad");
    let csv = dir.join("trace.csv");
    std::fs::write(
        &csv,
        "arrival_s,client_addr,client_port,duration_s,bytes\n0.0,10.0.0.1,40000,0.02,100\n0.5,10.0.0.x,40001,0.02,100\n",
    )
    .unwrap();
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    let csv_path = csv.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["schedulers", "--schedulers", "rr,nosuch", "--out", out],
            "masq-bench: unknown scheduler `nosuch` in --schedulers",
        ),
        (
            &["schedulers", "--workload", csv_path, "--out", out],
            ":3: client_addr `10.0.0.x` is not an IPv4 address",
        ),
        (
            &["schedulers", "--preset", "hetero", "--workload", csv_path],
            "cannot be used with",
        ),
        (
            &["schedulers", "--schedulers", "rr", "-b", "mh-port"],
            "incompatible scheduler flag `mh-port`",
        ),
        (
            &["schedulers", "--changes", "remove:s9@10"],
            "no server `s9` in the pool then",
        ),
    ];
    for (args, want) in cases {
        let (code, stdout, stderr) = masq_bench(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
    assert!(!dir.join("out").exists(), "nothing written on bad input");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn binary_replays_a_workload_file_and_prints_json() {
    let dir = temp_dir("file");
    let csv = dir.join("trace.csv");
    let mut text = String::from("# arrival_s,client_addr,client_port,duration_s,bytes\n");
    for i in 0..2000 {
        text += &format!(
            "{:.3},198.51.100.{},{},0.{:03},{}\n",
            f64::from(i) * 0.01,
            i % 200,
            30000 + i,
            20 + i % 50,
            1000 * (i % 7)
        );
    }
    std::fs::write(&csv, text).unwrap();
    let out = dir.join("out");
    let (code, stdout, stderr) = masq_bench(&[
        "schedulers",
        "--workload",
        csv.to_str().unwrap(),
        "--schedulers",
        "wlc,mh",
        "-b",
        "mh-fallback",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(json["scenario"]["connections"], 2000);
    assert_eq!(json["scenario"]["clients"], 200);
    assert_eq!(json["scenario"]["duration_s"], 20.0);
    assert_eq!(json["schedulers"][1]["flags"][0], "mh-fallback");
    assert_eq!(json["schedulers"][1]["unscheduled"], 0);
    assert!(
        json["schedulers"][0]["sched_mem_bytes"].is_u64(),
        "measured in the binary"
    );
    assert!(out.join("load.svg").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
