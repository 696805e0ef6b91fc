//! Every packet view (selector byte first): accessors, iterators, setters,
//! checksums, ICMP/ICMPv6 errors with their quoted packets, ND options (see `wire::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wire::fuzzing::run(data));
