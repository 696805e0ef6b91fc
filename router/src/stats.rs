//! Drop counters by reason: every dropped packet is counted under a stable
//! name (`ct stats`, the simulator's final report).

use std::collections::BTreeMap;

/// Drop counters, ordered by reason for deterministic output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropCounters(BTreeMap<&'static str, u64>);

impl DropCounters {
    /// Counts one drop for `reason`.
    pub fn add(&mut self, reason: &'static str) {
        *self.0.entry(reason).or_insert(0) += 1;
    }

    /// Counts `n` drops for `reason`.
    pub fn add_n(&mut self, reason: &'static str, n: u64) {
        *self.0.entry(reason).or_insert(0) += n;
    }

    /// The count for `reason`.
    pub fn get(&self, reason: &str) -> u64 {
        self.0.get(reason).copied().unwrap_or(0)
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &DropCounters) {
        for (k, v) in other.iter() {
            *self.0.entry(k).or_insert(0) += v;
        }
    }

    /// All counters, by reason.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.0.iter().map(|(k, v)| (*k, *v))
    }
}
