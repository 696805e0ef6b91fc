//! Live tests: the built `tunfilter` binary between network namespaces, with real programs
//! (ping, curl against `python3 -m http.server`, socat) on both sides.
//!
//! They need root and /dev/net/tun. Without them they are skipped with a message, except under
//! `CI=true`, where they fail: a CI that silently skips them would prove nothing.
//!
//! Every test uses its own namespaces and device names (derived from the process id and a test
//! tag), and a [`Lab`] guard stops tunfilter and the servers and deletes the namespaces and
//! files even when an assertion fails half-way.

mod common;

use common::*;
use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Config for a LAN (192.0.2.0/24, 2001:db8:1::/64) and a WAN (198.51.100.0/24,
/// 2001:db8:2::/64) link, both with default routes through tunfilter.
fn gateway_config(lab: &Lab, lan_kind: &str, wan_kind: &str) -> PathBuf {
    let (l, w) = (lab.name("l"), lab.name("w"));
    lab.write(
        "gw.rules",
        &format!(
            "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
         -A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT\n\
         -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
         -A FORWARD -i {l} -o {w} -j ACCEPT\n\
         COMMIT\n"
        ),
    );
    lab.write(
        "gw6.rules",
        &format!(
            "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
         -A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT\n\
         -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
         -A FORWARD -i {l} -o {w} -j ACCEPT\n\
         COMMIT\n"
        ),
    );
    lab.write(
        "gw.toml",
        &format!(
            r#"
[[interface]]
name = "{l}"
kind = "{lan_kind}"
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]
netns = "{l}"
peer_addresses = ["192.0.2.2/24", "2001:db8:1::2/64"]
peer_routes = ["default"]

[[interface]]
name = "{w}"
kind = "{wan_kind}"
addresses = ["198.51.100.1/24", "2001:db8:2::1/64"]
netns = "{w}"
peer_addresses = ["198.51.100.2/24", "2001:db8:2::2/64"]
peer_routes = ["default"]

[rules]
ipv4 = "gw.rules"
ipv6 = "gw6.rules"
"#
        ),
    )
}

/// The shared scenario: ping to and through the router in both families, a curl download
/// from a web server behind it, and unsolicited inbound connections dropped.
fn gateway_scenario(lan_kind: &str, wan_kind: &str, test: &str, workers: usize) {
    if !live_env() {
        return;
    }
    let mut lab = Lab::new(test);
    let lan = lab.netns("l");
    let wan = lab.netns("w");
    let cfg = gateway_config(&lab, lan_kind, wan_kind);
    lab.start(&cfg, workers);

    // To the router, both families, both sides.
    assert!(ping(&lan, "192.0.2.1"), "LAN -> router (v4)\n{}", lab.log());
    assert!(ping(&lan, "2001:db8:1::1"), "LAN -> router (v6)");
    assert!(ping(&wan, "198.51.100.1"), "WAN -> router (v4)");
    assert!(ping(&wan, "2001:db8:2::1"), "WAN -> router (v6)");
    // Through the router.
    assert!(ping(&lan, "198.51.100.2"), "LAN -> WAN host (v4)");
    assert!(ping(&lan, "2001:db8:2::2"), "LAN -> WAN host (v6)");

    // TCP: a real download through the stateful firewall.
    let www = lab.dir.join("www");
    fs::create_dir_all(&www).unwrap();
    let blob: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    fs::write(www.join("blob.bin"), &blob).unwrap();
    let www_s = www.to_string_lossy().into_owned();
    lab.spawn_in(
        &wan,
        &[
            "python3",
            "-m",
            "http.server",
            "80",
            "--bind",
            "::",
            "--directory",
            &www_s,
        ],
    );
    assert!(
        wait_until(10, || ok_in(
            &wan,
            &["curl", "-sf", "-o", "/dev/null", "http://198.51.100.2/"]
        )),
        "web server in the WAN namespace did not start"
    );
    for url in [
        "http://198.51.100.2/blob.bin",
        "http://[2001:db8:2::2]/blob.bin",
    ] {
        let out = lab.dir.join("got.bin");
        let got = ok_in(
            &lan,
            &[
                "curl",
                "-sS",
                "--max-time",
                "30",
                "-o",
                &out.to_string_lossy(),
                url,
            ],
        );
        assert!(got, "curl {url} through tunfilter failed\n{}", lab.log());
        assert!(
            fs::read(&out).unwrap() == blob,
            "downloaded bytes differ ({url})"
        );
    }

    // Unsolicited inbound: a listener in the LAN is not reachable from the WAN.
    lab.spawn_in(
        &lan,
        &["socat", "TCP-LISTEN:9000,reuseaddr,fork", "SYSTEM:echo hi"],
    );
    assert!(wait_until(5, || ok_in(
        &lan,
        &["socat", "-T", "1", "-", "TCP:127.0.0.1:9000"]
    )));
    assert!(
        !ok_in(
            &wan,
            &[
                "socat",
                "-T",
                "2",
                "-",
                "TCP:192.0.2.2:9000,connect-timeout=2"
            ]
        ),
        "unsolicited inbound TCP must be dropped (v4)"
    );
    assert!(
        !ok_in(
            &wan,
            &[
                "socat",
                "-T",
                "2",
                "-",
                "TCP:[2001:db8:1::2]:9000,connect-timeout=2"
            ]
        ),
        "unsolicited inbound TCP must be dropped (v6)"
    );

    // The control socket shows what happened.
    let list = lab.ctl(&["ct", "list", "--proto", "tcp", "--dport", "80"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "ct list failed: {}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(
        text.contains("src=192.0.2.2 dst=198.51.100.2"),
        "ct list:\n{text}"
    );
    assert!(!text.contains("dport=9000"), "filtered list:\n{text}");
    let stats = lab.ctl(&["ct", "stats"]);
    let stats = String::from_utf8_lossy(&stats.stdout);
    assert!(
        stats.contains(&format!("link {lan} {lan_kind}")),
        "ct stats:\n{stats}"
    );

    assert!(lab.stop(), "tunfilter did not exit cleanly:\n{}", lab.log());
    // Running as nobody, tunfilter may not remove the file from a root-owned folder: what
    // counts is that nothing answers there any more (the next start replaces the file).
    assert!(
        std::os::unix::net::UnixStream::connect(lab.socket()).is_err(),
        "nothing answers on the control socket after exit"
    );
    for (ns, dev) in [(&lan, &lan), (&wan, &wan)] {
        let o = Command::new("ip")
            .args(["-n", ns, "link", "show", dev])
            .output()
            .unwrap();
        assert!(!o.status.success(), "device {dev} removed at exit");
    }
}

#[test]
fn tun_gateway_ping_curl_and_firewall() {
    gateway_scenario(KIND_TUN, KIND_TUN, "a", 2);
}

#[test]
fn tap_gateway_arp_nd_ping_curl_and_firewall() {
    gateway_scenario(KIND_TAP, KIND_TAP, "b", 2);
}

#[test]
fn mixed_tun_tap_single_worker() {
    gateway_scenario(KIND_TUN, KIND_TAP, "c", 1);
}

#[test]
fn tap_peer_learns_the_stable_router_mac() {
    if !live_env() {
        return;
    }
    let mut lab = Lab::new("d");
    let lan = lab.netns("l");
    let _wan = lab.netns("w");
    let cfg = gateway_config(&lab, KIND_TAP, KIND_TAP);
    lab.start(&cfg, 2);
    assert!(ping(&lan, "192.0.2.1"));
    assert!(ping(&lan, "2001:db8:1::1"));
    let mac = router::live::l2::stable_mac(&lan)
        .map(|b| format!("{b:02x}"))
        .join(":");
    let neigh = sh(&["ip", "-n", &lan, "neigh", "show", "dev", &lan]);
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    assert!(
        neigh.contains(&format!("192.0.2.1 lladdr {mac}")),
        "neighbours:\n{neigh}"
    );
    assert!(
        neigh.contains(&format!("2001:db8:1::1 lladdr {mac} router")),
        "neighbours:\n{neigh}"
    );
}

#[test]
fn control_events_reload_and_flush() {
    if !live_env() {
        return;
    }
    let mut lab = Lab::new("e");
    let lan = lab.netns("l");
    let _wan = lab.netns("w");
    let cfg = gateway_config(&lab, KIND_TUN, KIND_TUN);
    lab.start(&cfg, 2);

    // A live event stream sees the new ICMP connection.
    let mut events = Command::new(TF)
        .arg("ct")
        .arg("--socket")
        .arg(lab.socket())
        .arg("events")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(ping(&lan, "198.51.100.2"));
    std::thread::sleep(Duration::from_millis(300));
    let _ = events.kill();
    let _ = events.wait();
    let mut text = String::new();
    if let Some(mut out) = events.stdout.take() {
        let _ = out.read_to_string(&mut text);
    }
    assert!(
        text.contains("[NEW]") && text.contains("src=192.0.2.2"),
        "events:\n{text}"
    );

    // rules list shows the counters of the loaded rules.
    let rules = lab.ctl(&["rules", "list", "-v"]);
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(rules.contains("-A FORWARD"), "rules:\n{rules}");

    // A broken rule file is refused and the old rules stay; a good one is taken.
    let good = fs::read_to_string(lab.dir.join("gw.rules")).unwrap();
    lab.write(
        "gw.rules",
        "*filter\n-A FORWARD --no-such-option -j ACCEPT\nCOMMIT\n",
    );
    let bad = lab.ctl(&["reload"]);
    assert!(!bad.status.success(), "reload of a broken file must fail");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("gw.rules"),
        "error names the file"
    );
    assert!(ping(&lan, "198.51.100.2"), "old rules still in force");
    lab.write("gw.rules", &good);
    assert!(lab.ctl(&["reload"]).status.success());
    // SIGHUP reloads too.
    if let Some(pid) = lab
        .tunfilter
        .as_ref()
        .and_then(|c| rustix::process::Pid::from_raw(c.id() as i32))
    {
        rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    }
    assert!(
        wait_until(5, || lab.log().matches("rules reloaded").count() >= 2),
        "SIGHUP reload:\n{}",
        lab.log()
    );

    // Flush empties the table.
    assert!(lab.ctl(&["ct", "flush"]).status.success());
    let list = lab.ctl(&["ct", "list", "--proto", "icmp", "--src", "192.0.2.2"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout), "", "table flushed");
    assert!(lab.stop(), "clean exit");
}

#[test]
fn startup_errors_are_one_line_and_leave_nothing_behind() {
    if !live_env() {
        return;
    }
    let mut lab = Lab::new("f");
    let lan = lab.netns("l");
    // The WAN namespace is deliberately not created.
    let cfg = gateway_config(&lab, KIND_TUN, KIND_TAP);
    let out = Command::new(TF)
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--socket")
        .arg(lab.socket())
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].contains("does not exist"), "{err}");
    // The LAN device, created before the error, is gone again.
    let o = Command::new("ip")
        .args(["-n", &lan, "link", "show", &lan])
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "LAN device removed after the failed start"
    );
    assert!(!lab.socket().exists());
}
