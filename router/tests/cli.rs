//! The `tunfilter` binary: `check` and `sim` as a user runs them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tunfilter"))
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tunfilter-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const CONFIG: &str = r#"
[[interface]]
name = "lan0"
kind = "tun"
addresses = ["192.168.1.1/24", "192.0.2.1/24"]

[[interface]]
name = "wan0"
kind = "tun"
addresses = ["198.51.100.1/24"]

[[route]]
prefix = "0.0.0.0/0"
interface = "wan0"

[rules]
ipv4 = "gw.rules"
"#;

const RULES: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i lan0 -j ACCEPT
COMMIT
";

#[test]
fn check_accepts_a_good_config_and_names_the_position_of_errors() {
    let d = tmpdir("check");
    std::fs::write(d.join("gw.toml"), CONFIG).unwrap();
    std::fs::write(d.join("gw.rules"), RULES).unwrap();
    let ok = bin()
        .arg("check")
        .arg("--config")
        .arg(d.join("gw.toml"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok (2 interfaces, 1 routes)"));

    std::fs::write(
        d.join("gw.rules"),
        RULES.replace("-i lan0", "-i lan0 --bogus"),
    )
    .unwrap();
    let bad = bin()
        .arg("check")
        .arg("--config")
        .arg(d.join("gw.toml"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("gw.rules:6:"), "{err}");
    assert!(err.contains("--bogus"), "{err}");

    std::fs::write(
        d.join("gw.toml"),
        CONFIG.replace(
            "kind = \"tun\"\naddresses = [\"198",
            "kind = \"tunnel\"\naddresses = [\"198",
        ),
    )
    .unwrap();
    let bad = bin()
        .arg("check")
        .arg("--config")
        .arg(d.join("gw.toml"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("gw.toml:9:8: expected \"tun\" or \"tap\""),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// `[process] user` names an account that must exist: `check` says so at the key, before a
/// `run` would have created the devices.
#[test]
fn check_reports_an_unknown_process_user_at_its_key() {
    let d = tmpdir("user");
    std::fs::write(d.join("gw.rules"), RULES).unwrap();
    let check = |config: &str| {
        std::fs::write(d.join("gw.toml"), config).unwrap();
        bin()
            .arg("check")
            .arg("--config")
            .arg(d.join("gw.toml"))
            .output()
            .unwrap()
    };
    let bad = check(&format!(
        "{CONFIG}\n[process]\nuser = \"tf-no-such-user\"\n"
    ));
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    let want = format!(
        "{}:20:8: no user named \"tf-no-such-user\" on this system",
        d.join("gw.toml").display()
    );
    assert!(err.contains(&want), "{err}");
    let bad = check(&format!(
        "{CONFIG}\n[process]\nuser = \"root\"\ngroup = \"tf-no-such-group\"\n"
    ));
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("gw.toml:21:9: group \"tf-no-such-group\""),
        "{err}"
    );
    let ok = check(&format!("{CONFIG}\n[process]\nuser = \"root\"\n"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// A capture from the repository's test data (`tests/data/pcap/`, origins in its README).
fn test_pcap(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/pcap")
        .join(name);
    assert!(p.exists(), "{} is part of the repository", p.display());
    p
}

/// A real FTP session (Ethernet capture) replayed through the gateway: the
/// client side arrives on lan0, so every packet of it is forwarded and the
/// connections appear in the final table.
#[test]
fn sim_replays_a_real_capture_and_is_deterministic() {
    let pcap = test_pcap("ndpi-ftp.pcap");
    let d = tmpdir("sim");
    std::fs::write(d.join("gw.toml"), CONFIG).unwrap();
    std::fs::write(
        d.join("gw.rules"),
        RULES.replace(":FORWARD DROP", ":FORWARD ACCEPT"),
    )
    .unwrap();
    let run = |out: &str| {
        let o = bin()
            .arg("sim")
            .arg("--config")
            .arg(d.join("gw.toml"))
            .arg("--in")
            .arg(format!("lan0={}", pcap.display()))
            .arg("--out")
            .arg(d.join(out))
            .arg("--until")
            .arg("1000000")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let summary = run("a");
    assert!(summary.starts_with("simulated "), "{summary}");
    let events = std::fs::read_to_string(d.join("a/events.jsonl")).unwrap();
    assert!(
        events
            .lines()
            .any(|l| l.contains("\"type\":\"new\"") && l.contains("\"dport\":21")),
        "an FTP control connection is tracked"
    );
    // After the --until horizon every connection has expired.
    assert!(events
        .lines()
        .any(|l| l.contains("\"type\":\"destroy\"") && l.contains("\"reason\":\"timeout\"")));
    run("b");
    for f in ["events.jsonl", "conntrack.txt", "stats.txt", "rules-v4.txt"] {
        assert_eq!(
            std::fs::read(d.join("a").join(f)).unwrap(),
            std::fs::read(d.join("b").join(f)).unwrap(),
            "{f}"
        );
    }
    let bad = bin()
        .args(["sim", "--config"])
        .arg(d.join("gw.toml"))
        .args(["--in", "eth9=x.pcap", "--out"])
        .arg(d.join("c"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no interface named \"eth9\""));
    let _ = std::fs::remove_dir_all(&d);
}

/// A rule file that cannot be read (missing, a directory, endless like /dev/zero) is reported
/// at the config key that names it; bytes that are not UTF-8 are reported at their own line and
/// column, in the config or in the rules.
#[test]
fn check_reports_bad_files_with_the_position_of_the_problem() {
    let d = tmpdir("files");
    let check = |cfg: &str| {
        std::fs::write(d.join("gw.toml"), cfg).unwrap();
        let t0 = std::time::Instant::now();
        let o = bin()
            .arg("check")
            .arg("--config")
            .arg(d.join("gw.toml"))
            .output()
            .unwrap();
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "check took too long"
        );
        assert_eq!(o.status.code(), Some(1), "{cfg}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // CONFIG's `ipv4 = "gw.rules"` is on line 17, the value at column 8.
    let e = check(CONFIG);
    assert!(
        e.contains("gw.toml:17:8: [rules] ipv4: ") && e.contains("No such file or directory"),
        "{e}"
    );
    assert!(e.contains("gw.rules: cannot read the ruleset"), "{e}");

    std::fs::create_dir_all(d.join("gw.rules")).unwrap();
    let e = check(CONFIG);
    assert!(
        e.contains("gw.toml:17:8: [rules] ipv4: ") && e.contains("Is a directory"),
        "{e}"
    );
    std::fs::remove_dir(d.join("gw.rules")).unwrap();

    let e = check(&CONFIG.replace("\"gw.rules\"", "\"/dev/zero\""));
    assert!(
        e.contains(
            "gw.toml:17:8: [rules] ipv4: /dev/zero: cannot read the ruleset: larger than 64 MiB"
        ),
        "{e}"
    );

    let mut bad = RULES.as_bytes().to_vec();
    let at = RULES.find("-i lan0").unwrap() + 4;
    bad[at] = 0xe9; // Latin-1 'é': not UTF-8
    std::fs::write(d.join("gw.rules"), &bad).unwrap();
    let e = check(CONFIG);
    assert!(
        e.contains("gw.rules:6:16: invalid UTF-8 (byte 0xe9)"),
        "{e}"
    );

    std::fs::write(d.join("gw.rules"), RULES).unwrap();
    let mut cfg = CONFIG.as_bytes().to_vec();
    let at = CONFIG.find("\"wan0\"").unwrap() + 2;
    cfg[at] = 0xff;
    std::fs::write(d.join("gw.toml"), &cfg).unwrap();
    let o = bin()
        .arg("check")
        .arg("--config")
        .arg(d.join("gw.toml"))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("gw.toml:8:10: invalid UTF-8 (byte 0xff)"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

/// A pcap of UDP datagrams 192.0.2.2:(40000 + i) → 198.51.100.2:53, one per timestamp
/// (seconds, fraction); `ns` selects the nanosecond format.
fn hostile_pcap(path: &Path, stamps: &[(u32, u32)], ns: bool) {
    let magic: u32 = if ns { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
    let mut f = Vec::new();
    for v in [
        magic.to_le_bytes(),
        [2, 0, 4, 0],
        [0; 4],
        [0; 4],
        65535u32.to_le_bytes(),
    ] {
        f.extend_from_slice(&v);
    }
    f.extend_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW
    for (i, &(sec, frac)) in stamps.iter().enumerate() {
        let mut p = vec![
            0x45, 0, 0, 29, 0, 1, 0, 0, 64, 17, 0, 0, 192, 0, 2, 2, 198, 51, 100, 2,
        ];
        let ck = ip_checksum(&p);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
        p.extend_from_slice(&(40000 + i as u16).to_be_bytes());
        p.extend_from_slice(&[0, 53, 0, 9, 0, 0, b'x']); // UDP checksum 0: none
        for v in [sec, frac, p.len() as u32, p.len() as u32] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f.extend_from_slice(&p);
    }
    std::fs::write(path, f).unwrap();
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut s: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Runs `tunfilter sim` on one input and fails if it has not finished within a minute (the
/// hang this guards against was forever). Returns (success, stdout, stderr).
fn sim_guarded(d: &Path, pcap: &Path, out: &str, until: Option<&str>) -> (bool, String, String) {
    let mut cmd = bin();
    cmd.arg("sim")
        .arg("--config")
        .arg(d.join("gw.toml"))
        .arg("--in")
        .arg(format!("lan0={}", pcap.display()))
        .arg("--out")
        .arg(d.join(out));
    if let Some(u) = until {
        cmd.args(["--until", u]);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t0.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tunfilter sim on {} ran for a minute: hung", pcap.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// (timestamp ns, UDP source port) of the datagrams a sim wrote to wan0.pcap, in file order.
fn forwarded(dir: &Path) -> Vec<(u64, u16)> {
    let bytes = std::fs::read(dir.join("wan0.pcap")).unwrap();
    let (_, recs) = router::pcap::parse(&bytes).unwrap();
    recs.iter()
        .map(|r| (r.ts_ns, u16::from_be_bytes([r.data[20], r.data[21]])))
        .collect()
}

/// Timestamps of zero, of the largest value a pcap holds, going backwards, or jumping from
/// 1970 to 2106 never hang the simulator: each run ends at once with every datagram
/// forwarded. Backwards stamps are replayed in file order at the previous record's time,
/// with a warning.
#[test]
fn sim_survives_hostile_timestamps() {
    let d = tmpdir("hostile");
    std::fs::write(
        d.join("gw.toml"),
        CONFIG.replace("\n[rules]\nipv4 = \"gw.rules\"\n", "\n"),
    )
    .unwrap();
    const MAX: u32 = u32::MAX;
    // (name, (seconds, fraction) per record, nanosecond format, --until)
    type Case<'a> = (&'a str, &'a [(u32, u32)], bool, Option<&'a str>);
    let cases: &[Case] = &[
        ("zero", &[(0, 0), (0, 0), (0, 0)], false, Some("100")),
        (
            "max-us",
            &[(MAX, 999_999), (MAX, 999_999)],
            false,
            Some("100"),
        ),
        // Fractions out of range are carried into the seconds, as libpcap's readers do.
        ("max-ns", &[(MAX, MAX), (MAX, MAX)], true, None),
        (
            "backwards",
            &[(1000, 0), (500, 0), (100, 0), (1000, 5)],
            false,
            None,
        ),
        ("jump", &[(0, 0), (1, 0), (MAX, 999_999)], false, None),
        ("jump-back", &[(MAX, 999_999), (0, 0), (1, 0)], false, None),
        ("until-forever", &[(0, 0), (1, 0)], false, Some("1e300")),
    ];
    for &(name, stamps, ns, until) in cases {
        let pcap = d.join(format!("{name}.pcap"));
        hostile_pcap(&pcap, stamps, ns);
        let (ok, stdout, stderr) = sim_guarded(&d, &pcap, name, until);
        assert!(ok, "{name}: {stderr}");
        assert!(
            stdout.contains(&format!("simulated {} packets", stamps.len())),
            "{name}: {stdout}"
        );
        let out = forwarded(&d.join(name));
        assert_eq!(out.len(), stamps.len(), "{name}: every datagram forwarded");
        let ports: Vec<u16> = out.iter().map(|o| o.1).collect();
        let in_order: Vec<u16> = (0..stamps.len() as u16).map(|i| 40000 + i).collect();
        assert_eq!(ports, in_order, "{name}: replayed in file order");
        assert!(
            out.windows(2).all(|w| w[0].0 <= w[1].0),
            "{name}: time never goes backwards: {out:?}"
        );
        let events = std::fs::read_to_string(d.join(name).join("events.jsonl")).unwrap();
        assert_eq!(
            events
                .lines()
                .filter(|l| l.contains("\"type\":\"new\""))
                .count(),
            stamps.len(),
            "{name}"
        );
        match name {
            "backwards" => {
                assert!(
                    stderr.contains("warning: 2 record(s) stamped earlier"),
                    "{stderr}"
                );
                assert!(stderr.contains("backwards.pcap: record 2"), "{stderr}");
                let ts: Vec<u64> = out.iter().map(|o| o.0).collect();
                let s = 1_000_000_000_000u64; // 1000 s
                assert_eq!(ts, [s, s, s, s + 5000], "held at 1000 s, then on");
            }
            "jump-back" => assert!(stderr.contains("warning: 2 record(s)"), "{stderr}"),
            _ => assert!(!stderr.contains("warning"), "{name}: {stderr}"),
        }
        if name == "jump" || name == "until-forever" {
            // The connections of the first datagrams timed out on the way (UDP: 30 s).
            assert!(
                events
                    .lines()
                    .any(|l| l.contains("\"type\":\"destroy\"") && l.contains("timeout")),
                "{name}: {events}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `rules list --family` keeps one family's save, even though both families' saves open
/// with the same "# Generated by" line.
#[test]
fn rules_list_by_family_from_a_config() {
    let d = tmpdir("rules-family");
    std::fs::write(
        d.join("gw.toml"),
        CONFIG.replace(
            "ipv4 = \"gw.rules\"",
            "ipv4 = \"gw.rules\"\nipv6 = \"gw6.rules\"",
        ),
    )
    .unwrap();
    std::fs::write(d.join("gw.rules"), RULES).unwrap();
    std::fs::write(
        d.join("gw6.rules"),
        RULES.replace("-i lan0 -j ACCEPT", "-i lan0 -p ipv6-icmp -j ACCEPT"),
    )
    .unwrap();
    let list = |family: &str| {
        let o = bin()
            .args(["rules", "list", "--family", family, "--config"])
            .arg(d.join("gw.toml"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let (v4, v6) = (list("4"), list("6"));
    assert!(v4.contains("-A FORWARD -i lan0 -j ACCEPT"), "{v4}");
    assert!(!v4.contains("ipv6-icmp"), "{v4}");
    assert!(
        v6.contains("-A FORWARD -i lan0 -p ipv6-icmp -j ACCEPT"),
        "{v6}"
    );
    assert!(!v6.contains("-A FORWARD -i lan0 -j ACCEPT"), "{v6}");
    let _ = std::fs::remove_dir_all(&d);
}
