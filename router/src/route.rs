//! Static routing by longest prefix match, IPv4 and IPv6, sized for full Internet tables.
//!
//! Each family is a poptrie (Asai and Ohara, "Poptrie: A Compressed Trie with Population Count
//! for Fast and Scalable Software IP Routing Table Lookup", SIGCOMM 2015), written here from
//! the paper:
//!
//! - A direct-indexed array on the top `S` bits of the address (18 for IPv4, 20 for IPv6; see
//!   BENCHMARKS.md, "routes"). An entry holds the longest route of at most `S` bits covering
//!   its block, and the root node of the routes longer than `S` in that block, if any.
//! - Nodes of 64 slots, one per value of the next 6 address bits. A node is two 64-bit maps
//!   and two base indexes: `vector` marks the slots that continue into a child node, `leafvec`
//!   marks where a run of equal leaves starts among the other slots. Children and leaf runs
//!   are stored contiguously, so the population count of a map below a slot is that slot's
//!   offset in its array. A lookup reads the direct entry, then one node and one child or leaf
//!   index per 6 bits beyond `S`; a leaf of 0 means "no longer route here", and the direct
//!   entry's route applies.
//!
//! Routes are also kept in ordered maps by (network, length): they are the reference for
//! updates. Adding or removing a route of at most `S` bits rewrites the direct entries it
//! covers; a longer one rebuilds the one node (with its subtree) whose shape or leaves it
//! changes, from the routes inside that node's block. Freed node and leaf blocks go to
//! free lists by size and are reused, so a long-running gateway that keeps changing routes
//! does not grow. A table is built in one pass from a sorted list when it is loaded.
//!
//! The `/0` route is kept outside the trie: changing the default route costs nothing.

use crate::config::Config;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Index of an interface in the configuration.
pub type IfaceId = usize;

/// One route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix.
    pub prefix: IpNet,
    /// Egress interface.
    pub iface: IfaceId,
    /// Next hop; `None` means on-link (the destination itself).
    pub via: Option<IpAddr>,
}

/// Where a packet goes: what a lookup returns. A full table has a million routes but few
/// distinct next hops, so the trie's leaves hold next-hop numbers and the hops themselves sit
/// in a small array that stays in cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NextHop {
    /// Egress interface.
    pub iface: IfaceId,
    /// Next hop; `None` means on-link (the destination itself).
    pub via: Option<IpAddr>,
}

impl Route {
    /// Where this route sends packets.
    pub fn next_hop(&self) -> NextHop {
        NextHop {
            iface: self.iface,
            via: self.via,
        }
    }
}

/// A route as written in a route file or given to `tunfilter route add`:
/// `PREFIX [via ADDR] dev IFACE`, the keywords in any order (as `ip route` takes them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteSpec<'a> {
    /// Destination prefix (no host bits set).
    pub prefix: IpNet,
    /// Interface name, and the index of its word.
    pub dev: (&'a str, usize),
    /// Next hop, if any.
    pub via: Option<IpAddr>,
}

impl<'a> RouteSpec<'a> {
    /// Parses the words of a route. An error names the index of the word at fault.
    pub fn parse(words: &[&'a str]) -> Result<RouteSpec<'a>, (usize, String)> {
        let Some(&p) = words.first() else {
            return Err((0, "expected a route: PREFIX [via ADDR] dev IFACE".into()));
        };
        let prefix = parse_prefix(p).map_err(|e| (0, e))?;
        let mut dev = None;
        let mut via = None;
        let mut k = 1;
        while k < words.len() {
            let w = words[k];
            let Some(&v) = words.get(k + 1) else {
                return Err((k, format!("{w:?}: expected `dev IFACE` or `via ADDR`")));
            };
            match w {
                "dev" if dev.is_none() => dev = Some((v, k + 1)),
                "via" if via.is_none() => {
                    let a = v.parse::<IpAddr>().map_err(|_| {
                        (k + 1, format!("expected a next-hop address, found {v:?}"))
                    })?;
                    if a.is_ipv4() != prefix.addr().is_ipv4() {
                        return Err((
                            k + 1,
                            "next hop and prefix are of different address families".into(),
                        ));
                    }
                    via = Some(a);
                }
                _ => {
                    return Err((
                        k,
                        format!("found {w:?}: expected `dev IFACE` or `via ADDR`, once each"),
                    ))
                }
            }
            k += 2;
        }
        let Some(dev) = dev else {
            return Err((0, "expected `dev IFACE` after the prefix".into()));
        };
        Ok(RouteSpec { prefix, dev, via })
    }
}

/// Parses a destination prefix; like `ip route`, one with host bits set is refused (a typo
/// there would silently route a different network).
pub fn parse_prefix(p: &str) -> Result<IpNet, String> {
    let n = p.parse::<IpNet>().map_err(|_| {
        format!("expected a prefix like \"198.51.100.0/24\" or \"2001:db8::/32\", found {p:?}")
    })?;
    if n.trunc() != n {
        return Err(format!(
            "{p} has host bits set: expected the network address, {}",
            n.trunc()
        ));
    }
    Ok(n)
}

impl Route {
    /// The route as a line of a route file (and of `tunfilter route list`), given the name of
    /// its interface: `PREFIX [via ADDR] dev IFACE`.
    pub fn to_line(&self, iface_name: &str) -> String {
        match self.via {
            Some(v) => format!("{} via {v} dev {iface_name}", self.prefix),
            None => format!("{} dev {iface_name}", self.prefix),
        }
    }
}

/// Bits of an address handled by one node.
const STRIDE: u32 = 6;

/// An address as an integer, most significant bit first.
trait Key: Copy + Ord + Default + std::fmt::Debug {
    /// The top `s` bits (0 < s < BITS) as an index.
    fn top(self, s: u32) -> usize;
    /// The 6 bits starting `off` bits from the top (off < BITS), zero-padded past the end.
    fn chunk(self, off: u32) -> usize;
    /// The network of the `len`-bit prefix containing `self`.
    fn net(self, len: u32) -> Self;
    /// The last address of the `len`-bit prefix starting at `self`.
    fn last(self, len: u32) -> Self;
}

impl Key for u32 {
    #[inline(always)]
    fn top(self, s: u32) -> usize {
        (self >> (32 - s)) as usize
    }
    #[inline(always)]
    fn chunk(self, off: u32) -> usize {
        ((u64::from(self) << 32 << off) >> (64 - STRIDE)) as usize
    }
    fn net(self, len: u32) -> Self {
        self & !u32::MAX.checked_shr(len).unwrap_or(0)
    }
    fn last(self, len: u32) -> Self {
        self | u32::MAX.checked_shr(len).unwrap_or(0)
    }
}

impl Key for u128 {
    #[inline(always)]
    fn top(self, s: u32) -> usize {
        (self >> (128 - s)) as usize
    }
    #[inline(always)]
    fn chunk(self, off: u32) -> usize {
        ((self << off) >> (128 - STRIDE)) as usize
    }
    fn net(self, len: u32) -> Self {
        self & !u128::MAX.checked_shr(len).unwrap_or(0)
    }
    fn last(self, len: u32) -> Self {
        self | u128::MAX.checked_shr(len).unwrap_or(0)
    }
}

/// A trie node (see the module documentation).
#[derive(Clone, Copy, Debug, Default)]
struct Node {
    /// Slots that continue into a child node.
    vector: u64,
    /// Slots (among the others) where a new run of leaves starts.
    leafvec: u64,
    /// First leaf of this node in `Fib::leaves`.
    base0: u32,
    /// First child of this node in `Fib::nodes`.
    base1: u32,
}

/// The mask of slots `0..=v`.
#[inline(always)]
fn upto(v: usize) -> u64 {
    u64::MAX >> (63 - v)
}

/// One entry of a sorted route list: network, length, leaf.
type Item<K> = (K, u8, u32);

/// The routes of one family. `S` is the number of bits indexed by the direct array.
///
/// A leaf is a next-hop number + 1, 0 being "none".
#[derive(Clone, Debug)]
struct Fib<K: Key, const S: u32> {
    /// Next hops by number, with how many routes use each.
    hops: Vec<(NextHop, u32)>,
    hop_index: HashMap<NextHop, u32>,
    free_hops: Vec<u32>,
    /// The `/0` route and its leaf.
    zero: Option<(Route, u32)>,
    /// Routes of 1 to `S` bits and their leaves, by (network, length).
    short: BTreeMap<(K, u8), (Route, u32)>,
    /// Routes longer than `S` bits, by (network, length).
    long: BTreeMap<(K, u8), (Route, u32)>,
    /// `2^S` entries once any route longer than `/0` exists: (root node index + 1) << 32 |
    /// leaf of the longest route of at most `S` bits covering the block.
    direct: Vec<u64>,
    nodes: Vec<Node>,
    leaves: Vec<u32>,
    /// Free blocks of nodes and of leaves, by block size (1 to 64).
    free_nodes: Vec<Vec<u32>>,
    free_leaves: Vec<Vec<u32>>,
}

impl<K: Key, const S: u32> Default for Fib<K, S> {
    fn default() -> Self {
        Fib {
            hops: Vec::new(),
            hop_index: HashMap::new(),
            free_hops: Vec::new(),
            zero: None,
            short: BTreeMap::new(),
            long: BTreeMap::new(),
            direct: Vec::new(),
            nodes: Vec::new(),
            leaves: Vec::new(),
            free_nodes: vec![Vec::new(); 65],
            free_leaves: vec![Vec::new(); 65],
        }
    }
}

impl<K: Key, const S: u32> Fib<K, S> {
    /// Builds the table in one pass; of routes with the same prefix the first is kept.
    fn build(mut items: Vec<(K, u8, Route)>) -> Self {
        // Stable: equal prefixes keep their order, and dedup keeps the first of each.
        items.sort_by_key(|&(n, l, _)| (n, l));
        items.dedup_by_key(|&mut (n, l, _)| (n, l));
        let mut f = Fib::<K, S>::default();
        let mut short = Vec::new();
        let mut long = Vec::new();
        let mut short_map = Vec::new();
        let mut long_map = Vec::new();
        for (net, len, r) in items {
            let leaf = f.hop_acquire(r.next_hop());
            match u32::from(len) {
                0 => f.zero = Some((r, leaf)),
                l if l <= S => {
                    short.push((net, len, leaf));
                    short_map.push(((net, len), (r, leaf)));
                }
                _ => {
                    long.push((net, len, leaf));
                    long_map.push(((net, len), (r, leaf)));
                }
            }
        }
        if !short.is_empty() || !long.is_empty() {
            f.direct = vec![0; 1 << S];
        }
        // Shorter routes first, so that longer ones overwrite the blocks they cover.
        let mut by_len = short.clone();
        by_len.sort_by_key(|&(_, l, _)| l);
        for &(net, len, leaf) in &by_len {
            f.paint(net, len, leaf);
        }
        let mut i = 0;
        while i < long.len() {
            let d = long[i].0.top(S);
            let n = long[i..].partition_point(|x| x.0.top(S) == d);
            let node = f.build_node(&long[i..i + n], S, 0);
            let idx = f.alloc_nodes(1);
            f.nodes[idx as usize] = node;
            f.direct[d] |= u64::from(idx + 1) << 32;
            i += n;
        }
        // Already sorted: the maps are built in one pass.
        f.short = short_map.into_iter().collect();
        f.long = long_map.into_iter().collect();
        f
    }

    /// The leaf of a next hop, counting one more route that uses it.
    fn hop_acquire(&mut self, h: NextHop) -> u32 {
        if let Some(&i) = self.hop_index.get(&h) {
            self.hops[i as usize].1 += 1;
            return i + 1;
        }
        let i = match self.free_hops.pop() {
            Some(i) => {
                self.hops[i as usize] = (h, 1);
                i
            }
            None => {
                self.hops.push((h, 1));
                self.hops.len() as u32 - 1
            }
        };
        self.hop_index.insert(h, i);
        i + 1
    }

    /// One route less uses the next hop of `leaf`.
    fn hop_release(&mut self, leaf: u32) {
        let i = leaf as usize - 1;
        if let Some((h, n)) = self.hops.get_mut(i) {
            *n -= 1;
            if *n == 0 {
                self.hop_index.remove(h);
                self.free_hops.push(i as u32);
            }
        }
    }

    fn alloc_nodes(&mut self, n: usize) -> u32 {
        if n == 0 {
            return 0;
        }
        if let Some(i) = self.free_nodes[n].pop() {
            return i;
        }
        let i = self.nodes.len() as u32;
        self.nodes.resize(self.nodes.len() + n, Node::default());
        i
    }

    fn alloc_leaves(&mut self, n: usize) -> u32 {
        if n == 0 {
            return 0;
        }
        if let Some(i) = self.free_leaves[n].pop() {
            return i;
        }
        let i = self.leaves.len() as u32;
        self.leaves.resize(self.leaves.len() + n, 0);
        i
    }

    /// Returns the blocks below `node` (not the node itself) to the free lists.
    fn free_below(&mut self, node: Node) {
        let nl = node.leafvec.count_ones() as usize;
        if nl > 0 {
            self.free_leaves[nl].push(node.base0);
        }
        let nc = node.vector.count_ones() as usize;
        for k in 0..nc {
            let child = self.nodes[node.base1 as usize + k];
            self.free_below(child);
        }
        if nc > 0 {
            self.free_nodes[nc].push(node.base1);
        }
    }

    /// Builds the node at bit offset `off` for `list`: the routes inside its block longer
    /// than `off` bits, sorted by (network, length). `inh` is the leaf of the longest route
    /// of `S + 1` to `off` bits covering the block (0: none).
    fn build_node(&mut self, list: &[Item<K>], off: u32, inh: u32) -> Node {
        let mut vals = [inh; 64];
        let mut vector = 0u64;
        // The routes ending in this node: at most 2 + 4 + ... + 64 distinct prefixes of
        // `off + 1` to `off + 6` bits. On the stack: a full table builds a million nodes.
        let mut ends = [(0u8, 0usize, 0u32); 126];
        let mut n = 0;
        for &(net, len, leaf) in list {
            let c = net.chunk(off);
            if u32::from(len) > off + STRIDE {
                vector |= 1 << c;
            } else if let Some(e) = ends.get_mut(n) {
                *e = (len, c, leaf);
                n += 1;
            }
        }
        let ends = &mut ends[..n];
        ends.sort_unstable_by_key(|e| e.0);
        for &(len, c, leaf) in ends.iter() {
            let span = 1usize << (off + STRIDE - u32::from(len));
            vals[c..c + span].fill(leaf);
        }
        let mut leafvec = 0u64;
        let mut runs = [0u32; 64];
        let mut nruns = 0;
        let mut prev = None;
        for (v, &val) in vals.iter().enumerate() {
            if vector >> v & 1 == 1 {
                continue;
            }
            if prev != Some(val) {
                leafvec |= 1 << v;
                runs[nruns] = val;
                nruns += 1;
                prev = Some(val);
            }
        }
        let base0 = self.alloc_leaves(nruns);
        self.leaves[base0 as usize..base0 as usize + nruns].copy_from_slice(&runs[..nruns]);
        let base1 = self.alloc_nodes(vector.count_ones() as usize);
        // The routes of one slot are contiguous (sorted by network); those ending in this
        // node come first (they start at the slot's first address and are the shortest).
        let mut i = 0;
        let mut k = 0;
        while i < list.len() {
            let c = list[i].0.chunk(off);
            let n = list[i..].partition_point(|x| x.0.chunk(off) == c);
            if vector >> c & 1 == 1 {
                let slot = &list[i..i + n];
                let skip = slot.partition_point(|x| u32::from(x.1) <= off + STRIDE);
                let child = self.build_node(&slot[skip..], off + STRIDE, vals[c]);
                self.nodes[base1 as usize + k] = child;
                k += 1;
            }
            i += n;
        }
        Node {
            vector,
            leafvec,
            base0,
            base1,
        }
    }

    /// Writes `leaf` into the direct entries of a route of 1 to `S` bits.
    fn paint(&mut self, net: K, len: u8, leaf: u32) {
        let lo = net.top(S);
        let n = 1usize << (S - u32::from(len));
        for e in &mut self.direct[lo..lo + n] {
            *e = (*e & !0xffff_ffff) | u64::from(leaf);
        }
    }

    /// The leaf for `a` (0: no route longer than `/0`).
    #[inline(always)]
    fn find(&self, a: K) -> u32 {
        let Some(&e) = self.direct.get(a.top(S)) else {
            return 0;
        };
        let default = e as u32;
        let root = (e >> 32) as usize;
        if root == 0 {
            return default;
        }
        let Some(mut node) = self.nodes.get(root - 1) else {
            return default;
        };
        let mut off = S;
        loop {
            let v = a.chunk(off);
            if node.vector >> v & 1 == 1 {
                let i = node.base1 as usize + (node.vector & upto(v)).count_ones() as usize - 1;
                let Some(n) = self.nodes.get(i) else {
                    return default;
                };
                node = n;
                off += STRIDE;
            } else {
                let i = node.base0 as usize + (node.leafvec & upto(v)).count_ones() as usize;
                let leaf = self.leaves.get(i.wrapping_sub(1)).copied().unwrap_or(0);
                return if leaf == 0 { default } else { leaf };
            }
        }
    }

    #[inline(always)]
    fn lookup(&self, a: K) -> Option<&NextHop> {
        let mut leaf = self.find(a);
        if leaf == 0 {
            leaf = self.zero.as_ref()?.1;
        }
        self.hops.get((leaf as usize).wrapping_sub(1)).map(|h| &h.0)
    }

    /// The route of exactly this prefix.
    fn get(&self, net: K, len: u8) -> Option<&Route> {
        let e = match u32::from(len) {
            0 => self.zero.as_ref(),
            l if l <= S => self.short.get(&(net, len)),
            _ => self.long.get(&(net, len)),
        };
        e.map(|e| &e.0)
    }

    /// Adds a route unless its prefix has one already; returns whether it was added.
    fn insert(&mut self, net: K, len: u8, r: Route) -> bool {
        if self.get(net, len).is_some() {
            return false;
        }
        let leaf = self.hop_acquire(r.next_hop());
        match u32::from(len) {
            0 => self.zero = Some((r, leaf)),
            l if l <= S => {
                self.short.insert((net, len), (r, leaf));
                self.repaint(net, len);
            }
            _ => {
                self.long.insert((net, len), (r, leaf));
                self.update_long(net, len);
            }
        }
        true
    }

    /// Removes the route of exactly this prefix.
    fn remove(&mut self, net: K, len: u8) -> Option<Route> {
        let (r, leaf) = match u32::from(len) {
            0 => self.zero.take()?,
            l if l <= S => {
                let e = self.short.remove(&(net, len))?;
                self.repaint(net, len);
                e
            }
            _ => {
                let e = self.long.remove(&(net, len))?;
                self.update_long(net, len);
                e
            }
        };
        self.hop_release(leaf);
        Some(r)
    }

    fn ensure_direct(&mut self) {
        if self.direct.is_empty() {
            self.direct = vec![0; 1 << S];
        }
    }

    /// Recomputes the direct entries covered by the prefix `net/len` (1 to `S` bits) after
    /// a route of that prefix was added or removed.
    fn repaint(&mut self, net: K, len: u8) {
        self.ensure_direct();
        let base = (1..len)
            .rev()
            .find_map(|l| self.short.get(&(net.net(u32::from(l)), l)).map(|e| e.1))
            .unwrap_or(0);
        self.paint(net, len, base);
        // The prefix itself (if present) and the routes inside it, shortest first.
        let mut inner: Vec<Item<K>> = self
            .short
            .range((net, len)..=(net.last(u32::from(len)), u8::MAX))
            .map(|(&(n, l), e)| (n, l, e.1))
            .collect();
        inner.sort_by_key(|e| e.1);
        for (n, l, v) in inner {
            self.paint(n, l, v);
        }
    }

    /// The routes inside the block `net/off` longer than `off` bits, sorted.
    fn inside(&self, net: K, off: u32) -> impl Iterator<Item = Item<K>> + '_ {
        let (lo, hi) = (net.net(off), net.last(off));
        self.long
            .range((lo, 0)..=(hi, u8::MAX))
            .filter(move |(&(_, l), _)| u32::from(l) > off)
            .map(|(&(n, l), e)| (n, l, e.1))
    }

    /// Whether a node at offset `off` is needed for the block of `net`: some route inside
    /// it is longer than `off` bits. Only the routes starting at the block's first address
    /// can be shorter, so this stops after at most `off - S + 1` steps.
    fn needed(&self, net: K, off: u32) -> bool {
        self.inside(net, off).next().is_some()
    }

    /// Updates the trie after a route longer than `S` bits, `net/len`, was added or removed:
    /// rebuilds the deepest node on its path that is still needed.
    fn update_long(&mut self, net: K, len: u8) {
        self.ensure_direct();
        let len = u32::from(len);
        let d = net.top(S);
        let root = (self.direct[d] >> 32) as usize;
        let mut path: Vec<(usize, u32)> = Vec::new();
        if root != 0 {
            let (mut idx, mut off) = (root - 1, S);
            loop {
                path.push((idx, off));
                if len <= off + STRIDE {
                    break;
                }
                let node = self.nodes[idx];
                let v = net.chunk(off);
                if node.vector >> v & 1 == 0 {
                    break;
                }
                idx = node.base1 as usize + (node.vector & upto(v)).count_ones() as usize - 1;
                off += STRIDE;
            }
        }
        while let Some(&(idx, off)) = path.last() {
            if self.needed(net, off) {
                let inh = (S + 1..=off)
                    .rev()
                    .find_map(|l| self.long.get(&(net.net(l), l as u8)).map(|e| e.1))
                    .unwrap_or(0);
                let list: Vec<Item<K>> = self.inside(net, off).collect();
                let old = self.nodes[idx];
                self.free_below(old);
                let node = self.build_node(&list, off, inh);
                self.nodes[idx] = node;
                return;
            }
            path.pop();
        }
        // No node of this block is needed any more, or none existed yet.
        if root != 0 {
            let old = self.nodes[root - 1];
            self.free_below(old);
            self.free_nodes[1].push(root as u32 - 1);
            self.direct[d] &= 0xffff_ffff;
        }
        if self.needed(net, S) {
            let list: Vec<Item<K>> = self.inside(net, S).collect();
            let node = self.build_node(&list, S, 0);
            let idx = self.alloc_nodes(1);
            self.nodes[idx as usize] = node;
            self.direct[d] |= u64::from(idx + 1) << 32;
        }
    }

    fn len(&self) -> usize {
        usize::from(self.zero.is_some()) + self.short.len() + self.long.len()
    }

    /// Every route, sorted by (network, length).
    fn iter(&self) -> impl Iterator<Item = &Route> + '_ {
        let mut all: Vec<(&(K, u8), &Route)> = self
            .short
            .iter()
            .chain(self.long.iter())
            .map(|(k, e)| (k, &e.0))
            .collect();
        all.sort_unstable_by_key(|e| *e.0);
        let zero = self.zero.as_ref().map(|e| &e.0);
        zero.into_iter().chain(all.into_iter().map(|e| e.1))
    }

    /// Bytes held by the lookup structure (direct array, nodes, leaves).
    fn lookup_bytes(&self) -> usize {
        self.direct.len() * 8
            + self.nodes.len() * std::mem::size_of::<Node>()
            + self.leaves.len() * 4
            + self.hops.len() * std::mem::size_of::<(NextHop, u32)>()
    }
}

/// IPv4: 2^18 direct entries (2 MiB); routes up to /24 resolve in at most one node.
type Fib4 = Fib<u32, 18>;
/// IPv6: 2^20 direct entries (8 MiB, of which only the pages covering routed space are ever
/// written).
type Fib6 = Fib<u128, 20>;

fn v4_key(n: &Ipv4Net) -> (u32, u8) {
    (u32::from(n.network()), n.prefix_len())
}

fn v6_key(n: &Ipv6Net) -> (u128, u8) {
    (u128::from(n.network()), n.prefix_len())
}

/// The routing table: connected routes from interface addresses plus the configured static
/// routes; longest prefix match per family.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    v4: Fib4,
    v6: Fib6,
}

impl RouteTable {
    /// Builds the table of a configuration: the connected routes of the interfaces'
    /// addresses, then the configured routes. Of routes with the same prefix the first is
    /// kept.
    pub fn from_config(cfg: &Config) -> RouteTable {
        let connected = cfg.interfaces.iter().enumerate().flat_map(|(id, i)| {
            i.addresses.iter().map(move |a| Route {
                prefix: a.trunc(),
                iface: id,
                via: None,
            })
        });
        let configured = cfg.routes.iter().filter_map(|r| {
            Some(Route {
                prefix: r.prefix,
                iface: cfg.iface_id(&r.interface)?,
                via: r.via,
            })
        });
        RouteTable::from_routes(connected.chain(configured))
    }

    /// Builds a table in one pass (a sort, then one walk). Of routes with the same prefix the
    /// first is kept; prefixes are truncated to their length.
    pub fn from_routes(routes: impl IntoIterator<Item = Route>) -> RouteTable {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for mut r in routes {
            r.prefix = r.prefix.trunc();
            match r.prefix {
                IpNet::V4(n) => {
                    let (k, l) = v4_key(&n);
                    v4.push((k, l, r));
                }
                IpNet::V6(n) => {
                    let (k, l) = v6_key(&n);
                    v6.push((k, l, r));
                }
            }
        }
        RouteTable {
            v4: Fib4::build(v4),
            v6: Fib6::build(v6),
        }
    }

    /// Adds a route (its prefix truncated to its length) unless that prefix has one already;
    /// returns whether it was added.
    pub fn add(&mut self, mut r: Route) -> bool {
        r.prefix = r.prefix.trunc();
        match r.prefix {
            IpNet::V4(n) => {
                let (k, l) = v4_key(&n);
                self.v4.insert(k, l, r)
            }
            IpNet::V6(n) => {
                let (k, l) = v6_key(&n);
                self.v6.insert(k, l, r)
            }
        }
    }

    /// Removes the route of exactly `prefix` (truncated to its length) and returns it.
    pub fn remove(&mut self, prefix: IpNet) -> Option<Route> {
        match prefix.trunc() {
            IpNet::V4(n) => {
                let (k, l) = v4_key(&n);
                self.v4.remove(k, l)
            }
            IpNet::V6(n) => {
                let (k, l) = v6_key(&n);
                self.v6.remove(k, l)
            }
        }
    }

    /// The route of exactly `prefix` (truncated to its length), if any.
    pub fn get(&self, prefix: IpNet) -> Option<&Route> {
        match prefix.trunc() {
            IpNet::V4(n) => {
                let (k, l) = v4_key(&n);
                self.v4.get(k, l)
            }
            IpNet::V6(n) => {
                let (k, l) = v6_key(&n);
                self.v6.get(k, l)
            }
        }
    }

    /// Where a packet to `dst` goes (the next hop of the longest matching route), if
    /// anywhere.
    #[inline(always)]
    pub fn lookup(&self, dst: IpAddr) -> Option<&NextHop> {
        match dst {
            IpAddr::V4(a) => self.lookup_v4(a),
            IpAddr::V6(a) => self.lookup_v6(a),
        }
    }

    /// [`RouteTable::lookup`] for an IPv4 destination.
    #[inline(always)]
    pub fn lookup_v4(&self, dst: Ipv4Addr) -> Option<&NextHop> {
        self.v4.lookup(u32::from(dst))
    }

    /// [`RouteTable::lookup`] for an IPv6 destination.
    #[inline(always)]
    pub fn lookup_v6(&self, dst: Ipv6Addr) -> Option<&NextHop> {
        self.v6.lookup(u128::from(dst))
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether there is no route at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every route: IPv4 then IPv6, each sorted by network then prefix length.
    pub fn iter(&self) -> impl Iterator<Item = &Route> + '_ {
        self.v4.iter().chain(self.v6.iter())
    }

    /// Bytes of the lookup structures (direct arrays, nodes, leaves and next hops; not the
    /// route list).
    pub fn lookup_bytes(&self) -> usize {
        self.v4.lookup_bytes() + self.v6.lookup_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: &str, i: usize) -> Route {
        Route {
            prefix: p.parse().unwrap(),
            iface: i,
            via: None,
        }
    }

    #[test]
    fn longest_prefix_wins_per_family() {
        let mut t = RouteTable::default();
        assert!(t.add(r("0.0.0.0/0", 0)));
        assert!(t.add(r("198.51.100.0/24", 1)));
        assert!(t.add(r("198.51.100.128/25", 2)));
        assert!(t.add(r("2001:db8::/32", 3)));
        let get = |t: &RouteTable, a: &str| t.lookup(a.parse().unwrap()).map(|r| r.iface);
        assert_eq!(get(&t, "198.51.100.200"), Some(2));
        assert_eq!(get(&t, "198.51.100.5"), Some(1));
        assert_eq!(get(&t, "203.0.113.1"), Some(0));
        assert_eq!(get(&t, "2001:db8:5::1"), Some(3));
        assert_eq!(get(&t, "2001:db9::1"), None);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn add_refuses_an_existing_prefix_and_remove_restores_the_shorter_route() {
        let mut t = RouteTable::default();
        assert!(t.add(r("198.51.100.0/24", 1)));
        assert!(
            !t.add(r("198.51.100.7/24", 2)),
            "same prefix once truncated"
        );
        assert_eq!(
            t.get("198.51.100.0/24".parse().unwrap()).map(|r| r.iface),
            Some(1)
        );
        assert!(t.add(r("198.51.100.0/26", 3)));
        assert!(t.add(r("198.51.100.60/32", 4)));
        let get = |t: &RouteTable, a: &str| t.lookup(a.parse().unwrap()).map(|r| r.iface);
        assert_eq!(get(&t, "198.51.100.60"), Some(4));
        assert_eq!(get(&t, "198.51.100.61"), Some(3));
        assert_eq!(
            t.remove("198.51.100.0/26".parse().unwrap())
                .map(|r| r.iface),
            Some(3)
        );
        assert_eq!(get(&t, "198.51.100.61"), Some(1));
        assert_eq!(get(&t, "198.51.100.60"), Some(4));
        assert!(t.remove("198.51.100.0/26".parse().unwrap()).is_none());
        assert_eq!(
            t.remove("198.51.100.60/32".parse().unwrap())
                .map(|r| r.iface),
            Some(4)
        );
        assert_eq!(
            t.remove("198.51.100.0/24".parse().unwrap())
                .map(|r| r.iface),
            Some(1)
        );
        assert_eq!(get(&t, "198.51.100.60"), None);
        assert!(t.is_empty());
    }

    #[test]
    fn first_of_duplicate_prefixes_wins_when_built() {
        let t = RouteTable::from_routes([r("192.0.2.0/24", 1), r("192.0.2.9/24", 2)]);
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.lookup("192.0.2.9".parse().unwrap()).map(|r| r.iface),
            Some(1)
        );
    }

    #[test]
    fn freed_blocks_are_reused() {
        let mut t = RouteTable::default();
        let p = |i: u32| format!("203.0.{}.{}/32", 113 + (i >> 8), i & 0xff);
        for round in 0..3 {
            for i in 0..200 {
                assert!(t.add(r(&p(i), i as usize)));
            }
            let size = t.lookup_bytes();
            for i in 0..200 {
                assert!(t.remove(p(i).parse().unwrap()).is_some());
            }
            if round > 0 {
                assert_eq!(t.lookup_bytes(), size, "no growth across rounds");
            }
        }
    }
}
