//! The Q.931 helper and walker: TPKT segments in and out of order, split into chains, with and without NAT (see `helpers::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| helpers::fuzzing::h323_q931(data));
