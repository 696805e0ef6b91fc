//! ARP and Neighbour Discovery on a TAP link (see `router::fuzzing::l2`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| router::fuzzing::l2(data));
