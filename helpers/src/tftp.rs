//! The TFTP helper (`tftp`, UDP 69), after Linux's `nf_conntrack_tftp`.
//!
//! A read (RRQ, opcode 1) or write request (WRQ, 2) from the client (RFC 1350: opcode, file
//! name, NUL, mode, NUL, then RFC 2347 options) makes the server answer from a new port of its
//! own choice: the helper expects that answer, from the server's address and any port, to the
//! client's address and port as the master's reply goes (so NAT follows: without a site the
//! expected connection is DNATed to the client). Other opcodes are data of the transfer and
//! ignored; a request without its NUL-terminated file name and mode is malformed (Linux looks
//! at the opcode only; a truncated request gets no answer worth expecting).

use crate::chain::Chain;
use crate::{
    endpoint, ExpectPolicy, ExpectRequest, Helper, HelperConfig, HelperEventKind, HelperOutput,
    HelperPacket, HelperState,
};
use conntrack::tuple::Dir;
use std::any::Any;
use std::net::IpAddr;
use std::time::Duration;

/// Read request.
const RRQ: u16 = 1;
/// Write request.
const WRQ: u16 = 2;

/// The TFTP helper.
#[derive(Debug)]
pub struct Tftp {
    ports: Vec<u16>,
}

impl Tftp {
    /// The helper with these settings (default port 69; `loose` means nothing to TFTP).
    pub fn new(cfg: &HelperConfig) -> Tftp {
        Tftp {
            ports: cfg.ports.clone().unwrap_or_else(|| vec![69]),
        }
    }
}

/// TFTP keeps nothing per connection; the engine still holds a state for uniformity.
#[derive(Debug)]
struct TftpState;

impl Helper for Tftp {
    fn name(&self) -> &'static str {
        "tftp"
    }

    fn proto(&self) -> u8 {
        17
    }

    fn ports(&self) -> &[u16] {
        &self.ports
    }

    fn policy(&self) -> ExpectPolicy {
        ExpectPolicy {
            max_expected: 1,
            timeout: Duration::from_secs(5 * 60),
        }
    }

    fn new_state(&self) -> HelperState {
        Box::new(TftpState)
    }

    fn handle(
        &self,
        _state: &mut (dyn Any + Send + Sync),
        pkt: &HelperPacket<'_>,
        out: &mut HelperOutput,
    ) {
        // Requests come from the client; the server answers from another port.
        if pkt.dir != Dir::Original {
            return;
        }
        let c = Chain::new(pkt.payload);
        let Some(opcode) = c.be_u16(0) else {
            out.event(
                HelperEventKind::Malformed,
                format!("tftp: {} bytes, shorter than an opcode", c.len()),
            );
            return;
        };
        let op = match opcode {
            RRQ => "RRQ",
            WRQ => "WRQ",
            _ => return,
        };
        let file_end = match c.find(2, 0) {
            Some(2) => return malformed(out, op, "empty file name"),
            Some(e) => e,
            None => return malformed(out, op, "file name without its NUL"),
        };
        let mode_end = match c.find(file_end + 1, 0) {
            Some(e) if e == file_end + 1 => return malformed(out, op, "empty mode"),
            Some(e) => e,
            None => return malformed(out, op, "mode without its NUL"),
        };
        let reply = &pkt.tuples[Dir::Reply.index()];
        out.expects.push(ExpectRequest {
            dir: Dir::Reply,
            proto: 17,
            src: Some(reply.src),
            src_port: None,
            dst: reply.dst,
            dst_port: reply.dst_id,
            site: None,
            permanent: false,
            child_helper: None,
            nat_to: None,
            rtp_pair: false,
        });
        out.event(
            HelperEventKind::Parsed,
            format!(
                "tftp: {op} {:?} mode {:?}: answer from {} expected at {}",
                text(&c, 2, file_end),
                text(&c, file_end + 1, mode_end),
                reply.src,
                endpoint(reply.dst, reply.dst_id)
            ),
        );
    }

    fn nat_format(&self, _kind: u8, _addr: IpAddr, _port: u16) -> Vec<u8> {
        // TFTP announces no address: it never makes a site.
        Vec::new()
    }
}

fn malformed(out: &mut HelperOutput, op: &str, why: &str) {
    out.event(HelperEventKind::Malformed, format!("tftp: {op}: {why}"));
}

/// Bytes `[from, to)` of the chain as text for an event, at most 64 of them.
fn text(c: &Chain<'_>, from: usize, to: usize) -> String {
    let mut b = [0u8; 64];
    let n = to.saturating_sub(from).min(b.len());
    c.read(from, &mut b[..n]);
    String::from_utf8_lossy(&b[..n]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HelperEventKind as K;
    use conntrack::tuple::Tuple;
    use conntrack::Instant;

    /// The first request of `tests/data/pcap/ndpi-tftp.pcap` (frame 3): 192.168.0.253:50618
    /// reads "rfc1350.txt" in octet mode from 192.168.0.10:69.
    const CAPTURED_RRQ: &str = include_str!("../tests/data/ndpi-tftp-rrq.hex");

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    fn tuples(nat: bool) -> [Tuple; 2] {
        let orig = Tuple {
            src: "192.168.0.253".parse().unwrap(),
            dst: "192.168.0.10".parse().unwrap(),
            src_id: 50618,
            dst_id: 69,
            proto: 17,
            zone: 0,
        };
        let mut reply = orig.invert();
        if nat {
            // Masquerade: the server answers the router's address and port.
            reply.dst = "203.0.113.1".parse().unwrap();
            reply.dst_id = 1024;
        }
        [orig, reply]
    }

    fn run(dir: Dir, parts: &[&[u8]], nat: bool) -> HelperOutput {
        let h = Tftp::new(&HelperConfig::default());
        let t = tuples(nat);
        let mut st = h.new_state();
        let mut out = HelperOutput::default();
        let pkt = HelperPacket {
            now: Instant::ZERO,
            dir,
            tuples: &t,
            nat,
            seq: None,
            payload: parts,
        };
        h.handle(st.as_mut(), &pkt, &mut out);
        out
    }

    #[test]
    fn captured_read_request_expects_the_answer_from_any_port() {
        let rrq = unhex(CAPTURED_RRQ);
        assert_eq!(&rrq[..2], [0, 1]);
        for nat in [false, true] {
            let out = run(Dir::Original, &[&rrq], nat);
            let t = tuples(nat);
            assert_eq!(
                out.expects,
                [ExpectRequest {
                    dir: Dir::Reply,
                    proto: 17,
                    src: Some(t[1].src),
                    src_port: None,
                    dst: t[1].dst,
                    dst_port: t[1].dst_id,
                    site: None,
                    permanent: false,
                    child_helper: None,
                    nat_to: None,
                    rtp_pair: false,
                }]
            );
            assert_eq!(out.events.len(), 1);
            assert_eq!(out.events[0].kind, K::Parsed);
            assert!(
                out.events[0]
                    .detail
                    .contains("RRQ \"rfc1350.txt\" mode \"octet\""),
                "{:?}",
                out.events
            );
        }
        // The same request split into a chain, at every cut.
        for cut in 0..=rrq.len() {
            let (a, b) = rrq.split_at(cut);
            assert_eq!(
                run(Dir::Original, &[a, b], false).expects.len(),
                1,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn write_request_with_options() {
        let wrq = b"\x00\x02up.bin\x00octet\x00blksize\x001428\x00";
        let out = run(Dir::Original, &[wrq], false);
        assert_eq!(out.expects.len(), 1);
        assert!(out.events[0].detail.starts_with("tftp: WRQ \"up.bin\""));
    }

    #[test]
    fn other_opcodes_and_the_reply_direction_are_ignored() {
        for msg in [
            &b"\x00\x03\x00\x01data"[..],
            b"\x00\x04\x00\x01",
            b"\x00\x05\x00\x01oops\x00",
            b"\x00\x09x",
        ] {
            let out = run(Dir::Original, &[msg], false);
            assert!(out.expects.is_empty() && out.events.is_empty(), "{msg:?}");
        }
        let out = run(Dir::Reply, &[b"\x00\x01f\x00octet\x00"], false);
        assert!(out.expects.is_empty() && out.events.is_empty());
    }

    #[test]
    fn malformed_requests_are_events_not_expectations() {
        for (msg, why) in [
            (&b""[..], "shorter than an opcode"),
            (b"\x00", "shorter than an opcode"),
            (b"\x00\x01", "file name without its NUL"),
            (b"\x00\x01\x00octet\x00", "empty file name"),
            (b"\x00\x01file", "file name without its NUL"),
            (b"\x00\x02file\x00\x00", "empty mode"),
            (b"\x00\x01file\x00octet", "mode without its NUL"),
        ] {
            let out = run(Dir::Original, &[msg], false);
            assert!(out.expects.is_empty(), "{msg:?}");
            assert_eq!(out.events.len(), 1);
            assert_eq!(out.events[0].kind, K::Malformed);
            assert!(out.events[0].detail.contains(why), "{:?}", out.events[0]);
        }
    }
}
