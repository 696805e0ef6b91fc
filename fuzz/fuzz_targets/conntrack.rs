//! Sequences of packets through the L3/L4 modules and the connection table, as the
//! engine drives them (see `l4proto::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| l4proto::fuzzing::run(data));
