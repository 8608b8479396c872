//! Resource limits of the calling process (`getrlimit`/`setrlimit`).

use std::io;

/// Raises the soft limit on open files (`RLIMIT_NOFILE`) to the hard limit. Returns the
/// soft limit before and after.
// rlim_t is u64 on 64-bit targets and u32 on some 32-bit ones.
#[allow(clippy::useless_conversion)]
pub(crate) fn raise_nofile_soft_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live rlimit the kernel fills in; nothing else is passed.
    syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut limit))?;
    let before = u64::from(limit.rlim_cur);
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a live, initialised rlimit the kernel only reads.
        syscall!(setrlimit(libc::RLIMIT_NOFILE, &limit))?;
    }
    Ok((before, u64::from(limit.rlim_cur)))
}
