//! A minimal pcapng writer for `masqadm --capture`: one section, two interfaces (the
//! director's VIP side and DIP side), and one Enhanced Packet Block per frame with a
//! comment naming its LVS-NAT stage — so Wireshark and tshark show "stage 2 director→RS"
//! next to each frame.

use std::io::{self, Write};

/// Interface id of the VIP (client) side.
pub const VIP_SIDE: u32 = 0;
/// Interface id of the DIP (real server) side.
pub const DIP_SIDE: u32 = 1;

const LINKTYPE_ETHERNET: u16 = 1;
const SNAPLEN: u32 = 262_144;

/// Writes pcapng blocks to `out`.
pub struct PcapngWriter<W: Write> {
    out: W,
}

fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Encodes one option (code, value padded to 4 bytes).
fn option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&(value.len() as u16).to_le_bytes());
    buf.extend_from_slice(value);
    buf.extend(std::iter::repeat_n(0, pad4(value.len())));
}

fn end_of_options(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&[0, 0, 0, 0]);
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the section header and the two interface descriptions.
    ///
    /// # Errors
    /// When writing fails.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        option(&mut shb, 4, b"masqadm --capture"); // shb_userappl
        end_of_options(&mut shb);
        write_block(&mut out, 0x0A0D_0D0A, &shb)?;
        for name in ["vip-side (clients, VIP)", "dip-side (real servers, DIP)"] {
            let mut idb = Vec::new();
            idb.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
            idb.extend_from_slice(&0u16.to_le_bytes());
            idb.extend_from_slice(&SNAPLEN.to_le_bytes());
            option(&mut idb, 2, name.as_bytes()); // if_name
            end_of_options(&mut idb);
            write_block(&mut out, 1, &idb)?;
        }
        Ok(PcapngWriter { out })
    }

    /// Writes one frame seen on `interface` at `epoch_us`, with a comment.
    ///
    /// # Errors
    /// When writing fails.
    pub fn frame(
        &mut self,
        interface: u32,
        epoch_us: u64,
        frame: &[u8],
        comment: &str,
    ) -> io::Result<()> {
        let mut epb = Vec::with_capacity(frame.len() + 64);
        epb.extend_from_slice(&interface.to_le_bytes());
        epb.extend_from_slice(&((epoch_us >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(epoch_us as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(frame);
        epb.extend(std::iter::repeat_n(0, pad4(frame.len())));
        option(&mut epb, 1, comment.as_bytes()); // opt_comment
        end_of_options(&mut epb);
        write_block(&mut self.out, 6, &epb)
    }

    /// Flushes and returns the writer.
    ///
    /// # Errors
    /// When flushing fails.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn write_block<W: Write>(out: &mut W, block_type: u32, body: &[u8]) -> io::Result<()> {
    let total = (12 + body.len()) as u32;
    out.write_all(&block_type.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&total.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_well_formed() {
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        w.frame(
            DIP_SIDE,
            1_700_000_000_123_456,
            &[0xab; 61],
            "stage 2 director→RS",
        )
        .unwrap();
        let bytes = w.finish().unwrap();
        // Walk the blocks: every block's leading and trailing lengths agree and the walk
        // ends exactly at the end.
        let mut at = 0;
        let mut types = Vec::new();
        while at < bytes.len() {
            let t = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
            let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            let trailer = u32::from_le_bytes(bytes[at + len - 4..at + len].try_into().unwrap());
            assert_eq!(trailer as usize, len);
            types.push(t);
            at += len;
        }
        assert_eq!(at, bytes.len());
        assert_eq!(types, vec![0x0A0D_0D0A, 1, 1, 6]);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("stage 2 director→RS"));
    }
}
