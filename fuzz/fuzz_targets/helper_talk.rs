//! The talk and ntalk helpers: control messages and responses (see `helpers::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| helpers::fuzzing::talk(data));
