//! The PER reader's primitives, on encodings worked out from X.691 by hand.

use super::*;

fn reader(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    (vec![bytes], bytes.len())
}

#[test]
fn constrained_whole_numbers_take_the_width_their_range_needs() {
    // range 2: one bit (1); 5: three bits (011); 255: eight bits, unaligned.
    let b = [0b1011_0000, 0b1111_1110, 0b1000_0000];
    let (p, _) = reader(&b);
    let mut r = PerReader::new(&p);
    assert_eq!(r.constrained(2), Ok(1));
    assert_eq!(r.constrained(5), Ok(3));
    assert_eq!(r.constrained(255), Ok(0b0000_1111));
    assert_eq!(r.remaining(), 24 - 12);
    // 256: an aligned octet; 65536: two aligned octets.
    let b = [0x80, 0x2a, 0x12, 0x34];
    let (p, _) = reader(&b);
    let mut r = PerReader::new(&p);
    assert_eq!(r.bit(), Ok(true));
    assert_eq!(r.constrained(256), Ok(0x2a));
    assert_eq!(r.constrained(65536), Ok(0x1234));
    // 2^32 (BandWidth): a bit, a 2-bit length of 1..4 octets (10: 3), then the octets.
    let b = [0b1100_0000, 0x01, 0x02, 0x03];
    let (p, _) = reader(&b);
    let mut r = PerReader::new(&p);
    assert_eq!(r.bit(), Ok(true));
    assert_eq!(r.constrained(1 << 32), Ok(0x010203));
    // A value past the range is refused (5 values in 3 bits, 7 read).
    let b = [0b1110_0000];
    let (p, _) = reader(&b);
    assert_eq!(
        PerReader::new(&p).constrained(5).unwrap_err().kind,
        PerErrorKind::Invalid("number past its range")
    );
}

#[test]
fn lengths_short_long_constrained_and_fragmented() {
    let b = [0x05, 0x81, 0x00, 0xc1, 0xc5];
    let (p, _) = reader(&b);
    let mut r = PerReader::new(&p);
    assert_eq!(r.length(0, None).map(|l| (l.n, l.more)), Ok((5, false)));
    assert_eq!(r.length(0, None).map(|l| (l.n, l.more)), Ok((256, false)));
    assert_eq!(r.length(0, None).map(|l| (l.n, l.more)), Ok((16384, true)));
    assert_eq!(
        r.length(0, None).unwrap_err().kind,
        PerErrorKind::Invalid("fragment count not 1 to 4")
    );
    // SIZE (1..128): seven bits for n - 1, unaligned; SIZE (4): nothing.
    let b = [0b0000_0111, 0];
    let (p, _) = reader(&b);
    let mut r = PerReader::new(&p);
    assert_eq!(r.length(4, Some(4)).map(|l| l.n), Ok(4));
    assert_eq!(r.length(1, Some(128)).map(|l| l.n), Ok(4));
    assert_eq!(r.remaining(), 16 - 7);
    // An unconstrained form outside a large size constraint is refused.
    let b = [0x05];
    let (p, _) = reader(&b);
    assert!(PerReader::new(&p).length(10, Some(70000)).is_err());
}

#[test]
fn normally_small_numbers_and_extension_additions() {
    // 0 + 000011 = 3; then 1, and (aligned) length 1 and 0x80 = 128.
    let b = [0b0000_0111, 0x01, 0x80];
    let (p, _) = reader(&b);
    let mut r = PerReader::new(&p);
    assert_eq!(r.normally_small(), Ok(3));
    assert_eq!(r.normally_small(), Ok(128));
    // Additions: 3 of them (0 + 000010), present: first and third, each an open type.
    let b = [0b0000_0101, 0b0100_0000, 0x01, 0xaa, 0x02, 0xbb, 0xcc, 0xee];
    let (p, _) = reader(&b);
    let mut r = PerReader::new(&p);
    let mut seen = Vec::new();
    r.additions(|i, sub| {
        seen.push((i, sub.remaining()));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, [(0, 8), (2, 16)]);
    assert_eq!(r.remaining(), 8, "the reader is past both open types");
    // Skipping does the same.
    let mut r = PerReader::new(&p);
    r.skip_additions().unwrap();
    assert_eq!(r.remaining(), 8);
}

#[test]
fn choices_root_and_extension() {
    // Extensible, 7 root alternatives: 0 + 011 = root 3. Then 1 + 000000 + open type.
    let b = [0b0011_1000, 0b0000_0000, 0x01, 0x00];
    let (p, _) = reader(&b);
    let mut r = PerReader::new(&p);
    assert!(matches!(r.choice(true, 7), Ok(Choice::Root(3))));
    assert!(matches!(r.choice(true, 7), Ok(Choice::Ext(0, _))));
    assert_eq!(r.remaining(), 0);
    // Not extensible, 5 alternatives, index 7: refused.
    let b = [0b1110_0000];
    let (p, _) = reader(&b);
    assert!(PerReader::new(&p).choice(false, 5).is_err());
}

#[test]
fn reads_across_segments_as_from_one_buffer() {
    let whole: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
    let read = |parts: &[&[u8]]| {
        let mut r = PerReader::new(parts);
        let mut v = Vec::new();
        for w in [3, 9, 1, 16, 7, 32, 5, 30, 11] {
            v.push(r.bits(w).ok());
        }
        let mut oct = [0u8; 5];
        v.push(r.read_octets(&mut oct).ok().map(|a| a as u32));
        v.extend(oct.iter().map(|&b| Some(u32::from(b))));
        v
    };
    let want = read(&[&whole]);
    for a in 0..whole.len() {
        for b in a..whole.len() {
            let parts: [&[u8]; 3] = [&whole[..a], &whole[a..b], &whole[b..]];
            assert_eq!(read(&parts), want, "cut at {a} and {b}");
        }
    }
}

#[test]
fn truncation_and_depth_are_errors() {
    let b = [0xff];
    let (p, _) = reader(&b);
    let mut r = PerReader::new(&p);
    assert_eq!(r.bits(9).unwrap_err().kind, PerErrorKind::Truncated);
    assert_eq!(
        r.skip(&types::OCTETS_16).unwrap_err().kind,
        PerErrorKind::Truncated
    );
    let mut r = PerReader::new(&p);
    for _ in 0..per::MAX_DEPTH {
        r = r.sub(0, 1);
    }
    assert!(r.check_depth(0).is_ok());
    assert_eq!(
        r.sub(0, 1).check_depth(0).unwrap_err().kind,
        PerErrorKind::TooDeep
    );
}

#[test]
fn skipping_known_types() {
    // AliasAddress h323-ID "ab": 0 + 1 (index), length 2 - 1 in an aligned octet (a range
    // of 256), then two 16-bit characters.
    let b = [0b0100_0000, 0x01, 0x00, 0x61, 0x00, 0x62, 0xff];
    let (p, _) = reader(&b);
    let mut r = PerReader::new(&p);
    r.skip(&types::ALIAS_ADDRESS).unwrap();
    assert_eq!(r.remaining(), 8);
    // dialledDigits "12": 0 + 0, 7-bit length (1), aligned, two 4-bit characters.
    let b = [0b0000_0000, 0b1000_0000, 0x12, 0xff];
    let (p, _) = reader(&b);
    let mut r = PerReader::new(&p);
    r.skip(&types::ALIAS_ADDRESS).unwrap();
    assert_eq!(r.remaining(), 8);
}

#[test]
fn a_huge_addition_count_is_truncation_not_overflow() {
    // Found by the h323_per fuzzer: a normally small number of 8 octets of 0xff as the
    // count of extension additions (n - 1): adding 1 overflowed.
    let mut b = vec![0b1000_0000, 0x08];
    b.extend_from_slice(&[0xff; 8]);
    let (p, _) = reader(&b);
    assert_eq!(
        PerReader::new(&p).skip_additions().unwrap_err().kind,
        PerErrorKind::Truncated
    );
    let (p, _) = reader(&b);
    assert_eq!(
        PerReader::new(&p)
            .additions(|_, _| Ok(()))
            .unwrap_err()
            .kind,
        PerErrorKind::Truncated
    );
}
