//! Peer contender: SQLite through `rusqlite` (bundled), the "just use SQLite" baseline: WAL,
//! `synchronous=NORMAL`, one transaction per batch, objects under a 128-bit BLAKE3 key.
//!
//! Run by the harness as `peer-sqlite --job <json>`; prints one JSON line of results.

use std::path::Path;

use peer_common::{Job, KvPeer, Res, emit, job_from_args, key128, run_kv};
use rusqlite::{Connection, OptionalExtension, params};

struct Sqlite {
    conn: Connection,
    keys: Vec<[u8; 16]>,
}

impl Sqlite {
    fn open(dir: &Path) -> Res<Sqlite> {
        std::fs::create_dir_all(dir)?;
        let conn = Connection::open(dir.join("kv.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL);",
        )?;
        Ok(Sqlite {
            conn,
            keys: Vec::new(),
        })
    }
}

impl KvPeer for Sqlite {
    fn put_batch(&mut self, _first: u64, payloads: &[&[u8]]) -> Res<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt =
                tx.prepare_cached("INSERT OR IGNORE INTO kv (key, value) VALUES (?1, ?2)")?;
            for p in payloads {
                let k = key128(p);
                stmt.execute(params![&k[..], p])?;
                self.keys.push(k);
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn flush(&mut self) -> Res<()> {
        // Each batch committed in WAL mode with synchronous=NORMAL: written to the OS, the WAL
        // synced at checkpoints.
        Ok(())
    }

    fn get(&mut self, index: u64) -> Res<Option<Vec<u8>>> {
        let k = self.keys[index as usize];
        let mut stmt = self
            .conn
            .prepare_cached("SELECT value FROM kv WHERE key = ?1")?;
        Ok(stmt
            .query_row(params![&k[..]], |r| r.get::<_, Vec<u8>>(0))
            .optional()?)
    }
}

fn run(job: &Job) -> Res<peer_common::Measurement> {
    match job.spec.kind {
        peer_common::Kind::Kv => run_kv(|| Sqlite::open(&job.dir), job),
        k => Err(format!("sqlite: workload {k:?} is not measured for this contender").into()),
    }
}

fn main() {
    emit(job_from_args().map_err(Into::into).and_then(|j| run(&j)));
}
