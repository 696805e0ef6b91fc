//! The expectation table: connections a helper predicts (after `nf_conntrack_expect`).
//!
//! A helper that reads "PORT 192,0,2,2,200,10" on an FTP control connection expects a data
//! connection to 192.0.2.2 port 51210 from the server, from any source port. Such an
//! expectation is a tuple with a mask (the parts that must match); its destination address,
//! port, protocol and zone are always exact, so the table is hashed by them as Linux hashes
//! by destination, and a new connection's lookup is one probe plus a mask compare per
//! expectation on that destination.
//!
//! The table is bounded in total, per master (the helper's `max_expected`: a new one replaces
//! the master's oldest) and per helper. Expiry is a bounded sweep like the connection
//! table's: no timer per expectation.
//!
//! ```
//! use conntrack::expect::{ExpectLimits, ExpectTable, Expectation};
//! use conntrack::tuple::{Dir, Tuple, TupleMask};
//! use conntrack::{ConnId, Instant};
//! use std::time::Duration;
//!
//! let data = Tuple {
//!     src: "198.51.100.7".parse().unwrap(),
//!     dst: "192.0.2.2".parse().unwrap(),
//!     src_id: 0,
//!     dst_id: 51210,
//!     proto: 6,
//!     zone: 0,
//! };
//! let any_sport = TupleMask { src_id: 0, ..TupleMask::EXACT };
//! let now = Instant::from_secs(1);
//! let master = ConnId::from_raw(0, 0);
//! let mut t = ExpectTable::new(16);
//! let exp = Expectation::new(master, data, any_sport, now + Duration::from_secs(300), "ftp", Dir::Reply);
//! t.insert(exp, (1, data.invert()), ExpectLimits::default(), now).unwrap();
//! // The server's data connection, from whatever port it picked, is expected.
//! let incoming = Tuple { src_id: 20, ..data };
//! assert_eq!(t.take(&incoming, now).unwrap().helper, "ftp");
//! assert!(t.is_empty());
//! ```

use crate::conn::ConnId;
use crate::tuple::{Dir, Tuple, TupleMask};
use std::collections::HashMap;
use std::net::IpAddr;
use wire::Instant;

/// Where a connection created from an expectation is translated to, when its master is
/// NATed (`nf_nat_follow_master`): the helper's NAT part chose it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectNat {
    /// New source address of the expected connection.
    pub src: IpAddr,
    /// New destination address and port of the expected connection.
    pub dst: IpAddr,
    /// New destination port.
    pub dst_port: u16,
}

/// An expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// The connection whose helper created it.
    pub master: ConnId,
    /// The expected original tuple (as it arrives at the router).
    pub tuple: Tuple,
    /// Which parts of `tuple` must match. The destination is always exact.
    pub mask: TupleMask,
    /// When it expires unused.
    pub expires: Instant,
    /// The helper's name.
    pub helper: &'static str,
    /// The master's direction the expected connection's first packet travels like
    /// (Linux `exp->dir`).
    pub dir: Dir,
    /// Keep it after a connection used it (H.323 media may open several).
    pub permanent: bool,
    /// The translation of the expected connection, if the master is NATed.
    pub nat: Option<ExpectNat>,
    /// Helper to attach to the expected connection (H.245 under Q.931).
    pub child_helper: Option<&'static str>,
    /// Set by the table.
    id: u32,
    /// The master's event id and original tuple, for listings.
    master_id: u32,
    master_tuple: Option<Tuple>,
}

impl Expectation {
    /// A new expectation of `helper`'s, for master connection `master`.
    pub fn new(
        master: ConnId,
        tuple: Tuple,
        mask: TupleMask,
        expires: Instant,
        helper: &'static str,
        dir: Dir,
    ) -> Self {
        Expectation {
            master,
            tuple,
            mask,
            expires,
            helper,
            dir,
            permanent: false,
            nat: None,
            child_helper: None,
            id: 0,
            master_id: 0,
            master_tuple: None,
        }
    }

    /// Its id (as `conntrack -L expect` lists it), assigned at insertion.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The master's event id (`conntrack -L` lists it as `id=`), set at insertion.
    pub fn master_id(&self) -> u32 {
        self.master_id
    }

    /// The master's original tuple, set at insertion.
    pub fn master_tuple(&self) -> Option<&Tuple> {
        self.master_tuple.as_ref()
    }

    /// Whether a new connection with original tuple `t` is the one expected.
    pub fn matches(&self, t: &Tuple) -> bool {
        self.mask.matches(&self.tuple, t)
    }

    /// Whether two expectations could match one tuple (Linux's `expect_clash`): on the
    /// parts both masks care about, the tuples agree.
    fn clashes(&self, other: &Expectation) -> bool {
        let both = TupleMask {
            src_prefix: self.mask.src_prefix.min(other.mask.src_prefix),
            src_id: self.mask.src_id & other.mask.src_id,
            dst_id: self.mask.dst_id & other.mask.dst_id,
        };
        both.matches(&self.tuple, &other.tuple)
    }
}

/// Bounds applied when inserting (the default: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpectLimits {
    /// Most live expectations one master may have of its helper; a new one replaces the
    /// oldest (Linux's `max_expected`). 0: no limit.
    pub per_master: usize,
    /// Most live expectations of one helper in the whole table; beyond it a new one is
    /// refused. 0: no limit.
    pub per_helper: usize,
}

crate::reasons! {
    /// Why an expectation was refused (the text is the detail of the helper's
    /// `expect-failed` event).
    pub enum ExpectError {
        /// The table is full.
        GlobalLimit => "expectation table full",
        /// The helper has its maximum of live expectations.
        HelperLimit => "helper's expectation limit reached",
        /// The master connection is gone.
        NoMaster => "master connection gone",
        /// An expectation of another master could match the same connections.
        Clash => "clashes with another master's expectation",
    }
}

/// What an insertion did besides adding the new expectation.
#[derive(Debug, Default)]
pub struct Inserted {
    /// Its id.
    pub id: u32,
    /// An expectation of the same master with the same tuple, replaced by the new one.
    pub refreshed: Option<Expectation>,
    /// The master's oldest expectation, removed to respect `per_master`.
    pub evicted: Option<Expectation>,
}

/// The exact part of an expected tuple: what the table is hashed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct DstKey {
    dst: IpAddr,
    port: u16,
    proto: u8,
    zone: u16,
}

impl DstKey {
    fn of(t: &Tuple) -> DstKey {
        DstKey {
            dst: t.dst,
            port: t.dst_id,
            proto: t.proto,
            zone: t.zone,
        }
    }
}

/// The expectations of one connection table (see the module documentation).
#[derive(Debug)]
pub struct ExpectTable {
    slots: Vec<Option<Expectation>>,
    free: Vec<u32>,
    /// Slots by exact destination, in insertion order per key.
    by_dst: HashMap<DstKey, Vec<u32>>,
    /// Slots by master, oldest first.
    by_master: HashMap<ConnId, Vec<u32>>,
    per_helper: HashMap<&'static str, usize>,
    len: usize,
    max: usize,
    cursor: usize,
    next_id: u32,
}

impl ExpectTable {
    /// An empty table holding at most `max` expectations.
    pub fn new(max: usize) -> Self {
        ExpectTable {
            slots: Vec::new(),
            free: Vec::new(),
            by_dst: HashMap::new(),
            by_master: HashMap::new(),
            per_helper: HashMap::new(),
            len: 0,
            max,
            cursor: 0,
            next_id: 1,
        }
    }

    /// Number of live expectations.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none (the engine's fast path skips the lookup then).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many live expectations `helper` has.
    pub fn count_of(&self, helper: &str) -> usize {
        self.per_helper.get(helper).copied().unwrap_or(0)
    }

    /// Adds `exp` for a master whose event id and original tuple are `master`. The master's own expectation
    /// with the same tuple and mask is replaced (a re-announcement); one of another master
    /// that could match the same connections refuses it.
    pub fn insert(
        &mut self,
        mut exp: Expectation,
        master: (u32, Tuple),
        limits: ExpectLimits,
        now: Instant,
    ) -> Result<Inserted, ExpectError> {
        (exp.master_id, exp.master_tuple) = (master.0, Some(master.1));
        let key = DstKey::of(&exp.tuple);
        let mut done = Inserted::default();
        let mut same = None;
        for &s in self.by_dst.get(&key).map(Vec::as_slice).unwrap_or(&[]) {
            let Some(e) = self.slots[s as usize].as_ref() else {
                continue;
            };
            if e.expires <= now {
                continue; // the sweep takes it; it cannot clash any more
            }
            if !e.clashes(&exp) {
                continue;
            }
            if e.master != exp.master {
                return Err(ExpectError::Clash);
            }
            if e.tuple == exp.tuple && e.mask == exp.mask {
                same = Some(s);
            } else {
                return Err(ExpectError::Clash);
            }
        }
        if let Some(s) = same {
            done.refreshed = self.remove_slot(s);
        } else if limits.per_master > 0 {
            let mine: Vec<u32> = self
                .by_master
                .get(&exp.master)
                .map(|v| {
                    v.iter()
                        .copied()
                        .filter(|&s| {
                            self.slots[s as usize].as_ref().map(|e| e.helper) == Some(exp.helper)
                        })
                        .collect()
                })
                .unwrap_or_default();
            if mine.len() >= limits.per_master {
                done.evicted = self.remove_slot(mine[0]);
            }
        }
        if limits.per_helper > 0 && self.count_of(exp.helper) >= limits.per_helper {
            return Err(ExpectError::HelperLimit);
        }
        if self.len >= self.max {
            return Err(ExpectError::GlobalLimit);
        }
        exp.id = done.refreshed.as_ref().map_or_else(
            || {
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1).max(1);
                id
            },
            |old| old.id,
        );
        done.id = exp.id;
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.by_dst.entry(key).or_default().push(slot);
        self.by_master.entry(exp.master).or_default().push(slot);
        *self.per_helper.entry(exp.helper).or_default() += 1;
        self.slots[slot as usize] = Some(exp);
        self.len += 1;
        Ok(done)
    }

    /// Whether `exp` would be refused as a clash with another master's expectation (an
    /// expectation of an unconfirmed master is checked with this, and inserted later).
    pub fn would_clash(&self, exp: &Expectation, now: Instant) -> bool {
        self.by_dst
            .get(&DstKey::of(&exp.tuple))
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter_map(|&s| self.slots[s as usize].as_ref())
            .any(|e| e.expires > now && e.master != exp.master && e.clashes(exp))
    }

    /// The live expectation a new connection with original tuple `t` fulfils, if any (the
    /// oldest of several).
    pub fn find(&self, t: &Tuple, now: Instant) -> Option<&Expectation> {
        let slots = self.by_dst.get(&DstKey::of(t))?;
        slots
            .iter()
            .filter_map(|&s| self.slots[s as usize].as_ref())
            .find(|e| e.expires > now && e.matches(t))
    }

    /// Like [`ExpectTable::find`], and takes the expectation out unless it is permanent
    /// (then a copy is returned).
    pub fn take(&mut self, t: &Tuple, now: Instant) -> Option<Expectation> {
        let slots = self.by_dst.get(&DstKey::of(t))?;
        let s = *slots.iter().find(|&&s| {
            self.slots[s as usize]
                .as_ref()
                .is_some_and(|e| e.expires > now && e.matches(t))
        })?;
        match self.slots[s as usize].as_ref() {
            Some(e) if e.permanent => return Some(e.clone()),
            _ => {}
        }
        self.remove_slot(s)
    }

    /// Removes every expectation of `master` (it ended), returning them.
    pub fn remove_master(&mut self, master: ConnId) -> Vec<Expectation> {
        let Some(slots) = self.by_master.get(&master).cloned() else {
            return Vec::new();
        };
        slots
            .into_iter()
            .filter_map(|s| self.remove_slot(s))
            .collect()
    }

    /// Removes the expectation with id `id` (`conntrack -D expect`).
    pub fn remove_id(&mut self, id: u32) -> Option<Expectation> {
        let s = self
            .slots
            .iter()
            .position(|e| e.as_ref().is_some_and(|e| e.id == id))?;
        self.remove_slot(s as u32)
    }

    /// Removes them all, returning them in slot order.
    pub fn flush(&mut self) -> Vec<Expectation> {
        (0..self.slots.len() as u32)
            .filter_map(|s| self.remove_slot(s))
            .collect()
    }

    /// Bounded expiry sweep: looks at up to `budget` slots from where the last sweep stopped
    /// and returns the expectations that expired.
    pub fn sweep(&mut self, now: Instant, budget: usize) -> Vec<Expectation> {
        let n = self.slots.len();
        let mut gone = Vec::new();
        if self.len == 0 {
            return gone;
        }
        for _ in 0..budget.min(n) {
            if self.cursor >= n {
                self.cursor = 0;
            }
            let s = self.cursor;
            self.cursor += 1;
            if self.slots[s].as_ref().is_some_and(|e| e.expires <= now) {
                gone.extend(self.remove_slot(s as u32));
            }
        }
        gone
    }

    /// The earliest expiry, if any expectation lives (reads every slot).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.iter().map(|e| e.expires).min()
    }

    /// The live expectations, in slot order (deterministic for a given history).
    pub fn iter(&self) -> impl Iterator<Item = &Expectation> + '_ {
        self.slots.iter().filter_map(Option::as_ref)
    }

    /// Bytes held, for the memory figures.
    pub fn memory_usage(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<Option<Expectation>>()
            + self.free.capacity() * 4
            + self.by_dst.capacity() * (core::mem::size_of::<(DstKey, Vec<u32>)>() + 4)
            + self.by_master.capacity() * (core::mem::size_of::<(ConnId, Vec<u32>)>() + 4)
    }

    fn remove_slot(&mut self, s: u32) -> Option<Expectation> {
        let e = self.slots.get_mut(s as usize)?.take()?;
        let key = DstKey::of(&e.tuple);
        if let Some(v) = self.by_dst.get_mut(&key) {
            v.retain(|&x| x != s);
            if v.is_empty() {
                self.by_dst.remove(&key);
            }
        }
        if let Some(v) = self.by_master.get_mut(&e.master) {
            v.retain(|&x| x != s);
            if v.is_empty() {
                self.by_master.remove(&e.master);
            }
        }
        if let Some(c) = self.per_helper.get_mut(e.helper) {
            *c -= 1;
        }
        self.free.push(s);
        self.len -= 1;
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(dport: u16, sport: u16) -> Tuple {
        Tuple {
            src: "198.51.100.7".parse().unwrap(),
            dst: "192.0.2.2".parse().unwrap(),
            src_id: sport,
            dst_id: dport,
            proto: 6,
            zone: 0,
        }
    }

    const ANY_SPORT: TupleMask = TupleMask {
        src_prefix: 128,
        src_id: 0,
        dst_id: 0xffff,
    };

    fn exp(master: u32, dport: u16, until: u64) -> Expectation {
        Expectation::new(
            ConnId::from_raw(master, 0),
            t(dport, 0),
            ANY_SPORT,
            Instant::from_secs(until),
            "ftp",
            Dir::Reply,
        )
    }

    fn master(n: u32) -> (u32, Tuple) {
        (n, t(21, 40000u16.wrapping_add(n as u16)))
    }

    #[test]
    fn limits_clash_refresh_and_master_death() {
        let now = Instant::from_secs(1);
        let mut tab = ExpectTable::new(3);
        let per = ExpectLimits {
            per_master: 2,
            per_helper: 0,
        };
        let a = tab.insert(exp(1, 1000, 10), master(1), per, now).unwrap();
        // Re-announced by its master: replaced, same id.
        let again = tab.insert(exp(1, 1000, 20), master(1), per, now).unwrap();
        assert_eq!(again.id, a.id);
        assert!(again.refreshed.is_some());
        assert_eq!(tab.len(), 1);
        // The same destination from another master clashes.
        assert_eq!(
            tab.insert(exp(2, 1000, 20), master(2), per, now)
                .unwrap_err(),
            ExpectError::Clash
        );
        // A third of master 1 evicts its oldest.
        tab.insert(exp(1, 1001, 20), master(1), per, now).unwrap();
        let third = tab.insert(exp(1, 1002, 20), master(1), per, now).unwrap();
        assert_eq!(third.evicted.unwrap().tuple.dst_id, 1000);
        assert_eq!(tab.len(), 2);
        tab.insert(exp(2, 2000, 20), master(2), per, now).unwrap();
        // Full.
        assert_eq!(
            tab.insert(exp(3, 3000, 20), master(3), per, now)
                .unwrap_err(),
            ExpectError::GlobalLimit
        );
        let gone = tab.remove_master(ConnId::from_raw(1, 0));
        assert_eq!(gone.len(), 2);
        assert_eq!(tab.len(), 1);
        assert!(tab.find(&t(1001, 5), now).is_none());
        assert!(tab.find(&t(2000, 5), now).is_some());
    }

    #[test]
    fn per_helper_limit() {
        let now = Instant::from_secs(1);
        let mut tab = ExpectTable::new(100);
        let lim = ExpectLimits {
            per_master: 0,
            per_helper: 2,
        };
        tab.insert(exp(1, 1, 9), master(1), lim, now).unwrap();
        tab.insert(exp(2, 2, 9), master(2), lim, now).unwrap();
        assert_eq!(
            tab.insert(exp(3, 3, 9), master(3), lim, now).unwrap_err(),
            ExpectError::HelperLimit
        );
        assert_eq!(tab.count_of("ftp"), 2);
    }

    #[test]
    fn expiry_is_swept_in_bounded_steps_and_never_matches() {
        let mut tab = ExpectTable::new(1000);
        let now = Instant::from_secs(1);
        for p in 0..100 {
            tab.insert(
                exp(p, 1000 + p as u16, 5),
                master(p),
                ExpectLimits::default(),
                now,
            )
            .unwrap();
        }
        let later = now + Duration::from_secs(10);
        // Expired ones never match, even before the sweep reached them.
        assert!(tab.find(&t(1000, 1), later).is_none());
        assert!(tab.take(&t(1000, 1), later).is_none());
        assert_eq!(tab.sweep(later, 30).len(), 30);
        assert_eq!(tab.len(), 70);
        let mut n = 30;
        while !tab.is_empty() {
            n += tab.sweep(later, 30).len();
        }
        assert_eq!(n, 100);
        assert_eq!(tab.next_expiry(), None);
    }

    #[test]
    fn permanent_stays_and_ids_list() {
        let now = Instant::from_secs(1);
        let mut tab = ExpectTable::new(10);
        let mut e = exp(1, 5004, 60);
        e.permanent = true;
        let id = tab
            .insert(e, master(1), ExpectLimits::default(), now)
            .unwrap()
            .id;
        assert!(tab.take(&t(5004, 1), now).is_some());
        assert!(tab.take(&t(5004, 2), now).is_some());
        assert_eq!(
            tab.iter().next().unwrap().master_tuple(),
            Some(&master(1).1)
        );
        assert_eq!(tab.remove_id(id).unwrap().id(), id);
        assert!(tab.is_empty());
        assert!(tab.flush().is_empty());
    }

    #[test]
    fn many_live_expectations_are_found_by_hash() {
        // 100,000 live expectations: each lookup is one probe (the test would take
        // minutes with a linear scan per lookup).
        let now = Instant::from_secs(1);
        let mut tab = ExpectTable::new(200_000);
        for i in 0..100_000u32 {
            let mut e = exp(i, (i % 60_000) as u16 + 1024, 60);
            e.tuple.dst = std::net::Ipv4Addr::from(0xc000_0200 + (i / 60_000)).into();
            tab.insert(e, master(i), ExpectLimits::default(), now)
                .unwrap();
        }
        for i in (0..100_000u32).step_by(7) {
            let mut want = t((i % 60_000) as u16 + 1024, 999);
            want.dst = std::net::Ipv4Addr::from(0xc000_0200 + (i / 60_000)).into();
            assert_eq!(tab.find(&want, now).unwrap().master, ConnId::from_raw(i, 0));
        }
    }
}
