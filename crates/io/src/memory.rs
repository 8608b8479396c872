//! An in-memory link for tests: two ports, and what one sends the other receives, with
//! its [`Offload`] unchanged (as a veth pair passes super-frames through).
//!
//! Each port's receive queue is bounded like a real one: a frame sent to a full queue is
//! dropped and counted, and the sender is not told (a wire does not tell either). Frame
//! buffers are recycled, so a steady exchange allocates nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::error::IoError;
use crate::offload::Offload;
use crate::socket::{PacketType, Received};
use crate::FrameIo;

/// Frames a port queues by default before dropping.
const DEFAULT_CAPACITY: usize = 1024;

/// Constructor of connected [`MemoryPort`] pairs.
#[derive(Debug)]
pub struct MemoryLink;

impl MemoryLink {
    /// Two connected ports, each queueing up to 1024 frames.
    pub fn pair() -> (MemoryPort, MemoryPort) {
        MemoryLink::pair_with_capacity(DEFAULT_CAPACITY)
    }

    /// Two connected ports, each queueing up to `frames` frames (at least one).
    pub fn pair_with_capacity(frames: usize) -> (MemoryPort, MemoryPort) {
        let a = Arc::new(Inbox::new(frames.max(1)));
        let b = Arc::new(Inbox::new(frames.max(1)));
        let port_a = MemoryPort {
            peer: Arc::downgrade(&b),
            inbox: a.clone(),
        };
        let port_b = MemoryPort {
            peer: Arc::downgrade(&a),
            inbox: b,
        };
        (port_a, port_b)
    }
}

/// One end of a [`MemoryLink`].
#[derive(Debug)]
pub struct MemoryPort {
    inbox: Arc<Inbox>,
    /// Weak, so that sending to a dropped peer is an error instead of a silent sink.
    peer: Weak<Inbox>,
}

impl MemoryPort {
    /// Frames dropped because this port's receive queue was full.
    pub fn dropped(&self) -> u64 {
        self.inbox.lock().dropped
    }

    /// Frames waiting in this port's receive queue.
    pub fn queued(&self) -> usize {
        self.inbox.lock().frames.len()
    }
}

#[derive(Debug)]
struct Inbox {
    state: Mutex<InboxState>,
    arrived: Condvar,
    capacity: usize,
}

#[derive(Debug, Default)]
struct InboxState {
    frames: VecDeque<(Offload, Vec<u8>)>,
    /// Emptied buffers of received frames, reused by the next sends.
    spare: Vec<Vec<u8>>,
    dropped: u64,
}

impl Inbox {
    fn new(capacity: usize) -> Inbox {
        Inbox {
            state: Mutex::new(InboxState::default()),
            arrived: Condvar::new(),
            capacity,
        }
    }

    /// A panic elsewhere cannot leave the queue half-updated (every update is one push or
    /// pop), so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FrameIo for MemoryPort {
    fn recv(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<Received>, IoError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.inbox.lock();
        loop {
            if let Some((offload, frame)) = state.frames.pop_front() {
                let len = frame.len().min(buf.len());
                buf[..len].copy_from_slice(&frame[..len]);
                let received = Received {
                    len,
                    truncated: len < frame.len(),
                    offload,
                    pkttype: packet_type(&frame),
                };
                let mut frame = frame;
                frame.clear();
                state.spare.push(frame);
                return Ok(Some(received));
            }
            state = match deadline {
                None => self
                    .inbox
                    .arrived
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    self.inbox
                        .arrived
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    fn send(&self, offload: &Offload, frame: &[u8]) -> Result<(), IoError> {
        let peer = self.peer.upgrade().ok_or(IoError::PeerGone)?;
        let mut state = peer.lock();
        if state.frames.len() >= peer.capacity {
            state.dropped += 1;
            return Ok(());
        }
        let mut buf = state.spare.pop().unwrap_or_default();
        buf.extend_from_slice(frame);
        state.frames.push_back((*offload, buf));
        drop(state);
        peer.arrived.notify_one();
        Ok(())
    }
}

/// What the kernel would report from the destination MAC alone. The port has no address
/// of its own, so a unicast frame counts as addressed to it.
fn packet_type(frame: &[u8]) -> PacketType {
    match frame.get(..6) {
        Some(dst) if dst == [0xff; 6] => PacketType::Broadcast,
        Some(dst) if dst[0] & 1 == 1 => PacketType::Multicast,
        _ => PacketType::Host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::GsoType;
    use crate::socket::{RecvBatch, SendBatch};

    const TIMEOUT: Duration = Duration::from_millis(500);

    fn frame(dst: [u8; 6], fill: u8, len: usize) -> Vec<u8> {
        let mut frame = vec![fill; len];
        frame[..6].copy_from_slice(&dst);
        frame
    }

    #[test]
    fn round_trip_both_ways() {
        let (a, b) = MemoryLink::pair();
        let tso = Offload {
            needs_csum: true,
            gso_type: GsoType::TcpV4,
            gso_size: 1448,
            hdr_len: 66,
            csum_start: 34,
            csum_offset: 16,
            ..Offload::NONE
        };
        let big = frame([2, 0, 0, 0, 0, 1], 0xab, 9066);
        a.send(&tso, &big).unwrap();
        let mut buf = vec![0u8; 65536];
        let got = b.recv(&mut buf, TIMEOUT).unwrap().unwrap();
        assert_eq!(got.len, 9066);
        assert!(!got.truncated);
        assert_eq!(got.offload, tso);
        assert_eq!(got.pkttype, PacketType::Host);
        assert_eq!(&buf[..got.len], &big[..]);

        let bcast = frame([0xff; 6], 1, 60);
        b.send(&Offload::NONE, &bcast).unwrap();
        let got = a.recv(&mut buf, TIMEOUT).unwrap().unwrap();
        assert_eq!((got.len, got.pkttype), (60, PacketType::Broadcast));
        assert_eq!(got.offload, Offload::NONE);

        // Nothing echoes back to the sender.
        assert_eq!(a.recv(&mut buf, Duration::ZERO).unwrap(), None);
        assert_eq!(b.recv(&mut buf, Duration::from_millis(10)).unwrap(), None);
    }

    #[test]
    fn truncates_into_a_short_buffer_and_says_so() {
        let (a, b) = MemoryLink::pair();
        a.send(&Offload::NONE, &frame([0x01, 0, 0x5e, 0, 0, 1], 7, 100))
            .unwrap();
        let mut buf = [0u8; 64];
        let got = b.recv(&mut buf, TIMEOUT).unwrap().unwrap();
        assert_eq!(
            (got.len, got.truncated, got.pkttype),
            (64, true, PacketType::Multicast)
        );
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let (a, b) = MemoryLink::pair_with_capacity(2);
        for fill in 0..3 {
            a.send(&Offload::NONE, &frame([2; 6], fill, 60)).unwrap();
        }
        assert_eq!((b.queued(), b.dropped()), (2, 1));
        let mut buf = [0u8; 60];
        for fill in 0..2 {
            b.recv(&mut buf, TIMEOUT).unwrap().unwrap();
            assert_eq!(buf[59], fill, "order kept, last one dropped");
        }
    }

    #[test]
    fn wakes_a_waiting_receiver() {
        let (a, b) = MemoryLink::pair();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let mut buf = [0u8; 60];
                b.recv(&mut buf, Duration::from_secs(10))
                    .unwrap()
                    .map(|r| r.len)
            });
            std::thread::sleep(Duration::from_millis(20));
            a.send(&Offload::NONE, &frame([2; 6], 0, 60)).unwrap();
            assert_eq!(waiter.join().unwrap(), Some(60));
        });
    }

    #[test]
    fn batches_through_the_default_methods() {
        let (a, b) = MemoryLink::pair();
        let frames: Vec<Vec<u8>> = (0..5)
            .map(|i| frame([2; 6], i, 60 + usize::from(i)))
            .collect();
        let mut tx = SendBatch::new(2);
        let sent = a
            .send_batch(
                &mut tx,
                frames.iter().map(|f| (Offload::NONE, f.as_slice())),
            )
            .unwrap();
        assert_eq!(sent, 5);
        let mut rx = RecvBatch::new(4);
        let mut bufs = vec![vec![0u8; 128]; 8];
        assert_eq!(b.recv_batch(&mut rx, &mut bufs, TIMEOUT).unwrap(), 4);
        for (i, got) in rx.received().iter().enumerate() {
            assert_eq!(&bufs[i][..got.len], &frames[i][..]);
        }
        assert_eq!(b.recv_batch(&mut rx, &mut bufs, TIMEOUT).unwrap(), 1);
        assert_eq!(rx.received()[0].len, 64);
        assert_eq!(b.recv_batch(&mut rx, &mut bufs, Duration::ZERO).unwrap(), 0);
    }

    #[test]
    fn sending_to_a_dropped_peer_fails() {
        let (a, b) = MemoryLink::pair();
        drop(b);
        assert!(matches!(
            a.send(&Offload::NONE, &[0; 60]),
            Err(IoError::PeerGone)
        ));
        let (a, b) = MemoryLink::pair();
        let mut tx = SendBatch::new(4);
        drop(b);
        let err = a
            .send_batch(&mut tx, [(Offload::NONE, &[0u8; 60][..])])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "batch send stopped after 0 frames: memory link: the peer port was dropped"
        );
    }
}
