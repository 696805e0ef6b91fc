//! `tunfilter`: the command-line entry point.

use clap::{Args, Parser, Subcommand};
use router::config::Config;
use router::live::control::{self, CtFilter, Request};
use router::sim;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "tunfilter",
    version,
    about = "A userspace IPv4/IPv6 firewall router with netfilter's architecture"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate a configuration file and its rule files.
    Check {
        /// The TOML configuration.
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the gateway on TUN/TAP devices.
    Run {
        /// The TOML configuration.
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        sock: SocketArg,
        /// Worker threads (default: one per core).
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Log JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
        /// Stay root with every capability after setup, for debugging (by default the process
        /// becomes `[process] user`, `nobody`, with no capabilities and a seccomp filter).
        #[arg(long)]
        keep_privileges: bool,
    },
    /// Replay pcap files through the pipeline with virtual time.
    Sim {
        /// The TOML configuration.
        #[arg(long)]
        config: PathBuf,
        /// IFACE=FILE.pcap: packets arriving on IFACE (repeatable).
        #[arg(long = "in", value_parser = sim::parse_input, required = true)]
        inputs: Vec<(String, PathBuf)>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Let virtual time run until SECONDS after the first packet.
        #[arg(long)]
        until: Option<f64>,
        /// Simulate N workers: the engine split into N shards as `run` splits it, each
        /// packet read by the worker a hash of its flow picks (deterministic).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        workers: u16,
    },
    /// Connection tracking of a running instance.
    Ct {
        #[command(subcommand)]
        cmd: CtCmd,
        #[command(flatten)]
        sock: SocketArg,
    },
    /// The ruleset.
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
    /// Re-read the rule files of a running instance atomically.
    Reload {
        #[command(flatten)]
        sock: SocketArg,
    },
    /// The routing table of a running instance, changed without a reload.
    Route {
        #[command(subcommand)]
        cmd: RouteCmd,
    },
    /// Stream trace events of a running instance.
    Trace {
        #[command(flatten)]
        sock: SocketArg,
        /// JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// The pattern-search engine.
    Search {
        #[command(subcommand)]
        cmd: SearchCmd,
    },
}

#[derive(Args)]
struct SocketArg {
    /// Control socket path.
    #[arg(long, default_value = control::DEFAULT_SOCKET)]
    socket: PathBuf,
}

#[derive(Args, Default)]
struct FilterArgs {
    /// Protocol name (tcp, udp, icmp, ...).
    #[arg(short = 'p', long)]
    proto: Option<String>,
    /// Original source address.
    #[arg(short = 's', long)]
    src: Option<IpAddr>,
    /// Original destination address.
    #[arg(short = 'd', long)]
    dst: Option<IpAddr>,
    /// Original source port.
    #[arg(long)]
    sport: Option<u16>,
    /// Original destination port.
    #[arg(long)]
    dport: Option<u16>,
    /// State name (ESTABLISHED, SYN_SENT, ...).
    #[arg(long)]
    state: Option<String>,
}

impl FilterArgs {
    fn into_filter(self) -> CtFilter {
        CtFilter {
            proto: self.proto,
            src: self.src,
            dst: self.dst,
            sport: self.sport,
            dport: self.dport,
            state: self.state,
        }
    }
}

#[derive(Subcommand)]
enum CtCmd {
    /// List connections (like `conntrack -L`).
    List {
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Stream events (like `conntrack -E`).
    Events {
        /// JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Counters (like `conntrack -S`) and drops per reason.
    Stats,
    /// Delete all connections.
    Flush,
    /// Delete the connections matching a filter.
    Delete {
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// The expectations helpers created (like `conntrack -L expect`).
    Expect {
        #[command(subcommand)]
        cmd: ExpectCmd,
    },
}

#[derive(Subcommand)]
enum ExpectCmd {
    /// List expectations (like `conntrack -L expect`).
    List,
    /// Delete every expectation (like `conntrack -F expect`).
    Flush,
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Print the ruleset in iptables-save format.
    List {
        /// With counters.
        #[arg(short = 'v')]
        verbose: bool,
        /// Only this table.
        #[arg(short = 't', long)]
        table: Option<String>,
        /// Only this family (4 or 6).
        #[arg(long, value_parser = ["4", "6"])]
        family: Option<String>,
        /// Read the rule files of this configuration instead of asking a running instance.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        sock: SocketArg,
    },
}

#[derive(Subcommand)]
enum RouteCmd {
    /// Print the routes, one `PREFIX [via ADDR] dev IFACE` per line (the route file format).
    List {
        #[command(flatten)]
        sock: SocketArg,
    },
    /// Add a route for every worker at once: `route add 203.0.113.0/24 via 198.51.100.2 dev
    /// wan0`. Refused if the prefix has a route already.
    Add {
        /// PREFIX [via ADDR] dev IFACE, as `ip route` takes them.
        #[arg(required = true, num_args = 1..)]
        route: Vec<String>,
        #[command(flatten)]
        sock: SocketArg,
    },
    /// Delete the route of exactly PREFIX.
    Del {
        /// The prefix, e.g. 203.0.113.0/24.
        prefix: String,
        #[command(flatten)]
        sock: SocketArg,
    },
}

#[derive(Subcommand)]
enum SearchCmd {
    /// List the pattern-search algorithms and what they can do.
    Algorithms,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tunfilter: {e}");
            ExitCode::from(1)
        }
    }
}

fn client(sock: &SocketArg, req: Request) -> Result<ExitCode, String> {
    let mut out = std::io::stdout().lock();
    control::client_request(&sock.socket, &req, &mut out).map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.cmd {
        Cmd::Check { config } => {
            let cfg = Config::load(&config).map_err(|e| e.to_string())?;
            router::engine::Engine::new(&cfg, 0).map_err(|e| e.to_string())?;
            println!(
                "{}: ok ({} interfaces, {} routes)",
                config.display(),
                cfg.interfaces.len(),
                cfg.routes.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Sim {
            config,
            inputs,
            out,
            until,
            workers,
        } => {
            let cfg = Config::load(&config).map_err(|e| e.to_string())?;
            let opts = sim::SimOptions {
                inputs,
                out_dir: out,
                until,
                workers: usize::from(workers),
            };
            let r = sim::run(&cfg, &opts).map_err(|e| e.to_string())?;
            if let Some(first) = &r.first_clamped {
                eprintln!(
                    "tunfilter: warning: {} record(s) stamped earlier than the record before \
                     them in their file were replayed at that record's time (first: {first})",
                    r.clamped
                );
            }
            let outs: Vec<String> = r
                .packets_out
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            println!(
                "simulated {} packets ({} non-IP frames skipped); sent {}; {} events",
                r.packets_in,
                r.skipped,
                if outs.is_empty() {
                    "nothing".to_string()
                } else {
                    outs.join(" ")
                },
                r.events
            );
            if r.panics > 0 {
                // The run went on (each such packet was dropped), but a capture that trips
                // a bug must not look like a clean run to whoever replays it.
                eprintln!(
                    "tunfilter: {} packets hit an internal error and were dropped \
                     (see the \"internal: panic\" drop events)",
                    r.panics
                );
                return Ok(ExitCode::from(3));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            config,
            sock,
            workers,
            log_json,
            keep_privileges,
        } => {
            router::live::init_logging(log_json);
            let cfg = Config::load(&config).map_err(|e| e.to_string())?;
            let opts = router::live::RunOptions {
                workers,
                socket: sock.socket,
                drop_privileges: !keep_privileges,
            };
            router::live::run(cfg, opts).map_err(|e| e.to_string())
        }
        Cmd::Ct { cmd, sock } => {
            let req = match cmd {
                CtCmd::List { filter } => Request::CtList {
                    filter: filter.into_filter(),
                },
                CtCmd::Events { json } => Request::CtEvents { json },
                CtCmd::Stats => Request::CtStats,
                CtCmd::Flush => Request::CtFlush,
                CtCmd::Expect {
                    cmd: ExpectCmd::List,
                } => Request::ExpectList,
                CtCmd::Expect {
                    cmd: ExpectCmd::Flush,
                } => Request::ExpectFlush,
                CtCmd::Delete { filter } => {
                    let filter = filter.into_filter();
                    if filter.is_empty() {
                        return Err(
                            "ct delete needs at least one filter (use `ct flush` to delete all)"
                                .into(),
                        );
                    }
                    Request::CtDelete { filter }
                }
            };
            client(&sock, req)
        }
        Cmd::Rules {
            cmd:
                RulesCmd::List {
                    verbose,
                    table,
                    family,
                    config,
                    sock,
                },
        } => {
            let text = match config {
                Some(path) => {
                    let cfg = Config::load(&path).map_err(|e| e.to_string())?;
                    let engine = router::engine::Engine::new(&cfg, 0).map_err(|e| e.to_string())?;
                    engine.rules_save(None, verbose)
                }
                None => {
                    let mut buf = Vec::new();
                    control::client_request(
                        &sock.socket,
                        &Request::RulesList { counters: verbose },
                        &mut buf,
                    )
                    .map_err(|e| e.to_string())?;
                    String::from_utf8_lossy(&buf).into_owned()
                }
            };
            print!(
                "{}",
                filter_save(&text, table.as_deref(), family.as_deref())
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Reload { sock } => client(&sock, Request::Reload),
        Cmd::Route { cmd } => match cmd {
            RouteCmd::List { sock } => client(&sock, Request::RouteList),
            RouteCmd::Add { route, sock } => {
                // Checked here too, so that a typo is reported without a round trip.
                let words: Vec<&str> = route.iter().map(String::as_str).collect();
                router::route::RouteSpec::parse(&words).map_err(|(_, m)| m)?;
                client(&sock, Request::RouteAdd { route })
            }
            RouteCmd::Del { prefix, sock } => {
                router::route::parse_prefix(&prefix)?;
                client(&sock, Request::RouteDel { prefix })
            }
        },
        Cmd::Trace { sock, json } => client(&sock, Request::Trace { json }),
        Cmd::Search {
            cmd: SearchCmd::Algorithms,
        } => {
            let yn = |b: bool| if b { "yes" } else { "no" };
            println!(
                "{:<9} {:<5} {:<5} {:<8} {:<5} {:<29} description",
                "name", "icase", "regex", "wildcard", "multi", "carried bytes"
            );
            for a in search::algorithms() {
                println!(
                    "{:<9} {:<5} {:<5} {:<8} {:<5} {:<29} {}",
                    a.name,
                    yn(a.icase),
                    yn(a.regex),
                    yn(a.wildcard),
                    yn(a.multi_pattern),
                    a.carry.to_string(),
                    a.description
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Keeps only the requested table and family of iptables-save text. The
/// text holds the IPv4 rules then the IPv6 rules, each introduced by a
/// "# Generated by" comment naming the tool.
fn filter_save(text: &str, table: Option<&str>, family: Option<&str>) -> String {
    let mut out = String::new();
    let mut fam = "4";
    let mut keep_table = true;
    // The text is the IPv4 ruleset's save, then the IPv6 one's, each opening with a
    // "# Generated by" line (iptables-save and ip6tables-save files name themselves).
    let mut parts = 0;
    for line in text.lines() {
        if line.starts_with("# Generated by") {
            parts += 1;
            fam = if line.contains("ip6tables") || parts == 2 {
                "6"
            } else {
                "4"
            };
        }
        if let Some(t) = line.strip_prefix('*') {
            keep_table = table.is_none_or(|want| want == t);
        }
        let fam_ok = family.is_none_or(|f| f == fam);
        let is_comment = line.starts_with('#');
        if fam_ok && (keep_table || is_comment) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
