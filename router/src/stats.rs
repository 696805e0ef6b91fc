//! Counters by reason: every dropped packet is counted under its [`DropReason`], every
//! INVALID one under its [`Invalid`] reason (`ct stats`, the simulator's final report).

use crate::engine::DropReason;
use conntrack::{Invalid, Reason};
use core::fmt;
use core::marker::PhantomData;

/// One counter per reason of `R`, in an array indexed by the reason's slot
/// ([`Reason::index`]): counting is one add, and nothing is allocated. `N` is `R::COUNT`
/// (spelled out because array lengths cannot name a generic's constant); use the aliases.
#[derive(Clone, PartialEq, Eq)]
pub struct Counters<R, const N: usize> {
    counts: [u64; N],
    reason: PhantomData<R>,
}

/// Drop counters, by [`DropReason`].
pub type DropCounters = Counters<DropReason, { <DropReason as Reason>::COUNT }>;

/// INVALID counters, by [`Invalid`] reason.
pub type InvalidCounters = Counters<Invalid, { <Invalid as Reason>::COUNT }>;

impl<R: Reason, const N: usize> Default for Counters<R, N> {
    fn default() -> Self {
        const { assert!(N == R::COUNT, "N must be R::COUNT") };
        Counters {
            counts: [0; N],
            reason: PhantomData,
        }
    }
}

impl<R: Reason, const N: usize> Counters<R, N> {
    /// Counts one packet for `reason`.
    #[inline]
    pub fn add(&mut self, reason: R) {
        self.counts[reason.index()] += 1;
    }

    /// Counts `n` packets for `reason`.
    pub fn add_n(&mut self, reason: R, n: u64) {
        self.counts[reason.index()] += n;
    }

    /// The count for `reason`.
    pub fn get(&self, reason: R) -> u64 {
        self.counts[reason.index()]
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Self) {
        for (c, o) in self.counts.iter_mut().zip(other.counts.iter()) {
            *c += o;
        }
    }

    /// The reasons counted at least once with their counts, in the order of their texts (the
    /// order `ct stats` prints them in).
    pub fn iter(&self) -> impl Iterator<Item = (R, u64)> {
        let mut v: Vec<(R, u64)> = (self.counts.iter().enumerate())
            .filter(|(_, n)| **n > 0)
            .filter_map(|(i, n)| Some((R::from_index(i)?, *n)))
            .collect();
        v.sort_unstable_by_key(|(r, _)| r.as_str());
        v.into_iter()
    }
}

impl<R: Reason, const N: usize> fmt::Debug for Counters<R, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(r, n)| (r.as_str(), n)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conntrack::reason::check_reasons;
    use l3proto::defrag::DefragDrop;

    #[test]
    fn every_drop_reason_has_its_own_slot_and_text() {
        check_reasons::<DropReason>().unwrap();
        check_reasons::<DefragDrop>().unwrap();
        check_reasons::<nat::mangle::MangleError>().unwrap();
        check_reasons::<crate::tcpmss::TcpmssError>().unwrap();
    }

    /// The order of a map keyed by text, as the counters were before they were typed: `ct
    /// stats` and the simulator's `stats.txt` print them in it.
    #[test]
    fn counters_list_by_text_and_merge_by_reason() {
        let mut a = DropCounters::default();
        a.add(DropReason::TxQueueFull);
        a.add(DefragDrop::Evicted.into());
        a.add_n(DropReason::PolicyDrop, 3);
        a.add(DropReason::FragUnreadable);
        let mut b = DropCounters::default();
        b.add(DropReason::PolicyDrop);
        b.add(DropReason::Reject);
        a.merge(&b);
        let listed: Vec<(&str, u64)> = a.iter().map(|(r, n)| (r.as_str(), n)).collect();
        assert_eq!(
            listed,
            [
                ("frag: evicted", 1),
                ("frag: unreadable fragment", 1),
                ("policy: drop", 4),
                ("reject", 1),
                ("tx: queue full", 1),
            ]
        );
        assert_eq!(a.get(DropReason::PolicyDrop), 4);
        assert_eq!(a.get(DropReason::NoRoute), 0);
        let mut inv = InvalidCounters::default();
        inv.add(Invalid::UdpBadChecksum);
        inv.add(Invalid::TcpBadChecksum);
        let texts: Vec<&str> = inv.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(texts, ["tcp: bad checksum", "udp: bad checksum"]);
    }
}
