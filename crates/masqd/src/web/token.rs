//! `--web-admin`'s token: 32 random bytes made at each start, written as hex to
//! `<control socket>.web-token` with mode 0600 — readable by the users who may use the
//! control socket, and nobody else — and required with every change the page sends,
//! loopback or not: a local user who can reach the port but not read the file cannot
//! change anything.
//!
//! The file is created with its mode (never loosened, never chmod-ed later) and only as a
//! new file: a regular file left there by an earlier run is replaced, anything else
//! (a symbolic link, a directory) makes masqd refuse to start. It is removed when masqd
//! stops, if it is still the file this run wrote.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;

/// The token a change must carry.
#[derive(Debug)]
pub struct AdminToken {
    hex: String,
    file: PathBuf,
}

impl AdminToken {
    /// Makes a token and writes it beside the control socket `socket`.
    ///
    /// # Errors
    /// When `/dev/urandom` cannot be read, or the file cannot be written, or something
    /// that is not a regular file is in its place.
    pub fn create(socket: &Path) -> Result<(AdminToken, TokenFile)> {
        let mut random = [0u8; TOKEN_BYTES];
        File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut random))
            .context("reading /dev/urandom for the admin token")?;
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let mut path = socket.as_os_str().to_owned();
        path.push(".web-token");
        let file = TokenFile::write(PathBuf::from(path), &hex)?;
        let token = AdminToken {
            hex,
            file: file.path.clone(),
        };
        Ok((token, file))
    }

    /// The file that holds it.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Whether `offered` is the token, compared in constant time.
    pub fn accepts(&self, offered: Option<&[u8]>) -> bool {
        offered.is_some_and(|o| same_secret(o, self.hex.as_bytes()))
    }
}

/// Compares two secrets in a time that depends on their length only (which is no
/// secret), not on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The token's file; removed when this drops, if it is still the one written.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    /// Device and inode of what was written (an inode number can be reused, hence the
    /// contents too).
    written: (u64, u64),
    contents: String,
}

impl TokenFile {
    fn write(path: PathBuf, hex: &str) -> Result<TokenFile> {
        match std::fs::symlink_metadata(&path) {
            // An earlier run's, left by a crash.
            Ok(meta) if meta.file_type().is_file() => std::fs::remove_file(&path)
                .with_context(|| format!("removing the old admin token {}", path.display()))?,
            Ok(_) => bail!(
                "{} is in the way of the admin token and is not a regular file: not touching it",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("looking at {}", path.display()));
            }
        }
        // create_new: O_EXCL, so nothing put there meanwhile (a link) is followed.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating the admin token {}", path.display()))?;
        let contents = format!("{hex}\n");
        file.write_all(contents.as_bytes())
            .with_context(|| format!("writing the admin token {}", path.display()))?;
        let meta = file
            .metadata()
            .with_context(|| format!("reading back {}", path.display()))?;
        Ok(TokenFile {
            path,
            written: (meta.dev(), meta.ino()),
            contents,
        })
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_file() && (m.dev(), m.ino()) == self.written)
            && std::fs::read_to_string(&self.path).is_ok_and(|c| c == self.contents);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fresh directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("masqd-token-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_token_is_64_hex_digits_in_a_0600_file_beside_the_socket() {
        let dir = scratch("create");
        let socket = dir.join("masqd.sock");
        let (token, file) = AdminToken::create(&socket).unwrap();
        assert_eq!(token.file(), dir.join("masqd.sock.web-token"));
        let text = std::fs::read_to_string(token.file()).unwrap();
        let hex = text.trim_end();
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{hex}");
        let mode = std::fs::metadata(token.file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        // Each start makes another.
        let (again, _second) = {
            drop(file);
            AdminToken::create(&socket).unwrap()
        };
        assert_ne!(again.hex, token.hex);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_the_token_itself_is_accepted() {
        let dir = scratch("accept");
        let (token, _file) = AdminToken::create(&dir.join("s")).unwrap();
        let hex = token.hex.clone();
        assert!(token.accepts(Some(hex.as_bytes())));
        assert!(!token.accepts(None));
        assert!(!token.accepts(Some(b"")));
        assert!(!token.accepts(Some(&hex.as_bytes()[..63])));
        assert!(!token.accepts(Some(format!("{hex}0").as_bytes())));
        let mut wrong = hex.clone().into_bytes();
        wrong[40] = if wrong[40] == b'0' { b'1' } else { b'0' };
        assert!(!token.accepts(Some(&wrong)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stale_token_file_is_replaced_but_nothing_else_is() {
        let dir = scratch("replace");
        let socket = dir.join("masqd.sock");
        let path = dir.join("masqd.sock.web-token");
        std::fs::write(&path, "stale\n").unwrap();
        let (token, file) = AdminToken::create(&socket).unwrap();
        assert_ne!(std::fs::read_to_string(&path).unwrap(), "stale\n");
        drop((token, file));
        assert!(!path.exists(), "removed at exit");

        // A link to somewhere else is never followed nor replaced.
        let target = dir.join("elsewhere");
        std::fs::write(&target, "keep me").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = AdminToken::create(&socket).unwrap_err();
        assert!(format!("{err:#}").contains("not a regular file"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(AdminToken::create(&socket).is_err());
        assert!(path.is_dir());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_that_is_no_longer_ours_is_left_at_exit() {
        let dir = scratch("ours");
        let socket = dir.join("masqd.sock");
        let (token, file) = AdminToken::create(&socket).unwrap();
        // Someone (a later masqd) replaced it meanwhile.
        std::fs::remove_file(token.file()).unwrap();
        std::fs::write(token.file(), "theirs\n").unwrap();
        drop(file);
        assert_eq!(std::fs::read_to_string(token.file()).unwrap(), "theirs\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
