//! The README's commands, run as a reader would type them.
//!
//! Every command of README.md's ```` ```sh ```` blocks is in [`KNOWN`]: run in a lab of the
//! walk-through's own, or skipped with the reason. A README command that is not there
//! fails the test, and so does an entry the README no longer has: a new command is either
//! run here or listed with why not.
//!
//! The commands run in the README's order, in the lab that its `scripts/lab.sh up`
//! builds (under a prefix of this test's own, with the binaries of this build), which its
//! `scripts/lab.sh down` removes at the end — and the walk-through's guard if a step
//! fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::describe;

/// How the walk-through runs one README command.
enum Step {
    /// `scripts/lab.sh …` as written, from the repository's root, for this test's lab.
    /// `down` is kept for the end: the other sections need the lab.
    Script,
    /// A shell line run in the director's namespace (`scripts/lab.sh exec dir bash -ec
    /// LINE`: masqadm on the PATH, on the lab's socket), in a scratch directory for the
    /// files it writes; each of its commands must succeed, with nothing on stderr.
    Director,
    /// As [`Step::Director`], starting from an empty table: the first command of a README
    /// section that sets up a director of its own.
    DirectorAfresh,
    /// A synopsis (`[OPTION]`s): this command runs in the director instead while the
    /// client makes one request, and must print what it promises.
    Trace(&'static str),
    /// Not run, for the reason given.
    Skip(&'static str),
}

/// Every command of the README's `sh` blocks, continuation lines joined, comments and
/// repeated blanks dropped.
const KNOWN: &[(&str, Step)] = &[
    (
        "sudo scripts/quickstart.sh",
        Step::Skip("installs Debian packages and builds the release binaries, then runs lab.sh up, demo and down, which this test runs itself"),
    ),
    ("sudo scripts/test.sh", Step::Skip("runs this very test")),
    ("scripts/lab.sh up", Step::Script),
    ("scripts/lab.sh demo", Step::Script),
    ("scripts/lab.sh exec dir masqadm -L -n", Step::Script),
    ("scripts/lab.sh exec client curl -s http://192.168.0.10/", Step::Script),
    ("scripts/lab.sh down", Step::Script),
    ("masqadm -A -t 192.168.0.10:80 -s rr", Step::DirectorAfresh),
    ("masqadm -a -t 192.168.0.10:80 -r 192.168.100.7 -m", Step::Director),
    ("masqadm -a -t 192.168.0.10:80 -r 192.168.100.9 -m", Step::Director),
    ("masqadm -E -t 192.168.0.10:80 -s wrr", Step::Director),
    ("masqadm -e -t 192.168.0.10:80 -r 192.168.100.7 -m -w 3", Step::Director),
    ("masqadm -L -n ; masqadm -S -n > rules ; masqadm -C ; masqadm -R < rules", Step::Director),
    (
        "masqadm --trace [-t VIP:PORT] [--count N] [--packets] [--json]",
        Step::Trace("masqadm --trace -t 192.168.0.10:80 --count 1 --packets --json"),
    ),
    (
        "cargo build --release -p masq-bench",
        Step::Skip("a release build, minutes on the shared CPUs; the scheduler benchmark is not the lab"),
    ),
    (
        "target/release/masq-bench schedulers --preset hetero",
        Step::Skip("needs that release build; crates/bench's tests run the same code"),
    ),
    (
        "cargo bench --bench schedulers",
        Step::Skip("a benchmark: it measures for minutes"),
    ),
    (
        "cargo bench --bench conntable",
        Step::Skip("a benchmark: it measures for minutes"),
    ),
    (
        "sudo scripts/bench.sh",
        Step::Skip("builds its own lab, installs HAProxy, wrk and trafgen, and runs for about 19 minutes"),
    ),
    (
        "sudo scripts/bench.sh --contenders nftables,masq-xdp --rounds 2",
        Step::Skip("as scripts/bench.sh: a measurement of minutes with tools of its own"),
    ),
    ("sysctl -w net.ipv4.ip_forward=0", Step::Director),
    (
        "masqd --vip-iface eth0 --dip-iface eth1 [--vip-gateway 203.0.113.1] [--rules /etc/masq/rules --save-on-exit]",
        Step::Skip("a real host's interfaces; lab.sh up starts this masqd on the lab's, and tests/crash_recovery.rs runs --rules with --save-on-exit"),
    ),
    (
        "scripts/package.sh && sudo apt install ./target/debian/masq_0.1.0_amd64.deb",
        Step::Skip("installs into this machine's own root; tests/package.rs builds the package and installs, upgrades and purges it in a throwaway root"),
    ),
    (
        "sudoedit /etc/default/masqd",
        Step::Skip("an editor on the installed package's defaults file; tests/package.rs checks the file the package ships"),
    ),
    (
        "sudo systemctl enable --now masqd",
        Step::Skip("needs systemd as PID 1; tests/service.rs starts masqd as the unit does (its user, its ambient capabilities, NOTIFY_SOCKET) and tests/package.rs verifies the unit with systemd-analyze"),
    ),
];

/// The commands of `readme`'s `sh` blocks, in order.
fn sh_commands(readme: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in readme.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (in_sh, fence) {
            (false, Some(lang)) => in_sh = lang.trim() == "sh",
            (false, None) => {}
            (true, Some(_)) => in_sh = false,
            (true, None) => {
                let code = match line.find(" #") {
                    Some(at) => &line[..at],
                    None if line.trim_start().starts_with('#') => "",
                    None => line,
                };
                let (code, continued) = match code.trim_end().strip_suffix('\\') {
                    Some(head) => (head, true),
                    None => (code, false),
                };
                pending.push(' ');
                pending.push_str(code);
                if !continued {
                    let command = pending.split_whitespace().collect::<Vec<_>>().join(" ");
                    if !command.is_empty() {
                        commands.push(command);
                    }
                    pending.clear();
                }
            }
        }
    }
    commands
}

#[test]
fn readme_commands_are_read_as_typed() {
    let readme = "text\n```sh\na -b   # comment\n# only a comment\nc \\\n   d\n```\n```\nnot sh\n```\n```sh\ne\n```\n";
    assert_eq!(sh_commands(readme), ["a -b", "c d", "e"]);
}

/// The lab the README's `scripts/lab.sh up` builds, for this test: its own prefix, state
/// directory and binaries. Dropping it runs `scripts/lab.sh down` unless the walk-through
/// got there.
struct WalkthroughLab {
    prefix: String,
    state: PathBuf,
    bin_dir: PathBuf,
    /// Where the director's commands write their files (`> rules`).
    scratch: PathBuf,
    down: bool,
}

impl WalkthroughLab {
    fn new() -> WalkthroughLab {
        common::require_root_and_iproute2();
        common::require_program("curl", "curl");
        let prefix = format!("mqrw{:04x}", std::process::id() & 0xffff);
        let taken = std::fs::read_dir("/run/netns").is_ok_and(|dir| {
            dir.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{prefix}-"))
            })
        });
        assert!(!taken, "namespaces of prefix {prefix} exist already");
        let state = std::env::temp_dir().join(format!("masq-lab-{prefix}"));
        let scratch = std::env::temp_dir().join(format!("masq-readme-{prefix}"));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).expect("a scratch directory");
        WalkthroughLab {
            prefix,
            state,
            bin_dir: common::bin_dir(),
            scratch,
            down: false,
        }
    }

    fn repo() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    /// `command` through bash from the repository's root, with this lab's environment.
    fn shell(&self, command: &str) -> Output {
        Command::new("timeout")
            .args(["-k", "5", "300", "bash", "-c", command])
            .current_dir(Self::repo())
            .env("MASQ_LAB_PREFIX", &self.prefix)
            .env("MASQ_LAB_STATE", &self.state)
            .env("MASQ_BIN_DIR", &self.bin_dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {command}: {e}"))
    }

    /// `LINE` in the director's namespace, through `lab.sh exec dir bash -ec` (the first
    /// command that fails ends it), in the scratch directory.
    fn director(&self, line: &str) -> Output {
        let mut command = self.director_command(line);
        command
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {line} in the director: {e}"))
    }

    fn director_command(&self, line: &str) -> Command {
        let mut command = Command::new("timeout");
        command
            .args(["-k", "5", "120", "bash"])
            .arg(Self::repo().join("scripts/lab.sh"))
            .args(["exec", "dir", "bash", "-ec", line])
            .current_dir(&self.scratch)
            .env("MASQ_LAB_PREFIX", &self.prefix)
            .env("MASQ_LAB_STATE", &self.state)
            .env("MASQ_BIN_DIR", &self.bin_dir);
        command
    }

    fn down(&mut self) -> Output {
        self.down = true;
        self.shell("scripts/lab.sh down")
    }
}

impl Drop for WalkthroughLab {
    fn drop(&mut self) {
        if !self.down {
            let out = self.down();
            if !out.status.success() {
                eprintln!("scripts/lab.sh down failed:\n{}", describe(&out));
            }
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// Insists that `out` succeeded.
fn succeeded(what: &str, out: &Output) {
    assert!(out.status.success(), "{what} failed:\n{}", describe(out));
}

/// The trace synopsis, run as `concrete` while the client makes one request: one
/// connection's stages, as JSON lines, and the trace ends by itself (`--count 1`).
fn trace_one_request(lab: &WalkthroughLab, concrete: &str) {
    let mut tracer = lab
        .director_command(concrete)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the trace");
    // The trace attaches within a few milliseconds; give it a generous head start.
    std::thread::sleep(Duration::from_millis(500));
    let curl = lab.shell("scripts/lab.sh exec client curl -sS --max-time 5 http://192.168.0.10/");
    succeeded("the request during the trace", &curl);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tracer.try_wait().expect("the trace's status").is_none() {
        if Instant::now() > deadline {
            let _ = tracer.kill();
            panic!("{concrete} did not end after one connection within 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = tracer.wait_with_output().expect("the trace's output");
    succeeded(concrete, &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        events.len() >= 4,
        "fewer events than one connection's four stages:\n{stdout}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn every_readme_command_runs_as_written_or_is_listed_as_skipped() {
    let readme = std::fs::read_to_string(WalkthroughLab::repo().join("README.md"))
        .expect("reading README.md");
    let commands = sh_commands(&readme);
    let unknown: Vec<&String> = commands
        .iter()
        .filter(|c| !KNOWN.iter().any(|(known, _)| known == c))
        .collect();
    assert!(
        unknown.is_empty(),
        "README.md has commands this test neither runs nor skips; add them to KNOWN:\n{unknown:#?}"
    );
    let gone: Vec<&str> = KNOWN
        .iter()
        .map(|(known, _)| *known)
        .filter(|known| !commands.iter().any(|c| c == known))
        .collect();
    assert!(
        gone.is_empty(),
        "KNOWN lists commands README.md no longer has; remove them:\n{gone:#?}"
    );

    let mut lab = WalkthroughLab::new();
    let mut down_at_the_end = None;
    for command in &commands {
        let step = &KNOWN
            .iter()
            .find(|(known, _)| known == command)
            .expect("every command is known")
            .1;
        let kept_for_the_end = command == "scripts/lab.sh down";
        match step {
            Step::Skip(why) => eprintln!("skipped: {command}: {why}"),
            _ if kept_for_the_end => eprintln!("kept for the end: {command}"),
            _ => eprintln!("running: {command}"),
        }
        match step {
            Step::Skip(_) => {}
            Step::Script if kept_for_the_end => down_at_the_end = Some(command),
            Step::Script => {
                let out = lab.shell(command);
                succeeded(command, &out);
                if command.contains(" curl ") {
                    let body = String::from_utf8_lossy(&out.stdout);
                    // Panics unless the body is exactly one real server's answer.
                    common::seed::answered_by(&body);
                }
            }
            Step::DirectorAfresh | Step::Director => {
                if matches!(step, Step::DirectorAfresh) {
                    succeeded("masqadm -C", &lab.director("masqadm -C"));
                }
                let out = lab.director(command);
                succeeded(command, &out);
                assert!(out.stderr.is_empty(), "{command}:\n{}", describe(&out));
            }
            Step::Trace(concrete) => trace_one_request(&lab, concrete),
        }
    }
    // The masqadm section's save and restore went through its rules file.
    let rules = std::fs::read_to_string(lab.scratch.join("rules")).expect("the saved rules");
    assert!(
        rules.contains("-a -t 192.168.0.10:80 -r 192.168.100.7:80 -m -w 3"),
        "{rules}"
    );
    let down = down_at_the_end.expect("the README takes the lab down");
    let out = lab.down();
    succeeded(down, &out);
    let left = std::fs::read_dir("/run/netns").is_ok_and(|dir| {
        dir.flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{}-", lab.prefix))
        })
    });
    assert!(
        !left,
        "scripts/lab.sh down left namespaces of {}",
        lab.prefix
    );
}
