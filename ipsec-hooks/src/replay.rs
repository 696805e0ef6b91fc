//! The anti-replay window (RFC 4303 §3.4.3), kept as RFC 6479's bitmap of 64-bit blocks, with
//! the high half of extended sequence numbers inferred per RFC 4303 Appendix A.
//!
//! A packet is [`check`](ReplayWindow::check)ed before its ICV is verified (a forged packet must
//! not cost a decryption when its number is already used or too old) and
//! [`accept`](ReplayWindow::accept)ed only after, so that a forged packet cannot move the window.
//!
//! The window is `size` numbers wide: with `top` the highest number accepted, a number is new
//! when it is above `top`, too old when `top - seq >= size`, and otherwise a replay if its bit
//! is set. A `size` of 0 turns the check off, as Linux's `replay-window 0`.

/// The largest window (`replay-window`) accepted.
pub const MAX_REPLAY_WINDOW: u32 = 4096;

/// Why a sequence number was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplayError {
    /// Sequence number 0, which no sender uses (the first packet carries 1).
    SeqZero,
    /// Below the window.
    TooOld,
    /// Inside the window and already accepted.
    Replayed,
}

/// One SA's inbound window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayWindow {
    size: u32,
    esn: bool,
    /// Highest sequence number accepted (all 64 bits with ESN).
    top: u64,
    /// RFC 6479: block `(seq >> 6) & (len - 1)`, bit `seq & 63`; a power of two of blocks, one
    /// more than the window needs, so that advancing clears whole blocks.
    blocks: Box<[u64]>,
}

impl ReplayWindow {
    /// A window of `size` numbers (clamped to [`MAX_REPLAY_WINDOW`]), with extended sequence
    /// numbers when `esn`.
    pub fn new(size: u32, esn: bool) -> ReplayWindow {
        let size = size.min(MAX_REPLAY_WINDOW);
        let n = (size.div_ceil(64) as usize + 1).next_power_of_two();
        ReplayWindow {
            size,
            esn,
            top: 0,
            blocks: vec![0; n].into_boxed_slice(),
        }
    }

    /// Starts the window at `top` with no number marked as received (`replay-seq`).
    pub fn set_top(&mut self, top: u64) {
        self.top = top;
        self.blocks.fill(0);
    }

    /// The window size.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The highest sequence number accepted so far (0: none).
    pub fn top(&self) -> u64 {
        self.top
    }

    /// The full sequence number of a packet carrying `seq_lo` (ESN: its high half inferred from
    /// the window, RFC 4303 Appendix A; otherwise `seq_lo` itself), if the window lets it in.
    pub fn check(&self, seq_lo: u32) -> Result<u64, ReplayError> {
        let seq = if self.esn {
            self.infer(seq_lo)?
        } else {
            u64::from(seq_lo)
        };
        if seq == 0 {
            return Err(ReplayError::SeqZero);
        }
        if self.size == 0 || seq > self.top {
            return Ok(seq);
        }
        if self.top - seq >= u64::from(self.size) {
            return Err(ReplayError::TooOld);
        }
        if self.seen(seq) {
            return Err(ReplayError::Replayed);
        }
        Ok(seq)
    }

    /// RFC 4303 Appendix A: which 2^32 subspace `seql` belongs to, given the window's top.
    fn infer(&self, seql: u32) -> Result<u64, ReplayError> {
        let tl = self.top as u32;
        let th = (self.top >> 32) as u32;
        // A window of 0 is refused with ESN at configuration; 1 keeps the arithmetic defined.
        let w = self.size.max(1);
        let bottom = tl.wrapping_sub(w - 1);
        let seqh = if tl >= w - 1 {
            // Case A: the window lies within one subspace.
            if seql >= bottom {
                th
            } else {
                th.checked_add(1).ok_or(ReplayError::TooOld)?
            }
        } else if seql >= bottom {
            // Case B: the window straddles the subspace boundary and seql is in its lower part.
            th.checked_sub(1).ok_or(ReplayError::TooOld)?
        } else {
            th
        };
        Ok((u64::from(seqh) << 32) | u64::from(seql))
    }

    fn slot(&self, seq: u64) -> (usize, u64) {
        let idx = ((seq >> 6) as usize) & (self.blocks.len() - 1);
        (idx, 1u64 << (seq & 63))
    }

    fn seen(&self, seq: u64) -> bool {
        let (i, bit) = self.slot(seq);
        self.blocks[i] & bit != 0
    }

    /// Records `seq` (from [`check`](Self::check), once the ICV verified), sliding the window
    /// when it is the new top.
    pub fn accept(&mut self, seq: u64) {
        if seq > self.top {
            let (old, new) = (self.top >> 6, seq >> 6);
            let n = self.blocks.len() as u64;
            if new - old >= n {
                self.blocks.fill(0);
            } else {
                let mask = self.blocks.len() - 1;
                for b in old + 1..=new {
                    self.blocks[(b as usize) & mask] = 0;
                }
            }
            self.top = seq;
        }
        let (i, bit) = self.slot(seq);
        self.blocks[i] |= bit;
    }

    /// The window as Linux shows it: for a window of up to 32 without ESN, one word whose bit
    /// `i` is `top - i` (`anti-replay context: ... bitmap 0x...`); otherwise `size / 32` words
    /// (rounded up) where the number `s` is bit `s % size` (`anti-replay esn context`).
    pub fn linux_bitmap(&self) -> Vec<u32> {
        let w = u64::from(self.size);
        let in_window = (self.top.saturating_sub(w.saturating_sub(1)).max(1))..=self.top;
        if !self.esn && self.size <= 32 {
            let mut word = 0u32;
            for s in in_window.filter(|&s| s > 0 && self.seen(s)) {
                word |= 1 << (self.top - s);
            }
            return vec![word];
        }
        let mut words = vec![0u32; self.size.div_ceil(32) as usize];
        for s in in_window.filter(|&s| s > 0 && self.seen(s)) {
            let pos = (s % w) as usize;
            words[pos / 32] |= 1 << (pos % 32);
        }
        words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(w: &mut ReplayWindow, lo: u32) -> Result<u64, ReplayError> {
        let s = w.check(lo)?;
        w.accept(s);
        Ok(s)
    }

    #[test]
    fn duplicates_and_old_numbers() {
        let mut w = ReplayWindow::new(32, false);
        assert_eq!(w.check(0), Err(ReplayError::SeqZero));
        assert_eq!(take(&mut w, 1), Ok(1));
        assert_eq!(take(&mut w, 1), Err(ReplayError::Replayed));
        assert_eq!(take(&mut w, 40), Ok(40));
        // 40 - 9 = 31 < 32: inside; 40 - 8 = 32: too old.
        assert_eq!(take(&mut w, 9), Ok(9));
        assert_eq!(take(&mut w, 8), Err(ReplayError::TooOld));
        assert_eq!(take(&mut w, 9), Err(ReplayError::Replayed));
        assert_eq!(take(&mut w, 39), Ok(39));
        assert_eq!(w.linux_bitmap(), vec![(1 << 31) | 0b11]);
    }

    #[test]
    fn checking_alone_does_not_move_the_window() {
        let mut w = ReplayWindow::new(64, false);
        take(&mut w, 100).unwrap();
        assert_eq!(w.check(1000), Ok(1000));
        // 1000 was never accepted (its ICV failed, say): 100 is still the top.
        assert_eq!(w.top(), 100);
        assert_eq!(take(&mut w, 60), Ok(60));
    }

    /// Runs a pseudo-random walk of numbers (steps up to `spread` either way) through a window
    /// and through a plain set with the RFC's rule; both must answer alike.
    fn against_reference(size: u32, spread: u64, steps: usize) {
        let mut w = ReplayWindow::new(size, false);
        let mut seen = std::collections::BTreeSet::new();
        let mut top = 0u64;
        let mut x = 0x2545_f491_u64 ^ u64::from(size);
        for _ in 0..steps {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let delta = (x % (2 * spread + 1)) as i64 - spread as i64 + 1;
            let s = (top as i64 + delta).clamp(1, u32::MAX as i64) as u64;
            let want = if s > top {
                Ok(s)
            } else if top - s >= u64::from(size) {
                Err(ReplayError::TooOld)
            } else if seen.contains(&s) {
                Err(ReplayError::Replayed)
            } else {
                Ok(s)
            };
            assert_eq!(w.check(s as u32), want, "size {size} seq {s} top {top}");
            if want.is_ok() {
                w.accept(s);
                seen.insert(s);
                top = top.max(s);
            }
        }
    }

    #[test]
    fn sliding_window_matches_the_reference() {
        for size in [1u32, 32, 63, 64, 65, 100, 1024] {
            // Small steps (mostly in-window), and jumps past the whole bitmap.
            against_reference(size, u64::from(size) / 2 + 1, 5000);
            against_reference(size, 3 * u64::from(size) + 200, 5000);
        }
    }

    #[test]
    fn window_of_4096_matches_the_reference() {
        against_reference(4096, 5000, 20_000);
        against_reference(4096, 70, 20_000);
    }

    #[test]
    fn window_off() {
        let mut w = ReplayWindow::new(0, false);
        assert_eq!(take(&mut w, 5), Ok(5));
        assert_eq!(take(&mut w, 5), Ok(5));
        assert_eq!(take(&mut w, 1), Ok(1));
        assert_eq!(w.check(0), Err(ReplayError::SeqZero));
    }

    #[test]
    fn esn_high_half_inferred() {
        let mut w = ReplayWindow::new(64, true);
        // Case B at the start: numbers near 2^32 would be in subspace -1: too old.
        assert_eq!(w.check(u32::MAX - 3), Err(ReplayError::TooOld));
        assert_eq!(take(&mut w, 1), Ok(1));
        // With Tl = 1 < W - 1 (case B), a number just below 2^32 is read as in subspace -1.
        assert_eq!(w.check(u32::MAX - 10), Err(ReplayError::TooOld));
        // Case A from 100 on: the same number is ahead, in subspace 0.
        assert_eq!(take(&mut w, 100), Ok(100));
        assert_eq!(take(&mut w, u32::MAX - 10), Ok(u64::from(u32::MAX - 10)));
        // Case A: a small number is past the wrap: subspace 1.
        assert_eq!(take(&mut w, 5), Ok((1 << 32) | 5));
        // Now Tl = 5 < W - 1 (case B): a number near 2^32 belongs to subspace 0, in window.
        assert_eq!(take(&mut w, u32::MAX - 2), Ok(u64::from(u32::MAX - 2)));
        assert_eq!(take(&mut w, u32::MAX - 2), Err(ReplayError::Replayed));
        // ... but one below the window is read as ahead, in subspace 1 (Appendix A: a sender
        // never goes back that far, so its ICV, computed with another high half, fails).
        assert_eq!(
            w.check(u32::MAX - 100),
            Ok((1 << 32) | u64::from(u32::MAX - 100))
        );
        // A small number ahead of 5 stays in subspace 1.
        assert_eq!(take(&mut w, 6), Ok((1 << 32) | 6));
        assert_eq!(w.top(), (1 << 32) | 6);
    }

    #[test]
    fn esn_low_zero_in_a_later_subspace() {
        let mut w = ReplayWindow::new(32, true);
        take(&mut w, 100).unwrap();
        take(&mut w, u32::MAX).unwrap();
        assert_eq!(take(&mut w, 0), Ok(1 << 32));
        assert_eq!(w.linux_bitmap().len(), 1);
    }
}
