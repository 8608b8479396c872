//! [`wait_readable`]: the one wait of every back end's receive path, used only when the
//! back end found nothing to read.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use crate::error::IoError;
use crate::sys;

/// Waits until one of `fds` is readable (or has an error pending) or `deadline` passes
/// (`None`: without limit). A signal ends the wait early too, so callers read and then
/// re-check their deadline. Returns whether the last of `fds` is readable, for a caller
/// that wants to know about one of them.
///
/// # Errors
///
/// [`IoError::Recv`] naming `poll` and `iface`.
pub(crate) fn wait_readable<'a>(
    fds: impl IntoIterator<Item = BorrowedFd<'a>>,
    iface: &str,
    deadline: Option<Instant>,
) -> Result<bool, IoError> {
    let timeout_ms = match deadline {
        None => -1,
        Some(deadline) => poll_timeout_ms(deadline.saturating_duration_since(Instant::now())),
    };
    sys::poll(fds, libc::POLLIN, timeout_ms).map_err(|source| IoError::Recv {
        call: "poll",
        iface: iface.to_owned(),
        source,
    })
}

/// `poll` counts milliseconds: round up, so a short timeout still waits instead of spinning.
fn poll_timeout_ms(timeout: Duration) -> libc::c_int {
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_timeout_rounds_up() {
        assert_eq!(poll_timeout_ms(Duration::ZERO), 0);
        assert_eq!(poll_timeout_ms(Duration::from_micros(1)), 1);
        assert_eq!(poll_timeout_ms(Duration::from_millis(250)), 250);
        assert_eq!(
            poll_timeout_ms(Duration::from_secs(u64::MAX / 2)),
            libc::c_int::MAX
        );
    }
}
