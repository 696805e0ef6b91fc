//! Timers: the timer table's deadlines and what runs when each is due.

use super::*;
use l3proto::defrag::DefragDrop;

impl Engine {
    // --------------------------------------------------------------- timers

    /// Runs timers: the bounded conntrack GC sweep.
    pub fn handle_timeout(&mut self, now: Instant) {
        // An expired reassembly queue may owe an ICMP error, which is a packet like any
        // other: the same containment applies.
        let done = panic::catch_unwind(AssertUnwindSafe(|| self.run_timers(now)));
        if let Err(p) = done {
            self.contain_panic(p, None);
        }
    }

    pub(super) fn run_timers(&mut self, now: Instant) {
        self.now = now;
        for timer in Timer::ALL {
            if !self.timers.is_due(timer, now) {
                continue;
            }
            match timer {
                Timer::ConntrackGc => {
                    self.ct.gc(now);
                    self.timers.set(Timer::ConntrackGc, now + GC_INTERVAL);
                }
                // Handled below, as after every fragment.
                Timer::Reassembly => {}
                // A full pass, so far less often; lookups check expiry themselves.
                Timer::Mappings => {
                    self.eim.gc(now);
                    self.timers.set(Timer::Mappings, now + EIM_GC_INTERVAL);
                }
            }
        }
        self.defrag_aftermath(now);
    }

    /// Counts the held fragments reassembly dropped with their datagrams, and gives up the
    /// datagrams past their deadline (found by a fragment or by `now`).
    pub(super) fn defrag_aftermath(&mut self, now: Instant) {
        let drops = &mut self.drops;
        self.defrag
            .take_dropped(|why, n| drops.add_n(why.into(), n as u64));
        if !self.defrag.has_expired() && self.defrag.poll_timeout().is_none_or(|t| t > now) {
            self.timers
                .set_opt(Timer::Reassembly, self.defrag.poll_timeout());
            return;
        }
        for e in self.defrag.expire(now) {
            self.drops.add(DefragDrop::Timeout.into());
            let Some((first, ingress)) = e.first.filter(|_| self.defrag_time_exceeded) else {
                continue;
            };
            let Ok(m) = Meta::of(first.as_slice()) else {
                continue;
            };
            // Code 1: fragment reassembly time exceeded. IPv4 leaves it to the destination
            // host (RFC 1122 §3.3.2), which a router forwarding the fragments is not, unless
            // they were for the router itself (Linux's conntrack reassembly does the same).
            let t = match m.family {
                Family::V4 if !self.is_local(&m.dst) => continue,
                Family::V4 => 11,
                Family::V6 => 3,
            };
            self.send_icmp_error(&first, &m, ingress, t, 1, 0);
        }
        self.timers
            .set_opt(Timer::Reassembly, self.defrag.poll_timeout());
    }

    /// When `handle_timeout` should be called next: the earliest deadline of the timer
    /// table (the next GC step, a datagram in reassembly, the next mapping collection).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The earliest time at which a timer has work: a connection, expectation or
    /// endpoint-independent mapping expires, or a datagram's reassembly time runs out. `None`
    /// when nothing is pending. Looks at every connection: for the simulator, which uses it
    /// with [`Engine::skip_idle_ticks`] to cross long gaps in a capture.
    pub fn next_deadline(&self) -> Option<Instant> {
        let eim = if self.nat_cfg.udp_eim {
            self.eim.next_expiry()
        } else {
            None
        };
        [self.ct.next_expiry(), self.defrag.poll_timeout(), eim]
            .into_iter()
            .flatten()
            .min()
    }

    /// Moves the periodic timers on as if `handle_timeout` had run at every tick before `t`,
    /// for a caller that knows none of those ticks had work (`t <= next_deadline()`): they
    /// would only have moved the conntrack sweep and the schedules on. Returns how many
    /// ticks were skipped. The result is the same as ticking, at the cost of one step.
    pub fn skip_idle_ticks(&mut self, t: Instant) -> u64 {
        let mut now = self.now.as_nanos();
        // The mapping collection keeps its own schedule, every EIM_GC_INTERVAL from its
        // deadline on: it moves to the first of those at or after t.
        if let Some(m) = self.timers.get(Timer::Mappings).filter(|m| *m < t) {
            let period = EIM_GC_INTERVAL.as_nanos() as u64;
            let n = (t.as_nanos() - m.as_nanos()).div_ceil(period);
            let last_run = m.as_nanos() + (n - 1) * period;
            now = now.max(last_run);
            self.timers
                .set(Timer::Mappings, Instant::from_nanos(last_run + period));
        }
        let mut k = 0;
        if let Some(next_gc) = self.timers.get(Timer::ConntrackGc).filter(|g| *g < t) {
            let step = GC_INTERVAL.as_nanos() as u64;
            let first = next_gc.as_nanos();
            // Ticks at first, first + step, ... strictly before t.
            k = (t.as_nanos() - first).div_ceil(step);
            let last = first + (k - 1) * step;
            now = now.max(last);
            self.ct.skip_gc(k);
            self.timers
                .set(Timer::ConntrackGc, Instant::from_nanos(last) + GC_INTERVAL);
        }
        self.now = Instant::from_nanos(now);
        k
    }
}
