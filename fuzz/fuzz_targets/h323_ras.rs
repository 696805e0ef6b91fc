//! The RAS helper and walker: datagrams both ways, with and without NAT, IPv4 and IPv6 (see `helpers::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| helpers::fuzzing::h323_ras(data));
