//! Leading a flush: a thread blocked in a wait for `Written` or `Durable` does the freeze, the
//! store and the sync itself when nobody else is flushing, instead of handing the work to the
//! writer and flush threads and sleeping until they are done. On a small machine each such
//! hand-off costs a thread wake-up, which is slower than the work; leading is what makes
//! `put` + `wait(Durable)` from many threads a group commit at the speed of the syncs.
//!
//! The leader holds the [`FlushRole`] for the whole round: it stores the batches already
//! frozen (oldest first), freezes the current delta once (taking every write applied so far,
//! its own and other producers'), stores it, and, for `Durable`, syncs once for all of them.
//! Threads that find the role taken sleep until it is released, then look at the marks again:
//! most find their write covered; the first of the rest leads the next round.
//!
//! Invariants: the role is held by one thread at a time (the leader or the flush thread), so
//! batches are stored in epoch order and syncs do not overlap; a leader freezes only when no
//! batch is in flight, so it never goes past [`Config::max_frozen`](crate::Config::max_frozen);
//! a leader that fails (an error or a panic in the flusher) fails the pipeline like the flush
//! thread would, and its waiters get the error.

use crate::delta::Freeze;
use crate::durability::Durability;
use crate::epoch::Epoch;
use crate::flush::{FlushRole, store, sync};
use crate::flusher::Flusher;
use crate::role::FreezeOutcome;
use crate::shared::Shared;
use crate::watermark::Lead;

/// Tries to bring `epoch` (applied) to `level` on this thread.
pub(crate) fn lead<D, F>(
    shared: &Shared<D, F::Snapshot, F::Error>,
    role: &FlushRole<F>,
    level: Durability,
    epoch: Epoch,
) -> Lead
where
    D: Freeze,
    F: Flusher<Batch = D::Batch>,
{
    let Some(mut slot) = role.flusher.try_lock() else {
        return Lead::Busy;
    };
    if slot.is_none() {
        return Lead::Unable;
    }
    let lead = lead_round(shared, &mut slot, level, epoch);
    drop(slot);
    // Whoever found the role taken while we held it sleeps until this.
    shared.marks.role_released();
    // A round for `Written` may have written what a `Durable` waiter that does not lead (an
    // async one) needs synced: the flush thread, which found nothing to sync before this
    // round's writes, must look again.
    if shared.marks.sync_wanted() {
        shared.poke_flusher();
    }
    lead
}

/// One round as leader.
fn lead_round<D, F>(
    shared: &Shared<D, F::Snapshot, F::Error>,
    slot: &mut Option<F>,
    level: Durability,
    epoch: Epoch,
) -> Lead
where
    D: Freeze,
    F: Flusher<Batch = D::Batch>,
{
    let marks = &shared.marks;
    let mut froze = false;
    loop {
        if marks.ended().is_some() || marks.get(level) >= epoch {
            return Lead::Led;
        }
        let next = shared.jobs.lock().queue.pop_front();
        if let Some(job) = next {
            if !store(shared, slot, job) {
                return Lead::Led;
            }
            continue;
        }
        // Nothing frozen is waiting. Freeze what is applied: once, for every writer whose
        // write is in the delta now (group commit), and again only while our own write is not
        // written (it cannot be, unless it was applied after the first freeze).
        if !froze || marks.get(Durability::Written) < epoch {
            froze = true;
            match shared.freeze(false) {
                FreezeOutcome::Frozen(_) => continue,
                FreezeOutcome::Stopped => return Lead::Led,
                // The writer thread froze first: its batch is in the queue.
                FreezeOutcome::NoRoom | FreezeOutcome::Empty(_) => {}
            }
        }
        if marks.get(Durability::Written) < epoch {
            if !shared.jobs.lock().queue.is_empty() {
                continue;
            }
            // Not in the delta, not frozen, not written: not ours to do.
            return Lead::Unable;
        }
        // Written, and `Durable` is wanted.
        sync(shared, slot);
        return Lead::Led;
    }
}
