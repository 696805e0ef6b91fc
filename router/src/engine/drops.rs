//! Counted drops and the event queue.

use super::*;

impl Engine {
    // ---------------------------------------------------------------- drops

    pub(super) fn verdict_drop(
        &mut self,
        v: Verdict,
        hook: Hook,
        meta: &Meta,
        pkt: &PacketBuf,
        ingress: Option<IfaceId>,
    ) {
        let reason = match v {
            Verdict::Reject(with) => {
                if let Some(i) = ingress {
                    self.reject(with, meta, pkt, i);
                }
                "reject"
            }
            _ => "rule: drop",
        };
        self.count_drop_hook(reason, hook, meta, ingress);
    }

    pub(super) fn count_drop_hook(
        &mut self,
        reason: &'static str,
        hook: Hook,
        meta: &Meta,
        ingress: Option<IfaceId>,
    ) {
        let rule = self.last_rule.take();
        let reason = match (&rule, reason) {
            (Some(r), "rule: drop") if r.is_policy() => "policy: drop",
            _ => reason,
        };
        self.drop_packet(reason, Some(hook), rule, ingress, meta.describe());
    }

    pub(super) fn drop_packet(
        &mut self,
        reason: &'static str,
        hook: Option<Hook>,
        rule: Option<RuleRef>,
        ingress: Option<IfaceId>,
        packet: String,
    ) {
        self.drops.add(reason);
        if self.events_enabled {
            let iface = ingress
                .and_then(|i| self.ifaces.get(i))
                .map(|i| i.name.to_string());
            self.push_event(Event::Drop(DropEvent {
                at: self.now,
                hook,
                rule,
                reason,
                iface,
                packet,
            }));
        }
    }

    pub(super) fn push_event(&mut self, e: Event) {
        if !self.events_enabled {
            return;
        }
        if self.events.len() >= EVENT_QUEUE {
            self.events.pop_front();
            self.drops.add("events: queue full");
        }
        self.events.push_back(e);
    }
}
