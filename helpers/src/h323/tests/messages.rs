//! Each walker on messages built for the test: the addresses in their order, where their
//! bytes are, the same results from any split of the bytes into segments, and a clean error
//! (or a shorter list) from every truncation.

use super::*;

/// Messages encoded by pycrate from values chosen for the test, in
/// `helpers/tests/data/h323/vectors.tsv` (`helpers/tests/h323_vectors.py` writes it; the fuzz
/// seeds come from it too).
const ENCODED: &str = include_str!("../../../tests/data/h323/vectors.tsv");

/// A message of the test: (name, walker, encoding in hex, the addresses in encoding order).
pub(crate) type Vector = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// The messages of the test.
pub(crate) static VECTORS: std::sync::LazyLock<Vec<Vector>> = std::sync::LazyLock::new(|| {
    WANT.iter()
        .map(|&(name, kind, want)| {
            let hex = ENCODED
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('\t'))
                .unwrap_or_else(|| panic!("{name} not in vectors.tsv"));
            (name, kind, hex, want)
        })
        .collect()
});

/// (name, walker, the addresses in encoding order).
const WANT: &[(&str, &str, &[&str])] = &[
    (
        "gatekeeperRequest",
        "ras",
        &["gatekeeperRequest.rasAddress=192.0.2.10:5000"],
    ),
    (
        "gatekeeperConfirm",
        "ras",
        &["gatekeeperConfirm.rasAddress=198.51.100.5:1719"],
    ),
    (
        "registrationRequest",
        "ras",
        &[
            "registrationRequest.callSignalAddress=192.0.2.10:1720",
            "registrationRequest.callSignalAddress=[2001:db8::10]:1720",
            "registrationRequest.rasAddress=192.0.2.10:5000",
        ],
    ),
    (
        "registrationConfirm",
        "ras",
        &["registrationConfirm.callSignalAddress=198.51.100.5:1720"],
    ),
    (
        "admissionRequest",
        "ras",
        &[
            "admissionRequest.destCallSignalAddress=203.0.113.7:1720",
            "admissionRequest.srcCallSignalAddress=192.0.2.10:1720",
        ],
    ),
    (
        "admissionConfirm",
        "ras",
        &["admissionConfirm.destCallSignalAddress=203.0.113.7:1720"],
    ),
    (
        "locationRequest",
        "ras",
        &["locationRequest.replyAddress=192.0.2.10:5000"],
    ),
    (
        "locationConfirm",
        "ras",
        &[
            "locationConfirm.callSignalAddress=[2001:db8:7::7]:1720",
            "locationConfirm.rasAddress=[2001:db8:7::7]:1719",
        ],
    ),
    (
        "olc_fast",
        "olc",
        &[
            "openLogicalChannel.mediaControlChannel=192.0.2.10:5001",
            "openLogicalChannel.mediaChannel=192.0.2.10:5000",
            "openLogicalChannel.mediaControlChannel=192.0.2.10:5001",
        ],
    ),
    (
        "msc_olc_t120_v6",
        "h245",
        &[
            "openLogicalChannel.mediaControlChannel=[2001:db8::10]:5003",
            "openLogicalChannel.separateStack=[2001:db8::10]:1503",
        ],
    ),
    (
        "msc_ack",
        "h245",
        &[
            "openLogicalChannelAck.mediaChannel=203.0.113.7:7000",
            "openLogicalChannelAck.mediaControlChannel=203.0.113.7:7001",
        ],
    ),
    (
        "msc_ack_multicast",
        "h245",
        &["openLogicalChannelAck.mediaChannel=233.252.0.1:6000 multicast"],
    ),
    ("msc_tcs", "h245", &[]),
    (
        "setup",
        "uuie",
        &[
            "setup.h245Address=192.0.2.10:1300",
            "setup.destCallSignalAddress=203.0.113.7:1720",
            "setup.sourceCallSignalAddress=192.0.2.10:40000",
            "openLogicalChannel.mediaControlChannel=192.0.2.10:5001",
            "openLogicalChannel.mediaChannel=192.0.2.10:5000",
            "openLogicalChannel.mediaControlChannel=192.0.2.10:5001",
        ],
    ),
    (
        "callProceeding",
        "uuie",
        &["callProceeding.h245Address=203.0.113.7:1301"],
    ),
    (
        "alerting_v6",
        "uuie",
        &["alerting.h245Address=[2001:db8:7::7]:1302"],
    ),
    (
        "connect",
        "uuie",
        &[
            "connect.h245Address=203.0.113.7:1303",
            "openLogicalChannel.mediaControlChannel=192.0.2.10:5001",
            "openLogicalChannel.mediaChannel=192.0.2.10:5000",
            "openLogicalChannel.mediaControlChannel=192.0.2.10:5001",
        ],
    ),
    (
        "facility",
        "uuie",
        &[
            "facility.alternativeAddress=203.0.113.99:1720",
            "facility.h245Address=203.0.113.7:1304",
        ],
    ),
    (
        "progress",
        "uuie",
        &[
            "progress.h245Address=203.0.113.7:1305",
            "openLogicalChannel.mediaControlChannel=192.0.2.10:5001",
            "openLogicalChannel.mediaChannel=192.0.2.10:5000",
            "openLogicalChannel.mediaControlChannel=192.0.2.10:5001",
        ],
    ),
    (
        "information_tunnel",
        "uuie",
        &[
            "openLogicalChannelAck.mediaChannel=203.0.113.7:7000",
            "openLogicalChannelAck.mediaControlChannel=203.0.113.7:7001",
        ],
    ),
    ("releaseComplete", "uuie", &[]),
];

pub(crate) fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// An H323-UserInformation inside a Q.931 SETUP inside a TPKT; the UUIE starts at byte
/// [`UUIE_AT`] of the frame.
pub(crate) fn q931_frame(uuie: &[u8]) -> Vec<u8> {
    let mut q = vec![0x08, 0x02, 0x12, 0x34, 0x05]; // discriminator, CRV, SETUP
    q.extend_from_slice(&[0x04, 0x03, 0x80, 0x90, 0xa5]); // Bearer capability
    q.push(0xa1); // a single-octet element
    let len = uuie.len() + 1;
    q.extend_from_slice(&[0x7e, (len >> 8) as u8, len as u8, 0x05]);
    q.extend_from_slice(uuie);
    let total = q.len() + 4;
    let mut t = vec![3, 0, (total >> 8) as u8, total as u8];
    t.extend_from_slice(&q);
    t
}

/// Where the UUIE starts in a [`q931_frame`].
pub(crate) const UUIE_AT: usize = 4 + 11 + 4;

/// A TPKT around an H.245 message.
pub(crate) fn tpkt(msg: &[u8]) -> Vec<u8> {
    let total = msg.len() + 4;
    let mut t = vec![3, 0, (total >> 8) as u8, total as u8];
    t.extend_from_slice(msg);
    t
}

/// The bytes a walker of `kind` reads for a vector: a Q.931 frame for a UUIE.
pub(crate) fn bytes_of(kind: &str, encoded: &str) -> Vec<u8> {
    match kind {
        "uuie" => q931_frame(&hex(encoded)),
        _ => hex(encoded),
    }
}

/// Runs the walker of `kind` over `parts`.
pub(crate) fn walk(kind: &str, parts: &[&[u8]]) -> Result<Walk, per::PerError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut w = Walk::default();
    match kind {
        "ras" => ras::walk(&mut PerReader::new(parts), &mut w).map(drop),
        "h245" => h245::walk(&mut PerReader::new(parts), &mut w).map(drop),
        "olc" => h245::olc(&mut PerReader::new(parts), &mut w),
        "uuie" => q931::walk_message(parts, 0, len, &mut w).map(drop),
        _ => unreachable!(),
    }?;
    Ok(w)
}

fn render(f: &Found) -> String {
    format!(
        "{}.{}={}{}",
        f.msg.name(),
        f.field.name(),
        std::net::SocketAddr::new(f.addr.ip, f.addr.port),
        if f.addr.multicast { " multicast" } else { "" }
    )
}

#[test]
fn each_message_gives_its_addresses_where_its_bytes_are() {
    for &(name, kind, encoded, want) in VECTORS.iter() {
        let bytes = bytes_of(kind, encoded);
        let w = walk(kind, &[&bytes]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(w.inner_errors.is_empty(), "{name}: {:?}", w.inner_errors);
        let got: Vec<String> = w.found.iter().map(render).collect();
        assert_eq!(got, want, "{name}");
        for f in &w.found {
            assert_eq!(
                bytes[f.addr.at..f.addr.at + f.addr.len()],
                nat::nat_format(0, f.addr.ip, f.addr.port),
                "{name}: {}",
                render(f)
            );
        }
    }
}

#[test]
fn any_split_into_segments_reads_the_same() {
    for &(name, kind, encoded, _) in VECTORS.iter() {
        let bytes = bytes_of(kind, encoded);
        let whole = walk(kind, &[&bytes]).unwrap().found;
        for a in 0..=bytes.len() {
            let b = (a + 3).min(bytes.len());
            let parts: [&[u8]; 3] = [&bytes[..a], &bytes[a..b], &bytes[b..]];
            let split = walk(kind, &parts).unwrap_or_else(|e| panic!("{name} cut at {a}: {e}"));
            assert_eq!(split.found, whole, "{name} cut at {a}");
        }
    }
}

#[test]
fn every_truncation_fails_cleanly_or_reads_less() {
    for &(name, kind, encoded, _) in VECTORS.iter() {
        let whole = hex(encoded);
        let full = walk(kind, &[&bytes_of(kind, encoded)]).unwrap().found;
        for n in 0..whole.len() {
            let cut = &whole[..n];
            let bytes = match kind {
                // The UUIE is cut, its frame says how long it is.
                "uuie" => q931_frame(cut),
                _ => cut.to_vec(),
            };
            match walk(kind, &[&bytes]) {
                Err(_) => {}
                // A walker stops after the last address it needs: a cut past it loses
                // nothing, an earlier one only addresses (H.245 messages inside keep theirs
                // or are dropped whole).
                Ok(w) => assert!(
                    w.found.iter().all(|f| full.iter().any(|g| {
                        (g.msg, g.field, g.addr.ip, g.addr.port)
                            == (f.msg, f.field, f.addr.ip, f.addr.port)
                    })),
                    "{name} cut to {n}: {:?}",
                    w.found
                ),
            }
        }
    }
}

#[test]
fn a_broken_embedded_h245_message_is_skipped_and_reported() {
    // Setup's fastStart holds one OLC, in an octet string whose length still holds when
    // the OLC inside is spoilt: the rest of the Setup reads on.
    let (_, _, encoded, _) = VECTORS.iter().find(|v| v.0 == "setup").unwrap();
    let mut uuie = hex(encoded);
    let olc = hex(VECTORS.iter().find(|v| v.0 == "olc_fast").unwrap().2);
    let at = uuie
        .windows(olc.len())
        .position(|w| w == &olc[..])
        .expect("the OLC is in the Setup");
    // Octet 7 is the length of the open type of the forward h2250LogicalChannelParameters
    // (an extension alternative): make it claim more octets than the OLC has.
    assert_eq!(uuie[at + 7], 0x0b);
    uuie[at + 7] = 0x7f;
    let w = walk("uuie", &[&q931_frame(&uuie)]).unwrap();
    assert_eq!(w.inner_errors.len(), 1, "{:?}", w.inner_errors);
    let fields: Vec<_> = w.found.iter().map(|f| f.field).collect();
    assert_eq!(
        fields,
        [
            Field::H245Address,
            Field::DestCallSignalAddress,
            Field::SourceCallSignalAddress
        ],
        "the Setup's own addresses stay, the broken OLC gives none"
    );
}
