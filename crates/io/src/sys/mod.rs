//! The only module with `unsafe` code: thin wrappers over the libc calls masq needs.
//!
//! Every function takes Rust types (borrowed file descriptors, slices) and returns
//! `io::Result`; the callers add which interface and operation failed. Pointers handed to
//! the kernel are built from live borrows within the same call, and nothing here keeps a
//! reference to caller memory after returning.
//!
//! Memory shared with the kernel (ring blocks and slots, the XDP rings, the UMEM) is only
//! touched through raw pointers and atomics, never through `&T`/`&mut T`, and each access
//! is bounds-checked here, so the safe code outside cannot cause an out-of-bounds or
//! racing access whatever it passes.
//!
//! - [`packet`]: `AF_PACKET` sockets: bind, statistics, `recvmsg`/`sendmsg` and their
//!   batched forms;
//! - [`ifreq`]: interface ioctls: the MTU and the ethtool commands;
//! - [`tpacket`]: the receive rings, TPACKET_V3 blocks and TPACKET_V2 slots;
//! - [`bpf`]: the `bpf()` syscall: maps, program load, XDP link;
//! - [`xsk`] and [`xsk_ring`]: an `AF_XDP` socket, its UMEM and its four rings;
//! - [`mmap`]: the owned memory mappings under the rings and the UMEM;
//! - [`rlimit`]: the process's limit on open files;
//! - [`effective_uid`]: who the process acts as.

use std::ffi::c_int;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;

/// Calls a libc function and turns the C convention (-1 and `errno`) into `io::Error`.
///
/// The call itself is `unsafe`: every use carries a `// SAFETY:` comment stating why its
/// arguments are valid.
macro_rules! syscall {
    ($fn: ident ( $($arg: expr),* $(,)* ) ) => {{
        // SAFETY: upheld by the caller, see the comment at each use.
        let res = unsafe { libc::$fn($($arg, )*) };
        if res == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

pub(crate) mod bpf;
pub(crate) mod ifreq;
mod mmap;
pub(crate) mod packet;
pub(crate) mod rlimit;
pub(crate) mod tpacket;
pub(crate) mod xsk;
pub(crate) mod xsk_ring;

/// Sets an `int`-valued socket option.
pub(crate) fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: c_int,
    name: c_int,
    value: c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and the length passed is exactly its size.
    syscall!(setsockopt(
        fd.as_raw_fd(),
        level,
        name,
        ptr::from_ref(&value).cast(),
        mem::size_of::<c_int>() as libc::socklen_t,
    ))?;
    Ok(())
}

/// The most descriptors [`poll`] waits on.
const POLL_MAX: usize = 65;

/// Waits up to `timeout_ms` (-1: forever) until one of `fds` (the first [`POLL_MAX`]) has
/// one of `events` (or an error pending). Returns on timeout and when a signal interrupted
/// the wait too; the caller re-checks. Says whether the last descriptor passed had any of
/// `events` (a caller that wants to know about one puts it last).
pub(crate) fn poll<'a>(
    fds: impl IntoIterator<Item = BorrowedFd<'a>>,
    events: i16,
    timeout_ms: c_int,
) -> io::Result<bool> {
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; POLL_MAX];
    let mut count = 0;
    for (pfd, fd) in pfds.iter_mut().zip(fds) {
        pfd.fd = fd.as_raw_fd();
        pfd.events = events;
        count += 1;
    }
    // SAFETY: `pfds` holds POLL_MAX live pollfds and the count passed is at most that.
    match syscall!(poll(pfds.as_mut_ptr(), count as libc::nfds_t, timeout_ms)) {
        Ok(_) => Ok(count > 0 && pfds[count - 1].revents & events != 0),
        Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(err) => Err(err),
    }
}

/// The size of a memory page, which ring blocks and slots are aligned to.
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// Moves the calling thread into the network namespace `/run/netns/<name>` (as made by
/// `ip netns add`). Sockets the thread creates afterwards belong to that namespace.
#[cfg(test)]
pub(crate) fn enter_netns(name: &str) -> io::Result<()> {
    let file = std::fs::File::open(format!("/run/netns/{name}"))?;
    // SAFETY: `file` is an open namespace file; setns only changes this thread's namespace.
    syscall!(setns(file.as_raw_fd(), libc::CLONE_NEWNET))?;
    Ok(())
}

/// The calling process's effective user id.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
