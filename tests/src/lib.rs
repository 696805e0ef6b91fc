//! Shared helpers for the cross-crate integration tests: the packet builders of
//! [`testkit`] (re-exported), and simulator plumbing (config files, pcaps in,
//! pcaps and events out).

pub use testkit::*;

use router::pcap;
use std::path::{Path, PathBuf};

/// A packet arriving on an interface at a time (seconds from the start).
#[derive(Clone, Debug)]
pub struct Arrival {
    /// Interface name.
    pub iface: &'static str,
    /// Seconds since the scenario's start.
    pub at: f64,
    /// IP packet.
    pub packet: Vec<u8>,
}

/// Start of every scenario's clock (2024-01-01T00:00:00Z), so times look real.
pub const EPOCH_NS: u64 = 1_704_067_200_000_000_000;

/// A scenario folder with the config and rules written, ready to simulate.
#[derive(Debug)]
pub struct Scenario {
    /// Temporary folder (removed on drop).
    pub dir: PathBuf,
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The output of a simulation.
#[derive(Debug)]
pub struct SimOutput {
    /// Packets written per interface (IP packets, timestamps in ns).
    pub sent: std::collections::BTreeMap<String, Vec<(u64, Vec<u8>)>>,
    /// The event log, one JSON object per line.
    pub events: Vec<String>,
    /// Final `conntrack -L` listing.
    pub conntrack: String,
    /// Final statistics.
    pub stats: String,
    /// Output folder.
    pub out_dir: PathBuf,
}

impl SimOutput {
    /// Packets sent on `iface`.
    pub fn on(&self, iface: &str) -> Vec<Vec<u8>> {
        self.sent
            .get(iface)
            .map(|v| v.iter().map(|(_, p)| p.clone()).collect())
            .unwrap_or_default()
    }

    /// Events whose JSON contains every needle.
    pub fn events_with(&self, needles: &[&str]) -> Vec<&String> {
        self.events
            .iter()
            .filter(|e| needles.iter().all(|n| e.contains(n)))
            .collect()
    }
}

impl Scenario {
    /// A two-interface gateway: lan0 192.0.2.1/24 + 2001:db8:1::1/64,
    /// wan0 198.51.100.1/24 + 2001:db8:2::1/64 with default routes via wan0.
    pub fn gateway(name: &str, rules_v4: &str, rules_v6: &str) -> Scenario {
        let cfg = r#"
[[interface]]
name = "lan0"
kind = "tun"
mtu = 1500
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]

[[interface]]
name = "wan0"
kind = "tun"
mtu = 1500
addresses = ["198.51.100.1/24", "2001:db8:2::1/64"]

[[route]]
prefix = "0.0.0.0/0"
interface = "wan0"
via = "198.51.100.254"

[[route]]
prefix = "::/0"
interface = "wan0"
via = "2001:db8:2::fe"

[rules]
ipv4 = "v4.rules"
ipv6 = "v6.rules"
"#;
        Scenario::with_config(name, cfg, rules_v4, rules_v6)
    }

    /// A scenario with a given config text (referencing `v4.rules`/`v6.rules`).
    pub fn with_config(name: &str, cfg: &str, rules_v4: &str, rules_v6: &str) -> Scenario {
        let dir =
            std::env::temp_dir().join(format!("tunfilter-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("gw.toml"), cfg).unwrap();
        std::fs::write(dir.join("v4.rules"), rules_v4).unwrap();
        std::fs::write(dir.join("v6.rules"), rules_v6).unwrap();
        Scenario { dir }
    }

    /// Path of the config file.
    pub fn config(&self) -> PathBuf {
        self.dir.join("gw.toml")
    }

    /// Writes the arrivals into one raw-IP pcap per interface and runs the
    /// simulator in-process.
    pub fn run(&self, arrivals: &[Arrival], until: Option<f64>) -> SimOutput {
        self.run_workers(arrivals, until, 1, "out")
    }

    /// [`Scenario::run`] with the engine split into `workers` shards, into `out` (a folder
    /// name in the scenario's folder).
    pub fn run_workers(
        &self,
        arrivals: &[Arrival],
        until: Option<f64>,
        workers: usize,
        out: &str,
    ) -> SimOutput {
        let inputs = self.write_inputs(arrivals);
        let out_dir = self.dir.join(out);
        let cfg = router::config::Config::load(&self.config()).unwrap();
        router::sim::run(
            &cfg,
            &router::sim::SimOptions {
                inputs,
                out_dir: out_dir.clone(),
                until,
                workers,
            },
        )
        .unwrap();
        read_output(&out_dir)
    }

    /// Writes one raw-IP pcap per interface; returns `--in` pairs.
    pub fn write_inputs(&self, arrivals: &[Arrival]) -> Vec<(String, PathBuf)> {
        let mut by_iface: std::collections::BTreeMap<&str, Vec<&Arrival>> = Default::default();
        for a in arrivals {
            by_iface.entry(a.iface).or_default().push(a);
        }
        let mut inputs = Vec::new();
        for (iface, list) in by_iface {
            let p = self.dir.join(format!("in-{iface}.pcap"));
            let f = std::fs::File::create(&p).unwrap();
            let mut w = pcap::Writer::new(f, pcap::LINKTYPE_RAW).unwrap();
            for a in list {
                w.write(EPOCH_NS + (a.at * 1e9) as u64, &a.packet).unwrap();
            }
            w.finish().unwrap();
            inputs.push((iface.to_string(), p));
        }
        inputs
    }
}

/// Reads a simulator output folder.
pub fn read_output(out_dir: &Path) -> SimOutput {
    let mut sent = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(out_dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "pcap") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let (lt, recs) = pcap::read_all(std::fs::File::open(&p).unwrap()).unwrap();
            let v = recs
                .into_iter()
                .map(|r| (r.ts_ns, pcap::ip_payload(lt, &r.data).unwrap().to_vec()))
                .collect();
            sent.insert(name, v);
        }
    }
    let text = |n: &str| std::fs::read_to_string(out_dir.join(n)).unwrap_or_default();
    SimOutput {
        sent,
        events: text("events.jsonl").lines().map(str::to_string).collect(),
        conntrack: text("conntrack.txt"),
        stats: text("stats.txt"),
        out_dir: out_dir.to_path_buf(),
    }
}

/// Whether `tshark` is installed (tests that cross-check with it require it under CI).
pub fn tshark_available() -> bool {
    std::process::Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs tshark on a pcap with a display filter and returns the selected fields, one line per packet.
pub fn tshark_fields(pcap: &Path, filter: &str, fields: &[&str]) -> Vec<String> {
    let mut cmd = std::process::Command::new("tshark");
    cmd.arg("-r")
        .arg(pcap)
        .arg("-Y")
        .arg(filter)
        .arg("-T")
        .arg("fields");
    for f in fields {
        cmd.arg("-e").arg(f);
    }
    let out = cmd.output().expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Whether the test runs as root (effective uid 0, read from /proc).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// Whether `cmd arg` runs and succeeds (a tool is installed).
pub fn have(cmd: &str, arg: &str) -> bool {
    std::process::Command::new(cmd)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Fails loudly under CI, skips elsewhere, when a tool a test needs is missing.
pub fn require(tool_ok: bool, what: &str) -> bool {
    if tool_ok {
        return true;
    }
    let msg = format!("SKIPPING: {what} is not available");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg} (required under CI=true)");
    }
    eprintln!("{msg}");
    false
}

/// The packets of a real capture in `tests/data/pcap/` as arrivals, for a gateway between
/// the capture's two sides: those from `inside` arrive on lan0, the
/// others on wan0 with their destination `outside_to` replaced by `to` (the address the
/// outside side would use through the gateway), checksums fixed.
pub fn capture_arrivals(
    name: &str,
    inside: std::net::Ipv4Addr,
    outside_to: std::net::Ipv4Addr,
    to: std::net::Ipv4Addr,
) -> Vec<Arrival> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/pcap")
        .join(name);
    let (lt, recs) = router::pcap::read_all(std::fs::File::open(path).unwrap()).unwrap();
    // Only the packets of `inside`, timed from the first of them (the TFTP capture merges
    // several sessions, its clock going backwards between them).
    let mut t0 = None;
    recs.iter()
        .filter_map(|r| {
            let ip = router::pcap::ip_payload(lt, &r.data)?.to_vec();
            let v4 = wire::Ipv4Packet::new_checked(&ip[..]).ok()?;
            if v4.src_addr() != inside && v4.dst_addr() != inside {
                return None;
            }
            let t0 = *t0.get_or_insert(r.ts_ns);
            let at = r.ts_ns.saturating_sub(t0) as f64 / 1e9;
            if v4.src_addr() == inside {
                return Some(at_owned("lan0", at, ip));
            }
            let mut p = ip.clone();
            if v4.dst_addr() == outside_to {
                p[16..20].copy_from_slice(&to.octets());
            }
            // The capturing host's own packets carry offloaded (unfinished) checksums.
            fill_checksums(&mut p);
            Some(at_owned("wan0", at, p))
        })
        .collect()
}

/// Recomputes the IPv4 header and TCP/UDP checksums of an unfragmented packet.
pub fn fill_checksums(p: &mut [u8]) {
    let hl = usize::from(p[0] & 0x0f) * 4;
    p[10..12].fill(0);
    let ck = wire::checksum::data(&p[..hl]);
    p[10..12].copy_from_slice(&ck.to_be_bytes());
    let at = match p[9] {
        6 => hl + 16,
        17 => hl + 6,
        _ => return,
    };
    p[at..at + 2].fill(0);
    let src = std::net::Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = std::net::Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let ps = wire::checksum::pseudo_header_v4(src, dst, p[9], (p.len() - hl) as u32);
    let ck = wire::checksum::fold(wire::checksum::combine(ps, wire::checksum::sum(&p[hl..])));
    p[at..at + 2].copy_from_slice(&ck.to_be_bytes());
}

fn at_owned(iface: &'static str, at: f64, packet: Vec<u8>) -> Arrival {
    Arrival { iface, at, packet }
}
