//! Minimal pcap (libpcap classic format) reading and writing.
//!
//! Written here rather than pulled in because the simulator needs exactly
//! this much: both byte orders and both timestamp resolutions on input,
//! little-endian nanosecond files on output, and link types RAW and Ethernet.

use std::io::{self, Read, Write};

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// LINKTYPE_RAW (raw IPv4/IPv6).
pub const LINKTYPE_RAW: u32 = 101;
/// LINKTYPE_IPV4.
pub const LINKTYPE_IPV4: u32 = 228;
/// LINKTYPE_IPV6.
pub const LINKTYPE_IPV6: u32 = 229;
/// LINKTYPE_LINUX_SLL (Linux cooked capture).
pub const LINKTYPE_LINUX_SLL: u32 = 113;

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;

/// One captured packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Capture time in nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Captured bytes.
    pub data: Vec<u8>,
}

/// Why a pcap file could not be read.
#[derive(Debug)]
pub enum PcapError {
    /// I/O failure.
    Io(io::Error),
    /// Not a pcap file, or a damaged one; the string says where.
    Format(String),
}

impl std::fmt::Display for PcapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PcapError::Io(e) => write!(f, "{e}"),
            PcapError::Format(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for PcapError {}

impl From<io::Error> for PcapError {
    fn from(e: io::Error) -> Self {
        PcapError::Io(e)
    }
}

/// Reads a whole pcap file: its link type and records.
pub fn read_all(mut r: impl Read) -> Result<(u32, Vec<Record>), PcapError> {
    let mut buf = Vec::new();
    r.read_to_end(&mut buf)?;
    parse(&buf)
}

/// Parses pcap bytes.
pub fn parse(buf: &[u8]) -> Result<(u32, Vec<Record>), PcapError> {
    let hdr = buf
        .get(..24)
        .ok_or_else(|| PcapError::Format("file shorter than the 24-byte pcap header".into()))?;
    let magic_le = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let magic_be = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let (le, ns) = match (magic_le, magic_be) {
        (MAGIC_US, _) => (true, false),
        (MAGIC_NS, _) => (true, true),
        (_, MAGIC_US) => (false, false),
        (_, MAGIC_NS) => (false, true),
        _ => return Err(PcapError::Format(
            "not a pcap file (bad magic; pcapng is not supported: convert with `editcap -F pcap`)"
                .into(),
        )),
    };
    let u32at = |b: &[u8], o: usize| {
        let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let linktype = u32at(hdr, 20) & 0x0fff_ffff;
    let mut off = 24;
    let mut out = Vec::new();
    while off < buf.len() {
        let rh = buf
            .get(off..off + 16)
            .ok_or_else(|| PcapError::Format(format!("truncated record header at byte {off}")))?;
        let sec = u64::from(u32at(rh, 0));
        let frac = u64::from(u32at(rh, 4));
        let incl = u32at(rh, 8) as usize;
        let data = buf.get(off + 16..off + 16 + incl).ok_or_else(|| {
            PcapError::Format(format!(
                "truncated record at byte {off} ({incl} bytes announced)"
            ))
        })?;
        let ts_ns = sec * 1_000_000_000 + if ns { frac } else { frac * 1000 };
        out.push(Record {
            ts_ns,
            data: data.to_vec(),
        });
        off += 16 + incl;
    }
    Ok((linktype, out))
}

/// Writes a pcap file (little-endian, nanosecond timestamps).
#[derive(Debug)]
pub struct Writer<W: Write> {
    w: W,
}

impl<W: Write> Writer<W> {
    /// Writes the file header.
    pub fn new(mut w: W, linktype: u32) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&MAGIC_NS.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&262_144u32.to_le_bytes());
        h.extend_from_slice(&linktype.to_le_bytes());
        w.write_all(&h)?;
        Ok(Writer { w })
    }

    /// Writes one record.
    pub fn write(&mut self, ts_ns: u64, data: &[u8]) -> io::Result<()> {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((ts_ns % 1_000_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(data.len() as u32).to_le_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(data)
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Extracts the IP packet from a record of the given link type; `None` for
/// non-IP frames (ARP, ...). Ethernet VLAN tags are skipped.
pub fn ip_payload(linktype: u32, data: &[u8]) -> Option<&[u8]> {
    match linktype {
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 | 12 => Some(data),
        LINKTYPE_ETHERNET => {
            let mut off = 12;
            loop {
                let et = u16::from_be_bytes([*data.get(off)?, *data.get(off + 1)?]);
                match et {
                    0x8100 | 0x88a8 => off += 4,
                    0x0800 | 0x86dd => return data.get(off + 2..),
                    _ => return None,
                }
            }
        }
        LINKTYPE_LINUX_SLL => {
            let et = u16::from_be_bytes([*data.get(14)?, *data.get(15)?]);
            matches!(et, 0x0800 | 0x86dd)
                .then(|| data.get(16..))
                .flatten()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let mut w = Writer::new(Vec::new(), LINKTYPE_RAW).unwrap();
        w.write(1_500_000_000_123_456_789, b"\x45abc").unwrap();
        w.write(1_500_000_001_000_000_000, b"").unwrap();
        let bytes = w.finish().unwrap();
        let (lt, recs) = parse(&bytes).unwrap();
        assert_eq!(lt, LINKTYPE_RAW);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].ts_ns, 1_500_000_000_123_456_789);
        assert_eq!(recs[0].data, b"\x45abc");
        for n in [0, 10, 24 + 5, bytes.len() - 1] {
            if n == 24 {
                continue;
            }
            assert!(parse(&bytes[..n]).is_err(), "prefix {n}");
        }
        assert!(parse(&[0u8; 24])
            .unwrap_err()
            .to_string()
            .contains("bad magic"));
    }

    #[test]
    fn ethernet_payload_skips_vlan() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00, 0x45]);
        assert_eq!(ip_payload(LINKTYPE_ETHERNET, &f), Some(&[0x45u8][..]));
        f[16] = 0x08;
        f[17] = 0x06; // ARP
        assert_eq!(ip_payload(LINKTYPE_ETHERNET, &f), None);
    }
}
