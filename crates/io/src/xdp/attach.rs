//! Loading the steering program into the kernel and attaching it to an interface.

use std::ffi::CStr;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use super::XdpMode;
use crate::error::IoError;
use crate::iface::Interface;
use crate::sys::bpf;

/// Attaches `prog` to the interface through a BPF link (the program stays attached while
/// the link is open): native mode first, generic when refused.
pub(super) fn attach(
    iface: &Interface,
    prog: BorrowedFd<'_>,
    force_generic: bool,
) -> Result<(OwnedFd, XdpMode), IoError> {
    let native = if force_generic {
        Err(io::Error::other("not tried (generic mode forced)"))
    } else {
        bpf::link_create_xdp(prog, iface.index, bpf::XDP_FLAGS_DRV_MODE)
    };
    match native {
        Ok(link) => Ok((link, XdpMode::Native)),
        Err(native) => match bpf::link_create_xdp(prog, iface.index, bpf::XDP_FLAGS_SKB_MODE) {
            Ok(link) => Ok((link, XdpMode::Generic)),
            Err(source) => Err(IoError::XdpAttach {
                iface: iface.name.clone(),
                native,
                source,
            }),
        },
    }
}

/// Loads `insns` as an XDP program; on failure loads them again with the verifier's log
/// on, to report its last lines.
pub(super) fn load_insns(iface: &str, insns: &[[u8; 8]]) -> Result<OwnedFd, IoError> {
    // The helpers the program calls are not GPL-only, so the project's own license does.
    const LICENSE: &CStr = c"Apache-2.0";
    bpf::prog_load_xdp(insns, "masq_steal", LICENSE, &mut []).or_else(|_| {
        let mut log = vec![0u8; 64 << 10];
        bpf::prog_load_xdp(insns, "masq_steal", LICENSE, &mut log).map_err(|source| {
            IoError::BpfProgLoad {
                iface: iface.to_owned(),
                source,
                verifier_log: log_tail(&log, 6),
            }
        })
    })
}

/// The last `lines` non-empty lines of a NUL-terminated verifier log, joined by ` | `.
fn log_tail(log: &[u8], lines: usize) -> String {
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::asm::Asm;

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let log = b"0: (bf) r6 = r1\n\n1: invalid access\nprocessed 2 insns\n\0garbage";
        assert_eq!(log_tail(log, 2), "1: invalid access | processed 2 insns");
    }

    #[test]
    #[ignore = "needs root (loads a BPF program): scripts/test.sh runs it"]
    fn a_refused_program_reports_the_verifier_log() {
        crate::netns_lab::require_root("loading a BPF program");
        // `return r0` with r0 never set: the verifier refuses it.
        let mut asm = Asm::<()>::default();
        asm.exit();
        let err = load_insns("test0", &asm.finish()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("bpf(BPF_PROG_LOAD) of the XDP program for test0: Permission denied"),
            "{text}"
        );
        assert!(text.contains("R0 !read_ok"), "{text}");
        eprintln!("measured: {text}");
    }
}
