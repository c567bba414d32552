//! Which batches of one object and config are already delivered: every batch below `next`, plus the
//! few above it that finished early while an earlier one was still in flight.

use std::collections::BTreeSet;

/// Delivered batches of one object and config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchCursor {
    next: u64,
    ahead: BTreeSet<u64>,
}

impl BatchCursor {
    /// A cursor from stored parts (`ahead` entries below `next` are ignored).
    pub fn from_parts(next: u64, ahead: impl IntoIterator<Item = u64>) -> Self {
        let mut cursor = Self {
            next,
            ahead: ahead.into_iter().filter(|seq| *seq >= next).collect(),
        };
        cursor.advance();
        cursor
    }

    /// Every batch below this one is delivered.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Delivered batches at or above [`BatchCursor::next`], ascending.
    pub fn ahead(&self) -> impl Iterator<Item = u64> + '_ {
        self.ahead.iter().copied()
    }

    /// Number of delivered batches.
    pub fn delivered(&self) -> u64 {
        self.next + self.ahead.len() as u64
    }

    /// Whether batch `seq` is delivered.
    pub fn is_done(&self, seq: u64) -> bool {
        seq < self.next || self.ahead.contains(&seq)
    }

    /// Records batch `seq` as delivered.
    pub fn mark_done(&mut self, seq: u64) {
        if seq >= self.next {
            self.ahead.insert(seq);
            self.advance();
        }
    }

    fn advance(&mut self) {
        while self.ahead.remove(&self.next) {
            self.next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_completion_only_moves_next() {
        let mut cursor = BatchCursor::default();
        cursor.mark_done(0);
        cursor.mark_done(1);
        assert_eq!(cursor.next(), 2);
        assert_eq!(cursor.ahead().count(), 0);
    }

    #[test]
    fn out_of_order_completion_is_kept_until_the_gap_closes() {
        let mut cursor = BatchCursor::default();
        cursor.mark_done(2);
        cursor.mark_done(1);
        assert_eq!(cursor.next(), 0);
        assert!(cursor.is_done(2) && cursor.is_done(1) && !cursor.is_done(0));
        cursor.mark_done(0);
        assert_eq!(cursor.next(), 3);
        assert_eq!(cursor.ahead().count(), 0);
        assert_eq!(cursor.delivered(), 3);
    }

    #[test]
    fn stored_parts_are_normalised() {
        let cursor = BatchCursor::from_parts(2, [1, 2, 3, 5]);
        assert_eq!(cursor.next(), 4);
        assert_eq!(cursor.ahead().collect::<Vec<_>>(), [5]);
        assert!(cursor.is_done(1) && !cursor.is_done(4));
    }

    #[test]
    fn marking_twice_is_harmless() {
        let mut cursor = BatchCursor::default();
        cursor.mark_done(0);
        cursor.mark_done(0);
        cursor.mark_done(3);
        cursor.mark_done(3);
        assert_eq!(cursor.delivered(), 2);
    }
}
