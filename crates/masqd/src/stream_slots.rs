//! How many `masqadm --trace` and `--capture` clients masqd serves at once: each stream
//! holds a slot while it runs, and a client past [`MAX_STREAMS`] is refused. The slots
//! live in the control context, apart from the streams (`trace_stream`) that take them.

use std::sync::atomic::{AtomicUsize, Ordering};

/// `--trace` and `--capture` clients served at once.
pub const MAX_STREAMS: usize = 8;

/// The streams attached, at most [`MAX_STREAMS`].
#[derive(Debug, Default)]
pub struct StreamSlots {
    attached: AtomicUsize,
}

impl StreamSlots {
    /// A slot for one more stream, freed when the returned value drops; `None` when all
    /// [`MAX_STREAMS`] are taken.
    pub fn take(&self) -> Option<Slot<'_>> {
        self.attached
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_STREAMS).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self))
    }
}

/// One taken stream slot.
pub struct Slot<'a>(&'a StreamSlots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.attached.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_slots_stop_at_the_most_and_free_on_drop() {
        let slots = StreamSlots::default();
        let taken: Vec<Slot<'_>> = (0..MAX_STREAMS).map(|_| slots.take().unwrap()).collect();
        assert!(slots.take().is_none(), "one more than MAX_STREAMS");
        drop(taken.into_iter().next());
        assert!(slots.take().is_some(), "a freed slot is taken again");
    }
}
