//! SCTP and DCCP tracking.

mod common;
use common::*;
use conntrack::{Invalid, Verdict};

const INIT: u8 = 1;
const INIT_ACK: u8 = 2;
const SACK: u8 = 3;
const HEARTBEAT: u8 = 4;
const HEARTBEAT_ACK: u8 = 5;
const ABORT: u8 = 6;
const SHUTDOWN: u8 = 7;
const SHUTDOWN_ACK: u8 = 8;
const COOKIE_ECHO: u8 = 10;
const COOKIE_ACK: u8 = 11;
const SHUTDOWN_COMPLETE: u8 = 14;
const DATA: u8 = 0;

const TAG_C: u32 = 0x1111_1111;
const TAG_S: u32 = 0x2222_2222;

fn init_value(tag: u32) -> Vec<u8> {
    let mut v = tag.to_be_bytes().to_vec();
    v.extend_from_slice(&[0x00, 0x01, 0xa0, 0x00, 0x00, 0x0a, 0xff, 0xff, 0, 0, 0, 1]);
    v
}

fn data_chunk(tsn: u32) -> (u8, u8, Vec<u8>) {
    let mut v = tsn.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x2e, b'h', b'i']);
    (DATA, 0x03, v)
}

fn sctp_flow() -> Flow {
    let mut f = Flow::new(132);
    f.cport = 5000;
    f.sport = 36412;
    f
}

fn sctp_established() -> Flow {
    let mut f = sctp_flow();
    let init = f.sctp(ORIG, 0, &[(INIT, 0, init_value(TAG_C))]);
    assert_eq!(f.send(ORIG, &init), accept(3));
    assert_eq!(f.name(), "COOKIE_WAIT");
    let mut ack_value = init_value(TAG_S);
    ack_value.extend_from_slice(&[0x00, 0x07, 0x00, 0x08, 0xc0, 0x0c, 0x1e, 0x00]); // state cookie
    let init_ack = f.sctp(REPLY, TAG_C, &[(INIT_ACK, 0, ack_value)]);
    assert_eq!(f.send(REPLY, &init_ack), accept(3));
    assert_eq!(f.name(), "COOKIE_WAIT");
    let echo = f.sctp(
        ORIG,
        TAG_S,
        &[(COOKIE_ECHO, 0, vec![0xc0, 0x0c, 0x1e, 0x00])],
    );
    assert_eq!(f.send(ORIG, &echo), accept(3));
    assert_eq!(f.name(), "COOKIE_ECHOED");
    assert!(!f.assured());
    let cack = f.sctp(REPLY, TAG_C, &[(COOKIE_ACK, 0, vec![])]);
    assert_eq!(f.send(REPLY, &cack), accept(210));
    assert_eq!(f.name(), "ESTABLISHED");
    assert!(f.assured());
    f
}

#[test]
fn sctp_handshake_data_and_shutdown() {
    let mut f = sctp_established();
    assert_eq!(
        f.send(ORIG, &f.sctp(ORIG, TAG_S, &[data_chunk(1)])),
        accept(210)
    );
    let sack = (SACK, 0, vec![0, 0, 0, 1, 0, 1, 0xa0, 0, 0, 0, 0, 0]);
    assert_eq!(
        f.send(REPLY, &f.sctp(REPLY, TAG_C, &[sack, data_chunk(7)])),
        accept(210)
    );
    // Wrong tags on either side.
    let forged = f.sctp(ORIG, 0xdead_beef, &[data_chunk(2)]);
    assert_eq!(
        f.send(ORIG, &forged),
        Verdict::Invalid(Invalid::SctpWrongTag)
    );
    let swapped = f.sctp(REPLY, TAG_S, &[data_chunk(8)]);
    assert_eq!(
        f.send(REPLY, &swapped),
        Verdict::Invalid(Invalid::SctpWrongTag)
    );
    assert_eq!(f.name(), "ESTABLISHED");

    let shutdown = f.sctp(ORIG, TAG_S, &[(SHUTDOWN, 0, vec![0, 0, 0, 7])]);
    assert_eq!(f.send(ORIG, &shutdown), accept(3));
    assert_eq!(f.name(), "SHUTDOWN_SENT");
    let wrong_ack = f.sctp(REPLY, 0x1234, &[(SHUTDOWN_ACK, 0, vec![])]);
    assert!(is_invalid(&f.send(REPLY, &wrong_ack)));
    assert_eq!(
        f.send(REPLY, &f.sctp(REPLY, TAG_C, &[(SHUTDOWN_ACK, 0, vec![])])),
        accept(3)
    );
    assert_eq!(f.name(), "SHUTDOWN_ACK_SENT");
    let complete = f.sctp(ORIG, TAG_S, &[(SHUTDOWN_COMPLETE, 0, vec![])]);
    assert_eq!(f.send(ORIG, &complete), accept(10));
    assert_eq!(f.name(), "CLOSED");
}

#[test]
fn sctp_abort_tag_rules() {
    let mut f = sctp_established();
    // T bit clear: must carry the receiver's own tag (packets towards the
    // client carry TAG_C), so TAG_S is wrong...
    let bad = f.sctp(REPLY, TAG_S, &[(ABORT, 0, vec![])]);
    assert_eq!(f.send(REPLY, &bad), Verdict::Invalid(Invalid::SctpWrongTag));
    // ...but right with the T bit (the sender reflects its own tag).
    let reflected = f.sctp(REPLY, TAG_S, &[(ABORT, 1, vec![])]);
    assert_eq!(f.send(REPLY, &reflected), accept(10));
    assert_eq!(f.name(), "CLOSED");
}

#[test]
fn sctp_new_association_rules() {
    let f = sctp_flow();
    let init = f.sctp(ORIG, 7, &[(INIT, 0, init_value(TAG_C))]);
    assert_eq!(f.refuse(&init), Invalid::SctpInitWithTag);
    assert_eq!(
        f.refuse(&f.sctp(ORIG, TAG_S, &[data_chunk(1)])),
        Invalid::SctpCannotStart
    );
    assert_eq!(
        f.refuse(&f.sctp(ORIG, TAG_S, &[(ABORT, 0, vec![])])),
        Invalid::SctpOutOfTheBlue
    );
    let bundled = f.sctp(ORIG, 0, &[(INIT, 0, init_value(TAG_C)), data_chunk(1)]);
    assert_eq!(f.refuse(&bundled), Invalid::SctpBundled);
    let zero_tag = f.sctp(ORIG, 0, &[(INIT, 0, init_value(0))]);
    let mut g = sctp_flow();
    assert_eq!(
        g.send(ORIG, &zero_tag),
        Verdict::Invalid(Invalid::SctpZeroInitiateTag)
    );
    let empty = f.sctp(ORIG, 0, &[]);
    assert_eq!(f.refuse(&empty), Invalid::SctpNoChunks);
    let mut malformed = f.sctp(ORIG, 0, &[(INIT, 0, init_value(TAG_C))]);
    malformed[14..16].copy_from_slice(&2u16.to_be_bytes()); // chunk length 2
    let mut h = sctp_flow();
    h.verify = false;
    assert_eq!(h.refuse(&malformed), Invalid::SctpMalformedChunk);
    let mut bad_crc = f.sctp(ORIG, 0, &[(INIT, 0, init_value(TAG_C))]);
    bad_crc[20] ^= 1;
    assert_eq!(f.refuse(&bad_crc), Invalid::SctpBadCrc);
    assert_eq!(f.refuse(&bad_crc[..11]), Invalid::SctpTruncated);
}

#[test]
fn sctp_cookie_echo_needs_init_ack_tag() {
    let mut f = sctp_flow();
    f.send(ORIG, &f.sctp(ORIG, 0, &[(INIT, 0, init_value(TAG_C))]));
    f.send(
        REPLY,
        &f.sctp(REPLY, TAG_C, &[(INIT_ACK, 0, init_value(TAG_S))]),
    );
    let echo = f.sctp(ORIG, TAG_C, &[(COOKIE_ECHO, 0, vec![1, 2, 3, 4])]);
    assert_eq!(f.send(ORIG, &echo), Verdict::Invalid(Invalid::SctpWrongTag));
    assert_eq!(f.name(), "COOKIE_WAIT");
    // COOKIE ECHO may carry DATA after it.
    let echo = f.sctp(
        ORIG,
        TAG_S,
        &[(COOKIE_ECHO, 0, vec![1, 2, 3, 4]), data_chunk(1)],
    );
    assert_eq!(f.send(ORIG, &echo), accept(3));
    let late = f.sctp(
        ORIG,
        TAG_S,
        &[data_chunk(2), (COOKIE_ECHO, 0, vec![1, 2, 3, 4])],
    );
    assert_eq!(
        f.send(ORIG, &late),
        Verdict::Invalid(Invalid::SctpCookieNotFirst)
    );
}

#[test]
fn sctp_secondary_path_heartbeat() {
    let mut f = sctp_flow();
    let hb = f.sctp(ORIG, TAG_S, &[(HEARTBEAT, 0, vec![0, 1, 0, 8, 1, 2, 3, 4])]);
    assert_eq!(f.send(ORIG, &hb), accept(30));
    assert_eq!(f.name(), "HEARTBEAT_SENT");
    let hb_ack = f.sctp(
        REPLY,
        TAG_C,
        &[(HEARTBEAT_ACK, 0, vec![0, 1, 0, 8, 1, 2, 3, 4])],
    );
    assert_eq!(f.send(REPLY, &hb_ack), accept(210));
    assert_eq!(f.name(), "ESTABLISHED");
    assert!(f.assured());
    let wrong = f.sctp(
        REPLY,
        0x999,
        &[(HEARTBEAT, 0, vec![0, 1, 0, 8, 1, 2, 3, 4])],
    );
    assert_eq!(
        f.send(REPLY, &wrong),
        Verdict::Invalid(Invalid::SctpWrongTag)
    );
    assert_eq!(
        f.send(ORIG, &f.sctp(ORIG, TAG_S, &[data_chunk(9)])),
        accept(210)
    );
}

// ---- DCCP ----

const REQUEST: u8 = 0;
const RESPONSE: u8 = 1;
const DDATA: u8 = 2;
const DACK: u8 = 3;
const DATAACK: u8 = 4;
const CLOSEREQ: u8 = 5;
const CLOSE: u8 = 6;
const RESET: u8 = 7;
const SYNC: u8 = 8;

fn dccp_open() -> Flow {
    let mut f = Flow::new(33);
    f.sport = 5001;
    assert_eq!(
        f.send(ORIG, &f.dccp(ORIG, REQUEST, 100, None, b"")),
        accept(240)
    );
    assert_eq!(f.name(), "REQUEST");
    assert_eq!(
        f.send(REPLY, &f.dccp(REPLY, RESPONSE, 500, Some(100), b"")),
        accept(480)
    );
    assert_eq!(f.name(), "RESPOND");
    assert_eq!(
        f.send(ORIG, &f.dccp(ORIG, DACK, 101, Some(500), b"")),
        accept(480)
    );
    assert_eq!(f.name(), "PARTOPEN");
    assert!(f.assured(), "the Ack acknowledges the Response");
    // PARTOPEN: the client must use DataAck, not Data (RFC 4340 §8.1.5).
    assert_eq!(
        f.send(ORIG, &f.dccp(ORIG, DDATA, 102, None, b"early")),
        Verdict::Invalid(Invalid::DccpBadTransition)
    );
    assert_eq!(
        f.send(ORIG, &f.dccp(ORIG, DATAACK, 102, Some(500), b"data")),
        accept(480)
    );
    assert_eq!(
        f.send(REPLY, &f.dccp(REPLY, DDATA, 501, None, b"server")),
        accept(43_200)
    );
    assert_eq!(f.name(), "OPEN");
    f
}

#[test]
fn dccp_request_to_close() {
    let mut f = dccp_open();
    assert_eq!(
        f.send(ORIG, &f.dccp(ORIG, DDATA, 103, None, b"more")),
        accept(43_200)
    );
    assert_eq!(
        f.send(ORIG, &f.dccp(ORIG, CLOSE, 104, Some(501), b"")),
        accept(64)
    );
    assert_eq!(f.name(), "CLOSING");
    assert_eq!(
        f.send(REPLY, &f.dccp(REPLY, RESET, 502, Some(104), b"")),
        accept(240)
    );
    assert_eq!(f.name(), "TIMEWAIT");
    // A new Request from the client reincarnates the connection.
    assert_eq!(
        f.send(ORIG, &f.dccp(ORIG, REQUEST, 900, None, b"")),
        accept(240)
    );
    assert_eq!(f.name(), "REQUEST");
}

#[test]
fn dccp_server_close_request() {
    let mut f = dccp_open();
    assert_eq!(
        f.send(REPLY, &f.dccp(REPLY, CLOSEREQ, 502, Some(102), b"")),
        accept(64)
    );
    assert_eq!(f.name(), "CLOSEREQ");
    // A client cannot send CloseReq.
    assert!(is_invalid(
        &f.send(ORIG, &f.dccp(ORIG, CLOSEREQ, 103, Some(502), b""))
    ));
    assert_eq!(
        f.send(ORIG, &f.dccp(ORIG, CLOSE, 103, Some(502), b"")),
        accept(64)
    );
    assert_eq!(f.name(), "CLOSING");
    // Sync is ignored.
    assert!(matches!(
        f.send(REPLY, &f.dccp(REPLY, SYNC, 503, Some(103), b"")),
        Verdict::Accept { .. }
    ));
    assert_eq!(f.name(), "CLOSING");
}

#[test]
fn dccp_refusals_and_checks() {
    let f = Flow::new(33);
    assert_eq!(
        f.refuse(&f.dccp(ORIG, RESPONSE, 1, Some(1), b"")),
        Invalid::DccpOnlyRequestStarts
    );
    let mut bad = f.dccp(ORIG, REQUEST, 1, None, b"payload");
    bad[20] ^= 1;
    assert_eq!(f.refuse(&bad), Invalid::DccpBadChecksum);
    let mut cov = f.dccp(ORIG, REQUEST, 1, None, b"");
    cov[5] = 0x0f; // CsCov 15: 56 more bytes than exist
    assert_eq!(f.refuse(&cov), Invalid::DccpBadCoverage);
    let mut reserved = f.dccp(ORIG, REQUEST, 1, None, b"");
    reserved[8] = 12 << 1 | 1;
    assert_eq!(f.refuse(&reserved), Invalid::DccpReservedType);
    let mut short_seq = f.dccp(ORIG, REQUEST, 1, None, b"");
    short_seq[8] &= !1;
    assert!(f.refuse(&short_seq).as_str().starts_with("dccp:"));
    assert_eq!(
        f.refuse(&f.dccp(ORIG, REQUEST, 1, None, b"")[..11]),
        Invalid::DccpTruncated
    );
}

#[test]
fn dccp_reset_as_only_answer_kills() {
    let mut f = Flow::new(33);
    f.send(ORIG, &f.dccp(ORIG, REQUEST, 100, None, b""));
    assert_eq!(
        f.send(REPLY, &f.dccp(REPLY, RESET, 1, Some(100), b"")),
        accept(0)
    );
}

#[test]
fn dccp_ack_of_wrong_response_not_assured() {
    let mut f = Flow::new(33);
    f.send(ORIG, &f.dccp(ORIG, REQUEST, 100, None, b""));
    f.send(REPLY, &f.dccp(REPLY, RESPONSE, 500, Some(100), b""));
    assert_eq!(
        f.send(ORIG, &f.dccp(ORIG, DACK, 101, Some(499), b"")),
        accept(480)
    );
    assert_eq!(f.name(), "PARTOPEN");
    assert!(!f.assured());
}
