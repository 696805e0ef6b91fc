//! The run loop: worker threads around the sharded engine, signals, and shutdown.
//!
//! The engine is a [`ShardSet`]: one shard (an engine with its part of the connection table)
//! per worker, each behind its own lock, and every packet owned by one shard (see
//! [`crate::shard`]). Each worker owns one queue of every device (multi-queue devices spread
//! flows over workers; with one worker, one queue is shared) and reads only from it. A worker
//! polls its queues, reads a batch, sorts it by owning shard and locks each shard involved
//! once (packets in, due timers, transmits and events out); it writes what shard `s` sent to
//! queue `s`, because the kernel steers a flow to the queue it was last written to (see
//! `Shared::tx_queue`), so the flow's next packets reach the worker of its shard. No lock is
//! held across a syscall. Every queue between threads is bounded; what does not fit is
//! dropped and counted.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use parking_lot::Mutex;
use rustix::event::{PollFd, PollFlags};
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use wire::buf::PacketBuf;
use wire::time::Instant;

use super::control::{
    self, Backend, ControlSocket, EventHub, EventLine, Reply, Request, StopSignal,
};
use super::device::{self, Devices, Queue};
use super::l2::{self, L2Iface, L2Limits, Rx};
use super::privileges::{self, LookupError, RunAs};
use super::LiveError;
use crate::config::{Config, IfaceKind};
use crate::offload::{Offload, VNET_HDR_LEN};
use crate::route::{parse_prefix, Route, RouteSpec};
use crate::shard::{ShardSet, Work};

/// Packets read from one queue before the batch goes to the engine.
const BATCH: usize = 64;
/// Longest sleep of a worker: bounds how late an engine timer that appeared meanwhile runs.
const MAX_SLEEP: Duration = Duration::from_millis(500);
/// Shortest sleep when a timer is already due (see [`next_wakeup`]).
const MIN_SLEEP: Duration = Duration::from_millis(1);
/// Largest packet or frame a device can hand us (64 KiB IP plus an Ethernet header).
const RX_BUF: usize = 65536 + 64;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Path of the control socket.
    pub socket: PathBuf,
    /// Switch to the configured user (`[process]`) once the devices are up; `false` stays root
    /// with every capability (`--keep-privileges`, for debugging).
    pub drop_privileges: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workers: 0,
            socket: PathBuf::from(control::DEFAULT_SOCKET),
            drop_privileges: true,
        }
    }
}

/// Nanoseconds since start, as the engine's time. Starts at one second, not zero, so that no
/// deadline computed by the engine can underflow or look like "unset".
#[derive(Debug)]
struct Clock(std::time::Instant);

impl Clock {
    fn now(&self) -> Instant {
        let ns = u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Instant::from_nanos(ns.saturating_add(1_000_000_000))
    }
}

#[derive(Debug, Default)]
struct LinkStats {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_errors: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_errors: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

#[derive(Debug)]
struct Link {
    name: String,
    kind: IfaceKind,
    l2: Option<Mutex<L2Iface>>,
    /// The TAP link's MAC (fixed), for the lock-free receive path.
    mac: l2::Mac,
    stats: LinkStats,
}

struct Shared {
    set: Arc<ShardSet>,
    devices: Devices,
    links: Vec<Link>,
    clock: Clock,
    stop: StopSignal,
    hub: Arc<EventHub>,
    fatal: Mutex<Option<LiveError>>,
    signals: Mutex<Option<signal_hook::iterator::Handle>>,
}

impl Shared {
    /// Records the first fatal error and stops everything.
    fn fail(&self, e: LiveError) {
        tracing::error!(error = %e, "stopping");
        self.fatal.lock().get_or_insert(e);
        self.stop.stop();
        if let Some(h) = self.signals.lock().as_ref() {
            h.close();
        }
    }

    fn queue(&self, iface: usize, worker: usize) -> Option<&Queue> {
        let qs = &self.devices.devices.get(iface)?.queues;
        qs.get(worker % qs.len().max(1))
    }

    /// The queue of `iface` that a frame from `shard` is written to.
    ///
    /// A multi-queue TUN/TAP device steers the kernel's packets of a flow to the queue where
    /// userspace last wrote that flow (tun's automatic flow steering). Writing from whichever
    /// worker happened to read the packet made that steering flip back and forth between
    /// workers, so both raced within one flow and reordered it (late duplicate ACKs drew RSTs
    /// from the endpoints). Writing what shard `s` sent to queue `s` keeps each flow on one
    /// queue, and that queue is read by the worker whose own shard owns the flow. Frames no
    /// shard sent (ARP, ND) use the worker's own queue.
    fn tx_queue(&self, iface: usize, shard: usize) -> Option<&Queue> {
        let dev = self.devices.devices.get(iface)?;
        dev.queues.get(shard % dev.queues.len().max(1))
    }

    fn driver_stats(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for l in &self.links {
            let s = &l.stats;
            let mut line = format!(
                "link {} {} rx_packets={} rx_bytes={} rx_errors={} tx_packets={} tx_bytes={} tx_errors={}",
                l.name,
                match l.kind {
                    IfaceKind::Tun => "tun",
                    IfaceKind::Tap => "tap",
                },
                get(&s.rx_packets),
                get(&s.rx_bytes),
                get(&s.rx_errors),
                get(&s.tx_packets),
                get(&s.tx_bytes),
                get(&s.tx_errors),
            );
            if let Some(l2) = &l.l2 {
                let l2 = l2.lock();
                let n = l2.stats();
                let mac = l2.mac().map(|b| format!("{b:02x}")).join(":");
                line.push_str(&format!(
                    " mac={mac} neighbours={} arp_replies={} arp_requests={} na_sent={} ns_sent={} \
                     queue_drops={} unresolved_drops={} no_source_drops={} resolve_failures={} \
                     evictions={} l2_rx_dropped={}",
                    l2.neighbour_count(),
                    n.arp_replies_sent,
                    n.arp_requests_sent,
                    n.na_sent,
                    n.ns_sent,
                    n.queue_drops,
                    n.unresolved_drops,
                    n.no_source_drops,
                    n.resolve_failures,
                    n.evictions,
                    n.rx_dropped,
                ));
            }
            lines.push(line);
        }
        lines.push(format!(
            "events subscribers={} dropped={}",
            self.hub.subscribers(),
            self.hub.dropped_total()
        ));
        lines
    }
}

impl Backend for Shared {
    fn execute(&self, req: &Request) -> Result<Reply, String> {
        match req {
            Request::CtList { filter } => {
                let snaps = self.set.ct_list();
                let lines: Vec<String> = snaps
                    .iter()
                    .map(|s| s.to_string())
                    .filter(|l| filter.matches_line(l))
                    .collect();
                let note = format!("tunfilter: {} flow entries have been shown.", lines.len());
                Ok(Reply {
                    lines,
                    note: Some(note),
                })
            }
            Request::CtStats => {
                let text = self.set.ct_stats();
                let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
                lines.extend(self.driver_stats());
                Ok(Reply { lines, note: None })
            }
            Request::CtFlush => {
                self.set.ct_flush();
                Ok(Reply {
                    lines: Vec::new(),
                    note: Some("tunfilter: connection tracking table has been emptied.".into()),
                })
            }
            Request::ExpectList => {
                let lines: Vec<String> = self
                    .set
                    .expect_list()
                    .iter()
                    .map(|e| e.to_string())
                    .collect();
                let note = format!("tunfilter: {} expectations have been shown.", lines.len());
                Ok(Reply {
                    lines,
                    note: Some(note),
                })
            }
            Request::ExpectFlush => {
                self.set.expect_flush();
                Ok(Reply {
                    lines: Vec::new(),
                    note: Some("tunfilter: expectation table has been emptied.".into()),
                })
            }
            Request::CtDelete { filter } => {
                if filter.is_empty() {
                    return Err(
                        "ct delete needs a filter (use `ct flush` to delete every entry)".into(),
                    );
                }
                let n = self.set.ct_delete(|c| filter.matches_line(&c.to_string()));
                Ok(Reply {
                    lines: Vec::new(),
                    note: Some(format!("tunfilter: {n} flow entries have been deleted.")),
                })
            }
            Request::RulesList { counters } => {
                let text = self.set.rules_save(*counters);
                Ok(Reply {
                    lines: text.lines().map(str::to_owned).collect(),
                    note: None,
                })
            }
            Request::Reload => {
                reload(self)?;
                Ok(Reply {
                    lines: Vec::new(),
                    note: Some("tunfilter: rules reloaded".into()),
                })
            }
            Request::RouteList => {
                // A snapshot: formatting a full table must not hold the shards' locks.
                let table = self.set.routes();
                let lines = table
                    .iter()
                    .map(|r| r.to_line(self.links.get(r.iface).map_or("?", |l| &l.name)))
                    .collect();
                Ok(Reply { lines, note: None })
            }
            Request::RouteAdd { route } => {
                let words: Vec<&str> = route.iter().map(String::as_str).collect();
                let spec = RouteSpec::parse(&words).map_err(|(_, m)| m)?;
                let iface = self
                    .set
                    .iface_id(spec.dev.0)
                    .ok_or_else(|| format!("no interface named {:?}", spec.dev.0))?;
                let r = Route {
                    prefix: spec.prefix,
                    iface,
                    via: spec.via,
                };
                let line = r.to_line(spec.dev.0);
                if !self.set.route_add(r) {
                    let old = self
                        .set
                        .routes()
                        .get(spec.prefix)
                        .map(|o| o.to_line(self.links.get(o.iface).map_or("?", |l| &l.name)));
                    return Err(format!(
                        "{} has a route already ({}): delete it first",
                        spec.prefix,
                        old.unwrap_or_default()
                    ));
                }
                tracing::info!(route = %line, "route added");
                Ok(Reply {
                    lines: Vec::new(),
                    note: Some(format!("tunfilter: route added: {line}")),
                })
            }
            Request::RouteDel { prefix } => {
                let p = parse_prefix(prefix)?;
                let r = self
                    .set
                    .route_del(p)
                    .ok_or_else(|| format!("no route for {p}"))?;
                let line = r.to_line(self.links.get(r.iface).map_or("?", |l| &l.name));
                tracing::info!(route = %line, "route deleted");
                Ok(Reply {
                    lines: Vec::new(),
                    note: Some(format!("tunfilter: route deleted: {line}")),
                })
            }
            #[cfg(feature = "fault-injection")]
            Request::FaultOpen { path, write } => {
                let r = std::fs::OpenOptions::new()
                    .read(!*write)
                    .write(*write)
                    .create(*write)
                    .truncate(false)
                    .open(path);
                match r {
                    Ok(_) => Ok(Reply {
                        lines: vec![format!("opened {path}")],
                        note: None,
                    }),
                    // The errno in a fixed form, for tests to match.
                    Err(e) => Err(format!(
                        "open {path}: errno={} ({e})",
                        e.raw_os_error().unwrap_or(0)
                    )),
                }
            }
            Request::CtEvents { .. } | Request::Trace { .. } => {
                Err("streams are served by the control server".into())
            }
        }
    }

    fn hub(&self) -> &Arc<EventHub> {
        &self.hub
    }

    fn stopping(&self) -> bool {
        self.stop.is_stopped()
    }

    fn wake_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stop.fd()
    }
}

fn reload(sh: &Shared) -> Result<(), String> {
    let r = sh.set.reload();
    match &r {
        Ok(()) => tracing::info!("rules reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "rules reload failed; the previous rules stay active")
        }
    }
    r
}

/// A per-process random hash seed, so that connection-table bucket placement cannot be
/// predicted by a remote sender (hash flooding).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Whom to run as after setup: the configured account, or root when told so (`--keep-privileges`
/// or `user = "root"`). Looked up before anything is created, so that a missing user fails
/// early; an error names the configuration key that set it.
fn run_as(config: &Config, opts: &RunOptions) -> Result<RunAs, LiveError> {
    if !opts.drop_privileges {
        return Ok(RunAs::Root);
    }
    let p = &config.process;
    privileges::lookup(&p.user, p.group.as_deref()).map_err(|e| {
        let (at, m) = match e {
            LookupError::User(m) => (p.user_at.as_ref(), m),
            LookupError::Group(m) => (p.group_at.as_ref(), m),
        };
        match at {
            Some(at) => LiveError::System(format!("{at}: [process] {m}")),
            None => LiveError::System(format!(
                "{}: [process] {m} (set `user` in [process])",
                config.path.display()
            )),
        }
    })
}

/// Drops privileges (see [`privileges`]) or says why not. Runs before any thread is spawned.
fn drop_privileges(config: &Config, run_as: &RunAs, keep_flag: bool) -> Result<(), LiveError> {
    let account = match run_as {
        RunAs::Root => {
            let why = if keep_flag {
                "--keep-privileges"
            } else {
                "[process] user is root"
            };
            tracing::warn!(
                "{why}: staying root with every capability, no seccomp filter and no Landlock \
                 (for debugging only)"
            );
            return Ok(());
        }
        RunAs::User(a) => a,
    };
    let rules = &config.rules;
    let files: Vec<(&std::path::Path, Option<&crate::config::Position>, &str)> = [
        (rules.ipv4.as_deref(), rules.ipv4_at.as_ref(), "ipv4"),
        (rules.ipv6.as_deref(), rules.ipv6_at.as_ref(), "ipv6"),
    ]
    .into_iter()
    .filter_map(|(p, at, key)| p.map(|p| (p, at, key)))
    .collect();
    let readable: Vec<PathBuf> = files.iter().map(|(p, _, _)| p.to_path_buf()).collect();
    let done = privileges::drop_to(account, &readable)?;
    tracing::info!(
        user = %account.user,
        uid = account.uid,
        group = %account.group,
        gid = account.gid,
        landlock = done.landlock,
        "privileges dropped: no capabilities, no_new_privs, seccomp filter"
    );
    if !done.landlock {
        tracing::warn!(
            "this kernel has no Landlock: file access is limited by the user switch and the \
             seccomp filter only"
        );
    }
    // `reload` reads the rule files as this user from now on: find out now, not at the
    // first reload.
    for (path, at, key) in files {
        if let Err(e) = std::fs::File::open(path) {
            let at = at.map_or_else(|| config.path.display().to_string(), |a| a.to_string());
            return Err(LiveError::System(format!(
                "{at}: [rules] {key}: {} cannot be read as user {:?} (group {:?}): {e}; \
                 `reload` would fail: make the file readable by that user or group and its \
                 folders searchable, or choose another [process] user",
                path.display(),
                account.user,
                account.group
            )));
        }
    }
    Ok(())
}

/// Runs tunfilter on live devices until SIGINT/SIGTERM (exit code 0) or a fatal error.
/// Takes the configuration by value: its route list (a million entries for a full table)
/// is freed once the shards hold the table.
pub fn run(mut config: Config, opts: RunOptions) -> Result<ExitCode, LiveError> {
    let workers = match opts.workers {
        0 => thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, 64);
    let run_as = run_as(&config, &opts)?;
    // The engine first: a bad ruleset must fail before anything is created on the system.
    let set = ShardSet::new(&config, random_seed(), workers)
        .map_err(|e| LiveError::Engine(e.to_string()))?;
    drop(std::mem::take(&mut config.routes));
    // Signals before devices: a Ctrl-C during setup is then handled as a clean stop.
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| LiveError::System(format!("cannot install signal handlers: {e}")))?;
    let devices = device::setup(&config.interfaces, workers)?;
    let links = config
        .interfaces
        .iter()
        .map(|i| {
            let l2 = (i.kind == IfaceKind::Tap).then(|| {
                let mac = l2::stable_mac(&i.name);
                tracing::info!(
                    device = %i.name,
                    mac = %mac.map(|b| format!("{b:02x}")).join(":"),
                    "answering ARP/ND for the router's addresses"
                );
                Mutex::new(L2Iface::new(mac, &i.addresses, L2Limits::default()))
            });
            Link {
                name: i.name.clone(),
                kind: i.kind,
                mac: l2::stable_mac(&i.name),
                l2,
                stats: LinkStats::default(),
            }
        })
        .collect();
    let ctl = ControlSocket::bind(&opts.socket)?;
    let stop = StopSignal::new()
        .map_err(|e| LiveError::System(format!("cannot create the wake-up pipe: {e}")))?;
    drop_privileges(&config, &run_as, !opts.drop_privileges)?;
    let shared = Arc::new(Shared {
        set,
        devices,
        links,
        clock: Clock(std::time::Instant::now()),
        stop,
        hub: Arc::new(EventHub::default()),
        fatal: Mutex::new(None),
        signals: Mutex::new(Some(signals.handle())),
    });

    // Events are formatted and published while their shard is locked, so that a connection's
    // events keep their order whichever worker drains them; engines only make events while
    // someone listens, so the cost falls on monitored runs only.
    let hub = shared.hub.clone();
    shared.set.set_event_sink(Box::new(move |evs| {
        if hub.subscribers() > 0 {
            hub.publish(evs.drain(..).map(|e| EventLine {
                text: e.to_string(),
                json: e.to_json(),
                trace: is_trace(e.kind()),
            }));
        } else {
            evs.clear();
        }
    }));

    let mut threads = Vec::new();
    for w in 0..workers {
        let sh = shared.clone();
        let spawned = thread::Builder::new()
            .name(format!("tf-worker-{w}"))
            .spawn(move || supervised(&format!("worker {w}"), || worker(&sh, w), |e| sh.fail(e)));
        match spawned {
            Ok(h) => threads.push(h),
            Err(e) => shared.fail(LiveError::System(format!(
                "cannot start worker thread: {e}"
            ))),
        }
    }
    let backend: Arc<dyn Backend> = shared.clone();
    let socket_path = ctl.path().display().to_string();
    match thread::Builder::new().name("tf-control".into()).spawn({
        let sh = shared.clone();
        move || supervised("control", || control::serve(&ctl, backend), |e| sh.fail(e))
    }) {
        Ok(h) => threads.push(h),
        Err(e) => shared.fail(LiveError::System(format!(
            "cannot start control thread: {e}"
        ))),
    }
    tracing::info!(
        workers,
        interfaces = shared.links.len(),
        control = %socket_path,
        "tunfilter running"
    );

    if !shared.stop.is_stopped() {
        for sig in signals.forever() {
            match sig {
                SIGHUP => {
                    tracing::info!("SIGHUP: reloading rules");
                    let _ = reload(&shared);
                }
                _ => {
                    tracing::info!(signal = sig, "stopping");
                    break;
                }
            }
        }
    }
    shared.stop.stop();
    for t in threads {
        if t.join().is_err() {
            tracing::error!("a thread panicked during operation");
        }
    }
    for line in shared.driver_stats() {
        tracing::info!("{line}");
    }
    let fatal = shared.fatal.lock().take();
    // Last reference: drops the devices (the kernel deletes them with their addresses and
    // routes); the control socket file went with the control thread.
    drop(shared);
    tracing::info!("stopped; devices removed");
    match fatal {
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Runs a thread's body; if it panics, stops the whole process through `fail`. Packet
/// handling contains its own panics (a bad packet is a counted drop, see
/// `Engine::contain_panic`); a panic anywhere else in a worker or the control thread leaves
/// state nobody can vouch for, and a gateway whose worker silently died would black-hole the
/// flows steered to it. Exiting with an error lets the supervisor (systemd's
/// `Restart=on-failure`) start a fresh one.
fn supervised(name: &str, body: impl FnOnce(), fail: impl FnOnce(LiveError)) {
    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        fail(LiveError::System(format!(
            "{name} thread panicked ({what}); exiting so that a supervisor restarts tunfilter"
        )));
    }
}

/// Whether a read/write error means the device is gone for good.
fn device_gone(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADFD) | Some(libc::ENODEV) | Some(libc::ENXIO) | Some(libc::EBADF)
    )
}

fn worker(sh: &Shared, w: usize) {
    let n = sh.links.len();
    let mut buf = vec![0u8; RX_BUF];
    let mut work = Work::default();
    work.batch.reserve(BATCH * n.max(1));
    // (interface, frame, queue): queue is the sending shard, or this worker's own.
    let mut frames: Vec<(usize, Vec<u8>, usize)> = Vec::new();
    let mut readable = vec![false; n];
    while !sh.stop.is_stopped() {
        let timeout = next_wakeup(sh, w);
        {
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(n + 1);
            for i in 0..n {
                if let Some(q) = sh.queue(i, w) {
                    fds.push(PollFd::from_borrowed_fd(q.fd(), PollFlags::IN));
                }
            }
            fds.push(PollFd::from_borrowed_fd(sh.stop.fd(), PollFlags::IN));
            let ts = rustix::time::Timespec {
                tv_sec: timeout.as_secs() as i64,
                tv_nsec: i64::from(timeout.subsec_nanos()),
            };
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    sh.fail(LiveError::System(format!("poll failed: {e}")));
                    return;
                }
            }
            for (i, r) in readable.iter_mut().enumerate() {
                *r = fds.get(i).is_some_and(|f| !f.revents().is_empty());
            }
        }
        if sh.stop.is_stopped() {
            break;
        }
        let now = sh.clock.now();

        // Read a batch from every ready queue; TAP frames go through layer 2 first.
        for (i, ready) in readable.iter().enumerate() {
            if !ready {
                continue;
            }
            let (Some(q), Some(link)) = (sh.queue(i, w), sh.links.get(i)) else {
                continue;
            };
            for _ in 0..BATCH {
                let len = match q.recv(&mut buf) {
                    Ok(len) => len,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) if device_gone(&e) => {
                        sh.fail(LiveError::Device(format!(
                            "interface {}: device went away: {e}",
                            link.name
                        )));
                        return;
                    }
                    Err(e) => {
                        add(&link.stats.rx_errors, 1);
                        tracing::debug!(device = %link.name, error = %e, "read failed");
                        // Avoid spinning on an error that poll keeps reporting.
                        thread::sleep(Duration::from_millis(10));
                        break;
                    }
                };
                add(&link.stats.rx_packets, 1);
                add(&link.stats.rx_bytes, len as u64);
                let data = &buf[..len];
                if q.offload() {
                    // The virtio-net header, then the packet (TUN only: config checks that).
                    match Offload::parse(data) {
                        Some(o) => {
                            work.obatch
                                .push((i, PacketBuf::from_slice(&data[VNET_HDR_LEN..]), o))
                        }
                        None => add(&link.stats.rx_errors, 1),
                    }
                    continue;
                }
                match &link.l2 {
                    None => work.batch.push((i, PacketBuf::from_slice(data))),
                    // IP for us needs no layer-2 state: no lock on the receive path.
                    Some(l2) => match l2::ip_for_us(link.mac, data) {
                        Some(p) => work.batch.push((i, PacketBuf::from_slice(p))),
                        None => {
                            let mut l2 = l2.lock();
                            if let Rx::Ip(p) = l2.handle_frame(now, data) {
                                work.batch.push((i, PacketBuf::from_slice(p)));
                            }
                            while let Some(f) = l2.poll_frame() {
                                frames.push((i, f, w));
                            }
                        }
                    },
                }
            }
        }

        // Each owning shard locked once for its packets; this worker's shard also for its
        // timers. Events cost formatting and queue space: generated only while someone listens.
        work.want_events = sh.hub.subscribers() > 0;
        sh.set.handle(w, now, &mut work);

        // Layer 2 timers (retransmitted solicitations, ageing).
        for (i, link) in sh.links.iter().enumerate() {
            if let Some(l2) = &link.l2 {
                let mut l2 = l2.lock();
                if l2.poll_timeout().is_some_and(|t| t <= now) {
                    l2.handle_timeout(now);
                }
                while let Some(f) = l2.poll_frame() {
                    frames.push((i, f, w));
                }
            }
        }

        // Transmit: TUN gets the IP packet, TAP gets it framed (or queued while resolving).
        // A TAP link's neighbour cache is locked once per run of transmits to that link, not
        // once per frame (the guard is kept while consecutive packets leave by that link).
        let mut held: Option<(usize, parking_lot::MutexGuard<'_, L2Iface>)> = None;
        for (shard, t) in work.tx.drain(..) {
            let Some(link) = sh.links.get(t.iface) else {
                continue;
            };
            let offload_dev = sh.queue(t.iface, w).is_some_and(Queue::offload);
            match &link.l2 {
                None if offload_dev => {
                    // Packets the router made, or that came without one, get an empty header.
                    let hdr = t.offload.unwrap_or_default().to_bytes();
                    let mut f = Vec::with_capacity(VNET_HDR_LEN + t.packet.len());
                    f.extend_from_slice(&hdr);
                    f.extend_from_slice(t.packet.as_slice());
                    frames.push((t.iface, f, shard));
                }
                None => frames.push((t.iface, t.packet.into_vec(), shard)),
                Some(l2) => {
                    if held.as_ref().is_none_or(|(i, _)| *i != t.iface) {
                        // Never two links' locks at once: release before taking the next.
                        drop(held.take());
                        held = Some((t.iface, l2.lock()));
                    }
                    if let Some((_, l2)) = held.as_mut() {
                        l2.send_ip(now, t.next_hop, t.packet.as_slice());
                        while let Some(f) = l2.poll_frame() {
                            frames.push((t.iface, f, shard));
                        }
                    }
                }
            }
        }
        drop(held);
        for (i, f, queue) in frames.drain(..) {
            let (Some(q), Some(link)) = (sh.tx_queue(i, queue), sh.links.get(i)) else {
                continue;
            };
            match q.send(&f) {
                Ok(_) => {
                    add(&link.stats.tx_packets, 1);
                    add(&link.stats.tx_bytes, f.len() as u64);
                }
                Err(e) if device_gone(&e) => {
                    sh.fail(LiveError::Device(format!(
                        "interface {}: device went away: {e}",
                        link.name
                    )));
                    return;
                }
                Err(e) => {
                    // Full queue or link down: the packet is lost, as on a real NIC.
                    add(&link.stats.tx_errors, 1);
                    tracing::trace!(device = %link.name, error = %e, "write failed");
                }
            }
        }

        // Events went to the hub under their shard's lock (see `run`).
        work.events.clear();
    }
}

/// How long a worker may sleep: until the earliest engine or layer-2 deadline, between
/// [`MIN_SLEEP`] and [`MAX_SLEEP`].
fn next_wakeup(sh: &Shared, w: usize) -> Duration {
    let now = sh.clock.now();
    let mut deadline = sh.set.poll_timeout(w);
    for l in &sh.links {
        if let Some(l2) = &l.l2 {
            if let Some(t) = l2.lock().poll_timeout() {
                deadline = Some(deadline.map_or(t, |d| d.min(t)));
            }
        }
    }
    match deadline {
        // The floor keeps a deadline that stays in the past (a timer the engine does not
        // advance) from turning the loop into a busy spin; packets still wake poll at once.
        Some(d) => d.saturating_duration_since(now).clamp(MIN_SLEEP, MAX_SLEEP),
        None => MAX_SLEEP,
    }
}

/// Whether an event kind belongs to the `trace` stream: per-packet verdict events (drops and
/// LOG hits) now, and dedicated trace events once the engine emits them.
fn is_trace(kind: &str) -> bool {
    matches!(kind, "drop" | "log") || kind.starts_with("trace")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_stream_takes_drops_logs_and_traces() {
        assert!(is_trace("drop"));
        assert!(is_trace("log"));
        assert!(is_trace("trace-rule"));
        assert!(!is_trace("new"));
        assert!(!is_trace("destroy"));
    }

    #[test]
    fn a_thread_that_panics_reports_a_fatal_error() {
        let mut got = None;
        supervised("worker 3", || panic!("boom"), |e| got = Some(e.to_string()));
        let msg = got.expect("the panic reached `fail`");
        assert!(msg.contains("worker 3") && msg.contains("boom"), "{msg}");
        let mut called = false;
        supervised("worker 0", || {}, |_| called = true);
        assert!(!called, "a thread that ends normally is not a failure");
    }

    #[test]
    fn clock_is_monotonic_and_never_zero() {
        let c = Clock(std::time::Instant::now());
        let a = c.now();
        let b = c.now();
        assert!(a >= Instant::from_secs(1));
        assert!(b >= a);
    }
}
