//! The fuzz harness of the packet views, kept in the library so that the cargo-fuzz target
//! (`fuzz/fuzz_targets/wire.rs`) and the regression replay in the normal test suite
//! (`tests/tests/fuzz_replay.rs`) run the very same code; the crate's proptest
//! (`fuzz_tests.rs`) drives it too.
//!
//! Input layout: `[selector, bytes..]`. The selector picks the view the bytes are handed to
//! (IPv4, IPv6, TCP, UDP, UDP-Lite, ICMP, ICMPv6, SCTP, DCCP, Ethernet, ARP, the raw option
//! iterators, the checksum routines, packet buffers); IP packets descend into their transport
//! header, Ethernet frames into their payload, and ICMP/ICMPv6 errors into the packet they
//! quote, so one input can reach every layer. Checked, besides "no panic" (the crate's
//! promise once `new_checked` returned `Ok`): length fields agree with the slices the
//! accessors return, iterators end and stay inside their buffer, every `fill_checksum`
//! produces a checksum that verifies, incremental checksum updates agree with a full
//! recomputation, and setters keep the promise.
//!
//! Also here: [`records`] and [`record`], the length-prefixed framing that the harnesses of
//! the other crates use to cut one input into a sequence of packets.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::{
    arp, checksum, icmp, icmpv6, proto, walk_ext_headers, ArpPacket, DccpPacket, EthernetFrame,
    IcmpPacket, Icmpv6Packet, Ipv4Packet, Ipv6FragHeader, Ipv6Packet, NdOption, NdOptionIter,
    PacketBuf, SctpChunkIter, SctpPacket, SegChain, TcpOption, TcpOptionIter, TcpPacket,
    UdpLitePacket, UdpPacket, MAX_EXT_HEADERS,
};

const V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const V4B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const V6B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);

/// How deep ICMP errors are followed into the packets they quote (an error quoting an error
/// quoting ...): real errors never quote errors, two levels reach every code path.
const MAX_DEPTH: u8 = 2;

/// Selectors of [`run`], in order.
pub const TARGETS: &[&str] = &[
    "ipv4", "ipv6", "tcp", "udp", "udplite", "icmp", "icmpv6", "sctp", "dccp", "ethernet", "arp",
    "options", "checksum", "buffers",
];

/// Decodes `data` as `[selector, bytes..]` and checks the view it selects; panics on a
/// violated invariant (the fuzzer's signal), never on merely malformed bytes.
pub fn run(data: &[u8]) {
    let Some((&sel, b)) = data.split_first() else {
        return;
    };
    match usize::from(sel) % TARGETS.len() {
        0 => ipv4(b, 0),
        1 => ipv6(b, 0),
        2 => tcp(b, Addrs::V4(V4, V4B)),
        3 => udp(b, Addrs::V6(V6, V6B)),
        4 => udplite(b, Addrs::V4(V4, V4B)),
        5 => icmp(b, 0),
        6 => icmpv6(b, &V6, &V6B, 0),
        7 => sctp(b),
        8 => dccp(b, Addrs::V6(V6, V6B)),
        9 => ethernet(b),
        10 => arp_packet(b),
        11 => options(b),
        12 => checksums(b),
        _ => buffers(b),
    }
}

/// Every view on the same bytes (the crate's proptest uses this on random bytes).
pub fn all_views(b: &[u8]) {
    ipv4(b, 0);
    ipv6(b, 0);
    tcp(b, Addrs::V4(V4, V4B));
    udp(b, Addrs::V4(V4, V4B));
    udplite(b, Addrs::V6(V6, V6B));
    icmp(b, 0);
    icmpv6(b, &V6, &V6B, 0);
    sctp(b);
    dccp(b, Addrs::V4(V4, V4B));
    ethernet(b);
    arp_packet(b);
    options(b);
}

/// The addresses of the IP header around a transport header (for pseudo-header checksums).
#[derive(Clone, Copy)]
enum Addrs {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

/// The transport header of an IP packet, by protocol number.
fn transport(proto_nr: u8, b: &[u8], addrs: Addrs, depth: u8) {
    match proto_nr {
        proto::TCP => tcp(b, addrs),
        proto::UDP => udp(b, addrs),
        proto::UDPLITE => udplite(b, addrs),
        proto::SCTP => sctp(b),
        proto::DCCP => dccp(b, addrs),
        proto::ICMP => icmp(b, depth),
        proto::ICMPV6 => {
            if let Addrs::V6(s, d) = addrs {
                icmpv6(b, &s, &d, depth);
            }
        }
        _ => {}
    }
}

fn ipv4(b: &[u8], depth: u8) {
    let Ok(p) = Ipv4Packet::new_checked(b) else {
        return;
    };
    let hl = p.header_len();
    assert!(hl >= 20 && hl <= b.len(), "header length {hl}");
    assert_eq!(p.version(), 4);
    assert_eq!(p.header().len(), hl);
    assert_eq!(p.options().len(), hl - 20);
    assert_eq!(hl + p.payload().len(), usize::from(p.total_len()));
    let _ = (
        p.dscp_ecn(),
        p.ident(),
        p.dont_frag(),
        p.ttl(),
        p.checksum(),
    );
    assert_eq!(
        p.is_fragment(),
        p.more_frags() || p.frag_offset() != 0,
        "fragment flag"
    );
    let _ = p.verify_checksum();
    if p.frag_offset() == 0 {
        transport(
            p.protocol(),
            p.payload(),
            Addrs::V4(p.src_addr(), p.dst_addr()),
            depth,
        );
    }
    // Writable view: the checksum it fills verifies, and setters keep the promise.
    let mut v = b.to_vec();
    let mut m = Ipv4Packet::new_checked(&mut v[..]).expect("same bytes");
    m.fill_checksum();
    assert!(m.verify_checksum(), "IPv4 header checksum after fill");
    m.set_ttl(m.ttl().wrapping_sub(1));
    m.set_dscp_ecn(b.len() as u8);
    m.set_frag(true, false, 8);
    m.set_src_addr(V4B);
    m.set_dst_addr(V4);
    m.fill_checksum();
    assert!(m.verify_checksum(), "IPv4 header checksum after setters");
    assert_eq!(
        (m.frag_offset(), m.more_frags(), m.dont_frag()),
        (8, false, true)
    );
    // A total length beyond the buffer: payload accessors clamp instead of panicking.
    m.set_total_len(u16::MAX);
    let _ = (m.payload().len(), m.payload_mut().len(), m.options().len());
}

fn ipv6(b: &[u8], depth: u8) {
    if let Ok(p) = Ipv6Packet::new_checked(b) {
        assert_eq!(p.version(), 6);
        assert_eq!(p.payload().len(), usize::from(p.payload_len()));
        let _ = (p.traffic_class(), p.flow_label(), p.hop_limit());
        if let Ok(w) = p.ext_headers() {
            check_walk(&w, p.payload().len());
            let l4 = &p.payload()[w.l4_offset..];
            if w.terminated == crate::Terminal::UpperLayer {
                transport(
                    w.upper_proto,
                    l4,
                    Addrs::V6(p.src_addr(), p.dst_addr()),
                    depth,
                );
            }
            if let Some(f) = w.frag {
                let at = f.header_offset;
                let h = Ipv6FragHeader::new_checked(&p.payload()[at..]).expect("walked header");
                assert_eq!(
                    (h.next_header(), h.frag_offset(), h.more_frags(), h.ident()),
                    (f.next_header, f.offset, f.more, f.ident)
                );
            }
        }
        let mut v = b.to_vec();
        let mut m = Ipv6Packet::new_checked(&mut v[..]).expect("same bytes");
        m.set_hop_limit(m.hop_limit().wrapping_sub(1));
        m.set_traffic_class(0xff);
        m.set_flow_label(u32::MAX);
        assert_eq!((m.traffic_class(), m.flow_label()), (0xff, 0xf_ffff));
        m.set_src_addr(&V6B);
        m.set_next_header(proto::IPV6_FRAG);
        let _ = m.ext_headers();
        m.set_payload_len(u16::MAX);
        let _ = (m.payload().len(), m.payload_mut().len(), m.ext_headers());
    }
    // The walk on its own, over the bytes as a payload.
    if let Some((&first, rest)) = b.split_first() {
        if let Ok(w) = walk_ext_headers(first, rest) {
            check_walk(&w, rest.len());
        }
    }
    if let Ok(mut h) = Ipv6FragHeader::new_checked(b.to_vec()) {
        h.set_frag(0xfff8, true);
        h.set_ident(7);
        h.set_next_header(proto::TCP);
        assert_eq!(
            (h.frag_offset(), h.more_frags(), h.ident(), h.next_header()),
            (0xfff8, true, 7, proto::TCP)
        );
    }
}

fn check_walk(w: &crate::ExtHeaderWalk, len: usize) {
    assert!(w.l4_offset <= len, "l4 offset {} past {len}", w.l4_offset);
    assert!(w.headers.len() <= MAX_EXT_HEADERS);
    let mut end = 0;
    for h in w.headers.iter() {
        assert!(h.offset >= end && h.offset + h.len <= len, "{h:?} in {len}");
        assert!(h.len >= 8, "{h:?} shorter than 8 bytes");
        end = h.offset + h.len;
    }
    assert!(
        end <= w.l4_offset,
        "headers end {end} after l4 {}",
        w.l4_offset
    );
    if let Some(f) = w.frag {
        assert!(w.headers.contains(proto::IPV6_FRAG));
        assert!(f.header_offset + 8 <= len);
    }
}

fn tcp(b: &[u8], addrs: Addrs) {
    let Ok(p) = TcpPacket::new_checked(b) else {
        return;
    };
    let hl = p.header_len();
    assert!(hl >= 20 && hl <= b.len(), "header length {hl}");
    assert_eq!(p.options().len(), hl - 20);
    assert_eq!(p.payload().len(), b.len() - hl);
    let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number());
    let _ = (
        p.fin(),
        p.syn(),
        p.rst(),
        p.psh(),
        p.ack(),
        p.urg(),
        p.ece(),
    );
    let _ = (p.cwr(), p.ns(), p.window_len(), p.checksum(), p.urgent_at());
    assert!(p.flags() <= 0x1ff);
    let syn_fin = usize::from(p.syn()) + usize::from(p.fin());
    assert_eq!(p.segment_len(), p.payload().len() + syn_fin);
    tcp_options(p.options());
    let _ = p.options_iter().count();
    let mut v = b.to_vec();
    let mut m = TcpPacket::new_checked(&mut v[..]).expect("same bytes");
    match addrs {
        Addrs::V4(s, d) => {
            m.fill_checksum_v4(s, d);
            assert!(m.verify_checksum_v4(s, d), "TCP/IPv4 checksum after fill");
        }
        Addrs::V6(s, d) => {
            m.fill_checksum_v6(&s, &d);
            assert!(m.verify_checksum_v6(&s, &d), "TCP/IPv6 checksum after fill");
        }
    }
    m.set_flags(0xfff);
    m.set_seq_number(u32::MAX);
    m.set_ack_number(1);
    m.set_window_len(0);
    m.set_urgent_at(7);
    m.set_src_port(1);
    m.set_dst_port(2);
    let _ = (m.options_mut().len(), m.payload_mut().len(), m.header_len());
    let _ = m.options_iter().count();
}

/// Every TCP option: the iterator ends, yields options whose sizes match their kind, and
/// stops after the first error or End of List.
fn tcp_options(o: &[u8]) {
    let mut n = 0;
    let mut ended = false;
    for opt in TcpOptionIter::new(o) {
        assert!(!ended, "option after an error or End of List");
        n += 1;
        assert!(n <= o.len() + 1, "more options than bytes");
        match opt {
            Ok(TcpOption::Sack(blocks)) => {
                let k = blocks.len();
                assert!((1..=4).contains(&k), "{k} SACK blocks");
                assert_eq!(blocks.count(), k);
            }
            Ok(TcpOption::Unknown { data, .. }) => assert!(data.len() + 2 <= o.len()),
            Ok(TcpOption::EndOfList) | Err(_) => ended = true,
            Ok(_) => {}
        }
    }
}

fn udp(b: &[u8], addrs: Addrs) {
    let Ok(p) = UdpPacket::new_checked(b) else {
        return;
    };
    let len = usize::from(p.len());
    assert!(
        len >= 8 && len <= b.len(),
        "UDP length {len} of {}",
        b.len()
    );
    assert_eq!(p.payload().len(), len - 8);
    let _ = (p.src_port(), p.dst_port(), p.checksum());
    let mut v = b.to_vec();
    let mut m = UdpPacket::new_checked(&mut v[..]).expect("same bytes");
    match addrs {
        Addrs::V4(s, d) => {
            m.fill_checksum_v4(s, d);
            assert!(m.verify_checksum_v4(s, d), "UDP/IPv4 checksum after fill");
        }
        Addrs::V6(s, d) => {
            m.fill_checksum_v6(&s, &d);
            assert_ne!(m.checksum(), 0, "UDP checksum 0 means none");
            assert!(m.verify_checksum_v6(&s, &d), "UDP/IPv6 checksum after fill");
        }
    }
    m.set_src_port(9);
    m.set_dst_port(9);
    m.set_len(u16::MAX);
    let _ = (m.payload().len(), m.payload_mut().len());
    m.set_len(0);
    let _ = (m.payload().len(), m.payload_mut().len());
    let _ = (m.verify_checksum_v4(V4, V4), m.verify_checksum_v6(&V6, &V6));
}

fn udplite(b: &[u8], addrs: Addrs) {
    let Ok(p) = UdpLitePacket::new_checked(b) else {
        return;
    };
    let cov = p.coverage_len();
    assert!(cov >= 8 && cov <= b.len(), "coverage {cov} of {}", b.len());
    assert_eq!(p.payload().len(), b.len() - 8);
    let _ = (
        p.src_port(),
        p.dst_port(),
        p.checksum_coverage(),
        p.checksum(),
    );
    let mut v = b.to_vec();
    let mut m = UdpLitePacket::new_checked(&mut v[..]).expect("same bytes");
    match addrs {
        Addrs::V4(s, d) => {
            m.fill_checksum_v4(s, d);
            assert!(
                m.verify_checksum_v4(s, d),
                "UDP-Lite/IPv4 checksum after fill"
            );
        }
        Addrs::V6(s, d) => {
            m.fill_checksum_v6(&s, &d);
            assert!(
                m.verify_checksum_v6(&s, &d),
                "UDP-Lite/IPv6 checksum after fill"
            );
        }
    }
    m.set_checksum_coverage(u16::MAX);
    let _ = (m.coverage_len(), m.payload_mut().len());
    let _ = (m.verify_checksum_v4(V4, V4), m.verify_checksum_v6(&V6, &V6));
    m.set_src_port(1);
    m.set_dst_port(1);
    m.set_checksum(0);
}

fn icmp(b: &[u8], depth: u8) {
    let Ok(p) = IcmpPacket::new_checked(b) else {
        return;
    };
    assert_eq!(p.data().len(), b.len() - 8);
    let _ = (p.msg_type(), p.code(), p.checksum(), p.rest_of_header());
    let _ = (p.echo_ident(), p.echo_seq_no(), p.verify_checksum());
    assert_eq!(p.is_error(), icmp::is_error_type(p.msg_type()));
    assert!(!(p.is_echo() && p.is_echo_reply()));
    if p.is_error() && depth < MAX_DEPTH {
        // The quoted packet: its IP header and the start of its transport header.
        ipv4(p.data(), depth + 1);
    }
    let mut out = vec![0u8; b.len() + 8];
    if p.is_echo() {
        let n = icmp::emit_echo_reply(&p, &mut out).expect("room for the reply");
        let r = IcmpPacket::new_checked(&out[..n]).expect("emitted reply");
        assert!(r.is_echo_reply() && r.verify_checksum(), "echo reply");
        assert_eq!(
            (r.echo_ident(), r.echo_seq_no()),
            (p.echo_ident(), p.echo_seq_no())
        );
        assert_eq!(r.data(), p.data());
    }
    // An error quoting these bytes, into a buffer of a size picked by the input.
    let room = usize::from(b[1]).min(out.len());
    match icmp::emit_error(&mut out[..room], 3, 4, 1280, b) {
        Ok(n) => {
            let e = IcmpPacket::new_checked(&out[..n]).expect("emitted error");
            assert!(e.verify_checksum() && e.is_error(), "emitted ICMP error");
            assert_eq!(e.data(), &b[..n - 8]);
        }
        Err(_) => assert!(room < 8),
    }
    let mut v = b.to_vec();
    let mut m = IcmpPacket::new_checked(&mut v[..]).expect("same bytes");
    m.set_msg_type(0);
    m.set_code(0);
    m.set_echo_ident(1);
    m.set_echo_seq_no(2);
    m.set_rest_of_header(3);
    m.fill_checksum();
    assert!(m.verify_checksum(), "ICMP checksum after fill");
    let _ = m.data_mut().len();
}

fn icmpv6(b: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr, depth: u8) {
    let Ok(p) = Icmpv6Packet::new_checked(b) else {
        return;
    };
    assert_eq!(p.data().len(), b.len() - 8);
    let _ = (p.msg_type(), p.code(), p.checksum(), p.rest_of_header());
    let _ = (p.echo_ident(), p.echo_seq_no(), p.verify_checksum(src, dst));
    let _ = (p.ns_target(), p.na_target(), p.na_router());
    let _ = (p.na_solicited(), p.na_override());
    assert_eq!(p.is_error(), p.msg_type() < 128);
    assert!(!(p.is_echo() && p.is_echo_reply()));
    nd_options(b, p.nd_options());
    if p.is_error() && depth < MAX_DEPTH {
        ipv6(p.data(), depth + 1);
    }
    let mut out = vec![0u8; b.len() + 8];
    if p.is_echo() {
        let n = icmpv6::emit_echo(
            &mut out,
            icmpv6::Message::ECHO_REPLY,
            p.echo_ident(),
            p.echo_seq_no(),
            p.data(),
            dst,
            src,
        )
        .expect("room for the reply");
        let r = Icmpv6Packet::new_checked(&out[..n]).expect("emitted reply");
        assert!(
            r.is_echo_reply() && r.verify_checksum(dst, src),
            "echo reply"
        );
    }
    let room = usize::from(b[1]).min(out.len());
    match icmpv6::emit_error(&mut out[..room], 1, 4, 0, b, dst, src) {
        Ok(n) => {
            let e = Icmpv6Packet::new_checked(&out[..n]).expect("emitted error");
            assert!(e.verify_checksum(dst, src) && e.is_error(), "emitted error");
            assert_eq!(e.data(), &b[..n - 8]);
        }
        Err(_) => assert!(room < 8),
    }
    let mut v = b.to_vec();
    let mut m = Icmpv6Packet::new_checked(&mut v[..]).expect("same bytes");
    m.set_na_flags(true, false, true);
    m.set_nd_target(&V6B);
    m.set_code(0);
    m.set_echo_ident(1);
    m.set_echo_seq_no(2);
    m.fill_checksum(src, dst);
    assert!(m.verify_checksum(src, dst), "ICMPv6 checksum after fill");
    m.set_msg_type(icmpv6::Message::NEIGHBOR_ADVERT);
    let _ = (m.na_target(), m.nd_options().count(), m.data_mut().len());
    m.set_rest_of_header(0);
    m.set_checksum(0);
}

/// ND options: the iterator ends, every option lies inside the message, at most one error.
fn nd_options(msg: &[u8], it: NdOptionIter<'_>) {
    let mut n = 0;
    let mut errored = false;
    for o in it {
        assert!(!errored, "option after an error");
        n += 1;
        assert!(n * 8 <= msg.len() + 8, "more options than 8-byte units");
        match o {
            Ok(NdOption::SourceLinkLayerAddr(d)) | Ok(NdOption::TargetLinkLayerAddr(d)) => {
                assert_eq!(d.len() % 8, 6, "link-layer option body of {}", d.len());
            }
            Ok(o @ NdOption::Unknown { .. }) => assert!(o.ethernet_addr().is_none()),
            Err(_) => errored = true,
        }
    }
}

fn sctp(b: &[u8]) {
    let Ok(p) = SctpPacket::new_checked(b) else {
        return;
    };
    assert_eq!(p.payload().len(), b.len() - 12);
    let _ = (
        p.src_port(),
        p.dst_port(),
        p.verification_tag(),
        p.checksum(),
    );
    let _ = p.verify_checksum();
    let first = p.first_chunk();
    assert_eq!(first.is_some(), !p.payload().is_empty(), "first chunk");
    sctp_chunks(p.payload());
    let mut v = b.to_vec();
    let mut m = SctpPacket::new_checked(&mut v[..]).expect("same bytes");
    m.set_src_port(1);
    m.set_dst_port(2);
    m.set_verification_tag(u32::MAX);
    m.fill_checksum();
    assert!(m.verify_checksum(), "SCTP CRC32c after fill");
    m.set_checksum(0);
}

fn sctp_chunks(area: &[u8]) {
    let mut total = 0;
    let mut errored = false;
    for c in SctpChunkIter::new(area) {
        assert!(!errored, "chunk after an error");
        match c {
            Ok(c) => {
                assert_eq!(usize::from(c.length), c.value.len() + 4);
                total += c.value.len() + 4;
                assert!(total <= area.len(), "chunks past the packet");
                let _ = (c.init_initiate_tag(), c.t_bit());
            }
            Err(_) => errored = true,
        }
    }
}

fn dccp(b: &[u8], addrs: Addrs) {
    let Ok(p) = DccpPacket::new_checked(b) else {
        return;
    };
    let hl = p.header_len();
    assert!(hl <= b.len(), "header length {hl}");
    assert_eq!(p.payload().len(), b.len() - hl);
    let _ = (p.src_port(), p.dst_port(), p.data_offset(), p.ccval());
    let _ = (p.cscov(), p.checksum(), p.x(), p.seq_number());
    let ty = p.packet_type();
    assert_eq!(p.ack_number().is_some(), ty.has_ack(), "{ty:?} ack number");
    let _ = (
        p.service_code(),
        p.reset_code(),
        p.reset_data(),
        p.options(),
    );
    if let Some(cov) = p.checksum_coverage_len() {
        assert!(cov <= b.len());
    }
    let mut v = b.to_vec();
    let mut m = DccpPacket::new_checked(&mut v[..]).expect("same bytes");
    let filled = match addrs {
        Addrs::V4(s, d) => m.fill_checksum_v4(s, d).map(|_| m.verify_checksum_v4(s, d)),
        Addrs::V6(s, d) => m
            .fill_checksum_v6(&s, &d)
            .map(|_| m.verify_checksum_v6(&s, &d)),
    };
    match filled {
        Ok(ok) => assert!(ok, "DCCP checksum after fill"),
        Err(_) => assert!(p.checksum_coverage_len().is_none()),
    }
    m.set_src_port(1);
    m.set_dst_port(2);
    m.set_checksum(0);
}

fn ethernet(b: &[u8]) {
    let Ok(f) = EthernetFrame::new_checked(b) else {
        return;
    };
    assert_eq!(f.payload().len(), b.len() - 14);
    let _ = (f.dst_addr(), f.src_addr());
    match f.ethertype() {
        crate::EtherType::IPV4 => ipv4(f.payload(), 0),
        crate::EtherType::IPV6 => ipv6(f.payload(), 0),
        crate::EtherType::ARP => arp_packet(f.payload()),
        _ => {}
    }
    let mut v = b.to_vec();
    let mut m = EthernetFrame::new_checked(&mut v[..]).expect("same bytes");
    m.set_dst_addr([0xff; 6]);
    m.set_src_addr([2, 0, 0, 0, 0, 1]);
    m.set_ethertype(0x86dd);
    assert_eq!(m.payload_mut().len(), b.len() - 14);
    let mut hdr = [0u8; 14];
    crate::ethernet::emit_header(&mut hdr, f.dst_addr(), f.src_addr(), f.ethertype())
        .expect("14 bytes");
    assert_eq!(&hdr[..], &b[..14], "Ethernet header re-emitted");
}

fn arp_packet(b: &[u8]) {
    let Ok(p) = ArpPacket::new_checked(b) else {
        return;
    };
    let (op, sha, spa) = (p.operation(), p.sender_hw_addr(), p.sender_proto_addr());
    let (tha, tpa) = (p.target_hw_addr(), p.target_proto_addr());
    let mut out = [0u8; 28];
    arp::emit(&mut out, op, sha, spa, tha, tpa).expect("28 bytes");
    let q = ArpPacket::new_checked(&out[..]).expect("emitted ARP");
    assert_eq!(
        (q.operation(), q.sender_hw_addr(), q.sender_proto_addr()),
        (op, sha, spa)
    );
    assert_eq!((q.target_hw_addr(), q.target_proto_addr()), (tha, tpa));
    let mut v = b.to_vec();
    let mut m = ArpPacket::new_checked(&mut v[..]).expect("same bytes");
    m.set_operation(2);
    m.set_sender_hw_addr(tha);
    m.set_sender_proto_addr(tpa);
    m.set_target_hw_addr(sha);
    m.set_target_proto_addr(spa);
    assert_eq!(m.sender_proto_addr(), tpa);
}

/// The raw option and chunk iterators on bytes of their own.
fn options(b: &[u8]) {
    tcp_options(b);
    nd_options(b, NdOptionIter::new(b));
    sctp_chunks(b);
}

/// Incremental updates (RFC 1624) agree with a full recomputation; partial sums joined in
/// pieces agree with one sum over everything.
fn checksums(b: &[u8]) {
    let Some((&cut, rest)) = b.split_first() else {
        return;
    };
    let full = checksum::sum(rest);
    // Sums built in two pieces cut at an even offset equal the sum of the whole.
    let at = (usize::from(cut) * 2).min(rest.len() & !1);
    let (x, y) = rest.split_at(at);
    let pieces = checksum::combine(checksum::sum(x), checksum::sum(y));
    assert!(
        same_checksum(checksum::fold(pieces), checksum::fold(full)),
        "sum in pieces"
    );
    // Replace a word and a 32-bit field (at even offsets), and a run of bytes.
    let even = rest.len() & !1;
    if even >= 8 {
        let check = checksum::data(rest);
        let w = at.min(even - 8);
        let mut v = rest.to_vec();
        let old16 = u16::from_be_bytes([v[w], v[w + 1]]);
        let new16 = old16 ^ u16::from(cut) << 3 ^ 0x5a5a;
        v[w..w + 2].copy_from_slice(&new16.to_be_bytes());
        let c16 = checksum::update16(check, old16, new16);
        assert!(same_checksum(c16, checksum::data(&v)), "update16");
        let old32 = u32::from_be_bytes([v[w + 2], v[w + 3], v[w + 4], v[w + 5]]);
        let new32 = !old32 ^ u32::from(cut);
        v[w + 2..w + 6].copy_from_slice(&new32.to_be_bytes());
        let c32 = checksum::update32(c16, old32, new32);
        assert!(same_checksum(c32, checksum::data(&v)), "update32");
        let old: Vec<u8> = v[w..w + 8].to_vec();
        let new: Vec<u8> = old.iter().map(|x| x.rotate_left(3)).collect();
        v[w..w + 8].copy_from_slice(&new);
        let cb = checksum::update_bytes(c32, &old, &new);
        assert!(same_checksum(cb, checksum::data(&v)), "update_bytes");
    }
    // The 20-byte fast path agrees with the general one.
    if let Some(h) = rest.first_chunk::<20>() {
        assert_eq!(
            checksum::verifies20(h),
            checksum::data(h) == 0,
            "verifies20"
        );
    }
    let _ = checksum::crc32c(rest);
}

/// Ones' complement checksums are equal, where 0x0000 and 0xffff are both zero.
fn same_checksum(a: u16, b: u16) -> bool {
    a == b || (a == 0 || a == 0xffff) && (b == 0 || b == 0xffff)
}

/// PacketBuf and SegChain operations driven by the input: the bytes stay what a plain
/// vector model says they are.
fn buffers(b: &[u8]) {
    let mut model: Vec<u8> = Vec::new();
    let mut buf = PacketBuf::with_headroom(usize::from(b.first().copied().unwrap_or(0) % 32), &[]);
    let mut chain = SegChain::new();
    let mut whole = Vec::new();
    for op in b.chunks(4) {
        let (kind, n) = (op[0] % 6, usize::from(*op.get(1).unwrap_or(&0)));
        match kind {
            0 => {
                let front = buf.prepend(n % 80);
                assert!(front.iter().all(|&x| x == 0), "prepended bytes zeroed");
                model.splice(0..0, std::iter::repeat_n(0, n % 80));
            }
            1 => {
                buf.trim_front(n);
                model.drain(..n.min(model.len()));
            }
            2 => {
                buf.truncate(n);
                model.truncate(n);
            }
            3 => {
                buf.extend_from_slice(op);
                model.extend_from_slice(op);
            }
            4 => {
                let (s, e) = (n % 16, n % 16 + usize::from(*op.get(2).unwrap_or(&0)) % 16);
                let ok = buf.splice(s..e, &op[1..]);
                assert_eq!(ok, e <= model.len(), "splice {s}..{e} of {}", model.len());
                if ok {
                    model.splice(s..e, op[1..].iter().copied());
                }
            }
            _ => {
                chain.push(PacketBuf::from_slice(buf.as_slice()));
                whole.extend_from_slice(buf.as_slice());
            }
        }
        assert_eq!(buf.as_slice(), &model[..], "PacketBuf against its model");
        assert_eq!(buf.len(), model.len());
    }
    assert_eq!(chain.len(), whole.len());
    assert_eq!(chain.linearize(), whole);
    let off = usize::from(b.last().copied().unwrap_or(0));
    let mut out = vec![0u8; b.len() % 64];
    let ok = chain.copy_to(off, &mut out);
    assert_eq!(ok, off + out.len() <= whole.len(), "copy_to bounds");
    if ok {
        assert_eq!(&out[..], &whole[off..off + out.len()], "copy_to bytes");
    }
    assert_eq!(buf.clone().into_vec(), model);
}

/// Makes the checksums of an IP packet right where the packet lets it (the IPv4 header; the
/// transport checksum of an unfragmented packet), so that mutated packets get past checksum
/// verification and into the code behind it. Anything unparsable is left as it is.
pub fn fix_checksums(p: &mut [u8]) {
    match p.first().map(|b| b >> 4) {
        Some(4) => {
            let Ok(mut ip) = Ipv4Packet::new_checked(&mut *p) else {
                return;
            };
            ip.fill_checksum();
            if ip.is_fragment() {
                return;
            }
            let (s, d, pr) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
            let (hl, tl) = (ip.header_len(), usize::from(ip.total_len()));
            fill_l4(pr, &mut p[hl..tl], Addrs::V4(s, d));
        }
        Some(6) => {
            let Ok(ip) = Ipv6Packet::new_checked(&*p) else {
                return;
            };
            let (s, d) = (ip.src_addr(), ip.dst_addr());
            let end = 40 + usize::from(ip.payload_len());
            let Ok(w) = ip.ext_headers() else {
                return;
            };
            if w.frag.is_none() && w.terminated == crate::Terminal::UpperLayer {
                fill_l4(
                    w.upper_proto,
                    &mut p[40 + w.l4_offset..end],
                    Addrs::V6(s, d),
                );
            }
        }
        _ => {}
    }
}

fn fill_l4(proto_nr: u8, b: &mut [u8], addrs: Addrs) {
    match (proto_nr, addrs) {
        (proto::TCP, Addrs::V4(s, d)) => {
            if let Ok(mut t) = TcpPacket::new_checked(b) {
                t.fill_checksum_v4(s, d);
            }
        }
        (proto::TCP, Addrs::V6(s, d)) => {
            if let Ok(mut t) = TcpPacket::new_checked(b) {
                t.fill_checksum_v6(&s, &d);
            }
        }
        (proto::UDP, Addrs::V4(s, d)) => {
            if let Ok(mut u) = UdpPacket::new_checked(b) {
                u.fill_checksum_v4(s, d);
            }
        }
        (proto::UDP, Addrs::V6(s, d)) => {
            if let Ok(mut u) = UdpPacket::new_checked(b) {
                u.fill_checksum_v6(&s, &d);
            }
        }
        (proto::UDPLITE, Addrs::V4(s, d)) => {
            if let Ok(mut u) = UdpLitePacket::new_checked(b) {
                u.fill_checksum_v4(s, d);
            }
        }
        (proto::UDPLITE, Addrs::V6(s, d)) => {
            if let Ok(mut u) = UdpLitePacket::new_checked(b) {
                u.fill_checksum_v6(&s, &d);
            }
        }
        (proto::ICMP, Addrs::V4(..)) => {
            if let Ok(mut m) = IcmpPacket::new_checked(b) {
                m.fill_checksum();
            }
        }
        (proto::ICMPV6, Addrs::V6(s, d)) => {
            if let Ok(mut m) = Icmpv6Packet::new_checked(b) {
                m.fill_checksum(&s, &d);
            }
        }
        (proto::SCTP, _) => {
            if let Ok(mut m) = SctpPacket::new_checked(b) {
                m.fill_checksum();
            }
        }
        (proto::DCCP, Addrs::V4(s, d)) => {
            if let Ok(mut m) = DccpPacket::new_checked(b) {
                let _ = m.fill_checksum_v4(s, d);
            }
        }
        (proto::DCCP, Addrs::V6(s, d)) => {
            if let Ok(mut m) = DccpPacket::new_checked(b) {
                let _ = m.fill_checksum_v6(&s, &d);
            }
        }
        _ => {}
    }
}

/// Cuts an input into records `[control, length (u16, big-endian), bytes]`; a length past
/// the end takes what is left. The harnesses of the other crates read packet sequences this
/// way (the control byte picks an interface, a time step, an action).
pub fn records(data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> + '_ {
    let mut rest = data;
    std::iter::from_fn(move || {
        let (&ctl, r) = rest.split_first()?;
        let len = match r {
            [hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
            _ => 0,
        };
        let body = r.get(2..).unwrap_or(&[]);
        let len = len.min(body.len());
        let (bytes, tail) = body.split_at(len);
        rest = tail;
        Some((ctl, bytes))
    })
}

/// Encodes one record for [`records`] (seed corpora are written with it).
pub fn record(ctl: u8, bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    let mut v = vec![ctl];
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&bytes[..usize::from(len)]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_clamp() {
        let mut data = record(1, b"abc");
        data.extend(record(2, b""));
        data.extend_from_slice(&[3, 0, 9, b'x']);
        let got: Vec<(u8, &[u8])> = records(&data).collect();
        assert_eq!(got, [(1, &b"abc"[..]), (2, &b""[..]), (3, &b"x"[..])]);
        assert_eq!(records(&[7]).collect::<Vec<_>>(), [(7, &b""[..])]);
    }
}
