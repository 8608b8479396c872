//! masq: a userspace LVS-NAT load balancer.
//!
//! This root package only hosts the workspace's end-to-end tests (`tests/`) and benchmarks
//! (`benches/`); the code lives in `crates/`: `masq-wire` (packet views), `masq-core` (the
//! sans-IO director), `masq-io` (AF_PACKET), `masq-ctl` (the ipvsadm language) and the
//! binaries `masqd`, `masqadm` and `masq-labsrv`.
#![forbid(unsafe_code)]

pub use masq_core as core;
pub use masq_wire as wire;
