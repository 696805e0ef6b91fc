//! The control socket: a Unix stream socket speaking line-oriented JSON.
//!
//! A client sends one [`Request`] as a JSON object on one line, for example
//! `{"cmd":"ct-list","filter":{"proto":"tcp","dport":80}}`, and reads [`Response`] objects, one
//! per line, until `{"type":"end"}` or `{"type":"error",...}`. Streams (`ct-events`, `trace`)
//! send one `line` per event until the client goes away or tunfilter stops; a slow reader loses
//! events (never blocks the packet path) and is told so with `{"type":"dropped","count":N}`.
//!
//! The socket is created with mode 0600 (root only: it can flush the connection table) and
//! removed at exit. The server runs in its own thread with one short-lived thread per client,
//! at most [`MAX_CLIENTS`] at a time.

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
/// Clients served at once; more are refused with an error response.
pub const MAX_CLIENTS: usize = 16;
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
}

impl Request {
    fn is_stream(&self) -> bool {
        matches!(self, Request::CtEvents { .. } | Request::Trace { .. })
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
        let _ = std::fs::remove_file(&self.path);
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

/// Serves clients until the backend stops. Run it in its own thread.
pub fn serve(sock: &ControlSocket, backend: Arc<dyn Backend>) {
    let clients = Arc::new(AtomicUsize::new(0));
    let mut handles: VecDeque<thread::JoinHandle<()>> = VecDeque::new();
    while !backend.stopping() {
        let ready = {
            let mut fds = [
                PollFd::new(&sock.listener, PollFlags::IN),
                PollFd::from_borrowed_fd(backend.wake_fd(), PollFlags::IN),
            ];
            let t = rustix::time::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            };
            match rustix::event::poll(&mut fds, Some(&t)) {
                Ok(_) => !fds[0].revents().is_empty(),
                Err(rustix::io::Errno::INTR) => false,
                Err(e) => {
                    tracing::error!(error = %e, "control socket poll failed");
                    break;
                }
            }
        };
        // Reap finished client threads so the list stays bounded.
        handles.retain(|h| !h.is_finished());
        if !ready {
            continue;
        }
        loop {
            match sock.listener.accept() {
                Ok((stream, _)) => {
                    if clients.load(Ordering::Relaxed) >= MAX_CLIENTS {
                        let mut s = stream;
                        let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                        let _ = send(
                            &mut s,
                            &Response::Error {
                                message: format!("too many control clients (max {MAX_CLIENTS})"),
                            },
                        );
                        continue;
                    }
                    clients.fetch_add(1, Ordering::Relaxed);
                    let b = backend.clone();
                    let c = clients.clone();
                    let spawned = thread::Builder::new().name("tf-ctl-client".into()).spawn(
                        move || {
                            if let Err(e) = serve_client(stream, &*b) {
                                tracing::debug!(error = %e, "control client ended with an error");
                            }
                            c.fetch_sub(1, Ordering::Relaxed);
                        },
                    );
                    match spawned {
                        Ok(h) => handles.push_back(h),
                        Err(e) => {
                            clients.fetch_sub(1, Ordering::Relaxed);
                            tracing::warn!(error = %e, "cannot spawn a control client thread");
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

fn serve_client(stream: UnixStream, backend: &dyn Backend) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_REQUEST)).read_line(&mut line)?;
    let mut w = io::BufWriter::new(&stream);
    let req = match parse_request(&line) {
        Ok(r) => r,
        Err(message) => {
            send(&mut w, &Response::Error { message })?;
            return w.flush();
        }
    };
    tracing::debug!(?req, "control request");
    if req.is_stream() {
        drop(w);
        return stream_events(&stream, &req, backend);
    }
    match backend.execute(&req) {
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
}
