//! SCTP common header and chunk views (RFC 9260 §3).

use super::{be16, be32, checksum, clamp, put16, put32, WireError};

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const VTAG: usize = 4;
    pub(super) const CHECKSUM: usize = 8;
}

/// Size of the common header.
pub const HEADER_LEN: usize = 12;

/// Size of a chunk header (type, flags, length).
pub const CHUNK_HEADER_LEN: usize = 4;

/// SCTP chunk types (RFC 9260 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SctpChunkType;

impl SctpChunkType {
    /// Payload data.
    pub const DATA: u8 = 0;
    /// Initiation.
    pub const INIT: u8 = 1;
    /// Initiation acknowledgement.
    pub const INIT_ACK: u8 = 2;
    /// Selective acknowledgement.
    pub const SACK: u8 = 3;
    /// Heartbeat request.
    pub const HEARTBEAT: u8 = 4;
    /// Heartbeat acknowledgement.
    pub const HEARTBEAT_ACK: u8 = 5;
    /// Abort.
    pub const ABORT: u8 = 6;
    /// Shutdown.
    pub const SHUTDOWN: u8 = 7;
    /// Shutdown acknowledgement.
    pub const SHUTDOWN_ACK: u8 = 8;
    /// Operation error.
    pub const ERROR: u8 = 9;
    /// State cookie.
    pub const COOKIE_ECHO: u8 = 10;
    /// Cookie acknowledgement.
    pub const COOKIE_ACK: u8 = 11;
    /// Shutdown complete.
    pub const SHUTDOWN_COMPLETE: u8 = 14;
}

/// A view of an SCTP packet. The buffer must be exactly the packet (the IP payload): the
/// CRC32c covers all of it.
///
/// After [`new_checked`](Self::new_checked) succeeds, no accessor or chunk iterator panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SctpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SctpPacket<T> {
    /// Wraps `buffer` without validation.
    pub const fn new_unchecked(buffer: T) -> Self {
        SctpPacket { buffer }
    }

    /// Wraps `buffer` after checking it holds the 12-byte common header. Chunks are validated
    /// lazily by [`chunks`](Self::chunks).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.b(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.b(), field::DST_PORT)
    }

    /// Verification tag.
    pub fn verification_tag(&self) -> u32 {
        be32(self.b(), field::VTAG)
    }

    /// The checksum field as the CRC32c value it carries. SCTP transmits the CRC least
    /// significant byte first (RFC 9260 appendix A), so this reads the field little-endian
    /// and compares directly with [`checksum::crc32c`].
    pub fn checksum(&self) -> u32 {
        let b = self.b();
        u32::from_le_bytes([b[8], b[9], b[10], b[11]])
    }

    fn compute_crc(&self) -> u32 {
        let b = self.b();
        // CRC over the packet with the checksum field taken as zero, without copying it.
        let crc = checksum::crc32c_update(!0, &b[..field::CHECKSUM]);
        let crc = checksum::crc32c_update(crc, &[0; 4]);
        !checksum::crc32c_update(crc, &b[HEADER_LEN..])
    }

    /// True when the CRC32c over the packet (checksum field zeroed) matches.
    pub fn verify_checksum(&self) -> bool {
        self.compute_crc() == self.checksum()
    }

    /// Everything after the common header.
    pub fn payload(&self) -> &[u8] {
        let b = self.b();
        clamp(b, HEADER_LEN, b.len())
    }

    /// Iterates over the chunks.
    pub fn chunks(&self) -> SctpChunkIter<'_> {
        SctpChunkIter::new(self.payload())
    }

    /// The first chunk, if well-formed: RFC 9260 puts INIT, INIT ACK and SHUTDOWN COMPLETE
    /// alone in their packet, so this is what connection tracking looks at first.
    pub fn first_chunk(&self) -> Option<Result<SctpChunk<'_>, WireError>> {
        self.chunks().next()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> SctpPacket<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.bm(), field::SRC_PORT, v);
    }
    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.bm(), field::DST_PORT, v);
    }
    /// Sets the verification tag.
    pub fn set_verification_tag(&mut self, v: u32) {
        put32(self.bm(), field::VTAG, v);
    }
    /// Stores a CRC32c value in the checksum field (least significant byte first).
    pub fn set_checksum(&mut self, v: u32) {
        self.bm()[field::CHECKSUM..HEADER_LEN].copy_from_slice(&v.to_le_bytes());
    }
    /// Computes and stores the CRC32c.
    pub fn fill_checksum(&mut self) {
        let c = self.compute_crc();
        self.set_checksum(c);
    }
}

/// One chunk: header fields and the value (without padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SctpChunk<'a> {
    /// Chunk type (see [`SctpChunkType`]).
    pub chunk_type: u8,
    /// Chunk flags.
    pub flags: u8,
    /// Length field: header plus value, padding excluded.
    pub length: u16,
    /// The value, `length - 4` bytes.
    pub value: &'a [u8],
}

impl SctpChunk<'_> {
    /// The Initiate Tag of an INIT or INIT ACK chunk (the tag the peer must put in the common
    /// header of packets it sends), or `None` for other chunk types or a too-short value.
    pub fn init_initiate_tag(&self) -> Option<u32> {
        match self.chunk_type {
            SctpChunkType::INIT | SctpChunkType::INIT_ACK if self.value.len() >= 4 => {
                Some(be32(self.value, 0))
            }
            _ => None,
        }
    }

    /// DATA chunk flag E (end of a user message), B (beginning) and U (unordered) are bits
    /// 0, 1, 2; ABORT and SHUTDOWN COMPLETE use bit 0 as the T bit (tag reflected).
    pub fn t_bit(&self) -> bool {
        self.flags & 1 != 0
    }
}

/// Iterator over chunks yielding `Result<SctpChunk, WireError>`. A chunk whose length is
/// below 4 yields `Err(WireError::BadLength)`, one that runs past the packet
/// `Err(WireError::Truncated)`; either ends the iteration. Padding to a multiple of 4 is
/// skipped, and a missing pad after the last chunk is tolerated.
#[derive(Debug, Clone)]
pub struct SctpChunkIter<'a> {
    data: &'a [u8],
}

impl<'a> SctpChunkIter<'a> {
    /// Iterates over the chunk area of a packet (what follows the common header).
    pub fn new(data: &'a [u8]) -> Self {
        SctpChunkIter { data }
    }

    fn parse(&mut self) -> Result<SctpChunk<'a>, WireError> {
        let data = self.data;
        if data.len() < CHUNK_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let length = be16(data, 2);
        let len = usize::from(length);
        if len < CHUNK_HEADER_LEN {
            return Err(WireError::BadLength);
        }
        if len > data.len() {
            return Err(WireError::Truncated);
        }
        let padded = len.next_multiple_of(4).min(data.len());
        self.data = &data[padded..];
        Ok(SctpChunk {
            chunk_type: data[0],
            flags: data[1],
            length,
            value: &data[CHUNK_HEADER_LEN..len],
        })
    }
}

impl<'a> Iterator for SctpChunkIter<'a> {
    type Item = Result<SctpChunk<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.data.is_empty() {
            return None;
        }
        let r = self.parse();
        if r.is_err() {
            self.data = &[];
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// INIT from port 5000 to 36412 (S1AP) with initiate tag 0xa1b2c3d4, a_rwnd 106496,
    /// 10 outbound / 65535 inbound streams, initial TSN 1, and a 4-byte Supported Address
    /// Types parameter (IPv4) that leaves the chunk 2 bytes short of alignment.
    fn init() -> Vec<u8> {
        let mut v = vec![0x13, 0x88, 0x8e, 0x3c, 0, 0, 0, 0, 0, 0, 0, 0];
        v.extend_from_slice(&[1, 0, 0, 26]); // INIT, length 26
        v.extend_from_slice(&[0xa1, 0xb2, 0xc3, 0xd4]); // initiate tag
        v.extend_from_slice(&[0x00, 0x01, 0xa0, 0x00]); // a_rwnd
        v.extend_from_slice(&[0x00, 0x0a, 0xff, 0xff]); // streams
        v.extend_from_slice(&[0x00, 0x00, 0x00, 0x01]); // initial TSN
        v.extend_from_slice(&[0x00, 0x0c, 0x00, 0x06, 0x00, 0x05]); // addr types: IPv4
        v.extend_from_slice(&[0, 0]); // chunk padding
        v
    }

    #[test]
    fn parse_init() {
        let mut v = init();
        let mut p = SctpPacket::new_checked(&mut v[..]).unwrap();
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(
            (p.src_port(), p.dst_port(), p.verification_tag()),
            (5000, 36412, 0)
        );
        let chunks: Vec<_> = p.chunks().collect::<Result<_, _>>().unwrap();
        assert_eq!(chunks.len(), 1);
        let c = chunks[0];
        assert_eq!(
            (c.chunk_type, c.flags, c.length, c.value.len()),
            (1, 0, 26, 22)
        );
        assert_eq!(c.init_initiate_tag(), Some(0xa1b2_c3d4));
        assert_eq!(p.first_chunk(), Some(Ok(c)));
        // The CRC is stored least significant byte first.
        let crc = checksum::crc32c(&{
            let mut z = v.clone();
            z[8..12].fill(0);
            z
        });
        assert_eq!(&v[8..12], &crc.to_le_bytes());
    }

    #[test]
    fn multiple_chunks_and_padding() {
        let mut v = vec![0, 1, 0, 2, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0];
        v.extend_from_slice(&[0, 3, 0, 5, b'x', 0, 0, 0]); // DATA, flags B|E, 1 byte value + pad
        v.extend_from_slice(&[SctpChunkType::COOKIE_ACK, 0, 0, 4]);
        v.extend_from_slice(&[SctpChunkType::ABORT, 1, 0, 6, 9, 9]); // unpadded last chunk
        let p = SctpPacket::new_checked(&v[..]).unwrap();
        let cs: Vec<_> = p.chunks().collect::<Result<_, _>>().unwrap();
        assert_eq!(cs.len(), 3);
        assert_eq!(
            (cs[0].chunk_type, cs[0].flags, cs[0].value),
            (0, 3, &b"x"[..])
        );
        assert_eq!(cs[0].init_initiate_tag(), None);
        assert_eq!((cs[1].chunk_type, cs[1].value.len()), (11, 0));
        assert_eq!((cs[2].chunk_type, cs[2].value), (6, &[9, 9][..]));
        assert!(cs[2].t_bit());
    }

    #[test]
    fn malformed_chunks() {
        let hdr = [0u8; 12];
        let cases: [(&[u8], usize, WireError); 4] = [
            (&[1, 0, 0, 3], 0, WireError::BadLength),
            (&[1, 0, 0, 0], 0, WireError::BadLength),
            (&[1, 0, 0, 8, 0, 0], 0, WireError::Truncated),
            (&[11, 0, 0, 4, 1, 0], 1, WireError::Truncated),
        ];
        for (chunks, ok_before, err) in cases {
            let mut v = hdr.to_vec();
            v.extend_from_slice(chunks);
            let p = SctpPacket::new_checked(&v[..]).unwrap();
            let items: Vec<_> = p.chunks().collect();
            assert_eq!(items.len(), ok_before + 1, "{chunks:?}");
            assert_eq!(items[ok_before], Err(err), "{chunks:?}");
        }
    }

    #[test]
    fn every_prefix_is_rejected() {
        let v = init();
        for n in 0..HEADER_LEN {
            assert_eq!(SctpPacket::new_checked(&v[..n]), Err(WireError::Truncated));
        }
        // Cutting inside the INIT chunk: the packet parses, the chunk does not.
        for n in HEADER_LEN + 1..HEADER_LEN + 26 {
            let p = SctpPacket::new_checked(&v[..n]).unwrap();
            assert_eq!(p.first_chunk(), Some(Err(WireError::Truncated)), "{n}");
        }
    }

    #[test]
    fn setters() {
        let mut v = init();
        let mut p = SctpPacket::new_checked(&mut v[..]).unwrap();
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_verification_tag(3);
        p.set_checksum(0x0403_0201);
        assert_eq!(
            (p.src_port(), p.dst_port(), p.verification_tag()),
            (1, 2, 3)
        );
        assert_eq!(p.checksum(), 0x0403_0201);
        assert_eq!(&p.into_inner()[8..12], &[1, 2, 3, 4]);
    }
}
