//! The manual pages and shell completions as the tools that read them see them: groff
//! renders both pages without a warning, bash sources the completions and completes with
//! them, fish and zsh accept their syntax. (Which options they name is checked without
//! these tools, in crates/masqd/src/cli_docs.rs and crates/masqadm/tests/docs.rs.)

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{describe, require_program};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

#[test]
#[ignore = "needs groff and man-db: scripts/test.sh installs them and runs it"]
fn the_manual_pages_render_without_warnings() {
    require_program("groff", "groff-base");
    require_program("man", "man-db");
    for page in ["docs/man/masqd.8", "docs/man/masqadm.8"] {
        let path = repo(page);
        let path = path.to_str().unwrap();
        let groff = run("groff", &["-man", "-Tutf8", "-ww", "-z", path]);
        assert!(
            groff.status.success() && groff.stderr.is_empty(),
            "groff -ww {page}:\n{}",
            describe(&groff)
        );
        // What lintian runs on an installed page.
        let man = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", path])
            .env("MANWIDTH", "80")
            .output()
            .expect("running man");
        assert!(
            man.status.success() && man.stderr.is_empty(),
            "man --warnings -l {page}:\n{}",
            describe(&man)
        );
        let text = run("man", &["-l", path]);
        let name = Path::new(page).file_stem().unwrap().to_str().unwrap();
        let shown = String::from_utf8_lossy(&text.stdout);
        assert!(
            shown.contains("NAME") && shown.contains(&format!("{name} - ")),
            "man -l {page} shows:\n{shown}"
        );
    }
}

/// Fails unless `shell` (run with `check`, its syntax-only flag) accepts `script`.
fn assert_parses(shell: &str, check: &str, script: &str) {
    let out = run(shell, &[check, script]);
    assert!(
        out.status.success(),
        "{shell} {check} {script}:\n{}",
        describe(&out)
    );
}

/// What bash's completion function for `command` offers for the words of `line` (the
/// last word is the one being completed).
fn bash_completes(script: &str, command: &str, line: &[&str]) -> Vec<String> {
    let words: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source {script} || exit 3
         spec=$(complete -p {command}) || exit 4
         function=$(sed -E 's/.* -F ([^ ]+) .*/\\1/' <<<\"$spec\")
         COMP_WORDS=({words})
         COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
         COMP_LINE=\"${{COMP_WORDS[*]}}\"
         COMP_POINT=${{#COMP_LINE}}
         \"$function\" {command} \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        words = words.join(" ")
    );
    let out = run("bash", &["-c", &program]);
    assert!(
        out.status.success(),
        "completing {line:?} with {script}:\n{}",
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
#[ignore = "needs bash: scripts/test.sh runs it"]
fn bash_completes_with_both_scripts() {
    require_program("bash", "bash");
    for script in ["completions/masqd.bash", "completions/masqadm.bash"] {
        assert_parses("bash", "-n", script);
    }
    let offered = bash_completes("completions/masqd.bash", "masqd", &["masqd", "--io", ""]);
    assert_eq!(offered, ["socket", "ring", "pnet", "xdp"]);
    let offered = bash_completes("completions/masqd.bash", "masqd", &["masqd", "--vip-g"]);
    assert_eq!(offered, ["--vip-gateway"]);
    let masqadm = |line: &[&str]| bash_completes("completions/masqadm.bash", "masqadm", line);
    assert_eq!(
        masqadm(&["masqadm", "-E", "-t", "192.168.0.10:80", "-s", "w"]),
        ["wrr", "wlc"]
    );
    assert_eq!(masqadm(&["masqadm", "--tr"]), ["--trace"]);
    assert_eq!(
        masqadm(&["masqadm", "--socket", "/run/masq/masqd.sock", "--ch"]),
        ["--check"]
    );
    assert_eq!(
        masqadm(&["masqadm", "--trace", "--p"]),
        ["--packets"],
        "--trace's own options"
    );
    assert_eq!(masqadm(&["masqadm", "-L", "--nos"]), ["--nosort"]);
}

#[test]
#[ignore = "needs fish: scripts/test.sh installs it and runs it"]
fn fish_completes_with_both_scripts() {
    require_program("fish", "fish");
    for script in ["completions/masqd.fish", "completions/masqadm.fish"] {
        assert_parses("fish", "--no-execute", script);
    }
    let complete = |script: &str, line: &str| -> Vec<String> {
        let program = format!("source {script}; and complete -C'{line}'");
        let out = run("fish", &["--no-config", "-c", &program]);
        assert!(
            out.status.success(),
            "fish completing {line:?}:\n{}",
            describe(&out)
        );
        let mut offered: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect();
        offered.sort();
        offered
    };
    assert_eq!(
        complete("completions/masqd.fish", "masqd --ring-format "),
        ["v2", "v3"]
    );
    assert_eq!(
        complete(
            "completions/masqadm.fish",
            "masqadm -A -t 192.168.0.10:80 --sched-f"
        ),
        ["--sched-flags"]
    );
    assert_eq!(
        complete("completions/masqadm.fish", "masqadm --trace --j"),
        ["--json"]
    );
}

#[test]
#[ignore = "needs zsh: scripts/test.sh installs it and runs it"]
fn zsh_reads_both_scripts() {
    require_program("zsh", "zsh");
    for (script, function) in [
        ("completions/_masqd", "_masqd"),
        ("completions/_masqadm", "_masqadm"),
    ] {
        assert_parses("zsh", "-n", script);
        // compinit finds the function on the fpath, as the package installs it.
        let program = format!(
            "fpath=(completions $fpath); autoload -U compinit; compinit -u -D; \
             autoload -Uz {function} && whence -w {function} && [[ $_comps[{name}] == {function} ]]",
            name = function.trim_start_matches('_')
        );
        let loaded = run("zsh", &["-f", "-c", &program]);
        assert!(
            loaded.status.success(),
            "zsh does not register {script}:\n{}",
            describe(&loaded)
        );
    }
}
