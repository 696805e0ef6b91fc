//! Application helpers with real programs across the live gateway (issue 17 item 8): FTP
//! (vsftpd and pyftpdlib serving curl and lftp, active and passive, IPv4 through masquerade and
//! IPv6, and a server inside behind a DNAT port forward), TFTP (tftpd-hpa serving the tftp-hpa
//! client and curl) and talk (Debian's talk and talkd under openbsd-inetd, driven in tmux).
//!
//! Every test forwards between a LAN namespace (192.0.2.2, 2001:db8:1::2) and a WAN namespace
//! (198.51.100.2, 2001:db8:2::2) through `tunfilter` on TUN links, masquerading what leaves on
//! the WAN (198.51.100.1, 2001:db8:2::1) in both families. FORWARD drops by policy and accepts
//! only the helper's control port and what conntrack calls ESTABLISHED or RELATED, so a data
//! connection gets through only as the expectation of its control connection. RELATED has its
//! own rule, whose packet counter shows that the data connections were let in as such.
//!
//! Proof is taken from the endpoints: the downloaded files are compared byte for byte with the
//! served ones, the servers' logs show the PORT/EPRT addresses after NAT (vsftpd refuses an
//! address that is not its peer's, so an unrewritten PORT fails there too), curl's trace shows
//! the 227 answer carrying the public address of a port-forwarded server, talkd's announcement
//! names the NAT address, and the text typed in one talk window appears in the other. Negative
//! controls run the same programs without the helper and watch the data connections die.
//!
//! Like the other live tests they need root, /dev/net/tun and the programs they run; they skip
//! without them and fail under `CI=true`. `scripts/test-all.sh` installs the Debian packages.

mod common;

use common::*;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The LAN host, the WAN host and the router's WAN address (the masquerade and port-forward
/// address), per family.
const LAN4: &str = "192.0.2.2";
const LAN6: &str = "2001:db8:1::2";
const WAN4: &str = "198.51.100.2";
const WAN6: &str = "2001:db8:2::2";
const GW4: &str = "198.51.100.1";
const GW6: &str = "2001:db8:2::1";

/// How the helper is attached to the control connections.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Attach {
    /// `[helpers] auto_assign = true` with the helper's ports in the config.
    Auto,
    /// `-j CT --helper NAME` in the raw table (iptables' explicit assignment).
    Rule,
    /// No helper at all: the negative controls.
    Off,
}

/// How the tests about explicit assignment (pyftpdlib, the port forward, TFTP) attach their
/// helper: a raw-table `CT --helper` rule, with `auto_assign` off.
const EXPLICIT: Attach = Attach::Rule;

/// What the gateway runs for one test.
struct Gateway<'a> {
    /// Helper names (`ftp`, `tftp`, `ntalk`, `talk`) with their protocol and control port.
    helpers: &'a [(&'a str, &'a str, u16)],
    attach: Attach,
    /// Publish the control ports on the router's WAN address, DNATed to the LAN host.
    forward_in: bool,
    /// With `Attach::Auto`, name the ports in `[helpers.NAME]` tables; without, each helper
    /// keeps its default ports (the kernel's), which are the ports of `helpers`.
    ports_table: bool,
}

impl Gateway<'_> {
    /// One family's ruleset (iptables-save text).
    fn rules(&self, lab: &Lab, v6: bool) -> String {
        let (l, w) = (lab.name("l"), lab.name("w"));
        let mut raw = String::from("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
        let mut nat = String::from(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             :POSTROUTING ACCEPT [0:0]\n",
        );
        // RELATED first, on its own, so that its counter shows what passed as related.
        let mut filter = String::from(
            "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
             -A FORWARD -m conntrack --ctstate RELATED -j ACCEPT\n\
             -A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT\n",
        );
        let lan = if v6 {
            format!("[{LAN6}]")
        } else {
            LAN4.to_string()
        };
        for &(name, proto, port) in self.helpers {
            if self.attach == Attach::Rule {
                raw += &format!(
                    "-A PREROUTING -p {proto} -m {proto} --dport {port} -j CT --helper {name}\n"
                );
            }
            filter += &format!(
                "-A FORWARD -i {l} -o {w} -p {proto} -m {proto} --dport {port} -j ACCEPT\n"
            );
            if self.forward_in {
                nat += &format!(
                    "-A PREROUTING -i {w} -p {proto} -m {proto} --dport {port} \
                     -j DNAT --to-destination {lan}:{port}\n"
                );
                filter += &format!(
                    "-A FORWARD -i {w} -o {l} -p {proto} -m {proto} --dport {port} -j ACCEPT\n"
                );
            }
        }
        nat += &format!("-A POSTROUTING -o {w} -j MASQUERADE\n");
        raw + "COMMIT\n" + &nat + "COMMIT\n" + &filter + "COMMIT\n"
    }

    /// The `[helpers]` part of the config.
    fn helpers_toml(&self) -> String {
        if self.attach != Attach::Auto {
            return String::new();
        }
        let mut t = String::from("\n[helpers]\nauto_assign = true\n");
        if self.ports_table {
            for &(name, _, port) in self.helpers {
                t += &format!("\n[helpers.{name}]\nports = [{port}]\nloose = false\n");
            }
        }
        t
    }

    /// Creates the namespaces, writes the config and starts tunfilter with two workers (so
    /// that expected connections have to find their master's shard); returns (lan, wan).
    fn start(&self, lab: &mut Lab) -> (String, String) {
        let lan = lab.netns("l");
        let wan = lab.netns("w");
        let (l, w) = (lab.name("l"), lab.name("w"));
        lab.write("gw.rules", &self.rules(lab, false));
        lab.write("gw6.rules", &self.rules(lab, true));
        let cfg = lab.write(
            "gw.toml",
            &format!(
                r#"
[[interface]]
name = "{l}"
kind = "tun"
mtu = 1500
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]
netns = "{l}"
peer_addresses = ["{LAN4}/24", "{LAN6}/64"]
peer_routes = ["default"]

[[interface]]
name = "{w}"
kind = "tun"
mtu = 1500
addresses = ["{GW4}/24", "{GW6}/64"]
netns = "{w}"
peer_addresses = ["{WAN4}/24", "{WAN6}/64"]
peer_routes = ["default"]

[rules]
ipv4 = "gw.rules"
ipv6 = "gw6.rules"
{}"#,
                self.helpers_toml()
            ),
        );
        lab.start(&cfg, 2);
        (lan, wan)
    }
}

/// `addr` as the host part of a URL.
fn url_host(addr: &str) -> String {
    if addr.contains(':') {
        format!("[{addr}]")
    } else {
        addr.to_string()
    }
}

/// `len` random bytes (the kernel's generator): a transfer cannot pass by luck or by
/// compression.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut v))
        .expect("read /dev/urandom");
    v
}

/// The served file: a little over 1 MiB.
const FILE_LEN: usize = 1_200_000;

/// A folder in the lab holding `blob.bin` = `content`, readable by the servers' users.
fn served_dir(lab: &Lab, name: &str, content: &[u8]) -> PathBuf {
    let dir = lab.dir.join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("blob.bin"), content).unwrap();
    dir
}

/// A daemon inside `ns` with stdin, stdout and stderr on the log file `log` (vsftpd writes its
/// start-up errors to fd 0); killed with the lab. Returns the log's path.
fn spawn_daemon(lab: &mut Lab, ns: &str, log: &str, args: &[&str]) -> PathBuf {
    let path = lab.dir.join(log);
    let f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)
        .expect("daemon log");
    let c = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(f.try_clone().unwrap())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .expect("spawn daemon in namespace");
    lab.others.push(c);
    path
}

/// Runs `args` inside `ns` with a hard limit of `secs` (coreutils `timeout`), output captured.
fn run_for(ns: &str, secs: u32, args: &[&str]) -> Output {
    let secs = secs.to_string();
    let mut all = vec!["timeout", "-k", "2", secs.as_str()];
    all.extend_from_slice(args);
    run_in(ns, &all)
}

/// Whether something listens on `port` (TCP or UDP per `proto`) in `ns`.
fn listening(ns: &str, proto: &str, port: u16) -> bool {
    let flag = if proto == "udp" { "-Hlun" } else { "-Hltn" };
    let o = run_in(ns, &["ss", flag, "sport", "=", &format!(":{port}")]);
    !String::from_utf8_lossy(&o.stdout).trim().is_empty()
}

/// The packet counter of the FORWARD rule that accepts RELATED, in one family ("4", "6").
/// `rules list -v` prints the IPv4 rules, then the IPv6 rules, each family's part starting
/// with a "# Generated by" comment. (`--family 6` is not used: it prints nothing, because
/// both parts are "# Generated by tunfilter" and the filter looks for "ip6tables".)
fn related_packets(lab: &Lab, family: &str) -> u64 {
    let o = lab.ctl(&["rules", "list", "-v"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let part = text
        .split("# Generated by")
        .filter(|p| !p.trim().is_empty())
        .nth(if family == "6" { 1 } else { 0 })
        .unwrap_or_default();
    let line = part
        .lines()
        .find(|l| l.contains("-A FORWARD -m conntrack --ctstate RELATED -j ACCEPT"))
        .unwrap_or_else(|| {
            panic!(
                "no RELATED rule in family {family} ({}):\n{text}{}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            )
        });
    line.strip_prefix('[')
        .and_then(|r| r.split(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no counters: {line}"))
}

/// The `helper name=NAME ...` line of `ct stats` as key/value pairs, if there is one.
fn helper_stats(lab: &Lab, name: &str) -> Option<Vec<(String, u64)>> {
    let o = lab.ctl(&["ct", "stats"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let prefix = format!("helper name={name} ");
    let line = text.lines().find(|l| l.trim_start().starts_with(&prefix))?;
    Some(
        line.split_whitespace()
            .filter_map(|w| w.split_once('='))
            .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
            .collect(),
    )
}

/// One counter of [`helper_stats`]; panics with the whole `ct stats` when it is missing.
fn helper_counter(lab: &Lab, name: &str, key: &str) -> u64 {
    let stats = helper_stats(lab, name);
    stats
        .as_ref()
        .and_then(|s| s.iter().find(|(k, _)| k == key).map(|(_, v)| *v))
        .unwrap_or_else(|| {
            let o = lab.ctl(&["ct", "stats"]);
            panic!(
                "no {key}= for helper {name} in ct stats:\n{}",
                String::from_utf8_lossy(&o.stdout)
            )
        })
}

/// The connections, expectations and counters of the running gateway, for failure messages.
fn gateway_state(lab: &Lab) -> String {
    let mut s = String::new();
    for args in [
        &["ct", "list"][..],
        &["ct", "expect", "list"],
        &["ct", "stats"],
    ] {
        let o = lab.ctl(args);
        s += &format!(
            "--- tunfilter {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stdout)
        );
    }
    s
}

/// `tunfilter ct expect list`, one line per expectation.
fn expect_list(lab: &Lab) -> Vec<String> {
    let o = lab.ctl(&["ct", "expect", "list"]);
    assert!(
        o.status.success(),
        "ct expect list failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// The values of `key=` in a `ct list` / `ct expect list` line, in order.
fn values<'a>(line: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    line.split_whitespace()
        .filter_map(|w| w.strip_prefix(prefix.as_str()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// FTP

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FtpServer {
    Vsftpd,
    Pyftpdlib,
}

/// The Python that has pyftpdlib: Debian's python3-pyftpdlib installs it for
/// /usr/bin/python3, which need not be the first `python3` on PATH.
fn pyftpdlib_python() -> &'static str {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|py| {
            Command::new(py)
                .args(["-c", "import pyftpdlib"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .unwrap_or("python3")
}

/// Whether the FTP tests can run: the programs of `servers`, curl and lftp.
fn ftp_env(servers: &[FtpServer]) -> bool {
    let mut need = vec![
        ("lftp", "--version"),
        ("ss", "-V"),
        ("timeout", "--version"),
    ];
    for s in servers {
        match s {
            FtpServer::Vsftpd => need.push(("vsftpd", "-v")),
            // One argument: Python takes `-cCODE` as well as `-c CODE`.
            FtpServer::Pyftpdlib => need.push((pyftpdlib_python(), "-cimport pyftpdlib")),
        }
    }
    live_env_with(&need)
}

/// Starts an FTP server on `addr`:`port` in `ns` serving `root` (anonymous, read-only, passive
/// ports 40000-40100) and waits until it answers; returns its log, which records every command
/// it received with the client's address. `promiscuous` lets vsftpd accept a PORT address
/// other than its peer's (to see the gateway drop the data connection instead).
fn ftp_server(
    lab: &mut Lab,
    ns: &str,
    server: FtpServer,
    addr: &str,
    port: u16,
    root: &Path,
    promiscuous: bool,
) -> PathBuf {
    let v6 = addr.contains(':');
    let tag = format!("{server:?}-{}", if v6 { 6 } else { 4 }).to_lowercase();
    let (root_s, port_s) = (root.to_string_lossy().into_owned(), port.to_string());
    let log = match server {
        FtpServer::Vsftpd => {
            let log = lab.dir.join(format!("{tag}.log"));
            let empty = lab.dir.join("vsftpd-empty");
            fs::create_dir_all(&empty).unwrap();
            let listen = if v6 {
                format!("listen=NO\nlisten_ipv6=YES\nlisten_address6={addr}\n")
            } else {
                format!("listen=YES\nlisten_ipv6=NO\nlisten_address={addr}\n")
            } + &format!("listen_port={port}\n");
            // No sandboxing that would need namespaces or seccomp of its own: the test
            // already runs it in a namespace, as root.
            let conf = lab.write(
                &format!("{tag}.conf"),
                &format!(
                    "{listen}background=NO\nanonymous_enable=YES\nno_anon_password=YES\n\
                     anon_root={root_s}\nlocal_enable=NO\nwrite_enable=NO\n\
                     pasv_enable=YES\nport_enable=YES\npasv_min_port=40000\n\
                     pasv_max_port=40100\nconnect_from_port_20={}\n\
                     port_promiscuous={}\nseccomp_sandbox=NO\nisolate=NO\n\
                     isolate_network=NO\nsecure_chroot_dir={}\nvsftpd_log_file={}\n\
                     log_ftp_protocol=YES\nxferlog_enable=YES\nxferlog_std_format=NO\n\
                     syslog_enable=NO\nconnect_timeout=10\ndata_connection_timeout=20\n",
                    // vsftpd 3.0.3 fails to bind port 20 for a promiscuous PORT
                    // ("500 OOPS: vsf_sysutil_bind"); active data then comes from any port.
                    if promiscuous { "NO" } else { "YES" },
                    if promiscuous { "YES" } else { "NO" },
                    empty.display(),
                    log.display()
                ),
            );
            let conf_s = conf.to_string_lossy().into_owned();
            spawn_daemon(lab, ns, &format!("{tag}.out"), &["vsftpd", &conf_s]);
            log
        }
        FtpServer::Pyftpdlib => {
            assert!(
                !promiscuous,
                "pyftpdlib has no switch for foreign addresses"
            );
            spawn_daemon(
                lab,
                ns,
                &format!("{tag}.log"),
                &[
                    pyftpdlib_python(),
                    "-u",
                    "-m",
                    "pyftpdlib",
                    "-i",
                    addr,
                    "-p",
                    &port_s,
                    "-d",
                    &root_s,
                    "-r",
                    "40000-40100",
                    "-D",
                ],
            )
        }
    };
    // A local listing (passive, inside the server's namespace) shows it serves.
    let url = format!("ftp://{}:{port}/", url_host(addr));
    let up = wait_until(10, || {
        ok_in(
            ns,
            &["curl", "-s", "--max-time", "2", "-o", "/dev/null", &url],
        )
    });
    assert!(
        up,
        "{server:?} on {addr} did not start:\n{}\n{}",
        fs::read_to_string(&log).unwrap_or_default(),
        fs::read_to_string(lab.dir.join(format!("{tag}.out"))).unwrap_or_default()
    );
    log
}

/// How a client asks for the data connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Data {
    /// Active, IPv4 `PORT h1,h2,h3,h4,p1,p2`.
    Port,
    /// Active, `EPRT |af|addr|port|`.
    Eprt,
    /// Passive, IPv4 `PASV` answered by `227 (h1,h2,h3,h4,p1,p2)`.
    Pasv,
    /// Passive, `EPSV` answered by `229 (|||port|)`.
    Epsv,
}

impl Data {
    /// The command the client sends for it.
    fn verb(self) -> &'static str {
        match self {
            Data::Port => "PORT",
            Data::Eprt => "EPRT",
            Data::Pasv => "PASV",
            Data::Epsv => "EPSV",
        }
    }

    fn active(self) -> bool {
        matches!(self, Data::Port | Data::Eprt)
    }
}

/// One download: what ran, its exit status, its trace (the FTP dialogue as the client saw
/// it) and what it wrote.
struct Transfer {
    what: String,
    code: Option<i32>,
    trace: String,
    body: Vec<u8>,
    secs: f64,
}

impl Transfer {
    /// Asserts the client got exactly `content`.
    fn assert_got(&self, content: &[u8]) {
        assert!(
            self.body == content,
            "{}: exit {:?} after {:.1} s, {} bytes of {} (content {})\n{}",
            self.what,
            self.code,
            self.secs,
            self.body.len(),
            content.len(),
            if self.body.len() == content.len() {
                "differs"
            } else {
                "incomplete"
            },
            self.trace
        );
    }

    /// The lines of the trace that contain `needle`.
    fn lines_with(&self, needle: &str) -> Vec<&str> {
        self.trace.lines().filter(|l| l.contains(needle)).collect()
    }
}

/// Downloads `blob.bin` from `host` with curl inside `ns`, using `data` for the data
/// connection, within `secs`.
fn curl_ftp(lab: &Lab, ns: &str, host: &str, port: u16, data: Data, secs: u32) -> Transfer {
    let out = lab.dir.join("curl-ftp.out");
    let _ = fs::remove_file(&out);
    let url = format!("ftp://{}:{port}/blob.bin", url_host(host));
    let max = secs.to_string();
    let mut args = vec![
        "curl",
        "-sS",
        "-v",
        "--max-time",
        &max,
        "--connect-timeout",
        "3",
    ];
    args.extend_from_slice(match data {
        Data::Port => &["--ftp-port", "-", "--disable-eprt"],
        Data::Eprt => &["--ftp-port", "-"],
        // Use the address of the 227 answer, not the control connection's (curl's
        // default since 7.74): that address is what the helper rewrites.
        Data::Pasv => &["--ftp-pasv", "--disable-epsv", "--no-ftp-skip-pasv-ip"],
        Data::Epsv => &["--ftp-pasv"],
    });
    let out_s = out.to_string_lossy().into_owned();
    args.extend_from_slice(&["-o", &out_s, &url]);
    let t0 = Instant::now();
    let o = run_for(ns, secs + 5, &args);
    Transfer {
        what: format!("curl {data:?} {url}"),
        code: o.status.code(),
        trace: String::from_utf8_lossy(&o.stderr).into_owned(),
        body: fs::read(&out).unwrap_or_default(),
        secs: t0.elapsed().as_secs_f64(),
    }
}

/// Downloads `blob.bin` from `host` with lftp inside `ns`, passive or active.
fn lftp_get(lab: &Lab, ns: &str, host: &str, port: u16, passive: bool) -> Transfer {
    let out = lab.dir.join("lftp.out");
    let _ = fs::remove_file(&out);
    // No TLS (the helper must read the control connection), no retries that would hide a
    // failed data connection, and no "fixing" of the 227 address: the test is whether the
    // address that arrives is right.
    let script = format!(
        "set ftp:ssl-allow no; set ftp:passive-mode {}; set ftp:fix-pasv-address no; \
         set net:timeout 5; set net:max-retries 1; set net:reconnect-interval-base 1; \
         set xfer:clobber on; set cmd:fail-exit yes; open ftp://{}:{port}; get blob.bin -o {}",
        if passive { "on" } else { "off" },
        url_host(host),
        out.display()
    );
    let t0 = Instant::now();
    let o = run_for(ns, 30, &["lftp", "-d", "-c", &script]);
    Transfer {
        what: format!(
            "lftp {} ftp://{}:{port}",
            if passive { "passive" } else { "active" },
            url_host(host)
        ),
        code: o.status.code(),
        trace: String::from_utf8_lossy(&o.stderr).into_owned()
            + &String::from_utf8_lossy(&o.stdout),
        body: fs::read(&out).unwrap_or_default(),
        secs: t0.elapsed().as_secs_f64(),
    }
}

/// The arguments of every `verb` command (PORT, EPRT) a server logged, in order. vsftpd
/// writes `FTP command: Client "ADDR", "PORT ARGS"`, pyftpdlib `ADDR:PORT-[user] <- PORT ARGS`.
fn server_saw(log: &Path, verb: &str) -> Vec<String> {
    let needle = format!("{verb} ");
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.contains("FTP response"))
        .filter_map(|l| {
            let at = l.find(&needle)?;
            // Only the command itself, not a word in a longer message.
            let before = l[..at].trim_end();
            (before.ends_with('"') || before.ends_with("<-")).then(|| {
                l[at + needle.len()..]
                    .trim_end_matches('"')
                    .trim()
                    .to_string()
            })
        })
        .collect()
}

/// The address and port of a PORT argument `h1,h2,h3,h4,p1,p2` or an EPRT argument
/// `|af|addr|port|`.
fn active_target(verb: &str, arg: &str) -> (String, u16) {
    if verb == "PORT" {
        let n: Vec<u16> = arg.split(',').map(|x| x.trim().parse().unwrap()).collect();
        assert_eq!(n.len(), 6, "PORT {arg}");
        (
            format!("{}.{}.{}.{}", n[0], n[1], n[2], n[3]),
            n[4] * 256 + n[5],
        )
    } else {
        let f: Vec<&str> = arg.split('|').collect();
        assert_eq!(f.len(), 5, "EPRT {arg}");
        (f[2].to_string(), f[3].parse().unwrap())
    }
}

/// An FTP server as its clients reach it, and its log.
struct Served<'a> {
    host: &'a str,
    port: u16,
    log: &'a Path,
}

/// Runs the transfers of `plan` (each a client and a data mode) from `ns` against `server`,
/// checks each file, and for active transfers that the server received the PORT/EPRT address
/// `active_addr` (the client's address as the server sees it), written as given: IPv6 in RFC
/// 5952 form, as the helper must write it. Returns the number of data connections made.
fn ftp_transfers(
    lab: &Lab,
    ns: &str,
    server: &Served,
    plan: &[(&str, Data)],
    active_addr: &str,
    content: &[u8],
) -> u64 {
    let (host, port, server_log) = (server.host, server.port, server.log);
    for &(client, data) in plan {
        let seen_before = server_saw(server_log, data.verb()).len();
        let t = match client {
            "curl" => curl_ftp(lab, ns, host, port, data, 20),
            "lftp" => lftp_get(lab, ns, host, port, !data.active()),
            other => panic!("unknown client {other}"),
        };
        t.assert_got(content);
        // The client really sent the intended command (curl and lftp fall back silently):
        // curl traces what it sends as "> CMD", lftp as "---> CMD".
        let sent = format!("> {}", data.verb());
        assert!(
            t.trace
                .lines()
                .any(|l| l.starts_with(&sent) || l.contains(&format!("--{sent}"))),
            "{}: no {} in the trace:\n{}",
            t.what,
            data.verb(),
            t.trace
        );
        if data.active() {
            let seen = server_saw(server_log, data.verb());
            assert!(
                seen.len() > seen_before,
                "{}: the server logged no {}:\n{}",
                t.what,
                data.verb(),
                fs::read_to_string(server_log).unwrap_or_default()
            );
            let (addr, _) = active_target(data.verb(), seen.last().unwrap());
            assert_eq!(
                addr,
                active_addr,
                "{}: the server received {} {} (client trace: {:?})",
                t.what,
                data.verb(),
                seen.last().unwrap(),
                t.lines_with(&sent)
            );
        }
        eprintln!("{}: {} bytes in {:.2} s", t.what, t.body.len(), t.secs);
    }
    plan.len() as u64
}

/// The transfers every FTP server gets: curl in all four modes and lftp both ways over IPv4,
/// curl EPRT/EPSV and lftp both ways over IPv6 (curl and lftp use EPRT and EPSV there).
const PLAN4: &[(&str, Data)] = &[
    ("curl", Data::Port),
    ("curl", Data::Eprt),
    ("curl", Data::Pasv),
    ("curl", Data::Epsv),
    ("lftp", Data::Port),
    ("lftp", Data::Pasv),
];
const PLAN6: &[(&str, Data)] = &[
    ("curl", Data::Eprt),
    ("curl", Data::Epsv),
    ("lftp", Data::Eprt),
    ("lftp", Data::Epsv),
];

/// Both servers of `kind` in the WAN, every client and mode from the LAN through masquerade.
fn ftp_masquerade_scenario(kind: FtpServer, attach: Attach, test: &str) -> Lab {
    let mut lab = Lab::new(test);
    let gw = Gateway {
        helpers: &[("ftp", "tcp", 21)],
        attach,
        forward_in: false,
        ports_table: false,
    };
    let (lan, wan) = gw.start(&mut lab);
    let content = random_bytes(FILE_LEN);
    let root = served_dir(&lab, "ftp-root", &content);
    let log4 = ftp_server(&mut lab, &wan, kind, WAN4, 21, &root, false);
    let log6 = ftp_server(&mut lab, &wan, kind, WAN6, 21, &root, false);

    let n4 = ftp_transfers(
        &lab,
        &lan,
        &Served {
            host: WAN4,
            port: 21,
            log: &log4,
        },
        PLAN4,
        GW4,
        &content,
    );
    let n6 = ftp_transfers(
        &lab,
        &lan,
        &Served {
            host: WAN6,
            port: 21,
            log: &log6,
        },
        PLAN6,
        GW6,
        &content,
    );

    // The servers only ever saw the NAT address.
    for log in [&log4, &log6] {
        let text = fs::read_to_string(log).unwrap();
        assert!(
            !text.contains(LAN4) && !text.contains(LAN6),
            "a LAN address reached the server:\n{text}"
        );
    }
    // Every data connection came in as RELATED (FORWARD has nothing else for them).
    let (r4, r6) = (related_packets(&lab, "4"), related_packets(&lab, "6"));
    assert!(
        r4 >= n4 && r6 >= n6,
        "RELATED packets v4 {r4} (of {n4} data connections), v6 {r6} (of {n6})"
    );
    let parsed = helper_counter(&lab, "ftp", "parsed");
    let rewrite = helper_counter(&lab, "ftp", "rewrite");
    // Commands with an address: one PORT/EPRT/227/229 per transfer; the PORT and EPRT of
    // the LAN client were rewritten (in both families, both are masqueraded).
    let active = PLAN4
        .iter()
        .chain(PLAN6)
        .filter(|(_, d)| d.active())
        .count() as u64;
    assert!(
        parsed >= n4 + n6,
        "parsed={parsed} for {} transfers",
        n4 + n6
    );
    assert!(
        rewrite >= active,
        "rewrite={rewrite} for {active} active transfers"
    );
    lab
}

#[test]
fn ftp_vsftpd_curl_lftp_active_passive_through_masquerade() {
    if !ftp_env(&[FtpServer::Vsftpd]) {
        return;
    }
    let lab = ftp_masquerade_scenario(FtpServer::Vsftpd, Attach::Auto, "fv");
    // The expectations themselves, seen while a client holds its data connection back.
    let (lan, content) = (
        lab.name("l"),
        fs::read(lab.dir.join("ftp-root/blob.bin")).unwrap(),
    );
    let log4 = lab.dir.join("vsftpd-4.log");
    for active in [false, true] {
        expectation_seen_then_used(&lab, &lan, &log4, active, &content);
    }
}

#[test]
fn ftp_pyftpdlib_curl_lftp_active_passive_through_masquerade() {
    if !ftp_env(&[FtpServer::Pyftpdlib]) {
        return;
    }
    ftp_masquerade_scenario(FtpServer::Pyftpdlib, EXPLICIT, "fp");
}

/// `[helpers.ftp] ports` moves the FTP helper to another port: a vsftpd on 2121, active and
/// passive through the masquerade, with FORWARD open for 2121 only.
#[test]
fn ftp_helper_on_a_configured_port() {
    if !ftp_env(&[FtpServer::Vsftpd]) {
        return;
    }
    let mut lab = Lab::new("fc");
    let gw = Gateway {
        helpers: &[("ftp", "tcp", 2121)],
        attach: Attach::Auto,
        forward_in: false,
        ports_table: true,
    };
    let (lan, wan) = gw.start(&mut lab);
    let content = random_bytes(FILE_LEN);
    let root = served_dir(&lab, "ftp-root", &content);
    let log = ftp_server(&mut lab, &wan, FtpServer::Vsftpd, WAN4, 2121, &root, false);
    let plan = [("curl", Data::Port), ("curl", Data::Pasv)];
    let n = ftp_transfers(
        &lab,
        &lan,
        &Served {
            host: WAN4,
            port: 2121,
            log: &log,
        },
        &plan,
        GW4,
        &content,
    );
    assert!(related_packets(&lab, "4") >= n);
    assert!(helper_counter(&lab, "ftp", "rewrite") >= 1, "the PORT");
}

/// A Python ftplib client that sends PORT (active) or PASV (passive), writes what it asked
/// for to `ready`, waits for the file `go`, then downloads `blob.bin` to `out`.
const HELD_CLIENT: &str = r#"
import ftplib, os, socket, sys, time
host, mode, ready, go, out = sys.argv[1:6]
f = ftplib.FTP(timeout=10)
f.trust_server_pasv_ipv4_address = True
f.connect(host, 21)
f.login()
f.voidcmd("TYPE I")
if mode == "active":
    listener = f.makeport()
    what = "active %d" % listener.getsockname()[1]
else:
    addr, port = f.makepasv()
    what = "passive %d" % port
with open(ready + ".tmp", "w") as r:
    r.write(what)
os.rename(ready + ".tmp", ready)
deadline = time.time() + 20
while not os.path.exists(go):
    if time.time() > deadline:
        sys.exit("no go")
    time.sleep(0.05)
# getresp: the answer to RETR is "150 Opening ...", a preliminary reply.
if mode == "active":
    f.putcmd("RETR blob.bin")
    f.getresp()
    conn, _ = listener.accept()
else:
    conn = socket.create_connection((addr, port), 10)
    f.putcmd("RETR blob.bin")
    f.getresp()
with open(out, "wb") as o:
    while True:
        b = conn.recv(65536)
        if not b:
            break
        o.write(b)
conn.close()
f.voidresp()
f.quit()
"#;

/// Holds an FTP client between its PORT/PASV and its RETR: `ct expect list` must show the
/// expectation for the announced data port (after NAT), its master the control connection;
/// then the download must use it up.
fn expectation_seen_then_used(
    lab: &Lab,
    lan: &str,
    server_log: &Path,
    active: bool,
    content: &[u8],
) {
    let mode = if active { "active" } else { "passive" };
    let (ready, go, out) = (
        lab.dir.join(format!("held-{mode}.ready")),
        lab.dir.join(format!("held-{mode}.go")),
        lab.dir.join(format!("held-{mode}.out")),
    );
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            lan,
            "python3",
            "-c",
            HELD_CLIENT,
            WAN4,
            mode,
        ])
        .args([&ready, &go, &out])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ftplib client");
    let started = wait_until(15, || ready.exists());
    let err_of = |c: &mut std::process::Child| {
        let _ = c.kill();
        let mut e = String::new();
        if let Some(mut s) = c.stderr.take() {
            let _ = s.read_to_string(&mut e);
        }
        let _ = c.wait();
        e
    };
    if !started {
        panic!(
            "ftplib client ({mode}) never got its data port:\n{}",
            err_of(&mut child)
        );
    }
    let what = fs::read_to_string(&ready).unwrap();
    // The data port the expectation is for: the passive port the server announced, or the
    // port of the PORT command as it reached the server (after NAT).
    let port: u16 = if active {
        let seen = server_saw(server_log, "PORT");
        let (addr, port) = active_target("PORT", seen.last().expect("the server logged a PORT"));
        assert_eq!(addr, GW4, "PORT as the server got it: {seen:?}");
        port
    } else {
        what.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let list = expect_list(lab);
    let ours: Vec<&String> = list
        .iter()
        .filter(|l| values(l, "dport").first() == Some(&port.to_string().as_str()))
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "{what}: one expectation for port {port} expected:\n{list:#?}"
    );
    let e = ours[0];
    eprintln!("{what}: {e}");
    assert!(e.contains("helper=ftp"), "{e}");
    assert_eq!(values(e, "proto").first(), Some(&"6"), "{e}");
    // The master is the control connection: the LAN client to the server's port 21.
    assert_eq!(values(e, "master-src").first(), Some(&LAN4), "{e}");
    assert_eq!(values(e, "master-dst").first(), Some(&WAN4), "{e}");
    assert_eq!(values(e, "dport").last(), Some(&"21"), "{e}");
    // Active: the server connects from its address to the NAT address; passive: the client
    // connects to the server's address.
    if active {
        assert_eq!(values(e, "src").first(), Some(&WAN4), "{e}");
        assert_eq!(values(e, "dst").first(), Some(&GW4), "{e}");
    } else {
        assert_eq!(values(e, "src").first(), Some(&LAN4), "{e}");
        assert_eq!(values(e, "dst").first(), Some(&WAN4), "{e}");
    }

    fs::write(&go, "").unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if t0.elapsed() > Duration::from_secs(20) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let ok = status.is_some_and(|s| s.success());
    let err = err_of(&mut child);
    assert!(ok, "ftplib client ({what}) failed ({status:?}):\n{err}");
    let got = fs::read(&out).unwrap_or_default();
    assert!(
        got == content,
        "{what}: {} bytes, content differs",
        got.len()
    );
    let left = expect_list(lab);
    assert!(
        !left
            .iter()
            .any(|l| values(l, "dport").first() == Some(&port.to_string().as_str())),
        "{what}: the expectation outlived its connection:\n{left:#?}"
    );
}

#[test]
fn ftp_server_behind_dnat_port_forward() {
    if !ftp_env(&[FtpServer::Vsftpd]) {
        return;
    }
    let mut lab = Lab::new("fd");
    let gw = Gateway {
        helpers: &[("ftp", "tcp", 21)],
        attach: EXPLICIT,
        forward_in: true,
        ports_table: false,
    };
    let (lan, wan) = gw.start(&mut lab);
    let content = random_bytes(FILE_LEN);
    let root = served_dir(&lab, "ftp-root", &content);
    let log4 = ftp_server(&mut lab, &lan, FtpServer::Vsftpd, LAN4, 21, &root, false);
    let log6 = ftp_server(&mut lab, &lan, FtpServer::Vsftpd, LAN6, 21, &root, false);

    // The WAN client only knows the router's public address. Passive: the LAN server answers
    // PASV with its own address, and the 227 must reach the client with the public one.
    for data in [Data::Pasv, Data::Epsv, Data::Port] {
        let t = curl_ftp(&lab, &wan, GW4, 21, data, 20);
        t.assert_got(&content);
        if data == Data::Pasv {
            let answers = t.lines_with("< 227 ");
            assert!(
                answers.len() == 1 && answers[0].contains("(198,51,100,1,"),
                "the 227 answer must carry the public address: {answers:?}\n{}",
                t.trace
            );
            let sent = fs::read_to_string(&log4).unwrap();
            assert!(
                sent.lines()
                    .any(|l| l.contains("227 Entering Passive Mode (192,0,2,2,")),
                "the server announced its own address:\n{sent}"
            );
        }
    }
    let t = lftp_get(&lab, &wan, GW4, 21, true);
    t.assert_got(&content);
    // Client outside, server inside: the server sees the real client (a port forward does
    // not masquerade), its PORT unchanged.
    let seen = server_saw(&log4, "PORT");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(active_target("PORT", &seen[0]).0, WAN4);
    let text = fs::read_to_string(&log4).unwrap();
    assert!(
        text.contains(&format!("Client \"{WAN4}\"")) && !text.contains(GW4),
        "vsftpd should see the WAN client:\n{text}"
    );

    // IPv6: 229 carries no address; the data connection is forwarded by the expectation.
    for data in [Data::Epsv, Data::Eprt] {
        curl_ftp(&lab, &wan, GW6, 21, data, 20).assert_got(&content);
    }
    lftp_get(&lab, &wan, GW6, 21, true).assert_got(&content);
    let seen = server_saw(&log6, "EPRT");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(active_target("EPRT", &seen[0]).0, WAN6);

    let (r4, r6) = (related_packets(&lab, "4"), related_packets(&lab, "6"));
    assert!(r4 >= 4 && r6 >= 3, "RELATED packets v4 {r4}, v6 {r6}");
    assert!(
        helper_counter(&lab, "ftp", "rewrite") >= 2,
        "the 227 answers (curl, lftp)"
    );
}

#[test]
fn ftp_without_helper_data_connections_fail() {
    if !ftp_env(&[FtpServer::Vsftpd]) {
        return;
    }
    let mut lab = Lab::new("fn");
    let gw = Gateway {
        helpers: &[("ftp", "tcp", 21)],
        attach: Attach::Off,
        forward_in: false,
        ports_table: false,
    };
    let (lan, wan) = gw.start(&mut lab);
    let content = random_bytes(FILE_LEN);
    let root = served_dir(&lab, "ftp-root", &content);
    // A server that connects to whatever address PORT names, so that it is the gateway that
    // stops the data connection, not the server's own check.
    let log = ftp_server(&mut lab, &wan, FtpServer::Vsftpd, WAN4, 21, &root, true);

    // The control connection alone works: SIZE needs no data connection.
    let o = run_for(
        &lan,
        10,
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "-I",
            "ftp://198.51.100.2/blob.bin",
        ],
    );
    let head = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && head.contains(&format!("Content-Length: {FILE_LEN}")),
        "control connection: {o:?}"
    );

    // Active: the PORT address is the LAN host's, unrewritten; the server's connection to it
    // is new to the gateway and dropped, so curl waits in vain.
    let t = curl_ftp(&lab, &lan, WAN4, 21, Data::Port, 4);
    assert_ne!(t.body, content, "{}", t.trace);
    assert_eq!(
        t.code,
        Some(28),
        "{}: curl must time out:\n{}",
        t.what,
        t.trace
    );
    let seen = server_saw(&log, "PORT");
    assert_eq!(
        seen.last().map(|a| active_target("PORT", a).0),
        Some(LAN4.to_string()),
        "without the helper PORT arrives unrewritten: {seen:?}"
    );
    // Passive: the client's connection to the passive port is new and dropped.
    let t = curl_ftp(&lab, &lan, WAN4, 21, Data::Pasv, 4);
    assert_ne!(t.body, content, "{}", t.trace);
    assert_eq!(
        t.code,
        Some(28),
        "{}: curl must time out:\n{}",
        t.what,
        t.trace
    );

    assert_eq!(related_packets(&lab, "4"), 0);
    assert!(expect_list(&lab).is_empty());
    let parsed = helper_stats(&lab, "ftp")
        .and_then(|s| s.into_iter().find(|(k, _)| k == "parsed").map(|(_, v)| v));
    assert!(
        parsed.unwrap_or(0) == 0,
        "no helper attached, yet parsed={parsed:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// TFTP

fn tftp_env() -> bool {
    live_env_with(&[
        ("tftp", "-V"),
        ("in.tftpd", "-V"),
        ("ss", "-V"),
        ("timeout", "--version"),
    ])
}

/// tftpd-hpa on port 69 of `WAN4` and `WAN6`, serving `root` (`--secure`: chrooted there).
fn tftp_servers(lab: &mut Lab, ns: &str, root: &Path) {
    let root_s = root.to_string_lossy().into_owned();
    for (fam, addr) in [("-4", WAN4.to_string()), ("-6", format!("[{WAN6}]"))] {
        let listen = format!("{addr}:69");
        spawn_daemon(
            lab,
            ns,
            &format!("tftpd{fam}.log"),
            &["in.tftpd", "-L", fam, "-a", &listen, "-s", &root_s],
        );
    }
    let up = wait_until(10, || {
        let o = run_in(ns, &["ss", "-Hlun", "sport", "=", ":69"]);
        String::from_utf8_lossy(&o.stdout).lines().count() == 2
    });
    assert!(up, "tftpd did not start");
}

/// Fetches `blob.bin` from `host` with the tftp-hpa client inside `ns` within `secs`.
fn tftp_hpa_get(lab: &Lab, ns: &str, host: &str, secs: u32) -> Transfer {
    let out = lab.dir.join("tftp.out");
    let _ = fs::remove_file(&out);
    let fam = if host.contains(':') { "-6" } else { "-4" };
    let out_s = out.to_string_lossy().into_owned();
    let t0 = Instant::now();
    let o = run_for(
        ns,
        secs,
        &[
            "tftp", fam, "-m", "binary", host, "-c", "get", "blob.bin", &out_s,
        ],
    );
    Transfer {
        what: format!("tftp {host}"),
        code: o.status.code(),
        trace: String::from_utf8_lossy(&o.stdout).into_owned()
            + &String::from_utf8_lossy(&o.stderr),
        body: fs::read(&out).unwrap_or_default(),
        secs: t0.elapsed().as_secs_f64(),
    }
}

/// Fetches `blob.bin` from `host` with curl's TFTP inside `ns` within `secs`.
fn curl_tftp(lab: &Lab, ns: &str, host: &str, secs: u32) -> Transfer {
    let out = lab.dir.join("curl-tftp.out");
    let _ = fs::remove_file(&out);
    let url = format!("tftp://{}/blob.bin", url_host(host));
    let (max, out_s) = (secs.to_string(), out.to_string_lossy().into_owned());
    let t0 = Instant::now();
    let o = run_for(
        ns,
        secs + 5,
        &["curl", "-sS", "-v", "--max-time", &max, "-o", &out_s, &url],
    );
    Transfer {
        what: format!("curl {url}"),
        code: o.status.code(),
        trace: String::from_utf8_lossy(&o.stderr).into_owned(),
        body: fs::read(&out).unwrap_or_default(),
        secs: t0.elapsed().as_secs_f64(),
    }
}

#[test]
fn tftp_hpa_and_curl_through_masquerade() {
    if !tftp_env() {
        return;
    }
    let mut lab = Lab::new("tt");
    let gw = Gateway {
        helpers: &[("tftp", "udp", 69)],
        attach: EXPLICIT,
        forward_in: false,
        ports_table: false,
    };
    let (lan, wan) = gw.start(&mut lab);
    let content = random_bytes(FILE_LEN);
    let root = served_dir(&lab, "tftp-root", &content);
    tftp_servers(&mut lab, &wan, &root);

    // The server answers from a new port: only the expectation lets that back in, and NAT
    // must send it on to the LAN client's port.
    for host in [WAN4, WAN6] {
        for t in [
            tftp_hpa_get(&lab, &lan, host, 30),
            curl_tftp(&lab, &lan, host, 30),
        ] {
            t.assert_got(&content);
            eprintln!("{}: {} bytes in {:.2} s", t.what, t.body.len(), t.secs);
        }
    }
    let (r4, r6) = (related_packets(&lab, "4"), related_packets(&lab, "6"));
    assert!(r4 >= 2 && r6 >= 2, "RELATED packets v4 {r4}, v6 {r6}");
    assert!(
        helper_counter(&lab, "tftp", "parsed") >= 4,
        "four read requests"
    );
}

#[test]
fn tftp_without_helper_fails() {
    if !tftp_env() {
        return;
    }
    let mut lab = Lab::new("tn");
    let gw = Gateway {
        helpers: &[("tftp", "udp", 69)],
        attach: Attach::Off,
        forward_in: false,
        ports_table: false,
    };
    let (lan, wan) = gw.start(&mut lab);
    let content = random_bytes(FILE_LEN);
    let root = served_dir(&lab, "tftp-root", &content);
    tftp_servers(&mut lab, &wan, &root);

    // The read request passes (port 69 is open); the answer from the server's new port is
    // not part of any connection and is dropped.
    let t = curl_tftp(&lab, &lan, WAN4, 3);
    assert_eq!(t.code, Some(28), "{}: must time out:\n{}", t.what, t.trace);
    assert!(t.body.is_empty(), "{}: {} bytes", t.what, t.body.len());
    let t = tftp_hpa_get(&lab, &lan, WAN4, 3);
    assert_ne!(t.body, content, "{}", t.trace);
    assert_ne!(t.code, Some(0), "{}: {}", t.what, t.trace);
    assert_eq!(related_packets(&lab, "4"), 0);
}

// ---------------------------------------------------------------------------------------------
// talk

/// A tmux server of the test's own (socket in the lab folder), killed on drop.
struct Tmux {
    sock: PathBuf,
    pid: Option<i32>,
}

impl Tmux {
    fn new(lab: &Lab) -> Tmux {
        Tmux {
            sock: lab.dir.join("tmux.sock"),
            pid: None,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .args(["-f", "/dev/null"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    /// A detached session `name` running `cmd` (a shell command line) in a 100x30 window.
    fn session(&mut self, name: &str, cmd: &str) {
        let o = self.run(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "100",
            "-y",
            "30",
            cmd,
        ]);
        assert!(o.status.success(), "tmux new-session {name}: {o:?}");
        if self.pid.is_none() {
            self.pid = self.show(name, "#{pid}").parse().ok();
        }
    }

    /// A format of the session's pane (`#{pane_tty}`, `#{pane_pid}`).
    fn show(&self, name: &str, format: &str) -> String {
        let o = self.run(&["display-message", "-p", "-t", name, format]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    fn screen(&self, name: &str) -> String {
        let o = self.run(&["capture-pane", "-p", "-J", "-t", name]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Types `text` literally, then Enter if `enter`.
    fn type_text(&self, name: &str, text: &str, enter: bool) {
        assert!(self
            .run(&["send-keys", "-t", name, "-l", text])
            .status
            .success());
        if enter {
            assert!(self
                .run(&["send-keys", "-t", name, "Enter"])
                .status
                .success());
        }
    }

    /// Waits until the pane shows `needle`; returns the screen.
    fn wait_for(&self, name: &str, needle: &str, secs: u64) -> String {
        wait_until(secs, || self.screen(name).contains(needle));
        self.screen(name)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        if let Some(pid) = self.pid.and_then(rustix::process::Pid::from_raw) {
            // Only if kill-server did not end it (it is ours: we started it).
            if rustix::process::test_kill_process(pid).is_ok() {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// A glibc `struct utmp` record (the 384-byte layout of 64-bit Linux): `user` logged in on
/// `line` (e.g. "pts/3") by process `pid`, a USER_PROCESS entry as login(1) writes it.
fn utmp_login(user: &str, line: &str, pid: i32) -> Vec<u8> {
    const USER_PROCESS: i16 = 7;
    let mut r = vec![0u8; 384];
    r[0..2].copy_from_slice(&USER_PROCESS.to_ne_bytes());
    r[4..8].copy_from_slice(&pid.to_ne_bytes());
    r[8..8 + line.len()].copy_from_slice(line.as_bytes()); // ut_line[32]
    let id = &line.as_bytes()[line.len().saturating_sub(4)..];
    r[40..40 + id.len()].copy_from_slice(id); // ut_id[4]
    r[44..44 + user.len()].copy_from_slice(user.as_bytes()); // ut_user[32]
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i32;
    r[340..344].copy_from_slice(&now.to_ne_bytes()); // ut_tv.tv_sec
    r
}

/// Starts openbsd-inetd in `ns` with talkd on the ntalk (518) and talk (517) ports. It runs
/// in a mount namespace of its own where /var/run is the lab folder `run`, so talkd reads the
/// utmp file the test writes there instead of the machine's (and inetd's pid file lands there
/// too). Returns the folder.
fn talk_daemons(lab: &mut Lab, ns: &str, tag: &str) -> PathBuf {
    let run = lab.dir.join(format!("run-{tag}"));
    fs::create_dir_all(&run).unwrap();
    fs::write(run.join("utmp"), b"").unwrap();
    // As Debian's /etc/inetd.conf has them.
    let conf = lab.write(
        &format!("inetd-{tag}.conf"),
        "ntalk\tdgram\tudp\twait\tnobody.tty\t/usr/sbin/in.ntalkd\tin.ntalkd\n\
         talk\tdgram\tudp\twait\tnobody.tty\t/usr/sbin/in.talkd\tin.talkd\n",
    );
    let (run_s, conf_s) = (
        run.to_string_lossy().into_owned(),
        conf.to_string_lossy().into_owned(),
    );
    spawn_daemon(
        lab,
        ns,
        &format!("inetd-{tag}.log"),
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount --bind \"$1\" /var/run && exec inetd -d -i \"$2\"",
            "sh",
            &run_s,
            &conf_s,
        ],
    );
    assert!(
        wait_until(10, || listening(ns, "udp", 518)),
        "inetd in {ns} did not start:\n{}",
        fs::read_to_string(lab.dir.join(format!("inetd-{tag}.log"))).unwrap_or_default()
    );
    run
}

#[test]
fn talk_through_masquerade_in_tmux() {
    let programs = ["/usr/bin/talk", "/usr/sbin/in.ntalkd", "/usr/sbin/inetd"];
    if !live_env_with_files(
        &[
            ("tmux", "-V"),
            ("ss", "-V"),
            ("unshare", "--version"),
            ("chgrp", "--version"),
        ],
        &programs,
    ) {
        return;
    }
    let mut lab = Lab::new("tk");
    let gw = Gateway {
        helpers: &[("ntalk", "udp", 518), ("talk", "udp", 517)],
        attach: Attach::Auto,
        forward_in: false,
        ports_table: false,
    };
    let (lan, wan) = gw.start(&mut lab);
    // Both machines run talkd: the caller's keeps the invitation, the callee's announces it.
    talk_daemons(&mut lab, &lan, "caller");
    let callee_run = talk_daemons(&mut lab, &wan, "callee");

    let mut tmux = Tmux::new(&lab);
    // The callee is "logged in" on a shell in the WAN namespace: talkd finds the user's
    // terminal in utmp and writes the announcement there if its group (tty) may write.
    tmux.session(
        "callee",
        &format!("ip netns exec {wan} env TERM=screen PS1='callee$ ' sh"),
    );
    let tty = tmux.show("callee", "#{pane_tty}");
    let pid: i32 = tmux.show("callee", "#{pane_pid}").parse().unwrap();
    let line = tty.strip_prefix("/dev/").expect("a /dev tty");
    sh(&["chgrp", "tty", &tty]);
    sh(&["chmod", "620", &tty]);
    fs::write(callee_run.join("utmp"), utmp_login("root", line, pid)).unwrap();

    // The caller, behind the masquerade, calls root on the WAN host.
    tmux.session(
        "caller",
        &format!("ip netns exec {lan} env TERM=screen talk root@{WAN4}"),
    );
    let screen = tmux.wait_for("callee", "respond with:", 15);
    let respond = screen
        .lines()
        .find(|l| l.contains("respond with:"))
        .and_then(|l| l.split("talk ").last())
        .map(str::trim)
        .unwrap_or_else(|| {
            panic!(
                "no announcement on the callee's terminal:\n{screen}\ncaller:\n{}",
                tmux.screen("caller")
            )
        });
    // talkd names the caller by the address in the request: the NAT address.
    assert_eq!(respond, format!("root@{GW4}"), "announcement:\n{screen}");

    // Before the callee answers, the gateway expects its two connections back to the caller:
    // the lookup at the caller's talkd (UDP 518) and the talk session itself (TCP, the port
    // the caller listens on), both to the NAT address.
    let listen = run_in(&lan, &["ss", "-Hltn"]);
    let listen = String::from_utf8_lossy(&listen.stdout).into_owned();
    let tcp_port: u16 = listen
        .split_whitespace()
        .filter_map(|w| w.rsplit_once(':'))
        .filter_map(|(_, p)| p.parse().ok())
        .find(|&p| p != 0)
        .unwrap_or_else(|| panic!("the caller's talk listens nowhere:\n{listen}"));
    let list = expect_list(&lab);
    for (proto, port) in [("17", 518), ("6", tcp_port)] {
        let port = port.to_string();
        assert!(
            list.iter()
                .any(|e| values(e, "proto").first() == Some(&proto)
                    && values(e, "dst").first() == Some(&GW4)
                    && values(e, "dport").first() == Some(&port.as_str())
                    && e.contains("helper=ntalk")),
            "no expectation proto={proto} dst={GW4} dport={port}:\n{list:#?}"
        );
    }

    tmux.type_text("callee", &format!("talk {respond}"), true);
    // The callee's lookup reaches the caller's talkd through the expectation (DNAT to port
    // 518, not to the caller's client port), its answer is rewritten to the NAT address, and
    // the callee's TCP connection comes back in through the other expectation.
    for side in ["caller", "callee"] {
        let s = tmux.wait_for(side, "[Connection established]", 15);
        assert!(
            s.contains("[Connection established]"),
            "{side} never connected:\n{s}\nother side:\n{}\n{}",
            tmux.screen(if side == "caller" { "callee" } else { "caller" }),
            gateway_state(&lab)
        );
    }
    for (from, to, text) in [
        ("caller", "callee", "greetings from the lan side"),
        ("callee", "caller", "and hello from the wan side"),
    ] {
        tmux.type_text(from, text, false);
        let s = tmux.wait_for(to, text, 10);
        assert!(
            s.contains(text),
            "{text:?} typed on the {from}'s side, {to} shows:\n{s}"
        );
    }
    assert!(
        helper_counter(&lab, "ntalk", "parsed") >= 2,
        "ANNOUNCE and LOOK_UP"
    );
    assert!(
        related_packets(&lab, "4") >= 2,
        "the lookup and the session came in as RELATED"
    );
}
