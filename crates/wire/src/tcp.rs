//! TCP headers (RFC 9293) — only what NAT and the IPVS state machine read or rewrite.

use crate::{get_u16, get_u32, put_u16, Malformed};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = 16;

/// TCP flag bits as they sit in byte 13.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// A view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpSegment<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpSegment<T> {
    /// Wraps `buffer` (the IP payload) after checking the data offset.
    ///
    /// # Errors
    /// [`Malformed::Truncated`] if shorter than 20 bytes, [`Malformed::BadHeaderLength`] if
    /// the data offset is below 5 words or beyond the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Malformed::Truncated);
        }
        let header_len = usize::from(b[12] >> 4) * 4;
        if header_len < MIN_HEADER_LEN || header_len > b.len() {
            return Err(Malformed::BadHeaderLength);
        }
        Ok(TcpSegment { buffer })
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 2)
    }

    /// Sequence number.
    pub fn seq(&self) -> u32 {
        get_u32(self.buffer.as_ref(), 4)
    }

    /// Acknowledgement number.
    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), 8)
    }

    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[12] >> 4) * 4
    }

    /// The flag byte (see [`flags`]).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[13]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), CHECKSUM_OFFSET)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpSegment<T> {
    /// Sets the source port (checksum untouched).
    pub fn set_src_port(&mut self, port: u16) {
        put_u16(self.buffer.as_mut(), 0, port);
    }

    /// Sets the destination port (checksum untouched).
    pub fn set_dst_port(&mut self, port: u16) {
        put_u16(self.buffer.as_mut(), 2, port);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, check: u16) {
        put_u16(self.buffer.as_mut(), CHECKSUM_OFFSET, check);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SYN: [u8; 20] = [
        0x9c, 0x40, 0x00, 0x50, // 40000 -> 80
        0, 0, 0, 1, 0, 0, 0, 0, // seq 1, ack 0
        0x50, 0x02, 0xfa, 0xf0, // data offset 5, SYN, window
        0x12, 0x34, 0x00, 0x00, // checksum, urgent
    ];

    #[test]
    fn reads_fields() {
        let t = TcpSegment::new_checked(&SYN[..]).unwrap();
        assert_eq!(t.src_port(), 40000);
        assert_eq!(t.dst_port(), 80);
        assert_eq!(t.seq(), 1);
        assert_eq!(t.header_len(), 20);
        assert_eq!(t.flags(), flags::SYN);
        assert_eq!(t.checksum(), 0x1234);
    }

    #[test]
    fn rejects_bad_offsets() {
        assert_eq!(
            TcpSegment::new_checked(&SYN[..19]).unwrap_err(),
            Malformed::Truncated
        );
        let mut small = SYN;
        small[12] = 0x40;
        assert_eq!(
            TcpSegment::new_checked(&small[..]).unwrap_err(),
            Malformed::BadHeaderLength
        );
        let mut big = SYN;
        big[12] = 0x60; // 24-byte header in 20 bytes
        assert_eq!(
            TcpSegment::new_checked(&big[..]).unwrap_err(),
            Malformed::BadHeaderLength
        );
    }
}
