//! UDP headers (RFC 768).

use crate::{get_u16, put_u16, Malformed};

/// Length of the header.
pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = 6;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpDatagram<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpDatagram<T> {
    /// Wraps `buffer` (the IP payload) after checking the length field.
    ///
    /// # Errors
    /// [`Malformed::Truncated`] if shorter than 8 bytes, [`Malformed::BadLength`] if the
    /// length field is below 8 or beyond the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Malformed::Truncated);
        }
        let len = usize::from(get_u16(b, 4));
        if len < HEADER_LEN || len > b.len() {
            return Err(Malformed::BadLength);
        }
        Ok(UdpDatagram { buffer })
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 2)
    }

    /// Length field (header plus data).
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 4)
    }

    /// Whether the datagram carries no data.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) == HEADER_LEN
    }

    /// Checksum field; 0 means the sender computed none.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), CHECKSUM_OFFSET)
    }

    /// Header and data, up to the length field.
    pub fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpDatagram<T> {
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

    static DGRAM: [u8; 12] = [
        0x13, 0x88, 0x00, 0x07, 0x00, 0x0c, 0xab, 0xcd, b'p', b'i', b'n', b'g',
    ];

    #[test]
    fn reads_fields() {
        let u = UdpDatagram::new_checked(&DGRAM[..]).unwrap();
        assert_eq!(u.src_port(), 5000);
        assert_eq!(u.dst_port(), 7);
        assert_eq!(u.len(), 12);
        assert_eq!(u.checksum(), 0xabcd);
        assert_eq!(&u.datagram()[8..], b"ping");
    }

    #[test]
    fn rejects_lying_lengths() {
        assert_eq!(
            UdpDatagram::new_checked(&DGRAM[..7]).unwrap_err(),
            Malformed::Truncated
        );
        let mut long = DGRAM;
        long[5] = 13;
        assert_eq!(
            UdpDatagram::new_checked(&long[..]).unwrap_err(),
            Malformed::BadLength
        );
        let mut short = DGRAM;
        short[5] = 7;
        assert_eq!(
            UdpDatagram::new_checked(&short[..]).unwrap_err(),
            Malformed::BadLength
        );
    }
}
