//! One masqd per control socket.
//!
//! The control socket's path names a masqd instance. Before it creates anything (a table,
//! a socket, a ring, an XDP program), masqd takes an exclusive lock on `SOCKET.lock`
//! (`flock`, held for the life of the process and released by the kernel however the
//! process ends) and writes its pid into it. A second masqd on the same socket finds the
//! lock taken and stops at once, having changed nothing, naming the pid that holds it.
//!
//! Whatever else belongs to the instance is named after the same path, so that the next
//! start of the same instance finds what a killed one left behind (the nftables guard
//! table, see `guard.rs`) and no other instance can ever touch it.
//!
//! The lock file is never deleted: a process could have opened the old file just before
//! the unlink and would then lock a file nobody else sees.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A running instance: its lock is held while this lives.
#[derive(Debug)]
pub struct Instance {
    /// The control socket, as an absolute path.
    pub socket: PathBuf,
    lock_path: PathBuf,
    _lock: File,
}

impl Instance {
    /// Claims the instance of the control socket `socket`.
    ///
    /// # Errors
    /// When `socket` exists and is not a socket (nothing is created then), when its
    /// directory cannot be made, when the lock file cannot be opened, or when another
    /// masqd holds the lock.
    pub fn claim(socket: &Path) -> Result<Instance> {
        refuse_non_socket(socket)?;
        let dir = socket
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = socket
            .file_name()
            .with_context(|| format!("--socket {}: no file name", socket.display()))?;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the socket directory {}", dir.display()))?;
        let dir = std::fs::canonicalize(dir)
            .with_context(|| format!("resolving the socket directory {}", dir.display()))?;
        let socket = dir.join(name);
        let mut lock_name = name.to_os_string();
        lock_name.push(".lock");
        let lock_path = dir.join(lock_name);
        let mut lock = open_lock_file(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = match holder_pid(&mut lock) {
                    Some(pid) if exiting(pid) => format!("masqd (pid {pid}, still exiting)"),
                    Some(pid) => format!("masqd (pid {pid})"),
                    None => "masqd".to_string(),
                };
                bail!(
                    "another {holder} is already running on {}: it holds {} (use --socket to run a second one)",
                    socket.display(),
                    lock_path.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", lock_path.display()))
            }
        }
        // A lock file made by something else may be open to others; ours is not from now.
        lock.set_permissions(std::fs::Permissions::from_mode(0o600))
            .and_then(|()| lock.set_len(0))
            .and_then(|()| lock.write_all(format!("{}\n", std::process::id()).as_bytes()))
            .with_context(|| format!("writing masqd's pid to {}", lock_path.display()))?;
        Ok(Instance {
            socket,
            lock_path,
            _lock: lock,
        })
    }

    /// The nftables table of this instance's kernel guard: `masq_guard_` and 8 hex digits
    /// of a hash of the socket path, stable across versions and restarts.
    pub fn guard_table(&self) -> String {
        format!(
            "masq_guard_{:08x}",
            fnv1a(self.socket.as_os_str().as_encoded_bytes())
        )
    }

    /// The lock file, for the log.
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }
}

/// Refuses a control socket path that exists and is anything but a socket (a file, a
/// directory, a symbolic link…): masqd would otherwise delete it to bind its socket.
fn refuse_non_socket(socket: &Path) -> Result<()> {
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if !meta.file_type().is_socket() => bail!(
            "--socket {} is {}, not a socket: masqd will not replace it (choose another --socket)",
            socket.display(),
            describe(meta.file_type())
        ),
        _ => Ok(()),
    }
}

fn describe(kind: std::fs::FileType) -> &'static str {
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// Opens (or creates) the lock file, never through a symbolic link (a planted link would
/// make masqd truncate its target), readable and writable by root only (any process that
/// can open it can lock it).
fn open_lock_file(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    Ok(file)
}

/// The pid the lock's holder wrote, if it did yet.
fn holder_pid(lock: &mut File) -> Option<u32> {
    let mut text = String::new();
    lock.rewind().ok()?;
    lock.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Whether process `pid` is on its way out: its main thread has exited (a zombie) while
/// its other threads still release what they hold, the lock among it.
fn exiting(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(") ")
            .next()
            .is_some_and(|state| state.starts_with('Z'))
    })
}

/// 32-bit FNV-1a: a hash whose value never changes between Rust versions (std's hasher
/// gives no such promise), so a restarted masqd finds the table its predecessor named.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("masqd-instance-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn a_second_claim_is_refused_and_names_the_holder() {
        let dir = TempDir::new("second");
        let socket = dir.0.join("masqd.sock");
        let first = Instance::claim(&socket).unwrap();
        let pid = std::fs::read_to_string(first.lock_path()).unwrap();
        assert_eq!(pid, format!("{}\n", std::process::id()));
        let err = format!("{:#}", Instance::claim(&socket).unwrap_err());
        assert!(
            err.starts_with(&format!(
                "another masqd (pid {}) is already running on {}",
                std::process::id(),
                socket.display()
            )),
            "{err}"
        );
        // The refused claim left the holder's pid alone.
        assert_eq!(std::fs::read_to_string(first.lock_path()).unwrap(), pid);
        drop(first);
        let again = Instance::claim(&socket).unwrap();
        assert_eq!(again.socket, socket);
    }

    #[test]
    fn the_guard_table_is_named_after_the_resolved_socket_path() {
        let dir = TempDir::new("names");
        let a = Instance::claim(&dir.0.join("a.sock")).unwrap();
        let b = Instance::claim(&dir.0.join("b.sock")).unwrap();
        let name = a.guard_table();
        assert!(
            name.starts_with("masq_guard_") && name.len() == 19,
            "{name}"
        );
        assert_ne!(name, b.guard_table());
        drop(a);
        // The same socket through another spelling of its directory is the same instance.
        let dotted = dir.0.join(".").join("a.sock");
        assert_eq!(Instance::claim(&dotted).unwrap().guard_table(), name);
    }

    #[test]
    fn a_path_that_is_not_a_socket_is_refused_and_left_alone() {
        let dir = TempDir::new("notsock");
        let file = dir.0.join("precious");
        std::fs::write(&file, "keep me").unwrap();
        let err = format!("{:#}", Instance::claim(&file).unwrap_err());
        assert!(err.contains("is a regular file, not a socket"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        assert!(!dir.0.join("precious.lock").exists(), "no lock file made");
        let link = dir.0.join("link.sock");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let err = format!("{:#}", Instance::claim(&link).unwrap_err());
        assert!(err.contains("is a symbolic link, not a socket"), "{err}");
    }

    #[test]
    fn a_planted_symbolic_link_as_lock_file_is_not_followed() {
        let dir = TempDir::new("lnlock");
        let target = dir.0.join("target");
        std::fs::write(&target, "keep me").unwrap();
        std::os::unix::fs::symlink(&target, dir.0.join("masqd.sock.lock")).unwrap();
        assert!(Instance::claim(&dir.0.join("masqd.sock")).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    }
}
