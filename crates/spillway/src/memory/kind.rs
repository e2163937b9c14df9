//! [`PolicyKind`]: which eviction policy a pool uses, by name, and building one.

use std::fmt;
use std::str::FromStr;

use super::lru::Lru;
use super::policy::EvictionPolicy;
use super::s3fifo::S3Fifo;

/// Which eviction policy to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PolicyKind {
    /// S3-FIFO by bytes: scan-resistant, the default.
    #[default]
    S3Fifo,
    /// Least recently used by bytes: kept for comparison.
    Lru,
}

impl PolicyKind {
    /// Every kind, the default first.
    pub const ALL: [PolicyKind; 2] = [PolicyKind::S3Fifo, PolicyKind::Lru];

    /// The name used in configuration and on the command line: `s3fifo` or `lru`.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::S3Fifo => "s3fifo",
            PolicyKind::Lru => "lru",
        }
    }

    /// A new, empty policy of this kind for a cache of `capacity` bytes (a pool's budget;
    /// S3-FIFO sizes its queues and its ghosts by it, LRU needs no size).
    pub fn build(self, capacity: u64) -> Box<dyn EvictionPolicy> {
        match self {
            PolicyKind::S3Fifo => Box::new(S3Fifo::new(capacity)),
            PolicyKind::Lru => Box::new(Lru::new()),
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A policy name that is neither `s3fifo` nor `lru`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown eviction policy {0:?}; expected \"s3fifo\" or \"lru\"")]
pub struct UnknownPolicy(pub String);

impl FromStr for PolicyKind {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<PolicyKind, UnknownPolicy> {
        let wanted = s.trim().to_ascii_lowercase().replace(['-', '_'], "");
        PolicyKind::ALL
            .into_iter()
            .find(|k| k.name() == wanted)
            .ok_or_else(|| UnknownPolicy(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_from_their_names() {
        for kind in PolicyKind::ALL {
            assert_eq!(kind.to_string().parse::<PolicyKind>(), Ok(kind));
        }
        assert_eq!("S3-FIFO".parse::<PolicyKind>(), Ok(PolicyKind::S3Fifo));
        assert!("clock".parse::<PolicyKind>().is_err());
        assert_eq!(PolicyKind::default(), PolicyKind::S3Fifo);
        assert!(PolicyKind::Lru.build(1 << 20).wants_access_log());
        assert!(!PolicyKind::S3Fifo.build(1 << 20).wants_access_log());
    }
}
