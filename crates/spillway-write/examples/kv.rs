//! A tiny key-value database on the write pipeline: writes go into an in-memory table (the
//! delta), which is frozen and appended to a log file; `set(..).wait(Durable)` returns once the
//! write is in the file and the file is synced. Reopening the file replays it.
//!
//! ```sh
//! cargo run -p spillway-write --example kv [-- FILE]
//! ```
//!
//! Without a file it works in a temporary one and removes it at the end.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use spillway_write::{
    Config, Coordinator, Delta, Durability, Epoch, EpochRange, Flusher, Freeze, Frozen, Layer,
    WriteChannel, WriteHandle,
};

/// A write: set a key to a value, or delete it (`None`).
type Op = (String, Option<String>);

/// What is stored: every key's value.
type Table = BTreeMap<String, String>;

/// The delta: the newest write per key since the last freeze.
#[derive(Debug, Default)]
struct Memtable {
    ops: BTreeMap<String, Option<String>>,
    bytes: usize,
}

impl Delta for Memtable {
    type Write = Op;
    type Applied = ();

    fn apply(&mut self, _epoch: Epoch, (key, value): Op) {
        self.bytes += key.len() + value.as_ref().map_or(0, String::len);
        self.ops.insert(key, value);
    }

    fn size_bytes(&self) -> usize {
        self.bytes
    }
}

impl Freeze for Memtable {
    type Batch = Arc<BTreeMap<String, Option<String>>>;
    type FrozenView = Arc<BTreeMap<String, Option<String>>>;

    fn freeze(self) -> Frozen<Self> {
        let ops = Arc::new(self.ops);
        Frozen {
            batch: Arc::clone(&ops),
            view: ops,
            next: Memtable::default(),
        }
    }
}

/// Storage: a log file of `set\tKEY\tVALUE` and `del\tKEY` lines, and the table it holds.
struct LogFile {
    file: File,
    table: Arc<Table>,
}

impl Flusher for LogFile {
    type Batch = Arc<BTreeMap<String, Option<String>>>;
    type Snapshot = Arc<Table>;
    type Error = io::Error;

    /// Appends the batch and hands it to the OS (`Written`). A batch retried after a failure
    /// may be appended twice: replay reads the same writes again, which changes nothing.
    fn write(&mut self, batch: &Self::Batch, _epochs: EpochRange) -> io::Result<Arc<Table>> {
        let mut lines = String::new();
        let mut table = Table::clone(&self.table);
        for (key, value) in batch.iter() {
            match value {
                Some(v) => {
                    lines += &format!("set\t{key}\t{v}\n");
                    table.insert(key.clone(), v.clone());
                }
                None => {
                    lines += &format!("del\t{key}\n");
                    table.remove(key);
                }
            }
        }
        self.file.write_all(lines.as_bytes())?;
        self.table = Arc::new(table);
        Ok(Arc::clone(&self.table))
    }

    /// Makes what was written survive power loss (`Durable`).
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// The database.
struct Kv {
    pipeline: Coordinator<Memtable, LogFile>,
    writes: WriteChannel<Op, (), io::Error>,
}

type Handle = WriteHandle<(), io::Error>;

impl Kv {
    /// Opens (or creates) the database in `path`, replaying what the file holds.
    fn open(path: &Path) -> io::Result<Kv> {
        let table = Arc::new(replay(path)?);
        let created = !path.exists();
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        if created {
            sync_dir(path)?;
        }
        let config = Config {
            name: "kv".into(),
            ..Config::default()
        };
        let pipeline = Coordinator::start(
            Memtable::default(),
            LogFile {
                file,
                table: Arc::clone(&table),
            },
            table,
            config,
        )
        .map_err(io::Error::other)?;
        let writes = pipeline.channel("writes", 1024);
        Ok(Kv { pipeline, writes })
    }

    fn send(&self, op: Op) -> io::Result<Handle> {
        let text = [Some(&op.0), op.1.as_ref()];
        if text.into_iter().flatten().any(|s| s.contains(['\t', '\n'])) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "keys and values hold no tab or newline",
            ));
        }
        self.writes
            .write(op)
            .map_err(|rejected| io::Error::other(rejected.to_string()))
    }

    /// Sets `key` to `value`; the handle waits for the level the caller needs.
    fn set(&self, key: &str, value: &str) -> io::Result<Handle> {
        self.send((key.into(), Some(value.into())))
    }

    /// Deletes `key`.
    fn delete(&self, key: &str) -> io::Result<Handle> {
        self.send((key.into(), None))
    }

    /// The value of `key` in one consistent view: the newest layer that knows the key wins.
    fn get(&self, key: &str) -> Option<String> {
        let view = self.pipeline.view();
        let read = view.read();
        for layer in read.layers() {
            let ops = match layer {
                Layer::Live(memtable) => &memtable.ops,
                Layer::Frozen(ops) => &**ops,
            };
            if let Some(value) = ops.get(key) {
                return value.clone();
            }
        }
        read.snapshot().get(key).cloned()
    }

    /// Stores and syncs every write, and stops the pipeline.
    fn close(self) -> io::Result<()> {
        self.pipeline.shutdown().result.map_err(io::Error::other)
    }
}

/// Makes a new file's directory entry survive power loss (on Unix; elsewhere the file system
/// sees to it).
fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The table a log file holds.
fn replay(path: &Path) -> io::Result<Table> {
    let mut table = Table::new();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(table),
        Err(e) => return Err(e),
    };
    for line in BufReader::new(file).lines() {
        let line = line?;
        let mut fields = line.split('\t');
        match (fields.next(), fields.next(), fields.next()) {
            (Some("set"), Some(key), Some(value)) => {
                table.insert(key.into(), value.into());
            }
            (Some("del"), Some(key), None) => {
                table.remove(key);
            }
            // A line cut short by a crash before it was synced.
            _ => break,
        }
    }
    Ok(table)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let given = std::env::args_os().nth(1).map(PathBuf::from);
    let path = given
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("kv-{}.log", std::process::id())));

    let kv = Arc::new(Kv::open(&path)?);
    // Four writers, each waiting for its writes to be durable: the waits share the syncs
    // (group commit), since a waiter that finds a sync running is carried by the next one.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let kv = Arc::clone(&kv);
            thread::spawn(move || -> io::Result<()> {
                for i in 0..25 {
                    let handle = kv.set(&format!("key-{w}-{i}"), &format!("value {i}"))?;
                    handle.wait(Durability::Durable).map_err(io::Error::other)?;
                }
                Ok(())
            })
        })
        .collect();
    for w in writers {
        w.join().map_err(|_| "a writer panicked")??;
    }
    // Visible as soon as it is applied, before it is stored.
    let handle = kv.delete("key-0-0")?;
    handle.wait(Durability::Applied)?;
    assert_eq!(kv.get("key-0-0"), None);
    assert_eq!(kv.get("key-3-24").as_deref(), Some("value 24"));
    Arc::into_inner(kv).ok_or("the writers are done")?.close()?;

    // Everything acknowledged is in the file.
    let kv = Kv::open(&path)?;
    assert_eq!(kv.get("key-0-0"), None);
    assert_eq!(kv.get("key-1-7").as_deref(), Some("value 7"));
    println!("{} keys in {}", replay(&path)?.len(), path.display());
    kv.close()?;
    if given.is_none() {
        std::fs::remove_file(&path)?;
    }
    Ok(())
}
