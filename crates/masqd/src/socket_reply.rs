//! The control socket's reply: one [`Outcome`] as JSON, then the end of the stream (what
//! `masqadm` waits for). Shared by the request handler and the trace stream's refusals.

use anyhow::{Context, Result};
use masq_ctl::Outcome;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

/// An outcome that only says `message` on stderr and exits with `code`.
pub fn error_outcome(message: &str, code: i32) -> Outcome {
    Outcome {
        stderr: format!("{message}\n"),
        code,
        ..Default::default()
    }
}

/// Sends `outcome` and closes the stream for writing.
///
/// # Errors
/// When the client has gone away.
pub async fn reply(stream: &mut UnixStream, outcome: &Outcome) -> Result<()> {
    send(stream, &encode(outcome)?).await
}

/// `outcome` as the bytes [`send`] sends. A listing of a large table makes megabytes of
/// JSON: encode it off the runtime.
///
/// # Errors
/// When it cannot be encoded.
pub fn encode(outcome: &Outcome) -> Result<Vec<u8>> {
    serde_json::to_vec(outcome).context("encoding the reply")
}

/// Sends an encoded outcome and closes the stream for writing.
///
/// # Errors
/// When the client has gone away.
pub async fn send(stream: &mut UnixStream, body: &[u8]) -> Result<()> {
    stream.write_all(body).await.context("writing the reply")?;
    stream.shutdown().await.context("closing the reply")?;
    Ok(())
}
