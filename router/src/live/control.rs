//! The control socket: a Unix stream socket speaking line-oriented JSON.
//!
//! A client sends one [`Request`] as a JSON object on one line, for example
//! `{"cmd":"ct-list","filter":{"proto":"tcp","dport":80}}`, and reads [`Response`] objects, one
//! per line, until `{"type":"end"}` or `{"type":"error",...}`. Streams (`ct-events`, `trace`)
//! send one `line` per event until the client goes away or tunfilter stops; a slow reader loses
//! events (never blocks the packet path) and is told so with `{"type":"dropped","count":N}`.
//!
//! The socket is created with mode 0600, owned by root (the user that starts tunfilter), before
//! the privilege drop: only root can connect (it can flush the connection table), not the
//! unprivileged user the gateway runs as. It is removed at exit when the process may still
//! write its folder; otherwise (`/run` after the privilege drop) the file stays, refuses
//! connections, and the next start replaces it.
//!
//! The server thread itself holds connections until their request line is complete (no thread
//! each); a client gets [`Limits::request_timeout`] to send it, and when more than
//! [`Limits::pending`] wait, the oldest is dropped to admit the newest, so idle or slow
//! clients can never keep the operator out. A complete request gets a thread: one-shot
//! requests share [`Limits::oneshot`] slots, of which [`Limits::reserved`] only serve the
//! light commands (`ct stats`, `ct flush`, `ct delete`, `reload`, `route add|del`), so slow
//! readers of long listings cannot take them all; an answer must be read within
//! [`Limits::reply_timeout`], and no write waits more than 2 s. Streams have their own
//! [`Limits::subscribers`] slots.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use parking_lot::Mutex;
use rustix::event::{PollFd, PollFlags};
use serde::{Deserialize, Serialize};

use super::LiveError;

/// Default path of the control socket.
pub const DEFAULT_SOCKET: &str = "/run/tunfilter.sock";
/// How many clients the control server serves, and for how long (see the module
/// documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections waiting for their request line; past this the oldest is dropped.
    pub pending: usize,
    /// Time a client has to send its whole request line.
    pub request_timeout: Duration,
    /// One-shot requests answered at once.
    pub oneshot: usize,
    /// Of the one-shot slots, those only light commands may take.
    pub reserved: usize,
    /// Stream subscribers (`ct events`, `trace`) at once.
    pub subscribers: usize,
    /// Time a client has to read a one-shot answer.
    pub reply_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            pending: 64,
            request_timeout: Duration::from_secs(5),
            oneshot: 16,
            reserved: 4,
            subscribers: 32,
            reply_timeout: Duration::from_secs(60),
        }
    }
}

/// Events buffered per stream subscriber before events are dropped for it.
pub const SUBSCRIBER_QUEUE: usize = 4096;
/// Longest request line accepted.
pub const MAX_REQUEST: u64 = 64 * 1024;

/// A control request. `main.rs` maps CLI arguments to one of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    /// `ct list [filters]`: connection table, one `conntrack -L` line per entry.
    CtList {
        /// Which entries to show.
        #[serde(default)]
        filter: CtFilter,
    },
    /// `ct events`: live event stream like `conntrack -E`.
    CtEvents {
        /// JSON objects instead of text lines.
        #[serde(default)]
        json: bool,
    },
    /// `ct stats`: counters like `conntrack -S`, plus drops and the driver's counters.
    CtStats,
    /// `ct flush`: delete every entry.
    CtFlush,
    /// `ct expect list`: the expectation table, one `conntrack -L expect` line per entry.
    ExpectList,
    /// `ct expect flush`: delete every expectation.
    ExpectFlush,
    /// `ct delete <filter>`: delete the matching entries.
    CtDelete {
        /// Which entries to delete; must not be empty (use `ct flush` for all).
        filter: CtFilter,
    },
    /// `rules list [-v]`: the ruleset in iptables-save format.
    RulesList {
        /// With packet and byte counters (`-v`).
        #[serde(default)]
        counters: bool,
    },
    /// `reload`: re-read the rule files atomically (same as SIGHUP).
    Reload,
    /// `trace`: the stream of trace events.
    Trace {
        /// JSON objects instead of text lines.
        #[serde(default)]
        json: bool,
    },
    /// `route list`: the routing table, one `PREFIX [via ADDR] dev IFACE` line per route.
    RouteList,
    /// `route add PREFIX [via ADDR] dev IFACE`: adds a route to the running table, for every
    /// worker at once; refused if the prefix has a route already.
    RouteAdd {
        /// The words after `add`, as `ip route` takes them.
        route: Vec<String>,
    },
    /// `route del PREFIX`: removes the route of exactly that prefix.
    RouteDel {
        /// The prefix.
        prefix: String,
    },
    /// Test builds only (`fault-injection`): tries to open `path` from a thread of the running
    /// gateway (for writing, creating it if missing, when `write`) and answers with the
    /// outcome, so that tests can show what a bug could do with the process's privileges.
    #[cfg(feature = "fault-injection")]
    FaultOpen {
        /// The file to open.
        path: String,
        /// Write access (and creation) instead of reading.
        #[serde(default)]
        write: bool,
    },
}

impl Request {
    fn is_stream(&self) -> bool {
        matches!(self, Request::CtEvents { .. } | Request::Trace { .. })
    }

    /// A request with a short answer, that may use the reserved slots.
    fn is_light(&self) -> bool {
        matches!(
            self,
            Request::CtStats
                | Request::CtFlush
                | Request::ExpectList
                | Request::ExpectFlush
                | Request::CtDelete { .. }
                | Request::Reload
                | Request::RouteAdd { .. }
                | Request::RouteDel { .. }
        )
    }
}

/// Connection filter of `ct list` / `ct delete`, with `conntrack`'s meaning: addresses and ports
/// match the original direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CtFilter {
    /// Layer 4 protocol name (`tcp`, `udp`, `icmp`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    /// Original source address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    /// Original destination address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst: Option<IpAddr>,
    /// Original source port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    /// Original destination port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
    /// Protocol state (`ESTABLISHED`, `SYN_SENT`, ...), case-insensitive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl CtFilter {
    /// Whether the filter matches everything.
    pub fn is_empty(&self) -> bool {
        *self == CtFilter::default()
    }

    /// Whether a `conntrack -L` style line matches. The first `src=`/`dst=`/`sport=`/`dport=`
    /// of a line belong to the original direction, as in conntrack's own output.
    pub fn matches_line(&self, line: &str) -> bool {
        let mut words = line.split_whitespace();
        let proto = words.next().unwrap_or("");
        if let Some(p) = &self.proto {
            if !proto.eq_ignore_ascii_case(p) {
                return false;
            }
        }
        let first = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        };
        let addr_ok = |want: &Option<IpAddr>, key: &str| match want {
            None => true,
            Some(a) => first(key).and_then(|v| v.parse::<IpAddr>().ok()) == Some(*a),
        };
        let port_ok = |want: &Option<u16>, key: &str| match want {
            None => true,
            Some(p) => first(key).and_then(|v| v.parse::<u16>().ok()) == Some(*p),
        };
        if !(addr_ok(&self.src, "src")
            && addr_ok(&self.dst, "dst")
            && port_ok(&self.sport, "sport")
            && port_ok(&self.dport, "dport"))
        {
            return false;
        }
        match &self.state {
            None => true,
            // The state is the first all-caps word without '=' (conntrack prints it after the
            // timeout), e.g. ESTABLISHED; flags like [ASSURED] are bracketed.
            Some(s) => line
                .split_whitespace()
                .skip(1)
                .filter(|w| !w.contains('=') && !w.starts_with('['))
                .any(|w| w.eq_ignore_ascii_case(s)),
        }
    }
}

/// One line of the server's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Response {
    /// A line of output (an entry, an event, a rule line, a counter line).
    Line {
        /// The text, without newline.
        text: String,
    },
    /// A remark for the user's terminal rather than for a pipe (like conntrack's summary line).
    Note {
        /// The text.
        text: String,
    },
    /// Events lost for this subscriber because it read too slowly.
    Dropped {
        /// Events lost since the previous notice.
        count: u64,
    },
    /// The request succeeded; nothing follows.
    End,
    /// The request failed; nothing follows.
    Error {
        /// Why.
        message: String,
    },
}

/// Output of a one-shot request.
#[derive(Debug, Default)]
pub struct Reply {
    /// Lines for standard output.
    pub lines: Vec<String>,
    /// An optional remark for standard error.
    pub note: Option<String>,
}

/// An event prepared once for every subscriber.
#[derive(Debug)]
pub struct EventLine {
    /// `conntrack -E` style text.
    pub text: String,
    /// The JSON form.
    pub json: String,
    /// Whether this is a trace event (for `trace` subscribers).
    pub trace: bool,
}

/// What the server needs from the running router.
pub trait Backend: Send + Sync + 'static {
    /// Executes a one-shot request.
    fn execute(&self, req: &Request) -> Result<Reply, String>;
    /// The event fan-out.
    fn hub(&self) -> &Arc<EventHub>;
    /// Whether tunfilter is shutting down (streams end, the server stops).
    fn stopping(&self) -> bool;
    /// A descriptor that becomes readable when tunfilter shuts down.
    fn wake_fd(&self) -> std::os::fd::BorrowedFd<'_>;
}

struct Subscriber {
    id: u64,
    trace_only: bool,
    tx: SyncSender<Arc<EventLine>>,
    dropped: Arc<AtomicU64>,
}

/// Fans events out to stream subscribers through bounded per-subscriber queues: a slow reader
/// loses events (counted) and never slows the packet path.
#[derive(Default)]
pub struct EventHub {
    subs: Mutex<Vec<Subscriber>>,
    active: AtomicUsize,
    next_id: AtomicU64,
    dropped_total: AtomicU64,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("subscribers", &self.subscribers())
            .field("dropped", &self.dropped_total())
            .finish()
    }
}

/// A subscription; unsubscribes when dropped.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<EventHub>,
    id: u64,
    /// Events for this subscriber.
    pub rx: Receiver<Arc<EventLine>>,
    /// Events dropped for this subscriber and not yet reported.
    pub dropped: Arc<AtomicU64>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut subs = self.hub.subs.lock();
        subs.retain(|s| s.id != self.id);
        self.hub.active.store(subs.len(), Ordering::Relaxed);
    }
}

impl EventHub {
    /// Registers a subscriber with a queue of `cap` events.
    pub fn subscribe(self: &Arc<Self>, trace_only: bool, cap: usize) -> Subscription {
        let (tx, rx) = sync_channel(cap.max(1));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut subs = self.subs.lock();
        subs.push(Subscriber {
            id,
            trace_only,
            tx,
            dropped: dropped.clone(),
        });
        self.active.store(subs.len(), Ordering::Relaxed);
        Subscription {
            hub: self.clone(),
            id,
            rx,
            dropped,
        }
    }

    /// Number of subscribers: the driver skips formatting events when there are none.
    pub fn subscribers(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Events dropped for slow subscribers since start.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// Offers `events` to every subscriber without ever blocking.
    pub fn publish(&self, events: impl IntoIterator<Item = EventLine>) {
        let mut subs = self.subs.lock();
        for ev in events {
            let ev = Arc::new(ev);
            subs.retain(|s| {
                if s.trace_only && !ev.trace {
                    return true;
                }
                match s.tx.try_send(ev.clone()) {
                    Ok(()) => true,
                    Err(TrySendError::Full(_)) => {
                        s.dropped.fetch_add(1, Ordering::Relaxed);
                        self.dropped_total.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    Err(TrySendError::Disconnected(_)) => false,
                }
            });
        }
        self.active.store(subs.len(), Ordering::Relaxed);
    }
}

/// The bound control socket; the file is removed when this is dropped.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        // After the privilege drop the process may not write the socket's folder (`/run`):
        // the file then stays, answers nobody, and the next start replaces it.
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::info!(
                socket = %self.path.display(),
                error = %e,
                "control socket file left in place (the next start replaces it)"
            ),
        }
    }
}

impl ControlSocket {
    /// Binds `path` with mode 0600. A stale socket file left by a crashed instance is replaced;
    /// a live one (another tunfilter answering) or a non-socket file is an error.
    pub fn bind(path: &Path) -> Result<ControlSocket, LiveError> {
        let shown = path.display();
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(LiveError::Control(format!(
                    "control socket path {shown} exists and is not a socket"
                )));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(LiveError::Control(format!(
                    "control socket {shown} is in use (is another tunfilter running?)"
                )));
            }
            std::fs::remove_file(path).map_err(|e| {
                LiveError::Control(format!("cannot remove stale control socket {shown}: {e}"))
            })?;
        }
        // The umask makes the socket 0600 from the start (no window with wider permissions).
        // It is process-wide, which is fine here: this runs during single-threaded setup.
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
        let bound = UnixListener::bind(path);
        rustix::process::umask(old);
        let listener = bound.map_err(|e| {
            LiveError::Control(format!("cannot create control socket {shown}: {e}"))
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| LiveError::Control(format!("control socket {shown}: {e}")))?;
        Ok(ControlSocket {
            listener,
            path: path.to_owned(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Serves clients with the default [`Limits`] until the backend stops. Run it in its own
/// thread.
pub fn serve(sock: &ControlSocket, backend: Arc<dyn Backend>) {
    serve_with(sock, backend, Limits::default())
}

/// A connection whose request line is not complete yet.
struct Pending {
    stream: UnixStream,
    buf: Vec<u8>,
    deadline: std::time::Instant,
}

/// What became of a pending connection after a read.
enum Progress {
    Waiting,
    Complete(Vec<u8>),
    Closed,
    TooLong,
}

/// Reads what a pending client has sent, without blocking.
fn read_pending(p: &mut Pending) -> Progress {
    let mut chunk = [0u8; 4096];
    loop {
        match (&p.stream).read(&mut chunk) {
            Ok(0) if p.buf.is_empty() => return Progress::Closed,
            // A client that shut down its side without a newline sent all it had.
            Ok(0) => return Progress::Complete(std::mem::take(&mut p.buf)),
            Ok(n) => {
                p.buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = p.buf.iter().position(|&b| b == b'\n') {
                    p.buf.truncate(i);
                    return Progress::Complete(std::mem::take(&mut p.buf));
                }
                if p.buf.len() as u64 > MAX_REQUEST {
                    return Progress::TooLong;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Waiting,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Progress::Closed,
        }
    }
}

/// Sends an error line to a client being turned away, without ever blocking the server.
fn refuse(stream: &UnixStream, message: String) {
    let _ = stream.set_nonblocking(true);
    if let Ok(mut line) = serde_json::to_string(&Response::Error { message }) {
        line.push('\n');
        let _ = (&*stream).write(line.as_bytes());
    }
}

/// A slot counter released when the thread that took it ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves clients with `limits` until the backend stops.
pub fn serve_with(sock: &ControlSocket, backend: Arc<dyn Backend>, limits: Limits) {
    let oneshots = Arc::new(AtomicUsize::new(0));
    let subscribers = Arc::new(AtomicUsize::new(0));
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut handles: Vec<thread::JoinHandle<()>> = Vec::new();
    while !backend.stopping() {
        let now = std::time::Instant::now();
        let wait = pending
            .iter()
            .map(|p| p.deadline.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1));
        let (listener_ready, readable) = {
            let mut fds = Vec::with_capacity(pending.len() + 2);
            fds.push(PollFd::new(&sock.listener, PollFlags::IN));
            fds.push(PollFd::from_borrowed_fd(backend.wake_fd(), PollFlags::IN));
            for p in &pending {
                fds.push(PollFd::new(&p.stream, PollFlags::IN));
            }
            let t = rustix::time::Timespec {
                tv_sec: wait.as_secs() as i64,
                tv_nsec: i64::from(wait.subsec_nanos()),
            };
            match rustix::event::poll(&mut fds, Some(&t)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    tracing::error!(error = %e, "control socket poll failed");
                    break;
                }
            }
            let readable: Vec<bool> = fds[2..].iter().map(|f| !f.revents().is_empty()).collect();
            (!fds[0].revents().is_empty(), readable)
        };
        // Reap finished client threads so the list stays bounded.
        handles.retain(|h| !h.is_finished());

        // Requests that came in, clients that left or took too long.
        let now = std::time::Instant::now();
        let mut kept = VecDeque::with_capacity(pending.len());
        for (mut p, ready) in pending
            .drain(..)
            .zip(readable.into_iter().chain(std::iter::repeat(false)))
        {
            let progress = if ready {
                read_pending(&mut p)
            } else {
                Progress::Waiting
            };
            match progress {
                Progress::Waiting if now >= p.deadline => refuse(
                    &p.stream,
                    format!(
                        "no complete request within {} ms",
                        limits.request_timeout.as_millis()
                    ),
                ),
                Progress::Waiting => kept.push_back(p),
                Progress::Closed => {}
                Progress::TooLong => refuse(
                    &p.stream,
                    format!("request longer than {MAX_REQUEST} bytes"),
                ),
                Progress::Complete(line) => {
                    if let Some(h) =
                        dispatch(p.stream, &line, &backend, &limits, &oneshots, &subscribers)
                    {
                        handles.push(h);
                    }
                }
            }
        }
        pending = kept;

        if !listener_ready {
            continue;
        }
        loop {
            match sock.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    pending.push_back(Pending {
                        stream,
                        buf: Vec::new(),
                        deadline: std::time::Instant::now() + limits.request_timeout,
                    });
                    // The newest client is the likeliest to be the operator who just typed a
                    // command; the oldest has had the most time to send its request.
                    if pending.len() > limits.pending.max(1) {
                        if let Some(old) = pending.pop_front() {
                            refuse(
                                &old.stream,
                                format!(
                                    "dropped: more than {} clients waiting to send a request",
                                    limits.pending
                                ),
                            );
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    break;
                }
            }
        }
    }
    // Streams notice `stopping` within their tick; one-shot requests finish quickly.
    for h in handles {
        let _ = h.join();
    }
}

/// Starts serving a complete request in a thread of its own, if a slot is free; otherwise
/// answers with an error at once.
fn dispatch(
    stream: UnixStream,
    line: &[u8],
    backend: &Arc<dyn Backend>,
    limits: &Limits,
    oneshots: &Arc<AtomicUsize>,
    subscribers: &Arc<AtomicUsize>,
) -> Option<thread::JoinHandle<()>> {
    let req = match std::str::from_utf8(line)
        .map_err(|e| format!("bad request: {e}"))
        .and_then(parse_request)
    {
        Ok(r) => r,
        Err(e) => {
            refuse(&stream, e);
            return None;
        }
    };
    tracing::debug!(?req, "control request");
    let (counter, cap, what) = if req.is_stream() {
        (subscribers, limits.subscribers, "event subscribers")
    } else if req.is_light() {
        (oneshots, limits.oneshot, "requests in progress")
    } else {
        (
            oneshots,
            limits.oneshot.saturating_sub(limits.reserved),
            "listings in progress",
        )
    };
    if counter.fetch_add(1, Ordering::Relaxed) >= cap {
        counter.fetch_sub(1, Ordering::Relaxed);
        refuse(
            &stream,
            format!("busy: too many {what} (max {cap}); try again"),
        );
        return None;
    }
    let slot = Slot(counter.clone());
    let b = backend.clone();
    let reply_timeout = limits.reply_timeout;
    let spawned = thread::Builder::new()
        .name("tf-ctl-client".into())
        .spawn(move || {
            let _slot = slot;
            let r = if req.is_stream() {
                stream
                    .set_nonblocking(false)
                    .and_then(|_| stream.set_write_timeout(Some(Duration::from_secs(2))))
                    .and_then(|_| stream_events(&stream, &req, &*b))
            } else {
                answer(&stream, &req, &*b, reply_timeout)
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, "control client ended with an error");
            }
        });
    match spawned {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "cannot spawn a control client thread");
            None
        }
    }
}

/// Parses one request line as the server reads it (the newline may be there or not); the
/// error is the message the client gets. Kept apart from the socket so that it can be
/// fuzzed (`crate::fuzzing::control`).
pub fn parse_request(line: &str) -> Result<Request, String> {
    serde_json::from_str(line.trim()).map_err(|e| format!("bad request: {e}"))
}

fn send(w: &mut impl Write, r: &Response) -> io::Result<()> {
    let mut line = serde_json::to_string(r).map_err(io::Error::other)?;
    line.push('\n');
    w.write_all(line.as_bytes())
}

/// Writes to a client that must have read everything by `deadline`, and keep reading (a
/// write may not wait more than 2 s); gives up when tunfilter stops.
struct DeadlineWriter<'a> {
    stream: &'a UnixStream,
    deadline: std::time::Instant,
    backend: &'a dyn Backend,
}

impl Write for DeadlineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self
            .deadline
            .saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || self.backend.stopping() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read its answer in time",
            ));
        }
        self.stream
            .set_write_timeout(Some(left.min(Duration::from_secs(2))))?;
        (&*self.stream).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Executes a one-shot request and writes the answer.
fn answer(
    stream: &UnixStream,
    req: &Request,
    backend: &dyn Backend,
    reply_timeout: Duration,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    let reply = backend.execute(req);
    let mut w = io::BufWriter::new(DeadlineWriter {
        stream,
        deadline: std::time::Instant::now() + reply_timeout,
        backend,
    });
    match reply {
        Ok(reply) => {
            for text in reply.lines {
                send(&mut w, &Response::Line { text })?;
            }
            if let Some(text) = reply.note {
                send(&mut w, &Response::Note { text })?;
            }
            send(&mut w, &Response::End)?;
        }
        Err(message) => send(&mut w, &Response::Error { message })?,
    }
    w.flush()
}

fn stream_events(stream: &UnixStream, req: &Request, backend: &dyn Backend) -> io::Result<()> {
    let (json, trace_only) = match req {
        Request::Trace { json } => (*json, true),
        Request::CtEvents { json } => (*json, false),
        _ => (false, false),
    };
    let sub = backend.hub().subscribe(trace_only, SUBSCRIBER_QUEUE);
    let mut w = io::BufWriter::new(stream);
    // An acknowledgement, so the client knows the subscription is live before events flow.
    send(
        &mut w,
        &Response::Note {
            text: format!(
                "tunfilter: streaming {} (interrupt to stop)",
                if trace_only {
                    "trace events"
                } else {
                    "conntrack events"
                }
            ),
        },
    )?;
    w.flush()?;
    while !backend.stopping() {
        match sub.rx.recv_timeout(Duration::from_millis(250)) {
            Ok(ev) => {
                let n = sub.dropped.swap(0, Ordering::Relaxed);
                if n > 0 {
                    send(&mut w, &Response::Dropped { count: n })?;
                }
                let text = if json {
                    ev.json.clone()
                } else {
                    ev.text.clone()
                };
                send(&mut w, &Response::Line { text })?;
                // Flush when the queue is drained: batches writes under load, no lag when idle.
                while let Ok(ev) = sub.rx.try_recv() {
                    let text = if json {
                        ev.json.clone()
                    } else {
                        ev.text.clone()
                    };
                    send(&mut w, &Response::Line { text })?;
                }
                w.flush()?;
            }
            Err(RecvTimeoutError::Timeout) => {
                if peer_closed(stream) {
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    send(&mut w, &Response::End)?;
    w.flush()
}

/// Whether the client hung up (a stream client sends nothing after its request).
fn peer_closed(stream: &UnixStream) -> bool {
    let mut fds = [PollFd::new(stream, PollFlags::IN)];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match rustix::event::poll(&mut fds, Some(&zero)) {
        Ok(0) => false,
        Ok(_) => {
            let r = fds[0].revents();
            if r.intersects(PollFlags::HUP | PollFlags::ERR) {
                return true;
            }
            let mut b = [0u8; 64];
            let _ = stream.set_nonblocking(true);
            let closed = matches!((&*stream).read(&mut b), Ok(0));
            let _ = stream.set_nonblocking(false);
            closed
        }
        Err(_) => true,
    }
}

/// Sends `req` to the tunfilter listening on `socket` and copies the answer to `out`; notes and
/// drop notices go to standard error. Returns when the answer is complete, when a stream ends
/// (tunfilter stopped), or when `out` is closed (`| head`).
pub fn client_request(socket: &Path, req: &Request, out: &mut dyn Write) -> Result<(), LiveError> {
    let shown = socket.display();
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        LiveError::Control(format!(
            "cannot connect to {shown}: {e} (is tunfilter running? is --socket right?)"
        ))
    })?;
    let mut line = serde_json::to_string(req)
        .map_err(|e| LiveError::Control(format!("cannot encode request: {e}")))?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| LiveError::Control(format!("cannot send request to {shown}: {e}")))?;
    let reader = BufReader::new(&stream);
    let out_err = |e: io::Error| -> Result<(), LiveError> {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(LiveError::Control(format!("cannot write output: {e}")))
        }
    };
    for l in reader.lines() {
        let l = l.map_err(|e| LiveError::Control(format!("reading from {shown}: {e}")))?;
        let resp: Response = serde_json::from_str(&l)
            .map_err(|e| LiveError::Control(format!("bad response from {shown}: {e}")))?;
        match resp {
            Response::Line { text } => {
                if let Err(e) = writeln!(out, "{text}").and_then(|_| {
                    if req.is_stream() {
                        out.flush()
                    } else {
                        Ok(())
                    }
                }) {
                    return out_err(e);
                }
            }
            Response::Note { text } => eprintln!("{text}"),
            Response::Dropped { count } => {
                eprintln!("tunfilter: {count} events dropped (reader too slow)")
            }
            Response::End => return out.flush().or_else(out_err),
            Response::Error { message } => return Err(LiveError::Remote(message)),
        }
    }
    if req.is_stream() {
        // tunfilter stopped: the stream is over.
        return out.flush().or_else(out_err);
    }
    Err(LiveError::Control(format!(
        "{shown}: connection closed before the answer was complete"
    )))
}

/// A flag and wake descriptor for tests and for drivers that need a standalone stop signal.
#[derive(Debug)]
pub struct StopSignal {
    flag: AtomicBool,
    read: std::os::fd::OwnedFd,
    write: std::os::fd::OwnedFd,
}

impl StopSignal {
    /// A new, unset signal.
    pub fn new() -> io::Result<StopSignal> {
        let (read, write) = rustix::pipe::pipe()?;
        Ok(StopSignal {
            flag: AtomicBool::new(false),
            read,
            write,
        })
    }

    /// Sets the flag and wakes every poller (the pipe stays readable from then on).
    pub fn stop(&self) {
        if !self.flag.swap(true, Ordering::SeqCst) {
            let _ = rustix::io::write(&self.write, &[1]);
        }
    }

    /// Whether [`stop`](StopSignal::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Readable once stopped.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.read.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_json_is_stable() {
        let r = Request::CtList {
            filter: CtFilter {
                proto: Some("tcp".into()),
                dport: Some(80),
                ..CtFilter::default()
            },
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"cmd":"ct-list","filter":{"proto":"tcp","dport":80}}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        let short: Request = serde_json::from_str(r#"{"cmd":"ct-list"}"#).unwrap();
        assert_eq!(
            short,
            Request::CtList {
                filter: CtFilter::default()
            }
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"rules-list","counters":true}"#).unwrap(),
            Request::RulesList { counters: true }
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"rm -rf"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&Response::End).unwrap(),
            r#"{"type":"end"}"#
        );
    }

    #[test]
    fn filter_matches_conntrack_lines() {
        let line =
            "tcp      6 431999 ESTABLISHED src=192.0.2.2 dst=198.51.100.2 sport=40000 dport=80 \
                    packets=5 bytes=400 src=198.51.100.2 dst=192.0.2.2 sport=80 dport=40000 \
                    packets=4 bytes=3000 [ASSURED] mark=0 use=1";
        let f = |f: CtFilter| f.matches_line(line);
        assert!(f(CtFilter::default()));
        assert!(f(CtFilter {
            proto: Some("TCP".into()),
            ..Default::default()
        }));
        assert!(!f(CtFilter {
            proto: Some("udp".into()),
            ..Default::default()
        }));
        assert!(f(CtFilter {
            src: "192.0.2.2".parse().ok(),
            dport: Some(80),
            ..Default::default()
        }));
        // The reply direction's addresses do not count as original ones.
        assert!(!f(CtFilter {
            src: "198.51.100.2".parse().ok(),
            ..Default::default()
        }));
        assert!(!f(CtFilter {
            sport: Some(80),
            ..Default::default()
        }));
        assert!(f(CtFilter {
            state: Some("established".into()),
            ..Default::default()
        }));
        assert!(!f(CtFilter {
            state: Some("SYN_SENT".into()),
            ..Default::default()
        }));
        assert!(!f(CtFilter {
            state: Some("ASSURED".into()),
            ..Default::default()
        }));
    }

    #[test]
    fn hub_drops_for_slow_subscribers_only() {
        let hub = Arc::new(EventHub::default());
        let slow = hub.subscribe(false, 2);
        let fast = hub.subscribe(false, 100);
        let trace = hub.subscribe(true, 100);
        let ev = |i: usize, trace: bool| EventLine {
            text: format!("e{i}"),
            json: format!("{{\"n\":{i}}}"),
            trace,
        };
        hub.publish((0..5).map(|i| ev(i, i == 4)));
        assert_eq!(slow.rx.try_iter().count(), 2);
        assert_eq!(slow.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(fast.rx.try_iter().count(), 5);
        assert_eq!(
            trace
                .rx
                .try_iter()
                .map(|e| e.text.clone())
                .collect::<Vec<_>>(),
            ["e4"]
        );
        assert_eq!(hub.dropped_total(), 3);
        assert_eq!(hub.subscribers(), 3);
        drop(slow);
        assert_eq!(hub.subscribers(), 2);
    }

    struct Fake {
        hub: Arc<EventHub>,
        stop: StopSignal,
    }

    impl Backend for Fake {
        fn execute(&self, req: &Request) -> Result<Reply, String> {
            match req {
                Request::CtStats => Ok(Reply {
                    lines: vec!["cpu=0 found=0".into()],
                    note: Some("1 line".into()),
                }),
                Request::Reload => Err("gateway.rules:3:5: unknown match".into()),
                // Long enough (about 2 MiB) that a client that does not read blocks the writer.
                Request::CtList { .. } => Ok(Reply {
                    lines: (0..30_000).map(|i| format!("{i:040}")).collect(),
                    note: None,
                }),
                _ => Ok(Reply::default()),
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

    #[test]
    fn socket_round_trip_one_shot_stream_and_cleanup() {
        let dir = std::env::temp_dir().join(format!("tf-ctl-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let sock = ControlSocket::bind(&path).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A second instance refuses to steal a live socket.
        assert!(ControlSocket::bind(&path)
            .unwrap_err()
            .to_string()
            .contains("in use"));
        let fake = Arc::new(Fake {
            hub: Arc::new(EventHub::default()),
            stop: StopSignal::new().unwrap(),
        });
        let backend: Arc<dyn Backend> = fake.clone();
        let server = thread::spawn(move || {
            serve(&sock, backend);
            drop(sock);
        });

        let mut out = Vec::new();
        client_request(&path, &Request::CtStats, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "cpu=0 found=0\n");
        let err = client_request(&path, &Request::Reload, &mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "gateway.rules:3:5: unknown match");

        // Stream: subscribe, wait until registered, publish, stop.
        let p2 = path.clone();
        let streamer = thread::spawn(move || {
            let mut out = Vec::new();
            client_request(&p2, &Request::CtEvents { json: true }, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        });
        let mut waited = 0;
        while fake.hub.subscribers() == 0 && waited < 200 {
            thread::sleep(Duration::from_millis(10));
            waited += 1;
        }
        fake.hub.publish([EventLine {
            text: "[NEW] udp".into(),
            json: "{\"kind\":\"new\"}".into(),
            trace: false,
        }]);
        thread::sleep(Duration::from_millis(100));
        fake.stop.stop();
        assert_eq!(streamer.join().unwrap(), "{\"kind\":\"new\"}\n");
        server.join().unwrap();
        assert!(!path.exists(), "socket file removed");
        let _ = std::fs::remove_dir(&dir);
    }

    /// A server on a fresh socket with `limits`; stop it with `fake.stop.stop()`.
    fn start(name: &str, limits: Limits) -> (Arc<Fake>, PathBuf, thread::JoinHandle<()>) {
        let dir = std::env::temp_dir().join(format!("tf-ctl-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let sock = ControlSocket::bind(&path).unwrap();
        let fake = Arc::new(Fake {
            hub: Arc::new(EventHub::default()),
            stop: StopSignal::new().unwrap(),
        });
        let backend: Arc<dyn Backend> = fake.clone();
        let server = thread::spawn(move || serve_with(&sock, backend, limits));
        (fake, path, server)
    }

    /// Reads a connection until the server closes it; the text read, or None if it stayed
    /// open for `within`.
    fn closed_within(s: &mut UnixStream, within: Duration) -> Option<String> {
        s.set_read_timeout(Some(within)).unwrap();
        let mut out = Vec::new();
        match s.read_to_end(&mut out) {
            Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
            Err(_) => None,
        }
    }

    fn stats(path: &Path) -> Result<String, LiveError> {
        let mut out = Vec::new();
        client_request(path, &Request::CtStats, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    /// Many clients that connect and send nothing: the operator still gets answers, and the
    /// idle ones are dropped (the oldest at once when too many wait, the others at their
    /// deadline).
    #[test]
    fn idle_clients_never_lock_the_operator_out_and_are_dropped() {
        let limits = Limits {
            pending: 8,
            request_timeout: Duration::from_millis(800),
            ..Limits::default()
        };
        let (fake, path, server) = start("idle", limits);
        let mut idle: Vec<UnixStream> = (0..40)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect();
        // Give the server time to accept them all.
        thread::sleep(Duration::from_millis(200));
        assert_eq!(stats(&path).unwrap(), "cpu=0 found=0\n");
        assert_eq!(stats(&path).unwrap(), "cpu=0 found=0\n");
        let t0 = std::time::Instant::now();
        for (i, s) in idle.iter_mut().enumerate() {
            let text = closed_within(s, Duration::from_secs(10))
                .unwrap_or_else(|| panic!("idle client {i} still connected"));
            assert!(
                text.contains("dropped: more than 8 clients")
                    || text.contains("no complete request"),
                "client {i}: {text}"
            );
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "dropped at their deadline"
        );
        fake.stop.stop();
        server.join().unwrap();
    }

    /// A client that sends its request a byte at a time, slower than the deadline allows,
    /// is dropped at the deadline rather than holding its place for as long as it trickles.
    #[test]
    fn trickling_clients_are_dropped_at_the_request_deadline() {
        let limits = Limits {
            request_timeout: Duration::from_millis(600),
            ..Limits::default()
        };
        let (fake, path, server) = start("trickle", limits);
        let mut s = UnixStream::connect(&path).unwrap();
        let t0 = std::time::Instant::now();
        let mut refused = false;
        for b in br#"{"cmd":"ct-stats"}"#.iter().cycle().take(60) {
            if s.write_all(&[*b]).is_err() {
                refused = true;
                break;
            }
            thread::sleep(Duration::from_millis(50));
            if t0.elapsed() > Duration::from_millis(2500) {
                break;
            }
        }
        let text = closed_within(&mut s, Duration::from_secs(5));
        assert!(
            refused
                || text
                    .as_deref()
                    .is_some_and(|t| t.contains("no complete request within 600 ms")),
            "{text:?}"
        );
        assert!(t0.elapsed() < Duration::from_secs(5));
        fake.stop.stop();
        server.join().unwrap();
    }

    /// Event subscribers have their own slots: filling them refuses one more subscriber but
    /// not `ct stats` or `reload`.
    #[test]
    fn subscribers_have_their_own_limit() {
        let limits = Limits {
            subscribers: 3,
            oneshot: 2,
            reserved: 1,
            ..Limits::default()
        };
        let (fake, path, server) = start("subs", limits);
        let streams: Vec<thread::JoinHandle<Result<(), String>>> = (0..3)
            .map(|_| {
                let p = path.clone();
                thread::spawn(move || {
                    client_request(&p, &Request::CtEvents { json: false }, &mut io::sink())
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        let t0 = std::time::Instant::now();
        while fake.hub.subscribers() < 3 && t0.elapsed() < Duration::from_secs(10) {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(fake.hub.subscribers(), 3);
        let err = client_request(&path, &Request::Trace { json: false }, &mut io::sink())
            .unwrap_err()
            .to_string();
        assert!(err.contains("too many event subscribers (max 3)"), "{err}");
        assert_eq!(stats(&path).unwrap(), "cpu=0 found=0\n");
        let err = client_request(&path, &Request::Reload, &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "gateway.rules:3:5: unknown match",
            "answered, not busy"
        );
        fake.stop.stop();
        for s in streams {
            s.join().unwrap().unwrap();
        }
        server.join().unwrap();
    }

    /// Clients that ask for a long listing and do not read it hold their slot until the reply
    /// deadline, but the reserved slots still answer light commands meanwhile.
    #[test]
    fn slow_readers_of_listings_leave_the_reserved_slots_to_the_operator() {
        let limits = Limits {
            oneshot: 3,
            reserved: 1,
            reply_timeout: Duration::from_secs(2),
            ..Limits::default()
        };
        let (fake, path, server) = start("slow", limits);
        let ask = |req: &Request| {
            let mut s = UnixStream::connect(&path).unwrap();
            let mut l = serde_json::to_string(req).unwrap();
            l.push('\n');
            s.write_all(l.as_bytes()).unwrap();
            s
        };
        let list = Request::CtList {
            filter: CtFilter::default(),
        };
        // Two listings that nobody reads take the two unreserved slots.
        let mut slow = [ask(&list), ask(&list)];
        thread::sleep(Duration::from_millis(300));
        let err = client_request(&path, &list, &mut io::sink())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("busy: too many listings in progress (max 2)"),
            "{err}"
        );
        assert_eq!(stats(&path).unwrap(), "cpu=0 found=0\n");
        // Past the reply deadline the slow readers are cut off (their answers end without
        // `end`) and listings work again, while they still have not read a byte.
        thread::sleep(Duration::from_millis(2500));
        let mut out = Vec::new();
        client_request(&path, &list, &mut out).unwrap();
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 30_000);
        for s in &mut slow {
            let text = closed_within(s, Duration::from_secs(10)).expect("cut off");
            assert!(!text.contains(r#"{"type":"end"}"#), "an incomplete answer");
        }
        fake.stop.stop();
        server.join().unwrap();
    }
}
