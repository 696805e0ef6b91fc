//! The hook stage table: for each of netfilter's five hooks, the stages a packet crosses there,
//! in Linux's priority order. The engine walks the table (`Engine::run_hook`); it never names
//! a stage's place itself, so a new stage — a conntrack helper, IPsec encapsulation — is added
//! by registering it at its priority, not by editing the walk.
//!
//! The default table is the kernel's for an IPv4/IPv6 router with conntrack and NAT loaded:
//!
//! | hook | stages (priority) |
//! |---|---|
//! | PREROUTING | raw (−300), conntrack in (−200), mangle (−150), nat table + DNAT (−100) |
//! | INPUT | mangle (−150), filter (0), nat table + SNAT (100), helper (300), confirm (last) |
//! | FORWARD | mangle (−150), filter (0) |
//! | OUTPUT | raw (−300), conntrack in (−200), mangle (−150), nat table + DNAT (−100), filter (0) |
//! | POSTROUTING | mangle (−150), TCPMSS (99), nat table + SNAT (100), helper (300), confirm (last) |
//!
//! The helper stage is there only when a helper can be attached ([`HookTable::with_helpers`]).
//! Defragmentation (−400) runs before PREROUTING and OUTPUT as the packet is read, because a
//! fragment held for reassembly has not entered any hook yet. TCPMSS is a target of the
//! mangle table; the rules only choose the value and its one rewrite waits until every table
//! of POSTROUTING had its say, just before source NAT.
//!
//! ```
//! use router::hooks::{HookTable, Stage, priority};
//! use rules::Hook;
//!
//! let mut t = HookTable::netfilter();
//! assert_eq!(t.stages(Hook::Forward), &[Stage::Mangle, Stage::Filter]);
//! // A stage added at the security table's priority lands between filter and SNAT.
//! t.register(Hook::Input, priority::SECURITY, Stage::Filter);
//! let input = t.stages(Hook::Input);
//! assert_eq!(&input[..3], &[Stage::Mangle, Stage::Filter, Stage::Filter]);
//! assert_eq!(input.last(), Some(&Stage::Confirm));
//! ```

use rules::{Hook, Ruleset, Table};

/// Linux's hook priorities (`enum nf_ip_hook_priorities`); lower runs first.
pub mod priority {
    /// Reassembly (`NF_IP_PRI_CONNTRACK_DEFRAG`).
    pub const DEFRAG: i32 = -400;
    /// The raw table.
    pub const RAW: i32 = -300;
    /// Conntrack lookup or creation.
    pub const CONNTRACK: i32 = -200;
    /// The mangle table.
    pub const MANGLE: i32 = -150;
    /// The nat table and destination NAT.
    pub const NAT_DST: i32 = -100;
    /// The filter table.
    pub const FILTER: i32 = 0;
    /// The security table (no such table yet; a registration point).
    pub const SECURITY: i32 = 50;
    /// The nat table and source NAT.
    pub const NAT_SRC: i32 = 100;
    /// Conntrack helpers (`NF_IP_PRI_CONNTRACK_HELPER`).
    pub const HELPER: i32 = 300;
    /// Conntrack confirm: always the last stage.
    pub const CONFIRM: i32 = i32::MAX;
}

/// One step of a hook. The engine runs each in `Engine::run_stage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The raw table; its NOTRACK / CT targets decide whether conntrack runs.
    Raw,
    /// Conntrack in: the packet's connection, found or new (not inserted until confirm).
    ConntrackIn,
    /// The mangle table.
    Mangle,
    /// The nat table (first packet of a connection only), then the binding and the rewrite
    /// of the destination.
    NatDst,
    /// The filter table.
    Filter,
    /// The one TCPMSS rewrite, with the value the rules chose.
    Tcpmss,
    /// The nat table (first packet only), then the binding and the rewrite of the source.
    NatSrc,
    /// The connection's application helper (FTP, TFTP, ...): expectations, NAT rewrites of
    /// the addresses its messages announce, and TCP sequence adjustment.
    Helper,
    /// Insert a new connection into the table: the packet leaves accepted.
    Confirm,
}

impl Stage {
    /// The ruleset table this stage evaluates, if it is a table stage.
    pub fn table(self) -> Option<Table> {
        match self {
            Stage::Raw => Some(Table::Raw),
            Stage::Mangle => Some(Table::Mangle),
            Stage::NatDst | Stage::NatSrc => Some(Table::Nat),
            Stage::Filter => Some(Table::Filter),
            Stage::ConntrackIn | Stage::Tcpmss | Stage::Helper | Stage::Confirm => None,
        }
    }
}

/// Most stages one hook holds.
const MAX_STAGES: usize = 12;

/// The stages of one hook, sorted by priority; equal priorities keep registration order.
/// Small and `Copy`: the engine copies a hook's list once per walk instead of reading the
/// table at every step.
#[derive(Clone, Copy, Debug, Default)]
pub struct HookStages {
    len: u8,
    stage: [Stage; MAX_STAGES],
}

impl HookStages {
    /// The stages, in the order they run.
    #[inline(always)]
    pub fn as_slice(&self) -> &[Stage] {
        // `register` keeps `len` within the array; the slice checks it once.
        &self.stage[..usize::from(self.len)]
    }
}

/// Fills the unused slots of a hook's fixed array; never read (`len` bounds every read).
impl Default for Stage {
    fn default() -> Stage {
        Stage::Confirm
    }
}

/// For each hook, its stages in priority order (see the module documentation).
#[derive(Clone, Debug, Default)]
pub struct HookTable {
    hooks: [HookStages; 5],
    /// The priority of each stage, beside `hooks` (only registration reads it).
    prio: [[i32; MAX_STAGES]; 5],
}

fn slot(hook: Hook) -> usize {
    match hook {
        Hook::Prerouting => 0,
        Hook::Input => 1,
        Hook::Forward => 2,
        Hook::Output => 3,
        Hook::Postrouting => 4,
    }
}

impl HookTable {
    /// An empty table: every hook accepts without a stage.
    pub fn empty() -> HookTable {
        HookTable::default()
    }

    /// Linux's table for a router with conntrack and NAT (the module documentation lists it).
    pub fn netfilter() -> HookTable {
        use priority::*;
        let mut t = HookTable::empty();
        for (hook, stages) in [
            (
                Hook::Prerouting,
                &[
                    (RAW, Stage::Raw),
                    (CONNTRACK, Stage::ConntrackIn),
                    (MANGLE, Stage::Mangle),
                    (NAT_DST, Stage::NatDst),
                ][..],
            ),
            (
                Hook::Input,
                &[
                    (MANGLE, Stage::Mangle),
                    (FILTER, Stage::Filter),
                    (NAT_SRC, Stage::NatSrc),
                    (CONFIRM, Stage::Confirm),
                ][..],
            ),
            (
                Hook::Forward,
                &[(MANGLE, Stage::Mangle), (FILTER, Stage::Filter)][..],
            ),
            (
                Hook::Output,
                &[
                    (RAW, Stage::Raw),
                    (CONNTRACK, Stage::ConntrackIn),
                    (MANGLE, Stage::Mangle),
                    (NAT_DST, Stage::NatDst),
                    (FILTER, Stage::Filter),
                ][..],
            ),
            (
                Hook::Postrouting,
                &[
                    (MANGLE, Stage::Mangle),
                    (NAT_SRC - 1, Stage::Tcpmss),
                    (NAT_SRC, Stage::NatSrc),
                    (CONFIRM, Stage::Confirm),
                ][..],
            ),
        ] {
            for &(p, s) in stages {
                t.register(hook, p, s);
            }
        }
        t
    }

    /// [`HookTable::netfilter`] without the stages of the tables `rules` lacks, so that a
    /// packet does not even ask about them. The NAT stages stay: connections NATed before a
    /// reload still have their packets rewritten, and new ones may still need a null binding.
    pub fn for_ruleset(rules: &Ruleset) -> HookTable {
        let mut t = HookTable::netfilter();
        for (h, prio) in t.hooks.iter_mut().zip(&mut t.prio) {
            let mut kept = 0;
            for i in 0..usize::from(h.len) {
                let s = h.stage[i];
                let drop = matches!(s, Stage::Raw | Stage::Mangle | Stage::Filter)
                    && s.table().is_some_and(|tb| !rules.has_table(tb));
                if !drop {
                    h.stage[kept] = s;
                    prio[kept] = prio[i];
                    kept += 1;
                }
            }
            h.len = kept as u8;
        }
        t
    }

    /// Adds the helper stage where Linux registers it: INPUT and POSTROUTING at
    /// [`priority::HELPER`], after every table and before confirm.
    pub fn with_helpers(mut self) -> HookTable {
        self.register(Hook::Input, priority::HELPER, Stage::Helper);
        self.register(Hook::Postrouting, priority::HELPER, Stage::Helper);
        self
    }

    /// Adds `stage` to `hook` at `priority`, after the stages of lower or equal priority.
    ///
    /// # Panics
    /// When the hook already holds its maximum of stages: the table is built once, at
    /// start-up, from a fixed set of stages, so this is a programming error.
    pub fn register(&mut self, hook: Hook, priority: i32, stage: Stage) {
        let (h, prio) = (&mut self.hooks[slot(hook)], &mut self.prio[slot(hook)]);
        let len = usize::from(h.len);
        assert!(len < MAX_STAGES, "too many stages at {hook:?}");
        let at = prio[..len].partition_point(|&p| p <= priority);
        prio.copy_within(at..len, at + 1);
        h.stage.copy_within(at..len, at + 1);
        prio[at] = priority;
        h.stage[at] = stage;
        h.len += 1;
    }

    /// The stages of `hook`, in the order they run.
    #[inline]
    pub fn stages(&self, hook: Hook) -> &[Stage] {
        self.hooks[slot(hook)].as_slice()
    }

    /// The stage list of `hook`, by value (what the engine's walk copies).
    #[inline(always)]
    pub fn hook(&self, hook: Hook) -> HookStages {
        self.hooks[slot(hook)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table_is_linuxs_priority_order() {
        let t = HookTable::netfilter();
        assert_eq!(
            t.stages(Hook::Prerouting),
            &[Stage::Raw, Stage::ConntrackIn, Stage::Mangle, Stage::NatDst]
        );
        assert_eq!(
            t.stages(Hook::Input),
            &[Stage::Mangle, Stage::Filter, Stage::NatSrc, Stage::Confirm]
        );
        assert_eq!(t.stages(Hook::Forward), &[Stage::Mangle, Stage::Filter]);
        assert_eq!(
            t.stages(Hook::Output),
            &[
                Stage::Raw,
                Stage::ConntrackIn,
                Stage::Mangle,
                Stage::NatDst,
                Stage::Filter
            ]
        );
        assert_eq!(
            t.stages(Hook::Postrouting),
            &[Stage::Mangle, Stage::Tcpmss, Stage::NatSrc, Stage::Confirm]
        );
    }

    #[test]
    fn registration_keeps_priority_order_and_confirm_last() {
        let mut t = HookTable::netfilter();
        t.register(Hook::Postrouting, priority::HELPER, Stage::Filter);
        t.register(Hook::Postrouting, priority::RAW, Stage::Raw);
        assert_eq!(
            t.stages(Hook::Postrouting),
            &[
                Stage::Raw,
                Stage::Mangle,
                Stage::Tcpmss,
                Stage::NatSrc,
                Stage::Filter,
                Stage::Confirm
            ]
        );
        assert_eq!(t.hook(Hook::Postrouting).as_slice().len(), 6);
        assert!(HookTable::empty().stages(Hook::Input).is_empty());
    }

    #[test]
    fn a_rulesets_table_lacks_no_stage_but_its_missing_tables() {
        let text =
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
        let rs = Ruleset::parse(text, "t.rules", rules::Family::V4).unwrap();
        let t = HookTable::for_ruleset(&rs);
        assert_eq!(
            t.stages(Hook::Prerouting),
            &[Stage::ConntrackIn, Stage::NatDst]
        );
        assert_eq!(t.stages(Hook::Forward), &[Stage::Filter]);
        assert_eq!(
            t.stages(Hook::Postrouting),
            &[Stage::Tcpmss, Stage::NatSrc, Stage::Confirm]
        );
        let none = HookTable::for_ruleset(&Ruleset::empty(rules::Family::V6));
        assert!(none.stages(Hook::Forward).is_empty());
    }
}
