//! The per-packet match code alone, for instruction counts and layout experiments (see
//! BENCHMARKS.md, "The rules split into one file per extension"): `N` TCP packets through a
//! 1,000-rule FORWARD chain by the linear scan, every packet matching no rule (it walks to the
//! policy). The rules are those of `benches/classify.rs`' mix: `-d host/32 -p tcp -m tcp
//! --dport P`, `-s net/24 -p udp -m udp --dport lo:hi`, `-s net/24 -d net/16`.
//!
//! Run: `cargo build --release -p rules --example scan_loop`, then
//! `valgrind --tool=cachegrind --cache-sim=no target/release/examples/scan_loop N` for two
//! values of N (the difference cancels the load).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use rules::{CtState, EvalOutput, Family, Hook, PacketCtx, Ruleset, Table, Verdict};

fn main() {
    let n: usize = match std::env::args().nth(1).map(|a| a.parse()) {
        Some(Ok(n)) => n,
        _ => {
            eprintln!("usage: scan_loop PACKETS");
            std::process::exit(2);
        }
    };
    let mut text =
        String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    for i in 0..1000u32 {
        let _ = match i % 4 {
            0 | 1 => writeln!(
                text,
                "-A FORWARD -d {}/32 -p tcp -m tcp --dport {} -j ACCEPT",
                Ipv4Addr::from(0x0a00_0000 | i),
                22 + i % 4
            ),
            2 => writeln!(
                text,
                "-A FORWARD -s {}/24 -p udp -m udp --dport {}:{} -j ACCEPT",
                Ipv4Addr::from(0xac10_0000 | ((i & 0xfff) << 8)),
                10000 + i,
                10100 + i
            ),
            _ => writeln!(
                text,
                "-A FORWARD -s {}/24 -d {}/16 -j DROP",
                Ipv4Addr::from(0xc0a8_0000 | ((i & 0xff) << 8)),
                Ipv4Addr::from(0x0b00_0000 | ((i & 0xff) << 16))
            ),
        };
    }
    text.push_str("COMMIT\n");
    let rules = match Ruleset::parse(&text, "scan_loop", Family::V4) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let mut out = EvalOutput::default();
    let mut dropped = 0usize;
    for k in 0..n {
        // Addresses no rule names: 100.64.0.0/10 (shared address space, never sent) to 9.9.9.x.
        let mut ctx = PacketCtx::new(
            Family::V4,
            IpAddr::V4(Ipv4Addr::new(100, 64, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(9, 9, 9, (k % 200) as u8)),
            6,
            &[],
        );
        ctx.sport = Some(40000);
        ctx.dport = Some(80);
        ctx.tcp_flags = Some(0x02);
        ctx.ctstate = CtState::NEW;
        ctx.len = 60;
        let v = rules.evaluate_linear(Table::Filter, Hook::Forward, &ctx, &mut out);
        dropped += usize::from(v == Verdict::Drop);
    }
    println!("{n} packets, {dropped} dropped by the policy");
}
