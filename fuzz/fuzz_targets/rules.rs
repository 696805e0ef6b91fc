//! iptables-save text: parse, and save -> parse round trips for what parses
//! (see `rules::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rules::fuzzing::run(data));
