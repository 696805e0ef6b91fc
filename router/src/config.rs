//! The TOML configuration (the contract in DESIGN.md, "Configuration").
//!
//! Errors name `file:line:column` and what was expected. Unknown keys are
//! errors too: a typo must not silently change what the router does.

use ipnet::IpNet;
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Kind of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfaceKind {
    /// Layer 3: raw IP packets.
    Tun,
    /// Layer 2: Ethernet frames.
    Tap,
}

/// One `[[interface]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// Device name.
    pub name: String,
    /// TUN or TAP.
    pub kind: IfaceKind,
    /// MTU of the link.
    pub mtu: u32,
    /// The router's own addresses on this link (with their prefixes).
    pub addresses: Vec<IpNet>,
    /// Namespace to move the device into.
    pub netns: Option<String>,
    /// Kernel-side addresses in that namespace.
    pub peer_addresses: Vec<IpNet>,
    /// Kernel-side routes via this device ("default" or a prefix).
    pub peer_routes: Vec<String>,
    /// Segmentation and checksum offload (`IFF_VNET_HDR`, TSO and checksum offload towards
    /// the kernel): TCP travels as super-packets of up to 64 KiB. TUN only; all interfaces or
    /// none.
    pub offload: bool,
}

/// One `[[route]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteConfig {
    /// Destination prefix.
    pub prefix: IpNet,
    /// Egress interface name.
    pub interface: String,
    /// Next hop, if not on-link.
    pub via: Option<IpAddr>,
}

/// Where a value is written in the configuration, for errors found after parsing (a rule
/// file named there cannot be read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// The configuration file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// `[rules]`: rule files, resolved against the config file's folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulesConfig {
    /// iptables-save file.
    pub ipv4: Option<PathBuf>,
    /// ip6tables-save file.
    pub ipv6: Option<PathBuf>,
    /// Where `ipv4` is set, for errors about the file as a whole (missing, unreadable).
    pub ipv4_at: Option<Position>,
    /// Where `ipv6` is set.
    pub ipv6_at: Option<Position>,
}

/// Default of `[conntrack] new_flows_per_batch`.
pub const DEFAULT_NEW_FLOWS_PER_BATCH: usize = 8;

/// `[conntrack]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConntrackConfig {
    /// Maximum number of connections.
    pub max: usize,
    /// Timeout overrides by name (`tcp_established = 3600`), in seconds.
    pub timeouts: Vec<(String, u64)>,
    /// Pick up TCP connections seen mid-stream (`nf_conntrack_tcp_loose`).
    pub tcp_loose: bool,
    /// Accept out-of-window TCP packets (`nf_conntrack_tcp_be_liberal`).
    pub tcp_be_liberal: bool,
    /// Verify L4 checksums of packets entering the router (`nf_conntrack_checksum`).
    pub checksum: bool,
    /// Live router only: most new connections each shard's part of a worker's read batch
    /// may start; packets of further new connections are dropped and counted (0: no limit).
    /// See [`crate::engine::Engine::set_new_flow_budget`].
    pub new_flows_per_batch: usize,
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig {
            max: 262_144,
            timeouts: Vec::new(),
            tcp_loose: true,
            tcp_be_liberal: false,
            checksum: true,
            new_flows_per_batch: DEFAULT_NEW_FLOWS_PER_BATCH,
        }
    }
}

/// `[nat]`: how UDP mappings behave (RFC 4787). The defaults are netfilter's:
/// address-and-port-dependent mapping and filtering, refreshed by traffic in
/// both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatConfig {
    /// `udp_mapping = "endpoint-independent"`: one external port per internal
    /// endpoint whatever the destination (REQ-1).
    pub udp_eim: bool,
    /// `udp_filtering = "endpoint-independent"`: any external host may send to
    /// a mapped port and reach the internal endpoint (REQ-8, "full cone").
    /// Needs endpoint-independent mapping.
    pub udp_eif: bool,
    /// `udp_refresh = "outbound"`: only packets from the internal endpoint keep
    /// the mapping alive (REQ-6 allows this).
    pub udp_outbound_refresh: bool,
}

/// `[defrag]`: limits of fragment reassembly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefragSettings {
    /// Limits handed to the reassembly module.
    pub limits: l3proto::defrag::DefragConfig,
    /// Send ICMP Time Exceeded (code 1) when a datagram whose first fragment
    /// arrived times out: ICMPv6 always, ICMP only for datagrams addressed to
    /// the router (RFC 1122 §3.3.2 leaves it to the destination host). Off by
    /// default: a transit router stays silent.
    pub time_exceeded: bool,
}

/// Default of `[process] user`.
pub const DEFAULT_USER: &str = "nobody";

/// `[process]`: whom the live gateway runs as once its devices are up (see
/// [`crate::live::privileges`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessConfig {
    /// User name; `"root"` (any name of uid 0) keeps every privilege, for debugging.
    pub user: String,
    /// Group name; `None`: the user's login group.
    pub group: Option<String>,
    /// Where `user` is set, for errors found when `run` looks it up again.
    pub user_at: Option<Position>,
    /// Where `group` is set.
    pub group_at: Option<Position>,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            user: DEFAULT_USER.to_owned(),
            group: None,
            user_at: None,
            group_at: None,
        }
    }
}

/// `[helpers]`: which application helpers run and on which ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HelpersConfig {
    /// `auto_assign = true`: attach a helper to every new connection to one of its ports
    /// (the kernel's `nf_conntrack_helper = 1`). Off by default, as in Linux since 4.7:
    /// a helper is then attached only by `-j CT --helper NAME` in the raw table.
    pub auto_assign: bool,
    /// `[helpers.NAME]` tables: ports and the `loose` switch, by helper name.
    pub settings: Vec<(String, helpers::HelperConfig)>,
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Interfaces, in file order (an interface's index is its id).
    pub interfaces: Vec<InterfaceConfig>,
    /// Static routes.
    pub routes: Vec<RouteConfig>,
    /// Rule files.
    pub rules: RulesConfig,
    /// Conntrack settings.
    pub conntrack: ConntrackConfig,
    /// NAT behaviour.
    pub nat: NatConfig,
    /// Fragment reassembly.
    pub defrag: DefragSettings,
    /// Whom the live gateway runs as.
    pub process: ProcessConfig,
    /// Application helpers.
    pub helpers: HelpersConfig,
    /// Folder of the config file (relative paths are resolved against it).
    pub base_dir: PathBuf,
    /// The config file itself.
    pub path: PathBuf,
}

/// A configuration error with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// File the error is in.
    pub file: String,
    /// 1-based line (0 if unknown).
    pub line: usize,
    /// 1-based column (0 if unknown).
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    interface: Vec<RawInterface>,
    #[serde(default)]
    route: Vec<RawRoute>,
    #[serde(default)]
    routes: Option<RawRoutes>,
    #[serde(default)]
    rules: Option<RawRules>,
    #[serde(default)]
    conntrack: Option<RawConntrack>,
    #[serde(default)]
    nat: Option<RawNat>,
    #[serde(default)]
    defrag: Option<RawDefrag>,
    #[serde(default)]
    process: Option<RawProcess>,
    #[serde(default)]
    /// Read by hand (`helpers_config`): its keys are helper names, and serde's flatten would
    /// lose the positions errors need.
    helpers: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    #[serde(default)]
    user: Option<Spanned<String>>,
    #[serde(default)]
    group: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefrag {
    #[serde(default)]
    timeout: Option<Spanned<i64>>,
    #[serde(default)]
    memory_high: Option<Spanned<i64>>,
    #[serde(default)]
    memory_low: Option<Spanned<i64>>,
    #[serde(default)]
    max_datagrams: Option<Spanned<i64>>,
    #[serde(default)]
    max_fragments: Option<Spanned<i64>>,
    #[serde(default)]
    per_source: Option<Spanned<i64>>,
    #[serde(default)]
    time_exceeded: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNat {
    #[serde(default)]
    udp_mapping: Option<Spanned<String>>,
    #[serde(default)]
    udp_filtering: Option<Spanned<String>>,
    #[serde(default)]
    udp_refresh: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    name: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    mtu: Option<Spanned<i64>>,
    #[serde(default)]
    addresses: Vec<Spanned<String>>,
    #[serde(default)]
    netns: Option<Spanned<String>>,
    #[serde(default)]
    peer_addresses: Vec<Spanned<String>>,
    #[serde(default)]
    peer_routes: Vec<Spanned<String>>,
    #[serde(default)]
    offload: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    prefix: Spanned<String>,
    interface: Spanned<String>,
    #[serde(default)]
    via: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    #[serde(default)]
    ipv4: Option<Spanned<String>>,
    #[serde(default)]
    ipv6: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoutes {
    #[serde(default)]
    files: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConntrack {
    #[serde(default)]
    max: Option<Spanned<i64>>,
    #[serde(default)]
    tcp_loose: Option<bool>,
    #[serde(default)]
    tcp_be_liberal: Option<bool>,
    #[serde(default)]
    checksum: Option<bool>,
    #[serde(default)]
    new_flows_per_batch: Option<Spanned<i64>>,
    #[serde(default)]
    timeouts: Option<toml::Table>,
}

struct Ctx<'a> {
    file: String,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, offset);
        ConfigError {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    fn at<T>(&self, s: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.err(s.span().start, message)
    }

    fn position<T>(&self, s: &Spanned<T>) -> Position {
        let (line, column) = line_col(self.text, s.span().start);
        Position {
            file: self.file.clone(),
            line,
            column,
        }
    }
}

/// `[helpers]`: `auto_assign`, and a `[helpers.NAME]` table per helper with `ports` and
/// `loose`. Names are checked against the helpers registry, so adding a helper needs no
/// change here. Positions are found in the text (the table was read without spans).
fn helpers_config(cx: &Ctx<'_>, t: toml::Table) -> Result<HelpersConfig, ConfigError> {
    let at = |needle: &str| {
        let start = cx.text.find("[helpers").unwrap_or(0);
        cx.text[start..].find(needle).map_or(start, |o| start + o)
    };
    let known = helpers::Registry::builtin();
    let mut out = HelpersConfig::default();
    for (key, value) in t {
        if key == "auto_assign" {
            out.auto_assign = value.as_bool().ok_or_else(|| {
                cx.err(
                    at("auto_assign"),
                    "[helpers] auto_assign: expected true or false",
                )
            })?;
            continue;
        }
        let here = cx
            .text
            .find(&format!("helpers.\"{key}\""))
            .unwrap_or_else(|| at(&format!("helpers.{key}")));
        if known.get(&key).is_none() {
            let names: Vec<&str> = known.names().collect();
            return Err(cx.err(
                here,
                format!(
                    "[helpers]: no helper named {key:?} (expected auto_assign or one of: {})",
                    names.join(", ")
                ),
            ));
        }
        let toml::Value::Table(h) = value else {
            return Err(cx.err(
                here,
                format!("[helpers.{key}]: expected a table with ports and loose"),
            ));
        };
        let mut cfg = helpers::HelperConfig::default();
        for (k, v) in h {
            let pos = cx.text[here..].find(&k).map_or(here, |o| here + o);
            match k.as_str() {
                "ports" => {
                    let bad = || {
                        cx.err(
                            pos,
                            format!(
                                "[helpers.{key}] ports: expected a list of ports between 1 and \
                                 65535"
                            ),
                        )
                    };
                    let list = v.as_array().ok_or_else(bad)?;
                    let mut ports = Vec::new();
                    for p in list {
                        match p.as_integer().and_then(|n| u16::try_from(n).ok()) {
                            Some(n) if n > 0 => ports.push(n),
                            _ => {
                                // Point at the bad element when it can be found in the list.
                                let open = cx.text[pos..].find('[').map_or(pos, |o| pos + o);
                                let at = cx.text[open..]
                                    .find(&p.to_string())
                                    .map_or(pos, |o| open + o);
                                return Err(cx.err(
                                    at,
                                    format!(
                                        "[helpers.{key}] ports: expected a list of ports \
                                         between 1 and 65535"
                                    ),
                                ));
                            }
                        }
                    }
                    cfg.ports = Some(ports);
                }
                "loose" => {
                    cfg.loose = v.as_bool().ok_or_else(|| {
                        cx.err(
                            pos,
                            format!("[helpers.{key}] loose: expected true or false"),
                        )
                    })?;
                }
                other => {
                    return Err(cx.err(
                        pos,
                        format!("[helpers.{key}]: unknown key {other:?} (expected ports or loose)"),
                    ))
                }
            }
        }
        out.settings.push((key, cfg));
    }
    // File order (the table came back sorted by name).
    out.settings.sort_by_key(|(k, _)| {
        cx.text
            .find(&format!("helpers.{k}"))
            .or_else(|| cx.text.find(&format!("helpers.\"{k}\"")))
    });
    // The registry's own checks: a port claimed twice, an empty list.
    if let Err(e) = helpers::Registry::with_config(&out.settings) {
        return Err(cx.err(at("[helpers"), format!("[helpers]: {e}")));
    }
    Ok(out)
}

/// Why Linux would refuse an interface name or read it as something else (`dev_valid_name`
/// and the `%d` template of `dev_alloc_name`), if it would.
fn bad_ifname(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is empty");
    }
    if name.len() > 15 {
        return Some("is longer than 15 bytes (IFNAMSIZ)");
    }
    if name == "." || name == ".." {
        return Some("is \".\" or \"..\"");
    }
    // Linux checks bytes with its own isspace(), which counts 0xa0 too: a name whose UTF-8
    // holds that byte (U+00A0, 'à', ...) is refused there, so here as well.
    for b in name.bytes() {
        match b {
            b'/' => return Some("contains '/'"),
            b':' => return Some("contains ':' (alias syntax)"),
            b'%' => return Some("contains '%' (the kernel reads it as a name template)"),
            0 => return Some("contains a NUL byte"),
            b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0 => {
                return Some("contains white space")
            }
            _ => {}
        }
    }
    None
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Config {
    /// Reads and validates a config file (and the route files it names).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = rules::textfile::read(path, rules::textfile::MAX_TEXT_FILE).map_err(|e| {
            let (line, column) = match e {
                rules::textfile::TextError::NotUtf8 { line, column, .. } => (line, column),
                _ => (0, 0),
            };
            ConfigError {
                file: path.display().to_string(),
                line,
                column,
                message: if line == 0 {
                    format!("cannot read: {e}")
                } else {
                    e.to_string()
                },
            }
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut c = Config::parse(&text, &path.display().to_string(), &base)?;
        c.path = path.to_path_buf();
        Ok(c)
    }

    /// Parses config text; `file` names it in errors, `base_dir` resolves paths. Route files
    /// named in `[routes]` are read too.
    pub fn parse(text: &str, file: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let cx = Ctx {
            file: file.to_string(),
            text,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let off = e.span().map_or(0, |s| s.start);
            let msg = e.message().to_string();
            let mut err = cx.err(off, msg);
            if e.span().is_none() {
                err.line = 0;
            }
            err
        })?;
        let mut interfaces = Vec::new();
        for i in &raw.interface {
            let name = i.name.get_ref().clone();
            if let Some(why) = bad_ifname(&name) {
                return Err(cx.at(
                    &i.name,
                    format!(
                        "interface name {name:?} {why}: expected 1 to 15 bytes without '/', ':', \
                         '%' or white space, and not \".\" or \"..\""
                    ),
                ));
            }
            if interfaces.iter().any(|o: &InterfaceConfig| o.name == name) {
                return Err(cx.at(&i.name, format!("duplicate interface name {name:?}")));
            }
            let kind = match i.kind.get_ref().as_str() {
                "tun" => IfaceKind::Tun,
                "tap" => IfaceKind::Tap,
                other => {
                    return Err(cx.at(
                        &i.kind,
                        format!("expected \"tun\" or \"tap\", found {other:?}"),
                    ))
                }
            };
            let mtu = match &i.mtu {
                None => 1500,
                Some(m) => {
                    let v = *m.get_ref();
                    // IPv6 needs 1280 (RFC 8200 §5); IPv4 needs 68 (RFC 791).
                    let min = if i.addresses.iter().any(|a| a.get_ref().contains(':')) {
                        1280
                    } else {
                        68
                    };
                    if !(min..=65535).contains(&v) {
                        return Err(cx.at(
                            m,
                            format!("expected an MTU between {min} and 65535, found {v}"),
                        ));
                    }
                    v as u32
                }
            };
            let nets = |v: &[Spanned<String>]| -> Result<Vec<IpNet>, ConfigError> {
                v.iter()
                    .map(|s| {
                        s.get_ref().parse::<IpNet>().map_err(|_| {
                            cx.at(s, format!("expected an address with prefix length like \"192.0.2.1/24\" or \"2001:db8::1/64\", found {:?}", s.get_ref()))
                        })
                    })
                    .collect()
            };
            let addresses = nets(&i.addresses)?;
            let peer_addresses = nets(&i.peer_addresses)?;
            let mut peer_routes = Vec::new();
            for r in &i.peer_routes {
                let v = r.get_ref();
                if v != "default" && v.parse::<IpNet>().is_err() {
                    return Err(cx.at(r, format!("expected \"default\" or a prefix like \"198.51.100.0/24\", found {v:?}")));
                }
                peer_routes.push(v.clone());
            }
            if (!peer_addresses.is_empty() || !peer_routes.is_empty()) && i.netns.is_none() {
                let s = i
                    .peer_addresses
                    .first()
                    .or(i.peer_routes.first())
                    .unwrap_or(&i.name);
                return Err(cx.at(
                    s,
                    "peer_addresses and peer_routes need `netns` (the namespace to configure)",
                ));
            }
            let netns = match &i.netns {
                // A name under /run/netns: no '/', not "." or "..", no NUL.
                Some(n)
                    if n.get_ref().is_empty()
                        || n.get_ref().contains(['/', '\0'])
                        || n.get_ref() == "."
                        || n.get_ref() == ".." =>
                {
                    return Err(cx.at(
                        n,
                        format!(
                            "expected a network namespace name (a file name: no '/', not \
                             \".\" or \"..\"), found {:?}",
                            n.get_ref()
                        ),
                    ))
                }
                Some(n) => Some(n.get_ref().clone()),
                None => None,
            };
            let offload = i.offload.as_ref().is_some_and(|o| *o.get_ref());
            if let Some(o) = &i.offload {
                if offload && kind != IfaceKind::Tun {
                    return Err(cx.at(o, "offload is supported on tun interfaces only"));
                }
                if interfaces.first().is_some_and(|f| f.offload != offload) {
                    return Err(cx.at(
                        o,
                        "offload must be set on every interface or on none (a segmented packet may leave by any of them)",
                    ));
                }
            } else if offload_seen(&interfaces) {
                return Err(cx.at(
                    &i.name,
                    "offload must be set on every interface or on none (a segmented packet may leave by any of them)",
                ));
            }
            interfaces.push(InterfaceConfig {
                name,
                kind,
                mtu,
                addresses,
                netns,
                peer_addresses,
                peer_routes,
                offload,
            });
        }
        let mut routes = Vec::new();
        for r in &raw.route {
            let prefix = r.prefix.get_ref().parse::<IpNet>().map_err(|_| {
                cx.at(
                    &r.prefix,
                    format!(
                        "expected a prefix like \"0.0.0.0/0\" or \"2001:db8::/32\", found {:?}",
                        r.prefix.get_ref()
                    ),
                )
            })?;
            if !interfaces.iter().any(|i| &i.name == r.interface.get_ref()) {
                return Err(cx.at(
                    &r.interface,
                    format!("no [[interface]] named {:?}", r.interface.get_ref()),
                ));
            }
            let via = match &r.via {
                None => None,
                Some(v) => {
                    let a = v.get_ref().parse::<IpAddr>().map_err(|_| {
                        cx.at(
                            v,
                            format!("expected a next-hop address, found {:?}", v.get_ref()),
                        )
                    })?;
                    if a.is_ipv4() != prefix.addr().is_ipv4() {
                        return Err(
                            cx.at(v, "next hop and prefix are of different address families")
                        );
                    }
                    Some(a)
                }
            };
            routes.push(RouteConfig {
                prefix: prefix.trunc(),
                interface: r.interface.get_ref().clone(),
                via,
            });
        }
        if let Some(rf) = &raw.routes {
            for f in &rf.files {
                let path = base_dir.join(f.get_ref());
                read_route_file(&path, &interfaces, &mut routes).map_err(|e| match e {
                    RouteFileError::Read(e) => cx.at(
                        f,
                        format!("[routes] files: cannot read {}: {e}", path.display()),
                    ),
                    RouteFileError::Syntax(e) => e,
                })?;
            }
        }
        let rules = raw
            .rules
            .map_or_else(RulesConfig::default, |r| RulesConfig {
                ipv4_at: r.ipv4.as_ref().map(|p| cx.position(p)),
                ipv6_at: r.ipv6.as_ref().map(|p| cx.position(p)),
                ipv4: r.ipv4.map(|p| base_dir.join(p.into_inner())),
                ipv6: r.ipv6.map(|p| base_dir.join(p.into_inner())),
            });
        let mut conntrack = ConntrackConfig::default();
        if let Some(c) = raw.conntrack {
            if let Some(m) = &c.max {
                let v = *m.get_ref();
                if !(1..=(1 << 30)).contains(&v) {
                    return Err(cx.at(
                        m,
                        format!("expected a maximum between 1 and 1073741824, found {v}"),
                    ));
                }
                conntrack.max = v as usize;
            }
            conntrack.tcp_loose = c.tcp_loose.unwrap_or(conntrack.tcp_loose);
            conntrack.tcp_be_liberal = c.tcp_be_liberal.unwrap_or(conntrack.tcp_be_liberal);
            conntrack.checksum = c.checksum.unwrap_or(conntrack.checksum);
            if let Some(m) = &c.new_flows_per_batch {
                let v = *m.get_ref();
                if !(0..=65_536).contains(&v) {
                    return Err(cx.at(
                        m,
                        format!(
                            "expected a number of new connections per batch between 0 (no \
                             limit) and 65536, found {v}"
                        ),
                    ));
                }
                conntrack.new_flows_per_batch = v as usize;
            }
            if let Some(t) = c.timeouts {
                let mut probe = l4proto::Timeouts::default();
                for (k, v) in t {
                    let off = text
                        .find(&format!("{k} "))
                        .or_else(|| text.find(&format!("{k}=")))
                        .unwrap_or(0);
                    let secs = v.as_integer().filter(|s| *s >= 0).ok_or_else(|| {
                        cx.err(off, format!("timeout {k:?}: expected a number of seconds"))
                    })? as u64;
                    probe.set(&k, secs).map_err(|e| cx.err(off, e))?;
                    conntrack.timeouts.push((k, secs));
                }
            }
        }
        let mut nat = NatConfig::default();
        if let Some(n) = raw.nat {
            let choice = |v: &Option<Spanned<String>>,
                          what: &str,
                          yes: &str,
                          no: &str|
             -> Result<Option<bool>, ConfigError> {
                match v {
                    None => Ok(None),
                    Some(s) if s.get_ref() == yes => Ok(Some(true)),
                    Some(s) if s.get_ref() == no => Ok(Some(false)),
                    Some(s) => Err(cx.at(
                        s,
                        format!(
                            "{what}: expected \"{yes}\" or \"{no}\", found {:?}",
                            s.get_ref()
                        ),
                    )),
                }
            };
            const EI: &str = "endpoint-independent";
            const APD: &str = "address-and-port-dependent";
            nat.udp_eim = choice(&n.udp_mapping, "udp_mapping", EI, APD)?.unwrap_or(false);
            nat.udp_eif = choice(&n.udp_filtering, "udp_filtering", EI, APD)?.unwrap_or(false);
            nat.udp_outbound_refresh =
                choice(&n.udp_refresh, "udp_refresh", "outbound", "both")?.unwrap_or(false);
            if nat.udp_eif && !nat.udp_eim {
                if let Some(f) = &n.udp_filtering {
                    return Err(cx.at(
                        f,
                        "udp_filtering = \"endpoint-independent\" needs udp_mapping = \"endpoint-independent\" (RFC 4787 REQ-8 filters on the mapping)",
                    ));
                }
            }
        }
        let mut defrag = DefragSettings::default();
        if let Some(d) = raw.defrag {
            let num = |v: &Option<Spanned<i64>>,
                       what: &str,
                       lo: i64,
                       hi: i64|
             -> Result<Option<usize>, ConfigError> {
                match v {
                    None => Ok(None),
                    Some(s) if (lo..=hi).contains(s.get_ref()) => Ok(Some(*s.get_ref() as usize)),
                    Some(s) => Err(cx.at(
                        s,
                        format!(
                            "{what}: expected a number between {lo} and {hi}, found {}",
                            s.get_ref()
                        ),
                    )),
                }
            };
            let l = &mut defrag.limits;
            const MAX_FRAGS: i64 = l3proto::defrag::MAX_LEGAL_FRAGMENTS as i64;
            if let Some(t) = num(&d.timeout, "timeout (seconds)", 1, 3600)? {
                l.timeout = Duration::from_secs(t as u64);
            }
            l.mem_high =
                num(&d.memory_high, "memory_high (bytes)", 65_536, 1 << 34)?.unwrap_or(l.mem_high);
            l.mem_low = num(&d.memory_low, "memory_low (bytes)", 0, 1 << 34)?
                .unwrap_or(l.mem_low.min(l.mem_high));
            l.max_datagrams =
                num(&d.max_datagrams, "max_datagrams", 1, 1 << 20)?.unwrap_or(l.max_datagrams);
            l.max_fragments =
                num(&d.max_fragments, "max_fragments", 2, MAX_FRAGS)?.unwrap_or(l.max_fragments);
            l.per_source = num(&d.per_source, "per_source", 1, 1 << 20)?.unwrap_or(l.per_source);
            if l.mem_low > l.mem_high {
                let at = d.memory_low.as_ref().or(d.memory_high.as_ref());
                let msg = format!(
                    "memory_low ({}) must not exceed memory_high ({})",
                    l.mem_low, l.mem_high
                );
                return Err(match at {
                    Some(s) => cx.at(s, msg),
                    None => cx.err(0, msg),
                });
            }
            defrag.time_exceeded = d.time_exceeded.unwrap_or(false);
        }
        let process = match raw.process {
            None => ProcessConfig::default(),
            Some(p) => process_config(&cx, p)?,
        };
        if interfaces.is_empty() {
            // A router without interfaces forwards nothing: surely not what was meant.
            return Err(cx.err(
                0,
                "no [[interface]]: expected at least one interface to route between",
            ));
        }
        let helpers = match raw.helpers {
            Some(t) => helpers_config(&cx, t)?,
            None => HelpersConfig::default(),
        };
        Ok(Config {
            interfaces,
            routes,
            rules,
            conntrack,
            nat,
            defrag,
            process,
            helpers,
            base_dir: base_dir.to_path_buf(),
            path: PathBuf::from(file),
        })
    }

    /// The id (index) of the interface called `name`.
    pub fn iface_id(&self, name: &str) -> Option<usize> {
        self.interfaces.iter().position(|i| i.name == name)
    }
}

/// Checks `[process]`: the names given must exist here, so that `tunfilter check` reports a
/// typo at its key rather than `run` failing after the devices are up. The defaults are looked
/// up only by `run`: `check` and `sim` must work on a host without a `nobody` user.
fn process_config(cx: &Ctx<'_>, p: RawProcess) -> Result<ProcessConfig, ConfigError> {
    use crate::live::privileges::{lookup, LookupError};
    if p.user.is_none() && p.group.is_none() {
        return Ok(ProcessConfig::default());
    }
    let user = p
        .user
        .as_ref()
        .map_or(DEFAULT_USER, |u| u.get_ref().as_str());
    let group = p.group.as_ref().map(|g| g.get_ref().as_str());
    match lookup(user, group) {
        Ok(_) => {}
        Err(LookupError::User(m)) => {
            return Err(match &p.user {
                Some(u) => cx.at(u, m),
                // The default user is missing, but only `group` was written: point there.
                None => cx.at(p.group.as_ref().expect("a group was given"), m),
            });
        }
        Err(LookupError::Group(m)) => {
            return Err(cx.at(p.group.as_ref().expect("a group was given"), m))
        }
    }
    Ok(ProcessConfig {
        user: user.to_owned(),
        group: group.map(str::to_owned),
        user_at: p.user.as_ref().map(|u| cx.position(u)),
        group_at: p.group.as_ref().map(|g| cx.position(g)),
    })
}

/// Longest line of a route file.
const MAX_ROUTE_LINE: usize = 4096;

enum RouteFileError {
    /// The file could not be read: reported at the config key that names it.
    Read(String),
    /// A line is wrong: reported at its own position.
    Syntax(ConfigError),
}

/// Reads a route file: one route per line, `PREFIX [via ADDR] dev IFACE` (the format of
/// `tunfilter route list`, see [`crate::route::RouteSpec`]), `#` starting a comment. Read line by line, so a huge file never
/// sits in memory as text, and a line longer than [`MAX_ROUTE_LINE`] is an error (a path like
/// /dev/zero fails at once).
fn read_route_file(
    path: &Path,
    interfaces: &[InterfaceConfig],
    out: &mut Vec<RouteConfig>,
) -> Result<(), RouteFileError> {
    use std::io::{BufRead, Read};
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| RouteFileError::Read(e.to_string()))?;
    let mut r = std::io::BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        line_no += 1;
        let n = (&mut r)
            .take(MAX_ROUTE_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| RouteFileError::Read(e.to_string()))?;
        if n == 0 {
            return Ok(());
        }
        let err = |column: usize, message: String| {
            RouteFileError::Syntax(ConfigError {
                file: shown.clone(),
                line: line_no,
                column,
                message,
            })
        };
        if buf.len() > MAX_ROUTE_LINE && buf.last() != Some(&b'\n') {
            return Err(err(
                1,
                format!("line longer than {MAX_ROUTE_LINE} bytes: expected one route per line"),
            ));
        }
        let line = match std::str::from_utf8(&buf) {
            Ok(l) => l,
            Err(e) => {
                let good = std::str::from_utf8(&buf[..e.valid_up_to()]).unwrap_or_default();
                return Err(err(
                    good.chars().count() + 1,
                    format!(
                        "invalid UTF-8 (byte 0x{:02x}): expected UTF-8 text",
                        buf[e.valid_up_to()]
                    ),
                ));
            }
        };
        let text = line.split('#').next().unwrap_or("");
        // Words with their 1-based character columns; a route has at most 5 (on the stack:
        // a full table has a million lines).
        const MAX_WORDS: usize = 8;
        let mut words = [""; MAX_WORDS];
        let mut cols = [0usize; MAX_WORDS];
        let mut n = 0;
        let mut start = None;
        for (col, (i, c)) in text.char_indices().chain([(text.len(), ' ')]).enumerate() {
            match (c.is_whitespace(), start) {
                (false, None) => start = Some((i, col + 1)),
                (true, Some((s, sc))) => {
                    if n == MAX_WORDS {
                        return Err(err(
                            sc,
                            "too many words: expected PREFIX [via ADDR] dev IFACE".into(),
                        ));
                    }
                    words[n] = &text[s..i];
                    cols[n] = sc;
                    n += 1;
                    start = None;
                }
                _ => {}
            }
        }
        if n == 0 {
            continue;
        }
        let spec = crate::route::RouteSpec::parse(&words[..n]).map_err(|(i, m)| err(cols[i], m))?;
        let (dev, at) = spec.dev;
        if !interfaces.iter().any(|i| i.name == dev) {
            return Err(err(cols[at], format!("no [[interface]] named {dev:?}")));
        }
        out.push(RouteConfig {
            prefix: spec.prefix,
            interface: dev.to_string(),
            via: spec.via,
        });
    }
}

/// Whether an interface parsed so far has offload on.
fn offload_seen(interfaces: &[InterfaceConfig]) -> bool {
    interfaces.iter().any(|i| i.offload)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[interface]]
name = "lan0"
kind = "tun"
mtu = 1500
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]
netns = "lan"
peer_addresses = ["192.0.2.2/24", "2001:db8:1::2/64"]
peer_routes = ["default"]

[[interface]]
name = "wan0"
kind = "tap"
addresses = ["198.51.100.1/24"]

[[route]]
prefix = "0.0.0.0/0"
interface = "wan0"
via = "198.51.100.254"

[rules]
ipv4 = "gateway.rules"

[conntrack]
max = 1000
timeouts = { tcp_established = 3600 }
"#;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(t, "gw.toml", Path::new("/etc/tf"))
    }

    #[test]
    fn helper_tables_are_read_by_name_quoted_or_not() {
        let c = parse(&format!(
            "{GOOD}\n[helpers]\nauto_assign = true\n[helpers.ftp]\nports = [21, 2121]\n\
             [helpers.\"Q.931\"]\nports = [1720, 11720]\nloose = true\n"
        ))
        .unwrap();
        assert!(c.helpers.auto_assign);
        let names: Vec<&str> = c.helpers.settings.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["ftp", "Q.931"]);
        assert_eq!(c.helpers.settings[1].1.ports, Some(vec![1720, 11720]));
        assert!(c.helpers.settings[1].1.loose);
        // An unknown name and a bad port say where.
        let e = parse(&format!("{GOOD}\n[helpers.\"H.450\"]\nports = [1]\n")).unwrap_err();
        assert!(e.message.contains("no helper named \"H.450\""), "{e}");
        assert_eq!(e.line, GOOD.lines().count() + 2);
        let e = parse(&format!("{GOOD}\n[helpers.RAS]\nports = [0]\n")).unwrap_err();
        assert!(e.message.contains("[helpers.RAS] ports"), "{e}");
        assert_eq!((e.line, e.column), (GOOD.lines().count() + 3, 10));
    }

    #[test]
    fn parses_the_contract_keys() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.interfaces.len(), 2);
        assert_eq!(c.interfaces[1].kind, IfaceKind::Tap);
        assert_eq!(c.interfaces[1].mtu, 1500);
        assert_eq!(c.interfaces[0].netns.as_deref(), Some("lan"));
        assert_eq!(c.routes[0].via, Some("198.51.100.254".parse().unwrap()));
        assert_eq!(c.rules.ipv4, Some(PathBuf::from("/etc/tf/gateway.rules")));
        assert_eq!(c.conntrack.max, 1000);
        assert_eq!(
            c.conntrack.timeouts,
            vec![("tcp_established".to_string(), 3600)]
        );
        assert_eq!(c.iface_id("wan0"), Some(1));
    }

    fn err(t: &str) -> String {
        parse(t).unwrap_err().to_string()
    }

    #[test]
    fn errors_have_positions() {
        let bad = GOOD.replace("\"192.0.2.1/24\"", "\"192.0.2.300/24\"");
        assert_eq!(
            err(&bad),
            "gw.toml:6:14: expected an address with prefix length like \"192.0.2.1/24\" or \"2001:db8::1/64\", found \"192.0.2.300/24\""
        );
        let bad = GOOD.replace("kind = \"tap\"", "kind = \"tunnel\"");
        assert!(
            err(&bad).starts_with("gw.toml:13:8: expected \"tun\" or \"tap\""),
            "{}",
            err(&bad)
        );
        let bad = GOOD.replace("interface = \"wan0\"", "interface = \"wan9\"");
        assert!(
            err(&bad).starts_with("gw.toml:18:13: no [[interface]] named \"wan9\""),
            "{}",
            err(&bad)
        );
        let bad = GOOD.replace("mtu = 1500", "mtu = 100");
        assert!(
            err(&bad).contains("gw.toml:5:7: expected an MTU between 1280"),
            "{}",
            err(&bad)
        );
        let bad = GOOD.replace("max = 1000", "maxx = 1000");
        assert!(
            err(&bad).starts_with("gw.toml:25:1: unknown field `maxx`"),
            "{}",
            err(&bad)
        );
        let bad = GOOD.replace("tcp_established", "tcp_establish");
        assert!(err(&bad).contains("tcp_establish"), "{}", err(&bad));
        let bad = GOOD.replace("via = \"198.51.100.254\"", "via = \"2001:db8::1\"");
        assert!(err(&bad).contains("different address families"));
        assert!(err("[[interface]]\nname = \"x\"\n").contains("missing field `kind`"));
    }
}

#[cfg(test)]
mod validation_tests {
    use super::*;

    fn parse_in(t: &str, dir: &Path) -> Result<Config, ConfigError> {
        Config::parse(t, "gw.toml", dir)
    }

    fn err(t: &str) -> String {
        parse_in(t, Path::new(".")).unwrap_err().to_string()
    }

    fn iface(name: &str) -> String {
        format!("[[interface]]\nname = {}\nkind = \"tun\"\n", toml_str(name))
    }

    /// A TOML basic string for any text (escapes control characters and quotes).
    fn toml_str(s: &str) -> String {
        let mut o = String::from("\"");
        for c in s.chars() {
            match c {
                '"' | '\\' => {
                    o.push('\\');
                    o.push(c);
                }
                c if c.is_control() => o.push_str(&format!("\\u{:04X}", c as u32)),
                c => o.push(c),
            }
        }
        o.push('"');
        o
    }

    #[test]
    fn a_config_without_interfaces_is_refused() {
        assert_eq!(
            err(""),
            "gw.toml:1:1: no [[interface]]: expected at least one interface to route between"
        );
        assert!(err("[conntrack]\nmax = 10\n").contains("no [[interface]]"));
        assert!(parse_in(&iface("lan0"), Path::new(".")).is_ok());
    }

    /// What Linux's dev_valid_name refuses, and '%' that dev_alloc_name reads as a template.
    #[test]
    fn interface_names_the_kernel_refuses_or_rewrites_are_refused_at_their_position() {
        for bad in [
            ".",
            "..",
            ":x",
            "eth0:1",
            "%d",
            "tun%d",
            "a%",
            "",
            "sixteen-bytes-xx",
            "a/b",
            "a b",
            "a\tb",
            "a\nb",
            "a\u{b}b",
            "a\u{c}b",
            "a\rb",
            "a\0b",
            "nb\u{a0}sp",
        ] {
            let e = err(&iface(bad));
            assert!(
                e.starts_with("gw.toml:2:8: interface name "),
                "{bad:?} accepted or misplaced: {e}"
            );
            assert!(e.contains("expected 1 to 15 bytes"), "{e}");
        }
        for good in ["lan0", "fifteen-bytes-x", "wan.100", "e-é"] {
            assert!(parse_in(&iface(good), Path::new(".")).is_ok(), "{good:?}");
        }
        let e = err(&format!("{}netns = \"..\"\n", iface("lan0")));
        assert!(
            e.starts_with("gw.toml:4:9: expected a network namespace name"),
            "{e}"
        );
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tf-cfg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn rule_file_positions_are_kept_for_later_errors() {
        let c = parse_in(
            &format!("{}[rules]\nipv6 = \"six.rules\"\n", iface("lan0")),
            Path::new("/etc/tf"),
        )
        .unwrap();
        assert_eq!(c.rules.ipv6, Some(PathBuf::from("/etc/tf/six.rules")));
        assert_eq!(c.rules.ipv6_at.unwrap().to_string(), "gw.toml:5:8");
        assert_eq!(c.rules.ipv4_at, None);
    }

    #[test]
    fn route_files_load_and_their_errors_name_file_line_and_column() {
        let d = tmp("routes");
        let cfg = format!(
            "{}{}[routes]\nfiles = [\"a.routes\", \"b.routes\"]\n",
            iface("lan0"),
            iface("wan0")
        );
        std::fs::write(
            d.join("a.routes"),
            "# full table\n198.51.100.0/24 via 198.51.100.254 dev wan0\n\n\
             203.0.113.0/24 dev lan0   # a comment\n",
        )
        .unwrap();
        std::fs::write(
            d.join("b.routes"),
            "2001:db8::/32 dev wan0 via 2001:db8::1\n",
        )
        .unwrap();
        let c = parse_in(&cfg, &d).unwrap();
        assert_eq!(c.routes.len(), 3);
        assert_eq!(c.routes[1].prefix.to_string(), "203.0.113.0/24");
        assert_eq!(c.routes[1].interface, "lan0");
        assert_eq!(c.routes[2].via, Some("2001:db8::1".parse().unwrap()));

        let a = d.join("a.routes").display().to_string();
        for (text, want) in [
            (
                &b"198.51.100.0/33 dev wan0\n"[..],
                ":1:1: expected a prefix",
            ),
            (
                &b"198.51.100.0/24 dev wan9\n"[..],
                ":1:21: no [[interface]] named \"wan9\"",
            ),
            (&b"198.51.100.0/24\n"[..], ":1:1: expected `dev IFACE`"),
            (
                &b"\n  198.51.100.0/24 dev\n"[..],
                ":2:19: \"dev\": expected",
            ),
            (
                &b"198.51.100.0/24 dev wan0 via 2001:db8::1\n"[..],
                ":1:30: next hop and prefix",
            ),
            (
                &b"198.51.100.0/24 dev wan0 dev lan0\n"[..],
                ":1:26: found \"dev\"",
            ),
            (
                &b"198.51.100.0/24 gw x dev wan0\n"[..],
                ":1:17: found \"gw\"",
            ),
            (
                &b"198.51.100.7/24 dev wan0\n"[..],
                ":1:1: 198.51.100.7/24 has host bits set",
            ),
            (
                &b"10.0.0.0/8 dev wan0\n10.1.0.0/16 d\xc3\xa9v\xff wan0\n"[..],
                ":2:16: invalid UTF-8 (byte 0xff)",
            ),
        ] {
            std::fs::write(d.join("a.routes"), text).unwrap();
            let e = parse_in(&cfg, &d).unwrap_err().to_string();
            let (pos, what) = want.split_once(": ").unwrap();
            assert!(e.starts_with(&format!("{a}{pos}: ")), "{text:?}: {e}");
            assert!(e.contains(what), "{text:?}: {e}");
        }
        std::fs::remove_file(d.join("a.routes")).unwrap();
        let e = parse_in(&cfg, &d).unwrap_err().to_string();
        assert!(
            e.starts_with("gw.toml:8:10: [routes] files: cannot read ") && e.contains("a.routes"),
            "{e}"
        );
        let zero = cfg.replace("\"a.routes\"", "\"/dev/zero\"");
        let e = parse_in(&zero, &d).unwrap_err().to_string();
        assert!(
            e.starts_with("/dev/zero:1:1: line longer than 4096 bytes"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[cfg(test)]
mod offload_tests {
    use super::*;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(t, "gw.toml", Path::new("."))
    }

    const TWO_TUNS: &str = "[[interface]]\nname = \"lan0\"\nkind = \"tun\"\noffload = true\n\
                            [[interface]]\nname = \"wan0\"\nkind = \"tun\"\noffload = true\n";

    #[test]
    fn offload_is_all_or_nothing_and_tun_only() {
        let c = parse(TWO_TUNS).unwrap();
        assert!(c.interfaces.iter().all(|i| i.offload));
        assert!(
            !parse("[[interface]]\nname = \"a\"\nkind = \"tun\"\n")
                .unwrap()
                .interfaces[0]
                .offload
        );
        let e = |t: &str| parse(t).unwrap_err().to_string();
        assert_eq!(
            e(&TWO_TUNS.replacen("offload = true\n", "", 2).replacen(
                "kind = \"tun\"\n",
                "kind = \"tun\"\noffload = true\n",
                1
            )),
            "gw.toml:6:8: offload must be set on every interface or on none (a segmented packet \
             may leave by any of them)"
        );
        assert_eq!(
            e(&TWO_TUNS.replace(
                "name = \"wan0\"\nkind = \"tun\"\noffload = true",
                "name = \"wan0\"\nkind = \"tun\"\noffload = false"
            )),
            "gw.toml:8:11: offload must be set on every interface or on none (a segmented packet \
             may leave by any of them)"
        );
        assert_eq!(
            e(&TWO_TUNS.replace("kind = \"tun\"\noffload", "kind = \"tap\"\noffload")),
            "gw.toml:4:11: offload is supported on tun interfaces only"
        );
    }

    #[test]
    fn helpers_tables_load_and_their_errors_have_positions() {
        let parse_in = |t: &str, dir: &Path| Config::parse(t, "gw.toml", dir);
        let err = |t: &str| parse_in(t, Path::new(".")).unwrap_err().to_string();
        let base = "[[interface]]\nname = \"a\"\nkind = \"tun\"\n";
        let c = parse_in(
            &format!(
                "{base}[helpers]\nauto_assign = true\n[helpers.ftp]\nports = [21, 2121]\n\
                 loose = true\n[helpers.tftp]\nports = [6969]\n"
            ),
            Path::new("."),
        )
        .unwrap();
        assert!(c.helpers.auto_assign);
        assert_eq!(
            c.helpers.settings,
            vec![
                (
                    "ftp".to_string(),
                    helpers::HelperConfig {
                        ports: Some(vec![21, 2121]),
                        loose: true
                    }
                ),
                (
                    "tftp".to_string(),
                    helpers::HelperConfig {
                        ports: Some(vec![6969]),
                        loose: false
                    }
                ),
            ]
        );
        assert!(!parse_in(base, Path::new(".")).unwrap().helpers.auto_assign);
        assert_eq!(
            err(&format!("{base}[helpers.gopher]\nports = [70]\n")),
            "gw.toml:4:2: [helpers]: no helper named \"gopher\" (expected auto_assign or one \
             of: ftp, tftp, talk, ntalk, RAS, Q.931, H.245)"
        );
        assert_eq!(
            err(&format!("{base}[helpers.ftp]\nports = [0]\n")),
            "gw.toml:5:10: [helpers.ftp] ports: expected a list of ports between 1 and 65535"
        );
        assert_eq!(
            err(&format!("{base}[helpers.ftp]\nport = 21\n")),
            "gw.toml:5:1: [helpers.ftp]: unknown key \"port\" (expected ports or loose)"
        );
        assert_eq!(
            err(&format!("{base}[helpers]\nauto_assign = 1\n")),
            "gw.toml:5:1: [helpers] auto_assign: expected true or false"
        );
        assert!(err(&format!("{base}[helpers.talk]\nports = [518]\n")).contains("claimed by both"));
    }

    #[test]
    fn new_flows_per_batch_has_a_default_and_a_range() {
        let base = "[[interface]]\nname = \"a\"\nkind = \"tun\"\n[conntrack]\n";
        assert_eq!(
            parse(base).unwrap().conntrack.new_flows_per_batch,
            DEFAULT_NEW_FLOWS_PER_BATCH
        );
        let with = |v: &str| parse(&format!("{base}new_flows_per_batch = {v}\n"));
        assert_eq!(with("0").unwrap().conntrack.new_flows_per_batch, 0);
        assert_eq!(with("64").unwrap().conntrack.new_flows_per_batch, 64);
        assert_eq!(
            with("-1").unwrap_err().to_string(),
            "gw.toml:5:23: expected a number of new connections per batch between 0 (no \
             limit) and 65536, found -1"
        );
    }
}

#[cfg(test)]
mod process_tests {
    use super::*;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(
            &format!("[[interface]]\nname = \"a\"\nkind = \"tun\"\n{t}"),
            "gw.toml",
            Path::new("."),
        )
    }

    #[test]
    fn the_default_is_nobody_with_its_login_group() {
        let p = parse("").unwrap().process;
        assert_eq!(p, ProcessConfig::default());
        assert_eq!((p.user.as_str(), p.group.as_deref()), ("nobody", None));
        assert_eq!(parse("[process]\n").unwrap().process, p);
    }

    #[test]
    fn unknown_users_and_groups_are_errors_at_their_key() {
        assert_eq!(
            parse("[process]\nuser = \"tf-no-such-user\"\n")
                .unwrap_err()
                .to_string(),
            "gw.toml:5:8: no user named \"tf-no-such-user\" on this system: expected an existing \
             user for the gateway to run as after setup, such as \"nobody\" or a dedicated \
             system user (or \"root\" to keep every privilege, for debugging)"
        );
        let e = parse("[process]\nuser = \"root\"\ngroup = \"root\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("gw.toml:6:9: group \"root\" has no effect"),
            "{e}"
        );
        let e = parse("[process]\nuser = \"root\"\ngroup = \"tf-no-such-group\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("gw.toml:6:9: "), "{e}");
        let e = parse("[process]\nuser = \"root\"\nuid = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("gw.toml:6:1: unknown field `uid`"), "{e}");
    }

    #[test]
    fn root_is_accepted_and_positions_are_kept() {
        let p = parse("[process]\nuser = \"root\"\n").unwrap().process;
        assert_eq!(p.user, "root");
        assert_eq!(p.user_at.map(|a| (a.line, a.column)), Some((5, 8)));
    }
}
