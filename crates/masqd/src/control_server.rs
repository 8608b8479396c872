//! The control socket: a Unix stream socket (mode 0600) where `masqadm` sends an ipvsadm
//! argument vector and gets back exactly what ipvsadm would have printed.
//!
//! Requests are size-bounded and parsed defensively; a malformed one gets an error reply and
//! a log line, and the daemon carries on. Only root or the daemon's own user may connect.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use masq_ctl::request::{Request, MAX_REQUEST_BYTES};
use tokio::io::AsyncReadExt;
use tokio::net::{UnixListener, UnixStream};

use crate::context::ControlContext;
use crate::socket_reply::{error_outcome, reply};

/// Binds the control socket at `path`, refusing if another daemon answers there.
///
/// # Errors
/// When the directory cannot be made, a daemon is already listening, or bind fails.
pub async fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the socket directory {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            bail!(
                "another masqd is already listening on {} (use --socket to run a second one)",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("binding the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", path.display()))?;
    Ok(listener)
}

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
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(mut stream: UnixStream, ctx: &ControlContext) -> Result<()> {
    let cred = stream.peer_cred().context("reading peer credentials")?;
    let me = nix_euid();
    if cred.uid() != 0 && cred.uid() != me {
        let outcome = error_outcome("Permission denied (you must be root)", 255);
        reply(&mut stream, &outcome).await?;
        bail!("refused a request from uid {}", cred.uid());
    }
    let mut buf = Vec::new();
    let read = (&mut stream)
        .take(MAX_REQUEST_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .await
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
    if request.args.first().is_some_and(|a| a == "--check") {
        let outcome = crate::check_report::run(ctx);
        return reply(&mut stream, &outcome).await;
    }
    if masq_ctl::trace::is_trace(&request.args) || masq_ctl::trace::is_capture(&request.args) {
        return crate::trace_stream::serve(stream, ctx, &request).await;
    }
    let outcome = ctx.execute(&request);
    reply(&mut stream, &outcome).await
}

fn nix_euid() -> u32 {
    // std exposes the owner of our own files but not geteuid; /proc/self is owned by it.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
}
