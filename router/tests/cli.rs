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
