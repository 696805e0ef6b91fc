//! The TFTP helper: datagrams in both directions (see `helpers::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| helpers::fuzzing::tftp(data));
