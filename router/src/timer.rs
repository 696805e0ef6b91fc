//! Every deadline the engine has, in one table (quinn-proto's `TimerTable`): `poll_timeout` is
//! the earliest of them, and `handle_timeout` runs each one that is due. A driver therefore
//! sleeps exactly until the next piece of work — a GC sweep, a reassembly queue that times
//! out, a NAT mapping to collect — instead of polling at a fixed rate.
//!
//! ```
//! use router::timer::{Timer, TimerTable};
//! use wire::Instant;
//!
//! let mut t = TimerTable::default();
//! t.set(Timer::ConntrackGc, Instant::from_secs(5));
//! t.set(Timer::Reassembly, Instant::from_secs(2));
//! assert_eq!(t.next(), Some(Instant::from_secs(2)));
//! assert_eq!(t.expired(Instant::from_secs(3)).collect::<Vec<_>>(), vec![Timer::Reassembly]);
//! t.stop(Timer::Reassembly);
//! assert_eq!(t.next(), Some(Instant::from_secs(5)));
//! ```

use wire::Instant;

/// A kind of deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// The next step of the bounded conntrack GC sweep.
    ConntrackGc,
    /// The earliest deadline of a fragment reassembly queue.
    Reassembly,
    /// The next collection of expired endpoint-independent NAT mappings.
    Mappings,
}

impl Timer {
    /// Every timer, in the order `handle_timeout` runs those that are due.
    pub const ALL: [Timer; 3] = [Timer::ConntrackGc, Timer::Reassembly, Timer::Mappings];

    fn index(self) -> usize {
        self as usize
    }
}

/// One optional deadline per [`Timer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerTable {
    at: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    /// Arms `timer` for `at` (replacing its deadline).
    #[inline]
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer.index()] = Some(at);
    }

    /// Arms `timer` for `at`, or disarms it when `at` is `None`.
    #[inline]
    pub fn set_opt(&mut self, timer: Timer, at: Option<Instant>) {
        self.at[timer.index()] = at;
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: Timer) {
        self.at[timer.index()] = None;
    }

    /// The deadline of `timer`, if armed.
    #[inline]
    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.at[timer.index()]
    }

    /// Whether `timer` is armed and due at `now`.
    #[inline(always)]
    pub fn is_due(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|t| t <= now)
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    /// The timers due at `now`, in [`Timer::ALL`] order.
    pub fn expired(&self, now: Instant) -> impl Iterator<Item = Timer> + '_ {
        Timer::ALL.into_iter().filter(move |t| self.is_due(*t, now))
    }
}
