//! Segmentation and checksum offload metadata: the `virtio_net_hdr` that a TUN device opened
//! with `IFF_VNET_HDR` puts in front of every packet.
//!
//! With offloads on, the kernel hands over TCP "super-packets" of up to 64 KiB (one header,
//! many segments' worth of payload, `gso_size` bytes each) whose L4 checksum field holds only
//! the pseudo-header sum (`needs_csum`); whoever finally puts them on a wire segments them and
//! completes the checksums. The pipeline handles such a packet as one packet — one conntrack
//! update, one rule evaluation, one NAT rewrite for many segments, which is what makes bulk TCP
//! cheap — and hands the header back with it when it forwards it. What changes for it:
//!
//! - its L4 checksum is not verified (the kernel's CHECKSUM_PARTIAL is trusted, as Linux does);
//! - NAT updates the partial checksum for address changes with the pseudo-header's own
//!   arithmetic ([`wire::checksum::update_partial`]) and leaves it alone for port changes (ports are covered
//!   when the checksum is completed);
//! - the egress MTU applies to each segment (`hdr_len + gso_size`), not to the super-packet.
//!
//! ```
//! use router::offload::Offload;
//! let hdr = [1, 1, 66, 0, 0xa8, 0x05, 34, 0, 16, 0];
//! let o = Offload::parse(&hdr).unwrap();
//! assert!(o.needs_csum && o.is_gso());
//! assert_eq!((o.gso_size, o.csum_start, o.csum_offset), (1448, 34, 16));
//! assert_eq!(o.to_bytes(), hdr);
//! ```

/// Length of `struct virtio_net_hdr` (the TUN default; no `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;

const F_NEEDS_CSUM: u8 = 1;
const F_DATA_VALID: u8 = 2;

/// `gso_type` values.
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_UDP: u8 = 3;
pub const GSO_TCPV6: u8 = 4;
pub const GSO_UDP_L4: u8 = 5;
pub const GSO_ECN: u8 = 0x80;

/// One packet's offload metadata (fields in host order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offload {
    /// The L4 checksum field holds the pseudo-header sum; the rest is summed from
    /// `csum_start` and stored at `csum_start + csum_offset` when the packet leaves.
    pub needs_csum: bool,
    /// The sender already validated the checksum.
    pub data_valid: bool,
    /// `GSO_*`, with [`GSO_ECN`] possibly or-ed in.
    pub gso_type: u8,
    /// Bytes of headers each segment repeats.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl Offload {
    /// Reads a header; `None` when shorter than [`VNET_HDR_LEN`] or of a GSO type the pipeline
    /// does not handle (UDP fragmentation offload).
    pub fn parse(b: &[u8]) -> Option<Offload> {
        let b = b.get(..VNET_HDR_LEN)?;
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let o = Offload {
            needs_csum: b[0] & F_NEEDS_CSUM != 0,
            data_valid: b[0] & F_DATA_VALID != 0,
            gso_type: b[1],
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        };
        matches!(
            o.gso_type & !GSO_ECN,
            GSO_NONE | GSO_TCPV4 | GSO_TCPV6 | GSO_UDP_L4
        )
        .then_some(o)
    }

    /// The header bytes.
    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] =
            (u8::from(self.needs_csum) * F_NEEDS_CSUM) | (u8::from(self.data_valid) * F_DATA_VALID);
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }

    /// Whether the packet carries several segments.
    pub fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE && self.gso_size > 0
    }

    /// The length of the largest segment this packet becomes on the wire (`len` for a
    /// packet that is not segmented).
    pub fn segment_len(&self, len: usize) -> usize {
        if self.is_gso() {
            (usize::from(self.hdr_len) + usize::from(self.gso_size)).min(len)
        } else {
            len
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use wire::checksum;

    /// Completes a partial checksum the way the receiving side does: sum from the L4 start
    /// (the partial value included) and complement.
    fn complete(l4: &mut [u8], at: usize) {
        let check = checksum::fold(checksum::sum(l4));
        l4[at..at + 2].copy_from_slice(&check.to_be_bytes());
    }

    #[test]
    fn header_round_trip_and_unsupported_types() {
        let o = Offload {
            needs_csum: true,
            data_valid: false,
            gso_type: GSO_TCPV6 | GSO_ECN,
            hdr_len: 86,
            gso_size: 1428,
            csum_start: 54,
            csum_offset: 16,
        };
        assert_eq!(Offload::parse(&o.to_bytes()), Some(o));
        assert!(o.is_gso());
        assert_eq!(o.segment_len(60_000), 86 + 1428);
        assert_eq!(o.segment_len(1000), 1000);
        assert_eq!(Offload::parse(&[0, GSO_UDP, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(Offload::parse(&[0; 9]), None);
        assert!(!Offload::default().is_gso());
    }

    #[test]
    fn partial_update_equals_recomputing_the_pseudo_header_sum() {
        let (a, b, c) = (
            Ipv4Addr::new(192, 0, 2, 2),
            Ipv4Addr::new(198, 51, 100, 1),
            Ipv4Addr::new(203, 0, 113, 7),
        );
        let len = 1000u32;
        // The partial value is the folded pseudo-header sum, not complemented.
        let partial =
            |s: Ipv4Addr, d: Ipv4Addr| !checksum::fold(checksum::pseudo_header_v4(s, d, 6, len));
        let updated = checksum::update_partial(partial(a, c), &a.octets(), &b.octets());
        assert_eq!(updated, partial(b, c));

        // And completing it gives the same checksum as a full computation over the new header.
        let mut seg = vec![0u8; len as usize];
        for (i, x) in seg.iter_mut().enumerate() {
            *x = (i * 7) as u8;
        }
        seg[16..18].copy_from_slice(&updated.to_be_bytes());
        complete(&mut seg, 16);
        let full = {
            let mut s = seg.clone();
            s[16..18].fill(0);
            checksum::fold(checksum::combine(
                checksum::pseudo_header_v4(b, c, 6, len),
                checksum::sum(&s),
            ))
        };
        assert_eq!(u16::from_be_bytes([seg[16], seg[17]]), full);
    }
}
