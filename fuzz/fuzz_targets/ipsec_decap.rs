//! Inbound ESP: decapsulation of raw, intact, flipped, cut, replayed and reordered packets
//! (see `ipsec_hooks::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipsec_hooks::fuzzing::decap(data));
