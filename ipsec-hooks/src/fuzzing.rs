//! The fuzz harnesses of this crate, kept in the library so that the cargo-fuzz targets
//! (`fuzz/fuzz_targets/ipsec_*.rs`) and the replay test (`tests/tests/fuzz_replay.rs`) run the
//! very same code.
//!
//! [`decap`]: inbound ESP. Two [`Ipsec`]s, a sender and a receiver, share four SAs (IPv4
//! tunnel, IPv4 transport with a 4096 window, IPv6 tunnel with ESN, IPv6 transport) and the
//! inbound policies that ask for them. The input is records `[control, arg, len, bytes]`:
//! `control & 3` picks the SA, `control >> 2 & 7` what to do: 0 feeds `bytes` to the receiver
//! as a whole packet; 1-6 seal an inner packet carrying `bytes` with the sender, then 1 passes
//! it on intact, 2 flips the byte at `arg` (from the ESP header on), 3 cuts it to `arg` bytes,
//! 4 sends it twice, 5 sends it after the next one (out of order), 6 rewrites the sequence
//! number; 7 moves the clock by `arg` seconds (SA 0 expires after 1000 seconds, SA 1 after 40
//! packets). Checked besides "no panic": every drop adds
//! exactly one to the `xfrm_stat` counters and nothing else does; an intact packet comes
//! back byte for byte and passes the inbound policy check; a flipped byte in the ESP part or
//! a replay never gets through.
//!
//! [`parse`]: the text forms. The first byte picks the parser (state, policy, selector, state
//! id, policy id), the rest is the line. Checked: errors point inside the line (or just past
//! it); what parses prints back (`Display`) to text that parses to the same value.

use crate::ipsec::{Decapsulated, Ipsec, SaId, SecPath};
use crate::sa::{Mode, SaConfig};
use crate::spd::{Direction, PolicyConfig, Template};
use crate::text;
use crate::{Bundle, Flow, InDrop, Prefix, Selector};
use conntrack::tuple::Family;
use std::net::IpAddr;
use std::time::Duration;
use wire::{Instant, PacketBuf};

/// The SAs of [`decap`]: (outer family v6, mode, ESN, window).
const SAS: [(bool, Mode, bool, u32); 4] = [
    (false, Mode::Tunnel, false, 32),
    (false, Mode::Transport, false, 4096),
    (true, Mode::Tunnel, true, 64),
    (true, Mode::Transport, false, 0),
];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::from([0u8; 4]))
}

/// Endpoints of SA `i` and the inner hosts behind them.
fn addrs(i: usize) -> (IpAddr, IpAddr, IpAddr, IpAddr) {
    let (v6, mode, _, _) = SAS[i];
    let (gs, gd) = if v6 {
        (ip("2001:db8::1"), ip("2001:db8::2"))
    } else {
        (ip("203.0.113.1"), ip("203.0.113.2"))
    };
    match (mode, i) {
        (Mode::Transport, _) => (gs, gd, gs, gd),
        // The IPv6 tunnel carries IPv4: inner and outer families differ.
        (Mode::Tunnel, 2) => (gs, gd, ip("192.0.2.11"), ip("198.51.100.21")),
        _ => (gs, gd, ip("192.0.2.10"), ip("198.51.100.20")),
    }
}

fn config(i: usize) -> SaConfig {
    let (v6, mode, esn, window) = SAS[i];
    let (src, dst, _, _) = addrs(i);
    let key_len = [20, 28, 36, 20][i];
    let key = (0..key_len)
        .map(|b| (b as u8).wrapping_mul(7) ^ i as u8)
        .collect();
    let mut c = SaConfig::new(src, dst, 0x100 + i as u32, mode, key);
    c.reqid = i as u32 + 1;
    c.replay_window = window;
    c.flags.esn = esn;
    // Lifetimes the clock (op 7) and the traffic can reach.
    match i {
        0 => {
            c.lifetime.soft_add_secs = Some(100);
            c.lifetime.hard_add_secs = Some(1000);
        }
        1 => {
            c.lifetime.soft_packets = Some(10);
            c.lifetime.hard_packets = Some(40);
        }
        _ => {}
    }
    if mode == Mode::Tunnel {
        // The tunnels carry IPv4 inside either family.
        c.selector = Some(Selector::any(Family::V4));
        c.flags.af_unspec = v6;
    }
    c
}

/// Sender, receiver (with inbound policies) and the SA ids on the sender.
fn setup() -> (Ipsec, Ipsec, [SaId; 4]) {
    let now = Instant::ZERO;
    let mut tx = Ipsec::new();
    let mut rx = Ipsec::new();
    let mut ids = [SaId::default(); 4];
    for (i, id) in ids.iter_mut().enumerate() {
        if let Ok(x) = tx.add_sa(config(i), now) {
            *id = x;
        }
        let _ = rx.add_sa(config(i), now);
        let (src, dst, isrc, idst) = addrs(i);
        let t = match SAS[i].1 {
            Mode::Tunnel => Template::tunnel(src, dst, i as u32 + 1),
            Mode::Transport => Template::transport(i as u32 + 1),
        };
        let mut p = PolicyConfig::new(
            Selector::between(Prefix::host(isrc), Prefix::host(idst)),
            if SAS[i].1 == Mode::Tunnel {
                Direction::Fwd
            } else {
                Direction::In
            },
        );
        p.templates.push(t);
        let _ = rx.add_policy(p);
    }
    (tx, rx, ids)
}

/// A UDP packet from `src` to `dst` carrying `payload`.
fn inner(src: IpAddr, dst: IpAddr, payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(1400)];
    let udp_len = 8 + payload.len();
    let mut p = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = vec![0u8; 20];
            let _ = wire::ipv4::emit_header(&mut h, s, d, wire::proto::UDP, 64, udp_len, 7);
            h
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = vec![0u8; 40];
            let _ = wire::ipv6::emit_header(&mut h, &s, &d, wire::proto::UDP, 64, udp_len);
            h
        }
        _ => Vec::new(),
    };
    p.extend_from_slice(&4000u16.to_be_bytes());
    p.extend_from_slice(&5000u16.to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

struct Rx {
    ipsec: Ipsec,
    now: Instant,
}

impl Rx {
    /// Feeds one packet; checks the counters move by exactly the drops.
    fn feed(&mut self, bytes: &[u8]) -> Result<(Decapsulated, Vec<u8>, SecPath), InDrop> {
        let before = self.ipsec.stats().total();
        let mut buf = PacketBuf::from_slice(bytes);
        let mut sp = SecPath::new();
        let r = self.ipsec.decapsulate(self.now, &mut buf, &mut sp);
        let after = self.ipsec.stats().total();
        match &r {
            Ok(_) => assert_eq!(after, before, "a success counted as a drop"),
            Err(d) => {
                assert_eq!(after, before + 1, "drop {d:?} not counted once");
                assert!(self.ipsec.stats().get(d.stat()) > 0);
            }
        }
        r.map(|d| (d, buf.into_vec(), sp))
    }
}

/// Inbound ESP decapsulation (see the module documentation).
pub fn decap(data: &[u8]) {
    let (mut tx, rx, ids) = setup();
    let mut rx = Rx {
        ipsec: rx,
        now: Instant::ZERO,
    };
    let mut held: Option<Vec<u8>> = None;
    let mut rest = data;
    while let [control, arg, len, body @ ..] = rest {
        let n = usize::from(*len).min(body.len());
        let bytes = &body[..n];
        rest = &body[n..];
        let i = usize::from(control & 3);
        let op = (control >> 2) & 7;
        match op {
            0 => {
                let _ = rx.feed(bytes);
                continue;
            }
            7 => {
                rx.now = rx.now + Duration::from_secs(u64::from(*arg));
                rx.ipsec.handle_timeout(rx.now);
                while rx.ipsec.poll_event().is_some() {}
                continue;
            }
            _ => {}
        }
        let (_, _, isrc, idst) = addrs(i);
        let plain = inner(isrc, idst, bytes);
        let mut buf = PacketBuf::from_slice(&plain);
        let Some(bundle) = Bundle::of(&[ids[i]]) else {
            continue;
        };
        if tx.encapsulate(Instant::ZERO, &bundle, &mut buf).is_err() {
            continue;
        }
        let mut esp = buf.into_vec();
        let esp_at = esp_offset(&esp);
        match op {
            1 | 4 => {
                let r = rx.feed(&esp);
                let first_ok = r.is_ok();
                check_intact(&mut rx, r, &plain, i);
                if op == 4 {
                    let again = rx.feed(&esp);
                    // The replay check comes first, so a replay of an accepted packet is
                    // refused as one even if the SA reached a limit meanwhile; without a
                    // window (SA 3, `replay-window 0`) it passes, as in Linux.
                    if first_ok && SAS[i].3 > 0 {
                        assert_eq!(again.err(), Some(InDrop::Replayed), "a replay got through");
                    }
                }
            }
            2 => {
                let at = esp_at + usize::from(*arg) % (esp.len() - esp_at);
                esp[at] ^= bytes.first().copied().unwrap_or(1).max(1);
                assert!(
                    rx.feed(&esp).is_err(),
                    "a flipped ESP byte at {at} got through"
                );
            }
            3 => {
                esp.truncate(usize::from(*arg));
                let _ = rx.feed(&esp);
            }
            5 => {
                if let Some(prev) = held.take() {
                    let _ = rx.feed(&esp);
                    let _ = rx.feed(&prev);
                } else {
                    held = Some(esp);
                }
            }
            _ => {
                // A rewritten sequence number changes the AAD: never authentic.
                if esp.len() >= esp_at + 8 {
                    esp[esp_at + 4..esp_at + 8].copy_from_slice(&u32::from(*arg).to_be_bytes());
                }
                let _ = rx.feed(&esp);
            }
        }
    }
}

/// Where the ESP header starts in a packet this harness built (no extension headers).
fn esp_offset(p: &[u8]) -> usize {
    match p.first().map(|b| b >> 4) {
        Some(4) => usize::from(p[0] & 15) * 4,
        _ => 40,
    }
}

fn check_intact(
    rx: &mut Rx,
    r: Result<(Decapsulated, Vec<u8>, SecPath), InDrop>,
    plain: &[u8],
    i: usize,
) {
    match r {
        Ok((Decapsulated::Packet(info), got, sp)) => {
            assert_eq!(got, plain, "decapsulated packet differs");
            assert_eq!(info.spi, 0x100 + i as u32);
            let dir = if SAS[i].1 == Mode::Tunnel {
                Direction::Fwd
            } else {
                Direction::In
            };
            if let Some(flow) = Flow::of_packet(&got) {
                assert_eq!(rx.ipsec.check_inbound(dir, &flow, &sp), Ok(()), "SA {i}");
                // The same flow in clear is refused: the policy asks for IPsec.
                assert_eq!(
                    rx.ipsec.check_inbound(dir, &flow, &SecPath::new()),
                    Err(InDrop::Unprotected)
                );
            }
        }
        Ok((Decapsulated::Dummy(_), _, _)) => panic!("a sealed UDP packet came back as a dummy"),
        // The clock may have moved the SA out of existence, or an earlier record may have
        // used the number (out of order, rewritten): the drop was counted.
        Err(_) => {}
    }
}

/// The text parsers (see the module documentation).
pub fn parse(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let line = String::from_utf8_lossy(rest);
    let len = line.chars().count();
    let check_col = |e: &text::ParseError| {
        assert!(
            e.column >= 1 && e.column <= len + 1,
            "column {} outside a line of {len}: {e}",
            e.column
        );
    };
    match which % 5 {
        0 => match text::parse_state(&line) {
            Ok(cfg) => {
                let again = text::parse_state(&cfg.to_string())
                    .unwrap_or_else(|e| panic!("`{cfg}` does not parse back: {e}"));
                assert_eq!(again, cfg);
                // A valid SA goes into the database and lists without trouble.
                let mut x = Ipsec::new();
                if let Ok(id) = x.add_sa(cfg, Instant::ZERO) {
                    let sa = x.sa(id).map(|s| format!("{s:#}")).unwrap_or_default();
                    assert!(sa.starts_with("src "));
                }
            }
            Err(e) => check_col(&e),
        },
        1 => match text::parse_policy(&line) {
            Ok(cfg) => {
                let again = text::parse_policy(&cfg.to_string())
                    .unwrap_or_else(|e| panic!("`{cfg}` does not parse back: {e}"));
                assert_eq!(again, cfg);
            }
            Err(e) => check_col(&e),
        },
        2 => match text::parse_selector(&line) {
            Ok(sel) => assert_eq!(text::parse_selector(&sel.to_string()), Ok(sel)),
            Err(e) => check_col(&e),
        },
        3 => {
            if let Err(e) = text::parse_state_id(&line) {
                check_col(&e);
            }
        }
        _ => {
            if let Err(e) = text::parse_policy_id(&line) {
                check_col(&e);
            }
        }
    }
}

/// An ESP packet of SA `i` (0-3) of [`decap`] carrying a UDP datagram with `payload`, with
/// sequence number `seq`: for raw seeds (`control` 0), which the receiver takes as authentic.
pub fn sealed(i: usize, seq: u64, payload: &[u8]) -> Vec<u8> {
    let i = i % SAS.len();
    let mut cfg = config(i);
    cfg.replay_oseq = seq.saturating_sub(1);
    let mut tx = Ipsec::new();
    let (_, _, isrc, idst) = addrs(i);
    let mut buf = PacketBuf::from_slice(&inner(isrc, idst, payload));
    let ok = tx
        .add_sa(cfg, Instant::ZERO)
        .ok()
        .and_then(|id| Bundle::of(&[id]))
        .is_some_and(|b| tx.encapsulate(Instant::ZERO, &b, &mut buf).is_ok());
    if ok {
        buf.into_vec()
    } else {
        Vec::new()
    }
}

/// Encodes one [`decap`] record (`bytes` cut to 255): for seeds and tests.
pub fn record(control: u8, arg: u8, bytes: &[u8]) -> Vec<u8> {
    let n = bytes.len().min(255);
    let mut v = vec![control, arg, n as u8];
    v.extend_from_slice(&bytes[..n]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_on_every_sa() {
        let mut data = Vec::new();
        for sa in 0..4u8 {
            for op in 0..8u8 {
                data.extend(record(op << 2 | sa, 9, b"hello, fuzzer"));
            }
        }
        decap(&data);
        decap(&[]);
        decap(&[1]);
    }

    #[test]
    fn sealed_seeds_are_authentic() {
        for i in 0..4 {
            let p = sealed(i, 5, b"seed");
            let (_, rx, _) = setup();
            let mut rx = Rx {
                ipsec: rx,
                now: Instant::ZERO,
            };
            let (d, got, _) = rx.feed(&p).unwrap();
            assert!(matches!(d, Decapsulated::Packet(info) if info.spi == 0x100 + i as u32));
            let (_, _, s, d) = addrs(i);
            assert_eq!(got, inner(s, d, b"seed"));
        }
    }

    #[test]
    fn parsers_on_lines() {
        for line in [
            "\0src 192.0.2.1 dst 192.0.2.2 proto esp spi 1 aead 'rfc4106(gcm(aes))' 0x0102030405060708090a0b0c0d0e0f1011121314 128",
            "\x01src 10.0.0.0/8 dst 0.0.0.0/0 dir out tmpl proto esp reqid 0",
            "\x02src ::/0 proto ipv6-icmp type 0",
            "\x03dst 192.0.2.1 spi 0x10",
            "\x04dir in",
            "\0'",
            "\x01é dir",
        ] {
            parse(line.as_bytes());
        }
    }
}
