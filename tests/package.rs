//! The Debian package as an administrator meets it: `scripts/package.sh` builds it,
//! lintian finds no error in it, and it installs, upgrades and purges cleanly in a
//! throwaway root.
//!
//! The throwaway root is this host's own system seen through an overlay whose writable
//! layer is a tmpfs, in a mount namespace of its own (held by a `sleep` that `unshare`
//! started): dpkg and the maintainer scripts run exactly as on a real install (adduser,
//! dpkg-statoverride, man-db's trigger), nothing reaches the host's files, and every
//! mount disappears with the namespace, also when the test fails. What the package left
//! behind is read off the writable layer.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{describe, require_program};

/// The package's name.
const PACKAGE: &str = "masq";
/// Longest the namespace holder lives: far more than the test takes.
const HOLDER_SECS: &str = "900";

/// A root to install into, in a mount namespace of its own.
struct ThrowawayRoot {
    holder: Child,
    /// The merged view the package is installed into (inside the namespace).
    root: PathBuf,
    /// The overlay's writable layer: everything written to `root`.
    changes: PathBuf,
    dir: PathBuf,
}

impl ThrowawayRoot {
    fn new() -> ThrowawayRoot {
        let dir = std::env::temp_dir().join(format!("masq-package-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root")).unwrap();
        std::fs::create_dir_all(dir.join("layer")).unwrap();
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sleep", HOLDER_SECS])
            .stdin(Stdio::null())
            .spawn()
            .expect("starting unshare");
        let me = ThrowawayRoot {
            holder,
            root: dir.join("root"),
            changes: dir.join("layer/changes"),
            dir,
        };
        // The namespace exists once unshare has exec'd sleep.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while me.namespace_is_new().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "unshare made no mount namespace"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let layer = me.dir.join("layer");
        me.ok(&format!(
            "mount -t tmpfs masq-package {layer} && mkdir {layer}/changes {layer}/work && \
             mount -t overlay masq-package -o lowerdir=/,upperdir={layer}/changes,workdir={layer}/work {root} && \
             mount --rbind /dev {root}/dev && mount -t proc proc {root}/proc",
            layer = layer.display(),
            root = me.root.display()
        ));
        me
    }

    /// Some(()) once the holder runs in a mount namespace other than ours.
    fn namespace_is_new(&self) -> Option<()> {
        let theirs = std::fs::read_link(format!("/proc/{}/ns/mnt", self.holder.id())).ok()?;
        let ours = std::fs::read_link("/proc/self/ns/mnt").ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", self.holder.id())).ok()?;
        (theirs != ours && comm.trim() == "sleep").then_some(())
    }

    /// Runs a shell command in the namespace (on the host's files, with the root mounted).
    fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args(["--mount", "--target", &self.holder.id().to_string(), "--"])
            .args(["sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("running nsenter")
    }

    /// As [`ThrowawayRoot::sh`], insisting on success; its stdout.
    fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(out.status.success(), "{script}:\n{}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command inside the root, as an installed system would.
    fn chroot(&self, command: &str) -> String {
        self.ok(&format!(
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot {} {command}",
            self.root.display()
        ))
    }

    /// dpkg inside the root, as an administrator runs it there (dpkg run from outside
    /// with `--root` would look the `masq` group up in the host's files).
    fn dpkg(&self, args: &str) -> String {
        self.chroot(&format!(
            "env DEBIAN_FRONTEND=noninteractive dpkg --force-unsafe-io {args}"
        ))
    }

    /// Makes `dir` (on the host) visible, read-only, as `/mnt` in the root.
    fn show_at_mnt(&self, dir: &Path) {
        self.ok(&format!(
            "mount --bind -o ro {} {}/mnt",
            dir.display(),
            self.root.display()
        ));
    }

    fn installed_version(&self) -> Option<String> {
        let out = self.sh(&format!(
            "dpkg-query --admindir={}/var/lib/dpkg -W -f '${{Status}} ${{Version}}' {PACKAGE}",
            self.root.display()
        ));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.strip_prefix("install ok installed ")
            .map(str::to_string)
    }

    /// The paths in the overlay's writable layer that `find` selects with `test`: what
    /// was written to the root (deletions show as whiteouts).
    fn changed(&self, test: &str) -> Vec<String> {
        self.ok(&format!(
            "cd {} && find . -mindepth 1 {test}",
            self.changes.display()
        ))
        .lines()
        .map(|l| l.trim_start_matches('.').to_string())
        .collect()
    }

    fn path(&self, path: &str) -> String {
        format!("{}{path}", self.root.display())
    }
}

impl Drop for ThrowawayRoot {
    fn drop(&mut self) {
        // The mounts go with the namespace, the namespace with its last process.
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Builds the package from the binaries the tests run, as `version`.
fn build_package(out: &Path, version: &str) -> PathBuf {
    let bin_dir = common::bin_dir();
    assert!(
        bin_dir.join("masq-bench").is_file(),
        "masq-bench missing from {}: cargo build --workspace --bins",
        bin_dir.display()
    );
    let built = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/package.sh"))
        .arg("--bin-dir")
        .arg(&bin_dir)
        .args(["--version", version, "--out"])
        .arg(out)
        .output()
        .expect("running scripts/package.sh");
    assert!(
        built.status.success(),
        "scripts/package.sh:\n{}",
        describe(&built)
    );
    PathBuf::from(String::from_utf8(built.stdout).unwrap().trim())
}

/// The paths a package installs (`dpkg-deb -c`), without the leading `.`.
fn contents(deb: &Path) -> Vec<String> {
    let out = Command::new("dpkg-deb")
        .arg("-c")
        .arg(deb)
        .output()
        .unwrap();
    assert!(out.status.success(), "dpkg-deb -c:\n{}", describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').trim_end_matches('/').to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// What an install and a purge may leave in the root: dpkg's database and log, the
/// `masq` system user (Debian keeps system users) and the lock of the files it is in,
/// the caches of man-db's trigger, and what tools put in /run (a tmpfs on a running
/// system).
fn may_remain(path: &str) -> bool {
    const KEPT: [&str; 10] = [
        "/var/lib/dpkg/",
        "/var/log/dpkg.log",
        "/var/cache/man/",
        "/var/cache/debconf/",
        "/etc/passwd",
        "/etc/group",
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/.pwd.lock",
        "/run/",
    ];
    KEPT.iter().any(|k| path.starts_with(k))
}

#[test]
#[ignore = "needs root, dpkg-dev, lintian, systemd, man-db and util-linux: scripts/test.sh installs them and runs it"]
fn the_package_installs_upgrades_and_purges_cleanly() {
    common::require_root_and_iproute2();
    for (program, package) in [
        ("dpkg-deb", "dpkg"),
        ("dpkg-shlibdeps", "dpkg-dev"),
        ("strip", "binutils"),
        ("lintian", "lintian"),
        ("systemd-analyze", "systemd"),
        ("man", "man-db"),
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("adduser", "adduser"),
    ] {
        require_program(program, package);
    }
    let out = std::env::temp_dir().join(format!("masq-debs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let version = env!("CARGO_PKG_VERSION");
    let upgrade = format!("{version}+upgrade1");
    let first = build_package(&out.join("first"), version);
    let second = build_package(&out.join("second"), &upgrade);

    // lintian: no error (its warnings and notes are printed for the record).
    let lint = Command::new("lintian")
        .args(["--fail-on", "error", "--display-info", "--pedantic"])
        .arg(&first)
        .output()
        .expect("running lintian");
    eprintln!("lintian {}:\n{}", first.display(), describe(&lint));
    assert!(lint.status.success(), "lintian reports errors");
    assert!(!String::from_utf8_lossy(&lint.stdout).contains("E: "));

    let root = ThrowawayRoot::new();
    root.show_at_mnt(&out);
    let in_root = |deb: &Path| Path::new("/mnt").join(deb.strip_prefix(&out).unwrap());
    let files = contents(&first);
    root.dpkg(&format!("-i {}", in_root(&first).display()));
    assert_eq!(root.installed_version().as_deref(), Some(version));
    for file in &files {
        root.ok(&format!("test -e {}", root.path(file)));
    }

    // The installed binaries, manual and completions work.
    let masqd = root.chroot("/usr/sbin/masqd --version");
    assert_eq!(masqd.trim(), format!("masqd {version}"));
    let help = root.chroot("/usr/sbin/masqadm -h");
    assert!(
        help.contains("masq's own commands (not in ipvsadm):"),
        "{help}"
    );
    let bench = root.chroot("/usr/bin/masq-bench --version");
    assert_eq!(bench.trim(), format!("masq-bench {version}"));
    for page in [
        "man8/masqd.8.gz",
        "man8/masqadm.8.gz",
        "man1/masq-bench.1.gz",
    ] {
        let shown = root.chroot(&format!("man -l /usr/share/man/{page}"));
        assert!(shown.contains("NAME"), "man -l {page}:\n{shown}");
    }
    let found = root.chroot("man -w masqadm");
    assert_eq!(found.trim(), "/usr/share/man/man8/masqadm.8.gz");
    let spec = root.chroot(
        "bash -c '. /usr/share/bash-completion/completions/masqadm && complete -p masqadm'",
    );
    assert_eq!(spec.trim(), "complete -F _masqadm masqadm");

    // The unit, as systemd would load it on this system (binary and manual pages there).
    let verify = root.sh(&format!(
        "chroot {} systemd-analyze verify /lib/systemd/system/masqd.service",
        root.root.display()
    ));
    assert!(
        verify.status.success() && verify.stderr.is_empty() && verify.stdout.is_empty(),
        "systemd-analyze verify masqd.service:\n{}",
        describe(&verify)
    );

    // The user the unit runs masqd as, and the directory --save-on-exit writes to.
    let user = root.chroot("getent passwd masq");
    assert!(
        user.ends_with(":/nonexistent:/usr/sbin/nologin\n"),
        "{user}"
    );
    let etc = root.chroot("stat -c '%U:%G %a' /etc/masq");
    assert_eq!(etc.trim(), "root:masq 775");

    // An upgrade keeps what the administrator changed in a conffile.
    let edited = "-A -t 192.168.0.10:80 -s rr\n";
    root.ok(&format!(
        "echo '{}' >> {}",
        edited.trim(),
        root.path("/etc/masq/rules")
    ));
    root.dpkg(&format!("-i {}", in_root(&second).display()));
    assert_eq!(root.installed_version(), Some(upgrade));
    let rules = root.ok(&format!("cat {}", root.path("/etc/masq/rules")));
    assert!(rules.ends_with(edited), "the edit was lost:\n{rules}");
    assert!(root
        .sh(&format!("ls {}/etc/masq/rules.dpkg-*", root.root.display()))
        .stdout
        .is_empty());
    assert_eq!(
        root.chroot("getent passwd masq"),
        user,
        "the upgrade kept the same user"
    );

    // A purge leaves nothing of the package behind.
    root.dpkg(&format!("--purge {PACKAGE}"));
    assert_eq!(root.installed_version(), None);
    // (Directories such as /usr/sbin stay: the host has them too.)
    let left: Vec<&String> = files
        .iter()
        .filter(|f| !Path::new(f).exists())
        .filter(|f| {
            root.sh(&format!("test -e {}", root.path(f)))
                .status
                .success()
        })
        .collect();
    assert!(left.is_empty(), "left after the purge: {left:?}");
    // Every file the install, upgrade and purge wrote, and every one they deleted
    // (overlay whiteouts), other than dpkg's and the system user's.
    let unexpected: Vec<String> = root
        .changed("\\( -type d -o -print \\)")
        .into_iter()
        .filter(|p| !may_remain(p))
        .collect();
    assert!(
        unexpected.is_empty(),
        "the install and purge changed: {unexpected:?}"
    );
    // Directories the package made are gone too (those left are the host's own, copied
    // up by the overlay).
    let made: Vec<String> = root
        .changed("-type d")
        .into_iter()
        .filter(|d| !Path::new(d).is_dir())
        .collect();
    assert!(
        made.is_empty(),
        "directories left after the purge: {made:?}"
    );
    assert!(root.chroot("getent passwd masq").starts_with("masq:"));
    let _ = std::fs::remove_dir_all(&out);
}
