//! masq's director, sans-IO.
//!
//! Everything a director decides lives here — services and destinations, schedulers, the
//! connection table with IPVS's TCP states and timeouts, persistence, NAT rewriting,
//! neighbour resolution, counters and the rate estimator — and none of it touches the OS:
//! the caller passes frames and the current time in ([`Timestamp`]) and takes frames out.
//! That keeps every behaviour testable deterministically, without root.
#![forbid(unsafe_code)]

pub mod conn;
pub mod control;
pub mod dest;
pub mod dest_list;
pub mod diagnose;
pub mod director;
pub mod frag;
pub mod neigh;
pub mod persist;
pub mod proto_state;
pub mod sched;
pub mod service;
pub mod stats;
pub mod sync;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod time;
pub mod trace;
pub mod verdict;

pub use director::{Director, DirectorConfig, FrameMeta, SideConfig, Worker};
pub use time::Timestamp;
pub use verdict::{CounterTotals, DropReason, Side, Verdict, WorkerCounters};
