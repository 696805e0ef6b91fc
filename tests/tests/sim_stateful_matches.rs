//! `-m recent` and `-m hashlimit` in the simulator: state kept across packets, per address,
//! on the simulator's virtual clock.

use tests::flags::*;
use tests::*;

fn at(iface: &'static str, at: f64, packet: Vec<u8>) -> Arrival {
    Arrival { iface, at, packet }
}

fn filter(rules: &str) -> String {
    format!(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{rules}COMMIT\n"
    )
}

/// The ssh brute-force guard: a source may open three connections per minute; the fourth
/// and fifth SYN are dropped (each drop refreshes the list); after a quiet minute it may
/// connect again. Another source is not affected.
#[test]
fn recent_drops_a_source_that_connects_too_often() {
    let rules = filter(
        "-A FORWARD -p tcp -m tcp --dport 22 --tcp-flags FIN,SYN,RST,ACK SYN \
         -m recent --update --seconds 60 --hitcount 3 --name ssh --mask 255.255.255.255 \
         --rsource -j DROP\n\
         -A FORWARD -p tcp -m tcp --dport 22 --tcp-flags FIN,SYN,RST,ACK SYN \
         -m recent --set --name ssh --mask 255.255.255.255 --rsource -j ACCEPT\n",
    );
    let sc = Scenario::gateway("recent", &rules, "");
    let (a, b, s) = ("192.0.2.2", "192.0.2.3", "203.0.113.10");
    let syn = |src: &str, sport: u16| tcp(src, sport, s, 22, 1, 0, SYN, b"");
    let out = sc.run(
        &[
            at("lan0", 0.0, syn(a, 40001)),
            at("lan0", 1.0, syn(a, 40002)),
            at("lan0", 2.0, syn(a, 40003)),
            at("lan0", 3.0, syn(a, 40004)),
            at("lan0", 4.0, syn(b, 40001)),
            at("lan0", 30.0, syn(a, 40005)),
            at("lan0", 91.0, syn(a, 40006)),
        ],
        None,
    );
    let ports: Vec<(u8, u16)> = out
        .on("wan0")
        .iter()
        .map(|p| (p[15], u16::from_be_bytes([p[20], p[21]])))
        .collect();
    assert_eq!(
        ports,
        [(2, 40001), (2, 40002), (2, 40003), (3, 40001), (2, 40006)],
        "{:#?}",
        out.events
    );
    let drops = out.events_with(&["\"type\":\"drop\"", "\"chain\":\"FORWARD\"", "\"rule\":1,"]);
    assert_eq!(drops.len(), 2);
}

/// 5 packets per second per source with a burst of 5: a flood from one source is cut to
/// its burst, then to its rate; a second source has its own bucket.
#[test]
fn hashlimit_limits_each_source_separately() {
    let rules = filter(
        "-A FORWARD -p udp -m hashlimit --hashlimit-above 5/sec --hashlimit-burst 5 \
         --hashlimit-mode srcip --hashlimit-name flood -j DROP\n",
    );
    let sc = Scenario::gateway("hashlimit", &rules, "");
    let (a, b, s) = ("192.0.2.2", "192.0.2.3", "203.0.113.10");
    let mut arrivals = Vec::new();
    for i in 0..10u8 {
        arrivals.push(at("lan0", 0.0, udp(a, 5000, s, 53, &[b'a', i])));
    }
    for i in 0..3u8 {
        arrivals.push(at("lan0", 0.0, udp(b, 5000, s, 53, &[b'b', i])));
    }
    // One second later five tokens are back: five pass, the sixth does not.
    for i in 10..16u8 {
        arrivals.push(at("lan0", 1.0, udp(a, 5000, s, 53, &[b'a', i])));
    }
    let out = sc.run(&arrivals, None);
    let sent: Vec<(u8, u8)> = out
        .on("wan0")
        .iter()
        .map(|p| (p[p.len() - 2], p[p.len() - 1]))
        .collect();
    let from_a: Vec<u8> = sent.iter().filter(|s| s.0 == b'a').map(|s| s.1).collect();
    let from_b = sent.iter().filter(|s| s.0 == b'b').count();
    assert_eq!(
        from_a,
        [0, 1, 2, 3, 4, 10, 11, 12, 13, 14],
        "{:#?}",
        out.events
    );
    assert_eq!(from_b, 3);
}
