//! ICMPv4 message view (RFC 792) and builders for echo replies and error messages.

use super::{be16, be32, checksum, clamp, clamp_mut, put16, put32, WireError};

mod field {
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: usize = 2;
    pub(super) const REST: usize = 4;
    pub(super) const IDENT: usize = 4;
    pub(super) const SEQ: usize = 6;
}

/// Size of the header (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = 8;

/// ICMPv4 message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message;

impl Message {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable (error).
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Source quench (error, deprecated by RFC 6633).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect (error).
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Router advertisement (RFC 1256).
    pub const ROUTER_ADVERT: u8 = 9;
    /// Router solicitation (RFC 1256).
    pub const ROUTER_SOLICIT: u8 = 10;
    /// Time exceeded (error).
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem (error).
    pub const PARAM_PROBLEM: u8 = 12;
    /// Timestamp request.
    pub const TIMESTAMP: u8 = 13;
    /// Timestamp reply.
    pub const TIMESTAMP_REPLY: u8 = 14;
    /// Information request (obsolete).
    pub const INFO_REQUEST: u8 = 15;
    /// Information reply (obsolete).
    pub const INFO_REPLY: u8 = 16;
    /// Address mask request (RFC 950).
    pub const ADDR_MASK_REQUEST: u8 = 17;
    /// Address mask reply (RFC 950).
    pub const ADDR_MASK_REPLY: u8 = 18;
}

/// Codes of [`Message::DEST_UNREACHABLE`] that a router emits (RFC 792, RFC 1812 §5.2.7.1).
pub mod unreachable {
    /// Network unreachable.
    pub const NET: u8 = 0;
    /// Host unreachable.
    pub const HOST: u8 = 1;
    /// Protocol unreachable.
    pub const PROTOCOL: u8 = 2;
    /// Port unreachable.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set (rest of header carries the next-hop MTU, RFC 1191).
    pub const FRAG_NEEDED: u8 = 4;
    /// Communication administratively prohibited (RFC 1812).
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// A view of an ICMPv4 message. The buffer must be exactly the message (the IP payload): the
/// checksum covers all of it.
///
/// After [`new_checked`](Self::new_checked) succeeds, no accessor panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps `buffer` without validation.
    pub const fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }

    /// Wraps `buffer` after checking it holds the 8-byte header.
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

    /// Message type (see [`Message`]).
    pub fn msg_type(&self) -> u8 {
        self.b()[field::TYPE]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.b()[field::CODE]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.b(), field::CHECKSUM)
    }

    /// Echo identifier (bytes 4-5; meaningful for echo, timestamp and similar queries).
    pub fn echo_ident(&self) -> u16 {
        be16(self.b(), field::IDENT)
    }

    /// Echo sequence number (bytes 6-7).
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.b(), field::SEQ)
    }

    /// Bytes 4-7 as one number (e.g. the next-hop MTU of "fragmentation needed", or the
    /// pointer of "parameter problem" in the top byte).
    pub fn rest_of_header(&self) -> u32 {
        be32(self.b(), field::REST)
    }

    /// Bytes after the 8-byte header: echo data, or for errors the quoted IP header and at
    /// least 8 bytes of its payload.
    pub fn data(&self) -> &[u8] {
        let b = self.b();
        clamp(b, HEADER_LEN, b.len())
    }

    /// True for error messages (types 3, 4, 5, 11, 12), which quote the offending packet and
    /// must never be answered with another error.
    pub fn is_error(&self) -> bool {
        is_error_type(self.msg_type())
    }

    /// True for an echo request.
    pub fn is_echo(&self) -> bool {
        self.msg_type() == Message::ECHO_REQUEST
    }

    /// True for an echo reply.
    pub fn is_echo_reply(&self) -> bool {
        self.msg_type() == Message::ECHO_REPLY
    }

    /// True when the checksum over the whole message is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.b()) == 0
    }
}

/// True for the ICMPv4 error types (3, 4, 5, 11, 12).
pub fn is_error_type(t: u8) -> bool {
    matches!(
        t,
        Message::DEST_UNREACHABLE
            | Message::SOURCE_QUENCH
            | Message::REDIRECT
            | Message::TIME_EXCEEDED
            | Message::PARAM_PROBLEM
    )
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the message type.
    pub fn set_msg_type(&mut self, v: u8) {
        self.bm()[field::TYPE] = v;
    }
    /// Sets the code.
    pub fn set_code(&mut self, v: u8) {
        self.bm()[field::CODE] = v;
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.bm(), field::CHECKSUM, v);
    }
    /// Sets the echo identifier (what ICMP NAT rewrites instead of a port).
    pub fn set_echo_ident(&mut self, v: u16) {
        put16(self.bm(), field::IDENT, v);
    }
    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, v: u16) {
        put16(self.bm(), field::SEQ, v);
    }
    /// Sets bytes 4-7.
    pub fn set_rest_of_header(&mut self, v: u32) {
        put32(self.bm(), field::REST, v);
    }
    /// Mutable bytes after the header.
    pub fn data_mut(&mut self) -> &mut [u8] {
        clamp_mut(self.bm(), HEADER_LEN, usize::MAX)
    }
    /// Recomputes the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::data(self.b());
        self.set_checksum(c);
    }
}

/// Writes an echo message (`msg_type` [`Message::ECHO_REQUEST`] or [`Message::ECHO_REPLY`])
/// with checksum into `buf`; returns its length. `Truncated` if `buf` is too small.
pub fn emit_echo(
    buf: &mut [u8],
    msg_type: u8,
    ident: u16,
    seq_no: u16,
    data: &[u8],
) -> Result<usize, WireError> {
    let len = HEADER_LEN + data.len();
    let msg = buf.get_mut(..len).ok_or(WireError::Truncated)?;
    let mut p = IcmpPacket::new_unchecked(msg);
    p.set_msg_type(msg_type);
    p.set_code(0);
    p.set_echo_ident(ident);
    p.set_echo_seq_no(seq_no);
    p.data_mut().copy_from_slice(data);
    p.fill_checksum();
    Ok(len)
}

/// Writes the echo reply to `request` into `buf` (same identifier, sequence number and data,
/// RFC 792); returns its length. `Malformed` if `request` is not an echo request,
/// `Truncated` if `buf` is too small.
pub fn emit_echo_reply<T: AsRef<[u8]>>(
    request: &IcmpPacket<T>,
    buf: &mut [u8],
) -> Result<usize, WireError> {
    if !request.is_echo() {
        return Err(WireError::Malformed("not an echo request"));
    }
    emit_echo(
        buf,
        Message::ECHO_REPLY,
        request.echo_ident(),
        request.echo_seq_no(),
        request.data(),
    )
}

/// Writes an error message (`msg_type` e.g. [`Message::DEST_UNREACHABLE`], `rest` for bytes
/// 4-7) quoting as much of `quoted` (the offending IP packet from its header on) as fits in
/// `buf`; returns the message length. Size `buf` to the quote limit you want: RFC 792 needs the
/// IP header plus 8 bytes, RFC 1812 §4.3.2.3 allows up to 576 bytes for the whole IP packet.
/// `Truncated` if `buf` cannot hold the 8-byte header.
pub fn emit_error(
    buf: &mut [u8],
    msg_type: u8,
    code: u8,
    rest: u32,
    quoted: &[u8],
) -> Result<usize, WireError> {
    if buf.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    let q = quoted.len().min(buf.len() - HEADER_LEN);
    let len = HEADER_LEN + q;
    let mut p = IcmpPacket::new_unchecked(&mut buf[..len]);
    p.set_msg_type(msg_type);
    p.set_code(code);
    p.set_rest_of_header(rest);
    p.data_mut().copy_from_slice(&quoted[..q]);
    p.fill_checksum();
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    // `ping -c1 -p 61` style echo request: id 0x1c46, seq 1, 8 data bytes, valid checksum
    // (computed by hand: 0x0800 + 0x1c46 + 0x0001 + 4 * 0x6161 = 0x1a9cb, folded 0xa9cc, complement 0x5633).
    const ECHO: [u8; 16] = [
        0x08, 0x00, 0x56, 0x33, 0x1c, 0x46, 0x00, 0x01, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61,
        0x61,
    ];

    #[test]
    fn parse_echo() {
        let p = IcmpPacket::new_checked(&ECHO[..]).unwrap();
        assert_eq!((p.msg_type(), p.code()), (Message::ECHO_REQUEST, 0));
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x1c46, 1));
        assert_eq!(p.rest_of_header(), 0x1c46_0001);
        assert_eq!(p.checksum(), 0x5633);
        assert!(p.verify_checksum());
        assert!(p.is_echo() && !p.is_echo_reply() && !p.is_error());
        assert_eq!(p.data(), b"aaaaaaaa");
    }

    #[test]
    fn every_prefix_is_rejected() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                IcmpPacket::new_checked(&ECHO[..n]),
                Err(WireError::Truncated)
            );
        }
        // A cut inside the data is still a valid header, with a checksum that fails.
        let p = IcmpPacket::new_checked(&ECHO[..12]).unwrap();
        assert!(!p.verify_checksum());
    }

    #[test]
    fn echo_reply_builder() {
        let req = IcmpPacket::new_checked(&ECHO[..]).unwrap();
        let mut buf = [0u8; 64];
        let n = emit_echo_reply(&req, &mut buf).unwrap();
        let rep = IcmpPacket::new_checked(&buf[..n]).unwrap();
        assert!(rep.is_echo_reply());
        assert_eq!((rep.echo_ident(), rep.echo_seq_no()), (0x1c46, 1));
        assert_eq!(rep.data(), req.data());
        assert!(rep.verify_checksum());
        // Type 8 -> 0 is the one-word change the RFC 1624 update handles.
        assert_eq!(rep.checksum(), checksum::update16(0x5633, 0x0800, 0x0000));
        let rep_bytes = buf[..n].to_vec();
        let rep = IcmpPacket::new_checked(&rep_bytes[..]).unwrap();
        assert_eq!(
            emit_echo_reply(&req, &mut buf[..15]),
            Err(WireError::Truncated)
        );
        assert_eq!(
            emit_echo_reply(&rep, &mut buf),
            Err(WireError::Malformed("not an echo request"))
        );
    }

    #[test]
    fn error_builder() {
        let quoted = [0x45u8; 40];
        let mut buf = [0u8; 36];
        let n = emit_error(
            &mut buf,
            Message::DEST_UNREACHABLE,
            unreachable::FRAG_NEEDED,
            1400,
            &quoted,
        )
        .unwrap();
        assert_eq!(n, 36);
        let p = IcmpPacket::new_checked(&buf[..n]).unwrap();
        assert!(p.is_error() && p.verify_checksum());
        assert_eq!((p.code(), p.rest_of_header()), (4, 1400));
        assert_eq!(p.data(), &quoted[..28]);
        assert_eq!(
            emit_error(&mut buf[..7], 3, 0, 0, &quoted),
            Err(WireError::Truncated)
        );
        for t in [3, 4, 5, 11, 12] {
            assert!(is_error_type(t));
        }
        for t in [0, 8, 9, 10, 13, 14] {
            assert!(!is_error_type(t));
        }
    }

    #[test]
    fn setters() {
        let mut v = ECHO.to_vec();
        let mut p = IcmpPacket::new_checked(&mut v[..]).unwrap();
        let c = checksum::update16(p.checksum(), p.echo_ident(), 0x4242);
        p.set_echo_ident(0x4242);
        p.set_checksum(c);
        assert!(p.verify_checksum());
        p.set_echo_seq_no(9);
        p.set_msg_type(Message::TIME_EXCEEDED);
        p.set_code(1);
        p.data_mut()[0] = 0;
        p.fill_checksum();
        assert!(p.verify_checksum() && p.is_error());
        assert_eq!((p.echo_ident(), p.echo_seq_no(), p.code()), (0x4242, 9, 1));
        p.set_rest_of_header(0xdead_beef);
        assert_eq!(p.rest_of_header(), 0xdead_beef);
    }
}
