//! The IPVS connection-sync protocol, version 1: the UDP payload a kernel sync daemon
//! multicasts (by default to 224.0.0.81:8848) so that its backups learn its connections.
//!
//! A message is an 8-byte header followed by `nr_conns` entries:
//!
//! ```text
//!  header:  0 | syncid | size (u16, whole message) | nr_conns | version = 1 | spare = 0 (u16)
//!  entry:   type (bit 0: IPv6) | protocol | version (4 bits) + size (12 bits)
//!           flags (u32) | state (u16) | cport | vport | dport | fwmark (u32) | timeout (u32, s)
//!           caddr | vaddr | daddr (4 or 16 bytes each)
//!           options: type (u8) | length (u8) | data — sequence data (1), persistence-engine
//!           data (2), persistence-engine name (3); bit 6 of the type marks an option a
//!           receiver that does not know it may skip.
//! ```
//!
//! All fields are big-endian. An entry's size counts its options; the next entry starts
//! at the following 4-byte boundary (the padding belongs to the gap, a message never ends
//! with it). The first byte is 0 so that version-0 receivers, which read it as a count,
//! drop the message.
//!
//! [`SyncMessage::new_checked`] walks the whole message once: after it succeeds every
//! entry lies inside the buffer and inside the message's size, and no accessor can read
//! past either. A message is refused as a whole, with the reason, if any entry is
//! malformed — a receiver never applies half of a message it cannot trust. Entries that
//! are well-formed but describe something the receiver does not handle (an unknown
//! mandatory option) are reported per entry by [`SyncEntry::has_unknown_mandatory_option`].
//! [`MessageWriter`] builds messages no larger than the buffer it is given, which the
//! caller sizes to its sync-maxlen.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{get_u16, get_u32, put_u16};

/// Length of the message header.
pub const HEADER_LEN: usize = 8;
/// The protocol version this module speaks (header byte 5).
pub const PROTOCOL_VERSION: u8 = 1;
/// Fixed part of an IPv4 entry.
pub const ENTRY_V4_LEN: usize = 36;
/// Fixed part of an IPv6 entry.
pub const ENTRY_V6_LEN: usize = 72;
/// Length of the sequence-data option's payload: in and out `(init_seq, delta, previous_delta)`.
pub const SEQ_DATA_LEN: usize = 24;
/// Longest persistence-engine name a receiver accepts (the kernel's `IP_VS_PENAME_MAXLEN`).
pub const PE_NAME_MAX_LEN: usize = 16;
/// The most entries a message can count (`nr_conns` is one byte).
pub const MAX_ENTRIES: usize = 255;
/// Default multicast group of the kernel's sync daemon.
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// Default UDP port of the kernel's sync daemon.
pub const DEFAULT_PORT: u16 = 8848;

/// Entry type bit: the addresses are IPv6.
const TYPE_INET6: u8 = 1;
/// An entry's version lives in the top 4 bits of the `ver_size` word.
const ENTRY_VERSION_SHIFT: u16 = 12;
const ENTRY_SIZE_MASK: u16 = 0x0fff;
const OPT_SEQ_DATA: u8 = 1;
const OPT_PE_DATA: u8 = 2;
const OPT_PE_NAME: u8 = 3;
/// Set in an option's type when a receiver that does not know the option may skip it.
const OPT_SKIPPABLE: u8 = 1 << 6;

/// Connection flags as they travel (the kernel's `IP_VS_CONN_F_*`).
pub mod flags {
    /// Forwarding method bits.
    pub const FWD_MASK: u32 = 0x0007;
    /// NAT (masquerading): forwarding method 0.
    pub const MASQ: u32 = 0x0000;
    /// Direct routing.
    pub const DROUTE: u32 = 0x0003;
    /// Tunnelling.
    pub const TUNNEL: u32 = 0x0002;
    /// Local node (the director is its own real server).
    pub const LOCALNODE: u32 = 0x0001;
    /// The director sees no server-to-client traffic for this entry yet.
    pub const NOOUTPUT: u32 = 0x0080;
    /// Counted as an inactive connection.
    pub const INACTIVE: u32 = 0x0100;
    /// Sequence-number adjustment in either direction (the `SEQ_DATA` option follows).
    pub const SEQ_MASK: u32 = 0x0600;
    /// The client port is not known yet (a template without port).
    pub const NO_CPORT: u32 = 0x0800;
    /// A persistence template, not a connection.
    pub const TEMPLATE: u32 = 0x1000;
    /// One-packet scheduling: never synced.
    pub const ONE_PACKET: u32 = 0x2000;
    /// The flags a backup keeps from a message (the kernel's `IP_VS_CONN_F_BACKUP_MASK`).
    pub const BACKUP_MASK: u32 = FWD_MASK | NOOUTPUT | INACTIVE | SEQ_MASK | NO_CPORT | TEMPLATE;
}

/// Why a message was refused. Each reason is counted separately by the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncRefusal {
    /// Shorter than the 8-byte header.
    Truncated,
    /// The header's size differs from the datagram's length.
    SizeMismatch,
    /// Not a version-1 message (version byte, or a non-zero reserved/spare field;
    /// version-0 messages are not handled).
    UnknownVersion,
    /// `nr_conns` promises an entry the message has no room for.
    MissingEntry,
    /// An entry's size is below its fixed part or runs past the message.
    EntryOverrun,
    /// An entry carries a version other than 0.
    UnknownEntryVersion,
    /// An entry's type is neither IPv4 (0) nor IPv6 (1).
    UnknownEntryType,
    /// An option is empty, runs past its entry, has the wrong length or comes twice.
    BadOption,
    /// Bytes follow the last counted entry.
    TrailingBytes,
}

impl SyncRefusal {
    /// Every reason, in a stable order (for counters).
    pub const ALL: [SyncRefusal; 9] = [
        SyncRefusal::Truncated,
        SyncRefusal::SizeMismatch,
        SyncRefusal::UnknownVersion,
        SyncRefusal::MissingEntry,
        SyncRefusal::EntryOverrun,
        SyncRefusal::UnknownEntryVersion,
        SyncRefusal::UnknownEntryType,
        SyncRefusal::BadOption,
        SyncRefusal::TrailingBytes,
    ];

    /// A short snake_case name, for metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            SyncRefusal::Truncated => "truncated",
            SyncRefusal::SizeMismatch => "size_mismatch",
            SyncRefusal::UnknownVersion => "unknown_version",
            SyncRefusal::MissingEntry => "missing_entry",
            SyncRefusal::EntryOverrun => "entry_overrun",
            SyncRefusal::UnknownEntryVersion => "unknown_entry_version",
            SyncRefusal::UnknownEntryType => "unknown_entry_type",
            SyncRefusal::BadOption => "bad_option",
            SyncRefusal::TrailingBytes => "trailing_bytes",
        }
    }
}

impl std::fmt::Display for SyncRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SyncRefusal::Truncated => "shorter than the sync header",
            SyncRefusal::SizeMismatch => "size field differs from the datagram length",
            SyncRefusal::UnknownVersion => "not a version-1 sync message",
            SyncRefusal::MissingEntry => "fewer entries than the header counts",
            SyncRefusal::EntryOverrun => "entry size runs past the message",
            SyncRefusal::UnknownEntryVersion => "unknown entry version",
            SyncRefusal::UnknownEntryType => "unknown entry type",
            SyncRefusal::BadOption => "malformed entry option",
            SyncRefusal::TrailingBytes => "bytes after the last entry",
        })
    }
}

impl std::error::Error for SyncRefusal {}

/// A checked view of one sync message.
#[derive(Debug, Clone)]
pub struct SyncMessage<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SyncMessage<T> {
    /// Wraps `buffer` (one whole UDP payload) after validating the header and every entry.
    ///
    /// # Errors
    /// The first [`SyncRefusal`] met, walking the message from the start.
    pub fn new_checked(buffer: T) -> Result<Self, SyncRefusal> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(SyncRefusal::Truncated);
        }
        if usize::from(get_u16(b, 2)) != b.len() {
            return Err(SyncRefusal::SizeMismatch);
        }
        if b[0] != 0 || b[5] != PROTOCOL_VERSION || get_u16(b, 6) != 0 {
            return Err(SyncRefusal::UnknownVersion);
        }
        let mut at = HEADER_LEN;
        let mut end = HEADER_LEN;
        for _ in 0..b[4] {
            let entry = SyncEntry::parse(b, at)?;
            end = at + entry.bytes.len();
            at = end.next_multiple_of(4);
        }
        if end != b.len() {
            return Err(SyncRefusal::TrailingBytes);
        }
        Ok(SyncMessage { buffer })
    }

    /// The sender's sync id (a backup with a non-zero id ignores other ids).
    pub fn syncid(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// How many entries the message holds.
    pub fn entry_count(&self) -> usize {
        usize::from(self.buffer.as_ref()[4])
    }

    /// The entries, in message order.
    pub fn entries(&self) -> Entries<'_> {
        Entries {
            message: self.buffer.as_ref(),
            at: HEADER_LEN,
            left: self.entry_count(),
        }
    }
}

/// Iterator over the entries of a checked [`SyncMessage`].
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    message: &'a [u8],
    at: usize,
    left: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = SyncEntry<'a>;

    fn next(&mut self) -> Option<SyncEntry<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The message was walked by `new_checked`: every counted entry parses.
        let entry = SyncEntry::parse(self.message, self.at).ok()?;
        self.at = (self.at + entry.bytes.len()).next_multiple_of(4);
        Some(entry)
    }
}

/// One entry of a checked message: exactly its `size` bytes, options included.
#[derive(Debug, Clone, Copy)]
pub struct SyncEntry<'a> {
    bytes: &'a [u8],
    seq: Option<usize>,
    pe_data: Option<(usize, usize)>,
    pe_name: Option<(usize, usize)>,
    unknown_mandatory: bool,
}

impl<'a> SyncEntry<'a> {
    /// Validates the entry starting at `at` in `message`.
    fn parse(message: &'a [u8], at: usize) -> Result<Self, SyncRefusal> {
        let rest = message.get(at..).ok_or(SyncRefusal::MissingEntry)?;
        if rest.len() < ENTRY_V4_LEN {
            return Err(SyncRefusal::MissingEntry);
        }
        let ver_size = get_u16(rest, 2);
        if ver_size >> ENTRY_VERSION_SHIFT != 0 {
            return Err(SyncRefusal::UnknownEntryVersion);
        }
        let fixed = match rest[0] {
            0 => ENTRY_V4_LEN,
            TYPE_INET6 => ENTRY_V6_LEN,
            _ => return Err(SyncRefusal::UnknownEntryType),
        };
        let size = usize::from(ver_size & ENTRY_SIZE_MASK);
        if size < fixed || size > rest.len() {
            return Err(SyncRefusal::EntryOverrun);
        }
        let mut entry = SyncEntry {
            bytes: &rest[..size],
            seq: None,
            pe_data: None,
            pe_name: None,
            unknown_mandatory: false,
        };
        let mut p = fixed;
        while p < size {
            if p + 2 > size {
                return Err(SyncRefusal::BadOption);
            }
            let (kind, len) = (rest[p], usize::from(rest[p + 1]));
            let data = p + 2;
            if len == 0 || data + len > size {
                return Err(SyncRefusal::BadOption);
            }
            let slot = match kind & !OPT_SKIPPABLE {
                OPT_SEQ_DATA if len == SEQ_DATA_LEN && entry.seq.is_none() => {
                    entry.seq = Some(data);
                    None
                }
                OPT_SEQ_DATA => return Err(SyncRefusal::BadOption),
                OPT_PE_DATA => Some(&mut entry.pe_data),
                OPT_PE_NAME if len <= PE_NAME_MAX_LEN => Some(&mut entry.pe_name),
                OPT_PE_NAME => return Err(SyncRefusal::BadOption),
                _ => {
                    entry.unknown_mandatory |= kind & OPT_SKIPPABLE == 0;
                    None
                }
            };
            if let Some(slot) = slot {
                if slot.replace((data, len)).is_some() {
                    return Err(SyncRefusal::BadOption);
                }
            }
            p = data + len;
        }
        Ok(entry)
    }

    /// Whether the addresses are IPv6.
    pub fn is_ipv6(&self) -> bool {
        self.bytes[0] == TYPE_INET6
    }

    /// IP protocol number.
    pub fn protocol(&self) -> u8 {
        self.bytes[1]
    }

    /// Connection flags as sent ([`flags`]).
    pub fn flags(&self) -> u32 {
        get_u32(self.bytes, 4)
    }

    /// Protocol state index (for TCP the kernel's `IP_VS_TCP_S_*`; for a template 0 NONE
    /// or 1 ASSURED).
    pub fn state(&self) -> u16 {
        get_u16(self.bytes, 8)
    }

    /// Client port.
    pub fn cport(&self) -> u16 {
        get_u16(self.bytes, 10)
    }

    /// Virtual port.
    pub fn vport(&self) -> u16 {
        get_u16(self.bytes, 12)
    }

    /// Real server port.
    pub fn dport(&self) -> u16 {
        get_u16(self.bytes, 14)
    }

    /// Firewall mark of a fwmark service, else 0.
    pub fn fwmark(&self) -> u32 {
        get_u32(self.bytes, 16)
    }

    /// Seconds the sender would keep the entry; 0 means "the receiver's own timeout".
    pub fn timeout(&self) -> u32 {
        get_u32(self.bytes, 20)
    }

    /// Client address.
    pub fn caddr(&self) -> IpAddr {
        self.addr(0)
    }

    /// Virtual address.
    pub fn vaddr(&self) -> IpAddr {
        self.addr(1)
    }

    /// Real server address.
    pub fn daddr(&self) -> IpAddr {
        self.addr(2)
    }

    fn addr(&self, index: usize) -> IpAddr {
        if self.is_ipv6() {
            let at = 24 + 16 * index;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&self.bytes[at..at + 16]);
            IpAddr::V6(Ipv6Addr::from(octets))
        } else {
            IpAddr::V4(Ipv4Addr::from(get_u32(self.bytes, 24 + 4 * index)))
        }
    }

    /// The sequence-adjustment data, if the entry carries it.
    pub fn seq_data(&self) -> Option<SeqData> {
        self.seq
            .map(|at| SeqData::read(&self.bytes[at..at + SEQ_DATA_LEN]))
    }

    /// The persistence engine's data (e.g. a SIP Call-ID), if any.
    pub fn pe_data(&self) -> Option<&'a [u8]> {
        self.pe_data.map(|(at, len)| &self.bytes[at..at + len])
    }

    /// The persistence engine's name, if any.
    pub fn pe_name(&self) -> Option<&'a [u8]> {
        self.pe_name.map(|(at, len)| &self.bytes[at..at + len])
    }

    /// Whether an option the receiver must understand, and that this module does not
    /// know, is present: the kernel skips such an entry and so should a receiver.
    pub fn has_unknown_mandatory_option(&self) -> bool {
        self.unknown_mandatory
    }

    /// The entry's fields, without its persistence-engine options.
    pub fn repr(&self) -> SyncConn {
        SyncConn {
            protocol: self.protocol(),
            flags: self.flags(),
            state: self.state(),
            caddr: self.caddr(),
            cport: self.cport(),
            vaddr: self.vaddr(),
            vport: self.vport(),
            daddr: self.daddr(),
            dport: self.dport(),
            fwmark: self.fwmark(),
            timeout: self.timeout(),
            seq: self.seq_data(),
        }
    }
}

/// Sequence-number adjustment of one direction (the kernel's `struct ip_vs_seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeqAdjust {
    pub init_seq: u32,
    pub delta: u32,
    pub previous_delta: u32,
}

/// Both directions' sequence adjustment (the `SEQ_DATA` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeqData {
    pub incoming: SeqAdjust,
    pub outgoing: SeqAdjust,
}

impl SeqData {
    fn read(b: &[u8]) -> SeqData {
        let adjust = |at: usize| SeqAdjust {
            init_seq: get_u32(b, at),
            delta: get_u32(b, at + 4),
            previous_delta: get_u32(b, at + 8),
        };
        SeqData {
            incoming: adjust(0),
            outgoing: adjust(12),
        }
    }

    fn write(&self, b: &mut [u8]) {
        let words = [
            self.incoming.init_seq,
            self.incoming.delta,
            self.incoming.previous_delta,
            self.outgoing.init_seq,
            self.outgoing.delta,
            self.outgoing.previous_delta,
        ];
        for (chunk, word) in b.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
    }
}

/// One connection or template as the protocol carries it.
///
/// The three addresses must be of one family; [`MessageWriter::push`] refuses a mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConn {
    pub protocol: u8,
    pub flags: u32,
    pub state: u16,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    pub fwmark: u32,
    /// Seconds.
    pub timeout: u32,
    pub seq: Option<SeqData>,
}

impl SyncConn {
    /// Bytes the entry takes, options included, padding excluded.
    pub fn encoded_len(&self) -> usize {
        let fixed = if self.caddr.is_ipv6() {
            ENTRY_V6_LEN
        } else {
            ENTRY_V4_LEN
        };
        fixed + self.seq.map_or(0, |_| 2 + SEQ_DATA_LEN)
    }
}

/// Why [`MessageWriter::push`] did not add an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// No room left (buffer or the 255-entry count): finish this message, start another.
    Full,
    /// The addresses are not all of one family.
    MixedFamilies,
}

/// Builds one message into a caller-provided buffer (sized to the sync-maxlen).
#[derive(Debug)]
pub struct MessageWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    count: u8,
}

impl<'a> MessageWriter<'a> {
    /// Starts a message for `syncid` in `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than the header plus one IPv4 entry, or longer than the
    /// header's 16-bit size can count.
    pub fn new(buf: &'a mut [u8], syncid: u8) -> Self {
        assert!(
            buf.len() >= HEADER_LEN + ENTRY_V4_LEN,
            "sync buffer too small"
        );
        assert!(
            buf.len() <= usize::from(u16::MAX),
            "sync buffer beyond a size field"
        );
        buf[..HEADER_LEN].copy_from_slice(&[0, syncid, 0, 0, 0, PROTOCOL_VERSION, 0, 0]);
        MessageWriter {
            buf,
            len: HEADER_LEN,
            count: 0,
        }
    }

    /// Whether no entry has been added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends `conn`, after padding the previous entry to 4 bytes.
    ///
    /// # Errors
    /// [`PushError::Full`] when it does not fit (the message is unchanged),
    /// [`PushError::MixedFamilies`] for addresses of two families.
    pub fn push(&mut self, conn: &SyncConn) -> Result<(), PushError> {
        let v6 = conn.caddr.is_ipv6();
        if conn.vaddr.is_ipv6() != v6 || conn.daddr.is_ipv6() != v6 {
            return Err(PushError::MixedFamilies);
        }
        let start = self.len.next_multiple_of(4);
        let size = conn.encoded_len();
        if usize::from(self.count) == MAX_ENTRIES || start + size > self.buf.len() {
            return Err(PushError::Full);
        }
        let e = &mut self.buf[self.len..start + size];
        e.fill(0);
        let e = &mut e[start - self.len..];
        e[0] = if v6 { TYPE_INET6 } else { 0 };
        e[1] = conn.protocol;
        // `size` is at most ENTRY_V6_LEN plus one option: it fits the 12 bits.
        put_u16(e, 2, size as u16);
        e[4..8].copy_from_slice(&conn.flags.to_be_bytes());
        put_u16(e, 8, conn.state);
        put_u16(e, 10, conn.cport);
        put_u16(e, 12, conn.vport);
        put_u16(e, 14, conn.dport);
        e[16..20].copy_from_slice(&conn.fwmark.to_be_bytes());
        e[20..24].copy_from_slice(&conn.timeout.to_be_bytes());
        let mut at = 24;
        for addr in [conn.caddr, conn.vaddr, conn.daddr] {
            match addr {
                IpAddr::V4(a) => {
                    e[at..at + 4].copy_from_slice(&a.octets());
                    at += 4;
                }
                IpAddr::V6(a) => {
                    e[at..at + 16].copy_from_slice(&a.octets());
                    at += 16;
                }
            }
        }
        if let Some(seq) = &conn.seq {
            e[at] = OPT_SEQ_DATA;
            e[at + 1] = SEQ_DATA_LEN as u8;
            seq.write(&mut e[at + 2..at + 2 + SEQ_DATA_LEN]);
        }
        self.len = start + size;
        self.count += 1;
        Ok(())
    }

    /// Writes the header's size and count; returns the message's length.
    pub fn finish(self) -> usize {
        // `new` bounded the buffer to what the size field counts.
        put_u16(self.buf, 2, self.len as u16);
        self.buf[4] = self.count;
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The UDP payload a kernel master (syncid 7) sent while it handled: two connections
    /// opened and closed to 192.168.0.10:80, one held open, and one to the persistent
    /// service 192.168.0.10:8080 with its template — captured on the wire.
    #[rustfmt::skip]
    const KERNEL_MESSAGE: [u8; 440] = [
    0x00, 0x07, 0x01, 0xb8, 0x0c, 0x01, 0x00, 0x00,
    0x00, 0x06, 0x00, 0x24, 0x00, 0x00, 0x01, 0x00, 0x00, 0x07, 0x4e, 0x21,
    0x00, 0x50, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3c,
    0xc0, 0xa8, 0x00, 0x65, 0xc0, 0xa8, 0x00, 0x0a, 0xc0, 0xa8, 0x64, 0x0b,
    0x00, 0x06, 0x00, 0x24, 0x00, 0x00, 0x01, 0x00, 0x00, 0x05, 0x4e, 0x21,
    0x00, 0x50, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x78,
    0xc0, 0xa8, 0x00, 0x65, 0xc0, 0xa8, 0x00, 0x0a, 0xc0, 0xa8, 0x64, 0x0b,
    0x00, 0x06, 0x00, 0x24, 0x00, 0x00, 0x01, 0x00, 0x00, 0x07, 0x4e, 0x22,
    0x00, 0x50, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3c,
    0xc0, 0xa8, 0x00, 0x66, 0xc0, 0xa8, 0x00, 0x0a, 0xc0, 0xa8, 0x64, 0x09,
    0x00, 0x06, 0x00, 0x24, 0x00, 0x00, 0x01, 0x00, 0x00, 0x05, 0x4e, 0x22,
    0x00, 0x50, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x78,
    0xc0, 0xa8, 0x00, 0x66, 0xc0, 0xa8, 0x00, 0x0a, 0xc0, 0xa8, 0x64, 0x09,
    0x00, 0x06, 0x00, 0x24, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x4e, 0x23,
    0x00, 0x50, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x84,
    0xc0, 0xa8, 0x00, 0x67, 0xc0, 0xa8, 0x00, 0x0a, 0xc0, 0xa8, 0x64, 0x07,
    0x00, 0x06, 0x00, 0x24, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x1f, 0x90, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x2c,
    0xc0, 0xa8, 0x00, 0x68, 0xc0, 0xa8, 0x00, 0x0a, 0xc0, 0xa8, 0x64, 0x07,
    0x00, 0x06, 0x00, 0x24, 0x00, 0x00, 0x11, 0x00, 0x00, 0x01, 0x00, 0x00,
    0x1f, 0x90, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x2c,
    0xc0, 0xa8, 0x00, 0x68, 0xc0, 0xa8, 0x00, 0x0a, 0xc0, 0xa8, 0x64, 0x07,
    0x00, 0x06, 0x00, 0x24, 0x00, 0x00, 0x01, 0x00, 0x00, 0x07, 0x4e, 0x24,
    0x1f, 0x90, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3c,
    0xc0, 0xa8, 0x00, 0x68, 0xc0, 0xa8, 0x00, 0x0a, 0xc0, 0xa8, 0x64, 0x07,
    0x00, 0x06, 0x00, 0x24, 0x00, 0x00, 0x11, 0x00, 0x00, 0x01, 0x00, 0x00,
    0x1f, 0x90, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x2c,
    0xc0, 0xa8, 0x00, 0x68, 0xc0, 0xa8, 0x00, 0x0a, 0xc0, 0xa8, 0x64, 0x07,
    0x00, 0x06, 0x00, 0x24, 0x00, 0x00, 0x11, 0x00, 0x00, 0x01, 0x00, 0x00,
    0x1f, 0x90, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x2c,
    0xc0, 0xa8, 0x00, 0x68, 0xc0, 0xa8, 0x00, 0x0a, 0xc0, 0xa8, 0x64, 0x07,
    0x00, 0x06, 0x00, 0x24, 0x00, 0x00, 0x01, 0x00, 0x00, 0x05, 0x4e, 0x24,
    0x1f, 0x90, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x78,
    0xc0, 0xa8, 0x00, 0x68, 0xc0, 0xa8, 0x00, 0x0a, 0xc0, 0xa8, 0x64, 0x07,
    0x00, 0x06, 0x00, 0x24, 0x00, 0x00, 0x11, 0x00, 0x00, 0x01, 0x00, 0x00,
    0x1f, 0x90, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x2c,
    0xc0, 0xa8, 0x00, 0x68, 0xc0, 0xa8, 0x00, 0x0a, 0xc0, 0xa8, 0x64, 0x07,
    ];

    const TCP: u8 = 6;
    const NONE: u16 = 0;
    const ESTABLISHED: u16 = 1;
    const TIME_WAIT: u16 = 5;
    const CLOSE_WAIT: u16 = 7;
    const ASSURED: u16 = 1;
    const TEMPLATE: u32 = flags::TEMPLATE | flags::INACTIVE;

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    /// (flags, state, client, cport, vport, real server, timeout) of each entry.
    fn kernel_entries() -> Vec<SyncConn> {
        let vip = v4([192, 168, 0, 10]);
        let rows: [(u32, u16, u8, u16, u16, u8, u32); 12] = [
            (flags::INACTIVE, CLOSE_WAIT, 101, 20001, 80, 11, 60),
            (flags::INACTIVE, TIME_WAIT, 101, 20001, 80, 11, 120),
            (flags::INACTIVE, CLOSE_WAIT, 102, 20002, 80, 9, 60),
            (flags::INACTIVE, TIME_WAIT, 102, 20002, 80, 9, 120),
            (flags::MASQ, ESTABLISHED, 103, 20003, 80, 7, 900),
            (TEMPLATE, NONE, 104, 0, 8080, 7, 300),
            (TEMPLATE, ASSURED, 104, 0, 8080, 7, 300),
            (flags::INACTIVE, CLOSE_WAIT, 104, 20004, 8080, 7, 60),
            (TEMPLATE, ASSURED, 104, 0, 8080, 7, 300),
            (TEMPLATE, ASSURED, 104, 0, 8080, 7, 300),
            (flags::INACTIVE, TIME_WAIT, 104, 20004, 8080, 7, 120),
            (TEMPLATE, ASSURED, 104, 0, 8080, 7, 300),
        ];
        rows.iter()
            .map(
                |&(flags, state, client, cport, vport, rs, timeout)| SyncConn {
                    protocol: TCP,
                    flags,
                    state,
                    caddr: v4([192, 168, 0, client]),
                    cport,
                    vaddr: vip,
                    vport,
                    daddr: v4([192, 168, 100, rs]),
                    dport: 80,
                    fwmark: 0,
                    timeout,
                    seq: None,
                },
            )
            .collect()
    }

    fn encode(syncid: u8, conns: &[SyncConn], maxlen: usize) -> Vec<u8> {
        let mut buf = vec![0u8; maxlen];
        let mut w = MessageWriter::new(&mut buf, syncid);
        for c in conns {
            w.push(c).expect("fits");
        }
        let len = w.finish();
        buf.truncate(len);
        buf
    }

    fn refusal(bytes: &[u8]) -> SyncRefusal {
        SyncMessage::new_checked(bytes).expect_err("must be refused")
    }

    #[test]
    fn decodes_the_kernels_message() {
        let msg = SyncMessage::new_checked(&KERNEL_MESSAGE[..]).expect("kernel message");
        assert_eq!((msg.syncid(), msg.entry_count()), (7, 12));
        let got: Vec<SyncConn> = msg.entries().map(|e| e.repr()).collect();
        assert_eq!(got, kernel_entries());
        assert!(msg
            .entries()
            .all(|e| !e.is_ipv6() && !e.has_unknown_mandatory_option() && e.pe_data().is_none()));
    }

    #[test]
    fn encodes_the_kernels_message_byte_for_byte() {
        assert_eq!(encode(7, &kernel_entries(), 1472), KERNEL_MESSAGE);
    }

    #[test]
    fn refuses_every_truncation() {
        for len in 0..KERNEL_MESSAGE.len() {
            let want = if len < HEADER_LEN {
                SyncRefusal::Truncated
            } else {
                SyncRefusal::SizeMismatch
            };
            assert_eq!(refusal(&KERNEL_MESSAGE[..len]), want, "length {len}");
        }
    }

    #[test]
    fn refuses_a_truncation_whose_size_field_was_fixed_up() {
        let mut m = KERNEL_MESSAGE[..100].to_vec();
        m[2..4].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(refusal(&m), SyncRefusal::MissingEntry);
    }

    fn altered(at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut m = KERNEL_MESSAGE.to_vec();
        m[at..at + bytes.len()].copy_from_slice(bytes);
        m
    }

    #[test]
    fn refuses_lying_headers() {
        assert_eq!(
            refusal(&altered(2, &[0x01, 0xb7])),
            SyncRefusal::SizeMismatch
        );
        assert_eq!(
            refusal(&altered(2, &[0x01, 0xb9])),
            SyncRefusal::SizeMismatch
        );
        assert_eq!(refusal(&altered(4, &[13])), SyncRefusal::MissingEntry);
        assert_eq!(refusal(&altered(4, &[11])), SyncRefusal::TrailingBytes);
        assert_eq!(refusal(&altered(5, &[0])), SyncRefusal::UnknownVersion);
        assert_eq!(refusal(&altered(5, &[2])), SyncRefusal::UnknownVersion);
        assert_eq!(refusal(&altered(0, &[1])), SyncRefusal::UnknownVersion);
        assert_eq!(refusal(&altered(6, &[0, 1])), SyncRefusal::UnknownVersion);
    }

    #[test]
    fn refuses_lying_entries() {
        let last = HEADER_LEN + 11 * ENTRY_V4_LEN;
        // Size past the message, size below the fixed part.
        assert_eq!(
            refusal(&altered(last + 2, &[0x00, 0x28])),
            SyncRefusal::EntryOverrun
        );
        assert_eq!(
            refusal(&altered(last + 2, &[0x00, 0x10])),
            SyncRefusal::EntryOverrun
        );
        assert_eq!(
            refusal(&altered(HEADER_LEN + 2, &[0x0f, 0xff])),
            SyncRefusal::EntryOverrun
        );
        // An IPv6 type on an entry only long enough for IPv4.
        assert_eq!(refusal(&altered(last, &[1])), SyncRefusal::EntryOverrun);
        assert_eq!(refusal(&altered(last, &[2])), SyncRefusal::UnknownEntryType);
        assert_eq!(
            refusal(&altered(last + 2, &[0x10, 0x24])),
            SyncRefusal::UnknownEntryVersion
        );
    }

    #[test]
    fn refuses_a_message_with_one_bad_entry_among_good_ones() {
        let mut conns = kernel_entries();
        conns.truncate(3);
        let mut m = encode(7, &conns, 1472);
        m[HEADER_LEN + ENTRY_V4_LEN + 2..][..2].copy_from_slice(&[0x00, 0x60]);
        assert_eq!(refusal(&m), SyncRefusal::EntryOverrun);
    }

    /// One IPv4 entry followed by `options` (already padded by the caller as it wishes).
    fn with_options(options: &[u8]) -> Vec<u8> {
        let mut m = encode(0, &kernel_entries()[4..5], 1472);
        m.extend_from_slice(options);
        let size = (ENTRY_V4_LEN + options.len()) as u16;
        m[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&size.to_be_bytes());
        let total = m.len() as u16;
        m[2..4].copy_from_slice(&total.to_be_bytes());
        m
    }

    #[test]
    fn reads_options() {
        let mut opts = vec![OPT_SEQ_DATA, 24];
        opts.extend((1..=24).collect::<Vec<u8>>());
        opts.extend([OPT_PE_NAME, 3, b's', b'i', b'p']);
        opts.extend([OPT_PE_DATA, 4, b'c', b'a', b'l', b'l']);
        opts.extend([OPT_SKIPPABLE | 9, 1, 0xaa]);
        let m = with_options(&opts);
        let msg = SyncMessage::new_checked(&m[..]).expect("valid options");
        let e = msg.entries().next().expect("one entry");
        assert_eq!(e.pe_name(), Some(&b"sip"[..]));
        assert_eq!(e.pe_data(), Some(&b"call"[..]));
        assert!(!e.has_unknown_mandatory_option());
        let seq = e.seq_data().expect("seq data");
        assert_eq!(seq.incoming.init_seq, 0x0102_0304);
        assert_eq!(seq.outgoing.previous_delta, 0x1516_1718);
    }

    #[test]
    fn flags_an_unknown_mandatory_option() {
        let m = with_options(&[9, 2, 0, 0]);
        let msg = SyncMessage::new_checked(&m[..]).expect("well-formed");
        assert!(msg
            .entries()
            .next()
            .expect("entry")
            .has_unknown_mandatory_option());
    }

    #[test]
    fn refuses_bad_options() {
        let mut seq = vec![OPT_SEQ_DATA, 24];
        seq.extend([0u8; 24]);
        let twice = [seq.clone(), seq].concat();
        let long_name = [&[OPT_PE_NAME, 17][..], &[b'x'; 17]].concat();
        for opts in [
            &[OPT_PE_DATA, 0][..],
            &[OPT_PE_DATA, 5, 1, 2][..],
            &[OPT_PE_DATA][..],
            &[OPT_SEQ_DATA, 2, 0, 0][..],
            &[OPT_PE_DATA, 1, 0, OPT_PE_DATA, 1, 0][..],
            &twice[..],
            &long_name[..],
        ] {
            assert_eq!(
                refusal(&with_options(opts)),
                SyncRefusal::BadOption,
                "{opts:?}"
            );
        }
    }

    #[test]
    fn writer_keeps_to_the_maxlen() {
        let conns = kernel_entries();
        let mut buf = [0u8; 100];
        let mut w = MessageWriter::new(&mut buf, 1);
        assert!(w.is_empty());
        w.push(&conns[0]).expect("first");
        w.push(&conns[1]).expect("second");
        assert_eq!(w.push(&conns[2]), Err(PushError::Full));
        assert_eq!(w.finish(), HEADER_LEN + 2 * ENTRY_V4_LEN);
        let msg = SyncMessage::new_checked(&buf[..80]).expect("valid");
        assert_eq!(msg.entry_count(), 2);
    }

    #[test]
    fn writer_stops_at_255_entries() {
        let mut buf = vec![0u8; 65507];
        let mut w = MessageWriter::new(&mut buf, 0);
        for _ in 0..MAX_ENTRIES {
            w.push(&kernel_entries()[0]).expect("room");
        }
        assert_eq!(w.push(&kernel_entries()[0]), Err(PushError::Full));
    }

    #[test]
    fn writer_refuses_mixed_families() {
        let mut c = kernel_entries()[0];
        c.daddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let mut buf = [0u8; 200];
        let mut w = MessageWriter::new(&mut buf, 0);
        assert_eq!(w.push(&c), Err(PushError::MixedFamilies));
    }

    fn any_conn() -> impl Strategy<Value = SyncConn> {
        let addrs = prop_oneof![
            any::<[u32; 3]>().prop_map(|a| a.map(|x| IpAddr::V4(Ipv4Addr::from(x)))),
            any::<[u128; 3]>().prop_map(|a| a.map(|x| IpAddr::V6(Ipv6Addr::from(x)))),
        ];
        let seq = proptest::option::of(any::<[u32; 6]>().prop_map(|w| SeqData {
            incoming: SeqAdjust {
                init_seq: w[0],
                delta: w[1],
                previous_delta: w[2],
            },
            outgoing: SeqAdjust {
                init_seq: w[3],
                delta: w[4],
                previous_delta: w[5],
            },
        }));
        (addrs, any::<(u8, u32, u16, [u16; 3], u32, u32)>(), seq).prop_map(
            |([caddr, vaddr, daddr], (protocol, flags, state, ports, fwmark, timeout), seq)| {
                SyncConn {
                    protocol,
                    flags,
                    state,
                    caddr,
                    cport: ports[0],
                    vaddr,
                    vport: ports[1],
                    daddr,
                    dport: ports[2],
                    fwmark,
                    timeout,
                    seq,
                }
            },
        )
    }

    proptest! {
        #[test]
        fn what_is_written_reads_back(conns in proptest::collection::vec(any_conn(), 0..20),
                                      syncid: u8) {
            let msg_bytes = encode(syncid, &conns, 2000);
            let msg = SyncMessage::new_checked(&msg_bytes[..]).expect("own message");
            prop_assert_eq!(msg.syncid(), syncid);
            let back: Vec<SyncConn> = msg.entries().map(|e| e.repr()).collect();
            prop_assert_eq!(back, conns);
        }
    }
}
