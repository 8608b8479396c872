//! Faults masqd injects into itself on request, so that tests can check how it fails.
//! Debug builds only: a release build has neither this module nor a single check for it.
//!
//! - `MASQD_FAULT=panic-packet-thread`: a packet thread panics at the first frame it
//!   receives.

/// Whether the environment asks for `fault` (`MASQD_FAULT=fault`).
pub fn armed(fault: &str) -> bool {
    std::env::var("MASQD_FAULT").is_ok_and(|v| v == fault)
}
