//! eBPF programs written in Rust, with no compiler involved: [`asm`] assembles them, and
//! the numbers of the kernel's ABI they use (helper functions, XDP actions) are here
//! (include/uapi/linux/bpf.h).

pub(crate) mod asm;

/// `bpf_map_lookup_elem(map, key)`: a pointer to the value, or 0 when absent.
pub(crate) const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
/// `bpf_redirect_map(map, key, flags)`: for an XSKMAP, to the AF_XDP socket at `key`;
/// the low bits of `flags` are the action when there is none.
pub(crate) const BPF_FUNC_REDIRECT_MAP: i32 = 51;
/// The XDP action that hands the frame to the kernel's stack.
pub(crate) const XDP_PASS: i32 = 2;
