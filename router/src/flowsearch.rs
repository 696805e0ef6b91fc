//! Per-connection streaming search: a pattern set searched across all the
//! packets of one direction of a connection, for application helpers.
//!
//! The search state lives in the connection's `search` extension
//! ([`conntrack::conn::Extensions::search`]), allocated the first time a
//! connection is fed, so connections nobody searches stay small. Each
//! direction keeps its own [`search::StreamState`] (fixed size; no bytes are
//! copied between packets beyond what the algorithm carries) and, for TCP,
//! the next expected sequence number so that:
//! - a retransmission is not searched twice (only its new tail is fed);
//! - after a gap (a lost or reordered segment) the search restarts at the
//!   new position, with offsets still those of the stream, and the gap is
//!   counted: no match may span a hole the router never saw.
//!
//! Offsets in reported matches are bytes from the first payload byte fed in
//! that direction.
//!
//! ```
//! use conntrack::conn::Conn;
//! use conntrack::tuple::{Dir, Tuple};
//! use conntrack::Instant;
//! use router::flowsearch::{feed, FeedOutcome};
//! use search::{Algorithm, Pattern, SearchOptions, Searcher};
//! use std::sync::Arc;
//!
//! let t = Tuple {
//!     src: "192.0.2.1".parse().unwrap(),
//!     dst: "198.51.100.1".parse().unwrap(),
//!     src_id: 40000,
//!     dst_id: 21,
//!     proto: 6,
//!     zone: 0,
//! };
//! let mut conn = Conn::new(t, t.invert(), (), Instant::ZERO);
//! let s = Arc::new(
//!     Searcher::new(Algorithm::Auto, &[Pattern::literal("PORT ")], SearchOptions::default())
//!         .unwrap(),
//! );
//! let mut found = Vec::new();
//! // "PORT " arrives split over two segments.
//! feed(&mut conn, &s, Dir::Original, Some(1000), &[b"USER x\r\nPO"], |m| found.push(m));
//! let r = feed(&mut conn, &s, Dir::Original, Some(1010), &[b"RT 1,2"], |m| found.push(m));
//! assert_eq!(r, FeedOutcome::InOrder);
//! assert_eq!((found[0].start, found[0].end), (8, 13));
//! ```

use conntrack::conn::Conn;
use conntrack::tuple::Dir;
use search::{Control, Match, Searcher, StreamState};
use std::sync::Arc;

/// What happened to the bytes of one `feed` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedOutcome {
    /// Searched: they continued the stream (or started it).
    InOrder,
    /// Partly seen before (a retransmission overlapping the stream's end):
    /// only the new tail was searched.
    Overlap,
    /// Entirely seen before: nothing searched.
    Duplicate,
    /// A hole before these bytes: the search restarted after it.
    Gap,
}

/// One direction's progress.
#[derive(Debug)]
struct DirState {
    state: StreamState,
    /// Next expected TCP sequence number; `None` until the first segment,
    /// and always for datagram protocols.
    next_seq: Option<u32>,
}

/// The extension value: which searcher, and each direction's state.
#[derive(Debug)]
pub struct FlowSearch {
    searcher: Arc<Searcher>,
    dirs: [DirState; 2],
    gaps: u64,
}

impl FlowSearch {
    fn new(searcher: &Arc<Searcher>) -> FlowSearch {
        let d = || DirState {
            state: searcher.new_state(),
            next_seq: None,
        };
        FlowSearch {
            searcher: Arc::clone(searcher),
            dirs: [d(), d()],
            gaps: 0,
        }
    }

    /// Holes skipped so far (both directions).
    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    /// Bytes of the stream consumed so far in `dir`.
    pub fn offset(&self, dir: Dir) -> u64 {
        self.dirs[dir.index()].state.offset()
    }
}

/// The connection's flow search state, if it was ever fed.
pub fn state<S>(conn: &Conn<S>) -> Option<&FlowSearch> {
    conn.ext
        .as_ref()?
        .search
        .as_ref()?
        .downcast_ref::<FlowSearch>()
}

/// Feeds the payload `chunks` of one packet of `conn` in direction `dir` to
/// `searcher`, calling `on_match` for every match (absolute stream offsets).
/// `seq` is the TCP sequence number of the first payload byte (`None` for
/// datagrams, which are searched as one stream in arrival order).
///
/// A connection searched with another searcher before starts afresh.
pub fn feed<S>(
    conn: &mut Conn<S>,
    searcher: &Arc<Searcher>,
    dir: Dir,
    seq: Option<u32>,
    chunks: &[&[u8]],
    mut on_match: impl FnMut(Match),
) -> FeedOutcome {
    let ext = conn.ext_mut();
    let fresh = !ext
        .search
        .as_ref()
        .and_then(|b| b.downcast_ref::<FlowSearch>())
        .is_some_and(|f| Arc::ptr_eq(&f.searcher, searcher));
    if fresh {
        ext.search = Some(Box::new(FlowSearch::new(searcher)));
    }
    let Some(fs) = ext
        .search
        .as_mut()
        .and_then(|b| b.downcast_mut::<FlowSearch>())
    else {
        // Unreachable: installed just above. Search nothing rather than panic.
        return FeedOutcome::Duplicate;
    };
    let len: usize = chunks.iter().map(|c| c.len()).sum();
    let d = &mut fs.dirs[dir.index()];
    // How many leading bytes were already seen, or the outcome if none is new.
    let (skip, outcome) = match (seq, d.next_seq) {
        (Some(seq), Some(next)) => {
            // Serial-number arithmetic (RFC 1982): the signed distance.
            let delta = seq.wrapping_sub(next) as i32;
            if delta == 0 {
                (0, FeedOutcome::InOrder)
            } else if delta < 0 {
                let old = delta.unsigned_abs() as usize;
                if old >= len {
                    return FeedOutcome::Duplicate;
                }
                (old, FeedOutcome::Overlap)
            } else {
                let at = d.state.offset() + u64::from(delta.unsigned_abs());
                fs.searcher.reset_at(&mut d.state, at);
                fs.gaps += 1;
                (0, FeedOutcome::Gap)
            }
        }
        _ => (0, FeedOutcome::InOrder),
    };
    if let Some(seq) = seq {
        let end = seq.wrapping_add(len as u32);
        // Never move backwards (an old segment ending before `next`).
        d.next_seq = Some(match d.next_seq {
            Some(next) if (end.wrapping_sub(next) as i32) < 0 => next,
            _ => end,
        });
    }
    // Drop the `skip` bytes already seen: whole chunks, then the head of one.
    let mut rest = chunks;
    let mut skip = skip;
    while let Some((c, tail)) = rest.split_first() {
        if skip < c.len() {
            break;
        }
        skip -= c.len();
        rest = tail;
    }
    let mut sink = |m| {
        on_match(m);
        Control::Continue
    };
    if let (true, Some((c, tail))) = (skip > 0, rest.split_first()) {
        fs.searcher.feed(&mut d.state, &c[skip..], &mut sink);
        rest = tail;
    }
    // The rest in one call: the engine keeps its state in registers across the chunks.
    fs.searcher.feed_chain(&mut d.state, rest, &mut sink);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use conntrack::tuple::Tuple;
    use conntrack::Instant;
    use search::{Algorithm, MatchMode, Pattern, SearchOptions};

    fn conn() -> Conn<()> {
        let t = Tuple {
            src: "192.0.2.1".parse().unwrap(),
            dst: "198.51.100.1".parse().unwrap(),
            src_id: 40000,
            dst_id: 21,
            proto: 6,
            zone: 0,
        };
        Conn::new(t, t.invert(), (), Instant::ZERO)
    }

    fn searcher(algo: Algorithm, pats: &[&str]) -> Arc<Searcher> {
        let p: Vec<Pattern> = pats.iter().map(Pattern::literal).collect();
        let opts = SearchOptions {
            mode: MatchMode::All,
            ..SearchOptions::default()
        };
        Arc::new(Searcher::new(algo, &p, opts).unwrap())
    }

    fn run(
        c: &mut Conn<()>,
        s: &Arc<Searcher>,
        dir: Dir,
        seq: Option<u32>,
        chunks: &[&[u8]],
    ) -> (FeedOutcome, Vec<(usize, u64, u64)>) {
        let mut v = Vec::new();
        let r = feed(c, s, dir, seq, chunks, |m| {
            v.push((m.pattern, m.start, m.end))
        });
        (r, v)
    }

    #[test]
    fn match_across_segments_chunks_and_sequence_wrap() {
        for algo in [Algorithm::Auto, Algorithm::AhoCorasick, Algorithm::Regex] {
            let s = searcher(algo, &["227 Entering", "PASV"]);
            let mut c = conn();
            // The sequence space wraps inside the pattern.
            let isn = u32::MAX - 3;
            assert_eq!(
                run(&mut c, &s, Dir::Reply, Some(isn), &[b"22", b"7 En"]).1,
                vec![]
            );
            let (r, m) = run(
                &mut c,
                &s,
                Dir::Reply,
                Some(isn.wrapping_add(6)),
                &[b"tering"],
            );
            assert_eq!(r, FeedOutcome::InOrder);
            assert_eq!(m, vec![(0, 0, 12)], "{algo:?}");
            // The other direction is a separate stream.
            let (_, m) = run(&mut c, &s, Dir::Original, Some(7), &[b"PA"]);
            assert!(m.is_empty());
            let (_, m) = run(&mut c, &s, Dir::Original, Some(9), &[b"SV\r\n"]);
            assert_eq!(m, vec![(1, 0, 4)]);
            let f = state(&c).unwrap();
            assert_eq!((f.offset(Dir::Original), f.offset(Dir::Reply)), (6, 12));
        }
    }

    #[test]
    fn retransmissions_are_not_searched_twice() {
        let s = searcher(Algorithm::Auto, &["abc"]);
        let mut c = conn();
        assert_eq!(
            run(&mut c, &s, Dir::Original, Some(100), &[b"xxab"]).1,
            vec![]
        );
        // Exact resend of the first segment: nothing new.
        let (r, m) = run(&mut c, &s, Dir::Original, Some(100), &[b"xxab"]);
        assert_eq!((r, m), (FeedOutcome::Duplicate, vec![]));
        // Overlapping resend with new bytes: only "c abc" is fed.
        let (r, m) = run(&mut c, &s, Dir::Original, Some(102), &[b"ab", b"c abc"]);
        assert_eq!(r, FeedOutcome::Overlap);
        assert_eq!(m, vec![(0, 2, 5), (0, 6, 9)]);
        assert_eq!(state(&c).unwrap().offset(Dir::Original), 9);
        // The already-seen part ends inside a chunk, and the new bytes span three.
        let mut c = conn();
        run(&mut c, &s, Dir::Original, Some(100), &[b"xxab"]);
        let (r, m) = run(
            &mut c,
            &s,
            Dir::Original,
            Some(102),
            &[b"abc", b" a", b"b", b"c"],
        );
        assert_eq!(r, FeedOutcome::Overlap);
        assert_eq!(m, vec![(0, 2, 5), (0, 6, 9)]);
        assert_eq!(state(&c).unwrap().offset(Dir::Original), 9);
    }

    #[test]
    fn a_gap_restarts_the_search_with_stream_offsets() {
        let s = searcher(Algorithm::Auto, &["abcd"]);
        let mut c = conn();
        run(&mut c, &s, Dir::Original, Some(0), &[b"..ab"]);
        // Bytes 4..8 were lost: "ab" + "cd" must not match across the hole.
        let (r, m) = run(&mut c, &s, Dir::Original, Some(8), &[b"cd abcd"]);
        assert_eq!(r, FeedOutcome::Gap);
        assert_eq!(m, vec![(0, 11, 15)]);
        assert_eq!(state(&c).unwrap().gaps(), 1);
        // The late segment arrives afterwards: old data, ignored.
        let (r, _) = run(&mut c, &s, Dir::Original, Some(4), &[b"cdxx"]);
        assert_eq!(r, FeedOutcome::Duplicate);
    }

    #[test]
    fn datagrams_stream_in_arrival_order_and_a_new_searcher_starts_afresh() {
        let s = searcher(Algorithm::Auto, &["hello"]);
        let mut c = conn();
        run(&mut c, &s, Dir::Original, None, &[b"hel"]);
        let (_, m) = run(&mut c, &s, Dir::Original, None, &[b"lo"]);
        assert_eq!(m, vec![(0, 0, 5)]);
        let other = searcher(Algorithm::Auto, &["lo"]);
        let (_, m) = run(&mut c, &other, Dir::Original, None, &[b"lo"]);
        assert_eq!(m, vec![(0, 0, 2)], "state of the old searcher not reused");
    }

    #[test]
    fn connections_nobody_searches_carry_no_extension() {
        let c = conn();
        assert!(c.ext.is_none());
        assert!(state(&c).is_none());
    }
}
