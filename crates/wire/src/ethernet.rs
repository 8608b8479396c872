//! Ethernet II frames (no VLAN tags: the director's interfaces are untagged; tagged frames
//! are not IPv4/ARP by their EtherType and are left alone).

use crate::{get_u16, put_u16, Malformed};

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = 14;

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00 (the unknown target hardware address of an ARP request).
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Group (multicast or broadcast) addresses have the low bit of the first octet set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl std::fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` after checking it holds a whole header.
    ///
    /// # Errors
    /// [`Malformed::Truncated`] if it is shorter than 14 bytes.
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Malformed::Truncated);
        }
        Ok(EthernetFrame { buffer })
    }

    /// Wraps `buffer` without checking it, for bytes already checked with
    /// [`EthernetFrame::new_checked`] (a caller that parses a frame once and then reads it
    /// again through this view).
    ///
    /// # Panics
    /// The accessors panic if `buffer` is shorter than 14 bytes.
    pub fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Destination MAC.
    pub fn dst_addr(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[0..6]);
        MacAddr(m)
    }

    /// Source MAC.
    pub fn src_addr(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[6..12]);
        MacAddr(m)
    }

    /// EtherType.
    pub fn ethertype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 12)
    }

    /// The bytes after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC.
    pub fn set_dst_addr(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[0..6].copy_from_slice(&mac.0);
    }

    /// Sets the source MAC.
    pub fn set_src_addr(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[6..12].copy_from_slice(&mac.0);
    }

    /// Sets the EtherType.
    pub fn set_ethertype(&mut self, ethertype: u16) {
        put_u16(self.buffer.as_mut(), 12, ethertype);
    }

    /// The bytes after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static FRAME: [u8; 16] = [
        0x02, 0, 0, 0, 0, 1, // dst
        0x02, 0, 0, 0, 0, 2, // src
        0x08, 0x06, // ARP
        0xaa, 0xbb,
    ];

    #[test]
    fn reads_fields() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.src_addr().to_string(), "02:00:00:00:00:02");
        assert_eq!(f.ethertype(), ETHERTYPE_ARP);
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn rejects_short_buffer() {
        assert_eq!(
            EthernetFrame::new_checked(&FRAME[..13]).unwrap_err(),
            Malformed::Truncated
        );
    }

    #[test]
    fn unchecked_view_reads_what_the_checked_one_does() {
        let checked = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        let unchecked = EthernetFrame::new_unchecked(&FRAME[..]);
        assert_eq!(unchecked.dst_addr(), checked.dst_addr());
        assert_eq!(unchecked.src_addr(), checked.src_addr());
        assert_eq!(unchecked.ethertype(), checked.ethertype());
        assert_eq!(unchecked.payload(), checked.payload());
    }

    #[test]
    fn writes_fields() {
        let mut buf = FRAME;
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_dst_addr(MacAddr::BROADCAST);
        f.set_ethertype(ETHERTYPE_IPV4);
        assert!(f.dst_addr().is_multicast());
        assert_eq!(f.ethertype(), ETHERTYPE_IPV4);
    }
}
