//! Test harness: a single connection driven packet by packet the way the
//! core drives it (ids, new_conn for the first packet, packet; SEEN_REPLY
//! set after an accepted reply), plus builders that write L4 headers with
//! correct checksums.
#![allow(dead_code)]

use conntrack::{ConnCtx, Dir, Family, Instant, L4Packet, L4Proto, ProtoState, Status, Tuple};
use conntrack::{Invalid, Verdict};
use l4proto::{AnyState, L4Modules, TcpConfig, Timeouts};
use std::net::IpAddr;
use std::time::Duration;
use wire::checksum;
use wire::{DccpPacket, SctpPacket, TcpPacket, UdpLitePacket, UdpPacket};

pub const FIN: u16 = 0x01;
pub const SYN: u16 = 0x02;
pub const RST: u16 = 0x04;
pub const PSH: u16 = 0x08;
pub const ACK: u16 = 0x10;
pub const URG: u16 = 0x20;

pub const ORIG: Dir = Dir::Original;
pub const REPLY: Dir = Dir::Reply;

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn accept(s: u64) -> Verdict {
    Verdict::Accept { timeout: secs(s) }
}

pub fn is_invalid(v: &Verdict) -> bool {
    matches!(v, Verdict::Invalid(_))
}

/// One connection between a client (original direction source) and a server.
pub struct Flow {
    pub l4: L4Modules,
    pub proto: u8,
    pub client: IpAddr,
    pub server: IpAddr,
    pub cport: u16,
    pub sport: u16,
    pub state: Option<AnyState>,
    pub status: Status,
    pub now: Instant,
    pub verify: bool,
}

impl Flow {
    pub fn new(proto: u8) -> Flow {
        Flow::with(proto, L4Modules::default())
    }

    pub fn with(proto: u8, l4: L4Modules) -> Flow {
        Flow {
            l4,
            proto,
            client: "192.0.2.1".parse().unwrap(),
            server: "198.51.100.1".parse().unwrap(),
            cport: 40000,
            sport: 80,
            state: None,
            status: Status::default(),
            now: Instant::from_secs(1000),
            verify: true,
        }
    }

    pub fn tcp_cfg(cfg: TcpConfig) -> Flow {
        Flow::with(6, L4Modules::new(Timeouts::default(), cfg))
    }

    pub fn v6(mut self) -> Flow {
        self.client = "2001:db8:1::1".parse().unwrap();
        self.server = "2001:db8:2::1".parse().unwrap();
        self
    }

    pub fn addrs(&self, dir: Dir) -> (IpAddr, IpAddr) {
        match dir {
            Dir::Original => (self.client, self.server),
            Dir::Reply => (self.server, self.client),
        }
    }

    pub fn ports(&self, dir: Dir) -> (u16, u16) {
        match dir {
            Dir::Original => (self.cport, self.sport),
            Dir::Reply => (self.sport, self.cport),
        }
    }

    pub fn pkt<'a>(&self, dir: Dir, data: &'a [u8]) -> L4Packet<'a> {
        let (src, dst) = self.addrs(dir);
        L4Packet {
            family: Family::of(&src),
            src,
            dst,
            proto: self.proto,
            data,
            verify_checksum: self.verify,
        }
    }

    pub fn advance(&mut self, s: u64) {
        self.now = self.now + secs(s);
    }

    /// Runs a packet through the module as the core would.
    pub fn send(&mut self, dir: Dir, data: &[u8]) -> Verdict {
        let pkt = self.pkt(dir, data);
        let (a, b) = match self.l4.ids(&pkt) {
            Ok(ids) => ids,
            Err(e) => return Verdict::Invalid(e),
        };
        let orig = if self.state.is_none() {
            assert_eq!(dir, ORIG, "the first packet defines the original direction");
            match self.l4.new_conn(&pkt, self.now) {
                Ok(s) => self.state = Some(s),
                Err(e) => return Verdict::Invalid(e),
            }
            Tuple {
                src: pkt.src,
                dst: pkt.dst,
                src_id: a,
                dst_id: b,
                proto: self.proto,
                zone: 0,
            }
        } else {
            let (src, dst) = self.addrs(ORIG);
            let (sa, sb) = if dir == ORIG { (a, b) } else { (b, a) };
            Tuple {
                src,
                dst,
                src_id: sa,
                dst_id: sb,
                proto: self.proto,
                zone: 0,
            }
        };
        let tuples = [orig, orig.invert()];
        let mut ctx = ConnCtx {
            dir,
            status: &mut self.status,
            now: self.now,
            tuples: &tuples,
            ack_offset: 0,
        };
        let state = self.state.as_mut().unwrap();
        let v = self.l4.packet(state, &mut ctx, &pkt);
        match v {
            Verdict::Accept { .. } if dir == REPLY => self.status.insert(Status::SEEN_REPLY),
            Verdict::Reopen => {
                self.state = None;
                self.status = Status::default();
            }
            _ => {}
        }
        v
    }

    /// The first packet of a connection that new_conn must refuse.
    pub fn refuse(&self, data: &[u8]) -> Invalid {
        let pkt = self.pkt(ORIG, data);
        match self
            .l4
            .ids(&pkt)
            .and_then(|_| self.l4.new_conn(&pkt, self.now))
        {
            Ok(s) => panic!("expected refusal, got {s:?}"),
            Err(e) => e,
        }
    }

    pub fn name(&self) -> &'static str {
        self.state.as_ref().map_or("<none>", |s| s.state_name())
    }

    pub fn assured(&self) -> bool {
        self.status.contains(Status::ASSURED)
    }

    pub fn tcp_state(&self) -> &l4proto::tcp::TcpState {
        match &self.state {
            Some(AnyState::Tcp(s)) => s,
            other => panic!("not TCP: {other:?}"),
        }
    }

    // ---- builders ----

    /// A TCP segment with options (padded to 4 bytes) and payload.
    #[allow(clippy::too_many_arguments)]
    pub fn tcp(
        &self,
        dir: Dir,
        seq: u32,
        ack: u32,
        flags: u16,
        win: u16,
        opts: &[u8],
        payload: &[u8],
    ) -> Vec<u8> {
        let mut o = opts.to_vec();
        while o.len() & 3 != 0 {
            o.push(1); // NOP
        }
        let hl = 20 + o.len();
        let mut v = vec![0u8; hl];
        let (sp, dp) = self.ports(dir);
        v[0..2].copy_from_slice(&sp.to_be_bytes());
        v[2..4].copy_from_slice(&dp.to_be_bytes());
        v[4..8].copy_from_slice(&seq.to_be_bytes());
        v[8..12].copy_from_slice(&ack.to_be_bytes());
        v[12] = ((hl / 4) as u8) << 4 | ((flags >> 8) as u8 & 1);
        v[13] = flags as u8;
        v[14..16].copy_from_slice(&win.to_be_bytes());
        v[20..].copy_from_slice(&o);
        v.extend_from_slice(payload);
        let (s, d) = self.addrs(dir);
        let mut p = TcpPacket::new_unchecked(&mut v[..]);
        match (s, d) {
            (IpAddr::V4(s), IpAddr::V4(d)) => p.fill_checksum_v4(s, d),
            (IpAddr::V6(s), IpAddr::V6(d)) => p.fill_checksum_v6(&s, &d),
            _ => unreachable!(),
        }
        v
    }

    /// A UDP datagram (or UDP-Lite with coverage `cov` when proto is 136).
    pub fn udp(&self, dir: Dir, payload: &[u8]) -> Vec<u8> {
        self.udp_cov(dir, payload, 0)
    }

    pub fn udp_cov(&self, dir: Dir, payload: &[u8], cov: u16) -> Vec<u8> {
        let (sp, dp) = self.ports(dir);
        let len = 8 + payload.len();
        let mut v = Vec::with_capacity(len);
        v.extend_from_slice(&sp.to_be_bytes());
        v.extend_from_slice(&dp.to_be_bytes());
        let lf = if self.proto == 136 { cov } else { len as u16 };
        v.extend_from_slice(&lf.to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(payload);
        let (s, d) = self.addrs(dir);
        let covered = if self.proto == 136 && cov != 0 {
            usize::from(cov).min(len)
        } else {
            len
        };
        let ph = match (s, d) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                checksum::pseudo_header_v4(s, d, self.proto, len as u32)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                checksum::pseudo_header_v6(&s, &d, self.proto, len as u32)
            }
            _ => unreachable!(),
        };
        let mut c = checksum::fold(checksum::combine(ph, checksum::sum(&v[..covered])));
        if c == 0 {
            c = 0xffff;
        }
        v[6..8].copy_from_slice(&c.to_be_bytes());
        if self.proto == 17 {
            let p = UdpPacket::new_checked(&v[..]).unwrap();
            if let (IpAddr::V4(s), IpAddr::V4(d)) = (s, d) {
                assert!(p.verify_checksum_v4(s, d));
            }
        } else {
            assert!(UdpLitePacket::new_checked(&v[..]).is_ok() || cov != 0);
        }
        v
    }

    /// An ICMP/ICMPv6 message of `ty` with identifier `id`.
    pub fn icmp(&self, dir: Dir, ty: u8, id: u16, seq: u16) -> Vec<u8> {
        let mut v = vec![ty, 0, 0, 0];
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(b"ping data");
        let c = if self.proto == 58 {
            let (IpAddr::V6(s), IpAddr::V6(d)) = self.addrs(dir) else {
                unreachable!()
            };
            let ph = checksum::pseudo_header_v6(&s, &d, 58, v.len() as u32);
            checksum::fold(checksum::combine(ph, checksum::sum(&v)))
        } else {
            checksum::data(&v)
        };
        v[2..4].copy_from_slice(&c.to_be_bytes());
        v
    }

    /// An SCTP packet with `vtag` and the given chunks (type, flags, value).
    pub fn sctp(&self, dir: Dir, vtag: u32, chunks: &[(u8, u8, Vec<u8>)]) -> Vec<u8> {
        let (sp, dp) = self.ports(dir);
        let mut v = Vec::new();
        v.extend_from_slice(&sp.to_be_bytes());
        v.extend_from_slice(&dp.to_be_bytes());
        v.extend_from_slice(&vtag.to_be_bytes());
        v.extend_from_slice(&[0; 4]);
        for (ty, flags, value) in chunks {
            v.push(*ty);
            v.push(*flags);
            v.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
            v.extend_from_slice(value);
            while v.len() & 3 != 0 {
                v.push(0);
            }
        }
        SctpPacket::new_checked(&mut v[..]).unwrap().fill_checksum();
        v
    }

    /// A DCCP packet with 48-bit numbers: `ty` 0..9, `ack` for types that carry one.
    pub fn dccp(&self, dir: Dir, ty: u8, seq: u64, ack: Option<u64>, payload: &[u8]) -> Vec<u8> {
        let (sp, dp) = self.ports(dir);
        let mut v = Vec::new();
        v.extend_from_slice(&sp.to_be_bytes());
        v.extend_from_slice(&dp.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 0]); // offset, ccval/cscov, checksum
        v.push(ty << 1 | 1); // X = 1
        v.push(0);
        v.extend_from_slice(&seq.to_be_bytes()[2..]);
        if let Some(a) = ack {
            v.extend_from_slice(&[0, 0]);
            v.extend_from_slice(&a.to_be_bytes()[2..]);
        }
        if matches!(ty, 0 | 1 | 7) {
            v.extend_from_slice(&[0, 0, 0, 42]); // service code / reset code
        }
        v[4] = (v.len() / 4) as u8;
        v.extend_from_slice(payload);
        let (s, d) = self.addrs(dir);
        let ph = match (s, d) {
            (IpAddr::V4(s), IpAddr::V4(d)) => checksum::pseudo_header_v4(s, d, 33, v.len() as u32),
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                checksum::pseudo_header_v6(&s, &d, 33, v.len() as u32)
            }
            _ => unreachable!(),
        };
        let c = checksum::fold(checksum::combine(ph, checksum::sum(&v)));
        v[6..8].copy_from_slice(&c.to_be_bytes());
        assert!(
            DccpPacket::new_checked(&v[..]).is_ok(),
            "builder made a bad DCCP packet"
        );
        v
    }
}
