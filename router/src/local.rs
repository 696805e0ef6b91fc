//! The router's own stack: the packets tunfilter itself originates (echo
//! replies, ICMP/ICMPv6 errors, TCP resets for REJECT). Each builder returns
//! a complete IP packet that then goes through the OUTPUT path like any
//! locally generated packet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use wire::buf::PacketBuf;
use wire::{checksum, icmp, ipv4, ipv6};

/// TTL / hop limit of packets the router originates (Linux's default).
pub const LOCAL_TTL: u8 = 64;
/// RFC 1812 §4.3.2.3: an ICMPv4 error packet is at most 576 bytes.
const V4_ERROR_MAX: usize = 576;
/// RFC 4443 §2.4 (c): an ICMPv6 error must not exceed the minimum MTU, 1280.
const V6_ERROR_MAX: usize = 1280;

/// An ICMPv4 message from `src` to `dst` wrapped in an IPv4 header.
fn ipv4_wrap(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    body: &[u8],
    ident: u16,
) -> Option<PacketBuf> {
    let mut v = vec![0u8; ipv4::HEADER_LEN + body.len()];
    ipv4::emit_header(&mut v, src, dst, proto, LOCAL_TTL, body.len(), ident).ok()?;
    v[ipv4::HEADER_LEN..].copy_from_slice(body);
    Some(PacketBuf::with_headroom(wire::buf::DEFAULT_HEADROOM, &v))
}

fn ipv6_wrap(src: &Ipv6Addr, dst: &Ipv6Addr, proto: u8, body: &[u8]) -> Option<PacketBuf> {
    let mut v = vec![0u8; ipv6::HEADER_LEN + body.len()];
    ipv6::emit_header(&mut v, src, dst, proto, LOCAL_TTL, body.len()).ok()?;
    v[ipv6::HEADER_LEN..].copy_from_slice(body);
    Some(PacketBuf::with_headroom(wire::buf::DEFAULT_HEADROOM, &v))
}

/// An ICMP (v4) or ICMPv6 error from `src` about `offending` (the whole IP
/// packet as received), sent back to its source. `rest` fills bytes 4–7
/// (next-hop MTU for Fragmentation Needed / Packet Too Big).
pub fn icmp_error(src: IpAddr, offending: &[u8], ty: u8, code: u8, rest: u32) -> Option<PacketBuf> {
    match src {
        IpAddr::V4(s) => {
            let d = Ipv4Addr::from(<[u8; 4]>::try_from(offending.get(12..16)?).ok()?);
            let mut body = vec![0u8; V4_ERROR_MAX - ipv4::HEADER_LEN];
            let n = icmp::emit_error(&mut body, ty, code, rest, offending).ok()?;
            ipv4_wrap(s, d, 1, &body[..n], 0)
        }
        IpAddr::V6(s) => {
            let d = Ipv6Addr::from(<[u8; 16]>::try_from(offending.get(8..24)?).ok()?);
            let q = offending.len().min(V6_ERROR_MAX - ipv6::HEADER_LEN - 8);
            let mut body = Vec::with_capacity(8 + q);
            body.extend_from_slice(&[ty, code, 0, 0]);
            body.extend_from_slice(&rest.to_be_bytes());
            body.extend_from_slice(&offending[..q]);
            let ck = checksum::upper_layer_v6(&s, &d, 58, &body);
            body[2..4].copy_from_slice(&ck.to_be_bytes());
            ipv6_wrap(&s, &d, 58, &body)
        }
    }
}

/// The echo reply to an echo request addressed to the router. `request` is
/// the IP packet, `l4_offset` where its ICMP header starts.
pub fn echo_reply(request: &[u8], l4_offset: usize) -> Option<PacketBuf> {
    match request.first()? >> 4 {
        4 => {
            let ip = wire::Ipv4Packet::new_checked(request).ok()?;
            let msg = ip.payload();
            if msg.len() < 8 || msg[0] != 8 {
                return None;
            }
            let mut body = msg.to_vec();
            body[0] = 0;
            body[2..4].fill(0);
            let ck = checksum::data(&body);
            body[2..4].copy_from_slice(&ck.to_be_bytes());
            ipv4_wrap(ip.dst_addr(), ip.src_addr(), 1, &body, ip.ident())
        }
        6 => {
            // The message ends where the Payload Length says, whatever follows it: check
            // the bytes that will be copied, not the bytes present.
            let ip = wire::Ipv6Packet::new_checked(request).ok()?;
            let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
            let mut body = request.get(l4_offset..end)?.to_vec();
            if body.len() < 8 || body[0] != 128 {
                return None;
            }
            body[0] = 129;
            body[2..4].fill(0);
            let (s, d) = (ip.dst_addr(), ip.src_addr());
            let ck = checksum::upper_layer_v6(&s, &d, 58, &body);
            body[2..4].copy_from_slice(&ck.to_be_bytes());
            ipv6_wrap(&s, &d, 58, &body)
        }
        _ => None,
    }
}

/// A TCP RST answering `offending` (RFC 9293 §3.10.7.1 reset generation):
/// from the original destination back to the source, with the sequence
/// number taken from the ACK if there was one, else ACKing the segment.
pub fn tcp_reset(offending: &[u8], l4_offset: usize) -> Option<PacketBuf> {
    let l3 = l3proto::parse(offending).ok()?;
    let tcp = wire::TcpPacket::new_checked(offending.get(l4_offset..l3.len)?).ok()?;
    if tcp.rst() {
        return None; // never answer a reset with a reset
    }
    let mut seg = [0u8; 20];
    seg[0..2].copy_from_slice(&tcp.dst_port().to_be_bytes());
    seg[2..4].copy_from_slice(&tcp.src_port().to_be_bytes());
    seg[12] = 5 << 4;
    if tcp.ack() {
        seg[4..8].copy_from_slice(&tcp.ack_number().to_be_bytes());
        seg[13] = 0x04; // RST
    } else {
        let len = tcp.payload().len() as u32 + u32::from(tcp.syn()) + u32::from(tcp.fin());
        seg[8..12].copy_from_slice(&tcp.seq_number().wrapping_add(len).to_be_bytes());
        seg[13] = 0x14; // RST|ACK
    }
    match (l3.src, l3.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut t = wire::TcpPacket::new_unchecked(&mut seg[..]);
            t.fill_checksum_v4(d, s);
            ipv4_wrap(d, s, 6, &seg, 0)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut t = wire::TcpPacket::new_unchecked(&mut seg[..]);
            t.fill_checksum_v6(&d, &s);
            ipv6_wrap(&d, &s, 6, &seg)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_request_v4() -> Vec<u8> {
        let mut body = [0u8; 16];
        let n = icmp::emit_echo(&mut body, 8, 0x1234, 7, b"pingdata").unwrap();
        let mut v = vec![0u8; 20 + n];
        ipv4::emit_header(
            &mut v,
            Ipv4Addr::new(192, 0, 2, 2),
            Ipv4Addr::new(192, 0, 2, 1),
            1,
            64,
            n,
            9,
        )
        .unwrap();
        v[20..].copy_from_slice(&body[..n]);
        v
    }

    #[test]
    fn echo_reply_v4_swaps_and_checksums() {
        let req = echo_request_v4();
        let rep = echo_reply(&req, 20).unwrap();
        let ip = wire::Ipv4Packet::new_checked(rep.as_slice()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        let m = wire::IcmpPacket::new_checked(ip.payload()).unwrap();
        assert!(m.is_echo_reply() && m.verify_checksum());
        assert_eq!(
            (m.echo_ident(), m.echo_seq_no(), m.data()),
            (0x1234, 7, &b"pingdata"[..])
        );
    }

    #[test]
    fn icmp_error_quotes_and_is_bounded() {
        let mut big = echo_request_v4();
        big.resize(1500, 0x55);
        let e = icmp_error("192.0.2.1".parse().unwrap(), &big, 11, 0, 0).unwrap();
        assert_eq!(e.len(), 576);
        let ip = wire::Ipv4Packet::new_checked(e.as_slice()).unwrap();
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(192, 0, 2, 2));
        let m = wire::IcmpPacket::new_checked(ip.payload()).unwrap();
        assert!(m.verify_checksum() && m.is_error());
        assert_eq!(&m.data()[..20], &big[..20]);
    }

    #[test]
    fn tcp_reset_acks_a_syn() {
        let mut syn = vec![0u8; 40];
        ipv4::emit_header(
            &mut syn,
            Ipv4Addr::new(192, 0, 2, 2),
            Ipv4Addr::new(198, 51, 100, 1),
            6,
            64,
            20,
            1,
        )
        .unwrap();
        syn[20..22].copy_from_slice(&40000u16.to_be_bytes());
        syn[22..24].copy_from_slice(&80u16.to_be_bytes());
        syn[24..28].copy_from_slice(&1000u32.to_be_bytes());
        syn[32] = 5 << 4;
        syn[33] = 0x02;
        let rst = tcp_reset(&syn, 20).unwrap();
        let ip = wire::Ipv4Packet::new_checked(rst.as_slice()).unwrap();
        assert_eq!(ip.src_addr(), Ipv4Addr::new(198, 51, 100, 1));
        let t = wire::TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(t.rst() && t.ack());
        assert_eq!(t.ack_number(), 1001);
        assert_eq!((t.src_port(), t.dst_port()), (80, 40000));
        assert!(t.verify_checksum_v4(ip.src_addr(), ip.dst_addr()));
    }
}
