//! The deterministic simulator: pcap files in, pcap files and a JSON-lines
//! event log out, with virtual time taken from the capture timestamps.
//!
//! Outputs in `--out DIR`: `IFACE.pcap` for every interface that
//! transmitted (raw IP for TUN, Ethernet for TAP), `events.jsonl`, and the
//! final state: `conntrack.txt` (like `conntrack -L`), `stats.txt`,
//! `rules-v4.txt` / `rules-v6.txt` (iptables-save with counters). The same
//! input always gives byte-identical output: the hash seed is fixed and
//! nothing depends on wall-clock time.
//!
//! Timestamps are taken as they are, with one exception: within one file, a record stamped
//! earlier than the record before it (a capture across a clock step, or merged from several
//! queues) is replayed at that earlier record's time, in file order, as tcpreplay would send
//! it; [`SimReport::clamped`] counts them and the CLI says so. Files are then merged by time.
//! A timestamp of zero or the largest a pcap can hold is just a time. Across a gap in which
//! no timer has work (say from 1970 to 2106) virtual time jumps in one step
//! ([`Engine::skip_idle_ticks`]), with the same result as ticking through it.
//!
//! With `workers > 1` the engine is a [`ShardSet`] of that many shards, as `tunfilter run`
//! builds it, and each packet is read by the worker a flow hash of it picks (as a
//! multi-queue device spreads flows over its queues: a connection's two directions usually
//! land on different workers), one packet per batch, in time order. The shards' cross-shard
//! steering, hand-offs and directory are then exercised in virtual time, and the output is
//! still the same for the same input.

use crate::config::{Config, IfaceKind};
use crate::engine::{Engine, Event, Transmit};
use crate::pcap;
use crate::shard::{ShardSet, SteerKey, Work};
use conntrack::tuple::Family;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use wire::buf::PacketBuf;
use wire::time::Instant;

/// Hash seed used by the simulator, so that table layout (and thus GC and
/// listing order) is reproducible.
pub const SIM_HASH_SEED: u64 = 0x7475_6e66_696c_7472;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// `(interface name, pcap file)` pairs.
    pub inputs: Vec<(String, PathBuf)>,
    /// Output folder (created if missing).
    pub out_dir: PathBuf,
    /// Let virtual time run until this many seconds after the first packet.
    pub until: Option<f64>,
    /// Shards (and simulated workers): 1 is a single engine.
    pub workers: usize,
}

impl SimOptions {
    /// Inputs and output folder, one worker, no extra time.
    pub fn new(inputs: Vec<(String, PathBuf)>, out_dir: PathBuf) -> SimOptions {
        SimOptions {
            inputs,
            out_dir,
            until: None,
            workers: 1,
        }
    }
}

/// The engine being simulated: one, or a set of shards driven as `tunfilter run` drives
/// them. Output of either is taken out in the order it was made.
enum Core {
    One(Box<Engine>),
    Shards {
        set: std::sync::Arc<ShardSet>,
        work: Work,
    },
}

impl Core {
    fn new(config: &Config, workers: usize) -> Result<Core, SimError> {
        if workers <= 1 {
            let e = Engine::new(config, SIM_HASH_SEED).map_err(|e| SimError(e.to_string()))?;
            return Ok(Core::One(Box::new(e)));
        }
        let set =
            ShardSet::new(config, SIM_HASH_SEED, workers).map_err(|e| SimError(e.to_string()))?;
        let mut work = Work::default();
        work.want_events = true;
        Ok(Core::Shards { set, work })
    }

    /// Calls `f` on each engine, in shard order.
    fn each<R>(&mut self, mut f: impl FnMut(&mut Engine) -> R) -> Vec<R> {
        match self {
            Core::One(e) => vec![f(e)],
            Core::Shards { set, .. } => (0..set.len()).map(|i| f(&mut set.lock(i))).collect(),
        }
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.each(|e| e.poll_timeout()).into_iter().flatten().min()
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        self.each(|e| e.next_deadline()).into_iter().flatten().min()
    }

    fn skip_idle_ticks(&mut self, until: Instant) -> u64 {
        self.each(|e| e.skip_idle_ticks(until)).into_iter().sum()
    }

    /// Runs the timers due at `t` (of every shard whose timer is due).
    fn handle_timeout(&mut self, t: Instant, out: &mut Vec<Out>) {
        self.each(|e| {
            if e.poll_timeout().is_some_and(|d| d <= t) {
                e.handle_timeout(t);
            }
            drain_engine(e, out);
        });
    }

    fn handle_packet(&mut self, now: Instant, iface: usize, data: &[u8], out: &mut Vec<Out>) {
        match self {
            Core::One(e) => {
                e.handle_packet(now, iface, PacketBuf::from_slice(data));
                drain_engine(e, out);
            }
            Core::Shards { set, work } => {
                let home = worker_of(set, data);
                work.batch.push((iface, PacketBuf::from_slice(data)));
                set.handle(home, now, work);
                take_work(work, out);
            }
        }
    }

    fn panics(&mut self) -> u64 {
        self.each(|e| e.panics()).into_iter().sum()
    }
}

/// One piece of output, in the order the engine made it.
enum Out {
    Tx(Transmit),
    Ev(Event),
}

/// Everything an engine has to send and report: its transmits, then its events.
fn drain_engine(e: &mut Engine, out: &mut Vec<Out>) {
    while let Some(t) = e.poll_transmit() {
        out.push(Out::Tx(t));
    }
    while let Some(ev) = e.poll_event() {
        out.push(Out::Ev(ev));
    }
}

fn take_work(work: &mut Work, out: &mut Vec<Out>) {
    out.extend(work.tx.drain(..).map(|(_, t)| Out::Tx(t)));
    out.extend(work.events.drain(..).map(Out::Ev));
}

/// The worker that reads a packet: a hash of its flow, as a multi-queue device's receive
/// hash would pick its queue (not symmetric: the two directions of a connection may be
/// read by different workers, which is what the shards must cope with).
fn worker_of(set: &ShardSet, data: &[u8]) -> usize {
    let n = set.len() as u64;
    let h = match set.steer().key(data) {
        SteerKey::Flow(t) => {
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            let mut mix = |b: &[u8]| {
                for &x in b {
                    h = (h ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3);
                }
            };
            mix(t.src.to_string().as_bytes());
            mix(t.dst.to_string().as_bytes());
            mix(&t.src_id.to_be_bytes());
            mix(&t.dst_id.to_be_bytes());
            mix(&[t.proto]);
            h
        }
        SteerKey::Fragment(h) => h,
        SteerKey::Stateless => 0,
    };
    (h % n) as usize
}

/// What happened, in numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    /// Packets fed in.
    pub packets_in: usize,
    /// Frames skipped because they were not IP (ARP, ...).
    pub skipped: usize,
    /// Packets written, per interface.
    pub packets_out: BTreeMap<String, usize>,
    /// Events written.
    pub events: usize,
    /// Packets an internal error (a panic) dropped: a bug, reported so that a test run fails.
    pub panics: u64,
    /// Records stamped earlier than the record before them in their file, replayed at that
    /// record's time instead.
    pub clamped: usize,
    /// The first of them, as `FILE: record N` (1-based), for the warning.
    pub first_clamped: Option<String>,
}

/// Why the simulation could not run.
#[derive(Debug)]
pub struct SimError(pub String);

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SimError {}

/// Gaps longer than this between timer work are crossed in one jump (see
/// [`Engine::skip_idle_ticks`]); shorter ones are ticked through, which is cheaper than
/// looking at every connection for its expiry.
const IDLE_JUMP: std::time::Duration = std::time::Duration::from_secs(10);

struct Input {
    ts: u64,
    file: usize,
    seq: usize,
    iface: usize,
    data: Vec<u8>,
}

/// Parses `IFACE=FILE` as given to `--in`.
pub fn parse_input(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((i, f)) if !i.is_empty() && !f.is_empty() => Ok((i.to_string(), PathBuf::from(f))),
        _ => Err(format!("expected IFACE=FILE.pcap, found {s:?}")),
    }
}

/// Runs a simulation.
pub fn run(config: &Config, opts: &SimOptions) -> Result<SimReport, SimError> {
    let mut core = Core::new(config, opts.workers)?;
    let mut inputs = Vec::new();
    let mut report = SimReport::default();
    for (file_no, (iface, path)) in opts.inputs.iter().enumerate() {
        let id = config.iface_id(iface).ok_or_else(|| {
            SimError(format!(
                "--in {iface}={}: no interface named {iface:?} in the config",
                path.display()
            ))
        })?;
        let f = File::open(path).map_err(|e| SimError(format!("{}: {e}", path.display())))?;
        let (lt, recs) = pcap::read_all(std::io::BufReader::new(f))
            .map_err(|e| SimError(format!("{}: {e}", path.display())))?;
        let mut last = 0;
        for (seq, r) in recs.into_iter().enumerate() {
            // File order is replay order: a timestamp going backwards is held at the last one.
            let ts = if seq > 0 && r.ts_ns < last {
                report.clamped += 1;
                report
                    .first_clamped
                    .get_or_insert_with(|| format!("{}: record {}", path.display(), seq + 1));
                last
            } else {
                r.ts_ns
            };
            last = ts;
            match pcap::ip_payload(lt, &r.data) {
                Some(ip) => inputs.push(Input {
                    ts,
                    file: file_no,
                    seq,
                    iface: id,
                    data: ip.to_vec(),
                }),
                None => report.skipped += 1,
            }
        }
    }
    // Timestamp order; ties keep the order of --in and of the file.
    inputs.sort_by_key(|i| (i.ts, i.file, i.seq));
    std::fs::create_dir_all(&opts.out_dir)
        .map_err(|e| SimError(format!("{}: {e}", opts.out_dir.display())))?;
    let io = |p: &Path, e: std::io::Error| SimError(format!("{}: {e}", p.display()));
    let ev_path = opts.out_dir.join("events.jsonl");
    let mut events = BufWriter::new(File::create(&ev_path).map_err(|e| io(&ev_path, e))?);
    let mut writers: BTreeMap<usize, pcap::Writer<BufWriter<File>>> = BTreeMap::new();
    let start = inputs.first().map_or(0, |i| i.ts);
    let mut now = Instant::from_nanos(start);

    let mut write_out =
        |out: &mut Vec<Out>, now: Instant, report: &mut SimReport| -> Result<(), SimError> {
            for o in out.drain(..) {
                let t = match o {
                    Out::Ev(e) => {
                        writeln!(events, "{}", e.to_json()).map_err(|e| io(&ev_path, e))?;
                        report.events += 1;
                        continue;
                    }
                    Out::Tx(t) => t,
                };
                let iface = config.interfaces.get(t.iface);
                let name = iface.map_or("?", |i| i.name.as_str()).to_string();
                let kind = iface.map_or(IfaceKind::Tun, |i| i.kind);
                if let std::collections::btree_map::Entry::Vacant(v) = writers.entry(t.iface) {
                    let p = opts.out_dir.join(format!("{name}.pcap"));
                    let f = BufWriter::new(File::create(&p).map_err(|e| io(&p, e))?);
                    let lt = if kind == IfaceKind::Tap {
                        pcap::LINKTYPE_ETHERNET
                    } else {
                        pcap::LINKTYPE_RAW
                    };
                    v.insert(pcap::Writer::new(f, lt).map_err(|e| io(&p, e))?);
                }
                let w = writers
                    .get_mut(&t.iface)
                    .ok_or_else(|| SimError("writer vanished".into()))?;
                let data = if kind == IfaceKind::Tap {
                    ethernet_frame(t.iface, t.packet.as_slice())
                } else {
                    t.packet.as_slice().to_vec()
                };
                w.write(now.as_nanos(), &data)
                    .map_err(|e| SimError(e.to_string()))?;
                *report.packets_out.entry(name).or_insert(0) += 1;
            }
            Ok(())
        };

    let mut out = Vec::new();
    for inp in inputs {
        let arrival = Instant::from_nanos(inp.ts);
        run_timers(
            &mut core,
            &mut now,
            arrival,
            false,
            &mut report,
            &mut |c, t, r| {
                c.handle_timeout(t, &mut out);
                write_out(&mut out, t, r)
            },
        )?;
        now = now.max(arrival);
        core.handle_packet(now, inp.iface, &inp.data, &mut out);
        report.packets_in += 1;
        write_out(&mut out, now, &mut report)?;
    }
    if let Some(secs) = opts.until {
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(SimError(format!(
                "--until: expected a number of seconds >= 0, found {secs}"
            )));
        }
        let end = Instant::from_nanos(start.saturating_add((secs * 1e9) as u64));
        run_timers(
            &mut core,
            &mut now,
            end,
            true,
            &mut report,
            &mut |c, t, r| {
                c.handle_timeout(t, &mut out);
                write_out(&mut out, t, r)
            },
        )?;
        if end > now {
            core.each(|e| e.handle_timeout(end));
            core.each(|e| drain_engine(e, &mut out));
            write_out(&mut out, end, &mut report)?;
        }
    }
    for (_, w) in writers {
        w.finish().map_err(|e| SimError(e.to_string()))?;
    }
    events.flush().map_err(|e| io(&ev_path, e))?;
    let write = |name: &str, text: String| -> Result<(), SimError> {
        let p = opts.out_dir.join(name);
        std::fs::write(&p, text).map_err(|e| io(&p, e))
    };
    let (list, stats, v4, v6) = match &mut core {
        Core::One(e) => (
            e.ct_list(),
            e.ct_stats(),
            e.rules_save(Some(Family::V4), true),
            e.rules_save(Some(Family::V6), true),
        ),
        Core::Shards { set, .. } => {
            let (list, stats) = (set.ct_list(), set.ct_stats());
            let e = set.lock(0);
            let (v4, v6) = (
                e.rules_save(Some(Family::V4), true),
                e.rules_save(Some(Family::V6), true),
            );
            (list, stats, v4, v6)
        }
    };
    let mut ct = String::new();
    for c in list {
        ct.push_str(&c.to_string());
        ct.push('\n');
    }
    write("conntrack.txt", ct)?;
    write("stats.txt", stats)?;
    write("rules-v4.txt", v4)?;
    write("rules-v6.txt", v6)?;
    report.panics = core.panics();
    Ok(report)
}

/// Runs the timers due before `limit` (up to it with `inclusive`), in order, handing each
/// time to `fire` (which runs them and writes their output); a timer due before the previous
/// event runs at that event's time (virtual time never goes backwards, and the first timer
/// starts at the capture).
fn run_timers(
    core: &mut Core,
    now: &mut Instant,
    limit: Instant,
    inclusive: bool,
    report: &mut SimReport,
    fire: &mut impl FnMut(&mut Core, Instant, &mut SimReport) -> Result<(), SimError>,
) -> Result<(), SimError> {
    while let Some(t) = core.poll_timeout() {
        if t > limit || (t == limit && !inclusive) {
            break;
        }
        // Ticking every 100 ms through a long idle stretch could take longer than the
        // universe has: jump to the next time a timer has work instead.
        if limit.saturating_duration_since(t) > IDLE_JUMP {
            let until = core.next_deadline().map_or(limit, |d| d.min(limit));
            if core.skip_idle_ticks(until) > 0 {
                continue;
            }
        }
        let t = t.max(*now);
        fire(core, t, report)?;
        *now = t;
        // A clock at its end (u64::MAX ns) cannot move on: stop rather than spin.
        if core.poll_timeout().is_some_and(|n| n <= t) {
            break;
        }
    }
    Ok(())
}

/// Wraps an IP packet in an Ethernet header with stable, locally administered
/// addresses derived from the interface id (the simulator has no neighbours).
fn ethernet_frame(iface: usize, ip: &[u8]) -> Vec<u8> {
    let id = (iface & 0xff) as u8;
    let mut f = Vec::with_capacity(14 + ip.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0x01, id]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0x00, id]);
    let et: u16 = if ip.first().map(|b| b >> 4) == Some(6) {
        0x86dd
    } else {
        0x0800
    };
    f.extend_from_slice(&et.to_be_bytes());
    f.extend_from_slice(ip);
    f
}
