//! The TOML configuration (see `router::fuzzing::config`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| router::fuzzing::config(data));
