//! The no-panic promise, tested: random bytes (and random bytes behind a plausible first
//! byte, so deeper paths are reached) go through every `new_checked`, and on success through
//! every getter and iterator.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

const V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

fn ipv4(b: &[u8]) {
    if let Ok(p) = Ipv4Packet::new_checked(b) {
        let _ = (
            p.version(),
            p.header_len(),
            p.dscp_ecn(),
            p.total_len(),
            p.ident(),
        );
        let _ = (
            p.dont_frag(),
            p.more_frags(),
            p.frag_offset(),
            p.is_fragment(),
            p.ttl(),
        );
        let _ = (
            p.protocol(),
            p.checksum(),
            p.src_addr(),
            p.dst_addr(),
            p.verify_checksum(),
        );
        let _ = (p.options(), p.payload(), p.header());
        let mut v = b.to_vec();
        let mut m = Ipv4Packet::new_checked(&mut v[..]).unwrap();
        m.fill_checksum();
        let _ = m.payload_mut();
    }
}

fn ipv6(b: &[u8]) {
    if let Ok(p) = Ipv6Packet::new_checked(b) {
        let _ = (
            p.version(),
            p.traffic_class(),
            p.flow_label(),
            p.payload_len(),
        );
        let _ = (
            p.next_header(),
            p.hop_limit(),
            p.src_addr(),
            p.dst_addr(),
            p.payload(),
        );
        let _ = p.ext_headers();
    }
    if let Some((&first, rest)) = b.split_first() {
        let _ = walk_ext_headers(first, rest);
    }
    if let Ok(f) = Ipv6FragHeader::new_checked(b) {
        let _ = (f.next_header(), f.frag_offset(), f.more_frags(), f.ident());
    }
}

fn tcp(b: &[u8]) {
    if let Ok(p) = TcpPacket::new_checked(b) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.seq_number(),
            p.ack_number(),
            p.header_len(),
        );
        let _ = (
            p.flags(),
            p.fin(),
            p.syn(),
            p.rst(),
            p.psh(),
            p.ack(),
            p.urg(),
            p.ece(),
        );
        let _ = (p.cwr(), p.ns(), p.window_len(), p.checksum(), p.urgent_at());
        let _ = (p.options(), p.payload(), p.segment_len());
        let _ = (p.verify_checksum_v4(V4, V4), p.verify_checksum_v6(&V6, &V6));
        for o in p.options_iter() {
            if let Ok(TcpOption::Sack(blocks)) = o {
                let _ = blocks.count();
            }
        }
        let mut v = b.to_vec();
        let mut m = TcpPacket::new_checked(&mut v[..]).unwrap();
        m.fill_checksum_v4(V4, V4);
        let _ = (m.options_mut().len(), m.payload_mut().len());
    }
    let _ = TcpOptionIter::new(b).count();
}

fn udp(b: &[u8]) {
    if let Ok(p) = UdpPacket::new_checked(b) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.len(),
            p.checksum(),
            p.payload(),
        );
        let _ = (p.verify_checksum_v4(V4, V4), p.verify_checksum_v6(&V6, &V6));
    }
    if let Ok(p) = UdpLitePacket::new_checked(b) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.checksum_coverage(),
            p.coverage_len(),
        );
        let _ = (p.checksum(), p.payload());
        let _ = (p.verify_checksum_v4(V4, V4), p.verify_checksum_v6(&V6, &V6));
    }
}

fn icmp(b: &[u8]) {
    if let Ok(p) = IcmpPacket::new_checked(b) {
        let _ = (
            p.msg_type(),
            p.code(),
            p.checksum(),
            p.echo_ident(),
            p.echo_seq_no(),
        );
        let _ = (
            p.rest_of_header(),
            p.data(),
            p.is_error(),
            p.is_echo(),
            p.is_echo_reply(),
        );
        let _ = p.verify_checksum();
        let mut buf = [0u8; 64];
        let _ = icmp::emit_echo_reply(&p, &mut buf);
        let _ = icmp::emit_error(&mut buf, 3, 3, 0, b);
    }
    if let Ok(p) = Icmpv6Packet::new_checked(b) {
        let _ = (
            p.msg_type(),
            p.code(),
            p.checksum(),
            p.echo_ident(),
            p.echo_seq_no(),
        );
        let _ = (
            p.rest_of_header(),
            p.data(),
            p.is_error(),
            p.is_echo(),
            p.is_echo_reply(),
        );
        let _ = (p.verify_checksum(&V6, &V6), p.ns_target(), p.na_target());
        let _ = (p.na_router(), p.na_solicited(), p.na_override());
        for o in p.nd_options().flatten() {
            let _ = o.ethernet_addr();
        }
    }
    let _ = NdOptionIter::new(b).count();
}

fn sctp(b: &[u8]) {
    if let Ok(p) = SctpPacket::new_checked(b) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.verification_tag(),
            p.checksum(),
        );
        let _ = (p.verify_checksum(), p.payload(), p.first_chunk());
        for c in p.chunks().flatten() {
            let _ = (c.init_initiate_tag(), c.t_bit());
        }
    }
}

fn dccp(b: &[u8]) {
    if let Ok(p) = DccpPacket::new_checked(b) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.data_offset(),
            p.header_len(),
            p.ccval(),
        );
        let _ = (
            p.cscov(),
            p.checksum(),
            p.packet_type(),
            p.x(),
            p.seq_number(),
        );
        let _ = (
            p.ack_number(),
            p.service_code(),
            p.reset_code(),
            p.reset_data(),
        );
        let _ = (p.options(), p.payload(), p.checksum_coverage_len());
        let _ = (p.verify_checksum_v4(V4, V4), p.verify_checksum_v6(&V6, &V6));
    }
}

fn link(b: &[u8]) {
    if let Ok(f) = EthernetFrame::new_checked(b) {
        let _ = (f.dst_addr(), f.src_addr(), f.ethertype(), f.payload());
    }
    if let Ok(p) = ArpPacket::new_checked(b) {
        let _ = (p.operation(), p.sender_hw_addr(), p.sender_proto_addr());
        let _ = (p.target_hw_addr(), p.target_proto_addr());
    }
}

fn all(b: &[u8]) {
    ipv4(b);
    ipv6(b);
    tcp(b);
    udp(b);
    icmp(b);
    sctp(b);
    dccp(b);
    link(b);
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
