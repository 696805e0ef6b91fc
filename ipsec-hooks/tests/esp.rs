//! ESP end to end between two `Ipsec`s: round trips in every mode and family, the wire
//! format, anti-replay with and without ESN, every inbound drop reason (counted, never a
//! panic), lifetimes, sequence exhaustion, and the policy lookups and checks.

use ipsec_hooks::aead::GcmKey;
use ipsec_hooks::text::{parse_policy, parse_state};
use ipsec_hooks::{
    Bundle, Decapsulated, Direction, Event, Flow, InDrop, Ipsec, Limit, OutDrop, Protected, SaId,
    SecPath, XfrmStat,
};
use proptest::prelude::*;
use std::time::Duration;
use wire::{Instant, PacketBuf};

const KEY: &str = "0x4c80cdefbb5d10da906ac73c3613a634c0ffee01";
const T0: Instant = Instant::from_secs(100);

fn sa(src: &str, dst: &str, spi: u32, extra: &str) -> String {
    format!(
        "src {src} dst {dst} proto esp spi {spi:#x} reqid 1 {extra} aead 'rfc4106(gcm(aes))' {KEY} 128"
    )
}

/// Gateway pair sharing `sa_line`; `a` has `policy` (dir out).
fn pair(sa_line: &str, policy: Option<&str>) -> (Ipsec, Ipsec, SaId) {
    let mut a = Ipsec::new();
    let mut b = Ipsec::new();
    let id = a.add_sa(parse_state(sa_line).unwrap(), T0).unwrap();
    b.add_sa(parse_state(sa_line).unwrap(), T0).unwrap();
    if let Some(p) = policy {
        a.add_policy(parse_policy(p).unwrap()).unwrap();
    }
    (a, b, id)
}

fn seal(a: &mut Ipsec, id: SaId, pkt: &[u8]) -> Vec<u8> {
    let mut buf = PacketBuf::from_slice(pkt);
    a.encapsulate(T0, &Bundle::of(&[id]).unwrap(), &mut buf)
        .unwrap();
    buf.into_vec()
}

fn open(b: &mut Ipsec, esp: &[u8]) -> Result<(Decapsulated, Vec<u8>, SecPath), InDrop> {
    let mut buf = PacketBuf::from_slice(esp);
    let mut sp = SecPath::new();
    let d = b.decapsulate(T0, &mut buf, &mut sp)?;
    Ok((d, buf.into_vec(), sp))
}

fn stat(x: &Ipsec, s: XfrmStat) -> u64 {
    x.stats().get(s)
}

fn v6_with_hop_by_hop() -> Vec<u8> {
    let udp = testkit::udp("2001:db8:1::1", 1000, "2001:db8:2::2", 53, b"hop by hop");
    let mut p = udp[..40].to_vec();
    p[6] = 0; // Hop-by-Hop first
    let pl = u16::from_be_bytes([p[4], p[5]]) + 8;
    p[4..6].copy_from_slice(&pl.to_be_bytes());
    p.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // next UDP, PadN
    p.extend_from_slice(&udp[40..]);
    p
}

#[test]
fn round_trips_in_every_mode_and_family() {
    let v4 = testkit::udp("192.0.2.10", 4000, "198.51.100.20", 53, b"dns query");
    let v6 = testkit::tcp("2001:db8:1::1", 4000, "2001:db8:2::2", 80, 1, 0, 0x02, b"");
    let cases: Vec<(&str, &str, &str, Vec<u8>)> = vec![
        ("203.0.113.1", "203.0.113.2", "mode tunnel", v4.clone()),
        (
            "203.0.113.1",
            "203.0.113.2",
            "mode tunnel flag af-unspec",
            v6.clone(),
        ),
        ("2001:db8::1", "2001:db8::2", "mode tunnel", v6.clone()),
        (
            "2001:db8::1",
            "2001:db8::2",
            "mode tunnel sel src 0.0.0.0/0 dst 0.0.0.0/0",
            v4.clone(),
        ),
        ("192.0.2.10", "198.51.100.20", "mode transport", v4.clone()),
        (
            "2001:db8:1::1",
            "2001:db8:2::2",
            "mode transport",
            v6.clone(),
        ),
        (
            "2001:db8:1::1",
            "2001:db8:2::2",
            "mode transport",
            v6_with_hop_by_hop(),
        ),
    ];
    for (src, dst, extra, pkt) in cases {
        let line = sa(src, dst, 0x1234, &format!("{extra} replay-window 32"));
        let (mut a, mut b, id) = pair(&line, None);
        for seq in 1..=3u32 {
            let esp = seal(&mut a, id, &pkt);
            let tunnel = extra.contains("tunnel");
            let outer = if src.contains(':') { 40 } else { 20 };
            // Where ESP starts: after the outer header, or the packet's own headers.
            let at = if tunnel {
                outer
            } else if pkt[6] == 0 && pkt[0] >> 4 == 6 {
                48
            } else {
                outer
            };
            let payload = if tunnel { pkt.len() } else { pkt.len() - at };
            let pad = (4 - (payload + 2) % 4) % 4;
            assert_eq!(esp.len(), at + 8 + 8 + payload + pad + 2 + 16, "{extra}");
            assert_eq!(&esp[at..at + 4], &0x1234u32.to_be_bytes());
            assert_eq!(&esp[at + 4..at + 8], &seq.to_be_bytes(), "sequence number");
            assert_eq!(
                &esp[at + 8..at + 16],
                &u64::from(seq).to_be_bytes(),
                "IV = sequence"
            );
            let (d, back, sp) = open(&mut b, &esp).unwrap();
            assert!(
                matches!(d, Decapsulated::Packet(i) if i.spi == 0x1234),
                "{extra}"
            );
            assert_eq!(back, pkt, "{extra}: {src} -> {dst}");
            assert_eq!(sp.len(), 1);
        }
        let c = b
            .sa(b.find_sa(dst.parse().unwrap(), 0x1234).unwrap())
            .unwrap()
            .counters();
        assert_eq!(c.packets, 3);
        assert_eq!(a.sa(id).unwrap().oseq(), 3);
        assert_eq!(b.stats().total(), 0);
    }
}

#[test]
fn outer_header_follows_the_inner_one() {
    let mut pkt = testkit::udp("192.0.2.10", 4000, "198.51.100.20", 53, b"x");
    pkt[1] = 0xb8 | 3; // DSCP EF, ECN CE
    pkt[6] |= 0x40; // DF
    {
        let mut ip = wire::Ipv4Packet::new_unchecked(&mut pkt[..]);
        ip.fill_checksum();
    }
    let (mut a, mut b, id) = pair(&sa("203.0.113.1", "203.0.113.2", 7, "mode tunnel"), None);
    let mut esp = seal(&mut a, id, &pkt);
    let outer = wire::Ipv4Packet::new_checked(&esp[..]).unwrap();
    assert!(outer.verify_checksum());
    assert_eq!(outer.protocol(), 50);
    assert_eq!(outer.ttl(), 64);
    assert!(outer.dont_frag(), "DF copied from the inner header");
    // RFC 6040: DSCP copied, CE becomes ECT(0) outside.
    assert_eq!(outer.dscp_ecn(), 0xb8 | 2);
    // A CE mark gained on the way in reaches the (ECN-capable) inner packet.
    esp[1] |= 3;
    let mut ip = wire::Ipv4Packet::new_unchecked(&mut esp[..]);
    ip.fill_checksum();
    let (_, back, _) = open(&mut b, &esp).unwrap();
    assert_eq!(back[1] & 3, 3);
    assert!(wire::Ipv4Packet::new_checked(&back[..])
        .unwrap()
        .verify_checksum());
}

#[test]
fn replayed_and_old_packets_are_counted_drops() {
    let (mut a, mut b, id) = pair(
        &sa(
            "203.0.113.1",
            "203.0.113.2",
            9,
            "mode tunnel replay-window 32",
        ),
        None,
    );
    let pkt = testkit::udp("192.0.2.10", 1, "198.51.100.20", 2, b"r");
    let sent: Vec<Vec<u8>> = (0..40).map(|_| seal(&mut a, id, &pkt)).collect();
    // Out of order inside the window is fine.
    for i in [1, 0, 5, 3, 2, 4] {
        open(&mut b, &sent[i]).unwrap();
    }
    assert_eq!(open(&mut b, &sent[3]).unwrap_err(), InDrop::Replayed);
    open(&mut b, &sent[39]).unwrap(); // the window slides to 40
    assert_eq!(
        open(&mut b, &sent[7]).unwrap_err(),
        InDrop::TooOld,
        "seq 8 = 40 - 32"
    );
    open(&mut b, &sent[8]).unwrap(); // seq 9 is the window's last
    assert_eq!(open(&mut b, &sent[39]).unwrap_err(), InDrop::Replayed);
    let c = b
        .sa(b.find_sa("203.0.113.2".parse().unwrap(), 9).unwrap())
        .unwrap()
        .counters();
    assert_eq!((c.replay, c.replay_window, c.packets), (2, 1, 8));
    assert_eq!(stat(&b, XfrmStat::InStateSeqError), 3);
    assert_eq!(b.stats().total(), 3);
}

#[test]
fn window_of_4096() {
    let (mut a, mut b, id) = pair(
        &sa(
            "203.0.113.1",
            "203.0.113.2",
            9,
            "mode tunnel replay-window 4096",
        ),
        None,
    );
    let pkt = testkit::udp("192.0.2.10", 1, "198.51.100.20", 2, b"");
    let sent: Vec<Vec<u8>> = (0..5000).map(|_| seal(&mut a, id, &pkt)).collect();
    open(&mut b, &sent[4999]).unwrap();
    // 5000 - 904 = 4096: too old; 905 is the window's last.
    assert_eq!(open(&mut b, &sent[903]).unwrap_err(), InDrop::TooOld);
    open(&mut b, &sent[904]).unwrap();
    for s in &sent[905..4999] {
        open(&mut b, s).unwrap();
    }
    assert_eq!(open(&mut b, &sent[2000]).unwrap_err(), InDrop::Replayed);
}

#[test]
fn esn_high_bits_are_inferred_across_2_32() {
    // The sender starts just below 2^32, the receiver's window top too.
    let base = "mode tunnel replay-window 64 flag esn";
    let tx = sa(
        "203.0.113.1",
        "203.0.113.2",
        5,
        &format!("{base} replay-oseq 0xfffffff0"),
    );
    let rx = sa(
        "203.0.113.1",
        "203.0.113.2",
        5,
        &format!("{base} replay-seq 0xffffffe0"),
    );
    let mut a = Ipsec::new();
    let mut b = Ipsec::new();
    let id = a.add_sa(parse_state(&tx).unwrap(), T0).unwrap();
    b.add_sa(parse_state(&rx).unwrap(), T0).unwrap();
    let pkt = testkit::udp("192.0.2.10", 1, "198.51.100.20", 2, b"esn");
    let sent: Vec<Vec<u8>> = (0..40).map(|_| seal(&mut a, id, &pkt)).collect();
    assert_eq!(a.sa(id).unwrap().oseq(), 0x1_0000_0018);
    // Only the low half is on the wire: the 16th packet carries 0.
    assert_eq!(&sent[15][24..28], &[0, 0, 0, 0]);
    // Crossing in order, then one from before the wrap, late.
    for s in &sent[..10] {
        open(&mut b, s).unwrap();
    }
    for s in &sent[20..] {
        open(&mut b, s).unwrap();
    }
    let (_, back, _) = open(&mut b, &sent[12]).unwrap();
    assert_eq!(
        back, pkt,
        "late packet of subspace 0 decrypts: its high half was inferred as 0"
    );
    let sa_b = b
        .sa(b.find_sa("203.0.113.2".parse().unwrap(), 5).unwrap())
        .unwrap();
    assert_eq!(sa_b.seq(), 0x1_0000_0018);
    // A wrong inference would fail the ICV: none did.
    assert_eq!(b.stats().total(), 0);
    assert_eq!(open(&mut b, &sent[25]).unwrap_err(), InDrop::Replayed);
}

#[test]
fn bad_icv_unknown_spi_and_truncation_are_counted() {
    let (mut a, mut b, id) = pair(
        &sa(
            "203.0.113.1",
            "203.0.113.2",
            0x77,
            "mode tunnel replay-window 32",
        ),
        None,
    );
    let pkt = testkit::udp("192.0.2.10", 1, "198.51.100.20", 2, b"payload");
    let esp = seal(&mut a, id, &pkt);
    let mut forged = esp.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(open(&mut b, &forged).unwrap_err(), InDrop::Integrity);
    let c = *b
        .sa(b.find_sa("203.0.113.2".parse().unwrap(), 0x77).unwrap())
        .unwrap()
        .counters();
    assert_eq!((c.integrity_failed, c.packets), (1, 0));
    assert_eq!(stat(&b, XfrmStat::InStateProtoError), 1);
    // The forgery did not move the window: the real packet still passes.
    open(&mut b, &esp).unwrap();

    let mut unknown = seal(&mut a, id, &pkt);
    unknown[20..24].copy_from_slice(&0x78u32.to_be_bytes());
    assert_eq!(open(&mut b, &unknown).unwrap_err(), InDrop::NoState);
    assert_eq!(stat(&b, XfrmStat::InNoStates), 1);

    // Every prefix of an ESP packet, with the IP length fixed to it, is a counted drop.
    let fresh = seal(&mut a, id, &pkt);
    for cut in 20..fresh.len() {
        let mut p = fresh[..cut].to_vec();
        p[2..4].copy_from_slice(&(cut as u16).to_be_bytes());
        let before = b.stats().total();
        let e = open(&mut b, &p).unwrap_err();
        let want = if cut < 28 {
            InDrop::TruncatedHeader
        } else if cut < 20 + 8 + 8 + 2 + 16 {
            InDrop::Truncated
        } else {
            InDrop::Integrity
        };
        assert_eq!(e, want, "cut at {cut}");
        assert_eq!(b.stats().total(), before + 1);
    }
    assert!(stat(&b, XfrmStat::InHdrError) >= 8);
    // Not ESP, or a fragment of it.
    let plain = testkit::udp("192.0.2.10", 1, "203.0.113.2", 2, b"x");
    assert_eq!(open(&mut b, &plain).unwrap_err(), InDrop::NotEsp);
    let frags = testkit::frag4(&fresh, &[(0, 32), (32, 200)], 9);
    assert_eq!(open(&mut b, &frags[0]).unwrap_err(), InDrop::Fragment);
}

/// An ESP packet sealed by hand with `plaintext` as the whole encrypted part (payload and
/// trailer chosen by the test).
fn handmade(seq: u32, plaintext: &[u8]) -> Vec<u8> {
    let key = GcmKey::new(&ipsec_hooks::text::parse_key(KEY).unwrap()).unwrap();
    let mut body = plaintext.to_vec();
    let mut aad = 0x66u32.to_be_bytes().to_vec();
    aad.extend_from_slice(&seq.to_be_bytes());
    let iv = u64::from(seq).to_be_bytes();
    let icv = key.seal(&iv, &aad, &mut body).unwrap();
    let mut esp = aad.clone();
    esp.extend_from_slice(&iv);
    esp.extend_from_slice(&body);
    esp.extend_from_slice(&icv);
    testkit::ip("203.0.113.1", "203.0.113.2", 50, 64, esp, None)
}

#[test]
fn padding_next_header_and_dummy_packets() {
    let (_, mut b, _) = pair(
        &sa(
            "203.0.113.1",
            "203.0.113.2",
            0x66,
            "mode tunnel replay-window 32",
        ),
        None,
    );
    let inner = testkit::udp("192.0.2.10", 1, "198.51.100.20", 2, b"ab");
    // inner (30 bytes) + pad 0 + 2 = 32: aligned; with padding 1,2 and length 2 also valid.
    let mut good = inner.clone();
    good.extend_from_slice(&[1, 2, 3, 4, 4, 4]);
    let (_, back, _) = open(&mut b, &handmade(1, &good)).unwrap();
    assert_eq!(back, inner);
    // Padding bytes must count 1, 2, 3, ...
    let mut bad = inner.clone();
    bad.extend_from_slice(&[1, 2, 4, 3, 4, 4]);
    assert_eq!(
        open(&mut b, &handmade(2, &bad)).unwrap_err(),
        InDrop::BadPadding
    );
    // A pad length reaching before the payload.
    let mut long = vec![1, 2];
    long.extend_from_slice(&[200, 4]);
    assert_eq!(
        open(&mut b, &handmade(3, &long)).unwrap_err(),
        InDrop::BadPadLength
    );
    // Tunnel mode with next header TCP: the inner packet is not IP.
    let mut tcp = inner.clone();
    tcp.extend_from_slice(&[0, 6]);
    assert_eq!(
        open(&mut b, &handmade(4, &tcp)).unwrap_err(),
        InDrop::BadInner
    );
    // An inner packet whose length says more than there is.
    let mut short = inner[..24].to_vec();
    short.extend_from_slice(&[1, 2, 2, 4]);
    assert_eq!(
        open(&mut b, &handmade(5, &short)).unwrap_err(),
        InDrop::BadInner
    );
    assert_eq!(stat(&b, XfrmStat::InStateProtoError), 2);
    assert_eq!(stat(&b, XfrmStat::InStateModeError), 2);
    // A dummy packet (next header 59): valid, not an error, counted on the SA.
    let total = b.stats().total();
    let dummy = handmade(6, &[0xde, 0xad, 0, 59]);
    assert!(matches!(
        open(&mut b, &dummy).unwrap().0,
        Decapsulated::Dummy(_)
    ));
    assert_eq!(b.stats().total(), total);
    let c = b
        .sa(b.find_sa("203.0.113.2".parse().unwrap(), 0x66).unwrap())
        .unwrap()
        .counters();
    // Counted like Linux's `curlft`: the good one, the two with a bad inner packet (checked
    // after the count, as Linux's mode input) and the dummy; not the bad trailers.
    assert_eq!((c.dummy, c.packets), (1, 4));
    // ... and it took its sequence number.
    assert_eq!(open(&mut b, &dummy).unwrap_err(), InDrop::Replayed);
    // TFC padding after the inner packet (RFC 4303 §2.7) is cut off.
    let mut tfc = inner.clone();
    tfc.extend_from_slice(&[0; 10]);
    tfc.extend_from_slice(&[0, 4]);
    assert_eq!(open(&mut b, &handmade(7, &tfc)).unwrap().1, inner);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_bytes_never_panic_and_every_drop_is_counted(
        raw in proptest::collection::vec(any::<u8>(), 0..200),
        flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..4),
        cut in any::<u16>(),
    ) {
        let (mut a, mut b, id) = pair(&sa("203.0.113.1", "203.0.113.2", 0x99, "mode tunnel replay-window 64"), None);
        let mut drops = 0;
        // Raw bytes, also behind a valid-looking ESP header.
        for p in [raw.clone(), handmade(1, &raw)] {
            if open(&mut b, &p).is_err() { drops += 1; }
        }
        let mut p = raw.clone();
        if p.len() >= 20 { p[0] = 0x45; p[9] = 50; }
        if open(&mut b, &p).is_err() { drops += 1; }
        // A valid packet, mutated.
        let pkt = testkit::udp("192.0.2.10", 1, "198.51.100.20", 2, &raw);
        let mut esp = seal(&mut a, id, &pkt);
        for (at, x) in &flips {
            let i = usize::from(*at) % esp.len();
            esp[i] ^= x;
        }
        esp.truncate(usize::from(cut).max(1));
        match open(&mut b, &esp) {
            Ok(_) => {}
            Err(_) => drops += 1,
        }
        prop_assert_eq!(b.stats().total(), drops);
    }
}

#[test]
fn byte_and_packet_limits() {
    let line = sa(
        "203.0.113.1",
        "203.0.113.2",
        3,
        "mode tunnel limit packet-soft 2 limit packet-hard 3",
    );
    let (mut a, mut b, id) = pair(&line, None);
    let pkt = testkit::udp("192.0.2.10", 1, "198.51.100.20", 2, b"x");
    let bundle = Bundle::of(&[id]).unwrap();
    let mut sent = Vec::new();
    for _ in 0..3 {
        let mut buf = PacketBuf::from_slice(&pkt);
        a.encapsulate(T0, &bundle, &mut buf).unwrap();
        sent.push(buf.into_vec());
    }
    // Linux's rule: a limit is reached when the count before the packet is at it.
    assert!(matches!(
        a.poll_event(),
        Some(Event::SoftExpire {
            limit: Limit::Packets,
            ..
        })
    ));
    assert_eq!(a.poll_event(), None);
    let mut buf = PacketBuf::from_slice(&pkt);
    assert_eq!(a.encapsulate(T0, &bundle, &mut buf), Err(OutDrop::Expired));
    assert!(matches!(
        a.poll_event(),
        Some(Event::HardExpire {
            limit: Limit::Packets,
            ..
        })
    ));
    assert!(a.sa(id).is_none(), "a hard-expired SA is deleted");
    assert_eq!(a.encapsulate(T0, &bundle, &mut buf), Err(OutDrop::NoState));
    assert_eq!(stat(&a, XfrmStat::OutStateExpired), 1);
    // The receiver's copy counts too.
    for s in &sent {
        open(&mut b, s).unwrap();
    }
    let mut one_more = sent[2].clone();
    one_more[27] = 9; // another sequence number: the window lets it in, the limit does not
    assert_eq!(open(&mut b, &one_more).unwrap_err(), InDrop::Expired);
    assert_eq!(stat(&b, XfrmStat::InStateExpired), 1);

    let bytes = sa(
        "203.0.113.1",
        "203.0.113.2",
        4,
        "mode tunnel limit byte-hard 100",
    );
    let (mut a, _, id) = pair(&bytes, None);
    let bundle = Bundle::of(&[id]).unwrap();
    // 20 + 16 + 29 = 65 bytes counted per packet: the third is refused.
    for want in [Ok(()), Ok(()), Err(OutDrop::Expired)] {
        let mut buf = PacketBuf::from_slice(&pkt);
        assert_eq!(a.encapsulate(T0, &bundle, &mut buf).map(|_| ()), want);
    }
}

#[test]
fn timed_limits_fire_from_handle_timeout() {
    let line = sa("203.0.113.1", "203.0.113.2", 3, "mode tunnel limit time-soft 10 limit time-hard 20 limit time-use-soft 3 limit time-use-hard 5");
    let mut x = Ipsec::new();
    let id = x.add_sa(parse_state(&line).unwrap(), T0).unwrap();
    assert_eq!(x.poll_timeout(), Some(T0 + Duration::from_secs(10)));
    x.handle_timeout(T0 + Duration::from_secs(9));
    assert_eq!(x.poll_event(), None);
    // First use at +8 arms the use-time limits: soft at +11, hard at +13.
    let pkt = testkit::udp("192.0.2.10", 1, "198.51.100.20", 2, b"x");
    let mut buf = PacketBuf::from_slice(&pkt);
    let t8 = T0 + Duration::from_secs(8);
    x.encapsulate(t8, &Bundle::of(&[id]).unwrap(), &mut buf)
        .unwrap();
    assert_eq!(x.sa(id).unwrap().used(), Some(t8));
    assert_eq!(x.poll_timeout(), Some(T0 + Duration::from_secs(10)));
    x.handle_timeout(T0 + Duration::from_secs(10));
    assert!(matches!(
        x.poll_event(),
        Some(Event::SoftExpire {
            limit: Limit::AddTime,
            ..
        })
    ));
    assert!(x.sa(id).unwrap().is_dying());
    assert_eq!(x.poll_timeout(), Some(T0 + Duration::from_secs(11)));
    // Already dying: the use-time soft limit raises no second warning.
    x.handle_timeout(T0 + Duration::from_secs(11));
    assert_eq!(x.poll_event(), None);
    assert_eq!(x.poll_timeout(), Some(T0 + Duration::from_secs(13)));
    x.handle_timeout(T0 + Duration::from_secs(13));
    assert!(matches!(
        x.poll_event(),
        Some(Event::HardExpire {
            limit: Limit::UseTime,
            ..
        })
    ));
    assert!(x.sa(id).is_none());
    assert_eq!(x.poll_timeout(), None);
}

#[test]
fn sequence_numbers_run_out_without_esn_only() {
    let line = sa(
        "203.0.113.1",
        "203.0.113.2",
        3,
        "mode tunnel replay-oseq 0xfffffffe",
    );
    let (mut a, _, id) = pair(&line, None);
    let pkt = testkit::udp("192.0.2.10", 1, "198.51.100.20", 2, b"x");
    let bundle = Bundle::of(&[id]).unwrap();
    let mut buf = PacketBuf::from_slice(&pkt);
    a.encapsulate(T0, &bundle, &mut buf).unwrap();
    assert_eq!(&buf.as_slice()[24..28], &[0xff; 4]);
    assert!(matches!(a.poll_event(), Some(Event::SeqExhausted { sa }) if sa.spi == 3));
    assert!(a.sa(id).unwrap().is_exhausted());
    for _ in 0..2 {
        let mut buf = PacketBuf::from_slice(&pkt);
        assert_eq!(
            a.encapsulate(T0, &bundle, &mut buf),
            Err(OutDrop::SeqExhausted)
        );
    }
    assert_eq!(a.poll_event(), None, "one event");
    assert_eq!(stat(&a, XfrmStat::OutStateSeqError), 2);
    // With ESN the same number is just the end of the first subspace.
    let esn = sa(
        "203.0.113.1",
        "203.0.113.2",
        4,
        "mode tunnel replay-window 32 flag esn replay-oseq 0xfffffffe",
    );
    let (mut a, _, id) = pair(&esn, None);
    for _ in 0..3 {
        let mut buf = PacketBuf::from_slice(&pkt);
        a.encapsulate(T0, &Bundle::of(&[id]).unwrap(), &mut buf)
            .unwrap();
    }
    assert_eq!(a.sa(id).unwrap().oseq(), 1 << 32 | 1);
}

#[test]
fn output_policies() {
    let line = sa("203.0.113.1", "203.0.113.2", 0x10, "mode tunnel");
    let protect = "src 192.0.2.0/24 dst 198.51.100.0/24 dir out priority 10 tmpl src 203.0.113.1 dst 203.0.113.2 proto esp reqid 1 mode tunnel";
    let (mut a, _, id) = pair(&line, Some(protect));
    a.add_policy(
        parse_policy("src 192.0.2.66/32 dst 0.0.0.0/0 dir out priority 5 action block").unwrap(),
    )
    .unwrap();
    a.add_policy(parse_policy("src 192.0.2.0/24 dst 203.0.113.0/24 dir out tmpl src 203.0.113.1 dst 203.0.113.9 proto esp reqid 1 mode tunnel").unwrap()).unwrap();
    let now = T0;
    let mut buf = PacketBuf::from_slice(&testkit::udp("192.0.2.10", 1, "198.51.100.20", 2, b"x"));
    let out = a.output(now, &mut buf).unwrap();
    assert!(
        matches!(out, Protected::Encapsulated { bundle, dst } if bundle.ids() == [id] && dst.to_string() == "203.0.113.2")
    );
    // No policy: clear and untouched.
    let clear = testkit::udp("192.0.2.10", 1, "192.0.2.20", 2, b"x");
    let mut buf = PacketBuf::from_slice(&clear);
    assert_eq!(a.output(now, &mut buf), Ok(Protected::Clear));
    assert_eq!(buf.as_slice(), &clear[..]);
    // Blocked by the lower priority value.
    let mut buf = PacketBuf::from_slice(&testkit::udp("192.0.2.66", 1, "198.51.100.20", 2, b"x"));
    assert_eq!(a.output(now, &mut buf), Err(OutDrop::PolicyBlock));
    assert_eq!(stat(&a, XfrmStat::OutPolBlock), 1);
    // A template without an SA: a counted drop and one Acquire per 30 seconds.
    let f = Flow::of_packet(&testkit::udp("192.0.2.10", 1, "203.0.113.50", 2, b"x")).unwrap();
    assert_eq!(a.lookup_out(now, &f), Err(OutDrop::NoState));
    assert!(
        matches!(a.poll_event(), Some(Event::Acquire { template, .. }) if template.dst == Some("203.0.113.9".parse().unwrap()))
    );
    assert_eq!(
        a.lookup_out(now + Duration::from_secs(29), &f),
        Err(OutDrop::NoState)
    );
    assert_eq!(a.poll_event(), None);
    assert_eq!(
        a.lookup_out(now + Duration::from_secs(30), &f),
        Err(OutDrop::NoState)
    );
    assert!(a.poll_event().is_some());
    assert_eq!(stat(&a, XfrmStat::OutNoStates), 3);
}

#[test]
fn output_prefers_the_newest_live_sa() {
    let protect = "src 0.0.0.0/0 dst 0.0.0.0/0 dir out tmpl src 203.0.113.1 dst 203.0.113.2 proto esp reqid 1 mode tunnel";
    let mut a = Ipsec::new();
    a.add_policy(parse_policy(protect).unwrap()).unwrap();
    let old = a
        .add_sa(
            parse_state(&sa("203.0.113.1", "203.0.113.2", 1, "mode tunnel")).unwrap(),
            T0,
        )
        .unwrap();
    let new = a
        .add_sa(
            parse_state(&sa(
                "203.0.113.1",
                "203.0.113.2",
                2,
                "mode tunnel limit packet-soft 1",
            ))
            .unwrap(),
            T0 + Duration::from_secs(1),
        )
        .unwrap();
    // Another reqid never matches.
    a.add_sa(
        parse_state(
            &sa("203.0.113.1", "203.0.113.2", 3, "mode tunnel").replace("reqid 1", "reqid 2"),
        )
        .unwrap(),
        T0 + Duration::from_secs(2),
    )
    .unwrap();
    let f = Flow::of_packet(&testkit::udp("192.0.2.10", 1, "198.51.100.20", 2, b"x")).unwrap();
    let b = a.lookup_out(T0, &f).unwrap().unwrap();
    assert_eq!(b.ids(), [new]);
    let mut buf = PacketBuf::from_slice(&testkit::udp("192.0.2.10", 1, "198.51.100.20", 2, b"x"));
    a.encapsulate(T0, &b, &mut buf).unwrap();
    let mut buf = PacketBuf::from_slice(&testkit::udp("192.0.2.10", 1, "198.51.100.20", 2, b"x"));
    a.encapsulate(T0, &b, &mut buf).unwrap();
    // The newer one is dying now (soft limit): the older live one wins.
    assert!(a.sa(new).unwrap().is_dying());
    assert_eq!(a.lookup_out(T0, &f).unwrap().unwrap().ids(), [old]);
}

#[test]
fn inbound_policy_check() {
    let line = sa(
        "203.0.113.1",
        "203.0.113.2",
        0x20,
        "mode tunnel replay-window 32",
    );
    let (mut a, mut b, id) = pair(&line, None);
    b.add_policy(parse_policy("src 192.0.2.0/24 dst 198.51.100.0/24 dir fwd priority 10 tmpl src 203.0.113.1 dst 203.0.113.2 proto esp reqid 1 mode tunnel").unwrap()).unwrap();
    b.add_policy(parse_policy("src 192.0.2.99/32 dst 0.0.0.0/0 dir fwd priority 1 tmpl src 203.0.113.7 dst 203.0.113.2 proto esp mode tunnel").unwrap()).unwrap();
    b.add_policy(
        parse_policy("src 192.0.2.10/32 dst 198.51.100.20/32 dir in action block").unwrap(),
    )
    .unwrap();
    let pkt = testkit::udp("192.0.2.10", 1, "198.51.100.20", 2, b"x");
    let (_, back, sp) = open(&mut b, &seal(&mut a, id, &pkt)).unwrap();
    let flow = Flow::of_packet(&back).unwrap();
    assert_eq!(b.check_inbound(Direction::Fwd, &flow, &sp), Ok(()));
    // The same flow in clear: the policy wants IPsec (what Linux counts as a template mismatch).
    assert_eq!(
        b.check_inbound(Direction::Fwd, &flow, &SecPath::new()),
        Err(InDrop::Unprotected)
    );
    assert_eq!(stat(&b, XfrmStat::InTmplMismatch), 1);
    // Through the right SA kind but the policy names another tunnel source.
    let other = Flow {
        src: "192.0.2.99".parse().unwrap(),
        ..flow
    };
    assert_eq!(
        b.check_inbound(Direction::Fwd, &other, &sp),
        Err(InDrop::TemplateMismatch)
    );
    // A block policy.
    assert_eq!(
        b.check_inbound(Direction::In, &flow, &sp),
        Err(InDrop::PolicyBlock)
    );
    assert_eq!(stat(&b, XfrmStat::InPolBlock), 1);
    // Out of a tunnel with no policy at all.
    let stray = Flow {
        dst: "192.0.2.200".parse().unwrap(),
        ..flow
    };
    assert_eq!(
        b.check_inbound(Direction::Fwd, &stray, &sp),
        Err(InDrop::NoPolicy)
    );
    assert_eq!(stat(&b, XfrmStat::InNoPols), 1);
    // ... while a clear packet without a policy passes.
    assert_eq!(
        b.check_inbound(Direction::Fwd, &stray, &SecPath::new()),
        Ok(())
    );
    // An optional transport template is not needed; a required one is.
    b.add_policy(parse_policy("src 192.0.2.0/24 dst 198.51.100.21/32 dir in tmpl proto esp reqid 5 mode transport level use").unwrap()).unwrap();
    b.add_policy(
        parse_policy(
            "src 192.0.2.0/24 dst 198.51.100.22/32 dir in tmpl proto esp reqid 5 mode transport",
        )
        .unwrap(),
    )
    .unwrap();
    let to = |d: &str| Flow {
        dst: d.parse().unwrap(),
        ..flow
    };
    assert_eq!(
        b.check_inbound(Direction::In, &to("198.51.100.21"), &SecPath::new()),
        Ok(())
    );
    assert_eq!(
        b.check_inbound(Direction::In, &to("198.51.100.22"), &SecPath::new()),
        Err(InDrop::Unprotected)
    );
    // A tunnel SA the policy does not name is left over: a mismatch.
    assert_eq!(
        b.check_inbound(Direction::In, &to("198.51.100.21"), &sp),
        Err(InDrop::TemplateMismatch)
    );
}

#[test]
fn inner_mtu_is_linux_s() {
    for (line, mtu, want) in [
        (
            sa("203.0.113.1", "203.0.113.2", 1, "mode tunnel"),
            1500,
            1446,
        ),
        (
            sa("2001:db8::1", "2001:db8::2", 1, "mode tunnel"),
            1500,
            1426,
        ),
        (
            sa("203.0.113.1", "203.0.113.2", 1, "mode transport"),
            1500,
            1466,
        ),
    ] {
        let (mut a, _, id) = pair(&line, None);
        let b = Bundle::of(&[id]).unwrap();
        assert_eq!(a.inner_mtu(&b, mtu), want, "{line}");
        // The largest inner packet fills the MTU exactly, one more byte overflows it.
        let v6 = line.contains("2001");
        let (s, d) = if v6 {
            ("2001:db8::1", "2001:db8::2")
        } else {
            ("203.0.113.1", "203.0.113.2")
        };
        let hdr = if v6 { 48 } else { 28 };
        for (len, fits) in [(want, true), (want + 1, false)] {
            let pkt = testkit::udp(s, 1, d, 2, &vec![0; len - hdr]);
            let mut buf = PacketBuf::from_slice(&pkt);
            a.encapsulate(T0, &b, &mut buf).unwrap();
            assert_eq!(buf.len() <= mtu, fits, "{line} {len}");
        }
    }
}
