//! masqd as a process: the one `scripts/lab.sh` started (its pid, what it uses, stopping
//! it with a signal, its kernel guard tables), and one a test starts itself on the lab's
//! interfaces ([`Masqd`]) to watch a start, a stop or a crash.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{describe, Lab};

/// Sends `signal` (`-TERM`, `-KILL`, …) to process `pid`.
pub fn signal_pid(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill {signal} {pid}");
}

/// The pid of the masqd `scripts/lab.sh` started, from its pid file.
pub fn lab_masqd_pid(lab: &Lab) -> u32 {
    std::fs::read_to_string(lab.state_dir().join("masqd.pid"))
        .expect("masqd's pid file")
        .trim()
        .parse()
        .expect("a pid")
}

/// Whether any thread of process `pid` still runs (its leader may be a zombie while the
/// others still release what they held: sockets, the instance lock).
pub fn running(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            stat.rsplit(") ")
                .next()
                .is_some_and(|s| !s.starts_with('Z') && !s.starts_with('X'))
        })
    })
}

/// Sends `signal` to the masqd `lab.sh` started and waits (up to 5 s) until it is gone;
/// how long that took.
pub fn stop_lab_masqd(lab: &Lab, signal: &str) -> Duration {
    let pid = lab_masqd_pid(lab);
    let asked = Instant::now();
    signal_pid(pid, signal);
    while running(pid) {
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "masqd survived kill {signal} for 5 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    asked.elapsed()
}

/// The kernel guard tables in the director's namespace.
pub fn guard_tables(lab: &Lab) -> Vec<String> {
    let out = lab.exec("dir", &["nft", "list", "tables", "netdev"]);
    assert!(out.status.success(), "nft list tables: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("table netdev "))
        .filter(|t| t.starts_with("masq_guard"))
        .map(String::from)
        .collect()
}

/// masqd's resident memory and open descriptors.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub rss_kib: u64,
    pub fds: usize,
}

impl Usage {
    /// What the masqd `scripts/lab.sh` started uses now.
    ///
    /// # Panics
    ///
    /// When it does not run.
    pub fn of_masqd(lab: &Lab) -> Usage {
        let pid = lab_masqd_pid(lab);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("masqd runs");
        let rss_kib = status
            .lines()
            .find_map(|l| {
                l.strip_prefix("VmRSS:")?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .expect("VmRSS in /proc/PID/status");
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("masqd's descriptors")
            .count();
        Usage { rss_kib, fds }
    }

    /// The larger of each.
    pub fn max(self, other: Usage) -> Usage {
        Usage {
            rss_kib: self.rss_kib.max(other.rss_kib),
            fds: self.fds.max(other.fds),
        }
    }
}

/// A masqd a test starts in the lab's director namespace, on the lab's interfaces (the
/// lab's own one stopped, or still running for a refused start). Stopped with SIGTERM,
/// then SIGKILL, when it drops.
pub struct Masqd {
    child: Child,
    log: PathBuf,
}

impl Masqd {
    /// Starts masqd on the lab's socket with `extra` arguments, logging to
    /// `STATE/<label>.log`, and waits until it answers there.
    ///
    /// # Panics
    ///
    /// When it exits or does not answer within 20 s.
    pub fn start(lab: &Lab, label: &str, extra: &[&str]) -> Masqd {
        let mut masqd = Masqd::spawn(lab, label, extra, &[]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while lab.masqadm(&["-L", "-n"]).2 != 0 {
            if let Ok(Some(status)) = masqd.child.try_wait() {
                panic!("masqd exited ({status}) at start:\n{}", masqd.log());
            }
            assert!(
                Instant::now() < deadline,
                "masqd did not answer within 20 s:\n{}",
                masqd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        masqd
    }

    /// Starts masqd on the lab's socket with `extra` arguments and `env`.
    pub fn spawn(lab: &Lab, label: &str, extra: &[&str], env: &[(&str, &str)]) -> Masqd {
        Masqd::spawn_on(lab, label, &lab.state_dir().join("masqd.sock"), extra, env)
    }

    /// Starts masqd on `socket` with `extra` arguments and `env`, logging to
    /// `STATE/<label>.log`.
    pub fn spawn_on(
        lab: &Lab,
        label: &str,
        socket: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Masqd {
        let log = lab.state_dir().join(format!("{label}.log"));
        let out = File::create(&log).expect("masqd's log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &format!("{}-dir", lab.prefix())])
            .arg(lab.bin("masqd"))
            .args([
                "--vip-iface",
                &lab.iface("ext"),
                "--dip-iface",
                &lab.iface("int"),
            ])
            .arg("--socket")
            .arg(socket)
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("a log file handle"))
            .stderr(out)
            .spawn()
            .expect("starting masqd");
        Masqd { child, log }
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends it `signal` (`-TERM`, `-HUP`, …).
    pub fn signal(&self, signal: &str) {
        signal_pid(self.child.id(), signal);
    }

    /// Waits up to `within` for it to exit.
    pub fn exited_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Masqd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {}\n{}", self.log.display(), self.log());
        }
        if self.child.try_wait().is_ok_and(|s| s.is_none()) {
            self.signal("-TERM");
            if self.exited_within(Duration::from_secs(5)).is_none() {
                self.kill();
            }
        }
    }
}
