//! The `ip xfrm` text forms of SAs, policies and selectors (see `ipsec_hooks::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipsec_hooks::fuzzing::parse(data));
