//! The Internet checksum (RFC 1071), its incremental update (RFC 1624) and CRC32c for SCTP.
//!
//! Partial sums are `u32` accumulators of 16-bit big-endian words with end-around carry, so
//! they can be built in pieces ([`sum`], the pseudo-headers) and joined with [`combine`] before
//! one final [`fold`]. A checksum *verifies* when folding the sum over the data including the
//! checksum field gives 0.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Ones' complement sum of `data` as big-endian 16-bit words; an odd trailing byte is padded
/// with a zero byte (RFC 1071 §4.1). Not complemented: feed it to [`fold`].
pub fn sum(data: &[u8]) -> u32 {
    // The IPv4 header without options, on every forwarded packet: unrolled.
    if let Ok(h) = <&[u8; 20]>::try_from(data) {
        let w = |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
        let mut s = fold64(w(0) + w(4) + w(8) + w(12) + w(16));
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        return s;
    }
    // A u64 cannot overflow for any slice that fits in memory; 2^32 ≡ 1 (mod 0xffff), so
    // folding the top half back in keeps the ones' complement value.
    // 32-bit words at a time: hi·2^16 + lo ≡ hi + lo (mod 0xffff), so summing
    // them is the same ones' complement value in half the steps.
    let mut acc: u64 = 0;
    let mut quads = data.chunks_exact(4);
    for w in &mut quads {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = quads.remainder();
    let mut words = rest.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    // Folded to 16 bits so callers may add a few partial sums in a u32.
    let mut s = fold64(acc);
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s
}

/// Whether a 20-byte header (IPv4 without options) verifies: its words, checksum included,
/// sum to -0 (0xffff). Unrolled and inlined: it is asked once per forwarded packet.
#[inline]
pub fn verifies20(h: &[u8; 20]) -> bool {
    let w = |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    // 2^32 ≡ 2^16 ≡ 1 (mod 0xffff): each fold keeps the value, and four bring five 32-bit
    // words down to 16 bits. A non-zero sum never folds to 0, so only -0 is 0xffff.
    let s = w(0) + w(4) + w(8) + w(12) + w(16);
    let s = (s & 0xffff_ffff) + (s >> 32);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s == 0xffff
}

fn fold64(mut acc: u64) -> u32 {
    while acc >> 32 != 0 {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Adds two partial sums.
pub fn combine(a: u32, b: u32) -> u32 {
    fold64(u64::from(a) + u64::from(b))
}

/// Folds a partial sum to 16 bits and complements it: the value to store in a checksum field.
pub fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The checksum of `data` alone: `fold(sum(data))`.
pub fn data(data: &[u8]) -> u16 {
    fold(sum(data))
}

/// Partial sum of the IPv4 pseudo-header (RFC 9293 §3.1, RFC 768): addresses, zero, protocol
/// and the transport length.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u32) -> u32 {
    let s = sum(&src.octets()) + sum(&dst.octets());
    combine(s, u32::from(proto) + (len >> 16) + (len & 0xffff))
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1): addresses, 32-bit upper-layer
/// length, three zero bytes and the next header value.
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, proto: u8, len: u32) -> u32 {
    let s = combine(sum(&src.octets()), sum(&dst.octets()));
    combine(s, u32::from(proto) + (len >> 16) + (len & 0xffff))
}

/// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`, the new checksum after the 16-bit word `old`
/// (at an even offset of the summed data) became `new`. Unlike eqn. 2 it never produces the
/// -0 (0xffff) a full recomputation would not.
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    fold(u32::from(!check) + u32::from(!old) + u32::from(new))
}

/// [`update16`] for a 32-bit field (two adjacent words, starting at an even offset).
pub fn update32(check: u16, old: u32, new: u32) -> u16 {
    let acc = u32::from(!check)
        + u32::from(!(old >> 16) as u16)
        + u32::from(!(old as u16))
        + (new >> 16)
        + (new & 0xffff);
    fold(acc)
}

/// [`update16`] for a run of bytes, e.g. an address: `old` were replaced by `new` at the same
/// even offset. Meant for equal, even lengths; unequal lengths are handled as "remove the sum
/// of `old`, add the sum of `new`", which is right only if both start at the same offset.
pub fn update_bytes(check: u16, old: &[u8], new: &[u8]) -> u16 {
    // ~sum(old) is the ones' complement negation of the folded old sum.
    let neg_old = fold(sum(old));
    fold(combine(u32::from(!check) + u32::from(neg_old), sum(new)))
}

const CRC32C_POLY_REFLECTED: u32 = 0x82F6_3B78;

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ CRC32C_POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Updates a partial L4 checksum (the pseudo-header sum, not complemented, that checksum
/// offload leaves in the field) for `old` bytes of the pseudo-header becoming `new`: RFC
/// 1624's update without the complements.
pub fn update_partial(partial: u16, old: &[u8], new: &[u8]) -> u16 {
    !update_bytes(!partial, old, new)
}

/// The checksum of an upper-layer message over IPv6, pseudo-header included (RFC 8200 §8.1).
pub fn upper_layer_v6(src: &Ipv6Addr, dst: &Ipv6Addr, proto: u8, msg: &[u8]) -> u16 {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    fold(combine(pseudo_header_v6(src, dst, proto, len), sum(msg)))
}

/// CRC32c (Castagnoli, reflected polynomial 0x82F63B78, init and final XOR all ones), the SCTP
/// checksum (RFC 9260 §6.8 and appendix A). SCTP stores the result least significant byte first.
pub fn crc32c(data: &[u8]) -> u32 {
    !crc32c_update(!0, data)
}

/// Feeds `data` into a raw (not yet complemented) CRC32c register, so a CRC can be computed
/// over pieces: `!crc32c_update(crc32c_update(!0, a), b) == crc32c(a ++ b)`.
pub(crate) fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // RFC 1071 §3 worked example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2 after folding.
    #[test]
    fn rfc1071_example() {
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&bytes)), !0xddf2);
        assert_eq!(data(&bytes), !0xddf2);
    }

    #[test]
    fn odd_length_is_padded() {
        assert_eq!(sum(&[0x12]), 0x1200);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(data(&[]), 0xffff);
    }

    #[test]
    fn ipv4_header_known_answer() {
        // A textbook header with checksum 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(data(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(data(&h), 0);
    }

    #[test]
    fn twenty_byte_extremes() {
        assert!(!verifies20(&[0; 20]));
        assert!(verifies20(&[0xff; 20]));
        let mut h = [0xff; 20];
        h[3] = 0xfe;
        assert!(!verifies20(&h));
    }

    #[test]
    fn pseudo_header_v4_layout() {
        let src = Ipv4Addr::new(192, 0, 2, 1);
        let dst = Ipv4Addr::new(198, 51, 100, 2);
        let mut ph = Vec::new();
        ph.extend_from_slice(&src.octets());
        ph.extend_from_slice(&dst.octets());
        ph.extend_from_slice(&[0, 6, 0x01, 0x02]);
        assert_eq!(fold(pseudo_header_v4(src, dst, 6, 0x0102)), data(&ph));
    }

    #[test]
    fn pseudo_header_v6_layout() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8:ffff::2".parse().unwrap();
        let mut ph = Vec::new();
        ph.extend_from_slice(&src.octets());
        ph.extend_from_slice(&dst.octets());
        ph.extend_from_slice(&0x0001_0203u32.to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(
            fold(pseudo_header_v6(&src, &dst, 17, 0x0001_0203)),
            data(&ph)
        );
    }

    #[test]
    fn combine_equals_concatenation() {
        let a = [0xffu8; 10];
        let b = [0x12, 0x34, 0xab, 0xcd];
        let mut ab = a.to_vec();
        ab.extend_from_slice(&b);
        assert_eq!(fold(combine(sum(&a), sum(&b))), data(&ab));
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 §4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000.
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn crc32c_known_answers() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        // RFC 3720 appendix B.4 test vectors (the same CRC as SCTP).
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&inc), 0x46DD_794E);
        let dec: Vec<u8> = (0u8..32).rev().collect();
        assert_eq!(crc32c(&dec), 0x113F_DB5C);
    }

    fn ipv4_like_header() -> impl Strategy<Value = Vec<u8>> {
        // Version nibble fixed so the data is never all zero: ±0 ambiguity aside, eqn. 3 then
        // matches full recomputation exactly.
        proptest::collection::vec(any::<u8>(), 20..=60).prop_map(|mut v| {
            let even = v.len() & !1;
            v.truncate(even);
            v[0] = 0x45;
            v[10] = 0;
            v[11] = 0;
            let c = data(&v);
            v[10..12].copy_from_slice(&c.to_be_bytes());
            v
        })
    }

    proptest! {
        #[test]
        fn incremental_word_update(mut v in ipv4_like_header(), idx in 0usize..30, new in any::<u16>()) {
            let w = (idx % (v.len() / 2)) * 2;
            prop_assume!(w != 10);
            let old = u16::from_be_bytes([v[w], v[w + 1]]);
            let check = u16::from_be_bytes([v[10], v[11]]);
            v[w..w + 2].copy_from_slice(&new.to_be_bytes());
            let inc = update16(check, old, new);
            v[10] = 0;
            v[11] = 0;
            prop_assert_eq!(inc, data(&v));
        }

        #[test]
        fn incremental_address_update(mut v in ipv4_like_header(), new in any::<[u8; 4]>(), dst in any::<bool>()) {
            let at = if dst { 16 } else { 12 };
            let old: [u8; 4] = v[at..at + 4].try_into().unwrap();
            let check = u16::from_be_bytes([v[10], v[11]]);
            v[at..at + 4].copy_from_slice(&new);
            let by_bytes = update_bytes(check, &old, &new);
            let by_u32 = update32(check, u32::from_be_bytes(old), u32::from_be_bytes(new));
            v[10] = 0;
            v[11] = 0;
            prop_assert_eq!(by_bytes, data(&v));
            prop_assert_eq!(by_u32, data(&v));
        }

        #[test]
        fn incremental_pseudo_header_v6_address(payload in proptest::collection::vec(any::<u8>(), 0..64),
                                                src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
                                                new in any::<[u8; 16]>()) {
            // TCP/UDP checksums cover addresses through the pseudo-header: NAT on v6 rewrites
            // them with update_bytes.
            let (src, dst, new) = (Ipv6Addr::from(src), Ipv6Addr::from(dst), Ipv6Addr::from(new));
            let len = payload.len() as u32;
            let full = |s: &Ipv6Addr| fold(combine(pseudo_header_v6(s, &dst, 6, len), sum(&payload)));
            let check = full(&src);
            prop_assert_eq!(update_bytes(check, &src.octets(), &new.octets()), full(&new));
        }

        #[test]
        fn sum_is_split_invariant(v in proptest::collection::vec(any::<u8>(), 0..100), at in 0usize..50) {
            let at = (at * 2).min(v.len() & !1);
            prop_assert_eq!(fold(combine(sum(&v[..at]), sum(&v[at..]))), data(&v));
        }

        /// The unrolled 20-byte forms agree with the general ones, before and after the
        /// checksum field is filled.
        #[test]
        fn twenty_byte_header_forms_agree(mut h in proptest::array::uniform20(any::<u8>())) {
            let mut acc: u64 = 0;
            for w in h.chunks(2) {
                acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
            }
            let mut r = acc;
            while r >> 16 != 0 {
                r = (r & 0xffff) + (r >> 16);
            }
            prop_assert_eq!(sum(&h), r as u32);
            prop_assert_eq!(verifies20(&h), data(&h) == 0);
            h[10] = 0;
            h[11] = 0;
            let ck = data(&h);
            h[10..12].copy_from_slice(&ck.to_be_bytes());
            prop_assert!(verifies20(&h));
        }

        /// The 32-bit-word summation equals RFC 1071's plain 16-bit one.
        #[test]
        fn sum_matches_word_by_word_reference(v in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut acc: u64 = 0;
            for w in v.chunks(2) {
                acc += u64::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
            }
            let mut r = acc;
            while r >> 16 != 0 {
                r = (r & 0xffff) + (r >> 16);
            }
            prop_assert_eq!(data(&v), !(r as u16));
        }
    }
}
