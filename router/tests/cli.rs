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

fn shared_pcap(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/pcap")
        .join(name);
    p.exists().then_some(p)
}

/// A real FTP session (Ethernet capture) replayed through the gateway: the
/// client side arrives on lan0, so every packet of it is forwarded and the
/// connections appear in the final table.
#[test]
fn sim_replays_a_real_capture_and_is_deterministic() {
    let Some(pcap) = shared_pcap("ndpi-ftp.pcap") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "shared/data/pcap/ndpi-ftp.pcap missing under CI"
        );
        eprintln!("SKIPPING: shared test data not found");
        return;
    };
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
