//! No input makes the language panic: random argument vectors built from ipvsadm's own
//! vocabulary (so they reach deep into validation and execution) and random restore input.

use proptest::prelude::*;

use crate::{director, now, run_full};

const WORDS: &[&str] = &[
    "-A",
    "-E",
    "-D",
    "-C",
    "-L",
    "-l",
    "-a",
    "-e",
    "-d",
    "-R",
    "-S",
    "-Z",
    "-h",
    "-v",
    "--set",
    "--start-daemon",
    "--stop-daemon",
    "master",
    "backup",
    "-t",
    "-u",
    "-f",
    "--sctp-service",
    "-6",
    "-s",
    "-p",
    "-M",
    "--pe",
    "-b",
    "-o",
    "-r",
    "-g",
    "-i",
    "-m",
    "-w",
    "-x",
    "-y",
    "-c",
    "-n",
    "-X",
    "--timeout",
    "--daemon",
    "--stats",
    "--rate",
    "--thresholds",
    "--persistent-conn",
    "--tun-info",
    "--nosort",
    "--sort",
    "--exact",
    "--syncid",
    "--sync-maxlen",
    "--mcast-interface",
    "--mcast-group",
    "--mcast-port",
    "--mcast-ttl",
    "--tun-type",
    "--tun-port",
    "--tun-nocsum",
    "--tun-csum",
    "--tun-remcsum",
    "10.0.0.1:80",
    "10.0.0.1",
    "[2001:db8::1]:80",
    "2001:db8::9",
    "localhost:http",
    "7",
    "4294967295",
    "0",
    "-1",
    "360",
    "rr",
    "wlc",
    "sh",
    "mh",
    "none",
    "sip",
    "gue",
    "gre",
    "ipip",
    "sh-port,flag-3",
    "mh-fallback",
    "255.255.255.0",
    "64",
    "--",
    "-",
    "#",
    "",
    "-Ln",
    "-lnc",
    "-Sn",
    "-t=10.0.0.1:80",
    "--tcp-service=10.0.0.1:80",
    "-mw",
    "=",
    "é",
];

fn argv() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(WORDS).prop_map(str::to_string),
            1 => any::<String>(),
        ],
        0..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_argv_never_panics(args in argv(), stdin in any::<String>()) {
        let d = director();
    let m = d.control(now());
        // Give the sequence something to act on.
        let _ = run_full(&m, "ipvsadm", &["-A", "-t", "10.0.0.1:80"], None);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run_full(&m, "ipvsadm", &refs, Some(&stdin));
        prop_assert!([0, 1, 2, 255].contains(&o.code));
        // Every failure says something; every success is silent on stderr unless a restore
        // line failed on the way.
        if o.code == 2 || o.code == 1 {
            prop_assert!(!o.stderr.is_empty());
        }
    }

    #[test]
    fn random_restore_input_never_panics(lines in prop::collection::vec(argv(), 0..6)) {
        let d = director();
    let m = d.control(now());
        let input: String = lines.iter().map(|l| l.join(" ") + "\n").collect();
        let o = run_full(&m, "ipvsadm", &["-R"], Some(&input));
        prop_assert!([0, 1, 2, 255].contains(&o.code));
    }
}
