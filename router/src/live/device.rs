//! TUN/TAP devices: creation, kernel-side configuration, and teardown.
//!
//! Every configured interface becomes a TUN (raw IP) or TAP (Ethernet) device with one queue per
//! worker. A single queue comes from the `tun-tap` crate; several queues need `IFF_MULTI_QUEUE`
//! and offload needs `IFF_VNET_HDR` and `TUNSETOFFLOAD`, which that crate cannot ask for, so
//! [`open_multi_queue`] and [`open_offload_queue`] do those ioctls themselves.
//!
//! Kernel-side configuration (MTU, moving the device into a namespace, the peer's addresses and
//! routes, link up) runs the `ip` command of iproute2: it is always installed where TUN devices
//! are used, and its error messages are what an operator already knows. The router's own
//! addresses are deliberately *not* configured on the kernel: tunfilter answers for them itself.
//!
//! Teardown needs no bookkeeping of its own: the devices are not persistent, so closing the last
//! queue of a device makes the kernel delete it, in whatever namespace it lives, together with
//! every address and route that hangs off it. [`Devices`] owns the queues, so dropping it (on a
//! setup error half-way or at shutdown) undoes everything done so far, even after privileges have
//! been dropped.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::process::Command;

use ipnet::IpNet;

use super::LiveError;
use crate::config::{IfaceKind, InterfaceConfig};

/// One queue of a device: a file descriptor to read packets from and write packets to.
#[derive(Debug)]
pub struct Queue(QueueFd);

#[derive(Debug)]
enum QueueFd {
    /// Single-queue device created by the `tun-tap` crate.
    TunTap(tun_tap::Iface),
    /// One queue of a multi-queue device opened by [`open_multi_queue`].
    Multi(File),
    /// A queue with offload headers ([`open_offload_queue`]).
    Offload(File),
}

impl Queue {
    /// Reads one packet (TUN) or frame (TAP); `WouldBlock` when none is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.0 {
            QueueFd::TunTap(i) => i.recv(buf),
            QueueFd::Multi(f) | QueueFd::Offload(f) => (&*f).read(buf),
        }
    }

    /// Whether every packet read or written carries a `virtio_net_hdr` first.
    pub fn offload(&self) -> bool {
        matches!(self.0, QueueFd::Offload(_))
    }

    /// Writes one packet (TUN) or frame (TAP).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        match &self.0 {
            QueueFd::TunTap(i) => i.send(buf),
            QueueFd::Multi(f) | QueueFd::Offload(f) => (&*f).write(buf),
        }
    }

    /// The descriptor, for `poll`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.0 {
            QueueFd::TunTap(i) => borrow_iface_fd(i),
            QueueFd::Multi(f) | QueueFd::Offload(f) => f.as_fd(),
        }
    }
}

/// `tun_tap::Iface` implements `AsRawFd` but not `AsFd`; this borrows its descriptor for `poll`.
#[allow(unsafe_code)]
fn borrow_iface_fd(iface: &tun_tap::Iface) -> BorrowedFd<'_> {
    // SAFETY: the Iface owns the descriptor and keeps it open for its whole lifetime; the
    // returned BorrowedFd cannot outlive the `&Iface` borrow it is tied to.
    unsafe { BorrowedFd::borrow_raw(iface.as_raw_fd()) }
}

// From <linux/if_tun.h>; stable kernel ABI.
const TUNSETIFF: u64 = 0x4004_54ca;
const IFF_TUN: i16 = 0x0001;
const IFF_TAP: i16 = 0x0002;
const IFF_MULTI_QUEUE: i16 = 0x0100;
const IFF_NO_PI: i16 = 0x1000;
const IFF_VNET_HDR: i16 = 0x4000;
const TUNSETOFFLOAD: u64 = 0x4004_54d0;
const TUN_F_CSUM: u32 = 0x01;
const TUN_F_TSO4: u32 = 0x02;
const TUN_F_TSO6: u32 = 0x04;
const IFNAMSIZ: usize = 16;

/// Opens one queue of the multi-queue device `name` (creating the device with the first queue),
/// without packet information. The `tun-tap` crate cannot set `IFF_MULTI_QUEUE`, so this issues
/// the ioctl itself.
pub fn open_multi_queue(name: &str, kind: IfaceKind) -> io::Result<File> {
    open_tun(name, kind, IFF_MULTI_QUEUE)
}

/// Opens one queue of `name` with `IFF_VNET_HDR` (every packet is preceded by a
/// `virtio_net_hdr`, see [`crate::offload`]) and lets the kernel hand over TCP super-packets
/// with partial checksums (`TUNSETOFFLOAD`: checksum, TSO for IPv4 and IPv6). The `tun-tap`
/// crate cannot ask for either.
#[allow(unsafe_code)]
pub fn open_offload_queue(name: &str, kind: IfaceKind, multi: bool) -> io::Result<File> {
    let extra = if multi { IFF_MULTI_QUEUE } else { 0 };
    let file = open_tun(name, kind, IFF_VNET_HDR | extra)?;
    let features = u64::from(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
    // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned long of feature bits) on
    // an open, attached TUN descriptor.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETOFFLOAD as _, features) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

#[allow(unsafe_code)]
fn open_tun(name: &str, kind: IfaceKind, extra: i16) -> io::Result<File> {
    if name.is_empty() || name.len() >= IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad device name",
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mode = match kind {
        IfaceKind::Tun => IFF_TUN,
        IfaceKind::Tap => IFF_TAP,
    };
    // struct ifreq: the name (IFNAMSIZ bytes, NUL-terminated) then a union whose first member
    // is `short ifr_flags`; 40 bytes on 64-bit Linux, and the kernel reads no further for
    // TUNSETIFF. The zeroed tail provides the NUL terminator (the name is < IFNAMSIZ bytes).
    let mut ifreq = [0u8; 40];
    ifreq[..name.len()].copy_from_slice(name.as_bytes());
    let flags = mode | IFF_NO_PI | extra;
    ifreq[IFNAMSIZ..IFNAMSIZ + 2].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: `file` is an open /dev/net/tun descriptor and `ifreq` is a live, writable buffer
    // at least as large as struct ifreq; TUNSETIFF reads and writes only within it.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, ifreq.as_mut_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// One configured device and its queues.
#[derive(Debug)]
pub struct Device {
    /// Device name, as configured.
    pub name: String,
    /// TUN or TAP.
    pub kind: IfaceKind,
    /// MTU set on the device.
    pub mtu: u32,
    /// Namespace the device was moved into, if any.
    pub netns: Option<String>,
    /// One per worker (or a single shared one).
    pub queues: Vec<Queue>,
}

/// All devices, in configuration order (so the index is the engine's `IfaceId`). Dropping this
/// deletes the devices and with them the kernel-side addresses and routes.
#[derive(Debug, Default)]
pub struct Devices {
    /// The devices.
    pub devices: Vec<Device>,
}

impl Drop for Devices {
    fn drop(&mut self) {
        for d in &self.devices {
            tracing::debug!(device = %d.name, "closing device (the kernel deletes it)");
        }
    }
}

/// Creates and configures every interface of the configuration with `queues` queues each.
/// On error, everything created so far is removed again before returning.
pub fn setup(interfaces: &[InterfaceConfig], queues: usize) -> Result<Devices, LiveError> {
    check_ip_command()?;
    let mut all = Devices::default();
    for iface in interfaces {
        // On `?`, `all` drops and closes every device created so far.
        let dev = setup_one(iface, queues.max(1))?;
        all.devices.push(dev);
    }
    Ok(all)
}

fn setup_one(c: &InterfaceConfig, queues: usize) -> Result<Device, LiveError> {
    let name = c.name.as_str();
    let err = |msg: String| LiveError::Device(format!("interface {name}: {msg}"));
    validate_name(name).map_err(err)?;
    if Path::new("/sys/class/net").join(name).exists() {
        return Err(err(format!(
            "a network device named {name} already exists in this namespace"
        )));
    }
    if let Some(ns) = &c.netns {
        if !netns_exists(ns) {
            return Err(err(format!(
                "network namespace \"{ns}\" does not exist (create it with: ip netns add {ns})"
            )));
        }
    }
    let routes = plan_routes(c).map_err(err)?;

    let mut qs = Vec::with_capacity(queues);
    for _ in 0..queues {
        let q = if c.offload {
            let f = open_offload_queue(name, c.kind, queues > 1)
                .map_err(|e| err(open_error(c.kind, &e)))?;
            rustix::io::ioctl_fionbio(&f, true).map_err(|e| err(open_error(c.kind, &e.into())))?;
            Queue(QueueFd::Offload(f))
        } else {
            open_queue(name, c.kind, queues > 1).map_err(|e| err(open_error(c.kind, &e)))?
        };
        qs.push(q);
    }
    let dev = Device {
        name: name.to_owned(),
        kind: c.kind,
        mtu: c.mtu,
        netns: c.netns.clone(),
        queues: qs,
    };
    // From here on, returning an error drops `dev`, which deletes the device and all that
    // was configured on it.
    let mtu = c.mtu.to_string();
    ip(None, &["link", "set", "dev", name, "mtu", &mtu])
        .map_err(|e| err(format!("cannot set MTU {mtu}: {e}")))?;
    let ns = c.netns.as_deref();
    if let Some(ns) = ns {
        ip(None, &["link", "set", "dev", name, "netns", ns]).map_err(|e| {
            err(format!(
                "cannot move the device into namespace \"{ns}\": {e}"
            ))
        })?;
    }
    for a in &c.peer_addresses {
        let a = a.to_string();
        let mut args = vec!["addr", "add", a.as_str(), "dev", name];
        if a.contains(':') {
            // No duplicate address detection: the link has exactly two ends and we know both;
            // DAD would keep the address "tentative" (unusable) for a second or more.
            args.push("nodad");
        }
        ip(ns, &args).map_err(|e| err(format!("cannot add peer address {a}: {e}")))?;
    }
    ip(ns, &["link", "set", "dev", name, "up"])
        .map_err(|e| err(format!("cannot set the link up: {e}")))?;
    for r in &routes {
        let args = r.ip_args(name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ip(ns, &args).map_err(|e| err(format!("cannot add peer route {}: {e}", r.prefix)))?;
    }
    tracing::info!(
        device = name,
        kind = ?c.kind,
        mtu = c.mtu,
        queues,
        netns = ns.unwrap_or("-"),
        "device up"
    );
    Ok(dev)
}

fn open_queue(name: &str, kind: IfaceKind, multi: bool) -> io::Result<Queue> {
    let q = if multi {
        let f = open_multi_queue(name, kind)?;
        rustix::io::ioctl_fionbio(&f, true)?;
        Queue(QueueFd::Multi(f))
    } else {
        let mode = match kind {
            IfaceKind::Tun => tun_tap::Mode::Tun,
            IfaceKind::Tap => tun_tap::Mode::Tap,
        };
        let i = tun_tap::Iface::without_packet_info(name, mode)?;
        i.set_non_blocking()?;
        if i.name() != name {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the kernel named the device {} instead", i.name()),
            ));
        }
        Queue(QueueFd::TunTap(i))
    };
    Ok(q)
}

/// One line explaining why creating a device failed.
fn open_error(kind: IfaceKind, e: &io::Error) -> String {
    let what = match kind {
        IfaceKind::Tun => "TUN",
        IfaceKind::Tap => "TAP",
    };
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "permission denied creating the {what} device (run as root or with CAP_NET_ADMIN)"
        ),
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
            "/dev/net/tun is missing (load the tun module: modprobe tun)".to_owned()
        }
        Some(libc::EBUSY) => format!("the {what} device is busy (in use by another process?)"),
        Some(libc::EINVAL) => format!(
            "cannot create the {what} device: the name exists with another type or queue mode"
        ),
        _ => format!("cannot create the {what} device: {e}"),
    }
}

fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() < IFNAMSIZ
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':' && b != b'%');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid device name \"{}\" (1 to 15 printable characters, no '/', ':', '%' or spaces)",
            name.escape_debug()
        ))
    }
}

fn netns_exists(ns: &str) -> bool {
    !ns.is_empty()
        && !ns.contains('/')
        && ns != "."
        && ns != ".."
        && ["/run/netns", "/var/run/netns"]
            .iter()
            .any(|d| Path::new(d).join(ns).exists())
}

/// A kernel-side route via the device.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PeerRoute {
    prefix: IpNet,
    /// Next hop on TAP links (the router's address); TUN routes are device routes.
    via: Option<IpAddr>,
}

impl PeerRoute {
    fn ip_args(&self, dev: &str) -> Vec<String> {
        let mut a = Vec::new();
        if self.prefix.addr().is_ipv6() {
            a.push("-6".to_owned());
        }
        a.extend(["route", "add"].map(str::to_owned));
        a.push(self.prefix.to_string());
        if let Some(v) = self.via {
            a.push("via".to_owned());
            a.push(v.to_string());
        }
        a.push("dev".to_owned());
        a.push(dev.to_owned());
        a
    }
}

/// Turns `peer_routes` into concrete routes, validating them before anything is created.
fn plan_routes(c: &InterfaceConfig) -> Result<Vec<PeerRoute>, String> {
    let has = |v6: bool| {
        c.addresses
            .iter()
            .chain(&c.peer_addresses)
            .any(|a| a.addr().is_ipv6() == v6)
    };
    let mut prefixes = Vec::new();
    for r in &c.peer_routes {
        if r == "default" {
            if c.netns.is_none() {
                // Without a namespace this would replace the host's own default route.
                return Err(
                    "peer_routes = [\"default\"] needs netns: refusing to replace this host's default route"
                        .to_owned(),
                );
            }
            if has(false) {
                prefixes.push(IpNet::V4(Default::default()));
            }
            if has(true) {
                prefixes.push(IpNet::V6(Default::default()));
            }
        } else {
            let p: IpNet = r.parse().map_err(|_| {
                format!("invalid peer route \"{r}\" (expected \"default\" or a prefix like 203.0.113.0/24)")
            })?;
            prefixes.push(p.trunc());
        }
    }
    prefixes
        .into_iter()
        .map(|prefix| {
            let via = match c.kind {
                IfaceKind::Tun => None,
                IfaceKind::Tap => Some(router_address_for(c, &prefix).ok_or_else(|| {
                    format!(
                        "peer route {prefix} on a TAP link needs a router address of the same family in `addresses`"
                    )
                })?),
            };
            Ok(PeerRoute { prefix, via })
        })
        .collect()
}

/// The router's address the peer should use as gateway: one in a subnet of a peer address if
/// possible, else any of the family.
fn router_address_for(c: &InterfaceConfig, prefix: &IpNet) -> Option<IpAddr> {
    let v6 = prefix.addr().is_ipv6();
    let fam = c.addresses.iter().filter(|a| a.addr().is_ipv6() == v6);
    fam.clone()
        .find(|a| c.peer_addresses.iter().any(|p| a.contains(&p.addr())))
        .or_else(|| fam.clone().next())
        .map(|a| a.addr())
}

fn check_ip_command() -> Result<(), LiveError> {
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(LiveError::Device(
            "the `ip` command (iproute2) is required to configure devices: install iproute2"
                .to_owned(),
        )),
    }
}

/// Runs `ip [-n NS] ARGS...`; on failure returns ip's own one-line message.
fn ip(netns: Option<&str>, args: &[&str]) -> Result<(), String> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    cmd.args(args);
    tracing::debug!(?cmd, "configuring");
    let out = cmd.output().map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let msg = String::from_utf8_lossy(&out.stderr);
        let msg = msg
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed");
        Err(msg.trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(
        kind: IfaceKind,
        netns: Option<&str>,
        addrs: &[&str],
        peer: &[&str],
        routes: &[&str],
    ) -> InterfaceConfig {
        InterfaceConfig {
            name: "lan0".into(),
            kind,
            mtu: 1500,
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            netns: netns.map(str::to_owned),
            peer_addresses: peer.iter().map(|a| a.parse().unwrap()).collect(),
            peer_routes: routes.iter().map(|r| (*r).to_owned()).collect(),
            offload: false,
        }
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("lan0").is_ok());
        assert!(validate_name("tf-lan.1").is_ok());
        for bad in [
            "",
            "a/b",
            "with space",
            "sixteen-chars-xx",
            "a:b",
            "..",
            "ä",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_routes_per_family_tun_and_tap() {
        let tun = iface(
            IfaceKind::Tun,
            Some("lan"),
            &["192.0.2.1/24", "2001:db8:1::1/64"],
            &["192.0.2.2/24"],
            &["default"],
        );
        let r = plan_routes(&tun).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0].ip_args("lan0").join(" "),
            "route add 0.0.0.0/0 dev lan0"
        );
        assert_eq!(r[1].ip_args("lan0").join(" "), "-6 route add ::/0 dev lan0");

        let tap = iface(
            IfaceKind::Tap,
            Some("lan"),
            &["198.51.100.9/24", "192.0.2.1/24", "2001:db8:1::1/64"],
            &["192.0.2.2/24", "2001:db8:1::2/64"],
            &["default", "203.0.113.7/24"],
        );
        let r = plan_routes(&tap).unwrap();
        let lines: Vec<String> = r.iter().map(|r| r.ip_args("lan0").join(" ")).collect();
        assert_eq!(
            lines,
            [
                "route add 0.0.0.0/0 via 192.0.2.1 dev lan0",
                "-6 route add ::/0 via 2001:db8:1::1 dev lan0",
                "route add 203.0.113.0/24 via 192.0.2.1 dev lan0",
            ]
        );
    }

    #[test]
    fn bad_routes_are_refused_before_anything_is_created() {
        let no_ns = iface(IfaceKind::Tun, None, &["192.0.2.1/24"], &[], &["default"]);
        assert!(plan_routes(&no_ns).unwrap_err().contains("needs netns"));
        let junk = iface(IfaceKind::Tun, Some("lan"), &[], &[], &["somewhere"]);
        assert!(plan_routes(&junk)
            .unwrap_err()
            .contains("invalid peer route"));
        let tap_v6 = iface(
            IfaceKind::Tap,
            Some("lan"),
            &["192.0.2.1/24"],
            &[],
            &["2001:db8::/32"],
        );
        assert!(plan_routes(&tap_v6).unwrap_err().contains("same family"));
    }

    #[test]
    fn missing_namespace_is_one_clear_line() {
        assert!(!netns_exists("tf-surely-not-there-4711"));
        assert!(!netns_exists("../etc"));
    }
}
