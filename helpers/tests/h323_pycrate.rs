//! Differential test of the H.323 walkers against pycrate, an independent PER codec: random
//! RAS, H.225.0 call signalling and H.245 messages with random optional components,
//! extension additions and choices, encoded by pycrate's H225/H245 modules
//! (`h323_pycrate.py`), must give the walkers the very addresses pycrate put in the fields
//! they read. Each message is also read from a chain of three segments cut at varying
//! places, and call signalling messages inside a TPKT and Q.931 frame.
//!
//! Needs python3 with pycrate (`pip install pycrate`; scripts/test-all.sh installs it).
//! Without them the test is skipped, except under CI=true, where it fails.

use helpers::h323::per::PerReader;
use helpers::h323::{h245, q931, ras, Walk};
use std::net::IpAddr;
use std::process::Command;

/// Messages per run, and the seeds: a few thousand messages take seconds in pycrate.
const COUNT: usize = 1500;
const SEEDS: [u64; 2] = [1, 2026];

fn pycrate_available() -> bool {
    Command::new("python3")
        .args(["-c", "import pycrate_asn1dir.H225, pycrate_asn1dir.H245"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// `message.field=address/port[/m]`, as the script writes them.
fn render(w: &Walk) -> Vec<String> {
    let mut v: Vec<String> = w
        .found
        .iter()
        .map(|f| {
            let ip = match f.addr.ip {
                IpAddr::V4(a) => a.to_string(),
                IpAddr::V6(a) => a.to_string(),
            };
            let m = if f.addr.multicast { "/m" } else { "" };
            format!(
                "{}.{}={ip}/{}{m}",
                f.msg.name(),
                f.field.name(),
                f.addr.port
            )
        })
        .collect();
    v.sort();
    v
}

/// Wraps an H323-UserInformation in a Q.931 SETUP inside a TPKT, as on TCP 1720.
fn q931_frame(uuie: &[u8]) -> Vec<u8> {
    let mut q = vec![0x08, 0x02, 0x12, 0x34, 0x05]; // discriminator, CRV, SETUP
    q.extend_from_slice(&[0x04, 0x03, 0x80, 0x90, 0xa5]); // Bearer capability
    q.extend_from_slice(&[0xa1]); // a single-octet element (Sending complete)
    let len = uuie.len() + 1;
    q.extend_from_slice(&[0x7e, (len >> 8) as u8, len as u8, 0x05]);
    q.extend_from_slice(uuie);
    let total = q.len() + 4;
    let mut t = vec![3, 0, (total >> 8) as u8, total as u8];
    t.extend_from_slice(&q);
    t
}

/// Runs the walker of `kind` over `bytes` cut into three segments at `a` and `b`.
fn walk(kind: &str, bytes: &[u8], a: usize, b: usize) -> Result<Walk, String> {
    let (a, b) = (
        a.min(bytes.len()),
        b.min(bytes.len()).max(a.min(bytes.len())),
    );
    let parts: [&[u8]; 3] = [&bytes[..a], &bytes[a..b], &bytes[b..]];
    let mut w = Walk::default();
    let res = match kind {
        "ras" => ras::walk(&mut PerReader::new(&parts), &mut w).map(drop),
        "h245" => h245::walk(&mut PerReader::new(&parts), &mut w).map(drop),
        "uuie" => q931::walk_message(&parts, 0, bytes.len(), &mut w).map(drop),
        _ => unreachable!("kind {kind}"),
    };
    res.map_err(|e| e.to_string())?;
    if !w.inner_errors.is_empty() {
        return Err(format!("embedded: {:?}", w.inner_errors));
    }
    Ok(w)
}

#[test]
fn the_walkers_read_what_pycrate_encodes() {
    if !pycrate_available() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 with pycrate is required under CI (pip install pycrate)"
        );
        eprintln!("skipped: python3 with pycrate not found (pip install pycrate)");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h323_pycrate.py");
    let (mut messages, mut addresses) = (0, 0);
    for seed in SEEDS {
        let out = Command::new("python3")
            .arg(script)
            .arg(COUNT.to_string())
            .arg(seed.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        for (n, line) in text.lines().enumerate() {
            let c: Vec<&str> = line.split('\t').collect();
            let (kind, data) = (c[0], hex(c[1]));
            let mut want: Vec<String> = c[2]
                .split(';')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            want.sort();
            let bytes = if kind == "uuie" {
                q931_frame(&data)
            } else {
                data.clone()
            };
            let cut = (n * 7) % (bytes.len() + 1);
            let got = walk(kind, &bytes, cut, cut + n % 5)
                .unwrap_or_else(|e| panic!("seed {seed} line {n} ({kind} {}): {e}", c[1]));
            assert_eq!(render(&got), want, "seed {seed} line {n}: {kind} {}", c[1]);
            messages += 1;
            addresses += want.len();
        }
    }
    assert_eq!(messages, COUNT * SEEDS.len());
    // The generator puts addresses in about half the messages.
    assert!(addresses > COUNT / 2, "{addresses} addresses");
}
