//! The whole engine fed packets on its interfaces; a panic it contains is still a
//! finding (see `router::fuzzing::engine`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| router::fuzzing::engine(data));
