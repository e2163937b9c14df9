//! [`Budget`]: the byte limit on resident values, with pressure levels and reservations.
//!
//! The budget counts *resident bytes*: the reported deep sizes of the values in memory plus the
//! bytes reserved for page-ins in flight. It never evicts anything itself; it tells the caller
//! how far over a threshold it is, and the caller (the paging runtime) evicts through an
//! [`EvictionPolicy`](super::EvictionPolicy).
//!
//! Levels, as fractions of the hard limit (defaults in brackets, configurable through
//! [`BudgetConfig`]):
//!
//! | level                   | resident bytes                      |
//! |-------------------------|-------------------------------------|
//! | [`Pressure::Normal`]    | below the moderate threshold (70 %) |
//! | [`Pressure::Moderate`]  | below the high threshold (85 %)     |
//! | [`Pressure::High`]      | below the critical threshold (95 %) |
//! | [`Pressure::Critical`]  | at or above the critical threshold  |
//!
//! The levels report how close the resident bytes are to the limit (a pool counts its evictions
//! by the level they happened at); they do not decide when a pool pages out. The *hard limit* is
//! the limit itself: [`Budget::try_reserve`] refuses a reservation that would pass it and says
//! how many bytes must be freed first, so the caller evicts synchronously, exactly that much,
//! before it decodes. A pool's background page-out, which only takes that work off the callers'
//! path, runs between its own [`Watermarks`](super::Watermarks), close to the hard limit. The
//! *soft limit* is the moderate threshold, for a user of a bare budget who pages out by level.
//!
//! Invariants:
//! - thresholds satisfy `0 < moderate <= high <= critical <= 100` (percent), checked when the
//!   budget is built;
//! - [`Budget::try_reserve`] never takes the resident count past the hard limit (it is a single
//!   compare-and-swap, so concurrent callers cannot overshoot together); [`Budget::reserve`] and
//!   [`Budget::add`] are unconditional and may, by design, for values that must stay resident;
//! - the resident count never wraps below zero: releasing more than is held is a bug, caught by a
//!   debug assertion and clamped to zero in release builds;
//! - every operation is a handful of atomic instructions: no locks, cheap to read from any thread.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::sync::AtomicU64;

/// How close the resident bytes are to the hard limit. Ordered: `Normal < Moderate < High <
/// Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pressure {
    /// Below the moderate threshold.
    Normal,
    /// At or above the moderate threshold (the soft limit).
    Moderate,
    /// At or above the high threshold.
    High,
    /// At or over the critical threshold: new reservations will soon have to evict synchronously.
    Critical,
}

impl Pressure {
    /// Every level, lowest first.
    pub const ALL: [Pressure; 4] = [
        Pressure::Normal,
        Pressure::Moderate,
        Pressure::High,
        Pressure::Critical,
    ];

    /// Position in [`Pressure::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Pressure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pressure::Normal => "normal",
            Pressure::Moderate => "moderate",
            Pressure::High => "high",
            Pressure::Critical => "critical",
        })
    }
}

/// Settings of a [`Budget`]. [`BudgetConfig::new`] takes the limit and uses the default
/// thresholds (70 %, 85 %, 95 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetConfig {
    /// The hard limit in bytes. Must be positive.
    pub limit: u64,
    /// Percent of the limit where [`Pressure::Moderate`] starts; also the soft limit.
    pub moderate_percent: u8,
    /// Percent of the limit where [`Pressure::High`] starts.
    pub high_percent: u8,
    /// Percent of the limit where [`Pressure::Critical`] starts.
    pub critical_percent: u8,
}

impl BudgetConfig {
    /// Default percent for [`Pressure::Moderate`].
    pub const DEFAULT_MODERATE_PERCENT: u8 = 70;
    /// Default percent for [`Pressure::High`].
    pub const DEFAULT_HIGH_PERCENT: u8 = 85;
    /// Default percent for [`Pressure::Critical`].
    pub const DEFAULT_CRITICAL_PERCENT: u8 = 95;

    /// A limit of `limit` bytes with the default thresholds.
    pub fn new(limit: u64) -> BudgetConfig {
        BudgetConfig {
            limit,
            moderate_percent: Self::DEFAULT_MODERATE_PERCENT,
            high_percent: Self::DEFAULT_HIGH_PERCENT,
            critical_percent: Self::DEFAULT_CRITICAL_PERCENT,
        }
    }

    /// The same limit with other thresholds, in percent of the limit.
    pub fn with_thresholds(mut self, moderate: u8, high: u8, critical: u8) -> BudgetConfig {
        self.moderate_percent = moderate;
        self.high_percent = high;
        self.critical_percent = critical;
        self
    }

    fn validate(&self) -> Result<(), BudgetError> {
        if self.limit == 0 {
            return Err(BudgetError::InvalidConfig(
                "the limit must be at least one byte",
            ));
        }
        let (m, h, c) = (
            self.moderate_percent,
            self.high_percent,
            self.critical_percent,
        );
        if !(0 < m && m <= h && h <= c && c <= 100) {
            return Err(BudgetError::InvalidConfig(
                "thresholds must satisfy 0 < moderate <= high <= critical <= 100 (percent)",
            ));
        }
        Ok(())
    }
}

/// Why a [`Budget`] could not be built or a reservation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// The configuration is unusable.
    #[error("invalid memory budget: {0}")]
    InvalidConfig(&'static str),
    /// The reservation would pass the hard limit: evict at least `must_free` bytes and retry.
    #[error(
        "reserving {bytes} bytes would pass the memory limit; free at least {must_free} bytes first"
    )]
    OverLimit {
        /// The bytes asked for.
        bytes: u64,
        /// How many resident bytes must be freed for the reservation to fit.
        must_free: u64,
    },
    /// The value alone is larger than the whole budget: no amount of eviction makes it fit.
    #[error(
        "a value of {bytes} bytes is larger than the whole memory budget of {limit} bytes; raise the budget"
    )]
    TooLarge {
        /// The bytes asked for.
        bytes: u64,
        /// The hard limit.
        limit: u64,
    },
}

/// A byte limit over resident values. Share it as `Arc<Budget>`; reservations hold a clone.
pub struct Budget {
    config: BudgetConfig,
    moderate_at: u64,
    high_at: u64,
    critical_at: u64,
    resident: AtomicU64,
    evictions: [AtomicU64; 4],
    evicted_bytes: [AtomicU64; 4],
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("limit", &self.config.limit)
            .field("resident", &self.resident())
            .field("pressure", &self.pressure())
            .finish()
    }
}

/// A snapshot of a budget's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BudgetStats {
    /// Resident bytes (values plus reservations).
    pub resident: u64,
    /// The hard limit.
    pub limit: u64,
    /// Entries evicted, by the pressure level at the time (indexed by [`Pressure::index`]).
    pub evictions: [u64; 4],
    /// Bytes evicted, by the pressure level at the time.
    pub evicted_bytes: [u64; 4],
}

fn percent_of(limit: u64, percent: u8) -> u64 {
    // u128 so that limits near u64::MAX do not overflow; the result is <= limit.
    ((u128::from(limit) * u128::from(percent)) / 100) as u64
}

impl Budget {
    /// A budget with the given settings.
    pub fn new(config: BudgetConfig) -> Result<Budget, BudgetError> {
        config.validate()?;
        Ok(Budget {
            moderate_at: percent_of(config.limit, config.moderate_percent),
            high_at: percent_of(config.limit, config.high_percent),
            critical_at: percent_of(config.limit, config.critical_percent),
            config,
            resident: AtomicU64::new(0),
            evictions: Default::default(),
            evicted_bytes: Default::default(),
        })
    }

    /// A budget of `limit` bytes with the default thresholds.
    pub fn with_limit(limit: u64) -> Result<Budget, BudgetError> {
        Budget::new(BudgetConfig::new(limit))
    }

    /// The settings this budget was built with.
    pub fn config(&self) -> BudgetConfig {
        self.config
    }

    /// The hard limit: resident bytes that [`Budget::try_reserve`] never passes.
    pub fn hard_limit(&self) -> u64 {
        self.config.limit
    }

    /// The soft limit: the moderate threshold. (A pool's background page-out runs between its
    /// [`Watermarks`](super::Watermarks) instead.)
    pub fn soft_limit(&self) -> u64 {
        self.moderate_at
    }

    /// Resident bytes now.
    pub fn resident(&self) -> u64 {
        self.resident.load(Ordering::Acquire)
    }

    /// The pressure level now.
    pub fn pressure(&self) -> Pressure {
        self.pressure_at(self.resident())
    }

    /// The pressure level if `resident` bytes were resident.
    pub fn pressure_at(&self, resident: u64) -> Pressure {
        if resident < self.moderate_at {
            Pressure::Normal
        } else if resident < self.high_at {
            Pressure::Moderate
        } else if resident < self.critical_at {
            Pressure::High
        } else {
            Pressure::Critical
        }
    }

    /// Bytes above the soft limit (zero under it).
    pub fn over_soft_limit(&self) -> u64 {
        self.resident().saturating_sub(self.moderate_at)
    }

    /// Bytes above the hard limit (zero under it). Positive only after unconditional additions.
    pub fn over_hard_limit(&self) -> u64 {
        self.resident().saturating_sub(self.config.limit)
    }

    /// Counts `bytes` as resident, unconditionally (a value created in memory, or a correction
    /// after decoding).
    pub fn add(&self, bytes: u64) {
        self.resident.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Stops counting `bytes` as resident (a value evicted or dropped).
    pub fn sub(&self, bytes: u64) {
        let update = self
            .resident
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                Some(cur.saturating_sub(bytes))
            });
        // fetch_update with a closure that always returns Some cannot fail.
        let before = match update {
            Ok(v) | Err(v) => v,
        };
        debug_assert!(
            before >= bytes,
            "released {bytes} bytes but only {before} were resident"
        );
    }

    /// Reserves `bytes` unconditionally, even past the hard limit; the reservation is returned
    /// when the [`Reservation`] is dropped unless it is [committed](Reservation::commit).
    pub fn reserve(self: &Arc<Self>, bytes: u64) -> Reservation {
        self.add(bytes);
        Reservation {
            budget: Arc::clone(self),
            bytes,
        }
    }

    /// Reserves `bytes` if that keeps the resident bytes within the hard limit.
    ///
    /// Fails with [`BudgetError::OverLimit`] (saying how much to free) when it would pass the
    /// limit, and with [`BudgetError::TooLarge`] when `bytes` alone exceeds the limit.
    pub fn try_reserve(self: &Arc<Self>, bytes: u64) -> Result<Reservation, BudgetError> {
        let limit = self.config.limit;
        if bytes > limit {
            return Err(BudgetError::TooLarge { bytes, limit });
        }
        let mut cur = self.resident();
        loop {
            // bytes <= limit, so limit - bytes does not underflow.
            if cur > limit - bytes {
                return Err(BudgetError::OverLimit {
                    bytes,
                    must_free: cur - (limit - bytes),
                });
            }
            match self.resident.compare_exchange_weak(
                cur,
                cur + bytes,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(Reservation {
                        budget: Arc::clone(self),
                        bytes,
                    });
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Records that `count` entries totalling `bytes` were evicted, under the current pressure.
    /// Call it before [`Budget::sub`] of those bytes, so that the level is the one that caused
    /// the eviction.
    pub fn record_evictions(&self, count: u64, bytes: u64) {
        self.record_evictions_at(self.pressure(), count, bytes);
    }

    /// Records that `count` entries totalling `bytes` were evicted by an eviction that started
    /// at pressure `level` (the runtime notes the level when it chooses the victims, and counts
    /// only those it actually dropped).
    pub fn record_evictions_at(&self, level: Pressure, count: u64, bytes: u64) {
        self.evictions[level.index()].fetch_add(count, Ordering::Relaxed);
        self.evicted_bytes[level.index()].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Entries evicted while the budget was at `level`.
    pub fn evictions(&self, level: Pressure) -> u64 {
        self.evictions[level.index()].load(Ordering::Relaxed)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> BudgetStats {
        BudgetStats {
            resident: self.resident(),
            limit: self.config.limit,
            evictions: std::array::from_fn(|i| self.evictions[i].load(Ordering::Relaxed)),
            evicted_bytes: std::array::from_fn(|i| self.evicted_bytes[i].load(Ordering::Relaxed)),
        }
    }
}

/// Bytes held against a [`Budget`] for a value not yet counted as resident (a page-in being read
/// and decoded). Dropping it (or [`Reservation::release`]) gives the bytes back.
#[must_use = "a reservation is released as soon as it is dropped"]
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: u64,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Reservation {
    /// The bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Corrects the reservation to `bytes` (the decoded value's real size), unconditionally.
    pub fn resize(&mut self, bytes: u64) {
        if bytes > self.bytes {
            self.budget.add(bytes - self.bytes);
        } else {
            self.budget.sub(self.bytes - bytes);
        }
        self.bytes = bytes;
    }

    /// Keeps the bytes counted as resident and returns them: the value is now in memory, and
    /// whoever owns it calls [`Budget::sub`] with them when it leaves.
    pub fn commit(mut self) -> u64 {
        std::mem::take(&mut self.bytes)
    }

    /// Gives the bytes back (the page-in failed or was abandoned). Same as dropping.
    pub fn release(self) {}
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.sub(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: u64) -> Arc<Budget> {
        Arc::new(Budget::with_limit(limit).unwrap())
    }

    #[test]
    fn pressure_follows_the_default_thresholds() {
        let b = budget(1000);
        assert_eq!(b.soft_limit(), 700);
        assert_eq!(b.hard_limit(), 1000);
        let cases = [
            (0, Pressure::Normal),
            (699, Pressure::Normal),
            (700, Pressure::Moderate),
            (849, Pressure::Moderate),
            (850, Pressure::High),
            (949, Pressure::High),
            (950, Pressure::Critical),
            (1000, Pressure::Critical),
            (5000, Pressure::Critical),
        ];
        for (resident, level) in cases {
            assert_eq!(b.pressure_at(resident), level, "at {resident}");
        }
        b.add(720);
        assert_eq!(b.pressure(), Pressure::Moderate);
        assert_eq!(b.over_soft_limit(), 20);
        b.sub(720);
        assert_eq!(b.pressure(), Pressure::Normal);
        assert_eq!(b.over_soft_limit(), 0);
    }

    #[test]
    fn thresholds_are_configurable_and_checked() {
        let b = Budget::new(BudgetConfig::new(200).with_thresholds(50, 60, 90)).unwrap();
        assert_eq!(b.soft_limit(), 100);
        assert_eq!(b.pressure_at(119), Pressure::Moderate);
        assert_eq!(b.pressure_at(120), Pressure::High);
        assert_eq!(b.pressure_at(180), Pressure::Critical);
        for (m, h, c) in [(0, 50, 90), (60, 50, 90), (50, 95, 90), (50, 60, 101)] {
            let err = Budget::new(BudgetConfig::new(200).with_thresholds(m, h, c)).unwrap_err();
            assert!(matches!(err, BudgetError::InvalidConfig(_)));
        }
        assert!(Budget::with_limit(0).is_err());
    }

    #[test]
    fn try_reserve_refuses_past_the_hard_limit_and_says_how_much_to_free() {
        let b = budget(1000);
        let r = b.try_reserve(600).unwrap();
        assert_eq!(b.resident(), 600);
        let err = b.try_reserve(500).unwrap_err();
        assert_eq!(
            err,
            BudgetError::OverLimit {
                bytes: 500,
                must_free: 100
            }
        );
        assert_eq!(b.resident(), 600, "a refused reservation holds nothing");
        // Exactly up to the limit is fine.
        let r2 = b.try_reserve(400).unwrap();
        assert_eq!(b.resident(), 1000);
        drop(r2);
        r.release();
        assert_eq!(b.resident(), 0);
    }

    #[test]
    fn a_value_larger_than_the_budget_is_too_large() {
        let b = budget(1000);
        assert_eq!(
            b.try_reserve(1001).unwrap_err(),
            BudgetError::TooLarge {
                bytes: 1001,
                limit: 1000
            }
        );
        // Even with the budget empty: evicting cannot help, so it is not OverLimit.
        assert_eq!(b.resident(), 0);
        assert!(matches!(
            b.try_reserve(u64::MAX),
            Err(BudgetError::TooLarge { .. })
        ));
    }

    #[test]
    fn reservations_resize_commit_and_release() {
        let b = budget(1000);
        let mut r = b.try_reserve(100).unwrap();
        r.resize(150);
        assert_eq!(b.resident(), 150);
        r.resize(80);
        assert_eq!(b.resident(), 80);
        let kept = r.commit();
        assert_eq!(kept, 80);
        assert_eq!(b.resident(), 80, "committed bytes stay resident");
        b.sub(kept);
        let forced = b.reserve(2000);
        assert_eq!(b.over_hard_limit(), 1000);
        drop(forced);
        assert_eq!(b.resident(), 0);
    }

    #[test]
    fn evictions_are_counted_by_pressure_level() {
        let b = budget(100);
        b.record_evictions(1, 10);
        b.add(96);
        b.record_evictions(2, 30);
        b.sub(96);
        let s = b.stats();
        assert_eq!(s.evictions, [1, 0, 0, 2]);
        assert_eq!(s.evicted_bytes, [10, 0, 0, 30]);
        assert_eq!(b.evictions(Pressure::Critical), 2);
    }

    #[test]
    fn concurrent_try_reserve_never_passes_the_hard_limit() {
        let b = budget(10_000);
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..20_000u64 {
                        if let Ok(r) = b.try_reserve(1 + (i + t) % 500) {
                            held.push(r);
                        }
                        assert!(b.resident() <= b.hard_limit());
                        if held.len() > 8 {
                            drop(held.swap_remove((i as usize) % held.len()));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(b.resident(), 0);
    }

    #[test]
    fn concurrent_reserve_and_release_keep_the_count_exact() {
        let b = budget(1 << 20);
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    let mut kept = 0u64;
                    for i in 0..20_000u64 {
                        let n = 1 + (i * 7 + t) % 64;
                        match b.try_reserve(n) {
                            Ok(r) if i % 3 == 0 => kept += r.commit(),
                            Ok(r) => drop(r),
                            Err(BudgetError::OverLimit { .. }) => {}
                            Err(e) => panic!("{e}"),
                        }
                        let f = b.reserve(n);
                        assert!(f.bytes() == n);
                        drop(f);
                        b.add(3);
                        b.sub(3);
                    }
                    kept
                })
            })
            .collect();
        let kept: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(b.resident(), kept);
        assert!(b.resident() <= b.hard_limit());
    }
}
