//! Model checks, with shuttle, of the real write pipeline: the crate built with
//! `--cfg spillway_shuttle` takes every lock, condition variable, atomic, thread, timed wait and
//! futex word from `src/sync.rs`, which then hands it shuttle's, so the code below runs the
//! pipeline itself (its writer and flush threads, producers applying their own writes, waiters
//! leading a flush round or sleeping on the marks' words) under shuttle's scheduler:
//!
//! ```text
//! CARGO_TARGET_DIR=target/shuttle RUSTFLAGS="--cfg spillway_shuttle" \
//!   cargo test -p spillway-write --test write_shuttle
//! ```
//!
//! (add `--cfg spillway_park_fallback` to check the path where blocked waiters park instead of
//! sleeping on words). Only this test runs under that cfg: the crate's other tests use real
//! threads, which shuttle's types refuse outside a model check.
//!
//! What every test asserts, in every schedule explored:
//! - no deadlock: a lost wake-up leaves threads blocked for good, which shuttle reports;
//! - the marks' order, `applied >= written >= durable`, and that no mark is ahead of storage
//!   (`written` and `durable` at most what the flusher stored and synced);
//! - every write acknowledged at `Written` is in the store, every write acknowledged at
//!   `Durable` is in the store and synced, when the acknowledgement returns;
//! - the flusher gets the batches in epoch order, each holding exactly its epochs;
//! - a view shows each applied write once (its snapshot, frozen layers and current delta hold
//!   adjacent epoch ranges from 1 on), and every write applied before it was taken;
//! - after shutdown, each epoch a handle reports applied is either stored or handed back in
//!   `Shutdown::unflushed`, never both, and nothing else is: no write lost or made up.
//!
//! Time: shuttle has none. The pipeline's clock reads a virtual one, and a timed wait (the
//! writer's interval timer, a retry's backoff, `wait_timeout`, `write_timeout`) may time out
//! at any scheduling point, which moves the clock to its deadline (see `src/sync.rs`).
//!
//! Each test runs `SPILLWAY_SHUTTLE_ITERS` schedules (default 300: the whole file runs in
//! seconds) from shuttle's random scheduler, then as many from its PCT scheduler (which finds
//! bugs that need a few events in a given order, such as a waiter reading its word after
//! dropping the mark lock, that random schedules miss); `SPILLWAY_SHUTTLE_SEED=s` makes both
//! reproducible (a failure prints the schedule to replay). Each test also asserts that both
//! sides of its main choice came up over its schedules (say, batches stored by the flush thread
//! and by a waiter leading), from 100 schedules on.

/// In the normal build the model checks do not compile (they need the crate built for
/// shuttle); this holds CI to running them.
#[cfg(not(spillway_shuttle))]
#[test]
fn ci_runs_the_model_checks() {
    let ci = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/run");
    let ci = std::fs::read_to_string(&ci).expect("read .ci/run");
    assert!(
        ci.lines().any(|l| l.contains("--cfg spillway_shuttle"))
            && ci.lines().any(|l| l.contains("--test write_shuttle")),
        ".ci/run does not run the shuttle model checks of the write pipeline; they run with: \
         CARGO_TARGET_DIR=target/shuttle RUSTFLAGS=\"--cfg spillway_shuttle\" \
         cargo test -p spillway-write --test write_shuttle"
    );
}

#[cfg(spillway_shuttle)]
mod model {

    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use shuttle::rand::Rng as _;
    use shuttle::scheduler::{PctScheduler, RandomScheduler, Scheduler};
    use shuttle::sync::Mutex;
    use shuttle::thread;
    use spillway_write::{
        Config, Coordinator, Delta, Durability, Epoch, EpochRange, Error, Failure, Flusher, Freeze,
        Frozen, Layer, RetryPolicy, WriteChannel, WriteHandle,
    };

    /// The delta: the epochs applied since the last freeze, in order.
    #[derive(Default)]
    struct Log(Vec<u64>);

    impl Delta for Log {
        type Write = ();
        type Applied = ();

        fn apply(&mut self, epoch: Epoch, (): ()) {
            self.0.push(epoch.get());
        }

        fn size_bytes(&self) -> usize {
            self.0.len()
        }
    }

    impl Freeze for Log {
        type Batch = Vec<u64>;
        type FrozenView = Vec<u64>;

        fn freeze(self) -> Frozen<Log> {
            Frozen {
                batch: self.0.clone(),
                view: self.0,
                next: Log::default(),
            }
        }
    }

    /// How the store fails.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Fault {
        None,
        /// Write call number `n` (from 1) fails; `then_heal`: the retry succeeds, else every call
        /// from it on fails.
        Write {
            n: usize,
            then_heal: bool,
        },
        /// Sync call number `n` fails.
        Sync {
            n: usize,
        },
    }

    /// What the store holds.
    #[derive(Debug, Default)]
    struct Disk {
        /// Epochs stored, in order (a prefix `1..=n`, asserted at each write).
        written: Vec<u64>,
        /// How many of `written` are synced.
        synced: usize,
        write_calls: usize,
        sync_calls: usize,
    }

    /// Figures summed over the schedules of one test, to show that both sides of each choice were
    /// explored.
    #[derive(Debug, Default)]
    struct Tally {
        stored_by_flush_thread: AtomicUsize,
        stored_by_waiter: AtomicUsize,
        timed_out: AtomicUsize,
        reached: AtomicUsize,
        closed: AtomicUsize,
        refused: AtomicUsize,
        failed: AtomicUsize,
    }

    /// The flusher: stores into a [`Disk`] shared with the test.
    struct Store {
        disk: Arc<Mutex<Disk>>,
        fault: Fault,
        tally: Arc<Tally>,
    }

    impl Flusher for Store {
        type Batch = Vec<u64>;
        /// The epochs stored.
        type Snapshot = Vec<u64>;
        type Error = std::io::Error;

        fn write(&mut self, batch: &Vec<u64>, epochs: EpochRange) -> std::io::Result<Vec<u64>> {
            let mut d = self.disk.lock().expect("disk lock");
            d.write_calls += 1;
            let failing = match self.fault {
                Fault::Write { n, then_heal } => {
                    d.write_calls == n || (!then_heal && d.write_calls > n)
                }
                _ => false,
            };
            if failing {
                return Err(std::io::Error::other(format!(
                    "injected failure of write call {}",
                    d.write_calls
                )));
            }
            let expected: Vec<u64> = (epochs.first().get()..=epochs.last().get()).collect();
            assert_eq!(batch, &expected, "a batch holds exactly its epochs");
            assert_eq!(
                epochs.first().get(),
                d.written.len() as u64 + 1,
                "batches reach storage in epoch order, without gaps: {epochs} after {:?}",
                d.written
            );
            d.written.extend_from_slice(batch);
            let by_flush_thread = thread::current()
                .name()
                .is_some_and(|n| n.ends_with("-flush"));
            let count = if by_flush_thread {
                &self.tally.stored_by_flush_thread
            } else {
                &self.tally.stored_by_waiter
            };
            count.fetch_add(1, Ordering::Relaxed);
            Ok(d.written.clone())
        }

        fn sync(&mut self) -> std::io::Result<()> {
            let mut d = self.disk.lock().expect("disk lock");
            d.sync_calls += 1;
            if self.fault == (Fault::Sync { n: d.sync_calls }) {
                return Err(std::io::Error::other(format!(
                    "injected failure of sync call {}",
                    d.sync_calls
                )));
            }
            d.synced = d.written.len();
            Ok(())
        }
    }

    type Pipeline = Coordinator<Log, Store>;
    type Handle = WriteHandle<(), std::io::Error>;
    type Channel = WriteChannel<(), (), std::io::Error>;

    /// One model run: a pipeline over a fresh disk.
    struct Run {
        pipeline: Arc<Pipeline>,
        disk: Arc<Mutex<Disk>>,
    }

    impl Run {
        fn start(config: Config, fault: Fault, tally: &Arc<Tally>) -> Run {
            let disk = Arc::new(Mutex::new(Disk::default()));
            let store = Store {
                disk: disk.clone(),
                fault,
                tally: tally.clone(),
            };
            let pipeline =
                Coordinator::start(Log::default(), store, Vec::new(), config).expect("start");
            Run {
                pipeline: Arc::new(pipeline),
                disk,
            }
        }

        /// Asserts the marks' order, and that no mark is ahead of the store.
        fn check_marks(&self) {
            // Marks only rise, so reading them lowest first gives an ordered triple.
            let durable = self.pipeline.watermark(Durability::Durable).get();
            let written = self.pipeline.watermark(Durability::Written).get();
            let applied = self.pipeline.watermark(Durability::Applied).get();
            assert!(
                durable <= written && written <= applied,
                "marks out of order: applied {applied}, written {written}, durable {durable}"
            );
            let d = self.disk.lock().expect("disk lock");
            assert!(
                written <= d.written.len() as u64 && durable <= d.synced as u64,
                "a mark ahead of storage: written {written}, durable {durable}, stored {}, \
                 synced {}",
                d.written.len(),
                d.synced
            );
        }

        /// Asserts that a view taken now shows every applied write once, and every write
        /// applied before it: its storage snapshot, frozen layers and current delta hold
        /// adjacent epoch ranges from 1 on, through at least the `Applied` mark read before it.
        fn check_view(&self) {
            let applied = self.pipeline.watermark(Durability::Applied).get();
            let view = self.pipeline.view();
            let read = view.read();
            let layers: Vec<&[u64]> = read
                .layers()
                .map(|layer| match layer {
                    Layer::Live(delta) => delta.0.as_slice(),
                    Layer::Frozen(epochs) => epochs.as_slice(),
                })
                .collect();
            // Layers come newest first.
            let mut epochs = read.snapshot().clone();
            epochs.extend(layers.into_iter().rev().flatten());
            let expected: Vec<u64> = (1..=epochs.len() as u64).collect();
            assert_eq!(
                epochs, expected,
                "a view shows a write twice, or misses one"
            );
            assert!(
                epochs.len() as u64 >= applied,
                "a view taken once {applied} was applied shows only {epochs:?}"
            );
        }

        /// Runs `producers` threads, each with its own channel of `capacity`, each sending
        /// `writes` writes through `step` (which sends one, waits for it at the level given and
        /// checks; `None`: no write was taken), the `i`th of producer `p` for `Durable` when
        /// `p + i` is even, else for `Written`. Returns every handle.
        fn produce(
            &self,
            producers: usize,
            writes: usize,
            capacity: usize,
            step: impl Fn(&Run, &Channel, Durability) -> Option<Handle> + Send + Sync + 'static,
        ) -> Vec<Handle> {
            let step = Arc::new(step);
            let threads: Vec<_> = (0..producers)
                .map(|p| {
                    let run = Run {
                        pipeline: self.pipeline.clone(),
                        disk: self.disk.clone(),
                    };
                    let step = step.clone();
                    thread::spawn(move || {
                        let ch = run.pipeline.channel(format!("p{p}"), capacity);
                        (0..writes)
                            .filter_map(|i| {
                                let level = if (p + i) % 2 == 0 {
                                    Durability::Durable
                                } else {
                                    Durability::Written
                                };
                                let h = step(&run, &ch, level);
                                run.check_marks();
                                run.check_view();
                                h
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            threads
                .into_iter()
                .flat_map(|t| t.join().expect("producer"))
                .collect()
        }

        /// Shuts the pipeline down once every other owner is gone.
        fn shutdown(self) -> (spillway_write::Shutdown<Store>, Arc<Mutex<Disk>>) {
            let pipeline = Arc::try_unwrap(self.pipeline)
                .unwrap_or_else(|_| panic!("the pipeline is still shared at shutdown"));
            (pipeline.shutdown(), self.disk)
        }
    }

    /// Asserts that an acknowledgement of `epoch` at `level` is true of the store now.
    fn check_stored(disk: &Mutex<Disk>, level: Durability, epoch: Epoch) {
        let d = disk.lock().expect("disk lock");
        let e = epoch.get();
        match level {
            Durability::Applied => {}
            Durability::Written => assert!(
                d.written.len() as u64 >= e,
                "epoch {e} acknowledged Written, but the store holds {:?}",
                d.written
            ),
            Durability::Durable => assert!(
                d.synced as u64 >= e,
                "epoch {e} acknowledged Durable, but only {} of {:?} are synced",
                d.synced,
                d.written
            ),
        }
    }

    /// Waits for `h` at `level`, as shuttle's random source picks: a blocking wait (which leads
    /// a flush round when the role is free and sleeps on the marks otherwise), an async one
    /// (which only the background threads serve), or, given the pipeline, an explicit flush
    /// (which must cover the write). The epoch the level was reached for.
    fn wait(
        run: Option<&Run>,
        h: &Handle,
        level: Durability,
    ) -> Result<Epoch, Error<std::io::Error>> {
        let ways = if run.is_some() { 3 } else { 2 };
        match (shuttle::rand::thread_rng().gen_range(0..ways), run) {
            (0, _) => h.wait(level),
            (1, _) => shuttle::future::block_on(h.wait_async(level)),
            (_, Some(run)) => {
                let covered = run.pipeline.flush(level == Durability::Durable)?;
                let epoch = h
                    .epoch()
                    .expect("a flush applies the writes queued before it");
                assert!(epoch <= covered, "a flush up to {covered} missed {epoch}");
                Ok(covered)
            }
            (_, None) => unreachable!("two ways without the pipeline"),
        }
    }

    /// Asserts that a failed wait carries the store's own error.
    fn check_failure(err: &Error<std::io::Error>) {
        match err {
            Error::WriteFailed {
                cause: Failure::Flusher(e),
                ..
            } => assert!(e.to_string().starts_with("injected failure"), "{e}"),
            other => panic!("a wait failed with {other}, not the store's error"),
        }
    }

    /// After shutdown: the epochs the handles report applied are exactly those stored plus those
    /// handed back, and those are disjoint and in order.
    fn check_accounted(
        out: &spillway_write::Shutdown<Store>,
        disk: &Mutex<Disk>,
        handles: &[Handle],
    ) {
        let d = disk.lock().expect("disk lock");
        let applied: BTreeSet<u64> = handles
            .iter()
            .filter_map(|h| h.epoch())
            .map(Epoch::get)
            .collect();
        let mut accounted: Vec<u64> = d.written.clone();
        for batch in &out.unflushed {
            accounted.extend(batch.epochs.first().get()..=batch.epochs.last().get());
            assert_eq!(batch.batch.len() as u64, batch.epochs.len());
        }
        let expected: Vec<u64> = (1..=applied.len() as u64).collect();
        assert_eq!(
            accounted, expected,
            "stored {:?} and handed back {:?}: not each applied epoch once, in order",
            d.written, out.unflushed
        );
        assert_eq!(applied.into_iter().collect::<Vec<_>>(), expected);
    }

    fn iters() -> usize {
        std::env::var("SPILLWAY_SHUTTLE_ITERS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300)
    }

    /// Runs `test` under shuttle: random schedules (seeded by `SPILLWAY_SHUTTLE_SEED` if set), or
    /// PCT with bug depth `pct_depth`.
    fn check(test: impl Fn() + Send + Sync + 'static, pct_depth: Option<usize>) {
        let mut config = shuttle::Config::new();
        // The pipeline's virtual clock is a per-run static, dropped at the end of each run.
        config.silence_warnings = true;
        let seed = std::env::var("SPILLWAY_SHUTTLE_SEED")
            .ok()
            .and_then(|s| s.parse().ok());
        let scheduler: Box<dyn Scheduler + Send> = match (pct_depth, seed) {
            (Some(depth), Some(seed)) => {
                Box::new(PctScheduler::new_from_seed(seed, depth, iters()))
            }
            (Some(depth), None) => Box::new(PctScheduler::new(depth, iters())),
            (None, Some(seed)) => Box::new(RandomScheduler::new_from_seed(seed, iters())),
            (None, None) => Box::new(RandomScheduler::new(iters())),
        };
        shuttle::Runner::new(scheduler, config).run(test);
    }

    /// Picks one count out of a [`Tally`].
    type Count = fn(&Tally) -> &AtomicUsize;

    /// The bug depth of the PCT runs: the number of ordering constraints a bug needs.
    const PCT_DEPTH: usize = 3;

    /// Model-checks `test` with random schedules, then with PCT (see [`check`]), then asserts
    /// that both counts of `sides` were seen over the schedules, when enough ran to make that
    /// certain in practice.
    fn explore(test: fn(&Arc<Tally>), sides: [(&str, Count); 2]) {
        let tally = Arc::new(Tally::default());
        let t = tally.clone();
        let t2 = t.clone();
        check(move || test(&t), None);
        check(move || test(&t2), Some(PCT_DEPTH));
        let [(a, x), (b, y)] = sides;
        let (x, y) = (
            x(&tally).load(Ordering::Relaxed),
            y(&tally).load(Ordering::Relaxed),
        );
        eprintln!(
            "over 2 x {} schedules: {a} {x}, {b} {y} ({tally:?})",
            iters()
        );
        if iters() >= 100 {
            assert!(
                x > 0 && y > 0,
                "{a}: {x}, {b}: {y}: one side never explored"
            );
        }
    }

    fn config(name: &str) -> Config {
        Config {
            name: name.into(),
            // Two writes fill a delta: the writer thread's size trigger, and freezes by
            // producers applying in place, both come up.
            freeze_bytes: 2,
            freeze_interval: None,
            max_frozen: 1,
            retry: RetryPolicy::never(),
            ..Config::default()
        }
    }

    /// Producers apply writes and wait for `Written` or `Durable`, next to the writer and flush
    /// threads: a blocking wait, which leads a flush round when the role is free and sleeps on
    /// the marks otherwise; an async wait, which only the background threads serve; or an
    /// explicit flush, which covers the write.
    fn group_commit(producers: usize, writes: usize, tally: &Arc<Tally>) {
        let run = Run::start(config("gc"), Fault::None, tally);
        let handles = run.produce(producers, writes, 2, |run, ch, level| {
            let h = ch.write(()).expect("a running pipeline takes writes");
            let epoch = wait(Some(run), &h, level).expect("no failure");
            check_stored(&run.disk, level, epoch);
            Some(h)
        });
        run.check_marks();
        let (out, disk) = run.shutdown();
        out.result.as_ref().expect("no failure");
        assert!(out.unflushed.is_empty());
        check_accounted(&out, &disk, &handles);
        let d = disk.lock().expect("disk lock");
        assert_eq!(d.synced, d.written.len(), "shutdown syncs");
    }

    #[test]
    fn producers_and_waiters_store_every_acknowledged_write() {
        explore(
            |t| group_commit(3, 2, t),
            [
                ("batches stored by the flush thread", |t| {
                    &t.stored_by_flush_thread
                }),
                ("by a waiter leading", |t| &t.stored_by_waiter),
            ],
        );
    }

    #[test]
    fn one_write_each_from_more_producers() {
        explore(
            |t| group_commit(4, 1, t),
            [
                ("batches stored by the flush thread", |t| {
                    &t.stored_by_flush_thread
                }),
                ("by a waiter leading", |t| &t.stored_by_waiter),
            ],
        );
    }

    /// The store fails once (the retry, after a backoff on the virtual clock, succeeds), or for
    /// good, or at a sync: waiters get the store's error or their write stored, never an error for
    /// a write that is then stored, and shutdown hands back what was not stored.
    fn failing_store(tally: &Arc<Tally>) {
        let mut rng = shuttle::rand::thread_rng();
        let fault = match rng.gen_range(0..3) {
            0 => Fault::Write {
                n: rng.gen_range(1..=3),
                then_heal: true,
            },
            1 => Fault::Write {
                n: rng.gen_range(1..=3),
                then_heal: false,
            },
            _ => Fault::Sync {
                n: rng.gen_range(1..=2),
            },
        };
        let config = Config {
            retry: RetryPolicy {
                max_retries: 1,
                backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(5),
            },
            ..config("fail")
        };
        let run = Run::start(config, fault, tally);
        let handles = run.produce(2, 2, 2, |run, ch, level| {
            let Ok(h) = ch.write(()) else {
                // Refused once the pipeline failed.
                assert!(
                    run.pipeline.error().is_some(),
                    "a write refused with no failure"
                );
                return None;
            };
            match wait(Some(run), &h, level) {
                Ok(epoch) => check_stored(&run.disk, level, epoch),
                Err(e) => check_failure(&e),
            }
            Some(h)
        });
        run.check_marks();
        let (out, disk) = run.shutdown();
        match (fault, &out.result) {
            (
                Fault::Write {
                    then_heal: true, ..
                },
                Ok(()),
            ) => {
                assert!(out.unflushed.is_empty());
                let d = disk.lock().expect("disk lock");
                assert_eq!(d.synced, d.written.len(), "shutdown syncs");
            }
            (
                Fault::Write {
                    then_heal: true, ..
                },
                Err(e),
            ) => {
                panic!("a failure healed by its retry failed the pipeline: {e}")
            }
            // The faulty call may never come (too few writes, or one batch for all).
            (_, Ok(())) => assert!(out.unflushed.is_empty()),
            (_, Err(e)) => {
                check_failure(e);
                tally.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        check_accounted(&out, &disk, &handles);
    }

    #[test]
    fn a_failing_store_fails_its_waiters_and_hands_back_the_rest() {
        explore(
            failing_store,
            [
                ("runs failed", |t| &t.failed),
                ("batches stored by a waiter", |t| &t.stored_by_waiter),
            ],
        );
    }

    /// Timed waits next to the interval timer: each either sees its write at its level or times
    /// out, and a timeout harms nobody.
    fn timed_waits(tally: &Arc<Tally>) {
        let config = Config {
            freeze_bytes: 64,
            freeze_interval: Some(Duration::from_millis(2)),
            ..config("timed")
        };
        let run = Run::start(config, Fault::None, tally);
        let tally = tally.clone();
        let handles = run.produce(2, 2, 1, move |run, ch, level| {
            let h = ch.write_timeout((), Duration::from_millis(1)).ok()?;
            match h.wait_timeout(level, Duration::from_millis(1)) {
                Ok(Some(epoch)) => {
                    check_stored(&run.disk, level, epoch);
                    tally.reached.fetch_add(1, Ordering::Relaxed);
                }
                Ok(None) => {
                    tally.timed_out.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => panic!("a timed wait failed with no failure: {e}"),
            }
            Some(h)
        });
        let (out, disk) = run.shutdown();
        out.result.as_ref().expect("no failure");
        check_accounted(&out, &disk, &handles);
    }

    #[test]
    fn timed_waits_time_out_or_see_their_write_stored() {
        explore(
            timed_waits,
            [
                ("timed waits that timed out", |t| &t.timed_out),
                ("that saw their write", |t| &t.reached),
            ],
        );
    }

    /// Shutdown while waiters are blocked (one for certain: its write waits in a paused
    /// channel) or about to be: every wait ends, with its write stored (and synced, if shutdown
    /// syncs), or the write is refused.
    fn shutdown_with_waiters(tally: &Arc<Tally>) {
        let sync_on_shutdown = shuttle::rand::thread_rng().r#gen::<bool>();
        let config = Config {
            sync_on_shutdown,
            ..config("stop")
        };
        let run = Run::start(config, Fault::None, tally);
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        // A write queued in a paused channel: its waiter is blocked until shutdown applies it.
        let paused = run.pipeline.channel("paused", 2);
        paused.pause();
        let queued = paused.write(()).expect("a running pipeline takes writes");
        let mut queued = Some(queued);
        let threads: Vec<_> = (0..3)
            .map(|p| {
                let ch = run.pipeline.channel(format!("p{p}"), 2);
                let (disk, outcomes, tally) = (run.disk.clone(), outcomes.clone(), tally.clone());
                let queued = if p == 2 { queued.take() } else { None };
                thread::spawn(move || {
                    let level = if p == 1 {
                        Durability::Written
                    } else {
                        Durability::Durable
                    };
                    let h = match queued {
                        Some(h) => h,
                        None => {
                            let Ok(h) = ch.write(()) else {
                                tally.refused.fetch_add(1, Ordering::Relaxed);
                                return None;
                            };
                            h
                        }
                    };
                    let outcome = wait(None, &h, level);
                    match &outcome {
                        Ok(epoch) => check_stored(&disk, level, *epoch),
                        Err(Error::Closed { .. }) => {}
                        Err(e) => panic!("a wait ended at shutdown with {e}"),
                    }
                    outcomes
                        .lock()
                        .expect("outcomes")
                        .push((level, h.epoch(), outcome.is_ok()));
                    Some(h)
                })
            })
            .collect();
        let (out, disk) = run.shutdown();
        out.result.as_ref().expect("no failure");
        assert!(out.unflushed.is_empty());
        if sync_on_shutdown {
            let d = disk.lock().expect("disk lock");
            assert_eq!(
                d.synced,
                d.written.len(),
                "shutdown said Ok without syncing all it stored"
            );
        }
        let handles: Vec<Handle> = threads
            .into_iter()
            .filter_map(|t| t.join().expect("waiter"))
            .collect();
        for &(level, epoch, reached) in outcomes.lock().expect("outcomes").iter() {
            // Shutdown stores every applied write; it syncs them if so configured.
            let may_miss = level == Durability::Durable && !sync_on_shutdown;
            let d = disk.lock().expect("disk lock");
            assert!(
                reached || may_miss,
                "the wait of epoch {epoch:?} for {level:?} ended with the pipeline closed, though \
                 shutdown stores and syncs every applied write; stored {:?}, {} synced, shutdown \
                 said {:?}",
                d.written,
                d.synced,
                out.result
            );
            drop(d);
            let count = if reached {
                &tally.reached
            } else {
                &tally.closed
            };
            count.fetch_add(1, Ordering::Relaxed);
        }
        check_accounted(&out, &disk, &handles);
    }

    #[test]
    fn shutdown_ends_every_blocked_wait() {
        explore(
            shutdown_with_waiters,
            [
                ("waits that reached their level", |t| &t.reached),
                ("writes refused by the stopped pipeline", |t| &t.refused),
            ],
        );
    }
}
