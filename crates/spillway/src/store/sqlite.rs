//! [`SqliteStore`]: a store in one SQLite database file (feature `sqlite`), through rusqlite
//! with SQLite compiled in.
//!
//! # Schema (version 2; version 1 has the same tables, and values without a type tag)
//! - `spillway_schema(version)`: one row, the schema version. A database whose version is
//!   newer than this build's is refused ([`Error::UnsupportedVersion`]); the database's
//!   `application_id` is `0x53504C57` (`SPLW`), so that a database of another program is
//!   refused as "not a spillway store" rather than written to.
//! - `objects(key, children, children_crc, payload_id, payload_len, payload_crc)`, keyed by
//!   the 16-byte content key (`WITHOUT ROWID`: small rows). `children` is the child keys, 16
//!   bytes each; `children_crc` the CRC32C of the key and the children, `payload_crc` that of
//!   the payload.
//! - `payloads(id, payload)`: the payloads, apart from the child keys, so that
//!   [`children`](BlobStore::children) (what garbage collection walks) reads only `objects`.
//! - `roots(name, key)`: the named roots.
//! - `spillway_sync(id, syncs)`: one row, the counter a durable flush updates.
//!
//! SQLite checks its own structure (`PRAGMA integrity_check`, in [`SqliteStore::check`]) but
//! not the bytes of a row: the CRCs make a damaged row an error naming the database file and
//! the key, never data.
//!
//! # Durability
//! The database runs in WAL mode with `synchronous=NORMAL`. A put commits one transaction per
//! batch, which writes its pages to the `-wal` file before `put_batch` returns: the writes are
//! then visible to readers ([`Durability::Applied`]) and in the OS ([`Durability::Written`]),
//! and survive a crash of the process; `flush(Applied)` and `flush(Written)` have nothing to
//! do. Such a commit is not synced: a power loss may take it away.
//!
//! `flush(Durable)` commits a one-row update with `synchronous=FULL`, which syncs the `-wal`
//! file after writing it. That one `fsync` makes every earlier commit durable too: WAL frames
//! carry a checksum chained over every frame before them, so recovery keeps a frame only if
//! the whole log before it is intact; a synced commit cannot survive without the ones before
//! it. Checkpoints (SQLite's own, every 1000 pages) sync the `-wal` file before copying it into
//! the database and sync the database before the log is reused, in `NORMAL` mode too. SQLite
//! syncs the directory when it creates the `-wal` file; the store syncs it once more when it
//! creates the database. Concurrent durable flushes share one sync (group commit).
//! [`set_root`](BlobStore::set_root) commits the root with `synchronous=FULL` likewise: the
//! graph is durable no later than the name that keeps it, in one sync.
//!
//! Measured when this was chosen (2-core virtual machine, ext4, where one `fdatasync` took
//! 2 to 4 ms; 1 KiB objects, 300 rounds, medians of two runs):
//!
//! | durable flush by | put of 1 + durable flush | put of 64 + durable flush | page-out without flush |
//! |---|---|---|---|
//! | nothing (not durable) | 0.02 ms | 0.4 ms | 38,000–41,000 objects/s |
//! | a commit with `synchronous=FULL` (chosen) | 1.6–2.4 ms | 4.0 ms | as above |
//! | `PRAGMA wal_checkpoint(FULL)` | 0.4–8 ms (mean 3.7–6.7) | 9–12 ms | as above |
//! | `synchronous=FULL` on every commit | 4.0 ms | 4.0 ms | 4,600–5,000 objects/s |
//!
//! A checkpoint writes every page again into the database and syncs both files: two to three
//! times the cost of one synced commit. A passive checkpoint costs as much and does not even
//! sync the log while a reader holds an older snapshot. `synchronous=FULL` on every commit
//! makes each batch the pool pages out pay a sync, eight times slower, for a durability nobody
//! asked for.
//!
//! # Concurrency
//! One writer connection (behind a lock) and a pool of read-only connections: in WAL mode
//! readers never wait for the writer, and a new read sees every commit made before it. Both
//! wait up to [`SqliteStoreOptions::busy_timeout`] for a lock. A lock file `<db>-lock` (an
//! exclusive `flock`) keeps a second process from opening the store for writing.
//!
//! After a failed sync or write of the database (an I/O error), the store is poisoned: writes
//! fail with [`Error::Poisoned`], reads go on.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::check::{CheckReport, check_objects};
use crate::error::{Error, Result};
use crate::key::{ContentKey, KEY_LEN};
use crate::store::{Blob, BlobStore, Durability, Put, StoreStats};
use crate::vfs::OsFs;

/// The schema version this build writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 2;
/// The first schema version whose values, as a pool stores them, start with a type tag.
/// Versions 1 and 2 have the same tables: a version 1 database opens and reads as blobs, but a
/// pool refuses it.
pub const TAGGED_VALUES_VERSION: u32 = 2;
/// The database's `application_id`: `SPLW` in ASCII.
pub const APPLICATION_ID: i32 = 0x5350_4C57;
/// The largest payload SQLite stores in one value (its default `SQLITE_MAX_LENGTH`).
pub const MAX_SQLITE_PAYLOAD: usize = 1_000_000_000;
/// Bytes of SQLite's file header: a database file that SQLite wrote is at least this long.
const SQLITE_HEADER_LEN: u64 = 100;
/// Read connections kept open between reads.
const IDLE_READERS: usize = 8;

const SCHEMA: &str = "
CREATE TABLE spillway_schema (version INTEGER NOT NULL);
CREATE TABLE objects (
    key BLOB PRIMARY KEY NOT NULL,
    children BLOB NOT NULL,
    children_crc INTEGER NOT NULL,
    payload_id INTEGER NOT NULL,
    payload_len INTEGER NOT NULL,
    payload_crc INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE payloads (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);
CREATE TABLE roots (name TEXT PRIMARY KEY NOT NULL, key BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE spillway_sync (id INTEGER PRIMARY KEY CHECK (id = 1), syncs INTEGER NOT NULL);
INSERT INTO spillway_sync VALUES (1, 0);
";

/// Settings of a [`SqliteStore`]. `SqliteStoreOptions::default()` suits most uses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqliteStoreOptions {
    /// Open without the write lock and with read-only connections; every write fails with
    /// [`Error::ReadOnly`].
    pub read_only: bool,
    /// Create the database if the file does not exist (default `true`).
    pub create: bool,
    /// How long a connection waits for a lock another connection holds (default 5 s).
    pub busy_timeout: Duration,
}

impl Default for SqliteStoreOptions {
    fn default() -> Self {
        SqliteStoreOptions {
            read_only: false,
            create: true,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

impl SqliteStoreOptions {
    /// Read-only access.
    pub fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }

    /// Whether a missing database is created.
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }

    /// How long to wait for a lock.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }
}

#[derive(Debug, Default)]
struct Counters {
    objects: AtomicU64,
    live_bytes: AtomicU64,
    puts: AtomicU64,
    dedup_hits: AtomicU64,
    gets: AtomicU64,
    deletes: AtomicU64,
    bytes_written: AtomicU64,
    syncs: AtomicU64,
}

/// A store in one SQLite database file, with a real durable mode (see the module docs).
pub struct SqliteStore {
    path: PathBuf,
    opts: SqliteStoreOptions,
    /// `None` for a read-only store.
    writer: Option<Mutex<Connection>>,
    readers: Mutex<Vec<Connection>>,
    /// Transactions committed by the writer (bumped under its lock).
    committed: AtomicU64,
    /// Commits known durable; held while a durable flush syncs. Lock order: this, then the
    /// writer.
    durable: Mutex<u64>,
    poison: RwLock<Option<Arc<Error>>>,
    counters: Counters,
    /// The schema version of the database (this build's for one it created).
    schema_version: u32,
    _lock: Option<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("read_only", &self.opts.read_only)
            .finish_non_exhaustive()
    }
}

/// Turns an SQLite error into the crate's, naming the database file.
fn sql_error(path: &Path, op: &'static str, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => Error::NotAStore {
            path: path.to_path_buf(),
            detail: format!("it is not an SQLite database ({e})"),
        },
        Some(ErrorCode::DatabaseCorrupt) => Error::Corrupted {
            what: "SQLite database",
            location: path.display().to_string(),
            detail: format!("{e} (while trying to {op}); `PRAGMA integrity_check` tells more"),
        },
        Some(ErrorCode::DiskFull) => Error::io(
            op,
            path,
            std::io::Error::new(std::io::ErrorKind::StorageFull, e),
        ),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::io(
            op,
            path,
            std::io::Error::other(format!(
                "{e}: another connection held the database longer than the busy timeout"
            )),
        ),
        _ => Error::io(op, path, std::io::Error::other(e)),
    }
}

/// True for errors after which the state of the files is unknown.
fn poisons(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::SystemIoFailure | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

fn key_of_blob(path: &Path, bytes: &[u8]) -> Result<ContentKey> {
    let k: [u8; KEY_LEN] = bytes.try_into().map_err(|_| Error::Corrupted {
        what: "SQLite objects table",
        location: path.display().to_string(),
        detail: format!("a key of {} bytes, not {KEY_LEN}", bytes.len()),
    })?;
    Ok(ContentKey::from_bytes(k))
}

fn children_bytes(children: &[ContentKey]) -> Vec<u8> {
    let mut out = Vec::with_capacity(children.len() * KEY_LEN);
    for c in children {
        out.extend_from_slice(c.as_bytes());
    }
    out
}

fn children_crc(key: &ContentKey, children: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(key.as_bytes()), children)
}

impl SqliteStore {
    /// Opens (creating if needed) the store in the database file `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        SqliteStore::open_with(path, SqliteStoreOptions::default())
    }

    /// Opens the store in the database file `path` with `opts`.
    pub fn open_with(path: impl AsRef<Path>, opts: SqliteStoreOptions) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let exists = match std::fs::metadata(&path) {
            // SQLite takes a file shorter than its first page for an empty database and would
            // write a new one over it. It never writes a file shorter than its 100-byte header
            // (zero bytes is a creation cut short), so such a file was cut by damage.
            Ok(m) if m.is_file() && m.len() > 0 && m.len() < SQLITE_HEADER_LEN => {
                return Err(Error::Corrupted {
                    what: "SQLite database",
                    location: path.display().to_string(),
                    detail: format!(
                        "the file is {} bytes long, shorter than SQLite's {SQLITE_HEADER_LEN}-byte \
                         header: it was cut short; restore it from a copy",
                        m.len()
                    ),
                });
            }
            Ok(m) if m.is_file() => true,
            Ok(_) => {
                return Err(Error::NotAStore {
                    path,
                    detail: "it is not a file; an SQLite store is one database file".into(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io("open", path, e)),
        };
        if !exists && (opts.read_only || !opts.create) {
            return Err(Error::NotAStore {
                path,
                detail: "the file does not exist".into(),
            });
        }
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        if !exists {
            std::fs::create_dir_all(&parent)
                .map_err(|e| Error::io("create directory", &parent, e))?;
        }
        let lock = if opts.read_only {
            None
        } else {
            let mut file = path.clone().into_os_string();
            file.push("-lock");
            Some(super::lock::lock(&OsFs, Path::new(&file), &path)?)
        };
        let mut store = SqliteStore {
            path,
            opts,
            writer: None,
            readers: Mutex::new(Vec::new()),
            committed: AtomicU64::new(0),
            durable: Mutex::new(0),
            poison: RwLock::new(None),
            counters: Counters::default(),
            schema_version: SCHEMA_VERSION,
            _lock: lock,
        };
        if store.opts.read_only {
            let conn = store.open_reader()?;
            store.schema_version = store.identify(&conn)?.unwrap_or(SCHEMA_VERSION);
            store.readers.lock().push(conn);
        } else {
            let mut conn = store.connection(
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            let found = store.identify(&conn)?;
            if let Some(v) = found {
                store.schema_version = v;
            } else {
                store.create_schema(&mut conn)?;
                // The new file's name: SQLite syncs the directory for its logs, not for the
                // database file itself.
                crate::vfs::Vfs::sync_dir(&OsFs, &parent)
                    .map_err(|e| Error::io("fsync directory", &parent, e))?;
            }
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .map_err(|e| store.sql("set the journal mode of", e))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(Error::io(
                    "set the journal mode of",
                    &store.path,
                    std::io::Error::other(format!("SQLite kept journal mode {mode:?}, not WAL")),
                ));
            }
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(|e| store.sql("configure", e))?;
            store.writer = Some(Mutex::new(conn));
        }
        store.load_counters()?;
        Ok(store)
    }

    /// The schema version of the database: this build's for one it created. A version 1
    /// database reads and writes as blobs like any other, but holds values without a type tag,
    /// which a pool refuses (see [`BlobStore::untagged_values`]).
    pub fn schema_version(&self) -> u32 {
        self.schema_version
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The failure that poisoned the store, if any.
    pub fn poisoned(&self) -> Option<Arc<Error>> {
        self.poison.read().clone()
    }

    fn sql(&self, op: &'static str, e: rusqlite::Error) -> Error {
        sql_error(&self.path, op, e)
    }

    /// An SQLite error on the write path: poisons the store if the files' state is unknown.
    fn write_error(&self, op: &'static str, e: rusqlite::Error) -> Error {
        let poison = poisons(&e);
        let err = self.sql(op, e);
        if poison { self.poison(err) } else { err }
    }

    fn poison(&self, e: Error) -> Error {
        let cause = Arc::new(e);
        let mut p = self.poison.write();
        if p.is_none() {
            tracing::error!(store = %self.path.display(), error = %cause, "the SQLite store refuses writes from now on");
            *p = Some(Arc::clone(&cause));
        }
        Error::Poisoned {
            path: self.path.clone(),
            cause,
        }
    }

    /// The writer, or why writes are refused.
    fn writer(&self) -> Result<&Mutex<Connection>> {
        let w = self.writer.as_ref().ok_or_else(|| Error::ReadOnly {
            path: self.path.clone(),
        })?;
        if let Some(cause) = self.poison.read().clone() {
            return Err(Error::Poisoned {
                path: self.path.clone(),
                cause,
            });
        }
        Ok(w)
    }

    fn connection(&self, flags: OpenFlags) -> Result<Connection> {
        let conn =
            Connection::open_with_flags(&self.path, flags).map_err(|e| self.sql("open", e))?;
        conn.busy_timeout(self.opts.busy_timeout)
            .map_err(|e| self.sql("configure", e))?;
        Ok(conn)
    }

    fn open_reader(&self) -> Result<Connection> {
        self.connection(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
    }

    /// Runs `f` on a read connection from the pool.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.readers.lock().pop();
        let conn = match pooled {
            Some(c) => c,
            None => self.open_reader()?,
        };
        let result = f(&conn);
        let mut idle = self.readers.lock();
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        result
    }

    /// Checks that the database is a spillway store of a version this build reads; returns its
    /// version, or `None` if it is empty (a new database) and needs the schema.
    fn identify(&self, conn: &Connection) -> Result<Option<u32>> {
        let app: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| self.sql("read", e))?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(|e| self.sql("read", e))?;
        if app == 0 && tables == 0 {
            if self.opts.read_only {
                return Err(Error::NotAStore {
                    path: self.path.clone(),
                    detail: "the database is empty".into(),
                });
            }
            return Ok(None);
        }
        if app != APPLICATION_ID {
            return Err(Error::NotAStore {
                path: self.path.clone(),
                detail: format!(
                    "an SQLite database of another program (application_id {app:#x}, {tables} tables); pick another file"
                ),
            });
        }
        let version: Option<i64> = conn
            .query_row("SELECT max(version) FROM spillway_schema", [], |r| r.get(0))
            .map_err(|e| self.sql("read the schema version of", e))?;
        match version {
            Some(v) if (1..=i64::from(SCHEMA_VERSION)).contains(&v) => Ok(u32::try_from(v).ok()),
            Some(v) if v > i64::from(SCHEMA_VERSION) => Err(Error::UnsupportedVersion {
                path: self.path.clone(),
                found: u32::try_from(v).unwrap_or(u32::MAX),
                supported: SCHEMA_VERSION,
            }),
            v => Err(Error::Corrupted {
                what: "SQLite schema version",
                location: self.path.display().to_string(),
                detail: format!("spillway_schema holds {v:?}, not a version"),
            }),
        }
    }

    /// Creates the schema in a new database, durably.
    fn create_schema(&self, conn: &mut Connection) -> Result<()> {
        // WAL first: it is kept in the database file, so every later open uses it.
        conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
            .map_err(|e| self.sql("set the journal mode of", e))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| self.sql("configure", e))?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql("create the schema of", e))?;
        tx.execute_batch(SCHEMA)
            .and_then(|()| tx.execute("INSERT INTO spillway_schema VALUES (?1)", [SCHEMA_VERSION]))
            .and_then(|_| tx.pragma_update(None, "application_id", APPLICATION_ID))
            .and_then(|()| tx.commit())
            .map_err(|e| self.sql("create the schema of", e))
    }

    /// Counts the objects and their bytes, once, at open.
    fn load_counters(&self) -> Result<()> {
        let (n, bytes): (i64, i64) = self.read(|c| {
            c.query_row(
                "SELECT count(*), coalesce(sum(16 + length(children) + payload_len), 0) FROM objects",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.sql("read", e))
        })?;
        self.counters.objects.store(n as u64, Ordering::Relaxed);
        self.counters
            .live_bytes
            .store(bytes as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Commits `f`'s transaction with `synchronous=FULL`: the `-wal` file is synced, and with
    /// it every commit before. Marks all commits so far durable. The caller holds `durable`.
    fn durable_commit(
        &self,
        durable: &mut u64,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>,
    ) -> Result<()> {
        let mut conn = self.writer()?.lock();
        let upto = self.committed.load(Ordering::Acquire);
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| self.sql("configure", e))?;
        let result = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .and_then(|tx| {
                f(&tx)?;
                tx.commit()
            });
        let restored = conn.pragma_update(None, "synchronous", "NORMAL");
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(()) => {
                self.committed.fetch_add(1, Ordering::AcqRel);
                *durable = upto + 1;
            }
            // A failed sync leaves the files in an unknown state: never retry it.
            Err(e) => {
                let err = self.sql("sync", e);
                return Err(self.poison(err));
            }
        }
        restored.map_err(|e| self.sql("configure", e))
    }

    /// Makes every commit so far durable (see the module docs); concurrent callers share one
    /// sync.
    fn sync(&self) -> Result<()> {
        let target = self.committed.load(Ordering::Acquire);
        let mut durable = self.durable.lock();
        if *durable >= target {
            return Ok(());
        }
        self.durable_commit(&mut durable, |tx| {
            tx.execute(
                "UPDATE spillway_sync SET syncs = syncs + 1 WHERE id = 1",
                [],
            )
            .map(|_| ())
        })
    }

    /// Flushes everything durably and closes the connections. Dropping the store closes it
    /// too, logging any failure.
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<()> {
        let flushed = if self.writer.is_some() && self.poison.read().is_none() {
            self.flush(Durability::Durable)
        } else {
            Ok(())
        };
        self.readers.lock().clear();
        // The last connection to close checkpoints the log into the database.
        if let Some(w) = self.writer.take() {
            w.into_inner()
                .close()
                .map_err(|(_, e)| self.sql("close", e))?;
        }
        flushed
    }

    /// Checks the whole store without changing it: SQLite's `PRAGMA integrity_check` (the
    /// database's structure), then every object read back and checked against its key and
    /// checksums, every child and every named root's graph present, and no payload without
    /// its object.
    pub fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let messages: Vec<String> = self.read(|c| {
            let mut st = c
                .prepare("PRAGMA integrity_check")
                .map_err(|e| self.sql("check", e))?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| self.sql("check", e))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(|e| self.sql("check", e))
        })?;
        for m in messages.into_iter().filter(|m| m != "ok") {
            report.problem(format!(
                "{}: SQLite integrity check: {m}",
                self.path.display()
            ));
        }
        check_objects(self, &mut report)?;
        let orphans: i64 = self.read(|c| {
            c.query_row(
                "SELECT count(*) FROM payloads WHERE id NOT IN (SELECT payload_id FROM objects)",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.sql("check", e))
        })?;
        if orphans > 0 {
            report.problem(format!(
                "{}: {orphans} payload rows belong to no object",
                self.path.display()
            ));
        }
        Ok(report)
    }
}

impl BlobStore for SqliteStore {
    fn put_batch(&self, batch: &[Put<'_>]) -> Result<()> {
        let writer = self.writer()?;
        batch
            .iter()
            .try_for_each(|p| p.check_limits(MAX_SQLITE_PAYLOAD))?;
        let mut conn = writer.lock();
        let (mut puts, mut dedup, mut bytes, mut live) = (0u64, 0u64, 0u64, 0u64);
        let result = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .and_then(|tx| {
                {
                    let mut exists = tx.prepare_cached("SELECT 1 FROM objects WHERE key = ?1")?;
                    let mut payload =
                        tx.prepare_cached("INSERT INTO payloads (payload) VALUES (?1)")?;
                    let mut object = tx.prepare_cached(
                        "INSERT INTO objects (key, children, children_crc, payload_id, payload_len, payload_crc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?;
                    for p in batch {
                        let key = &p.key.as_bytes()[..];
                        if exists.exists([key])? {
                            dedup += 1;
                            continue;
                        }
                        let children = children_bytes(p.children);
                        payload.execute([p.payload])?;
                        let id = tx.last_insert_rowid();
                        object.execute(params![
                            key,
                            children,
                            children_crc(&p.key, &children),
                            id,
                            p.payload.len() as i64,
                            crc32c::crc32c(p.payload),
                        ])?;
                        puts += 1;
                        bytes += (p.payload.len() + children.len()) as u64;
                        live += (KEY_LEN + p.payload.len() + children.len()) as u64;
                    }
                }
                if puts == 0 {
                    // Nothing to commit: leave the log untouched.
                    return tx.rollback();
                }
                tx.commit()
            });
        let c = &self.counters;
        c.dedup_hits.fetch_add(dedup, Ordering::Relaxed);
        result.map_err(|e| self.write_error("write to", e))?;
        if puts > 0 {
            self.committed.fetch_add(1, Ordering::AcqRel);
        }
        c.puts.fetch_add(puts, Ordering::Relaxed);
        c.objects.fetch_add(puts, Ordering::Relaxed);
        c.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        c.live_bytes.fetch_add(live, Ordering::Relaxed);
        Ok(())
    }

    fn get(&self, key: &ContentKey) -> Result<Option<Blob>> {
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        type Row = (Vec<u8>, u32, i64, u32, Option<Vec<u8>>);
        let row: Option<Row> = self.read(|c| {
            c.prepare_cached(
                "SELECT o.children, o.children_crc, o.payload_len, o.payload_crc, p.payload FROM objects o LEFT JOIN payloads p ON p.id = o.payload_id WHERE o.key = ?1",
            )
            .and_then(|mut st| {
                st.query_row([&key.as_bytes()[..]], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()
            })
            .map_err(|e| self.sql("read", e))
        })?;
        let Some((children, c_crc, len, p_crc, payload)) = row else {
            return Ok(None);
        };
        let children = self.check_children(key, &children, c_crc)?;
        let location = || format!("{} (object {key})", self.path.display());
        let payload = payload.ok_or_else(|| Error::Corrupted {
            what: "SQLite payloads table",
            location: location(),
            detail: "the object's payload row is missing".into(),
        })?;
        if i64::try_from(payload.len()).ok() != Some(len) {
            return Err(Error::Corrupted {
                what: "object payload",
                location: location(),
                detail: format!("{} bytes, the object row says {len}", payload.len()),
            });
        }
        let got = crc32c::crc32c(&payload);
        if got != p_crc {
            return Err(Error::ChecksumMismatch {
                what: "object payload",
                location: location(),
                expected: p_crc,
                got,
            });
        }
        Ok(Some(Blob { children, payload }))
    }

    fn contains(&self, key: &ContentKey) -> Result<bool> {
        self.read(|c| {
            c.prepare_cached("SELECT 1 FROM objects WHERE key = ?1")
                .and_then(|mut st| st.exists([&key.as_bytes()[..]]))
                .map_err(|e| self.sql("read", e))
        })
    }

    fn children(&self, key: &ContentKey) -> Result<Option<Vec<ContentKey>>> {
        let row: Option<(Vec<u8>, u32)> = self.read(|c| {
            c.prepare_cached("SELECT children, children_crc FROM objects WHERE key = ?1")
                .and_then(|mut st| {
                    st.query_row([&key.as_bytes()[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(|e| self.sql("read", e))
        })?;
        row.map(|(children, crc)| self.check_children(key, &children, crc))
            .transpose()
    }

    fn delete(&self, keys: &[ContentKey]) -> Result<()> {
        let writer = self.writer()?;
        let mut conn = writer.lock();
        let (mut deleted, mut live) = (0u64, 0u64);
        let result = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .and_then(|tx| {
                {
                    let mut object = tx.prepare_cached(
                        "DELETE FROM objects WHERE key = ?1 RETURNING payload_id, payload_len, length(children)",
                    )?;
                    let mut payload = tx.prepare_cached("DELETE FROM payloads WHERE id = ?1")?;
                    for k in keys {
                        let row: Option<(i64, i64, i64)> = object
                            .query_row([&k.as_bytes()[..]], |r| {
                                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                            })
                            .optional()?;
                        if let Some((id, len, children)) = row {
                            payload.execute([id])?;
                            deleted += 1;
                            live += (KEY_LEN as i64 + len + children).max(0) as u64;
                        }
                    }
                }
                if deleted == 0 {
                    return tx.rollback();
                }
                tx.commit()
            });
        result.map_err(|e| self.write_error("delete from", e))?;
        if deleted > 0 {
            self.committed.fetch_add(1, Ordering::AcqRel);
        }
        let c = &self.counters;
        c.deletes.fetch_add(deleted, Ordering::Relaxed);
        c.objects.fetch_sub(deleted, Ordering::Relaxed);
        c.live_bytes.fetch_sub(live, Ordering::Relaxed);
        Ok(())
    }

    fn keys(&self) -> Result<Vec<ContentKey>> {
        let raw: Vec<Vec<u8>> = self.read(|c| {
            let mut st = c
                .prepare_cached("SELECT key FROM objects")
                .map_err(|e| self.sql("read", e))?;
            let rows = st
                .query_map([], |r| r.get::<_, Vec<u8>>(0))
                .map_err(|e| self.sql("read", e))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| self.sql("read", e))
        })?;
        raw.iter().map(|k| key_of_blob(&self.path, k)).collect()
    }

    fn flush(&self, durability: Durability) -> Result<()> {
        match durability {
            // A commit is in the `-wal` file, in the OS, when `put_batch` returns.
            Durability::Applied | Durability::Written => Ok(()),
            Durability::Durable if self.writer.is_none() => Ok(()),
            Durability::Durable => self.sync(),
        }
    }

    fn stats(&self) -> StoreStats {
        let c = &self.counters;
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let disk_bytes = [self.path.as_os_str(), wal.as_os_str()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        StoreStats {
            objects: c.objects.load(Ordering::Relaxed),
            live_bytes: c.live_bytes.load(Ordering::Relaxed),
            disk_bytes,
            puts: c.puts.load(Ordering::Relaxed),
            dedup_hits: c.dedup_hits.load(Ordering::Relaxed),
            gets: c.gets.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            segments: 0,
            index_bytes: 0,
        }
    }

    fn untagged_values(&self) -> Option<Error> {
        super::untagged_before(
            self.describe(),
            self.schema_version,
            TAGGED_VALUES_VERSION,
            SCHEMA_VERSION,
            "`SqliteStore`, `spillway verify`, `export`",
        )
    }

    fn describe(&self) -> String {
        format!("SQLite store {}", self.path.display())
    }

    fn roots(&self) -> Result<Vec<(String, ContentKey)>> {
        let rows: Vec<(String, Vec<u8>)> = self.read(|c| {
            let mut st = c
                .prepare_cached("SELECT name, key FROM roots ORDER BY name")
                .map_err(|e| self.sql("read", e))?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(|e| self.sql("read", e))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| self.sql("read", e))
        })?;
        rows.into_iter()
            .map(|(n, k)| Ok((n, key_of_blob(&self.path, &k)?)))
            .collect()
    }

    fn root(&self, name: &str) -> Result<Option<ContentKey>> {
        let key: Option<Vec<u8>> = self.read(|c| {
            let mut st = c
                .prepare_cached("SELECT key FROM roots WHERE name = ?1")
                .map_err(|e| self.sql("read", e))?;
            st.query_row([name], |r| r.get(0))
                .optional()
                .map_err(|e| self.sql("read", e))
        })?;
        key.map(|k| key_of_blob(&self.path, &k)).transpose()
    }

    fn set_root(&self, name: &str, key: Option<ContentKey>) -> Result<()> {
        super::default_roots::check_name(name)?;
        self.writer()?;
        if let Some(k) = key
            && !self.contains(&k)?
        {
            return Err(Error::NotFound {
                key: k,
                store: self.describe(),
            });
        }
        // One synced commit makes the graph and the root durable together, the graph no later
        // than the root (see the module docs).
        let mut durable = self.durable.lock();
        self.durable_commit(&mut durable, |tx| {
            match key {
                Some(k) => tx.execute(
                    "INSERT INTO roots (name, key) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET key = excluded.key",
                    params![name, &k.as_bytes()[..]],
                ),
                None => tx.execute("DELETE FROM roots WHERE name = ?1", [name]),
            }
            .map(|_| ())
        })
    }
}

impl SqliteStore {
    /// Decodes and checks an object's child keys.
    fn check_children(&self, key: &ContentKey, bytes: &[u8], crc: u32) -> Result<Vec<ContentKey>> {
        let location = || format!("{} (object {key})", self.path.display());
        let got = children_crc(key, bytes);
        if got != crc {
            return Err(Error::ChecksumMismatch {
                what: "object's child keys",
                location: location(),
                expected: crc,
                got,
            });
        }
        if !bytes.len().is_multiple_of(KEY_LEN) {
            return Err(Error::Corrupted {
                what: "object's child keys",
                location: location(),
                detail: format!("{} bytes, not a multiple of {KEY_LEN}", bytes.len()),
            });
        }
        Ok(bytes
            .chunks_exact(KEY_LEN)
            .map(|c| {
                let mut k = [0u8; KEY_LEN];
                k.copy_from_slice(c);
                ContentKey::from_bytes(k)
            })
            .collect())
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Err(e) = self.close_inner() {
            tracing::error!(store = %self.path.display(), error = %e, "closing the SQLite store failed");
        }
    }
}
