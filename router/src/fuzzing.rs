//! The fuzz harnesses of the router crate, kept in the library so that the cargo-fuzz targets
//! (`fuzz/fuzz_targets/`) and the regression replay in the normal test suite
//! (`tests/tests/fuzz_replay.rs`) run the very same code. One function per target:
//!
//! - [`config`]: the TOML configuration;
//! - [`control`]: the control socket's request line (and the client's response lines);
//! - [`pcap`]: the capture reader;
//! - [`l2`]: ARP and Neighbour Discovery on a TAP link;
//! - [`engine`]: the whole engine, fed packets on its interfaces.
//!
//! Each panics on a violated invariant (the fuzzer's signal), never on merely bad input.
//! Sequences of packets or frames are cut with [`wire::fuzzing::records`]; a record's control
//! byte moves the clock with `l3proto::fuzzing::step` (bits 0-2) and picks the rest as each
//! harness says.

use std::net::IpAddr;
use std::path::Path;

use wire::{Instant, PacketBuf};

use crate::config::Config;
use crate::engine::{Engine, Event};
use crate::live::control::{self, CtFilter, Request, Response};
use crate::live::l2::{self, L2Iface, L2Limits, Mac};

/// The TOML configuration: input bytes are the file.
///
/// Checked: an error points inside the text (or has no position at all); an accepted
/// configuration builds an engine, and its interfaces are found by name.
pub fn config(data: &[u8]) {
    // The loader reads files with `read_to_string`: non-UTF-8 never reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, "fuzz.toml", Path::new("/nonexistent")) {
        Err(e) => {
            if e.line == 0 {
                assert_eq!(e.column, 0, "{e}");
            } else {
                let line = text.split('\n').nth(e.line - 1);
                let chars = line.map(|l| l.chars().count());
                assert!(
                    chars.is_some_and(|n| e.column >= 1 && e.column <= n + 1),
                    "{e}: position outside the text"
                );
            }
        }
        Ok(cfg) => {
            for (id, i) in cfg.interfaces.iter().enumerate() {
                assert_eq!(cfg.iface_id(&i.name), Some(id), "interface {:?}", i.name);
            }
            let empty = |f| rules::Ruleset::empty(f);
            let engine =
                Engine::with_rules(&cfg, 1, empty(rules::Family::V4), empty(rules::Family::V6));
            if let Err(e) = engine {
                panic!("accepted configuration builds no engine: {e}\n{text}");
            }
        }
    }
}

/// The control socket's request line, read as the server reads it (one line of at most
/// [`control::MAX_REQUEST`] bytes, UTF-8), and the rest of the input as the response lines a
/// client reads.
///
/// Checked: a request that parses survives the client's encoding (what `tunfilter ct ...`
/// sends is read back as the same request); the filters of `ct list`/`ct delete` judge any
/// line without panicking; responses round-trip the same way.
pub fn control(data: &[u8]) {
    let max = usize::try_from(control::MAX_REQUEST).unwrap_or(usize::MAX);
    let cut = data
        .iter()
        .position(|&b| b == b'\n')
        .map_or(data.len(), |i| i + 1)
        .min(max);
    let (line, rest) = data.split_at(cut);
    if let Ok(line) = std::str::from_utf8(line) {
        if let Ok(req) = control::parse_request(line) {
            let sent = serde_json::to_string(&req).expect("requests encode");
            assert_eq!(
                control::parse_request(&sent),
                Ok(req.clone()),
                "request does not survive its encoding: {sent}"
            );
            if let Request::CtList { filter } | Request::CtDelete { filter } = &req {
                filter_lines(filter, rest);
            }
        }
    }
    for l in String::from_utf8_lossy(rest).lines() {
        if let Ok(r) = serde_json::from_str::<Response>(l) {
            let again = serde_json::to_string(&r).expect("responses encode");
            assert_eq!(
                serde_json::from_str::<Response>(&again).ok(),
                Some(r),
                "response does not survive its encoding"
            );
        }
    }
}

fn filter_lines(filter: &CtFilter, rest: &[u8]) {
    let text = String::from_utf8_lossy(rest);
    let sample = "tcp      6 431999 ESTABLISHED src=192.0.2.2 dst=198.51.100.2 sport=40000 \
                  dport=80 src=198.51.100.2 dst=192.0.2.2 sport=80 dport=40000 [ASSURED] mark=0";
    let _ = filter.matches_line(sample);
    for l in text.lines() {
        let _ = filter.matches_line(l);
    }
    assert!(
        CtFilter::default().matches_line(&text),
        "the empty filter matches everything"
    );
}

/// The capture reader: input bytes are the file.
///
/// Checked: reading from a stream gives what parsing the bytes gives; every record's bytes
/// are in the file; what is read writes back to a file that reads the same; link-layer
/// decapsulation returns a suffix of the record.
pub fn pcap(data: &[u8]) {
    let parsed = crate::pcap::parse(data);
    let streamed = crate::pcap::read_all(data);
    match (&parsed, &streamed) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "read_all and parse disagree"),
        (Err(_), Err(_)) => {}
        _ => panic!("read_all and parse disagree on success"),
    }
    let Ok((linktype, records)) = parsed else {
        return;
    };
    let total: usize = records.iter().map(|r| 16 + r.data.len()).sum();
    assert_eq!(
        24 + total,
        data.len(),
        "records do not account for the file"
    );
    for r in &records {
        if let Some(ip) = crate::pcap::ip_payload(linktype, &r.data) {
            assert!(r.data.ends_with(ip), "IP payload not a suffix of its frame");
        }
    }
    let mut w = crate::pcap::Writer::new(Vec::new(), linktype).expect("writes to memory");
    for r in &records {
        w.write(r.ts_ns, &r.data).expect("writes to memory");
    }
    let out = w.finish().expect("writes to memory");
    let (lt, again) = crate::pcap::parse(&out).expect("written file reads");
    assert_eq!(lt, linktype);
    assert_eq!(again.len(), records.len());
    for (a, b) in again.iter().zip(&records) {
        assert_eq!(a.data, b.data, "record bytes after a write");
        // The format's seconds are 32 bits: later times cannot be written (year 2106).
        if b.ts_ns / 1_000_000_000 <= u64::from(u32::MAX) {
            assert_eq!(a.ts_ns, b.ts_ns, "timestamp after a write");
        }
    }
}

/// Our MAC on the fuzzed link.
const MAC: Mac = [0x02, 0, 0x5e, 0, 0x53, 1];

/// ARP and Neighbour Discovery on one TAP link: `[limits, records..]`. A record's control
/// byte, bits 3-4: 0 a frame read from the device, 1 an IP packet the engine sends (the
/// next hop in the first 4 or 16 bytes, by bit 5), 2 the timers run, 3 a frame and the
/// timers.
///
/// Checked: the neighbour cache stays within its bound; an IP packet handed up lies inside
/// the frame, after the Ethernet header; every frame sent is Ethernet from our MAC, and
/// carries either a packet the engine passed or what the link makes itself: ARP from our
/// MAC and address, or an NS/NA with a valid checksum and hop limit 255; the stateless fast
/// path agrees with the full handler.
pub fn l2(data: &[u8]) {
    let Some((&lim, rest)) = data.split_first() else {
        return;
    };
    let limits = L2Limits {
        max_probes: 1 + (lim & 3),
        queue_len: 1 + usize::from(lim >> 2 & 3),
        max_entries: 1 + usize::from(lim >> 4),
        ..L2Limits::default()
    };
    let addrs: Vec<ipnet::IpNet> = ["192.0.2.1/24", "2001:db8:1::1/64"]
        .iter()
        .map(|a| a.parse().expect("address"))
        .collect();
    let mut link = L2Iface::new(MAC, &addrs, limits.clone());
    let mut now = Instant::from_secs(1_000);
    // What the engine asked to send: any bytes, framed as they are (only what the link
    // makes itself is held to the ND rules).
    let mut passed: std::collections::HashSet<Vec<u8>> = Default::default();
    for (ctl, bytes) in wire::fuzzing::records(rest) {
        now = now + l3proto::fuzzing::step(ctl);
        match ctl >> 3 & 3 {
            1 => {
                let (hop, packet) = next_hop(bytes, ctl & 0x20 != 0);
                passed.insert(packet.to_vec());
                link.send_ip(now, hop, packet);
            }
            2 => link.handle_timeout(now),
            k => {
                let fast = l2::ip_for_us(MAC, bytes);
                match link.handle_frame(now, bytes) {
                    l2::Rx::Ip(p) => {
                        let inside = bytes.len() >= l2::ETH_HEADER_LEN
                            && p.len() <= bytes.len() - l2::ETH_HEADER_LEN
                            && bytes[l2::ETH_HEADER_LEN..].starts_with(p);
                        assert!(inside, "IP packet not from the frame's payload");
                        if let Some(f) = fast {
                            assert_eq!(f, p, "fast path and handler disagree");
                        }
                    }
                    other => assert!(
                        fast.is_none(),
                        "fast path took a frame handled as {other:?}"
                    ),
                }
                if k == 3 {
                    link.handle_timeout(now);
                }
            }
        }
        assert!(
            link.neighbour_count() <= limits.max_entries,
            "{} neighbours, max {}",
            link.neighbour_count(),
            limits.max_entries
        );
        while let Some(f) = link.poll_frame() {
            check_sent_frame(&f, &passed);
        }
        if let Some(t) = link.poll_timeout() {
            assert!(t > Instant::ZERO);
        }
    }
}

/// A next hop from the first bytes of a record, and the packet after them.
fn next_hop(b: &[u8], v6: bool) -> (IpAddr, &[u8]) {
    let n = if v6 { 16 } else { 4 };
    let mut a = [0u8; 16];
    let k = n.min(b.len());
    a[..k].copy_from_slice(&b[..k]);
    let hop = if v6 {
        IpAddr::from(a)
    } else {
        IpAddr::from([a[0], a[1], a[2], a[3]])
    };
    (hop, &b[k..])
}

fn check_sent_frame(f: &[u8], passed: &std::collections::HashSet<Vec<u8>>) {
    let eth = wire::EthernetFrame::new_checked(f).expect("sent frame has an Ethernet header");
    assert_eq!(eth.src_addr(), MAC, "sent frame not from our MAC");
    if passed.contains(eth.payload()) {
        return;
    }
    match eth.ethertype() {
        l2::ETHERTYPE_ARP => {
            let a = wire::ArpPacket::new_checked(eth.payload()).expect("sent ARP parses");
            assert_eq!(a.sender_hw_addr(), MAC, "ARP not from our MAC");
            assert_eq!(
                a.sender_proto_addr(),
                std::net::Ipv4Addr::new(192, 0, 2, 1),
                "ARP from another address"
            );
        }
        l2::ETHERTYPE_IPV6 => {
            let ip = wire::Ipv6Packet::new_checked(eth.payload()).expect("made IPv6 parses");
            assert_eq!(
                ip.next_header(),
                wire::proto::ICMPV6,
                "made IPv6 other than ND"
            );
            let m = wire::Icmpv6Packet::new_checked(ip.payload()).expect("made ICMPv6 parses");
            assert!(
                matches!(m.msg_type(), 135 | 136),
                "made ICMPv6 other than NS/NA"
            );
            assert!(
                m.verify_checksum(&ip.src_addr(), &ip.dst_addr()),
                "ND message with a bad checksum"
            );
            assert_eq!(ip.hop_limit(), 255, "ND hop limit (RFC 4861)");
        }
        other => panic!("made a frame of EtherType {other:#06x}"),
    }
}

/// The gateway the engine harness runs: three links of different MTUs (one TAP), IPv4 and
/// IPv6 on each, default routes out of `wan0`; the settings byte picks UDP mapping
/// behaviour, checksum verification and TCP tracking options.
fn engine_config(settings: u8) -> String {
    let eim = settings & 1 != 0;
    format!(
        r#"
[[interface]]
name = "lan0"
kind = "tun"
mtu = 1500
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]

[[interface]]
name = "wan0"
kind = "tun"
mtu = 1280
addresses = ["198.51.100.1/24", "2001:db8:2::1/64"]

[[interface]]
name = "dmz0"
kind = "tap"
mtu = 1400
addresses = ["203.0.113.1/24", "2001:db8:3::1/64"]

[[route]]
prefix = "0.0.0.0/0"
interface = "wan0"
via = "198.51.100.254"

[[route]]
prefix = "::/0"
interface = "wan0"
via = "2001:db8:2::fe"

[conntrack]
max = {max}
checksum = {checksum}
tcp_loose = {loose}
tcp_be_liberal = {liberal}

[nat]
udp_mapping = "{mapping}"
udp_filtering = "{filtering}"
udp_refresh = "{refresh}"

[defrag]
memory_high = 65536
memory_low = 32768
max_datagrams = 8
per_source = 4
time_exceeded = {time_exceeded}
"#,
        max = 4 + usize::from(settings >> 5) * 8,
        checksum = settings & 2 == 0,
        loose = settings & 4 == 0,
        liberal = settings & 8 != 0,
        mapping = if eim {
            "endpoint-independent"
        } else {
            "address-and-port-dependent"
        },
        filtering = if eim && settings & 16 != 0 {
            "endpoint-independent"
        } else {
            "address-and-port-dependent"
        },
        refresh = if settings & 16 != 0 {
            "outbound"
        } else {
            "both"
        },
        time_exceeded = settings & 2 != 0,
    )
}

/// The IPv4 ruleset of the engine harness: every table, NAT of each kind, TCPMSS, REJECT of
/// each kind, string matches, stateful matches, zones, marks and TRACE.
pub const ENGINE_RULES_V4: &str = r#"*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -i dmz0 -j CT --zone 1
-A PREROUTING -p udp -m udp --dport 9 -j NOTRACK
-A PREROUTING -p tcp -m tcp --dport 7 -j TRACE
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 22 -j MARK --set-xmark 0x1/0xffffffff
-A PREROUTING -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff
-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu
-A POSTROUTING -o dmz0 -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1000
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i wan0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.10:80
-A PREROUTING -i wan0 -p udp -m udp --dport 5000:5010 -j DNAT --to-destination 203.0.113.10
-A PREROUTING -i lan0 -p udp -m udp --dport 53 -j REDIRECT --to-ports 53
-A POSTROUTING -s 192.0.2.0/24 -d 192.0.2.10/32 -p tcp -m tcp --dport 80 -j MASQUERADE
-A POSTROUTING -s 203.0.113.0/24 -o lan0 -p udp -j SNAT --to-source 192.0.2.1:1024-1030
-A POSTROUTING -s 203.0.113.0/24 -o lan0 -j SNAT --to-source 192.0.2.1
-A POSTROUTING -o wan0 -j MASQUERADE
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -m conntrack --ctstate INVALID -j DROP
-A INPUT -p icmp -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -m recent --set --name ssh --mask 255.255.255.255 --rsource -j ACCEPT
-A INPUT -p tcp -j REJECT --reject-with tcp-reset
-A INPUT -p udp -j REJECT --reject-with icmp-port-unreachable
-A INPUT -j REJECT --reject-with icmp-host-prohibited
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 80 -m string --string "GET /admin" --algo bm --to 65535 -j REJECT --reject-with tcp-reset
-A FORWARD -p udp -m string --hex-string "|07|example|03|com|00|" --algo kmp --from 28 --to 65535 -j DROP
-A FORWARD -m conntrack --ctstate DNAT -j ACCEPT
-A FORWARD -p tcp -m multiport --dports 80,443 -m connlimit --connlimit-above 3 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with tcp-reset
-A FORWARD -i lan0 -j ACCEPT
-A FORWARD -i dmz0 -m limit --limit 50/sec -j ACCEPT
-A FORWARD -p icmp -m icmp --icmp-type 8 -j REJECT --reject-with icmp-admin-prohibited
-A FORWARD -j REJECT --reject-with icmp-net-unreachable
COMMIT
"#;

/// The IPv6 ruleset of the engine harness (same shape as [`ENGINE_RULES_V4`]).
pub const ENGINE_RULES_V6: &str = r#"*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -i dmz0 -j CT --zone 1
-A PREROUTING -p udp -m udp --dport 9 -j NOTRACK
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i wan0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [2001:db8:1::10]:80
-A POSTROUTING -s 2001:db8:3::/64 -o wan0 -j NETMAP --to 2001:db8:2:ff::/64
-A POSTROUTING -o wan0 -j MASQUERADE
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p ipv6-icmp -j ACCEPT
-A INPUT -p tcp -j REJECT --reject-with tcp-reset
-A INPUT -j REJECT --reject-with icmp6-port-unreachable
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 80 -m string --string "GET /admin" --algo bm --to 65535 -j REJECT --reject-with tcp-reset
-A FORWARD -p udp -m hashlimit --hashlimit-upto 50/sec --hashlimit-burst 10 --hashlimit-mode srcip --hashlimit-name udp6 -j ACCEPT
-A FORWARD -i lan0 -j ACCEPT
-A FORWARD -i wan0 -j REJECT --reject-with icmp6-adm-prohibited
COMMIT
"#;

/// The whole engine: `[settings, records..]`, each record a packet arriving on the
/// interface its control byte's bits 4-5 name (3: the same packet on every interface);
/// bit 3 makes its checksums right first; bit 6 runs the engine's timers after it; bit 7
/// swaps in freshly loaded rulesets (a reload) before it.
///
/// Checked: no packet makes the engine panic, not even one it contains (`panics() == 0`);
/// every packet sent parses and leaves by an interface whose MTU it fits; events render.
pub fn engine(data: &[u8]) {
    let Some((&settings, rest)) = data.split_first() else {
        return;
    };
    let cfg = engine_config_parsed(settings);
    let mtus: Vec<usize> = cfg.interfaces.iter().map(|i| i.mtu as usize).collect();
    let (r4, r6) = engine_rules();
    let mut engine =
        Engine::with_rules(&cfg, u64::from(settings), r4, r6).expect("the harness's engine builds");
    let mut now = Instant::from_secs(1_000);
    for (ctl, bytes) in wire::fuzzing::records(rest) {
        now = now + l3proto::fuzzing::step(ctl);
        if ctl & 0x80 != 0 {
            let (r4, r6) = engine_rules();
            engine.set_rules(r4, r6);
        }
        let mut pkt = bytes.to_vec();
        if ctl & 8 != 0 {
            wire::fuzzing::fix_checksums(&mut pkt);
        }
        let ifaces = match ctl >> 4 & 3 {
            3 => 0..mtus.len(),
            i => usize::from(i)..usize::from(i) + 1,
        };
        for ingress in ifaces {
            engine.handle_packet(now, ingress, PacketBuf::from_slice(&pkt));
            assert_eq!(
                engine.panics(),
                0,
                "the engine panicked on a packet from interface {ingress}"
            );
        }
        if ctl & 0x40 != 0 {
            if let Some(t) = engine.poll_timeout() {
                now = now.max(t);
            }
            engine.handle_timeout(now);
            assert_eq!(engine.panics(), 0, "the engine panicked in its timers");
        }
        while let Some(tx) = engine.poll_transmit() {
            let p = tx.packet.as_slice();
            let mtu = *mtus.get(tx.iface).expect("sent on an existing interface");
            assert!(
                p.len() <= mtu,
                "{} bytes sent on a link of MTU {mtu}",
                p.len()
            );
            if let Err(e) = l3proto::parse(p) {
                panic!("sent a packet that does not parse ({e}): {p:02x?}");
            }
        }
        while let Some(ev) = engine.poll_event() {
            let _ = ev.to_json();
            if let Event::Drop(d) = &ev {
                assert!(!d.reason.as_str().is_empty(), "drop without a reason");
            }
        }
    }
    let _ = (engine.ct_stats(), engine.ct_list());
}

/// [`engine_config`] loaded, once per settings value: a configuration holds no state, and
/// parsing it for every input cost a tenth of the fuzzer's time.
fn engine_config_parsed(settings: u8) -> Config {
    thread_local! {
        static CONFIGS: std::cell::RefCell<std::collections::HashMap<u8, Config>> =
            Default::default();
    }
    CONFIGS.with(|c| {
        c.borrow_mut()
            .entry(settings)
            .or_insert_with(|| {
                Config::parse(
                    &engine_config(settings),
                    "fuzz.toml",
                    Path::new("/nonexistent"),
                )
                .expect("the harness's configuration loads")
            })
            .clone()
    })
}

/// The harness's rulesets, loaded afresh (match state such as `recent` lists lives in them).
fn engine_rules() -> (rules::Ruleset, rules::Ruleset) {
    let v4 = rules::Ruleset::parse(ENGINE_RULES_V4, "fuzz.v4.rules", rules::Family::V4)
        .unwrap_or_else(|e| panic!("the harness's IPv4 rules load: {e}"));
    let v6 = rules::Ruleset::parse(ENGINE_RULES_V6, "fuzz.v6.rules", rules::Family::V6)
        .unwrap_or_else(|e| panic!("the harness's IPv6 rules load: {e}"));
    (v4, v6)
}
