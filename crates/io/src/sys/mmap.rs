//! [`Mapping`]: a memory mapping this process owns, unmapped when dropped.
//!
//! It only holds the address range: it never reads or writes it. The ring and UMEM types
//! built on it do, through raw pointers, each access argued in its own `// SAFETY:`
//! comment.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::{self, NonNull};

/// An owned `mmap` range: `len` bytes from `base`, page-aligned.
pub(crate) struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: a Mapping is an address range with no thread affinity: the kernel serves it
// and unmaps it (in Drop) from any thread. Mapping itself never dereferences `base`, so
// moving it to another thread moves no access; the types that read and write the memory
// say why their own accesses cannot race. (Not Sync: sharing is argued by those types.)
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps `len` bytes of the socket `fd` at `offset` (what selects a ring), shared with
    /// the kernel. With `populate`, the page tables are filled at once, so the first frames
    /// do not fault.
    pub(crate) fn socket(
        fd: BorrowedFd<'_>,
        len: usize,
        offset: libc::off_t,
        populate: bool,
    ) -> io::Result<Mapping> {
        let populate = if populate { libc::MAP_POPULATE } else { 0 };
        // SAFETY: a fresh shared mapping at an address of the kernel's choosing, so it
        // replaces nothing; the kernel checks `len` and `offset` against the ring it set up
        // on the socket, and nothing else refers to the address returned.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | populate,
                fd.as_raw_fd(),
                offset,
            )
        };
        Mapping::from_mmap(base, len)
    }

    /// Maps `len` bytes of zeroed private memory, populated.
    pub(crate) fn anonymous(len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh private anonymous mapping at an address of the kernel's choosing;
        // nothing else refers to the address returned.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        Mapping::from_mmap(base, len)
    }

    fn from_mmap(base: *mut libc::c_void, len: usize) -> io::Result<Mapping> {
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null address"))?;
        Ok(Mapping { base, len })
    }

    /// The first byte.
    pub(crate) fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base` and `len` are those of our own mapping; the types holding a
        // Mapping keep no pointer into it beyond their own lifetime.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}
