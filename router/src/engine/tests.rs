//! Unit tests of the engine's internals.

use super::*;
use l3proto::defrag::{DefragConfig, Outcome};
use wire::checksum;

/// The constant-time checksum update keeps every header valid, whatever the TTL and the
/// other fields (a zero TTL is left alone).
#[test]
fn decrement_ttl_keeps_the_checksum_valid() {
    let mut seed = 0x9e37_79b9u32;
    for ttl in 0..=255u8 {
        for _ in 0..64 {
            let mut h = [0u8; 20];
            for b in h.iter_mut() {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *b = (seed >> 24) as u8;
            }
            h[0] = 0x45;
            h[8] = ttl;
            h[10] = 0;
            h[11] = 0;
            let ck = checksum::data(&h);
            h[10..12].copy_from_slice(&ck.to_be_bytes());
            let before = h;
            decrement_ttl(&mut h);
            if ttl == 0 {
                assert_eq!(h, before);
            } else {
                assert_eq!(h[8], ttl - 1);
                assert_eq!(checksum::data(&h), 0, "ttl {ttl}: {before:02x?}");
            }
        }
    }
}

/// The schedules `skip_idle_ticks` leaves are those of ticking through the same time,
/// including the endpoint-independent mapping collection's (every 10 s from its own
/// deadline), whatever the two schedules' phases.
#[test]
fn skipping_idle_ticks_leaves_the_schedules_of_ticking() {
    let cfg = Config::parse(
        "[[interface]]\nname = \"a\"\nkind = \"tun\"\n\
         [nat]\nudp_mapping = \"endpoint-independent\"\n",
        "t.toml",
        std::path::Path::new("."),
    )
    .unwrap();
    for (start_ms, eim_ms, end_ms) in [
        (1_000, 0, 1_000),
        (1_000, 0, 1_001),
        (1_000, 5_050, 1_000_000),
        (1_037, 11_000, 37_777),
        (2_000, 12_099, 12_100),
        (2_000, 12_100, 12_100),
        (2_000, 12_100, 12_101),
        (5, 3, 86_400_000),
    ] {
        let ms = |m: u64| Instant::from_nanos(m * 1_000_000);
        let mut a = Engine::new(&cfg, 1).unwrap();
        a.timers.set(Timer::ConntrackGc, ms(start_ms));
        a.timers.set(Timer::Mappings, ms(eim_ms));
        let mut b = Engine::new(&cfg, 1).unwrap();
        b.timers = a.timers;
        let end = ms(end_ms);
        let mut ticks = 0;
        // Ticking is what a driver does: run the timers at each deadline before `end`.
        while let Some(t) = a.poll_timeout().filter(|t| *t < end) {
            ticks += u64::from(a.timers.is_due(Timer::ConntrackGc, t));
            a.handle_timeout(t);
        }
        assert_eq!(
            b.skip_idle_ticks(end),
            ticks,
            "{start_ms} {eim_ms} {end_ms}"
        );
        assert_eq!(
            (b.timers, b.now),
            (a.timers, a.now),
            "{start_ms} {eim_ms} {end_ms}"
        );
    }
}

fn v4_fragments(id: u16) -> Vec<Vec<u8>> {
    let mut whole = vec![0u8; 20];
    wire::ipv4::emit_header(
        &mut whole,
        [192, 0, 2, 2].into(),
        [198, 51, 100, 9].into(),
        17,
        64,
        8 + 100,
        id,
    )
    .unwrap();
    whole.extend_from_slice(&[0x0f, 0xa0, 0, 9, 0, 108, 0, 0]);
    whole.extend((0..100u8).map(|i| i.wrapping_mul(3)));
    [(0usize, 48usize), (48, 48), (96, 12)]
        .iter()
        .map(|&(off, len)| {
            let payload = &whole[20..];
            let end = (off + len).min(payload.len());
            let mut p = whole[..20].to_vec();
            p[2..4].copy_from_slice(&((20 + end - off) as u16).to_be_bytes());
            let more = if end < payload.len() { 0x2000 } else { 0 };
            p[6..8].copy_from_slice(&((off / 8) as u16 | more).to_be_bytes());
            p[10] = 0;
            p[11] = 0;
            let ck = checksum::data(&p);
            p[10..12].copy_from_slice(&ck.to_be_bytes());
            p.extend_from_slice(&payload[off..end]);
            p
        })
        .collect()
}

/// The segments handed to payload matches are exactly the clone's bytes,
/// borrowed from the fragments (arrival order does not matter).
#[test]
fn fragment_segments_spell_the_clone() {
    let frags = v4_fragments(5);
    let mut d = Defrag::new(DefragConfig::default());
    let now = Instant::from_secs(1);
    let mut done = None;
    for i in [2, 0, 1] {
        if let Outcome::Complete(dg) = d.push(now, PacketBuf::from_slice(&frags[i]), 0) {
            done = Some(dg);
        }
    }
    let dg = done.expect("complete");
    let segs = fragment_segments(dg.clone.as_slice(), &dg.fragments);
    assert_eq!(segs.len(), 4, "header + three data segments");
    assert_eq!(segs.concat(), dg.clone.as_slice());
    // Each data segment points into a fragment, not into a copy.
    let inside = |s: &[u8]| {
        dg.fragments.iter().any(|f| {
            let r = f.as_slice().as_ptr_range();
            r.contains(&s.as_ptr())
        })
    };
    assert!(segs[1..].iter().all(|s| inside(s)));
}
