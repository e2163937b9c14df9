//! Where a checkpoint puts new data: space the current state does not use.
//!
//! Invariant: an extent handed out by [`Space::alloc`] overlaps neither an extent the space was
//! built with (the current state's sections and directory) nor another extent handed out by
//! the same `Space`. It starts on a page boundary at or after the data area's start; it may end
//! past the file's current end (the file grows).

/// The used extents of a container's data area and the page size, to allocate around.
#[derive(Debug)]
pub(crate) struct Space {
    page: u64,
    start: u64,
    /// Used `(offset, end)` pairs, sorted by offset, not overlapping.
    used: Vec<(u64, u64)>,
}

impl Space {
    /// The data area from `start` (a page boundary), with `used` taken.
    pub fn new(page: u64, start: u64, used: impl IntoIterator<Item = (u64, u64)>) -> Space {
        let mut used: Vec<(u64, u64)> = used.into_iter().filter(|(a, b)| b > a).collect();
        used.sort_unstable();
        Space { page, start, used }
    }

    /// `len` bytes rounded up to whole pages (at least one page for an empty section, so that
    /// every section has a place of its own).
    fn pages(&self, len: u64) -> u64 {
        len.max(1).div_ceil(self.page) * self.page
    }

    /// The first gap of `len` bytes (rounded up to pages) after the data area's start, or the
    /// end of the last used extent; marks it used and returns its offset.
    pub fn alloc(&mut self, len: u64) -> u64 {
        let need = self.pages(len);
        let mut at = self.start;
        let mut index = self.used.len();
        for (i, &(a, b)) in self.used.iter().enumerate() {
            if a >= at && a - at >= need {
                index = i;
                break;
            }
            at = at.max(b.div_ceil(self.page) * self.page);
        }
        self.used.insert(index, (at, at + need));
        at
    }

    /// Marks `len` bytes at `offset` (a page boundary at or after [`end`](Self::end)) used: a
    /// streamed section, whose length was known only once written.
    pub fn mark(&mut self, offset: u64, len: u64) {
        let pos = self.used.partition_point(|&(a, _)| a < offset);
        self.used.insert(pos, (offset, offset + self.pages(len)));
    }

    /// The end of the last used extent (page-rounded): the file's length after writing them.
    pub fn end(&self) -> u64 {
        self.used
            .iter()
            .map(|&(_, b)| b.div_ceil(self.page) * self.page)
            .max()
            .unwrap_or(self.start)
            .max(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 4096;

    #[test]
    fn fills_gaps_first_fit_then_appends() {
        // Used: pages 3, 5..7; free: 4, and 7 on.
        let mut s = Space::new(P, 3 * P, [(3 * P, 3 * P + 10), (5 * P, 7 * P)]);
        assert_eq!(s.alloc(P), 4 * P, "the one-page gap");
        assert_eq!(s.alloc(1), 7 * P, "no gap left: after the last");
        assert_eq!(s.alloc(2 * P + 1), 8 * P);
        assert_eq!(s.end(), 11 * P);
    }

    #[test]
    fn a_gap_too_small_is_skipped_and_empty_data_gets_a_page() {
        let mut s = Space::new(P, 3 * P, [(4 * P, 5 * P)]);
        assert_eq!(s.alloc(2 * P), 5 * P, "page 3 alone is too small");
        assert_eq!(s.alloc(0), 3 * P);
        assert_eq!(s.alloc(0), 7 * P);
    }

    #[test]
    fn allocations_never_overlap_each_other_or_the_used_extents() {
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..200 {
            let used: Vec<(u64, u64)> = (0..5)
                .map(|_| {
                    let a = 3 * P + (next() % 40) * P;
                    (a, a + 1 + next() % (3 * P))
                })
                .collect();
            // The state's extents never overlap each other: keep a non-overlapping subset.
            let mut kept: Vec<(u64, u64)> = Vec::new();
            for u in used {
                if kept.iter().all(|k| u.1 <= k.0 || k.1 <= u.0) {
                    kept.push(u);
                }
            }
            let mut s = Space::new(P, 3 * P, kept.clone());
            let mut all = kept.clone();
            for _ in 0..6 {
                let len = next() % (4 * P);
                let at = s.alloc(len);
                assert_eq!(at % P, 0);
                assert!(at >= 3 * P);
                let ext = (at, at + len.max(1));
                for o in &all {
                    assert!(ext.1 <= o.0 || o.1 <= ext.0, "{ext:?} overlaps {o:?}");
                }
                all.push(ext);
                assert!(s.end() >= ext.1);
            }
        }
    }
}
