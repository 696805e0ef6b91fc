//! The bare TUN-to-TUN copy loop: the ceiling that `scripts/bench-live.sh` measures tunfilter
//! against.
//!
//! It reads the same gateway TOML as `tunfilter run` and creates the devices with the very same
//! code (`router::live::device::setup`: one queue per worker, moved into the same namespaces,
//! peer addresses and routes configured the same way), and its workers follow the driver's I/O
//! model: poll every queue of the worker, read up to 64 packets from each ready one, then write
//! them all. The only thing missing is the processing, so the ratio tunfilter/copy loop is the
//! cost of the firewall itself. Exactly two TUN interfaces: what comes in on one goes out on the
//! other, untouched.
//!
//! ```text
//! tun_copy --config gateway.toml [--workers N]
//! ```
//!
//! Stops on SIGINT/SIGTERM and removes the devices (closing the queues deletes them).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use router::config::{Config, IfaceKind};
use router::live::device::{self, Devices};
use rustix::event::{PollFd, PollFlags};

/// Same batch and buffer sizes as the driver.
const BATCH: usize = 64;
const RX_BUF: usize = 65536 + 64;

struct Counters {
    rx: AtomicU64,
    tx: AtomicU64,
    tx_errors: AtomicU64,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tun_copy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut config: Option<PathBuf> = None;
    let mut workers = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config = args.next().map(PathBuf::from),
            "--workers" => {
                workers = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--workers needs a number")?;
            }
            _ => {
                return Err(format!(
                    "unknown argument {a}; usage: tun_copy --config FILE [--workers N]"
                ))
            }
        }
    }
    let path = config.ok_or("usage: tun_copy --config FILE [--workers N]")?;
    let config = Config::load(&path).map_err(|e| e.to_string())?;
    if config.interfaces.len() != 2 || config.interfaces.iter().any(|i| i.kind != IfaceKind::Tun) {
        return Err("the copy loop needs exactly two TUN interfaces".into());
    }
    // Same default as the driver: one worker (and one queue per device) per core.
    if workers == 0 {
        workers = thread::available_parallelism().map_or(1, |n| n.get());
    }
    let workers = workers.clamp(1, 64);

    // Signal flag before the devices, so a Ctrl-C during setup still stops cleanly.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    let devices = Arc::new(device::setup(&config.interfaces, workers).map_err(|e| e.to_string())?);
    let counters = Arc::new(Counters {
        rx: AtomicU64::new(0),
        tx: AtomicU64::new(0),
        tx_errors: AtomicU64::new(0),
    });
    eprintln!(
        "tun_copy: {workers} workers copying between {} and {}",
        config.interfaces[0].name, config.interfaces[1].name
    );

    let threads: Vec<_> = (0..workers)
        .map(|w| {
            let (d, s, c) = (devices.clone(), stop.clone(), counters.clone());
            thread::spawn(move || worker(&d, &s, &c, w))
        })
        .collect();
    let mut result = Ok(());
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(_) => result = Err("a worker panicked".into()),
        }
    }
    eprintln!(
        "tun_copy: {} packets read, {} written, {} write errors",
        counters.rx.load(Ordering::Relaxed),
        counters.tx.load(Ordering::Relaxed),
        counters.tx_errors.load(Ordering::Relaxed)
    );
    result
}

fn worker(devs: &Devices, stop: &AtomicBool, c: &Counters, w: usize) -> Result<(), String> {
    let queue = |i: usize| {
        devs.devices
            .get(i)
            .and_then(|d| d.queues.get(w).or_else(|| d.queues.first()))
    };
    let (Some(q0), Some(q1)) = (queue(0), queue(1)) else {
        return Err("missing device queue".into());
    };
    let queues = [q0, q1];
    // Reused buffers: the batch is read first (up to BATCH per ready queue), then written, as
    // the driver does, but without per-packet allocation (that belongs to tunfilter's cost).
    let mut bufs: Vec<Vec<u8>> = (0..2 * BATCH).map(|_| vec![0u8; RX_BUF]).collect();
    let mut pending: Vec<(usize, usize, usize)> = Vec::with_capacity(2 * BATCH); // (out, slot, len)
                                                                                 // The poll timeout only bounds how late a stop signal is noticed.
    let ts = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    while !stop.load(Ordering::Relaxed) {
        let mut ready = [false; 2];
        {
            let mut fds = [
                PollFd::from_borrowed_fd(q0.fd(), PollFlags::IN),
                PollFd::from_borrowed_fd(q1.fd(), PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(format!("poll failed: {e}")),
            }
            for (r, f) in ready.iter_mut().zip(&fds) {
                *r = !f.revents().is_empty();
            }
        }
        let mut slot = 0;
        for (i, q) in queues.iter().enumerate() {
            if !ready[i] {
                continue;
            }
            for _ in 0..BATCH {
                let Some(buf) = bufs.get_mut(slot) else { break };
                match q.recv(buf) {
                    Ok(len) => {
                        pending.push((1 - i, slot, len));
                        slot += 1;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("read failed: {e}")),
                }
            }
        }
        c.rx.fetch_add(pending.len() as u64, Ordering::Relaxed);
        for (out, slot, len) in pending.drain(..) {
            let data = bufs
                .get(slot)
                .and_then(|b| b.get(..len))
                .unwrap_or_default();
            match queues[out].send(data) {
                Ok(_) => {
                    c.tx.fetch_add(1, Ordering::Relaxed);
                }
                // Full queue: lost, as tunfilter does.
                Err(_) => {
                    c.tx_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    Ok(())
}
