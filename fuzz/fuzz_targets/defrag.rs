//! Sequences of fragments through virtual reassembly (see `l3proto::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| l3proto::fuzzing::run(data));
