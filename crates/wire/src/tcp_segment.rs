//! Software TCP segmentation of an IPv4 GSO super-frame: one TCP packet larger than the
//! MTU (merged by GRO, or sent with TSO by a local sender) cut into the MSS-sized
//! segments it stands for, as the kernel's `tcp_gso_segment` and `inet_gso_segment` cut
//! it when no device will.
//!
//! Every segment carries the super-frame's IP header and options and its TCP header and
//! options, with its own total length, IP ID (the first segment keeps the super-frame's,
//! each later one adds one), header checksum, sequence number and a full TCP checksum.
//! FIN and PSH stay on the last segment only, CWR on the first only. The super-frame's own
//! TCP checksum is never read: it is usually the pseudo-header sum an offloading sender
//! leaves (CHECKSUM_PARTIAL), and each segment's is recomputed anyway.

use crate::ipv4::{self, Ipv4Packet};
use crate::tcp::{self, TcpSegment};
use crate::{checksum, get_u16, get_u32, put_u16, Malformed};

/// The TCP CWR flag (RFC 3168), kept on the first segment only.
const CWR: u8 = 0x80;

/// A checked TCP super-frame and the segment size it is to be cut at.
#[derive(Debug, Clone, Copy)]
pub struct Segmenter<'a> {
    /// The IPv4 packet, up to its total length.
    packet: &'a [u8],
    /// IP header and TCP header, options included: what every segment starts with.
    headers_len: usize,
    ip_header_len: usize,
    mss: usize,
}

impl<'a> Segmenter<'a> {
    /// Checks `packet` (an IPv4 packet, possibly followed by padding) as a TCP packet that
    /// is to be cut into segments of `mss` payload bytes.
    ///
    /// # Errors
    /// As [`Ipv4Packet::new_checked`] and [`TcpSegment::new_checked`];
    /// [`Malformed::Unsupported`] if it is not TCP, is a fragment or `mss` is 0.
    pub fn new(packet: &'a [u8], mss: u16) -> Result<Self, Malformed> {
        let ip = Ipv4Packet::new_checked(packet)?;
        if ip.protocol() != ipv4::PROTO_TCP || ip.is_fragment() || mss == 0 {
            return Err(Malformed::Unsupported);
        }
        let tcp = TcpSegment::new_checked(ip.payload())?;
        Ok(Segmenter {
            packet: &packet[..usize::from(ip.total_len())],
            headers_len: ip.header_len() + tcp.header_len(),
            ip_header_len: ip.header_len(),
            mss: usize::from(mss),
        })
    }

    /// TCP payload bytes of the whole super-frame.
    fn payload_len(&self) -> usize {
        self.packet.len() - self.headers_len
    }

    /// How many segments the super-frame makes (one, if its payload fits one segment).
    pub fn count(&self) -> usize {
        self.payload_len().div_ceil(self.mss).max(1)
    }

    /// The IP total length of the largest segment (the first).
    pub fn max_segment_len(&self) -> usize {
        self.segment_len(0)
    }

    /// The IP total length of segment `index` (from 0, below [`Segmenter::count`]).
    pub fn segment_len(&self, index: usize) -> usize {
        let start = self.mss * index;
        self.headers_len + self.payload_len().saturating_sub(start).min(self.mss)
    }

    /// The IP total length of every segment together.
    pub fn total_len(&self) -> usize {
        self.headers_len * self.count() + self.payload_len()
    }

    /// Writes segment `index` (from 0, below [`Segmenter::count`]) into `out` as a whole
    /// IPv4 packet; returns its length, `None` if `out` is too short.
    pub fn write(&self, index: usize, out: &mut [u8]) -> Option<usize> {
        let start = self.mss * index;
        let len = self.segment_len(index);
        let chunk = &self.packet[self.headers_len + start..][..len - self.headers_len];
        let out = out.get_mut(..len)?;
        out[..self.headers_len].copy_from_slice(&self.packet[..self.headers_len]);
        out[self.headers_len..].copy_from_slice(chunk);

        let (ip, segment) = out.split_at_mut(self.ip_header_len);
        put_u16(ip, 2, len as u16);
        // Index fits 16 bits: a 64 KiB packet makes at most 65535 segments.
        put_u16(ip, 4, get_u16(self.packet, 4).wrapping_add(index as u16));
        put_u16(ip, 10, 0);
        let ip_sum = checksum::checksum(ip);
        put_u16(ip, 10, ip_sum);

        let seq = get_u32(self.packet, self.ip_header_len + 4).wrapping_add(start as u32);
        segment[4..8].copy_from_slice(&seq.to_be_bytes());
        if index + 1 < self.count() {
            segment[13] &= !(tcp::flags::FIN | tcp::flags::PSH);
        }
        if index > 0 {
            segment[13] &= !CWR;
        }
        let l4_len = segment.len() as u16;
        put_u16(segment, tcp::CHECKSUM_OFFSET, 0);
        let packet = Ipv4Packet::new_unchecked(&*ip);
        let pseudo = checksum::pseudo_header_sum(
            packet.src_addr(),
            packet.dst_addr(),
            ipv4::PROTO_TCP,
            l4_len,
        );
        let tcp_sum = !checksum::fold(checksum::accumulate(pseudo, segment));
        put_u16(segment, tcp::CHECKSUM_OFFSET, tcp_sum);
        Some(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv4Header, TcpHeader};

    const MSS: u16 = 1000;

    /// A TCP super-frame of `payload_len` bytes (byte i of the payload is `i as u8`) with
    /// `ip_options` and the given `flags` (tcp::flags bits, and CWR), IP ID 0xfffe so that
    /// the ID wraps, sequence number near the wrap too; its checksum left partial.
    fn super_frame(payload_len: usize, ip_options: &[u8], flags: u8) -> Vec<u8> {
        let mut tcp = TcpHeader::new(40000, 80, 0xffff_fc00, 64240);
        tcp.acknowledgment_number = 77;
        tcp.ack = flags & tcp::flags::ACK != 0;
        tcp.psh = flags & tcp::flags::PSH != 0;
        tcp.fin = flags & tcp::flags::FIN != 0;
        tcp.cwr = flags & CWR != 0;
        tcp.set_options(&[
            etherparse::TcpOptionElement::Noop,
            etherparse::TcpOptionElement::Noop,
            etherparse::TcpOptionElement::Timestamp(1, 2),
        ])
        .unwrap();
        let mut ip = Ipv4Header::new(
            (tcp.header_len() + payload_len) as u16,
            64,
            IpNumber::TCP,
            [10, 0, 0, 1],
            [192, 168, 0, 10],
        )
        .unwrap();
        ip.identification = 0xfffe;
        ip.dont_fragment = true;
        ip.options = ip_options.try_into().unwrap();
        ip.set_payload_len(tcp.header_len() + payload_len).unwrap();
        let mut bytes = ip.to_bytes().to_vec();
        bytes.extend_from_slice(&tcp.to_bytes());
        bytes.extend((0..payload_len).map(|i| i as u8));
        bytes
    }

    fn segments(frame: &[u8]) -> Vec<Vec<u8>> {
        let cut = Segmenter::new(frame, MSS).unwrap();
        let mut out = Vec::new();
        let mut total = 0;
        for i in 0..cut.count() {
            let mut buf = vec![0u8; 2000];
            let len = cut.write(i, &mut buf).unwrap();
            buf.truncate(len);
            total += len;
            out.push(buf);
        }
        assert_eq!(total, cut.total_len());
        assert_eq!(out[0].len(), cut.max_segment_len());
        out
    }

    /// Checks each segment with etherparse, recomputing both checksums, and returns the
    /// (ip header, tcp header, payload) of each.
    fn parse(segment: &[u8]) -> (Ipv4Header, TcpHeader, Vec<u8>) {
        let (ip, rest) = Ipv4Header::from_slice(segment).unwrap();
        assert_eq!(usize::from(ip.total_len), segment.len());
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        let (tcp, payload) = TcpHeader::from_slice(rest).unwrap();
        let expected = tcp
            .calc_checksum_ipv4_raw(ip.source, ip.destination, payload)
            .unwrap();
        assert_eq!(tcp.checksum, expected, "tcp checksum");
        (ip, tcp, payload.to_vec())
    }

    #[test]
    fn cuts_at_the_mss_with_a_short_last_segment() {
        let frame = super_frame(3500, &[], tcp::flags::ACK | tcp::flags::PSH);
        let segs = segments(&frame);
        assert_eq!(segs.len(), 4);
        let mut payload = Vec::new();
        for (i, seg) in segs.iter().enumerate() {
            let (ip, tcp, data) = parse(seg);
            let want = if i < 3 { 1000 } else { 500 };
            assert_eq!(data.len(), want, "segment {i}");
            assert_eq!(
                seg.len(),
                Segmenter::new(&frame, MSS).unwrap().segment_len(i)
            );
            assert_eq!(ip.identification, 0xfffe_u16.wrapping_add(i as u16));
            assert!(ip.dont_fragment);
            assert_eq!(
                tcp.sequence_number,
                0xffff_fc00_u32.wrapping_add(1000 * i as u32)
            );
            assert_eq!(tcp.acknowledgment_number, 77);
            assert!(tcp.ack);
            assert_eq!(tcp.psh, i == 3, "PSH on the last only");
            assert_eq!(tcp.options.as_slice(), parse(&segs[0]).1.options.as_slice());
            payload.extend(data);
        }
        assert_eq!(payload, frame[52..]);
    }

    #[test]
    fn fin_on_the_last_and_cwr_on_the_first_only() {
        let flags = tcp::flags::ACK | tcp::flags::FIN | tcp::flags::PSH | CWR;
        let segs = segments(&super_frame(3000, &[], flags));
        assert_eq!(segs.len(), 3);
        let flags: Vec<(bool, bool, bool)> = segs
            .iter()
            .map(|s| {
                let (_, tcp, _) = parse(s);
                (tcp.cwr, tcp.fin, tcp.psh)
            })
            .collect();
        assert_eq!(
            flags,
            [
                (true, false, false),
                (false, false, false),
                (false, true, true)
            ]
        );
    }

    #[test]
    fn ip_options_are_copied_into_every_segment() {
        // Record route with room for one address, then end of options: 8 bytes.
        let options = [7, 7, 4, 0, 0, 0, 0, 0];
        let frame = super_frame(2500, &options, tcp::flags::ACK);
        let segs = segments(&frame);
        assert_eq!(segs.len(), 3);
        for seg in &segs {
            let (ip, _, _) = parse(seg);
            assert_eq!(ip.options.as_slice(), options);
        }
        let tcp_header_len = parse(&segs[2]).1.header_len();
        assert_eq!(segs[2].len(), 28 + tcp_header_len + 500);
    }

    #[test]
    fn a_frame_that_fits_makes_one_segment_and_padding_is_ignored() {
        let mut frame = super_frame(600, &[], tcp::flags::ACK);
        frame.extend([0xee; 6]);
        let segs = segments(&frame);
        assert_eq!(segs.len(), 1);
        assert_eq!(parse(&segs[0]).2.len(), 600);
    }

    #[test]
    fn refuses_what_is_not_tcp_and_a_short_buffer() {
        let frame = super_frame(1500, &[], tcp::flags::ACK);
        let mut udp = frame.clone();
        udp[9] = ipv4::PROTO_UDP;
        assert_eq!(
            Segmenter::new(&udp, MSS).unwrap_err(),
            Malformed::Unsupported
        );
        assert_eq!(
            Segmenter::new(&frame, 0).unwrap_err(),
            Malformed::Unsupported
        );
        let cut = Segmenter::new(&frame, MSS).unwrap();
        assert_eq!(cut.write(0, &mut [0u8; 100]), None);
    }
}
