//! The no-panic promise, tested: random bytes (and random bytes behind a plausible first
//! byte, so deeper paths are reached) go through every `new_checked`, and on success through
//! every getter, iterator and setter, with the invariants the fuzz harness checks
//! (`crate::fuzzing`).

use proptest::prelude::*;

use super::*;

/// Every view on the bytes, through the cargo-fuzz target's own checks.
fn all(b: &[u8]) {
    crate::fuzzing::all_views(b);
}

/// Random bytes, or random bytes behind a header prefix that passes the first checks of
/// some view (so the fuzzing is not all stopped at the version nibble).
fn packet_bytes() -> impl Strategy<Value = Vec<u8>> {
    let prefixes: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x45],
        vec![0x4f],
        vec![0x60],
        vec![0, 1, 8, 0, 6, 4],
        vec![0, 0, 0, 0, 0, 0x00, 0, 0, 0x01], // DCCP Request X=1
        vec![0, 0, 0, 0, 3, 0x01, 0, 0, 0x06], // DCCP Ack X=0
    ];
    (
        proptest::sample::select(prefixes),
        proptest::collection::vec(any::<u8>(), 0..120),
    )
        .prop_map(|(mut p, rest)| {
            p.extend_from_slice(&rest);
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn no_view_panics_on_random_bytes(b in packet_bytes()) {
        all(&b);
        // Every prefix too: truncation is the common real-world damage.
        for n in 0..b.len().min(48) {
            all(&b[..n]);
        }
    }

    #[test]
    fn ipv4_length_fields_agree(b in packet_bytes()) {
        if let Ok(p) = Ipv4Packet::new_checked(&b[..]) {
            prop_assert_eq!(p.header().len() + p.payload().len(), usize::from(p.total_len()));
        }
    }

    #[test]
    fn ipv6_walk_offsets_in_bounds(nh in any::<u8>(), b in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(w) = walk_ext_headers(nh, &b) {
            prop_assert!(w.l4_offset <= b.len());
            prop_assert!(w.headers.len() <= MAX_EXT_HEADERS);
            for h in w.headers.iter() {
                prop_assert!(h.offset + h.len <= b.len());
            }
        }
    }
}

/// A fixed corpus of the unit tests' packets, checked exhaustively: every prefix of each.
#[test]
fn corpus_prefixes_never_panic() {
    let corpus: [&[u8]; 4] = [
        &[
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2, 0x04, 0xd2, 0,
            80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ],
        &[0x60, 0, 0, 0, 0, 8, 17, 64],
        &[0x08, 0, 0xf7, 0xff, 0, 0, 0, 0],
        &[0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 20],
    ];
    for pkt in corpus {
        for n in 0..=pkt.len() {
            all(&pkt[..n]);
        }
    }
}
