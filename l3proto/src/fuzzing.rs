//! The fuzz harness of virtual reassembly, kept in the library so that the cargo-fuzz target
//! (`fuzz/fuzz_targets/defrag.rs`) and the regression replay in the normal test suite
//! (`tests/tests/fuzz_replay.rs`) run the very same code.
//!
//! Input layout: `[limits, records..]`, records as [`wire::fuzzing::records`]: each is one
//! packet, handled as the engine handles what it reads (parsed by [`crate::parse`], trimmed
//! to its IP length, fragments pushed into [`Defrag`]). The record's control byte moves the
//! clock (bits 0-2), asks for checksums to be made right first (bit 3, so mutated fragments
//! are not all refused for their header checksum), picks the ingress (bit 4) and runs
//! [`Defrag::expire`] (bit 5). The first byte shrinks the limits so that eviction, the
//! per-source limit and the fragment limit are reached by short inputs.
//!
//! Checked, besides "no panic": the datagram and memory bounds hold after every push; a
//! reassembled clone parses as an unfragmented packet of the same family; every fragment's
//! data sits in the clone at its offset, and the fragments cover the clone's payload
//! exactly; expired datagrams hand back an offset-0 fragment.

use std::time::Duration;

use conntrack::proto::Frag;
use wire::{Instant, PacketBuf};

use crate::defrag::{Datagram, Defrag, DefragConfig, Outcome};

/// Clock steps a control byte picks from: from "at once" to past the reassembly timeout.
const STEPS: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_millis(1),
    Duration::from_millis(250),
    Duration::from_secs(1),
    Duration::from_secs(10),
    Duration::from_secs(59),
    Duration::from_secs(61),
    Duration::from_secs(3600),
];

/// The clock step of a record's control byte (shared by the harnesses of this workspace).
pub fn step(ctl: u8) -> Duration {
    STEPS[usize::from(ctl & 7)]
}

/// Decodes `data` and checks reassembly's invariants; panics on a violation.
pub fn run(data: &[u8]) {
    let Some((&limits, rest)) = data.split_first() else {
        return;
    };
    let cfg = config(limits);
    let mut d = Defrag::new(cfg);
    let mut now = Instant::from_secs(1_000);
    for (ctl, bytes) in wire::fuzzing::records(rest) {
        now = now + step(ctl);
        let mut pkt = bytes.to_vec();
        if ctl & 8 != 0 {
            wire::fuzzing::fix_checksums(&mut pkt);
        }
        let ingress = usize::from(ctl >> 4 & 1);
        let Ok(l3) = crate::parse(&pkt) else {
            continue;
        };
        if l3.frag == Frag::None {
            continue;
        }
        // As the engine: bytes past the IP length are not part of the fragment.
        let len = l3.len;
        pkt.truncate(len);
        let family = pkt[0] >> 4;
        let outcome = d.push(now, PacketBuf::from_vec(pkt), ingress);
        if let Outcome::Complete(dg) = &outcome {
            check_datagram(dg, family);
        }
        assert!(d.len() <= cfg.max_datagrams, "{} datagrams held", d.len());
        assert!(
            d.memory() <= cfg.mem_high,
            "{} bytes held over the high mark {}",
            d.memory(),
            cfg.mem_high
        );
        let mut dropped = 0;
        d.take_dropped(|_, n| dropped += n);
        if ctl & 0x20 != 0 {
            for e in d.expire(now) {
                if let Some((first, _)) = e.first {
                    let l3 = crate::parse(first.as_slice()).expect("held fragments parse");
                    assert_eq!(l3.frag, Frag::First, "expired datagram's first fragment");
                }
            }
        }
    }
    // Far enough in the future every datagram has expired.
    let _ = d.expire(now + Duration::from_secs(365 * 86_400));
    assert!(d.is_empty(), "{} datagrams outlived their timeout", d.len());
    assert_eq!(d.memory(), 0, "memory left after everything expired");
}

/// Small limits from one byte, within what the config file accepts.
fn config(b: u8) -> DefragConfig {
    if b & 0x80 == 0 {
        return DefragConfig::default();
    }
    let mem_high = 2048 << (b & 7);
    DefragConfig {
        timeout: Duration::from_secs(60),
        mem_high,
        mem_low: mem_high / 2,
        max_datagrams: 1 + usize::from(b >> 3 & 3),
        max_fragments: 2 + usize::from(b >> 5 & 3) * 3,
        per_source: 1 + usize::from(b >> 5 & 1),
    }
}

/// A reassembled datagram is one unfragmented packet whose payload is exactly its fragments'
/// data, each at its offset.
fn check_datagram(dg: &Datagram, family: u8) {
    let clone = dg.clone.as_slice();
    let l3 = crate::parse(clone).expect("reassembled clone parses");
    assert_eq!(l3.frag, Frag::None, "clone still a fragment");
    assert_eq!(clone[0] >> 4, family, "clone of another family");
    assert_eq!(l3.len, clone.len(), "clone length field");
    assert!(dg.first < dg.fragments.len(), "first fragment index");
    // Where fragment data starts in the clone: after the (first fragment's) IPv4 header, or
    // at the IPv6 Fragment header's place (it is removed).
    let base = if family == 4 {
        usize::from(clone[0] & 0x0f) * 4
    } else {
        let first = dg.fragments[dg.first].as_slice();
        let w = wire::walk_ext_headers(first[6], &first[40..]).expect("first fragment walks");
        40 + w.frag.expect("a fragment header").header_offset
    };
    let mut covered = 0;
    for f in &dg.fragments {
        let (off, data) = fragment_data(f.as_slice());
        let at = base + off;
        assert_eq!(
            clone.get(at..at + data.len()),
            Some(data),
            "fragment at offset {off} ({} bytes) differs in the clone",
            data.len()
        );
        covered += data.len();
    }
    assert_eq!(
        base + covered,
        clone.len(),
        "fragments do not cover the clone"
    );
}

/// A fragment's offset (bytes) and data.
fn fragment_data(p: &[u8]) -> (usize, &[u8]) {
    if p[0] >> 4 == 4 {
        let ip = wire::Ipv4Packet::new_checked(p).expect("held IPv4 fragment");
        let (hl, tl) = (ip.header_len(), usize::from(ip.total_len()));
        (usize::from(ip.frag_offset()), &p[hl..tl])
    } else {
        let ip = wire::Ipv6Packet::new_checked(p).expect("held IPv6 fragment");
        let w = ip.ext_headers().expect("held fragment walks");
        let f = w.frag.expect("held fragment has a fragment header");
        let end = 40 + usize::from(ip.payload_len());
        (usize::from(f.offset), &p[40 + f.header_offset + 8..end])
    }
}
