//! The control socket's request line and response lines (see `router::fuzzing::control`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| router::fuzzing::control(data));
