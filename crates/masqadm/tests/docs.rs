//! masqadm on its own: what it answers without masqd, and the manual page and shell
//! completions that describe it, checked against the grammar's option table and masq's own
//! options, so that none can fall behind the parser.

use std::path::Path;
use std::process::Command;

/// masq's own words: its commands and `--socket`, then the options of `--trace` and
/// `--capture` (`crates/ctl/src/trace.rs`), and those of `--sim-request` that these do
/// not have (`crates/ctl/src/request.rs`).
const MASQ_COMMANDS: [&str; 5] = [
    "--check",
    "--trace",
    "--capture",
    "--sim-request",
    "--socket",
];
const TRACE_OPTIONS: [(&str, Option<char>); 5] = [
    ("tcp-service", Some('t')),
    ("udp-service", Some('u')),
    ("count", Some('n')),
    ("packets", None),
    ("json", None),
];
const SIM_REQUEST_OPTIONS: [(&str, Option<char>); 1] = [("from", None)];

fn read(path: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Every option name masqadm takes, as `--long` and `-s`.
fn every_option() -> Vec<String> {
    let mut names: Vec<String> = masq_ctl::grammar::option_names()
        .chain(TRACE_OPTIONS)
        .chain(SIM_REQUEST_OPTIONS)
        .flat_map(|(long, short)| {
            std::iter::once(format!("--{long}")).chain(short.map(|s| format!("-{s}")))
        })
        .chain(MASQ_COMMANDS.map(String::from))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether `text` has `word` with none of `inside` on either side (so `--sort` is not
/// found in `--nosort`, nor `-n` in `-nq`).
fn has_word(text: &str, word: &str, inside: impl Fn(char) -> bool) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(&inside) && !after.is_some_and(&inside)
    })
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

fn masqadm(args: &[&str]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_masqadm"))
        .args(args)
        .env("MASQ_SOCKET", "/nonexistent/masqd.sock")
        .output()
        .expect("running masqadm");
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn help_and_version_need_no_daemon() {
    let version = masq_ctl::help::VERSION;
    for args in [
        &["-h"][..],
        &["--help"],
        &["--socket", "/nonexistent", "-h"],
    ] {
        let (stdout, stderr, code) = masqadm(args);
        assert_eq!((stderr.as_str(), code), ("", 0), "masqadm {args:?}");
        assert!(stdout.starts_with(&masq_ctl::help::usage("masqadm")));
        assert!(stdout.contains("\nmasq's own commands (not in ipvsadm):\n"));
        for word in MASQ_COMMANDS {
            assert!(stdout.contains(&format!("  {word} ")), "{word} in -h");
        }
    }
    for args in [&["-v"][..], &["--version"]] {
        let (stdout, stderr, code) = masqadm(args);
        assert_eq!((stderr.as_str(), code), ("", 0), "masqadm {args:?}");
        let own = format!("masqadm v{} (", env!("CARGO_PKG_VERSION"));
        assert!(stdout.starts_with(version), "{stdout}");
        assert!(stdout[version.len()..].starts_with(&own), "{stdout}");
    }
    // Anything else needs masqd, and says where it looked.
    let (_, stderr, code) = masqadm(&["-L", "-n"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cannot reach masqd at /nonexistent/masqd.sock"),
        "{stderr}"
    );
}

#[test]
fn masqs_trace_options_are_the_parsers() {
    for (long, short) in TRACE_OPTIONS {
        let value = matches!(long, "tcp-service" | "udp-service")
            .then_some("192.168.0.10:80")
            .or((long == "count").then_some("3"));
        for name in std::iter::once(format!("--{long}")).chain(short.map(|s| format!("-{s}"))) {
            let args: Vec<String> = ["--trace", &name]
                .into_iter()
                .chain(value)
                .map(String::from)
                .collect();
            assert!(
                masq_ctl::trace::parse(&args).is_ok(),
                "--trace takes {name}"
            );
        }
    }
}

#[test]
fn the_manual_page_names_every_option() {
    // roff writes a hyphen in an option's name as `\-`.
    let page = read("docs/man/masqadm.8").replace("\\-", "-");
    let missing: Vec<String> = every_option()
        .into_iter()
        .filter(|o| !has_word(&page, o, is_name_char))
        .collect();
    assert!(missing.is_empty(), "docs/man/masqadm.8 lacks {missing:?}");
    // masq's additions are marked as such.
    for word in MASQ_COMMANDS {
        let marked = page
            .split(".TP\n")
            .any(|item| item.contains(word) && item.contains("(masq)"));
        assert!(marked, "{word} is not marked (masq) in docs/man/masqadm.8");
    }
}

#[test]
fn the_bash_and_zsh_completions_offer_every_option() {
    for file in ["completions/masqadm.bash", "completions/_masqadm"] {
        let script = read(file);
        let missing: Vec<String> = every_option()
            .into_iter()
            .filter(|o| !has_word(&script, o, is_name_char))
            .collect();
        assert!(missing.is_empty(), "{file} lacks {missing:?}");
    }
}

#[test]
fn the_fish_completions_offer_every_option() {
    let script = read("completions/masqadm.fish");
    let missing: Vec<String> = every_option()
        .into_iter()
        .filter(|o| {
            let fish = match o.strip_prefix("--") {
                Some(long) => format!("-l {long}"),
                None => format!("-s {}", &o[1..]),
            };
            !has_word(&script, &fish, is_name_char)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "completions/masqadm.fish lacks {missing:?}"
    );
}
