//! TCP tracking against recorded-style exchanges.

mod common;
use common::*;
use conntrack::{Invalid, Status, Verdict};
use l4proto::tcp::{TcpConntrack, BE_LIBERAL, WINDOW_SCALE};
use l4proto::TcpConfig;

const MSS: [u8; 4] = [2, 4, 5, 0xb4];
const SACK_PERM: [u8; 2] = [4, 2];
const WS7: [u8; 3] = [3, 3, 7];

fn syn_opts() -> Vec<u8> {
    [&MSS[..], &SACK_PERM, &[1], &WS7].concat()
}

fn sack(left: u32, right: u32) -> Vec<u8> {
    let mut o = vec![1, 1, 5, 10];
    o.extend_from_slice(&left.to_be_bytes());
    o.extend_from_slice(&right.to_be_bytes());
    o
}

/// Client ISN 1000, server ISN 5000, both with window scale 7 and SACK.
fn established() -> Flow {
    let mut f = Flow::new(6);
    let o = syn_opts();
    assert_eq!(
        f.send(ORIG, &f.tcp(ORIG, 1000, 0, SYN, 64240, &o, b"")),
        accept(120)
    );
    assert_eq!(f.name(), "SYN_SENT");
    assert_eq!(
        f.send(REPLY, &f.tcp(REPLY, 5000, 1001, SYN | ACK, 65160, &o, b"")),
        accept(60)
    );
    assert_eq!(f.name(), "SYN_RECV");
    assert!(!f.assured());
    assert_eq!(
        f.send(ORIG, &f.tcp(ORIG, 1001, 5001, ACK, 502, &[], b"")),
        accept(432_000)
    );
    assert_eq!(f.name(), "ESTABLISHED");
    assert!(
        f.assured(),
        "the handshake's last ACK assures the connection"
    );
    f
}

#[test]
fn handshake_data_and_close_both_directions() {
    let mut f = established();
    let st = f.tcp_state();
    assert_eq!(st.window(ORIG).scale, 7);
    assert_eq!(st.window(REPLY).scale, 7);
    assert!(st.window(ORIG).flags & WINDOW_SCALE != 0);

    // Data while unacknowledged caps the timeout at tcp_unacknowledged.
    let data = [0x61u8; 100];
    assert_eq!(
        f.send(ORIG, &f.tcp(ORIG, 1001, 5001, PSH | ACK, 502, &[], &data)),
        accept(300)
    );
    let answer = [0x62u8; 200];
    assert_eq!(
        f.send(
            REPLY,
            &f.tcp(REPLY, 5001, 1101, PSH | ACK, 509, &[], &answer)
        ),
        accept(300)
    );
    assert_eq!(
        f.send(ORIG, &f.tcp(ORIG, 1101, 5201, ACK, 502, &[], b"")),
        accept(432_000)
    );
    assert_eq!(f.name(), "ESTABLISHED");

    // Client closes first.
    assert_eq!(
        f.send(ORIG, &f.tcp(ORIG, 1101, 5201, FIN | ACK, 502, &[], b"")),
        accept(120)
    );
    assert_eq!(f.name(), "FIN_WAIT");
    assert_eq!(
        f.send(REPLY, &f.tcp(REPLY, 5201, 1102, ACK, 509, &[], b"")),
        accept(60)
    );
    assert_eq!(f.name(), "CLOSE_WAIT");
    assert_eq!(
        f.send(REPLY, &f.tcp(REPLY, 5201, 1102, FIN | ACK, 509, &[], b"")),
        accept(30)
    );
    assert_eq!(f.name(), "LAST_ACK");
    assert_eq!(
        f.send(ORIG, &f.tcp(ORIG, 1102, 5202, ACK, 502, &[], b"")),
        accept(120)
    );
    assert_eq!(f.name(), "TIME_WAIT");
    // The retransmitted last ACK keeps TIME_WAIT.
    assert_eq!(
        f.send(ORIG, &f.tcp(ORIG, 1102, 5202, ACK, 502, &[], b"")),
        accept(120)
    );
    assert_eq!(f.name(), "TIME_WAIT");
    assert!(f.assured());
}

#[test]
fn server_closes_first() {
    let mut f = established();
    assert_eq!(
        f.send(REPLY, &f.tcp(REPLY, 5001, 1001, FIN | ACK, 509, &[], b"")),
        accept(120)
    );
    assert_eq!(f.name(), "FIN_WAIT");
    assert_eq!(
        f.send(ORIG, &f.tcp(ORIG, 1001, 5002, FIN | ACK, 502, &[], b"")),
        accept(30)
    );
    assert_eq!(f.name(), "LAST_ACK");
    assert_eq!(
        f.send(REPLY, &f.tcp(REPLY, 5002, 1002, ACK, 509, &[], b"")),
        accept(120)
    );
    assert_eq!(f.name(), "TIME_WAIT");
}

#[test]
fn window_scale_needs_both_syns() {
    let mut f = Flow::new(6);
    f.send(ORIG, &f.tcp(ORIG, 1000, 0, SYN, 64240, &syn_opts(), b""));
    f.send(
        REPLY,
        &f.tcp(REPLY, 5000, 1001, SYN | ACK, 65160, &MSS, b""),
    );
    assert_eq!(f.tcp_state().window(ORIG).scale, 0);
    assert_eq!(f.tcp_state().window(REPLY).scale, 0);
    // Without scaling the client's 502 really is 502 bytes: more is out of window.
    assert_eq!(
        f.send(ORIG, &f.tcp(ORIG, 1001, 5001, ACK, 502, &[], b"")),
        accept(432_000)
    );
    // A segment starting 600 bytes in is beyond the unscaled 502-byte window
    // (only its start is checked, as in netfilter).
    let seg = vec![0u8; 100];
    let v = f.send(
        REPLY,
        &f.tcp(REPLY, 5601, 1001, PSH | ACK, 65160, &[], &seg),
    );
    assert_eq!(v, Verdict::Invalid(Invalid::TcpSeqOverWindow));
    // With scaling on both sides the same segment is well inside 502 << 7.
    let mut g = established();
    assert_eq!(
        g.send(REPLY, &g.tcp(REPLY, 5601, 1001, PSH | ACK, 509, &[], &seg)),
        accept(300)
    );
}

#[test]
fn sack_right_edge_is_the_ack() {
    let mut f = established();
    let seg = [0u8; 100];
    f.send(ORIG, &f.tcp(ORIG, 1001, 5001, ACK, 502, &[], &seg));
    f.send(ORIG, &f.tcp(ORIG, 1101, 5001, ACK, 502, &[], &seg));
    // First segment lost; the server SACKs the second: valid.
    let v = f.send(
        REPLY,
        &f.tcp(REPLY, 5001, 1001, ACK, 509, &sack(1101, 1201), b""),
    );
    assert_eq!(v, accept(300));
    // A SACK block beyond anything the client sent is an ack out of window.
    let v = f.send(
        REPLY,
        &f.tcp(REPLY, 5001, 1001, ACK, 509, &sack(1101, 1301), b""),
    );
    assert_eq!(v, Verdict::Invalid(Invalid::TcpAckNotSent));
}

#[test]
fn simultaneous_open() {
    let mut f = Flow::new(6);
    let o = syn_opts();
    assert_eq!(
        f.send(ORIG, &f.tcp(ORIG, 1000, 0, SYN, 64240, &o, b"")),
        accept(120)
    );
    assert_eq!(
        f.send(REPLY, &f.tcp(REPLY, 5000, 0, SYN, 64240, &o, b"")),
        accept(120)
    );
    assert_eq!(f.name(), "SYN_SENT2");
    assert_eq!(
        f.send(ORIG, &f.tcp(ORIG, 1000, 5001, SYN | ACK, 64240, &o, b"")),
        accept(60)
    );
    assert_eq!(f.name(), "SYN_RECV");
    // The peer's own SYN-ACK crosses ours: ignored, state kept.
    assert!(matches!(
        f.send(REPLY, &f.tcp(REPLY, 5000, 1001, SYN | ACK, 64240, &o, b"")),
        Verdict::Accept { .. }
    ));
    assert_eq!(f.name(), "SYN_RECV");
    // An ACK from the reply side completes a simultaneous open.
    assert_eq!(
        f.send(REPLY, &f.tcp(REPLY, 5001, 1001, ACK, 502, &[], b"")),
        accept(432_000)
    );
    assert_eq!(f.name(), "ESTABLISHED");
    assert!(f.assured());
}

#[test]
fn retransmissions_are_accepted_and_counted() {
    let mut f = established();
    let seg = f.tcp(ORIG, 1001, 5001, PSH | ACK, 502, &[], b"hello");
    assert_eq!(f.send(ORIG, &seg), accept(300));
    assert_eq!(f.send(ORIG, &seg), accept(300));
    assert_eq!(f.tcp_state().retransmissions(), 1);
    // Everything acknowledged: the timeout is back to five days...
    assert_eq!(
        f.send(REPLY, &f.tcp(REPLY, 5001, 1006, ACK, 509, &[], b"")),
        accept(432_000)
    );
    assert_eq!(f.tcp_state().retransmissions(), 0);
    // ...until the same segment was seen max_retrans (3) more times.
    let dup = f.tcp(REPLY, 5001, 1006, ACK, 509, &[], b"");
    assert_eq!(f.send(REPLY, &dup), accept(432_000));
    assert_eq!(f.send(REPLY, &dup), accept(432_000));
    assert_eq!(f.send(REPLY, &dup), accept(300));
    assert_eq!(f.tcp_state().retransmissions(), 3);
}

#[test]
fn out_of_window_seq_and_ack_are_invalid() {
    let mut f = established();
    let far = f.tcp(ORIG, 1001 + 50_000_000, 5001, ACK, 502, &[], b"x");
    assert_eq!(
        f.send(ORIG, &far),
        Verdict::Invalid(Invalid::TcpSeqOverWindow)
    );
    let old = f.tcp(
        ORIG,
        1001u32.wrapping_sub(50_000_000),
        5001,
        ACK,
        502,
        &[],
        b"x",
    );
    assert_eq!(
        f.send(ORIG, &old),
        Verdict::Invalid(Invalid::TcpSeqAlreadyAcked)
    );
    let ahead = f.tcp(ORIG, 1001, 5001 + 1_000_000, ACK, 502, &[], b"");
    assert_eq!(
        f.send(ORIG, &ahead),
        Verdict::Invalid(Invalid::TcpAckNotSent)
    );
    let stale = f.tcp(
        ORIG,
        1001,
        5001u32.wrapping_sub(1_000_000),
        ACK,
        502,
        &[],
        b"",
    );
    assert_eq!(
        f.send(ORIG, &stale),
        Verdict::Invalid(Invalid::TcpAckTooOld)
    );
    // None of them moved the connection.
    assert_eq!(f.name(), "ESTABLISHED");
    assert_eq!(
        f.send(ORIG, &f.tcp(ORIG, 1001, 5001, ACK, 502, &[], b"")),
        accept(432_000)
    );
}

#[test]
fn liberal_mode_accepts_out_of_window() {
    let mut f = Flow::tcp_cfg(TcpConfig {
        be_liberal: true,
        ..TcpConfig::default()
    });
    let o = syn_opts();
    f.send(ORIG, &f.tcp(ORIG, 1000, 0, SYN, 64240, &o, b""));
    f.send(REPLY, &f.tcp(REPLY, 5000, 1001, SYN | ACK, 65160, &o, b""));
    f.send(ORIG, &f.tcp(ORIG, 1001, 5001, ACK, 502, &[], b""));
    let far = f.tcp(ORIG, 1001 + 50_000_000, 5001, ACK, 502, &[], b"x");
    assert!(matches!(f.send(ORIG, &far), Verdict::Accept { .. }));
    let ahead = f.tcp(ORIG, 1001, 5001 + 1_000_000, ACK, 502, &[], b"");
    assert!(matches!(f.send(ORIG, &ahead), Verdict::Accept { .. }));
    assert_eq!(f.name(), "ESTABLISHED");
    // Flags are still checked.
    assert!(is_invalid(
        &f.send(ORIG, &f.tcp(ORIG, 1001, 5001, SYN | FIN, 502, &[], b""))
    ));
}

#[test]
fn mid_stream_pickup() {
    let mut f = Flow::new(6);
    let data = [7u8; 300];
    // An ACK with data and no history: ESTABLISHED, but short-lived and unassured.
    assert_eq!(
        f.send(
            ORIG,
            &f.tcp(ORIG, 1_000_000, 2_000_000, PSH | ACK, 1000, &[], &data)
        ),
        accept(300)
    );
    assert_eq!(f.name(), "ESTABLISHED");
    assert!(f.tcp_state().window(ORIG).flags & BE_LIBERAL != 0);
    // The answer (its window scale unknown to us, so far beyond the raw window).
    let big = vec![8u8; 20_000];
    assert_eq!(
        f.send(
            REPLY,
            &f.tcp(REPLY, 2_000_000, 1_000_300, PSH | ACK, 100, &[], &big)
        ),
        accept(300)
    );
    assert!(
        !f.assured(),
        "the first answer only shows the other side exists"
    );
    assert_eq!(
        f.send(
            ORIG,
            &f.tcp(ORIG, 1_000_300, 2_020_000, ACK, 1000, &[], b"")
        ),
        accept(432_000)
    );
    assert!(f.assured(), "traffic seen both ways after pickup");
    assert_eq!(f.name(), "ESTABLISHED");
}

#[test]
fn pickup_refused_when_not_loose() {
    let f = Flow::tcp_cfg(TcpConfig {
        loose: false,
        ..TcpConfig::default()
    });
    let e = f.refuse(&f.tcp(ORIG, 1_000_000, 2_000_000, ACK, 1000, &[], b""));
    assert_eq!(e, Invalid::TcpMidStreamPickup);
}

#[test]
fn only_syn_or_ack_start_connections() {
    let f = Flow::new(6);
    assert_eq!(
        f.refuse(&f.tcp(ORIG, 1, 1, SYN | ACK, 100, &[], b"")),
        Invalid::TcpSynAckCannotStart
    );
    assert_eq!(
        f.refuse(&f.tcp(ORIG, 1, 1, RST | ACK, 100, &[], b"")),
        Invalid::TcpRstCannotStart
    );
    assert_eq!(
        f.refuse(&f.tcp(ORIG, 1, 0, RST, 100, &[], b"")),
        Invalid::TcpRstCannotStart
    );
    assert_eq!(
        f.refuse(&f.tcp(ORIG, 1, 1, FIN | ACK, 100, &[], b"")),
        Invalid::TcpFinCannotStart
    );
}

#[test]
fn rst_in_window_exact_and_out_of_window() {
    // Out of window: refused, connection untouched.
    let mut f = established();
    let v = f.send(REPLY, &f.tcp(REPLY, 5001 + 50_000_000, 0, RST, 0, &[], b""));
    assert!(is_invalid(&v), "{v:?}");
    // Below what the peer already acknowledged: refused.
    let v = f.send(REPLY, &f.tcp(REPLY, 4000, 0, RST, 0, &[], b""));
    assert_eq!(v, Verdict::Invalid(Invalid::TcpRstOutOfWindow));
    assert_eq!(f.name(), "ESTABLISHED");
    // In window but not the exact next sequence number: RFC 5961 challenge,
    // the state stays.
    assert_eq!(
        f.send(REPLY, &f.tcp(REPLY, 5101, 0, RST, 0, &[], b"")),
        accept(10)
    );
    assert_eq!(f.name(), "ESTABLISHED");
    // Exactly the sequence number the client acknowledged: closes.
    assert_eq!(
        f.send(REPLY, &f.tcp(REPLY, 5001, 0, RST, 0, &[], b"")),
        accept(10)
    );
    assert_eq!(f.name(), "CLOSE");
}

#[test]
fn rst_answering_syn_must_ack_it() {
    let mut f = Flow::new(6);
    f.send(ORIG, &f.tcp(ORIG, 1000, 0, SYN, 64240, &syn_opts(), b""));
    let wrong = f.tcp(REPLY, 0, 777_777, RST | ACK, 0, &[], b"");
    assert_eq!(
        f.send(REPLY, &wrong),
        Verdict::Invalid(Invalid::TcpAckNotSent)
    );
    assert_eq!(f.name(), "SYN_SENT");
    // Connection refused: the reset acknowledges the SYN, and since it is the
    // only answer the entry goes at once (timeout zero).
    let refused = f.tcp(REPLY, 0, 1001, RST | ACK, 0, &[], b"");
    assert_eq!(f.send(REPLY, &refused), accept(0));
    assert_eq!(f.name(), "CLOSE");
}

#[test]
fn syn_in_time_wait_reopens() {
    let mut f = established();
    f.send(ORIG, &f.tcp(ORIG, 1001, 5001, FIN | ACK, 502, &[], b""));
    f.send(REPLY, &f.tcp(REPLY, 5001, 1002, FIN | ACK, 509, &[], b""));
    f.send(ORIG, &f.tcp(ORIG, 1002, 5002, ACK, 502, &[], b""));
    assert_eq!(f.name(), "TIME_WAIT");
    let syn = f.tcp(ORIG, 90_000, 0, SYN, 64240, &syn_opts(), b"");
    assert_eq!(f.send(ORIG, &syn), Verdict::Reopen);
    // The core destroys the entry and tracks the SYN as a new connection.
    assert_eq!(f.send(ORIG, &syn), accept(120));
    assert_eq!(f.name(), "SYN_SENT");
    assert!(!f.status.contains(Status::ASSURED));
}

#[test]
fn syn_in_close_after_own_rst_reopens() {
    let mut f = established();
    assert_eq!(
        f.send(ORIG, &f.tcp(ORIG, 1001, 0, RST, 0, &[], b"")),
        accept(10)
    );
    assert_eq!(f.name(), "CLOSE");
    assert_eq!(
        f.send(ORIG, &f.tcp(ORIG, 7000, 0, SYN, 64240, &[], b"")),
        Verdict::Reopen
    );
}

#[test]
fn ignored_syn_resyncs_on_matching_syn_ack() {
    let mut f = established();
    // A new SYN on an established tuple: the endpoints may know better.
    let v = f.send(ORIG, &f.tcp(ORIG, 90_000, 0, SYN, 64240, &syn_opts(), b""));
    assert!(matches!(v, Verdict::Accept { .. }));
    assert_eq!(f.name(), "ESTABLISHED");
    // The server answers it: adopt the new connection.
    assert_eq!(
        f.send(
            REPLY,
            &f.tcp(REPLY, 300_000, 90_001, SYN | ACK, 65160, &syn_opts(), b"")
        ),
        accept(60)
    );
    assert_eq!(f.name(), "SYN_RECV");
    assert_eq!(
        f.send(ORIG, &f.tcp(ORIG, 90_001, 300_001, ACK, 502, &[], b"")),
        accept(432_000)
    );
    assert_eq!(f.name(), "ESTABLISHED");
    assert_eq!(f.tcp_state().window(ORIG).scale, 7);
}

#[test]
fn invalid_flag_combinations() {
    let f = Flow::new(6);
    for flags in [
        SYN | FIN,
        SYN | RST,
        0,
        FIN,
        FIN | SYN | RST | PSH | ACK | URG,
        SYN | ACK | URG,
        PSH,
    ] {
        let e = f.refuse(&f.tcp(ORIG, 1, 0, flags, 100, &[], b""));
        assert_eq!(e, Invalid::TcpBadFlags, "flags {flags:#x}");
    }
    // ECN bits do not matter.
    let mut g = Flow::new(6);
    assert_eq!(
        g.send(ORIG, &g.tcp(ORIG, 1, 0, SYN | 0x40 | 0x80, 100, &[], b"")),
        accept(120)
    );
}

#[test]
fn bad_checksum_and_header_length() {
    let mut f = Flow::new(6);
    let mut syn = f.tcp(ORIG, 1000, 0, SYN, 64240, &syn_opts(), b"");
    syn[5] ^= 1;
    assert_eq!(f.refuse(&syn), Invalid::TcpBadChecksum);
    f.verify = false; // locally generated: not checked
    assert_eq!(f.send(ORIG, &syn), accept(120));

    let mut short = f.tcp(ORIG, 1000, 0, SYN, 64240, &[], b"");
    short[12] = 0x40; // data offset 4 words
    assert_eq!(f.refuse(&short), Invalid::TcpBadHeaderLen);
    assert_eq!(f.refuse(&short[..19]), Invalid::TcpTruncatedHeader);
    let mut long = f.tcp(ORIG, 1000, 0, SYN, 64240, &[], b"");
    long[12] = 0xf0; // 60 bytes of header in 20
    assert_eq!(f.refuse(&long), Invalid::TcpTruncatedHeader);
}

#[test]
fn ipv6_handshake() {
    let mut f = Flow::new(6).v6();
    let o = syn_opts();
    assert_eq!(
        f.send(ORIG, &f.tcp(ORIG, 1000, 0, SYN, 64240, &o, b"")),
        accept(120)
    );
    assert_eq!(
        f.send(REPLY, &f.tcp(REPLY, 5000, 1001, SYN | ACK, 65160, &o, b"")),
        accept(60)
    );
    assert_eq!(
        f.send(ORIG, &f.tcp(ORIG, 1001, 5001, ACK, 502, &[], b"")),
        accept(432_000)
    );
    assert!(f.assured());
    let mut bad = f.tcp(ORIG, 1001, 5001, ACK, 502, &[], b"");
    bad[19] ^= 0x10;
    assert!(is_invalid(&f.send(ORIG, &bad)));
}

#[test]
fn challenge_ack_to_syn_in_last_ack_is_not_the_last_ack() {
    let mut f = established();
    f.send(ORIG, &f.tcp(ORIG, 1001, 5001, FIN | ACK, 502, &[], b""));
    f.send(REPLY, &f.tcp(REPLY, 5001, 1002, FIN | ACK, 509, &[], b""));
    assert_eq!(f.name(), "LAST_ACK");
    // The client reconnects too early; the server answers with a challenge ACK.
    assert!(matches!(
        f.send(ORIG, &f.tcp(ORIG, 90_000, 0, SYN, 64240, &[], b"")),
        Verdict::Accept { .. }
    ));
    assert!(matches!(
        f.send(REPLY, &f.tcp(REPLY, 5002, 1002, ACK, 509, &[], b"")),
        Verdict::Accept { .. }
    ));
    assert_eq!(f.name(), "LAST_ACK");
}

#[test]
fn state_enum_names() {
    assert_eq!(TcpConntrack::SynSent2.name(), "SYN_SENT2");
    assert_eq!(TcpConntrack::TimeWait.name(), "TIME_WAIT");
}
