//! The input as a frame arriving on the director's VIP side (from clients).
#![no_main]

use libfuzzer_sys::fuzz_target;
use masq_core::Side;
use masq_fuzz::Harness;

fuzz_target!(|data: &[u8]| {
    Harness::new().run(Side::Vip, data);
});
