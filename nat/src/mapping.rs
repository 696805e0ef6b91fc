//! Endpoint-independent UDP mappings (RFC 4787), for STUN-style NAT traversal.
//!
//! netfilter's NAT is address-and-port dependent: a connection's external
//! port is chosen per (internal endpoint, remote endpoint), and only the
//! remote the internal host talked to may answer. With
//! `[nat] udp_mapping = "endpoint-independent"` the first SNAT of an internal
//! UDP endpoint records its external endpoint here, and every later
//! connection from that internal endpoint reuses it whatever the destination
//! (REQ-1); no other internal endpoint is given that external endpoint while
//! the mapping lives. With `udp_filtering = "endpoint-independent"` a packet
//! from *any* remote to a mapped external endpoint is let in and sent to the
//! internal endpoint (REQ-8): the engine treats the mapping like an
//! expectation, so the new connection is RELATED and a plain stateful ruleset
//! (`--ctstate ESTABLISHED,RELATED -j ACCEPT`) admits it.
//!
//! A mapping lives as long as traffic of its connections refreshes it
//! (REQ-5: the UDP conntrack timeouts, 30 s unreplied / 120 s stream, are
//! what refresh it; with `udp_refresh = "outbound"` only packets from the
//! internal side do, REQ-6). The table is bounded; when full, new mappings
//! are not recorded and those connections fall back to netfilter behaviour.

use conntrack::Instant;
use std::collections::HashMap;
use std::net::IpAddr;

/// An address and port of one protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// IP protocol number.
    pub proto: u8,
    /// Address.
    pub addr: IpAddr,
    /// Port (or ICMP identifier).
    pub port: u16,
}

/// Whether RFC 4787 behaviour applies to a protocol (UDP and UDP-Lite).
pub fn applies(proto: u8) -> bool {
    matches!(proto, 17 | 136)
}

#[derive(Clone, Copy, Debug)]
struct Mapping {
    external: Endpoint,
    expires: Instant,
}

/// The mappings, indexed both ways.
#[derive(Debug, Default)]
pub struct MappingTable {
    by_internal: HashMap<Endpoint, Mapping>,
    by_external: HashMap<Endpoint, Endpoint>,
    max: usize,
    /// Mappings not recorded because the table was full.
    pub full: u64,
}

impl MappingTable {
    /// An empty table holding at most `max` mappings.
    pub fn new(max: usize) -> MappingTable {
        MappingTable {
            max,
            ..MappingTable::default()
        }
    }

    /// Number of live or not yet collected mappings.
    pub fn len(&self) -> usize {
        self.by_internal.len()
    }

    /// Whether there is no mapping.
    pub fn is_empty(&self) -> bool {
        self.by_internal.is_empty()
    }

    fn remove(&mut self, internal: &Endpoint) {
        if let Some(m) = self.by_internal.remove(internal) {
            self.by_external.remove(&m.external);
        }
    }

    /// The external endpoint of `internal`, if mapped and alive.
    pub fn external(&mut self, internal: &Endpoint, now: Instant) -> Option<Endpoint> {
        let m = *self.by_internal.get(internal)?;
        if m.expires <= now {
            self.remove(internal);
            return None;
        }
        Some(m.external)
    }

    /// The internal endpoint mapped to `external`, if alive.
    pub fn internal(&mut self, external: &Endpoint, now: Instant) -> Option<Endpoint> {
        let internal = *self.by_external.get(external)?;
        self.external(&internal, now)?;
        Some(internal)
    }

    /// Whether `external` belongs to a live mapping of another internal
    /// endpoint (so a new mapping must not take it).
    pub fn taken_by_other(&self, external: &Endpoint, internal: &Endpoint, now: Instant) -> bool {
        self.by_external.get(external).is_some_and(|i| {
            i != internal && self.by_internal.get(i).is_some_and(|m| m.expires > now)
        })
    }

    /// Records (or moves) the mapping of `internal` to `external`, alive until
    /// `expires`. Returns false when the table is full.
    pub fn record(&mut self, internal: Endpoint, external: Endpoint, expires: Instant) -> bool {
        if let Some(old) = self.by_internal.get(&internal).copied() {
            if old.external == external {
                self.refresh(&internal, expires);
                return true;
            }
            self.by_external.remove(&old.external);
        } else if self.by_internal.len() >= self.max {
            self.full += 1;
            return false;
        }
        // An expired mapping of another endpoint may still hold `external`.
        if let Some(prev) = self.by_external.insert(external, internal) {
            if prev != internal {
                self.by_internal.remove(&prev);
            }
        }
        self.by_internal
            .insert(internal, Mapping { external, expires });
        true
    }

    /// Extends the mapping of `internal` to at least `expires`.
    pub fn refresh(&mut self, internal: &Endpoint, expires: Instant) {
        if let Some(m) = self.by_internal.get_mut(internal) {
            if m.expires < expires {
                m.expires = expires;
            }
        }
    }

    /// Drops the mapping holding `external` unless it belongs to `internal` (the caller
    /// checked with `taken_by_other` that such a holder is expired).
    fn release_external(&mut self, external: &Endpoint, internal: &Endpoint) {
        if let Some(holder) = self.by_external.get(external).copied() {
            if holder != *internal {
                self.remove(&holder);
            }
        }
    }

    /// The earliest expiry of a mapping, if any.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_internal.values().map(|m| m.expires).min()
    }

    /// Drops expired mappings (a full pass; called at the GC interval).
    pub fn gc(&mut self, now: Instant) {
        let dead: Vec<Endpoint> = self
            .by_internal
            .iter()
            .filter(|(_, m)| m.expires <= now)
            .map(|(i, _)| *i)
            .collect();
        for i in dead {
            self.remove(&i);
        }
    }
}

/// Stripes of [`SharedMappings`].
const STRIPES: usize = 16;

/// The mappings shared by every shard of a sharded engine, striped by internal endpoint so
/// that the per-packet refresh locks one stripe, not the whole table. Lookups by external
/// endpoint (a new inbound connection, a NAT port candidate) visit every stripe; they happen
/// once per new connection, and only with endpoint-independent mapping.
#[derive(Debug)]
pub struct SharedMappings {
    stripes: Box<[parking_lot::Mutex<MappingTable>]>,
}

impl SharedMappings {
    /// An empty set of stripes holding at most `max` mappings in all.
    pub fn new(max: usize) -> SharedMappings {
        let per = max.div_ceil(STRIPES).max(1);
        SharedMappings {
            stripes: (0..STRIPES)
                .map(|_| parking_lot::Mutex::new(MappingTable::new(per)))
                .collect(),
        }
    }

    fn stripe(&self, internal: &Endpoint) -> parking_lot::MutexGuard<'_, MappingTable> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        // Fixed keys: the stripe only spreads locks; each stripe's map is keyed (SipHash).
        let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(internal);
        self.stripes[(h % STRIPES as u64) as usize].lock()
    }

    /// See [`MappingTable::external`].
    pub fn external(&self, internal: &Endpoint, now: Instant) -> Option<Endpoint> {
        self.stripe(internal).external(internal, now)
    }

    /// See [`MappingTable::internal`].
    pub fn internal(&self, external: &Endpoint, now: Instant) -> Option<Endpoint> {
        self.stripes
            .iter()
            .find_map(|s| s.lock().internal(external, now))
    }

    /// See [`MappingTable::taken_by_other`].
    pub fn taken_by_other(&self, external: &Endpoint, internal: &Endpoint, now: Instant) -> bool {
        self.stripes
            .iter()
            .any(|s| s.lock().taken_by_other(external, internal, now))
    }

    /// See [`MappingTable::record`]. An expired mapping in another stripe that still holds
    /// `external` is dropped first.
    pub fn record(&self, internal: Endpoint, external: Endpoint, expires: Instant) -> bool {
        let home = {
            use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
            let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(internal);
            (h % STRIPES as u64) as usize
        };
        for (i, s) in self.stripes.iter().enumerate() {
            if i != home {
                s.lock().release_external(&external, &internal);
            }
        }
        self.stripes[home]
            .lock()
            .record(internal, external, expires)
    }

    /// See [`MappingTable::refresh`].
    pub fn refresh(&self, internal: &Endpoint, expires: Instant) {
        self.stripe(internal).refresh(internal, expires)
    }

    /// See [`MappingTable::gc`].
    pub fn gc(&self, now: Instant) {
        for s in self.stripes.iter() {
            s.lock().gc(now);
        }
    }

    /// The earliest expiry of a mapping, if any.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.stripes
            .iter()
            .filter_map(|s| s.lock().next_expiry())
            .min()
    }

    /// Number of mappings, live or not yet collected.
    pub fn len(&self) -> usize {
        self.stripes.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether there is no mapping.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(a: &str, port: u16) -> Endpoint {
        Endpoint {
            proto: 17,
            addr: a.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn both_directions_expiry_and_refresh() {
        let mut t = MappingTable::new(10);
        let (i, e) = (ep("192.0.2.10", 5000), ep("198.51.100.1", 5000));
        assert!(t.record(i, e, Instant::from_secs(30)));
        assert_eq!(t.external(&i, Instant::from_secs(10)), Some(e));
        assert_eq!(t.internal(&e, Instant::from_secs(10)), Some(i));
        assert!(t.taken_by_other(&e, &ep("192.0.2.11", 5000), Instant::from_secs(10)));
        assert!(!t.taken_by_other(&e, &i, Instant::from_secs(10)));
        t.refresh(&i, Instant::from_secs(60));
        assert_eq!(t.internal(&e, Instant::from_secs(45)), Some(i));
        assert_eq!(t.internal(&e, Instant::from_secs(60)), None, "expired");
        assert!(t.is_empty());
    }

    #[test]
    fn bounded_and_collected() {
        let mut t = MappingTable::new(2);
        assert!(t.record(
            ep("192.0.2.1", 1),
            ep("198.51.100.1", 1),
            Instant::from_secs(5)
        ));
        assert!(t.record(
            ep("192.0.2.2", 1),
            ep("198.51.100.1", 2),
            Instant::from_secs(50)
        ));
        assert!(!t.record(
            ep("192.0.2.3", 1),
            ep("198.51.100.1", 3),
            Instant::from_secs(50)
        ));
        assert_eq!(t.full, 1);
        t.gc(Instant::from_secs(10));
        assert_eq!(t.len(), 1);
        assert!(t.record(
            ep("192.0.2.3", 1),
            ep("198.51.100.1", 3),
            Instant::from_secs(50)
        ));
    }

    #[test]
    fn shared_stripes_behave_like_one_table() {
        let t = SharedMappings::new(64);
        let e = ep("198.51.100.1", 7000);
        // Endpoints that land in different stripes.
        let (a, b) = (ep("192.0.2.1", 1), ep("192.0.2.77", 9));
        assert!(t.record(a, e, Instant::from_secs(5)));
        assert_eq!(t.internal(&e, Instant::from_secs(1)), Some(a));
        assert!(t.taken_by_other(&e, &b, Instant::from_secs(1)));
        // Once a's mapping expired, b may take the external endpoint; a's is gone.
        assert!(!t.taken_by_other(&e, &b, Instant::from_secs(6)));
        assert!(t.record(b, e, Instant::from_secs(50)));
        assert_eq!(t.internal(&e, Instant::from_secs(6)), Some(b));
        assert_eq!(t.external(&a, Instant::from_secs(1)), None);
        assert_eq!(t.len(), 1);
        t.refresh(&b, Instant::from_secs(90));
        t.gc(Instant::from_secs(60));
        assert_eq!(t.external(&b, Instant::from_secs(60)), Some(e));
        t.gc(Instant::from_secs(91));
        assert!(t.is_empty());
    }

    #[test]
    fn an_expired_holder_of_the_external_endpoint_is_replaced() {
        let mut t = MappingTable::new(10);
        let e = ep("198.51.100.1", 7000);
        t.record(ep("192.0.2.1", 1), e, Instant::from_secs(5));
        assert!(!t.taken_by_other(&e, &ep("192.0.2.2", 1), Instant::from_secs(6)));
        t.record(ep("192.0.2.2", 1), e, Instant::from_secs(50));
        assert_eq!(
            t.internal(&e, Instant::from_secs(6)),
            Some(ep("192.0.2.2", 1))
        );
        assert_eq!(t.len(), 1);
    }
}
