//! Writes a synthetic Internet-size routing table (see `benches/routegen/mod.rs`) as a route
//! file, with a configuration that loads it, to time `tunfilter check` on a full table:
//!
//! ```sh
//! cargo run --release -p router --example gen_routes -- /tmp/fib
//! time target/release/tunfilter check --config /tmp/fib/gw.toml
//! ```
//!
//! Arguments: the output folder, then optionally the IPv4 and IPv6 route counts (default
//! 1,000,000 and 200,000).

#[path = "../benches/routegen/mod.rs"]
mod routegen;

use ipnet::IpNet;
use routegen::{realistic_v4, realistic_v6, Rng};
use std::io::Write;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: gen_routes DIR [N4 [N6]]"));
    let n4: usize = args.next().map_or(1_000_000, |a| a.parse().expect("N4"));
    let n6: usize = args.next().map_or(200_000, |a| a.parse().expect("N6"));
    std::fs::create_dir_all(&dir)?;
    let mut rng = Rng(0x05ee_d0f7_ab1e);
    let mut prefixes = realistic_v4(n4, &mut rng);
    prefixes.extend(realistic_v6(n6, &mut rng));
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("internet.routes"))?);
    writeln!(
        f,
        "# {n4} IPv4 and {n6} IPv6 prefixes of a realistic length mix"
    )?;
    for (i, p) in prefixes.iter().enumerate() {
        // Two upstreams, as a dual-homed border router has.
        let (dev, via) = match (p, i % 2) {
            (IpNet::V4(_), 0) => ("up0", "198.51.100.254"),
            (IpNet::V4(_), _) => ("up1", "203.0.113.254"),
            (IpNet::V6(_), 0) => ("up0", "2001:db8:100::fe"),
            (IpNet::V6(_), _) => ("up1", "2001:db8:200::fe"),
        };
        writeln!(f, "{p} via {via} dev {dev}")?;
    }
    f.flush()?;
    std::fs::write(
        dir.join("gw.toml"),
        r#"[[interface]]
name = "lan0"
kind = "tun"
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]

[[interface]]
name = "up0"
kind = "tun"
addresses = ["198.51.100.1/24", "2001:db8:100::1/64"]

[[interface]]
name = "up1"
kind = "tun"
addresses = ["203.0.113.1/24", "2001:db8:200::1/64"]

[routes]
files = ["internet.routes"]
"#,
    )?;
    println!(
        "{}: {} routes",
        dir.join("internet.routes").display(),
        prefixes.len()
    );
    Ok(())
}
