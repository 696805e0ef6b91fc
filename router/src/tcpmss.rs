//! `-j TCPMSS`: lowering the MSS option of a TCP SYN, or adding one, as the
//! kernel's TCPMSS target does (iptables-extensions(8)).
//!
//! The rules only choose the value (`--set-mss N`, or the path MTU less the
//! headers for `--clamp-mss-to-pmtu`); the pipeline calls [`apply`] once per
//! packet with the smallest value any TCPMSS rule chose. The option is never
//! raised. A SYN without one gets one, as the kernel does, when the header has
//! room and no data follows it; its value is then at most the protocol's
//! default MSS (536 for IPv4, RFC 9293 §3.7.1; 1220 for IPv6, RFC 8200 §8.3),
//! because the receiver would have assumed that default without the option.
//!
//! ```
//! use wire::buf::PacketBuf;
//! # fn syn() -> Vec<u8> {
//! #     let mut p = vec![0u8; 44];
//! #     p[0] = 0x45; p[2..4].copy_from_slice(&44u16.to_be_bytes()); p[8] = 64; p[9] = 6;
//! #     p[12..16].copy_from_slice(&[192, 0, 2, 2]); p[16..20].copy_from_slice(&[198, 51, 100, 2]);
//! #     p[32] = 0x60; p[33] = 0x02; // data offset 24, SYN
//! #     p[40..44].copy_from_slice(&[2, 4, 0x05, 0xb4]); // MSS 1460
//! #     p
//! # }
//! let mut pkt = PacketBuf::from_vec(syn());
//! router::tcpmss::apply(&mut pkt, false, 20, 1400).unwrap();
//! assert_eq!(&pkt.as_slice()[40..44], &[2, 4, 0x05, 0x78]); // 1400
//! ```

use wire::buf::PacketBuf;
use wire::checksum;

/// The option kind and length of MSS (RFC 9293 §3.2).
const MSS_KIND: u8 = 2;
const MSS_LEN: usize = 4;

conntrack::reasons! {
    /// Why TCPMSS could not write the option: the packet is dropped and counted with it.
    pub enum TcpmssError {
        /// The TCP header is cut short, or its data offset is beyond the segment.
        TruncatedHeader => "tcpmss: truncated tcp header",
        /// The segment is too long for its length to enter the checksum.
        SegmentTooLong => "tcpmss: segment too long",
        /// Adding the option would make the packet longer than its length field can say.
        PacketTooLong => "tcpmss: packet too long",
    }
}

/// Lowers the MSS option of the TCP segment at `l4` to `mss` (or adds one).
/// `Err` is a drop reason for a header the option walk cannot trust.
pub fn apply(pkt: &mut PacketBuf, v6: bool, l4: usize, mss: u16) -> Result<(), TcpmssError> {
    apply_with(pkt, v6, l4, mss, false)
}

/// [`apply`] for a SYN whose TCP checksum is partial (offloaded, see [`crate::offload`]) when
/// `partial` is true: only the pseudo-header's length enters it, the rest is summed when the
/// checksum is completed.
pub fn apply_with(
    pkt: &mut PacketBuf,
    v6: bool,
    l4: usize,
    mss: u16,
    partial: bool,
) -> Result<(), TcpmssError> {
    let bytes = pkt.as_mut_slice();
    let Some(tcp) = bytes.get_mut(l4..) else {
        return Err(TcpmssError::TruncatedHeader);
    };
    let doff = usize::from(tcp.get(12).copied().unwrap_or(0) >> 4) * 4;
    if tcp.len() < 20 || doff < 20 || doff > tcp.len() {
        return Err(TcpmssError::TruncatedHeader);
    }
    let mut i = 20;
    while i < doff {
        match tcp[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let len = usize::from(*tcp.get(i + 1).unwrap_or(&0));
                if len < 2 || i + len > doff {
                    // The kernel stops at a broken option list and leaves it be.
                    return Ok(());
                }
                if kind == MSS_KIND && len == MSS_LEN {
                    let old = u16::from_be_bytes([tcp[i + 2], tcp[i + 3]]);
                    if old <= mss {
                        return Ok(());
                    }
                    // Checksum words start at even offsets of the segment; the
                    // value may not, so update the aligned words around it (an
                    // odd start means i + 4 < doff: the fourth byte exists).
                    let at = (i + 2) & !1;
                    let span = if at == i + 2 { 2 } else { 4 };
                    let before = tcp[at..at + span].to_vec();
                    tcp[i + 2..i + 4].copy_from_slice(&mss.to_be_bytes());
                    if partial {
                        return Ok(());
                    }
                    let check = u16::from_be_bytes([tcp[16], tcp[17]]);
                    let check = checksum::update_bytes(check, &before, &tcp[at..at + span]);
                    tcp[16..18].copy_from_slice(&check.to_be_bytes());
                    return Ok(());
                }
                i += len;
            }
        }
    }
    // No MSS option: add one where the kernel does, right after the fixed
    // header, if there is room and no data would have to move.
    if tcp.len() > doff || doff + MSS_LEN > 60 {
        return Ok(());
    }
    let mss = mss.min(if v6 { 1220 } else { 536 });
    let seg_len = tcp.len();
    let old_word = u16::from_be_bytes([tcp[12], tcp[13]]);
    let new_word = old_word + (1 << 12);
    let check = u16::from_be_bytes([tcp[16], tcp[17]]);
    // Sum changes: the data-offset word, the new option's two words, and the
    // pseudo-header's length (shifted bytes keep their parity, so their sum
    // does not change).
    let len_old = u16::try_from(seg_len).map_err(|_| TcpmssError::SegmentTooLong)?;
    let len_new = len_old + MSS_LEN as u16;
    let acc = u32::from(!check)
        + u32::from(!old_word)
        + u32::from(new_word)
        + u32::from(u16::from(MSS_KIND) << 8 | MSS_LEN as u16)
        + u32::from(mss)
        + u32::from(!len_old)
        + u32::from(len_new);
    let check = if partial {
        // Not complemented: the pseudo-header sum with the new length.
        !checksum::fold(u32::from(check) + u32::from(!len_old) + u32::from(len_new))
    } else {
        checksum::fold(acc)
    };
    tcp[12..14].copy_from_slice(&new_word.to_be_bytes());
    tcp[16..18].copy_from_slice(&check.to_be_bytes());
    let [hi, lo] = mss.to_be_bytes();
    if !pkt.splice(l4 + 20..l4 + 20, &[MSS_KIND, MSS_LEN as u8, hi, lo]) {
        return Err(TcpmssError::TruncatedHeader);
    }
    let bytes = pkt.as_mut_slice();
    if v6 {
        let plen = u16::from_be_bytes([bytes[4], bytes[5]]);
        let plen = plen.checked_add(4).ok_or(TcpmssError::PacketTooLong)?;
        bytes[4..6].copy_from_slice(&plen.to_be_bytes());
    } else {
        let total = u16::from_be_bytes([bytes[2], bytes[3]]);
        let new_total = total.checked_add(4).ok_or(TcpmssError::PacketTooLong)?;
        bytes[2..4].copy_from_slice(&new_total.to_be_bytes());
        let check = u16::from_be_bytes([bytes[10], bytes[11]]);
        let check = checksum::update16(check, total, new_total);
        bytes[10..12].copy_from_slice(&check.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// A SYN with the given options (padded to a multiple of 4) and payload.
    fn syn(v6: bool, opts: &[u8], payload: &[u8]) -> (PacketBuf, usize) {
        let mut o = opts.to_vec();
        while !o.len().is_multiple_of(4) {
            o.push(0);
        }
        let doff = 20 + o.len();
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[12] = ((doff / 4) as u8) << 4;
        tcp[13] = 0x02;
        tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
        tcp.extend_from_slice(&o);
        tcp.extend_from_slice(payload);
        let mut p = if v6 {
            let mut h = vec![0u8; 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&(tcp.len() as u16).to_be_bytes());
            h[6] = 6;
            h[7] = 64;
            h[8..24].copy_from_slice(&"2001:db8:1::2".parse::<Ipv6Addr>().unwrap().octets());
            h[24..40].copy_from_slice(&"2001:db8:2::2".parse::<Ipv6Addr>().unwrap().octets());
            h
        } else {
            let mut h = vec![0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
            h[8] = 64;
            h[9] = 6;
            h[12..16].copy_from_slice(&[192, 0, 2, 2]);
            h[16..20].copy_from_slice(&[198, 51, 100, 2]);
            let c = checksum::data(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            h
        };
        let l4 = p.len();
        p.extend_from_slice(&tcp);
        let c = tcp_check(&p, v6, l4);
        p[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
        (PacketBuf::from_vec(p), l4)
    }

    /// The TCP checksum computed from scratch (field zeroed).
    fn tcp_check(p: &[u8], v6: bool, l4: usize) -> u16 {
        let mut seg = p[l4..].to_vec();
        seg[16] = 0;
        seg[17] = 0;
        let len = seg.len() as u32;
        let ph = if v6 {
            let s: [u8; 16] = p[8..24].try_into().unwrap();
            let d: [u8; 16] = p[24..40].try_into().unwrap();
            checksum::pseudo_header_v6(&Ipv6Addr::from(s), &Ipv6Addr::from(d), 6, len)
        } else {
            let s: [u8; 4] = p[12..16].try_into().unwrap();
            let d: [u8; 4] = p[16..20].try_into().unwrap();
            checksum::pseudo_header_v4(Ipv4Addr::from(s), Ipv4Addr::from(d), 6, len)
        };
        checksum::fold(checksum::combine(ph, checksum::sum(&seg)))
    }

    fn checks_valid(p: &PacketBuf, v6: bool, l4: usize) {
        let b = p.as_slice();
        assert_eq!(
            u16::from_be_bytes([b[l4 + 16], b[l4 + 17]]),
            tcp_check(b, v6, l4),
            "tcp checksum"
        );
        if !v6 {
            assert_eq!(checksum::data(&b[..20]), 0, "ip header checksum");
            assert_eq!(usize::from(u16::from_be_bytes([b[2], b[3]])), b.len());
        } else {
            assert_eq!(usize::from(u16::from_be_bytes([b[4], b[5]])), b.len() - 40);
        }
    }

    fn mss_of(p: &PacketBuf, l4: usize) -> Option<u16> {
        let t = &p.as_slice()[l4..];
        let doff = usize::from(t[12] >> 4) * 4;
        let mut i = 20;
        while i < doff {
            match t[i] {
                0 => return None,
                1 => i += 1,
                2 => return Some(u16::from_be_bytes([t[i + 2], t[i + 3]])),
                _ => i += usize::from(t[i + 1]),
            }
        }
        None
    }

    #[test]
    fn lowers_but_never_raises_aligned_or_not() {
        for v6 in [false, true] {
            // Aligned MSS, then one behind a NOP (odd offset).
            for opts in [&[2u8, 4, 0x05, 0xb4][..], &[1, 2, 4, 0x05, 0xb4, 1, 1, 1]] {
                let (mut p, l4) = syn(v6, opts, &[]);
                apply(&mut p, v6, l4, 1400).unwrap();
                assert_eq!(mss_of(&p, l4), Some(1400));
                checks_valid(&p, v6, l4);
                let before = p.as_slice().to_vec();
                apply(&mut p, v6, l4, 1452).unwrap();
                assert_eq!(p.as_slice(), &before[..], "raised");
            }
        }
    }

    #[test]
    fn adds_the_option_when_missing_capped_at_the_default() {
        for (v6, default) in [(false, 536), (true, 1220)] {
            let (mut p, l4) = syn(v6, &[3, 3, 7], &[]); // window scale only
            let len = p.len();
            apply(&mut p, v6, l4, 1400).unwrap();
            assert_eq!(p.len(), len + 4);
            assert_eq!(mss_of(&p, l4), Some(default));
            checks_valid(&p, v6, l4);
            let (mut p, l4) = syn(v6, &[], &[]);
            apply(&mut p, v6, l4, 500).unwrap();
            assert_eq!(mss_of(&p, l4), Some(500));
            checks_valid(&p, v6, l4);
        }
    }

    #[test]
    fn leaves_syns_with_data_or_a_full_header_alone() {
        let (mut p, l4) = syn(false, &[], b"data");
        let before = p.as_slice().to_vec();
        apply(&mut p, false, l4, 1000).unwrap();
        assert_eq!(p.as_slice(), &before[..]);
        let (mut p, l4) = syn(false, &[1; 40], &[]);
        let before = p.as_slice().to_vec();
        apply(&mut p, false, l4, 1000).unwrap();
        assert_eq!(p.as_slice(), &before[..]);
    }

    #[test]
    fn malformed_headers_are_refused_or_left_alone() {
        let (mut p, l4) = syn(false, &[2, 4, 5, 0xb4], &[]);
        p.as_mut_slice()[l4 + 12] = 0xf0; // data offset past the end
        assert!(apply(&mut p, false, l4, 1000).is_err());
        let (mut p, l4) = syn(false, &[9, 0, 2, 4], &[]); // option of length 0
        let before = p.as_slice().to_vec();
        apply(&mut p, false, l4, 1000).unwrap();
        assert_eq!(p.as_slice(), &before[..]);
        let mut short = PacketBuf::from_vec(vec![0x45; 30]);
        assert!(apply(&mut short, false, 20, 1000).is_err());
    }
}
