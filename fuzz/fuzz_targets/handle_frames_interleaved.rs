//! The input as frames arriving on both of the director's sides, interleaved (see
//! `Harness::run_interleaved`): the neighbour, connection and fragment tables stay within
//! their bounds, and one side's frames never move the other side's neighbours.
#![no_main]

use libfuzzer_sys::fuzz_target;
use masq_fuzz::Harness;

fuzz_target!(|data: &[u8]| {
    Harness::new().run_interleaved(data);
});
