//! The FTP helper: control segments in and out of order, split into chains, with and without
//! NAT, IPv4 and IPv6 (see `helpers::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| helpers::fuzzing::ftp(data));
