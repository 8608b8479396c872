//! [`PcapTap`]: a decorator that records every frame a device receives or sends in a
//! classic libpcap file, readable by tcpdump and Wireshark.
//!
//! Format (the "pcap" file format, draft-ietf-opsawg-pcap): a 24-byte file header, then per
//! frame a 16-byte record header and the frame bytes. Written little-endian (readers detect
//! the order from the magic number), microsecond timestamps, `LINKTYPE_ETHERNET`.
//! GSO super-frames are recorded as the device saw them, one record each.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::IoError;
use crate::offload::Offload;
use crate::socket::Received;
use crate::FrameIo;

/// Bytes kept of each frame: libpcap's maximum, above the largest GSO super-frame (64 KiB).
pub const PCAP_SNAPLEN: u32 = 262_144;

const MAGIC_MICROSECONDS: u32 = 0xa1b2_c3d4;
const VERSION_MAJOR: u16 = 2;
const VERSION_MINOR: u16 = 4;
const LINKTYPE_ETHERNET: u32 = 1;

/// Wraps a [`FrameIo`] device and writes each frame it receives or sends to a pcap file.
///
/// A frame is recorded after the device handled it: received frames once delivered, sent
/// frames once accepted. Writes are serialised by a lock, so the tap is for debugging
/// and captures, not for full-speed forwarding.
#[derive(Debug)]
pub struct PcapTap<I, W: Write = BufWriter<File>> {
    inner: I,
    out: Mutex<W>,
}

impl<I: FrameIo> PcapTap<I> {
    /// Creates (or truncates) the file at `path` and taps `inner` into it.
    ///
    /// # Errors
    ///
    /// [`IoError::PcapCreate`] if the file cannot be created, [`IoError::PcapWrite`] if the
    /// file header cannot be written.
    pub fn create(inner: I, path: impl AsRef<Path>) -> Result<Self, IoError> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|source| IoError::PcapCreate {
            path: path.to_owned(),
            source,
        })?;
        PcapTap::new(inner, BufWriter::new(file))
    }
}

impl<I: FrameIo, W: Write + Send> PcapTap<I, W> {
    /// Taps `inner` into `out`, writing the pcap file header first.
    ///
    /// # Errors
    ///
    /// [`IoError::PcapWrite`] if the file header cannot be written.
    pub fn new(inner: I, mut out: W) -> Result<Self, IoError> {
        out.write_all(&file_header()).map_err(IoError::PcapWrite)?;
        Ok(PcapTap {
            inner,
            out: Mutex::new(out),
        })
    }

    /// The wrapped device.
    pub fn inner(&self) -> &I {
        &self.inner
    }

    /// Pushes buffered records to the file.
    ///
    /// # Errors
    ///
    /// [`IoError::PcapWrite`] if the writer fails.
    pub fn flush(&self) -> Result<(), IoError> {
        self.lock().flush().map_err(IoError::PcapWrite)
    }

    /// The device and the writer, flushed.
    ///
    /// # Errors
    ///
    /// [`IoError::PcapWrite`] if the final flush fails.
    pub fn into_parts(self) -> Result<(I, W), IoError> {
        let mut out = self
            .out
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        out.flush().map_err(IoError::PcapWrite)?;
        Ok((self.inner, out))
    }

    /// A failed write leaves at worst a torn record, which the next error reports anyway.
    fn lock(&self) -> MutexGuard<'_, W> {
        self.out.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, frame: &[u8]) -> Result<(), IoError> {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let header = record_header(since_epoch, frame.len());
        let kept = frame.len().min(PCAP_SNAPLEN as usize);
        let mut out = self.lock();
        out.write_all(&header)
            .and_then(|()| out.write_all(&frame[..kept]))
            .map_err(IoError::PcapWrite)
    }
}

impl<I: FrameIo, W: Write + Send> FrameIo for PcapTap<I, W> {
    /// Receives from the wrapped device and records the frame.
    ///
    /// A truncated frame is recorded as received (its original length is not known).
    fn recv(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<Received>, IoError> {
        let received = self.inner.recv(buf, timeout)?;
        if let Some(received) = &received {
            self.record(&buf[..received.len])?;
        }
        Ok(received)
    }

    /// Sends through the wrapped device and records the frame once it was accepted.
    fn send(&self, offload: &Offload, frame: &[u8]) -> Result<(), IoError> {
        self.inner.send(offload, frame)?;
        self.record(frame)
    }
}

fn file_header() -> [u8; 24] {
    let mut header = [0u8; 24];
    header[0..4].copy_from_slice(&MAGIC_MICROSECONDS.to_le_bytes());
    header[4..6].copy_from_slice(&VERSION_MAJOR.to_le_bytes());
    header[6..8].copy_from_slice(&VERSION_MINOR.to_le_bytes());
    // 8..12 thiszone and 12..16 sigfigs stay 0: timestamps are UTC.
    header[16..20].copy_from_slice(&PCAP_SNAPLEN.to_le_bytes());
    header[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    header
}

fn record_header(since_epoch: Duration, frame_len: usize) -> [u8; 16] {
    let orig_len = u32::try_from(frame_len).unwrap_or(u32::MAX);
    let incl_len = orig_len.min(PCAP_SNAPLEN);
    // The classic format has 32-bit seconds: good until 2106.
    let seconds = u32::try_from(since_epoch.as_secs()).unwrap_or(u32::MAX);
    let mut header = [0u8; 16];
    header[0..4].copy_from_slice(&seconds.to_le_bytes());
    header[4..8].copy_from_slice(&since_epoch.subsec_micros().to_le_bytes());
    header[8..12].copy_from_slice(&incl_len.to_le_bytes());
    header[12..16].copy_from_slice(&orig_len.to_le_bytes());
    header
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryLink;

    #[test]
    fn file_header_bytes() {
        assert_eq!(
            file_header(),
            [
                0xd4, 0xc3, 0xb2, 0xa1, // magic, microseconds, little-endian
                2, 0, 4, 0, // version 2.4
                0, 0, 0, 0, // thiszone
                0, 0, 0, 0, // sigfigs
                0x00, 0x00, 0x04, 0x00, // snaplen 262144
                1, 0, 0, 0, // LINKTYPE_ETHERNET
            ]
        );
    }

    #[test]
    fn record_header_bytes() {
        let at = Duration::new(0x6000_0001, 123_456_789);
        assert_eq!(
            record_header(at, 1514),
            [
                0x01, 0x00, 0x00, 0x60, // seconds
                0x40, 0xe2, 0x01, 0x00, // 123456 microseconds
                0xea, 0x05, 0, 0, // incl_len 1514
                0xea, 0x05, 0, 0, // orig_len 1514
            ]
        );
        let huge = record_header(at, 300_000);
        assert_eq!(huge[8..12], PCAP_SNAPLEN.to_le_bytes());
        assert_eq!(huge[12..16], 300_000u32.to_le_bytes());
    }

    /// Splits a capture into (seconds, microseconds, frame) records, checking lengths.
    fn records(capture: &[u8]) -> Vec<(u32, u32, Vec<u8>)> {
        let u32_at = |at: usize| u32::from_le_bytes(capture[at..at + 4].try_into().unwrap());
        let mut out = Vec::new();
        let mut at = 24;
        while at < capture.len() {
            let incl = u32_at(at + 8) as usize;
            assert_eq!(u32_at(at + 12) as usize, incl);
            assert!(u32_at(at + 4) < 1_000_000);
            out.push((
                u32_at(at),
                u32_at(at + 4),
                capture[at + 16..at + 16 + incl].to_vec(),
            ));
            at += 16 + incl;
        }
        assert_eq!(at, capture.len(), "no trailing bytes");
        out
    }

    #[test]
    fn records_sent_and_received_frames_in_order() {
        let (a, b) = MemoryLink::pair();
        let tap = PcapTap::new(a, Vec::new()).unwrap();
        let out_frame = [0x11u8; 60];
        let in_frame = [0x22u8; 1514];
        tap.send(&Offload::NONE, &out_frame).unwrap();
        b.send(&Offload::NONE, &in_frame).unwrap();
        let mut buf = vec![0u8; 2048];
        let got = tap.recv(&mut buf, Duration::from_secs(1)).unwrap().unwrap();
        assert_eq!(got.len, 1514);
        // A timeout records nothing.
        assert_eq!(tap.recv(&mut buf, Duration::ZERO).unwrap(), None);

        let (_, capture) = tap.into_parts().unwrap();
        assert_eq!(capture[..24], file_header());
        let records = records(&capture);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].2, out_frame);
        assert_eq!(records[1].2, in_frame);
        assert!(records[0].0 > 1_600_000_000, "wall-clock seconds");
        assert!((records[0].0, records[0].1) <= (records[1].0, records[1].1));
    }

    #[test]
    fn writes_a_file() {
        let path = std::env::temp_dir().join(format!("mqio-tap-{}.pcap", std::process::id()));
        let (a, _b) = MemoryLink::pair();
        let tap = PcapTap::create(a, &path).unwrap();
        tap.send(&Offload::NONE, &[0x33; 64]).unwrap();
        drop(tap);
        let capture = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(capture.len(), 24 + 16 + 64);
        assert_eq!(records(&capture)[0].2, [0x33; 64]);
    }

    #[test]
    fn failed_send_is_not_recorded() {
        let (a, b) = MemoryLink::pair();
        drop(b);
        let tap = PcapTap::new(a, Vec::new()).unwrap();
        assert!(tap.send(&Offload::NONE, &[0; 60]).is_err());
        let (_, capture) = tap.into_parts().unwrap();
        assert_eq!(capture.len(), 24);
    }
}
