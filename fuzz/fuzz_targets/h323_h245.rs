//! The H.245 helper and walker: TPKT segments of MultimediaSystemControlMessages, and each as a fastStart OpenLogicalChannel (see `helpers::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| helpers::fuzzing::h323_h245(data));
