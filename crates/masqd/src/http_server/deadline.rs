//! A connection's deadline, and the response body that keeps it.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Context;
use std::time::Duration;

use hyper::body::{Bytes, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::response::{Body, PolledFrame};

/// When the connection must be done with what it does now: making or writing a response,
/// or taking a stream's next chunk; `None` until the first head, when hyper's own timer
/// is in charge. Its task closes the connection when the deadline passes.
#[derive(Debug, Default)]
pub(super) struct Deadline {
    at: Mutex<Option<Instant>>,
    earlier: Notify,
}

impl Deadline {
    pub(super) fn set(&self, at: Option<Instant>) {
        let mut current = self.at.lock().unwrap_or_else(PoisonError::into_inner);
        let sooner = match (*current, at) {
            (None, Some(_)) => true,
            (Some(old), Some(new)) => new < old,
            (_, None) => false,
        };
        *current = at;
        drop(current);
        // A later or no deadline needs no wake-up: the watcher finds it when it wakes.
        if sooner {
            self.earlier.notify_one();
        }
    }

    /// Resolves once the deadline in force has passed.
    pub(super) async fn passed(&self) {
        loop {
            let at = *self.at.lock().unwrap_or_else(PoisonError::into_inner);
            match at {
                Some(at) if Instant::now() >= at => return,
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.earlier.notified() => {}
                    }
                }
                None => self.earlier.notified().await,
            }
        }
    }
}

/// A response body that keeps the connection's [`Deadline`]: once hyper has taken all of
/// it (it is dropped then), what is left must be written within `limit`; a stream moves
/// the deadline `limit` on each time hyper asks it for more.
pub(super) struct Watched {
    pub(super) body: Body,
    pub(super) deadline: Arc<Deadline>,
    pub(super) limit: Duration,
    pub(super) stream: bool,
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> PolledFrame {
        let this = self.get_mut();
        if this.stream {
            this.deadline.set(Some(Instant::now() + this.limit));
        }
        Pin::new(&mut this.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.deadline.set(Some(Instant::now() + self.limit));
    }
}
