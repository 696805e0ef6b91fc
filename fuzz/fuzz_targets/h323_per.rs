//! The H.323 PER reader: a type of the H.225.0/H.235/H.245 descriptions skipped from one buffer and from a chain (see `helpers::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| helpers::fuzzing::h323_per(data));
