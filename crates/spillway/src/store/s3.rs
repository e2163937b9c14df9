//! [`S3Store`]: a content-addressed store in S3-compatible object storage, through the
//! `object_store` crate, for sharing one store between many machines (feature `s3`).
//!
//! # Layout, under the store's prefix
//! - `objects/<2 hex digits>/<key in hex>`: one object per content key, its body a log record
//!   (`docs/FORMAT.md`, "Record": magic, CRC32C, kind, child keys, payload), so every read is
//!   checked and the key recomputed from the bytes. The two-digit fan-out keeps listings small.
//! - `roots/<name in hex>/<sequence, 20 digits>`: the versions of a named root, each a `ROOTS`
//!   file holding that one root (or none, for a removal). The newest sequence is the root's value.
//!
//! # Invariants
//! - **Create-only objects.** An object is put with `PutMode::Create` (a conditional put: it
//!   fails if the key exists), so two writers of one key cannot interleave; since keys are
//!   content hashes, the object already there is the same, and the put counts as deduplicated.
//!   Objects over [`S3StoreOptions::multipart_threshold`] go up as multipart uploads, which the
//!   service makes visible only once complete. No object is ever visible half-written.
//! - **Roots detect a lost race.** Setting a root reads its newest sequence `n` and creates
//!   `n + 1`, create-only: of two machines changing one root at once exactly one succeeds, and
//!   the other gets [`Error::Conflict`] (read the roots again and retry), never a silent overwrite.
//! - **Deletion respects uploads in progress.** [`delete`](BlobStore::delete) leaves objects
//!   younger than [`S3StoreOptions::gc_grace`] in place: another machine may be uploading a graph
//!   whose root it has not set yet, so a collection marking from this bucket's roots would see
//!   those objects as unreachable. They go at a later collection, once older than the grace.
//! - **Durability.** A put returns once the service acknowledged it, and the service stores an
//!   object durably before it acknowledges: every level is reached when `put_batch` returns, and
//!   `flush` has nothing to do.
//!
//! The store runs its requests on a small runtime of its own, so that it works from any thread,
//! with or without an async runtime of the caller's; requests go out `concurrency` at a time and
//! failures are retried with backoff (`object_store`'s retry configuration).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path as ObjPath;
use object_store::{
    ObjectStore as _, PutMode, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};

use super::{Blob, BlobStore, Durability, Put, StoreStats};
use crate::error::{Error, Result};
use crate::format::record::{self, RecordKind};
use crate::format::roots;
use crate::key::ContentKey;

/// Settings of an [`S3Store`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct S3StoreOptions {
    /// Objects not older than this are never deleted (default one hour): see the module docs.
    pub gc_grace: Duration,
    /// Requests in flight at once (default 16).
    pub concurrency: usize,
    /// Objects at least this large are uploaded in parts (default 8 MiB).
    pub multipart_threshold: usize,
    /// Retries of a failed request, with exponential backoff (default 10, within 3 minutes).
    pub max_retries: usize,
    /// The service's endpoint, for an S3-compatible service (default: `AWS_ENDPOINT`, else AWS).
    pub endpoint: Option<String>,
    /// Allow plain HTTP to the endpoint (default: `AWS_ALLOW_HTTP`, else no).
    pub allow_http: Option<bool>,
    /// The region (default: `AWS_REGION` or `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
}

impl Default for S3StoreOptions {
    fn default() -> Self {
        S3StoreOptions {
            gc_grace: Duration::from_secs(3600),
            concurrency: 16,
            multipart_threshold: 8 << 20,
            max_retries: 10,
            endpoint: None,
            allow_http: None,
            region: None,
        }
    }
}

impl S3StoreOptions {
    /// See [`S3StoreOptions::gc_grace`].
    pub fn gc_grace(mut self, grace: Duration) -> Self {
        self.gc_grace = grace;
        self
    }

    /// See [`S3StoreOptions::concurrency`].
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// See [`S3StoreOptions::multipart_threshold`].
    pub fn multipart_threshold(mut self, bytes: usize) -> Self {
        self.multipart_threshold = bytes.max(5 << 20);
        self
    }

    /// See [`S3StoreOptions::max_retries`].
    pub fn max_retries(mut self, n: usize) -> Self {
        self.max_retries = n;
        self
    }

    /// See [`S3StoreOptions::endpoint`].
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// See [`S3StoreOptions::allow_http`].
    pub fn allow_http(mut self, yes: bool) -> Self {
        self.allow_http = Some(yes);
        self
    }

    /// See [`S3StoreOptions::region`].
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }
}

#[derive(Debug, Default)]
struct Counters {
    puts: AtomicU64,
    dedup_hits: AtomicU64,
    gets: AtomicU64,
    deletes: AtomicU64,
    kept_young: AtomicU64,
    bytes_written: AtomicU64,
    requests: AtomicU64,
}

/// A content-addressed store in an S3-compatible bucket; see the module docs.
pub struct S3Store {
    remote: Arc<dyn object_store::ObjectStore>,
    /// `s3://bucket/prefix`, for messages.
    url: String,
    prefix: ObjPath,
    opts: S3StoreOptions,
    rt: tokio::runtime::Runtime,
    counters: Counters,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// Opens the store at `url` (`s3://BUCKET/PREFIX`), with the endpoint, region and
    /// credentials of the standard `AWS_*` environment variables (`AWS_ENDPOINT` for an
    /// S3-compatible service, `AWS_ALLOW_HTTP=true` for a plain-HTTP one). Nothing secret is
    /// logged or shown in errors.
    pub fn open(url: &str, opts: S3StoreOptions) -> Result<S3Store> {
        let (bucket, prefix) = parse_url(url)?;
        let mut builder = AmazonS3Builder::from_env();
        if let Some(e) = &opts.endpoint {
            builder = builder.with_endpoint(e);
        }
        if let Some(a) = opts.allow_http {
            builder = builder.with_allow_http(a);
        }
        if let Some(r) = &opts.region {
            builder = builder.with_region(r);
        }
        let builder = builder
            .with_bucket_name(bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_retry(RetryConfig {
                max_retries: opts.max_retries,
                ..RetryConfig::default()
            });
        let remote = builder.build().map_err(|e| Error::InvalidArgument(format!(
            "cannot set up the S3 store {url}: {e}; set AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )))?;
        S3Store::with_remote(Arc::new(remote), url, &prefix, opts)
    }

    /// A store over any `object_store` backend (for tests, or a service configured by hand),
    /// under `prefix`. `url` names it in messages.
    pub fn with_remote(
        remote: Arc<dyn object_store::ObjectStore>,
        url: &str,
        prefix: &str,
        opts: S3StoreOptions,
    ) -> Result<S3Store> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("spillway-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::io("start the S3 store's runtime", url, e))?;
        Ok(S3Store {
            remote,
            url: url.to_string(),
            prefix: ObjPath::from(prefix),
            opts,
            rt,
            counters: Counters::default(),
        })
    }

    /// Runs `f` on the store's runtime and waits for it, from any thread: a caller inside
    /// another async runtime waits on a thread of its own rather than nest runtimes.
    fn run<F>(&self, f: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| {
                s.spawn(|| self.rt.block_on(f))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
        } else {
            self.rt.block_on(f)
        }
    }

    fn object_path(&self, key: &ContentKey) -> ObjPath {
        let hex = key.to_string();
        self.prefix
            .child("objects")
            .child(&hex[..2])
            .child(hex.as_str())
    }

    fn root_dir(&self, name: &str) -> ObjPath {
        self.prefix.child("roots").child(hex_name(name))
    }

    /// What failed, on which object, for messages.
    fn remote_error(&self, what: &'static str, path: &ObjPath, e: object_store::Error) -> Error {
        let hint = match &e {
            object_store::Error::NotFound { .. } => "",
            _ => {
                " (check the endpoint, AWS_ENDPOINT, and the credentials, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the machine's role)"
            }
        };
        Error::Remote {
            what,
            location: format!("{}/{}", self.url_root(), path),
            detail: format!("{e}{hint}"),
        }
    }

    fn url_root(&self) -> String {
        match self.url.split_once("//") {
            Some((scheme, rest)) => {
                let bucket = rest.split('/').next().unwrap_or(rest);
                format!("{scheme}//{bucket}")
            }
            None => self.url.clone(),
        }
    }

    fn count(&self, c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    async fn put_one(&self, key: ContentKey, body: Vec<u8>) -> Result<bool> {
        let path = self.object_path(&key);
        self.count(&self.counters.requests, 1);
        let len = body.len() as u64;
        if body.len() >= self.opts.multipart_threshold {
            // Multipart uploads cannot be conditional; the object becomes visible only when the
            // upload completes, and a key's content is fixed, so a concurrent upload of the same
            // key writes the same bytes.
            if self.remote.head(&path).await.is_ok() {
                return Ok(false);
            }
            let upload = self
                .remote
                .put_multipart(&path)
                .await
                .map_err(|e| self.remote_error("start the upload of", &path, e))?;
            let mut w = WriteMultipart::new(upload);
            w.write(&body);
            w.finish()
                .await
                .map_err(|e| self.remote_error("upload", &path, e))?;
        } else {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            match self
                .remote
                .put_opts(&path, PutPayload::from(body), opts)
                .await
            {
                Ok(_) => {}
                Err(object_store::Error::AlreadyExists { .. }) => return Ok(false),
                Err(e) => return Err(self.remote_error("upload", &path, e)),
            }
        }
        self.count(&self.counters.bytes_written, len);
        Ok(true)
    }

    async fn get_record(&self, key: &ContentKey) -> Result<Option<Vec<u8>>> {
        let path = self.object_path(key);
        self.count(&self.counters.requests, 1);
        match self.remote.get(&path).await {
            Ok(r) => {
                let bytes = r
                    .bytes()
                    .await
                    .map_err(|e| self.remote_error("read", &path, e))?;
                Ok(Some(bytes.to_vec()))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.remote_error("read", &path, e)),
        }
    }

    /// [`get_record`](Self::get_record) of a key taken by value (for streams of reads).
    async fn get_record_owned(&self, key: ContentKey) -> Result<Option<Vec<u8>>> {
        self.get_record(&key).await
    }

    /// Decodes a record read for `key` and checks that it is that key's put.
    fn checked<'a>(&self, key: &ContentKey, bytes: &'a [u8]) -> Result<record::Record<'a>> {
        let path = self.object_path(key);
        let location = format!("{}/{}", self.url_root(), path);
        let r = record::decode(bytes).map_err(|e| e.at("object", location.clone()))?;
        if r.header.kind != RecordKind::Put
            || r.header.key != *key
            || r.header.record_len() != bytes.len() as u64
        {
            return Err(Error::Corrupted {
                what: "object",
                location,
                detail: format!("it does not hold the object {key}"),
            });
        }
        Ok(r)
    }

    /// Everything under `<prefix>/<dir>`.
    async fn list(&self, dir: &str) -> Result<Vec<object_store::ObjectMeta>> {
        self.list_path(self.prefix.child(dir)).await
    }

    /// Everything under `dir`.
    async fn list_path(&self, dir: ObjPath) -> Result<Vec<object_store::ObjectMeta>> {
        self.count(&self.counters.requests, 1);
        self.remote
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|e| self.remote_error("list", &dir, e))
    }

    /// The newest version of root `name` and its path, from a listing of that root's versions
    /// only: `None` if it was never set.
    async fn newest_version(&self, name: &str) -> Result<Option<(u64, ObjPath)>> {
        let metas = self.list_path(self.root_dir(name)).await?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let seq = m.location.filename()?.parse::<u64>().ok()?;
                Some((seq, m.location))
            })
            .max_by_key(|(seq, _)| *seq))
    }

    /// The entries of the root version at `path`; `None` if a newer change removed it since
    /// it was listed.
    async fn read_root(&self, path: &ObjPath) -> Result<Option<Vec<(String, ContentKey)>>> {
        self.count(&self.counters.requests, 1);
        let bytes = match self.remote.get(path).await {
            Ok(r) => r.bytes().await,
            Err(e) => Err(e),
        };
        let bytes = match bytes {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.remote_error("read", path, e)),
        };
        let location = format!("{}/{}", self.url_root(), path);
        roots::decode(&bytes)
            .map(Some)
            .map_err(|e| e.at("root", location))
    }

    /// Every version of every root: (name, sequence, path), from one listing.
    async fn root_versions(&self) -> Result<Vec<(String, u64, ObjPath)>> {
        let metas = self.list("roots").await?;
        let mut out = Vec::new();
        for m in metas {
            let parts: Vec<_> = m.location.parts().collect();
            let n = parts.len();
            if n < 2 {
                continue;
            }
            let (Some(name), Ok(seq)) = (
                unhex_name(parts[n - 2].as_ref()),
                parts[n - 1].as_ref().parse::<u64>(),
            ) else {
                continue;
            };
            out.push((name, seq, m.location));
        }
        Ok(out)
    }

    /// Objects under the prefix and when each was last written.
    async fn object_metas(&self) -> Result<Vec<(ContentKey, age::Modified)>> {
        let metas = self.list("objects").await?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                let key: ContentKey = name.parse().ok()?;
                Some((key, age::Modified::of(&m)))
            })
            .collect())
    }
}

/// The age of an object, without a date-time dependency of our own.
mod age {
    use std::time::{Duration, SystemTime};

    /// When an object was last written, as the service reports it.
    #[derive(Debug, Clone, Copy)]
    pub struct Modified(pub SystemTime);

    impl Modified {
        pub fn of(m: &object_store::ObjectMeta) -> Modified {
            let secs = m.last_modified.timestamp();
            let t = if secs >= 0 {
                SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
            } else {
                SystemTime::UNIX_EPOCH
            };
            Modified(t)
        }

        /// True if written less than `grace` ago (or in the future, by the service's clock).
        pub fn younger_than(self, grace: Duration) -> bool {
            match SystemTime::now().duration_since(self.0) {
                Ok(age) => age < grace,
                Err(_) => true,
            }
        }
    }
}

fn parse_url(url: &str) -> Result<(String, String)> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{url:?} is not an S3 location: expected s3://BUCKET/PREFIX"
        ))
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{url:?} names no bucket: expected s3://BUCKET/PREFIX"
        )));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

/// A root name as one path segment: its UTF-8 bytes in hex.
fn hex_name(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex_name(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

impl BlobStore for S3Store {
    fn put_batch(&self, batch: &[Put<'_>]) -> Result<()> {
        // Uploads run concurrently, so a parent may become visible before its children; it is
        // only ever named (by a root, or by a key handed to another machine) after put_batch
        // returns, when all of them are there.
        let bodies: Vec<(ContentKey, Vec<u8>)> = batch
            .iter()
            .map(|p| {
                let mut body = Vec::with_capacity(record::record_len(
                    p.children.len(),
                    p.payload.len(),
                ) as usize);
                record::encode(&mut body, RecordKind::Put, &p.key, p.children, p.payload);
                (p.key, body)
            })
            .collect();
        let concurrency = self.opts.concurrency;
        let written: Vec<bool> = self.run(async {
            stream::iter(bodies)
                .map(|(k, b)| self.put_one(k, b))
                .buffer_unordered(concurrency)
                .try_collect()
                .await
        })?;
        let fresh = written.iter().filter(|w| **w).count() as u64;
        self.count(&self.counters.puts, fresh);
        self.count(&self.counters.dedup_hits, written.len() as u64 - fresh);
        Ok(())
    }

    fn get(&self, key: &ContentKey) -> Result<Option<Blob>> {
        self.count(&self.counters.gets, 1);
        let Some(bytes) = self.run(self.get_record(key))? else {
            return Ok(None);
        };
        let r = self.checked(key, &bytes)?;
        Ok(Some(Blob {
            children: r.child_keys(),
            payload: r.payload.to_vec(),
        }))
    }

    fn contains(&self, key: &ContentKey) -> Result<bool> {
        let path = self.object_path(key);
        self.count(&self.counters.requests, 1);
        match self.run(self.remote.head(&path)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.remote_error("look up", &path, e)),
        }
    }

    fn contains_many(&self, keys: &[ContentKey]) -> Result<Vec<bool>> {
        let concurrency = self.opts.concurrency;
        self.run(
            stream::iter(keys.iter().copied())
                .map(|k| async move {
                    let path = self.object_path(&k);
                    self.count(&self.counters.requests, 1);
                    match self.remote.head(&path).await {
                        Ok(_) => Ok(true),
                        Err(object_store::Error::NotFound { .. }) => Ok(false),
                        Err(e) => Err(self.remote_error("look up", &path, e)),
                    }
                })
                .buffered(concurrency)
                .try_collect(),
        )
    }

    fn get_many(&self, keys: &[ContentKey]) -> Result<Vec<Option<Blob>>> {
        self.count(&self.counters.gets, keys.len() as u64);
        let concurrency = self.opts.concurrency;
        let records: Vec<Option<Vec<u8>>> = self.run(
            stream::iter(keys.iter().copied())
                .map(|k| self.get_record_owned(k))
                .buffered(concurrency)
                .try_collect(),
        )?;
        keys.iter()
            .zip(records)
            .map(|(key, bytes)| {
                let Some(bytes) = bytes else { return Ok(None) };
                let r = self.checked(key, &bytes)?;
                Ok(Some(Blob {
                    children: r.child_keys(),
                    payload: r.payload.to_vec(),
                }))
            })
            .collect()
    }

    fn children(&self, key: &ContentKey) -> Result<Option<Vec<ContentKey>>> {
        let Some(bytes) = self.run(self.get_record(key))? else {
            return Ok(None);
        };
        Ok(Some(self.checked(key, &bytes)?.child_keys()))
    }

    fn delete(&self, keys: &[ContentKey]) -> Result<()> {
        let grace = self.opts.gc_grace;
        let concurrency = self.opts.concurrency;
        let (deleted, young) = self.run(async {
            let outcomes: Vec<u8> = stream::iter(keys.iter().copied())
                .map(|k| async move {
                    let path = self.object_path(&k);
                    self.count(&self.counters.requests, 2);
                    let meta = match self.remote.head(&path).await {
                        Ok(m) => m,
                        Err(object_store::Error::NotFound { .. }) => return Ok(0u8),
                        Err(e) => return Err(self.remote_error("look up", &path, e)),
                    };
                    if age::Modified::of(&meta).younger_than(grace) {
                        return Ok(2);
                    }
                    match self.remote.delete(&path).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(1),
                        Err(e) => Err(self.remote_error("delete", &path, e)),
                    }
                })
                .buffer_unordered(concurrency)
                .try_collect()
                .await?;
            let deleted = outcomes.iter().filter(|o| **o == 1).count() as u64;
            let young = outcomes.iter().filter(|o| **o == 2).count() as u64;
            Ok::<_, Error>((deleted, young))
        })?;
        self.count(&self.counters.deletes, deleted);
        if young > 0 {
            self.count(&self.counters.kept_young, young);
            tracing::info!(store = %self.url, kept = young, grace_secs = grace.as_secs(),
                "kept objects younger than the grace period");
        }
        Ok(())
    }

    fn keys(&self) -> Result<Vec<ContentKey>> {
        Ok(self
            .run(self.object_metas())?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    fn flush(&self, _durability: Durability) -> Result<()> {
        // Every put was acknowledged by the service before `put_batch` returned.
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        let c = &self.counters;
        StoreStats {
            puts: c.puts.load(Ordering::Relaxed),
            dedup_hits: c.dedup_hits.load(Ordering::Relaxed),
            gets: c.gets.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            ..StoreStats::default()
        }
    }

    fn describe(&self) -> String {
        format!("S3 store {}", self.url)
    }

    fn roots(&self) -> Result<Vec<(String, ContentKey)>> {
        let versions = self.run(self.root_versions())?;
        let mut newest: std::collections::BTreeMap<String, (u64, ObjPath)> = Default::default();
        for (name, seq, path) in versions {
            let e = newest.entry(name).or_insert((seq, path.clone()));
            if seq > e.0 {
                *e = (seq, path);
            }
        }
        let mut out = Vec::new();
        for (name, (_, path)) in newest {
            // Removed by a newer change between the listing and this read: read again later.
            if let Some(entries) = self.run(self.read_root(&path))? {
                out.extend(entries.into_iter().filter(|(n, _)| *n == name));
            }
        }
        Ok(out)
    }

    /// One listing of this root's versions and one read of the newest: the other roots are
    /// not listed or read.
    fn root(&self, name: &str) -> Result<Option<ContentKey>> {
        super::default_roots::check_name(name)?;
        // A version removed between the listing and the read was replaced by a newer one:
        // look again (a few times; a root changed faster than that is reported).
        for _ in 0..8 {
            let Some((_, path)) = self.run(self.newest_version(name))? else {
                return Ok(None);
            };
            if let Some(entries) = self.run(self.read_root(&path))? {
                return Ok(entries.into_iter().find(|(n, _)| n == name).map(|(_, k)| k));
            }
        }
        Err(Error::Conflict {
            what: format!("root {name:?} (a read)"),
            store: self.describe(),
            detail: "it changed during each of 8 reads (other writers change it faster than it \
                     can be read); read it again"
                .into(),
        })
    }

    fn set_root(&self, name: &str, key: Option<ContentKey>) -> Result<()> {
        super::default_roots::check_name(name)?;
        if let Some(k) = key
            && !self.contains(&k)?
        {
            return Err(Error::NotFound {
                key: k,
                store: self.describe(),
            });
        }
        let newest = self.root_version(name)?;
        self.set_root_after(name, key, newest)
    }
}

impl S3Store {
    /// The version of root `name` (0 if it was never set): each change makes the next one.
    pub fn root_version(&self, name: &str) -> Result<u64> {
        Ok(self
            .run(self.newest_version(name))?
            .map_or(0, |(seq, _)| seq))
    }

    /// Sets (`Some`) or removes (`None`) root `name` only if its version is still `seen` (read
    /// with [`root_version`](Self::root_version)): a compare-and-set across machines. If
    /// another writer changed it since, nothing is written and the error is
    /// [`Error::Conflict`]. [`set_root`](BlobStore::set_root) is this with the newest version.
    pub fn set_root_after(&self, name: &str, key: Option<ContentKey>, seen: u64) -> Result<()> {
        super::default_roots::check_name(name)?;
        if let Some(k) = key
            && !self.contains(&k)?
        {
            return Err(Error::NotFound {
                key: k,
                store: self.describe(),
            });
        }
        let next = seen + 1;
        let path = self.root_dir(name).child(format!("{next:020}"));
        let body = match key {
            Some(k) => roots::encode(&[(name.to_string(), k)]),
            None => roots::encode(&[]),
        };
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        self.count(&self.counters.requests, 1);
        match self.run(self.remote.put_opts(&path, PutPayload::from(body), opts)) {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                return Err(Error::Conflict {
                    what: format!("root {name:?}"),
                    store: self.describe(),
                    detail: format!(
                        "another writer changed it at the same time (version {next} exists); read the roots again and retry"
                    ),
                });
            }
            Err(e) => return Err(self.remote_error("write", &path, e)),
        }
        // Versions older than the previous one are no longer read by anyone who lists after
        // this change: tidy them, keeping the previous one for readers that listed before it.
        let old: Vec<ObjPath> = self
            .run(self.root_versions())?
            .into_iter()
            .filter(|(n, seq, _)| n == name && *seq + 1 < next)
            .map(|(_, _, p)| p)
            .collect();
        for p in old {
            let _ = self.run(self.remote.delete(&p));
        }
        Ok(())
    }
}

impl S3Store {
    /// Objects kept by [`delete`](BlobStore::delete) because they were younger than the grace
    /// period, so far.
    pub fn kept_young(&self) -> u64 {
        self.counters.kept_young.load(Ordering::Relaxed)
    }

    /// Requests sent to the service so far (for tests and measurements: a lazy walk fetches only
    /// what it touches).
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    /// The store's location, `s3://bucket/prefix`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_root_names() {
        assert_eq!(
            parse_url("s3://bucket/a/b/").expect("url"),
            ("bucket".to_string(), "a/b".to_string())
        );
        assert_eq!(
            parse_url("s3://bucket").expect("url"),
            ("bucket".to_string(), String::new())
        );
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("s3:///x").is_err());
        for name in ["demo/build", "ünïcode", "a"] {
            assert_eq!(unhex_name(&hex_name(name)).as_deref(), Some(name));
        }
        assert_eq!(unhex_name("zz"), None);
    }
}
