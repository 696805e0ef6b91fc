//! `-m limit --limit N/unit --limit-burst B`: a token bucket per rule, shared by every thread
//! evaluating the rule. Time comes from [`PacketCtx::now_ns`], so the simulator is
//! deterministic. Defaults as in iptables: 3/hour, burst 5. The rate syntax (`N/sec`, …)
//! is also `-m hashlimit`'s (`hashlimit.rs`).

use std::fmt::Write as _;
use std::sync::Mutex;

use crate::extension::{Arg, MatchExt, Opt};
use crate::value::parse_uint;
use crate::{Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[
    Opt::value(&["--limit"], false),
    Opt::value(&["--limit-burst"], false),
];

/// Rate unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RateUnit {
    Second,
    Minute,
    Hour,
    Day,
}

impl RateUnit {
    pub(crate) fn nanos(self) -> u64 {
        match self {
            RateUnit::Second => 1_000_000_000,
            RateUnit::Minute => 60_000_000_000,
            RateUnit::Hour => 3_600_000_000_000,
            RateUnit::Day => 86_400_000_000_000,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            RateUnit::Second => "sec",
            RateUnit::Minute => "min",
            RateUnit::Hour => "hour",
            RateUnit::Day => "day",
        }
    }
}

/// The kernel's limit match refuses rates above 10000 per second.
const MAX_RATE_PER_SEC: u64 = 10_000;

/// `-m limit`: the options and the bucket.
#[derive(Debug)]
pub(crate) struct Limit {
    pub(crate) rate: u32,
    pub(crate) unit: RateUnit,
    pub(crate) burst: u32,
    /// (time of the last update, credit in nanoseconds); `None` until the first packet, which
    /// starts with a full bucket.
    state: Mutex<Option<(u64, u64)>>,
}

/// iptables' default burst.
pub(crate) const LIMIT_DEFAULT_BURST: u32 = 5;

impl Default for Limit {
    /// iptables' defaults: 3/hour, burst 5.
    fn default() -> Limit {
        Limit::new(3, RateUnit::Hour, LIMIT_DEFAULT_BURST)
    }
}

impl Limit {
    pub(crate) fn new(rate: u32, unit: RateUnit, burst: u32) -> Limit {
        Limit {
            rate,
            unit,
            burst,
            state: Mutex::new(None),
        }
    }

    /// Parses `N`, `N/second`, `N/min`, ... (any prefix of second, minute, hour, day).
    pub(crate) fn parse_rate(s: &str) -> Result<(u32, RateUnit), String> {
        Self::parse_rate_max(s, MAX_RATE_PER_SEC)
    }

    /// [`Limit::parse_rate`] with another ceiling (hashlimit allows 1,000,000/sec).
    pub(crate) fn parse_rate_max(s: &str, max_per_sec: u64) -> Result<(u32, RateUnit), String> {
        let bad = || format!("bad rate {s} (N/sec, N/min, N/hour or N/day)");
        let (n, unit) = match s.split_once('/') {
            Some((n, u)) => {
                let u = u.to_ascii_lowercase();
                let unit = [
                    ("second", RateUnit::Second),
                    ("minute", RateUnit::Minute),
                    ("hour", RateUnit::Hour),
                    ("day", RateUnit::Day),
                ]
                .into_iter()
                .find(|(name, _)| !u.is_empty() && name.starts_with(&u))
                .map(|(_, unit)| unit)
                .ok_or_else(bad)?;
                (n, unit)
            }
            None => (s, RateUnit::Second),
        };
        let n = parse_uint(n, u64::from(u32::MAX)).map_err(|_| bad())?;
        if n == 0 {
            return Err(format!("rate {s} must be at least 1"));
        }
        // Compare per-second rates without overflow: n / unit_secs > MAX.
        if n > max_per_sec * (unit.nanos() / 1_000_000_000) {
            return Err(format!("rate {s} too fast (at most {max_per_sec}/sec)"));
        }
        Ok((n as u32, unit))
    }

    /// Nanoseconds of credit one packet costs.
    fn cost(&self) -> u64 {
        self.unit.nanos() / u64::from(self.rate.max(1))
    }

    pub(crate) fn hit(&self, now: u64) -> bool {
        let cost = self.cost();
        let cap = cost.saturating_mul(u64::from(self.burst.max(1)));
        // A poisoned lock only means another thread panicked mid-update; the pair is still a
        // valid bucket.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, credit) = guard.get_or_insert((now, cap));
        // Time going backwards (clock steps, reordered simulator input) adds no credit.
        let elapsed = now.saturating_sub(*last);
        *last = (*last).max(now);
        *credit = credit.saturating_add(elapsed).min(cap);
        if *credit >= cost {
            *credit -= cost;
            true
        } else {
            false
        }
    }
}

impl MatchExt for Limit {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        if arg.name == "--limit" {
            (self.rate, self.unit) = Limit::parse_rate(arg.text()).map_err(|e| arg.err(e))?;
        } else {
            self.burst = parse_uint(arg.text(), 10_000)
                .ok()
                .filter(|&b| b >= 1)
                .ok_or_else(|| arg.err(format!("bad burst {} (1..=10000)", arg.text())))?
                as u32;
        }
        Ok(())
    }

    fn matches(&self, ctx: &PacketCtx, _: &Marks) -> bool {
        self.hit(ctx.now_ns)
    }

    fn save(&self, out: &mut String) {
        let _ = write!(out, " -m limit --limit {}/{}", self.rate, self.unit.name());
        if self.burst != LIMIT_DEFAULT_BURST {
            let _ = write!(out, " --limit-burst {}", self.burst);
        }
    }
}

impl Clone for Limit {
    /// A copy starts with a fresh, full bucket.
    fn clone(&self) -> Limit {
        Limit::new(self.rate, self.unit, self.burst)
    }
}

impl PartialEq for Limit {
    /// Configuration only; the bucket is state.
    fn eq(&self, other: &Limit) -> bool {
        (self.rate, self.unit, self.burst) == (other.rate, other.unit, other.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(Limit::parse_rate("5/min").unwrap(), (5, RateUnit::Minute));
        assert_eq!(Limit::parse_rate("10").unwrap(), (10, RateUnit::Second));
        assert_eq!(Limit::parse_rate("3/h").unwrap(), (3, RateUnit::Hour));
        assert_eq!(Limit::parse_rate("1/DAY").unwrap(), (1, RateUnit::Day));
        assert!(Limit::parse_rate("0/sec").is_err());
        assert!(Limit::parse_rate("10001/sec").is_err());
        assert!(Limit::parse_rate("5/fortnight").is_err());
        assert!(Limit::parse_rate("5/").is_err());
    }

    #[test]
    fn token_bucket() {
        // 2 per second, burst 3.
        let l = Limit::new(2, RateUnit::Second, 3);
        let t0 = 1_000_000_000;
        assert!(l.hit(t0));
        assert!(l.hit(t0));
        assert!(l.hit(t0));
        assert!(!l.hit(t0));
        // Half a second buys one packet.
        assert!(!l.hit(t0 + 499_999_999));
        assert!(l.hit(t0 + 500_000_000));
        assert!(!l.hit(t0 + 500_000_000));
        // A long pause refills only up to the burst.
        let t1 = t0 + 100_000_000_000;
        assert!(l.hit(t1) && l.hit(t1) && l.hit(t1));
        assert!(!l.hit(t1));
        // Time going backwards adds nothing.
        assert!(!l.hit(t0));
    }
}
