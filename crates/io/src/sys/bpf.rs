//! The `bpf()` syscall, as far as the AF_XDP back end needs it: hash and XSK maps, loading
//! an XDP program, and attaching it to an interface through a BPF link.
//!
//! Every attribute struct is a `repr(C)` prefix of `union bpf_attr` for its command
//! (include/uapi/linux/bpf.h); the kernel zero-extends a short one.

use std::ffi::{c_int, CStr};
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;

// `bpf()` commands, map, program and attach types (include/uapi/linux/bpf.h).
const BPF_MAP_CREATE: c_int = 0;
const BPF_MAP_UPDATE_ELEM: c_int = 2;
const BPF_MAP_DELETE_ELEM: c_int = 3;
const BPF_MAP_GET_NEXT_KEY: c_int = 4;
const BPF_PROG_LOAD: c_int = 5;
const BPF_LINK_CREATE: c_int = 28;
pub(crate) const BPF_MAP_TYPE_HASH: u32 = 1;
pub(crate) const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;

// XDP attach modes (include/uapi/linux/if_link.h).
pub(crate) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub(crate) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// `bpf(BPF_MAP_CREATE)` attributes: the head of `union bpf_attr` for that command.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// `bpf(BPF_MAP_*_ELEM)` and `BPF_MAP_GET_NEXT_KEY` attributes (`value` is `next_key`
/// for the latter).
#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `bpf(BPF_PROG_LOAD)` attributes, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `bpf(BPF_LINK_CREATE)` attributes for an XDP link.
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// Marks the `repr(C)` attribute structs above: plain old data whose pointer fields, if
/// any, the caller filled from live borrows.
trait BpfAttr {}
impl BpfAttr for MapCreateAttr {}
impl BpfAttr for MapElemAttr {}
impl BpfAttr for ProgLoadAttr {}
impl BpfAttr for LinkCreateAttr {}

/// `bpf(cmd, attr, sizeof attr)`. The kernel zero-extends a short `bpf_attr`.
fn bpf<A: BpfAttr>(cmd: c_int, attr: &mut A) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, exclusively borrowed repr(C) struct of exactly the size
    // passed; every pointer inside it was set by our caller from a borrow that outlives
    // this call (see each caller). The kernel reads and writes only within that size.
    syscall!(syscall(
        libc::SYS_bpf,
        cmd,
        ptr::from_mut(attr),
        mem::size_of::<A>() as libc::c_uint
    ))
}

/// Takes ownership of a file descriptor the kernel just returned.
fn owned_fd(raw: libc::c_long) -> io::Result<OwnedFd> {
    let raw = c_int::try_from(raw).map_err(|_| io::Error::other("fd out of range"))?;
    // SAFETY: the kernel returned `raw` as a new descriptor of ours; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    // At most 15 bytes, so the name stays NUL-terminated.
    for (dst, src) in out.iter_mut().zip(name.bytes().take(15)) {
        *dst = src;
    }
    out
}

/// Creates a BPF map with `u32` values and keys of `key_size` bytes.
pub(crate) fn map_create(
    map_type: u32,
    key_size: u32,
    max_entries: u32,
    name: &str,
) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size,
        value_size: 4,
        max_entries,
        map_name: name16(name),
        ..MapCreateAttr::default()
    };
    owned_fd(bpf(BPF_MAP_CREATE, &mut attr)?)
}

/// A map key: plain bytes the kernel copies (`u32`, `[u8; N]`), of the size the map was
/// created with.
pub(crate) trait MapKey: Copy + Default {}
impl MapKey for u32 {}
impl MapKey for [u8; 8] {}

/// `map[key] = value` (creates or replaces; `BPF_ANY`).
pub(crate) fn map_update<K: MapKey>(map: BorrowedFd<'_>, key: K, value: u32) -> io::Result<()> {
    // `key` and `value` live on this stack frame until `bpf` returns.
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: ptr::from_ref(&key) as u64,
        value: ptr::from_ref(&value) as u64,
        ..MapElemAttr::default()
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr)?;
    Ok(())
}

/// Deletes `map[key]`; `ENOENT` when it is absent.
pub(crate) fn map_delete<K: MapKey>(map: BorrowedFd<'_>, key: K) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: ptr::from_ref(&key) as u64,
        ..MapElemAttr::default()
    };
    bpf(BPF_MAP_DELETE_ELEM, &mut attr)?;
    Ok(())
}

/// The key after `key` in the map's iteration order (the first key for `None`); `None`
/// at the end.
pub(crate) fn map_next_key<K: MapKey>(
    map: BorrowedFd<'_>,
    key: Option<K>,
) -> io::Result<Option<K>> {
    let current = key.unwrap_or_default();
    let mut next = K::default();
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        // A null key asks for the first one.
        key: if key.is_some() {
            ptr::from_ref(&current) as u64
        } else {
            0
        },
        value: ptr::from_mut(&mut next) as u64,
        ..MapElemAttr::default()
    };
    match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
        Ok(_) => Ok(Some(next)),
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Loads an XDP program (`insns`: 8-byte `struct bpf_insn`s as the kernel lays them out).
/// On failure the error is returned with the verifier's log in `log` (NUL-terminated).
pub(crate) fn prog_load_xdp(
    insns: &[[u8; 8]],
    name: &str,
    license: &CStr,
    log: &mut [u8],
) -> io::Result<OwnedFd> {
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: u32::try_from(insns.len()).map_err(|_| io::Error::other("program too long"))?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        // Level 1: the log of a failed load (the kernel wants at least 128 bytes).
        log_level: u32::from(log.len() >= 128),
        log_size: if log.len() >= 128 {
            log.len() as u32
        } else {
            0
        },
        log_buf: if log.len() >= 128 {
            log.as_mut_ptr() as u64
        } else {
            0
        },
        prog_name: name16(name),
        expected_attach_type: BPF_XDP,
        ..ProgLoadAttr::default()
    };
    // `insns`, `license` and `log` are borrowed for the whole call.
    owned_fd(bpf(BPF_PROG_LOAD, &mut attr)?)
}

/// Attaches `prog` to the interface as its XDP program through a BPF link (kernel 5.9+):
/// the program stays attached while the returned descriptor is open.
pub(crate) fn link_create_xdp(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    flags: u32,
) -> io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags,
    };
    owned_fd(bpf(BPF_LINK_CREATE, &mut attr)?)
}
