//! Peer contender: `foyer` 0.22, a hybrid (memory + disk) cache: the memory part holds `budget`
//! bytes of values (S3-FIFO, weighted by value length), the disk part is its block engine on a
//! file device in the bench directory, written on eviction (its default policy). As `foyer` it
//! runs with the block engine's defaults; as `foyer-tuned`, with its write buffers sized to the
//! data so that a bulk load drops as little as it allows.
//!
//! foyer is a cache: it may drop entries under load. A read that finds nothing is counted as
//! `lost`, not as a failure. Reads try the memory part synchronously first, then `get` (which
//! reads the disk) on a Tokio runtime.
//!
//! Run by the harness as `peer-foyer --job <json>`; prints one JSON line of results.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder,
    S3FifoConfig, Source,
};
use peer_common::{
    CachePeer, Job, Kind, KvPeer, Measurement, Read, Res, emit, job_from_args, key128, run_kv,
    run_mixed, run_zipf, tagged_index,
};

struct Foyer {
    rt: tokio::runtime::Runtime,
    cache: HybridCache<u128, Vec<u8>>,
    keys: Vec<u128>,
    lost: AtomicU64,
}

impl Foyer {
    fn open(job: &Job) -> Res<Foyer> {
        std::fs::create_dir_all(&job.dir)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        // Room on disk for the whole data set twice over (W5 grows it), plus a margin. The block
        // engine aligns every entry (with its header) to 4 KiB on disk, so a 1 KiB value takes
        // 4 KiB: the room is counted in aligned entries.
        let data = job.spec.count * job.spec.size as u64;
        let on_disk = job.spec.count * (job.spec.size as u64 + 128).next_multiple_of(4096);
        let capacity = (2 * on_disk + (256 << 20)) as usize;
        let budget = job.spec.budget.max(1 << 20) as usize;
        let dir = job.dir.clone();
        // `foyer-tuned`: foyer's documentation says the block engine ignores entries once its
        // flush buffers (`buffer_pool_size`) or its submit queue (`submit_queue_size_threshold`,
        // twice the buffers by default) are full; both are sized to the data (16 MiB to 1 GiB),
        // with two flushers, so that a bulk load is dropped as little as foyer allows.
        let tuned = job.contender == "foyer-tuned";
        let buffers = (data as usize).clamp(16 << 20, 1 << 30);
        let cache = rt.block_on(async move {
            let device = FsDeviceBuilder::new(&dir).with_capacity(capacity).build()?;
            let mut engine = BlockEngineConfig::new(device);
            if tuned {
                engine = engine
                    .with_flushers(2)
                    .with_buffer_pool_size(buffers)
                    .with_submit_queue_size_threshold(2 * buffers);
            }
            HybridCacheBuilder::new()
                .memory(budget)
                .with_eviction_config(S3FifoConfig::default())
                .with_weighter(|_k: &u128, v: &Vec<u8>| v.len())
                .storage()
                .with_engine_config(engine)
                .build()
                .await
        })?;
        Ok(Foyer {
            rt,
            cache,
            keys: Vec::new(),
            lost: AtomicU64::new(0),
        })
    }

    /// The value under `key` and whether it came from memory; `None` if the cache lost it.
    fn fetch(&self, key: u128) -> Res<Option<(Vec<u8>, bool)>> {
        if let Some(e) = self.cache.memory().get(&key) {
            return Ok(Some((e.value().clone(), true)));
        }
        let e = self.rt.block_on(self.cache.get(&key))?;
        Ok(e.map(|e| (e.value().clone(), e.source() != Source::Disk)))
    }

    fn wait(&self) {
        self.rt.block_on(self.cache.storage().wait());
    }
}

impl KvPeer for Foyer {
    fn put_batch(&mut self, _first: u64, payloads: &[&[u8]]) -> Res<()> {
        for p in payloads {
            let k = u128::from_le_bytes(key128(p));
            self.cache.insert(k, p.to_vec());
            self.keys.push(k);
        }
        Ok(())
    }

    fn flush(&mut self) -> Res<()> {
        self.wait();
        Ok(())
    }

    fn get(&mut self, index: u64) -> Res<Option<Vec<u8>>> {
        match self.fetch(self.keys[index as usize])? {
            Some((v, _)) => Ok(Some(v)),
            None => {
                // Lost by the cache: counted as `lost`; `missing` is cleared at the end.
                self.lost.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    fn close(&mut self) -> Res<()> {
        self.rt.block_on(self.cache.close())?;
        Ok(())
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        [("lost".to_string(), self.lost.load(Ordering::Relaxed))].into()
    }
}

impl CachePeer for Foyer {
    fn insert(&mut self, index: u64, payload: Vec<u8>) -> Res<()> {
        self.cache.insert(u128::from(index), payload);
        Ok(())
    }

    fn read(&self, index: u64) -> Res<Read> {
        Ok(match self.fetch(u128::from(index))? {
            Some((v, hit)) => Read {
                tag: tagged_index(&v),
                hit,
            },
            None => {
                self.lost.fetch_add(1, Ordering::Relaxed);
                Read {
                    tag: None,
                    hit: false,
                }
            }
        })
    }

    fn settle(&mut self) -> Res<()> {
        self.wait();
        Ok(())
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        [("lost".to_string(), self.lost.load(Ordering::Relaxed))].into()
    }
}

/// A lost entry is the cache's right: report it as `lost`, not as a wrong answer.
fn lost_is_not_missing(mut m: Measurement) -> Measurement {
    m.missing = 0;
    m
}

fn run(job: &Job) -> Res<Measurement> {
    match job.spec.kind {
        Kind::Kv => run_kv(|| Foyer::open(job), job).map(lost_is_not_missing),
        Kind::Zipf => run_zipf(&mut Foyer::open(job)?, job).map(lost_is_not_missing),
        Kind::Mixed => run_mixed(&mut Foyer::open(job)?, job).map(lost_is_not_missing),
        k => Err(format!("foyer: workload {k:?} is not measured for this contender").into()),
    }
}

fn main() {
    emit(job_from_args().map_err(Into::into).and_then(|j| run(&j)));
}
