//! [`Invalid`]: why a packet is INVALID for conntrack.

crate::reasons! {
    /// Why a packet is INVALID for conntrack: one variant per reason, grouped by the module
    /// that finds it, each with the text `ct stats` counts it under (`invalid
    /// reason="..."`). An INVALID packet is not dropped by conntrack: the ruleset decides
    /// (`--ctstate INVALID`), as in Linux.
    pub enum Invalid {
        // ---- The tracker itself (the engine's conntrack step, after nf_conntrack_in).
        /// The L4 header is not within the packet the L3 parse validated.
        L4OutsidePacket => "ip: malformed",
        /// A connection reopened (TCP SYN in TIME_WAIT) was found again right after its removal.
        ReopenLoop => "conntrack: reopen loop",
        /// The first packet of a connection asked to reopen it.
        ReopenOfNew => "conntrack: reopen of a new connection",
        /// An ICMP error quotes a packet of no known connection.
        IcmpErrorForUnknown => "icmp: error for unknown connection",
        /// An ICMP error's quote is too short for the quoted packet's ports or identifier
        /// (`L4Proto::quoted_ids`).
        QuotedL4Truncated => "quoted L4 header truncated",

        // ---- ICMP and ICMPv6 errors and their quoted packet (`l3proto/src/icmp_error.rs`).
        /// The error arrived in a fragment.
        IcmpErrorInFragment => "icmp: error in a fragment",
        /// The error's ICMP header is cut short.
        IcmpTruncatedHeader => "icmp: truncated header",
        /// The ICMP checksum is wrong (errors and ICMPv4 queries alike).
        IcmpBadChecksum => "icmp: bad checksum",
        /// The quoted packet was not sent by the error's destination.
        IcmpQuotedSourceMismatch => "icmp: quoted source is not the error's destination",
        /// An error about an error (RFC 1122 §3.2.2 forbids sending one).
        IcmpErrorAboutError => "icmp: error about an error",
        /// The error quotes nothing.
        IcmpEmptyQuote => "icmp: empty quote",
        /// An ICMPv4 error quotes something else than IPv4.
        IcmpQuotedNotIpv4 => "icmp: quoted packet is not IPv4",
        /// The quoted IP header is cut short.
        IcmpQuotedTruncated => "icmp: quoted header truncated",
        /// The quoted packet is a fragment other than the first: it has no L4 header.
        IcmpQuotedLaterFragment => "icmp: quoted packet is a later fragment",
        /// An ICMPv6 error quotes something else than IPv6.
        IcmpQuotedNotIpv6 => "icmp: quoted packet is not IPv6",
        /// The quoted IPv6 extension headers do not parse.
        IcmpQuotedHeadersMalformed => "icmp: quoted headers malformed",

        // ---- ICMP and ICMPv6 queries (`l4proto/src/icmp.rs`).
        /// An ICMPv4 message shorter than its header.
        IcmpTruncated => "icmp: truncated",
        /// An ICMPv6 message shorter than its header.
        Icmpv6Truncated => "icmpv6: truncated",
        /// The ICMPv6 checksum is wrong.
        Icmpv6BadChecksum => "icmpv6: bad checksum",
        /// An ICMPv4 reply (echo, timestamp, ...) without a request.
        IcmpReplyWithoutRequest => "icmp: reply without request",
        /// An ICMPv6 reply without a request.
        Icmpv6ReplyWithoutRequest => "icmpv6: reply without request",
        /// An ICMPv4 error message cannot start a connection.
        IcmpErrorCannotStart => "icmp: error message cannot start a connection",
        /// An ICMPv6 error message cannot start a connection.
        Icmpv6ErrorCannotStart => "icmpv6: error message cannot start a connection",
        /// An ICMPv4 type conntrack does not track.
        IcmpTypeNotTracked => "icmp: message type is not tracked",
        /// An ICMPv6 type conntrack does not track.
        Icmpv6TypeNotTracked => "icmpv6: message type is not tracked",
        /// A reply travelling in the original direction.
        IcmpReplyInOriginal => "icmp: reply in the original direction",
        /// A request travelling in the reply direction.
        IcmpRequestInReply => "icmp: request in the reply direction",
        /// A message of another type than the connection's request and reply.
        IcmpTypeMismatch => "icmp: message type does not match the connection",

        // ---- TCP (`l4proto/src/tcp.rs`).
        /// The data offset is below 5 words or beyond the segment.
        TcpBadHeaderLen => "tcp: bad header length",
        /// Shorter than the fixed header.
        TcpTruncatedHeader => "tcp: truncated header",
        /// A flag combination no TCP sends (SYN+FIN, SYN+RST, ...).
        TcpBadFlags => "tcp: invalid flag combination",
        /// The TCP checksum is wrong.
        TcpBadChecksum => "tcp: bad checksum",
        /// An ACK would start a connection mid-stream, and `tcp_loose` is off.
        TcpMidStreamPickup => "tcp: mid-stream pickup disabled (tcp_loose)",
        /// A SYN-ACK cannot start a connection.
        TcpSynAckCannotStart => "tcp: SYN-ACK cannot start a connection",
        /// A FIN cannot start a connection.
        TcpFinCannotStart => "tcp: FIN cannot start a connection",
        /// A RST cannot start a connection.
        TcpRstCannotStart => "tcp: RST cannot start a connection",
        /// A segment without SYN, FIN, RST or ACK.
        TcpNoFlags => "tcp: segment without flags",
        /// A SYN the state machine does not expect.
        TcpUnexpectedSyn => "tcp: unexpected SYN",
        /// A SYN-ACK the state machine does not expect.
        TcpUnexpectedSynAck => "tcp: unexpected SYN-ACK",
        /// A FIN the state machine does not expect.
        TcpUnexpectedFin => "tcp: unexpected FIN",
        /// An ACK the state machine does not expect.
        TcpUnexpectedAck => "tcp: unexpected ACK",
        /// A RST the state machine does not expect.
        TcpUnexpectedRst => "tcp: unexpected RST",
        /// A RST whose sequence number is outside the window.
        TcpRstOutOfWindow => "tcp: RST seq out of window",
        /// Data beyond what the receiver's window allows.
        TcpSeqOverWindow => "tcp: seq out of window (over the receiver's window)",
        /// Data the receiver has already acknowledged.
        TcpSeqAlreadyAcked => "tcp: seq out of window (already acknowledged data)",
        /// An acknowledgement of data the other side has not sent.
        TcpAckNotSent => "tcp: ack out of window (acknowledges data not sent)",
        /// An acknowledgement older than the window.
        TcpAckTooOld => "tcp: ack out of window (too old)",

        // ---- UDP and UDP-Lite (`l4proto/src/udp.rs`).
        /// The UDP length field does not match the datagram.
        UdpBadLength => "udp: bad length field",
        /// Shorter than the UDP header.
        UdpTruncated => "udp: truncated",
        /// A zero UDP checksum over IPv6 (RFC 8200 §8.1).
        UdpZeroChecksumV6 => "udp: zero checksum over IPv6",
        /// The UDP checksum is wrong.
        UdpBadChecksum => "udp: bad checksum",
        /// The UDP-Lite checksum coverage is out of range (RFC 3828 §3.1).
        UdpLiteBadCoverage => "udplite: invalid checksum coverage",
        /// Shorter than the UDP-Lite header.
        UdpLiteTruncated => "udplite: truncated",
        /// A zero UDP-Lite checksum (RFC 3828 §3.1: it is mandatory).
        UdpLiteNoChecksum => "udplite: checksum missing",
        /// The UDP-Lite checksum is wrong.
        UdpLiteBadChecksum => "udplite: bad checksum",

        // ---- SCTP (`l4proto/src/sctp.rs`).
        /// Shorter than the common header.
        SctpTruncated => "sctp: truncated common header",
        /// A chunk whose length runs past the packet or is below its header.
        SctpMalformedChunk => "sctp: malformed chunk",
        /// INIT, INIT ACK or SHUTDOWN COMPLETE bundled with other chunks (RFC 9260 §6.10).
        SctpBundled => "sctp: INIT, INIT ACK or SHUTDOWN COMPLETE bundled",
        /// COOKIE ECHO or COOKIE ACK not the first chunk.
        SctpCookieNotFirst => "sctp: COOKIE ECHO or COOKIE ACK not first",
        /// A packet without chunks.
        SctpNoChunks => "sctp: packet without chunks",
        /// An INIT or INIT ACK with a zero Initiate Tag (RFC 9260 §3.3.2).
        SctpZeroInitiateTag => "sctp: zero Initiate Tag",
        /// An INIT or INIT ACK too short for its Initiate Tag.
        SctpInitTooShort => "sctp: INIT or INIT ACK too short",
        /// The CRC32c checksum is wrong.
        SctpBadCrc => "sctp: bad CRC32c",
        /// An INIT whose verification tag is not zero.
        SctpInitWithTag => "sctp: INIT with non-zero verification tag",
        /// An out-of-the-blue ABORT, SHUTDOWN COMPLETE or COOKIE ACK cannot start an association.
        SctpOutOfTheBlue => "sctp: out-of-the-blue ABORT, SHUTDOWN COMPLETE or COOKIE ACK",
        /// Another chunk than INIT or HEARTBEAT would start an association.
        SctpCannotStart => "sctp: only INIT or HEARTBEAT can start an association",
        /// The verification tag is not the association's.
        SctpWrongTag => "sctp: wrong verification tag",
        /// A chunk the association's state does not allow.
        SctpChunkInState => "sctp: chunk invalid in this state",

        // ---- DCCP (`l4proto/src/dccp.rs`).
        /// A packet type that requires 48-bit sequence numbers sent with 24-bit ones.
        DccpShortSeq => "dccp: 24-bit sequence numbers on this type",
        /// The data offset is below the type's header or beyond the packet.
        DccpBadDataOffset => "dccp: bad data offset",
        /// Shorter than the header.
        DccpTruncated => "dccp: truncated header",
        /// A reserved packet type.
        DccpReservedType => "dccp: reserved packet type",
        /// The checksum coverage is beyond the packet.
        DccpBadCoverage => "dccp: bad checksum coverage",
        /// The DCCP checksum is wrong.
        DccpBadChecksum => "dccp: bad checksum",
        /// Another type than Request would start a connection.
        DccpOnlyRequestStarts => "dccp: only a Request can start a connection",
        /// A packet the connection's state does not allow.
        DccpBadTransition => "dccp: invalid state transition",

        // ---- The L4 dispatcher (`l4proto/src/lib.rs`).
        /// The connection's state belongs to another protocol than the packet.
        L4WrongState => "l4: connection state does not match the protocol",
    }
}

#[cfg(test)]
mod tests {
    use super::Invalid;
    use crate::reason::{check_reasons, Reason};

    #[test]
    fn every_reason_has_its_own_slot_and_text() {
        check_reasons::<Invalid>().unwrap();
        assert_eq!(Invalid::COUNT, Invalid::all().count());
        assert_eq!(
            Invalid::TcpAckNotSent.to_string(),
            "tcp: ack out of window (acknowledges data not sent)"
        );
    }
}
