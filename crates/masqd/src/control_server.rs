//! The control socket: a Unix stream socket (mode 0600) where `masqadm` sends an ipvsadm
//! argument vector and gets back exactly what ipvsadm would have printed.
//!
//! Requests are size-bounded and parsed defensively; a malformed one gets an error reply and
//! a log line, and the daemon carries on. Only root or the daemon's own user may connect.
//! Requests run on tokio's blocking pool, a few at a time ([`ControlContext::off_runtime`]),
//! so that a long listing or a slow `nft` delays neither the other requests nor the
//! housekeeping (which has a thread of its own).

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use masq_ctl::request::{Request, SimRequest, MAX_REQUEST_BYTES};
use tokio::io::AsyncReadExt;
use tokio::net::{UnixListener, UnixStream};

use crate::context::ControlContext;
use crate::socket_reply::{encode, error_outcome, reply, send};

/// The control socket's file, as this process bound it: removed when this drops, but only
/// while the path still holds that very socket (not one a later masqd bound, nor whatever
/// someone put there meanwhile).
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// Device and inode of the socket bound.
    identity: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if file_identity(&self.path) == Some(self.identity) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The device and inode of `path` when it is a socket (a symbolic link is not followed).
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.file_type()
        .is_socket()
        .then(|| (meta.dev(), meta.ino()))
}

/// Binds the control socket at `path`, replacing a stale one (a socket nobody answers on).
/// Called while holding the instance lock (`instance.rs`), so no other masqd of this
/// socket is starting or running.
///
/// # Errors
/// When `path` exists and is not a socket, a daemon still answers there, or bind fails.
pub fn bind(path: &Path) -> Result<(StdUnixListener, SocketFile)> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!(
                "--socket {} is not a socket: masqd will not replace it (choose another --socket)",
                path.display()
            );
        }
        if StdUnixStream::connect(path).is_ok() {
            bail!(
                "another masqd is already listening on {} (use --socket to run a second one)",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
        tracing::info!("replaced the stale socket {}", path.display());
    }
    let listener = StdUnixListener::bind(path)
        .with_context(|| format!("binding the control socket {}", path.display()))?;
    let identity = file_identity(path)
        .with_context(|| format!("{} vanished as it was bound", path.display()))?;
    let file = SocketFile {
        path: path.to_path_buf(),
        identity,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", path.display()))?;
    listener
        .set_nonblocking(true)
        .context("making the control socket non-blocking")?;
    Ok((listener, file))
}

/// Longest a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves requests until the task is cancelled.
pub async fn serve(listener: UnixListener, ctx: Arc<ControlContext>, socket: PathBuf) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, &ctx).await {
                        tracing::warn!("control request failed: {e:#}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("accept on {}: {e}", socket.display());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(mut stream: UnixStream, ctx: &Arc<ControlContext>) -> Result<()> {
    let cred = stream.peer_cred().context("reading peer credentials")?;
    let me = masq_io::host::effective_uid();
    if cred.uid() != 0 && cred.uid() != me {
        let outcome = error_outcome("Permission denied (you must be root)", 255);
        reply(&mut stream, &outcome).await?;
        bail!("refused a request from uid {}", cred.uid());
    }
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        REQUEST_TIMEOUT,
        (&mut stream)
            .take(MAX_REQUEST_BYTES as u64 + 1)
            .read_to_end(&mut buf),
    )
    .await
    .context("reading the request: the client sent nothing for 10 s")?
    .context("reading the request")?;
    if read > MAX_REQUEST_BYTES {
        reply(&mut stream, &error_outcome("masqd: request too large", 2)).await?;
        bail!("request larger than {MAX_REQUEST_BYTES} bytes");
    }
    let request: Request = match serde_json::from_slice(&buf) {
        Ok(r) => r,
        Err(e) => {
            reply(&mut stream, &error_outcome("masqd: malformed request", 2)).await?;
            bail!("malformed request ({} bytes): {e}", buf.len());
        }
    };
    if masq_ctl::trace::is_trace(&request.args) || masq_ctl::trace::is_capture(&request.args) {
        return crate::trace_stream::serve(stream, ctx, &request).await;
    }
    // Listings of a large table (and their megabytes of JSON) and nft runs take long: off
    // the runtime, so the control socket keeps answering meanwhile.
    let body = if request.args.first().is_some_and(|a| a == "--check") {
        ctx.off_runtime(|ctx| encode(&crate::check_report::run(ctx)))
            .await
    } else if SimRequest::is_sim_request(&request.args) {
        ctx.off_runtime(move |ctx| {
            encode(&crate::simulate::answer(
                ctx,
                &request.program,
                &request.args,
            ))
        })
        .await
    } else {
        ctx.off_runtime(move |ctx| encode(&ctx.execute(&request)))
            .await
    };
    send(&mut stream, &body??).await
}
