//! Build a searcher from fuzz input and check that every chunking of the
//! haystack reports the same, well-formed matches (see `search::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| search::fuzzing::run(data));
