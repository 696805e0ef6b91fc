//! The pcap reader (see `router::fuzzing::pcap`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| router::fuzzing::pcap(data));
