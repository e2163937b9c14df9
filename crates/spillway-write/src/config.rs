//! [`Config`]: the knobs of a pipeline, with defaults that suit a small embedded database.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::flusher::RetryPolicy;

/// How a pipeline freezes, flushes, bounds its memory and retries.
#[derive(Clone)]
pub struct Config {
    /// A name for messages and thread names.
    pub name: String,
    /// Freeze the current delta once its [`size_bytes`](crate::Delta::size_bytes) reaches
    /// this. Default 4 MiB.
    pub freeze_bytes: usize,
    /// Freeze the current delta this long after its first write (`None`: no timer). Default
    /// 100 ms.
    pub freeze_interval: Option<Duration>,
    /// Frozen deltas that may wait for (or be in) a flush at once; when the bound is reached
    /// the writer stops applying writes, and the channels fill up. At least 1. Default 2.
    pub max_frozen: usize,
    /// Writes the writer takes from the channels per lock of the current delta. Default 256.
    pub writer_batch: usize,
    /// Views a subscriber may have unread before it is told it lagged. Default 64.
    pub subscriber_capacity: usize,
    /// What to do when a flush fails.
    pub retry: RetryPolicy,
    /// Make storage durable when the pipeline shuts down. Default true.
    pub sync_on_shutdown: bool,
    /// The clock for the interval trigger and retry backoff.
    pub clock: Arc<dyn Clock>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            name: "write".into(),
            freeze_bytes: 4 << 20,
            freeze_interval: Some(Duration::from_millis(100)),
            max_frozen: 2,
            writer_batch: 256,
            subscriber_capacity: 64,
            retry: RetryPolicy::default(),
            sync_on_shutdown: true,
            clock: Arc::new(SystemClock::new()),
        }
    }
}

impl Config {
    pub(crate) fn check<E>(&self) -> Result<(), E> {
        if self.max_frozen == 0 {
            return Err(Error::InvalidConfig("max_frozen must be at least 1"));
        }
        if self.writer_batch == 0 {
            return Err(Error::InvalidConfig("writer_batch must be at least 1"));
        }
        if self.freeze_interval == Some(Duration::ZERO) {
            return Err(Error::InvalidConfig(
                "freeze_interval must be positive (or None for no timer)",
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("name", &self.name)
            .field("freeze_bytes", &self.freeze_bytes)
            .field("freeze_interval", &self.freeze_interval)
            .field("max_frozen", &self.max_frozen)
            .field("writer_batch", &self.writer_batch)
            .field("subscriber_capacity", &self.subscriber_capacity)
            .field("retry", &self.retry)
            .field("sync_on_shutdown", &self.sync_on_shutdown)
            .field("clock", &self.clock)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_values_are_refused_by_name() {
        let refused = |config: Config| match config.check::<std::io::Error>() {
            Err(Error::InvalidConfig(what)) => what,
            other => panic!("accepted: {other:?}"),
        };
        let what = refused(Config {
            max_frozen: 0,
            ..Config::default()
        });
        assert!(what.starts_with("max_frozen"), "{what}");
        let what = refused(Config {
            writer_batch: 0,
            ..Config::default()
        });
        assert!(what.starts_with("writer_batch"), "{what}");
        let what = refused(Config {
            freeze_interval: Some(Duration::ZERO),
            ..Config::default()
        });
        assert!(what.starts_with("freeze_interval"), "{what}");
        assert!(Config::default().check::<std::io::Error>().is_ok());
    }
}
