//! A masqd on its own, for control-plane tests: a network namespace with two veth pairs
//! whose far ends stay in the namespace unused (the VIP side and the DIP side, no hosts
//! behind them) and masqd on a control
//! socket in a temporary directory. Dropping it stops masqd and removes the namespace,
//! also when the test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A running masqd with no traffic around it.
pub struct Standalone {
    pub ns: String,
    pub dir: PathBuf,
    pub socket: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
}

impl Standalone {
    /// Builds the namespace and starts masqd with `extra` arguments.
    ///
    /// # Panics
    ///
    /// When not root, when iproute2 or the binaries are missing, or when masqd does not
    /// answer.
    pub fn start(extra: &[&str]) -> Standalone {
        super::require_root_and_iproute2();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let ns = format!("mqs{:04x}{n:02x}", std::process::id() & 0xffff);
        let dir = std::env::temp_dir().join(format!("masq-test-{ns}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut me = Standalone {
            socket: dir.join("masqd.sock"),
            ns,
            dir,
            bin: super::bin_dir(),
            child: None,
        };
        for cmd in [
            vec!["netns", "add", &me.ns],
            vec!["-n", &me.ns, "link", "set", "lo", "up"],
            vec![
                "-n", &me.ns, "link", "add", "ext", "type", "veth", "peer", "name", "extp",
            ],
            vec![
                "-n", &me.ns, "link", "add", "int", "type", "veth", "peer", "name", "intp",
            ],
            vec!["-n", &me.ns, "link", "set", "extp", "up"],
            vec!["-n", &me.ns, "link", "set", "intp", "up"],
            vec!["-n", &me.ns, "addr", "add", "192.168.0.10/24", "dev", "ext"],
            vec![
                "-n",
                &me.ns,
                "addr",
                "add",
                "192.168.100.10/24",
                "dev",
                "int",
            ],
            vec!["-n", &me.ns, "link", "set", "ext", "up"],
            vec!["-n", &me.ns, "link", "set", "int", "up"],
        ] {
            let out = Command::new("ip").args(&cmd).output().expect("ip");
            assert!(
                out.status.success(),
                "ip {cmd:?}: {}",
                super::describe(&out)
            );
        }
        me.launch(extra);
        me
    }

    /// The masqd command line for this fixture plus `extra`.
    pub fn masqd_command(&self, extra: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns])
            .arg(self.bin.join("masqd"))
            .args(["--vip-iface", "ext", "--dip-iface", "int", "--socket"])
            .arg(&self.socket)
            .args(extra);
        c
    }

    /// Starts masqd and waits until it answers.
    pub fn launch(&mut self, extra: &[&str]) {
        let log = std::fs::File::create(self.dir.join("masqd.log")).expect("log");
        let child = self
            .masqd_command(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("masqd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.socket.exists() && self.masqadm(&["-L", "-n"]).2 == 0 {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("masqd exited with {status} at start:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "masqd did not answer:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops masqd with SIGTERM and waits for it; returns its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok().and_then(|s| s.code());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills masqd with SIGKILL (no clean stop).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// masqd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("masqd.log")).unwrap_or_default()
    }

    /// Runs masqadm on this masqd's socket.
    pub fn masqadm(&self, args: &[&str]) -> (String, String, i32) {
        self.masqadm_stdin(args, "")
    }

    /// Runs masqadm with `stdin` (for `-R`).
    pub fn masqadm_stdin(&self, args: &[&str], stdin: &str) -> (String, String, i32) {
        use std::io::Write;
        let mut child = Command::new(self.bin.join("masqadm"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("masqadm");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("masqadm output");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .output()
            .expect("ip netns exec")
    }

    /// A path in the fixture's temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Where the binaries are.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// The socket, as a path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- masqd log ({})\n{}", self.ns, self.log());
        }
        self.kill();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
