//! The real call of `tests/data/pcap/ndpi-h323.pcap`, as extracted into
//! `helpers/tests/data/h323/` (see its README): every address the walkers find is one tshark
//! decodes, and every address tshark decodes in a field the walkers read is found.

use super::*;

const MESSAGES: &str = include_str!("../../../tests/data/h323/messages.tsv");
const ADDRESSES: &str = include_str!("../../../tests/data/h323/addresses.tsv");

/// One packet of the capture.
pub(crate) struct Packet {
    pub(crate) frame: u32,
    pub(crate) tcp: bool,
    pub(crate) src: IpAddr,
    pub(crate) sport: u16,
    pub(crate) dst: IpAddr,
    pub(crate) dport: u16,
    pub(crate) seq: Option<u32>,
    pub(crate) payload: Vec<u8>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

pub(crate) fn packets() -> Vec<Packet> {
    MESSAGES
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            Packet {
                frame: c[0].parse().unwrap(),
                tcp: c[1] == "tcp",
                src: c[2].parse().unwrap(),
                sport: c[3].parse().unwrap(),
                dst: c[4].parse().unwrap(),
                dport: c[5].parse().unwrap(),
                seq: c[6].parse().ok(),
                payload: hex(c[7]),
            }
        })
        .collect()
}

/// (frame, message, field, address, port) as tshark decoded them, fields the walkers read.
fn tshark() -> BTreeSet<(u32, String, String, IpAddr, u16)> {
    ADDRESSES
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|c| c[5] == "1")
        .map(|c| {
            (
                c[0].parse().unwrap(),
                c[1].to_owned(),
                c[2].to_owned(),
                c[3].parse().unwrap(),
                c[4].parse().unwrap(),
            )
        })
        .collect()
}

/// Runs the walkers over the capture: RAS datagrams, and each TCP stream framed by TPKT
/// (port 1720: Q.931, port 1232: H.245), one framing state per stream and direction.
fn walked() -> Vec<(u32, Found)> {
    let mut streams: std::collections::HashMap<(IpAddr, u16, IpAddr, u16), tpkt::TpktDir> =
        Default::default();
    let mut all = Vec::new();
    for p in packets() {
        let parts: [&[u8]; 1] = [&p.payload];
        let mut w = Walk::default();
        if !p.tcp {
            let mut r = PerReader::new(&parts);
            ras::walk(&mut r, &mut w).unwrap_or_else(|e| panic!("frame {}: {e}", p.frame));
            all.extend(w.found.iter().map(|f| (p.frame, *f)));
            continue;
        }
        let h245 = p.sport == 1232 || p.dport == 1232;
        let st = streams.entry((p.src, p.sport, p.dst, p.dport)).or_default();
        st.feed(p.seq.unwrap(), &parts, |frame| {
            w.clear();
            if h245 {
                let mut r = PerReader::window(frame.parts, frame.start + 4, frame.end);
                h245::walk(&mut r, &mut w).unwrap_or_else(|e| panic!("frame {}: {e}", p.frame));
            } else {
                q931::walk_message(frame.parts, frame.start, frame.end, &mut w)
                    .unwrap_or_else(|e| panic!("frame {}: {e}", p.frame));
            }
            assert!(w.inner_errors.is_empty(), "{:?}", w.inner_errors);
            // Chain positions of a message split across segments start in the buffered
            // part: report positions in this frame's payload.
            all.extend(w.found.iter().map(|f| {
                let mut f = *f;
                f.addr.at = frame.offset(f.addr.at).unwrap_or(usize::MAX);
                (p.frame, f)
            }));
        });
    }
    all
}

#[test]
fn the_walkers_find_what_tshark_decodes_in_the_real_call() {
    let want = tshark();
    let got = walked();
    let packets = packets();
    // Frames tshark decoded: exactly its addresses.
    let decoded: BTreeSet<u32> = want.iter().map(|w| w.0).collect();
    let got_decoded: BTreeSet<(u32, String, String, IpAddr, u16)> = got
        .iter()
        .filter(|(frame, _)| decoded.contains(frame))
        .map(|(frame, f)| {
            (
                *frame,
                f.msg.name().to_owned(),
                f.field.name().to_owned(),
                f.addr.ip,
                f.addr.port,
            )
        })
        .collect();
    assert_eq!(got_decoded, want);
    // The others are retransmissions (tshark does not decode them again): each gives what
    // the segment it resends gave.
    for (frame, f) in got.iter().filter(|(frame, _)| !decoded.contains(frame)) {
        let p = packets.iter().find(|p| p.frame == *frame).unwrap();
        let first = packets
            .iter()
            .find(|q| q.payload == p.payload && q.seq == p.seq && q.frame < p.frame)
            .unwrap_or_else(|| panic!("frame {frame} found {f:?} and resends nothing"));
        assert!(got.iter().any(|(g, h)| *g == first.frame && h == f));
    }
    // The bytes at each site are the address and port (in this frame's payload).
    for (frame, f) in &got {
        let p = packets.iter().find(|p| p.frame == *frame).unwrap();
        let bytes = &p.payload[f.addr.at..f.addr.at + f.addr.len()];
        assert_eq!(
            bytes,
            nat::nat_format(0, f.addr.ip, f.addr.port),
            "frame {frame}"
        );
    }
    // The second call's Alerting comes in two segments (a lone TPKT header first).
    assert!(packets
        .iter()
        .any(|p| p.frame == 48 && p.payload.len() == 4));
}
