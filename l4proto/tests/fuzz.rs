//! Random bytes into every module never panic, whatever state they meet.

use conntrack::{ConnCtx, Dir, Family, Instant, L4Packet, L4Proto, ProtoState, Status, Tuple};
use l4proto::{L4Modules, TcpConfig, Timeouts};
use proptest::prelude::*;

const PROTOS: [u8; 9] = [6, 17, 136, 1, 58, 132, 33, 47, 50];

fn run(l4: &L4Modules, proto: u8, v6: bool, verify: bool, pkts: &[(bool, Vec<u8>)]) {
    let (src, dst) = if v6 {
        (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        )
    } else {
        (
            "192.0.2.1".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
        )
    };
    let tuple = Tuple {
        src,
        dst,
        src_id: 1,
        dst_id: 2,
        proto,
        zone: 0,
    };
    let tuples = [tuple, tuple.invert()];
    let mut status = Status::default();
    let mut state = None;
    for (i, (reply, data)) in pkts.iter().enumerate() {
        let dir = if *reply && i > 0 {
            Dir::Reply
        } else {
            Dir::Original
        };
        let (s, d) = if dir == Dir::Original {
            (src, dst)
        } else {
            (dst, src)
        };
        let pkt = L4Packet {
            family: if v6 { Family::V6 } else { Family::V4 },
            src: s,
            dst: d,
            proto,
            data,
            verify_checksum: verify,
        };
        let _ = l4.ids(&pkt);
        let _ = l4.is_error(&pkt);
        let _ = l4.quoted_ids(&pkt);
        let _ = l4.is_untracked(&pkt);
        let now = Instant::from_secs(i as u64);
        if state.is_none() {
            state = l4.new_conn(&pkt, now).ok();
        }
        if let Some(st) = state.as_mut() {
            let mut ctx = ConnCtx {
                dir,
                status: &mut status,
                now,
                tuples: &tuples,
                ack_offset: 0,
            };
            let _ = l4.packet(st, &mut ctx, &pkt);
            let _ = st.state_name();
            let _ = st.can_early_drop();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(
        proto_i in 0usize..PROTOS.len(),
        v6 in any::<bool>(),
        verify in any::<bool>(),
        liberal in any::<bool>(),
        pkts in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..80)), 1..12),
    ) {
        let l4 = L4Modules::new(Timeouts::default(), TcpConfig { be_liberal: liberal, ..TcpConfig::default() });
        run(&l4, PROTOS[proto_i], v6, verify, &pkts);
    }

    /// Valid-looking headers (first bytes fixed to sane types and lengths)
    /// reach deeper into the state machines than uniform noise.
    #[test]
    fn structured_noise_never_panics(
        proto_i in 0usize..7,
        pkts in proptest::collection::vec((any::<bool>(), any::<u8>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 20..64)), 1..16),
    ) {
        let proto = PROTOS[proto_i];
        let shaped: Vec<(bool, Vec<u8>)> = pkts
            .into_iter()
            .map(|(reply, a, b, mut v)| {
                match proto {
                    6 => { v[12] = 0x50; v[13] = a & 0x1f; }
                    132 => { v[12] = a % 16; v[13] = b & 1; v[14] = 0; v[15] = 8; }
                    33 => { v[4] = 5; v[8] = ((a % 10) << 1) | 1; v[5] = 0; }
                    1 | 58 => { v[0] = a; }
                    _ => {}
                }
                (reply, v)
            })
            .collect();
        run(&L4Modules::default(), proto, proto == 58, false, &shaped);
    }
}
