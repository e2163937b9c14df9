//! The bad-file corpus: every kind of file spillway writes (docs/FORMAT.md), damaged in every
//! way a disk, a copy or a person can damage it, and opened through the public API the way a
//! user would (open the store and read every object and root back, open the container and read
//! every section, open the pack, then verify).
//!
//! Damage: the file at zero length; cut at several points; one bit flipped at several offsets;
//! a wrong magic; a newer version (checksums fixed, so that the version check is what speaks);
//! and lengths and counts claimed huge (2^40, `u32::MAX`, `u64::MAX`, checksums fixed).
//!
//! Every case must end in one of:
//! - an error whose message names the damaged file (at open, or when the damaged data is read);
//! - for a file the format calls optional or derived (the index checkpoint, a pack's index, the
//!   lock file's text, the spare slot of `SYNC` or of a container), its documented behaviour,
//!   with the store's report saying what it ignored or rebuilt where the format says it does.
//!
//! and in every case: no panic, no data returned that differs from what was stored, and no
//! single allocation above [`MAX_ALLOCATION`] (a global allocator counts them), so a claimed
//! length is never allocated before it is checked against the bytes present.
//!
//! Each test prints its number of cases.

// The counting allocator forwards to the system allocator: the only unsafe code here.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use spillway::container::{Change, Container, ContainerOptions, SectionData, SlotState, types};
use spillway::format::{marker, object};
use spillway::store::log::verify;
use spillway::store::{
    CheckReport, DirStore, DirStoreOptions, PackStore, SqliteStore, export_pack,
};
use spillway::{BlobStore, ContentKey, Durability, LogStore, LogStoreOptions, MemStore, Put};

/// The largest single allocation any case may make: far below every huge length the cases
/// claim, far above what the small files of the corpus need.
const MAX_ALLOCATION: usize = 64 << 20;

/// Counts the largest single allocation (or reallocation) since the last reset.
struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One test at a time: the largest allocation is counted process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

/// Cases run by every test of this binary so far.
static CASES: AtomicUsize = AtomicUsize::new(0);

// ------------------------------------------------------------------------------------------
// Damage

/// One way of damaging a file.
#[derive(Debug, Clone)]
enum Damage {
    /// The file cut to this many bytes (0: zero length).
    Truncate(usize),
    /// Bit `offset % 8` of the byte at `offset` flipped.
    Flip(usize),
    /// One bit flipped at each of these offsets (as [`Damage::Flip`]).
    Flips(&'static str, Vec<usize>),
    /// These bytes written at this offset, then the checksums named by `fix` recomputed: a
    /// wrong magic, a newer version, a huge length.
    Set {
        what: &'static str,
        at: usize,
        bytes: Vec<u8>,
        fix: Fix,
    },
}

/// Checksums to recompute after a [`Damage::Set`], so that the field itself is what a reader
/// checks.
#[derive(Debug, Clone, Copy)]
enum Fix {
    /// None: the damage is to be caught by a checksum or a magic.
    Nothing,
    /// CRC32C of bytes `from..to` stored at `at`.
    Crc { from: usize, to: usize, at: usize },
    /// CRC32C of every byte before the last four, stored in the last four.
    Trailing,
    /// The object file's second checksum: bytes 0..44, then its child keys.
    Object { children: usize },
    /// A container's section checksums, directory checksums and slot checksums, for both slots.
    Container,
}

impl Damage {
    fn describe(&self) -> String {
        match self {
            Damage::Truncate(0) => "zero length".into(),
            Damage::Truncate(n) => format!("cut to {n} bytes"),
            Damage::Flip(at) => format!("bit {} of byte {at} flipped", at % 8),
            Damage::Flips(what, _) => what.to_string(),
            Damage::Set { what, .. } => what.to_string(),
        }
    }

    fn apply(&self, bytes: &mut Vec<u8>) {
        match self {
            Damage::Truncate(n) => bytes.truncate(*n),
            Damage::Flip(at) => bytes[*at] ^= 1 << (at % 8),
            Damage::Flips(_, at) => at.iter().for_each(|&a| bytes[a] ^= 1 << (a % 8)),
            Damage::Set {
                at, bytes: b, fix, ..
            } => {
                bytes[*at..*at + b.len()].copy_from_slice(b);
                fix.apply(bytes);
            }
        }
    }
}

impl Fix {
    fn apply(self, b: &mut [u8]) {
        match self {
            Fix::Nothing => {}
            Fix::Crc { from, to, at } => {
                let crc = crc32c::crc32c(&b[from..to]);
                b[at..at + 4].copy_from_slice(&crc.to_le_bytes());
            }
            Fix::Trailing => {
                let n = b.len() - 4;
                let crc = crc32c::crc32c(&b[..n]);
                b[n..].copy_from_slice(&crc.to_le_bytes());
            }
            Fix::Object { children } => {
                let end = (48 + 16 * children).min(b.len());
                let crc = crc32c::crc32c_append(crc32c::crc32c(&b[..44]), &b[48..end]);
                b[44..48].copy_from_slice(&crc.to_le_bytes());
            }
            Fix::Container => reseal_container(b),
        }
    }
}

/// Recomputes, for each slot of a container file, the checksum of every section its
/// directory lists, the directory's checksum and the slot's own: a field changed inside a
/// section, a directory or a slot then reaches the code that reads it.
fn reseal_container(b: &mut [u8]) {
    let page = u32_at(b, 12) as usize;
    for slot in [page, 2 * page] {
        if b.len() < slot + 64 || b[slot..slot + 8] != *b"SPILLSLT" {
            continue;
        }
        let dir = u64_at(b, slot + 16);
        let count = u32_at(b, slot + 24) as usize;
        let dir_ok = usize::try_from(dir)
            .ok()
            .filter(|&d| count <= 1 << 16 && d.saturating_add(count * 64) <= b.len());
        if let Some(dir) = dir_ok {
            for i in 0..count {
                let e = dir + i * 64;
                let (off, len) = (u64_at(b, e + 16), u64_at(b, e + 24));
                if let (Ok(off), Ok(len)) = (usize::try_from(off), usize::try_from(len))
                    && off.saturating_add(len) <= b.len()
                {
                    let crc = crc32c::crc32c(&b[off..off + len]);
                    b[e + 12..e + 16].copy_from_slice(&crc.to_le_bytes());
                }
            }
            let crc = crc32c::crc32c(&b[dir..dir + count * 64]);
            b[slot + 28..slot + 32].copy_from_slice(&crc.to_le_bytes());
        }
        let crc = crc32c::crc32c(&b[slot..slot + 60]);
        b[slot + 60..slot + 64].copy_from_slice(&crc.to_le_bytes());
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Zero length, cuts, and one-bit flips spread over the file (the header densely, the rest at a
/// few points), for a file of `len` bytes.
fn generic(len: usize) -> Vec<Damage> {
    let mut cuts = vec![0, 1, 4, 7, 8, 12, 16, 31, 32, 44, 47, 48, 63, 64];
    cuts.extend([
        len / 3,
        len / 2,
        len.saturating_sub(4),
        len.saturating_sub(1),
    ]);
    let mut flips: Vec<usize> = (0..64).step_by(3).collect();
    flips.extend([
        len / 3,
        len / 2,
        2 * len / 3,
        len.saturating_sub(5),
        len.saturating_sub(1),
    ]);
    let mut out = Vec::new();
    cuts.sort_unstable();
    cuts.dedup();
    out.extend(cuts.into_iter().filter(|&c| c < len).map(Damage::Truncate));
    flips.sort_unstable();
    flips.dedup();
    out.extend(flips.into_iter().filter(|&f| f < len).map(Damage::Flip));
    out
}

fn set(what: &'static str, at: usize, bytes: &[u8], fix: Fix) -> Damage {
    Damage::Set {
        what,
        at,
        bytes: bytes.to_vec(),
        fix,
    }
}

/// A header checksum over bytes `0..at`, stored at `at`.
fn header_crc(at: usize) -> Fix {
    Fix::Crc {
        from: 0,
        to: at,
        at,
    }
}

const HUGE_U64: [u64; 2] = [1 << 40, u64::MAX];

// ------------------------------------------------------------------------------------------
// What a user sees

/// What opening a damaged store (or file) and reading everything back showed.
#[derive(Default, Debug)]
struct Seen {
    /// The error that open returned.
    open_error: Option<String>,
    /// Errors returned by reads, root listings and closing.
    read_errors: Vec<String>,
    /// What the store reported at open: a checkpoint ignored, an index rebuilt, a tail cut.
    notes: Vec<String>,
    /// Problems `verify` (or `check`) reported, or its error.
    verify_problems: Vec<String>,
    /// Data returned that differs from what was stored, or stored data silently gone. Always
    /// a failure.
    wrong: Vec<String>,
}

impl Seen {
    fn errors(&self) -> impl Iterator<Item = &String> {
        self.open_error.iter().chain(&self.read_errors)
    }

    /// Records what a store's own check found and whether closing it failed.
    fn checked_and_closed(
        &mut self,
        check: spillway::Result<CheckReport>,
        close: spillway::Result<()>,
    ) {
        match check {
            Err(e) => self.verify_problems.push(e.to_string()),
            Ok(r) => self.verify_problems.extend(r.problems),
        }
        if let Err(e) = close {
            self.read_errors.push(e.to_string());
        }
    }

    fn noticed(&self) -> bool {
        self.open_error.is_some()
            || !self.read_errors.is_empty()
            || !self.notes.is_empty()
            || !self.verify_problems.is_empty()
    }

    fn summary(&self) -> String {
        if let Some(e) = &self.open_error {
            return format!("open failed: {e}");
        }
        let mut parts = Vec::new();
        if !self.read_errors.is_empty() {
            parts.push(format!("reads failed: {}", self.read_errors.join(" | ")));
        }
        if !self.notes.is_empty() {
            parts.push(format!("reported: {}", self.notes.join(" | ")));
        }
        if !self.verify_problems.is_empty() {
            parts.push(format!("verify: {}", self.verify_problems.join(" | ")));
        }
        if parts.is_empty() {
            "opened, nothing noticed".into()
        } else {
            parts.join("; ")
        }
    }
}

/// The objects and roots a fixture stored, to read back.
#[derive(Clone)]
struct Stored {
    objects: Vec<(ContentKey, Vec<ContentKey>, Vec<u8>)>,
    roots: Vec<(String, ContentKey)>,
}

impl Stored {
    /// A small graph: leaves of several sizes, a parent of some of them, a root on it.
    fn graph(leaves: usize) -> Stored {
        let mut objects = Vec::new();
        for i in 0..leaves {
            let payload: Vec<u8> = (0..(40 + i * 37)).map(|j| (i * 7 + j) as u8).collect();
            objects.push((ContentKey::of(&payload, &[]), Vec::new(), payload));
        }
        let children: Vec<ContentKey> = objects.iter().take(3).map(|o| o.0).collect();
        let payload = b"the parent".to_vec();
        let parent = ContentKey::of(&payload, &children);
        objects.push((parent, children, payload));
        Stored {
            objects,
            roots: vec![("main".into(), parent)],
        }
    }

    fn puts(&self) -> Vec<Put<'_>> {
        self.objects
            .iter()
            .map(|(_, c, p)| Put::new(p, c))
            .collect()
    }

    /// The store `opened`, after reading everything back from it; `None` if it did not open
    /// (the error recorded).
    fn open_and_read<S: BlobStore>(
        &self,
        opened: spillway::Result<S>,
        seen: &mut Seen,
    ) -> Option<S> {
        match opened {
            Err(e) => {
                seen.open_error = Some(e.to_string());
                None
            }
            Ok(store) => {
                self.read_back(&store, seen);
                Some(store)
            }
        }
    }

    /// Reads every object and the roots back from `store` into `seen`.
    fn read_back(&self, store: &dyn BlobStore, seen: &mut Seen) {
        for (key, children, payload) in &self.objects {
            match store.get(key) {
                Ok(Some(b)) if b.children == *children && b.payload == *payload => {}
                Ok(Some(_)) => seen.wrong.push(format!("object {key} read back different")),
                Ok(None) => seen.wrong.push(format!("object {key} silently gone")),
                Err(e) => seen.read_errors.push(e.to_string()),
            }
        }
        match store.roots() {
            Ok(r) if r == self.roots => {}
            Ok(r) => seen
                .wrong
                .push(format!("roots read back as {r:?}, stored {:?}", self.roots)),
            Err(e) => seen.read_errors.push(e.to_string()),
        }
    }
}

// ------------------------------------------------------------------------------------------
// The harness

/// A file kind's damages and what each may end in.
struct Kind {
    /// Shown in failures and in the count.
    name: &'static str,
    /// The file, relative to the fixture's root.
    file: PathBuf,
    /// What an error must name: the file's name.
    names: String,
    damages: Vec<Damage>,
    /// Damage the format tolerates without a word (the file's content is not data, or the
    /// damage hits a part a reader never uses): why. Such a case passes if nothing was noticed.
    may_pass_unnoticed: Option<fn(&Damage) -> Option<&'static str>>,
}

/// Runs every damage of `kind` on a copy of `fixture`, opened by `open`, and returns the failures
/// and the number of cases.
fn run_kind(
    fixture: &Path,
    kind: &Kind,
    open: &dyn Fn(&Path) -> Seen,
    failures: &mut Vec<String>,
) -> usize {
    let verbose = std::env::var_os("SPILLWAY_BAD_FILES_VERBOSE").is_some();
    let original = std::fs::read(fixture.join(&kind.file)).expect("read the fixture's file");
    for damage in &kind.damages {
        let case = format!(
            "{} ({}): {}",
            kind.name,
            kind.file.display(),
            damage.describe()
        );
        let dir = tempfile::tempdir().expect("temporary directory");
        copy_tree(fixture, dir.path());
        let mut bytes = original.clone();
        damage.apply(&mut bytes);
        std::fs::write(dir.path().join(&kind.file), &bytes).expect("write the damaged file");
        LARGEST.store(0, Ordering::Relaxed);
        let result = catch_unwind(AssertUnwindSafe(|| open(dir.path())));
        let largest = LARGEST.load(Ordering::Relaxed);
        CASES.fetch_add(1, Ordering::Relaxed);
        let seen = match result {
            Ok(seen) => seen,
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{case}: panicked: {msg}"));
                continue;
            }
        };
        if verbose {
            eprintln!("{case}: {} (largest allocation {largest})", seen.summary());
        }
        if largest > MAX_ALLOCATION {
            failures.push(format!(
                "{case}: allocated {largest} bytes at once (limit {MAX_ALLOCATION})"
            ));
        }
        if !seen.wrong.is_empty() {
            failures.push(format!("{case}: wrong data: {}", seen.wrong.join(" | ")));
        }
        for e in seen.errors() {
            if !e.contains(&kind.names) {
                failures.push(format!(
                    "{case}: the error does not name {}: {e}",
                    kind.names
                ));
            }
        }
        if !seen.noticed() {
            let allowed = kind.may_pass_unnoticed.and_then(|f| f(damage));
            if allowed.is_none() {
                failures.push(format!("{case}: the damage went unnoticed"));
            }
        }
    }
    kind.damages.len()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

/// Runs `kinds` and fails with every failure found, after printing the count.
fn run_all(label: &str, fixture: &Path, kinds: &[Kind], open: &dyn Fn(&Path) -> Seen) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut failures = Vec::new();
    let mut cases = 0;
    for kind in kinds {
        cases += run_kind(fixture, kind, open, &mut failures);
    }
    println!(
        "{label}: {cases} bad-file cases over {} file kinds",
        kinds.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The damages that change a format's version field (u32 at `at`) to the next one, with the
/// checksum fix that makes the version what a reader sees.
fn newer_version(at: usize, current: u32, fix: Fix) -> Damage {
    set("a newer version", at, &(current + 1).to_le_bytes(), fix)
}

fn wrong_magic(at: usize, len: usize, fix: Fix) -> Damage {
    set("a wrong magic", at, &b"NOTSPILL"[..len], fix)
}

fn huge_u64(what: &'static str, at: usize, fix: Fix) -> Vec<Damage> {
    HUGE_U64
        .iter()
        .map(|v| set(what, at, &v.to_le_bytes(), fix))
        .collect()
}

fn huge_u32(what: &'static str, at: usize, fix: Fix) -> Damage {
    set(what, at, &u32::MAX.to_le_bytes(), fix)
}

/// A 16-byte store marker (magic, version, CRC32C of the 12 bytes before it) at `version`.
fn marker(name: &'static str, file: &'static str, version: u32) -> Kind {
    let mut damages = generic(16);
    damages.push(wrong_magic(0, 8, header_crc(12)));
    damages.push(newer_version(8, version, header_crc(12)));
    Kind {
        name,
        file: file.into(),
        names: file.into(),
        damages,
        may_pass_unnoticed: None,
    }
}

fn file_len(p: &Path) -> usize {
    std::fs::metadata(p).expect("metadata").len() as usize
}

// ------------------------------------------------------------------------------------------
// Log store

fn log_fixture(dir: &Path) -> Stored {
    let stored = Stored::graph(60);
    let opts = LogStoreOptions::default().segment_size(4096);
    let store = LogStore::open_with(dir, opts).expect("create the log store");
    let puts = stored.puts();
    let (first, rest) = puts.split_at(30);
    store.put_batch(first).expect("put");
    store.checkpoint().expect("checkpoint");
    store.put_batch(rest).expect("put");
    for (name, key) in &stored.roots {
        store.set_root(name, Some(*key)).expect("root");
    }
    store.flush(Durability::Durable).expect("flush");
    // Open and close once more, so that both slots of `SYNC` are written.
    drop(store);
    LogStore::open(dir).expect("reopen").close().expect("close");
    stored
}

fn open_log(dir: &Path, stored: &Stored) -> Seen {
    let mut seen = Seen::default();
    match LogStore::open(dir) {
        Err(e) => seen.open_error = Some(e.to_string()),
        Ok(store) => {
            let r = store.recovery();
            seen.notes.extend(r.checkpoint_problem.clone());
            seen.notes.extend(
                r.torn_tail
                    .as_ref()
                    .map(|t| format!("torn tail cut: {}", t.reason)),
            );
            stored.read_back(&store, &mut seen);
            if let Err(e) = store.close() {
                seen.read_errors.push(e.to_string());
            }
        }
    }
    match verify(dir) {
        Err(e) => seen.verify_problems.push(e.to_string()),
        Ok(v) => seen.verify_problems.extend(v.problems),
    }
    seen
}

#[test]
fn log_store_files() {
    let fixture = tempfile::tempdir().expect("temporary directory");
    let stored = log_fixture(fixture.path());
    let dir = fixture.path();
    let mut segments: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| n.starts_with("seg-"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "the fixture spans several segments");
    let mut kinds = Vec::new();

    kinds.push(marker("store marker", "STORE", marker::STORE_VERSION));

    let sync_len = file_len(&dir.join("SYNC"));
    let mut damages = generic(sync_len);
    for slot in [0, 4096] {
        let fix = Fix::Crc {
            from: slot,
            to: slot + 44,
            at: slot + 44,
        };
        damages.push(wrong_magic(slot, 8, fix));
        damages.push(newer_version(slot + 8, 1, fix));
        damages.extend(huge_u64("a huge generation", slot + 16, fix));
        damages.extend(huge_u64("a huge durable offset", slot + 32, fix));
    }
    damages.push(Damage::Flips("both slots flipped", vec![20, 4096 + 20]));
    kinds.push(Kind {
        name: "sync record",
        file: "SYNC".into(),
        names: "SYNC".into(),
        damages,
        may_pass_unnoticed: Some(|d| match d {
            Damage::Flips(..) => None,
            // Two slots: the newest valid one is the mark. Damage to one slot leaves the
            // other, which is whole; a file cut inside its first slot is a first record that
            // a crash cut short (no mark: the rule of version 1). Either way the store opens,
            // as FORMAT.md says, and rewrites the file; nothing past the mark was at stake.
            _ => Some("one slot of SYNC is whole, or the file is a first record cut short"),
        }),
    });

    kinds.push(Kind {
        name: "lock file",
        file: "LOCK".into(),
        names: "LOCK".into(),
        damages: generic(file_len(&dir.join("LOCK"))),
        may_pass_unnoticed: Some(|_| Some("the lock file's text is informational")),
    });

    for seg in [&segments[0], segments.last().expect("a segment")] {
        let len = file_len(&dir.join(seg));
        let mut damages = generic(len);
        damages.push(wrong_magic(0, 8, header_crc(28)));
        damages.push(newer_version(8, 1, header_crc(28)));
        damages.push(wrong_magic(32, 4, Fix::Nothing));
        damages.push(huge_u32("a huge child count", 32 + 12, Fix::Nothing));
        damages.push(huge_u32("a huge payload length", 32 + 16, Fix::Nothing));
        kinds.push(Kind {
            name: "segment",
            file: seg.into(),
            names: seg.clone(),
            damages,
            may_pass_unnoticed: None,
        });
    }

    let len = file_len(&dir.join("index.ckpt"));
    let mut damages = generic(len);
    damages.push(wrong_magic(0, 8, header_crc(44)));
    damages.push(newer_version(8, 1, header_crc(44)));
    damages.extend(huge_u64("a huge entry count", 32, header_crc(44)));
    damages.push(set(
        "a huge record length in an entry",
        48 + 32,
        &u32::MAX.to_le_bytes(),
        Fix::Crc {
            from: 48,
            to: len,
            at: 40,
        },
    ));
    kinds.push(Kind {
        name: "index checkpoint",
        file: "index.ckpt".into(),
        names: "index.ckpt".into(),
        damages,
        may_pass_unnoticed: None,
    });

    let mut damages = generic(file_len(&dir.join("ROOTS")));
    damages.push(wrong_magic(0, 8, Fix::Trailing));
    damages.push(newer_version(8, 1, Fix::Trailing));
    damages.push(huge_u32("a huge root count", 12, Fix::Trailing));
    damages.push(set(
        "a huge name length",
        16,
        &u16::MAX.to_le_bytes(),
        Fix::Trailing,
    ));
    kinds.push(Kind {
        name: "roots file",
        file: "ROOTS".into(),
        names: "ROOTS".into(),
        damages,
        may_pass_unnoticed: None,
    });

    run_all("log store", dir, &kinds, &|d| open_log(d, &stored));
}

// ------------------------------------------------------------------------------------------
// Directory store

fn dir_fixture(dir: &Path) -> Stored {
    let stored = Stored::graph(6);
    let store = DirStore::open_with(dir, DirStoreOptions::default().create(true))
        .expect("create the directory store");
    store.put_batch(&stored.puts()).expect("put");
    for (name, key) in &stored.roots {
        store.set_root(name, Some(*key)).expect("root");
    }
    store.persist(stored.roots[0].1, "kept").expect("persist");
    store.close().expect("close");
    stored
}

fn open_dir(dir: &Path, stored: &Stored) -> Seen {
    let mut seen = Seen::default();
    if let Some(store) = stored.open_and_read(DirStore::open(dir), &mut seen) {
        match store.kept() {
            Ok(k) if k.len() == 1 => {}
            Ok(k) => seen.wrong.push(format!("kept graphs read back as {k:?}")),
            Err(e) => seen.read_errors.push(e.to_string()),
        }
        let check = store.check();
        seen.checked_and_closed(check, store.close());
    }
    seen
}

#[test]
fn dir_store_files() {
    let fixture = tempfile::tempdir().expect("temporary directory");
    let stored = dir_fixture(fixture.path());
    let dir = fixture.path();
    let mut kinds = Vec::new();

    kinds.push(marker(
        "directory store marker",
        "DIRSTORE",
        object::DIR_STORE_VERSION,
    ));

    // An object with children (the parent) and one without.
    let parent = stored.roots[0].1;
    let leaf = stored.objects[0].0;
    for (key, children) in [(parent, 3), (leaf, 0)] {
        let hex = key.to_string();
        let file = PathBuf::from("objects").join(&hex[..2]).join(&hex[2..]);
        let mut damages = generic(file_len(&dir.join(&file)));
        let fix = Fix::Object { children };
        damages.push(wrong_magic(0, 8, fix));
        damages.push(newer_version(8, 1, fix));
        damages.push(huge_u32("a huge child count", 12, fix));
        damages.push(huge_u32("a huge payload length", 16, fix));
        kinds.push(Kind {
            name: "object file",
            file,
            names: hex[2..].to_string(),
            damages,
            may_pass_unnoticed: None,
        });
    }

    let manifest = PathBuf::from("kept").join("kept").join("MANIFEST");
    let mut damages = generic(file_len(&dir.join(&manifest)));
    damages.push(wrong_magic(0, 8, Fix::Trailing));
    damages.push(newer_version(8, 1, Fix::Trailing));
    damages.extend(huge_u64("a huge object count", 32, Fix::Trailing));
    kinds.push(Kind {
        name: "kept graph manifest",
        file: manifest,
        names: "MANIFEST".into(),
        damages,
        may_pass_unnoticed: None,
    });

    let mut damages = generic(file_len(&dir.join("ROOTS")));
    damages.push(huge_u32("a huge root count", 12, Fix::Trailing));
    kinds.push(Kind {
        name: "roots file",
        file: "ROOTS".into(),
        names: "ROOTS".into(),
        damages,
        may_pass_unnoticed: None,
    });

    run_all("directory store", dir, &kinds, &|d| open_dir(d, &stored));
}

// ------------------------------------------------------------------------------------------
// Container and pack

const CONTAINER: &str = "data.spw";

/// The sections of the container fixture: name, type, required, bytes.
fn container_sections() -> Vec<(&'static str, u32, bool, Vec<u8>)> {
    vec![
        ("keys", types::KEY_INDEX, true, vec![7; 300]),
        ("empty", types::U64_COLUMN, false, Vec::new()),
        (
            "times",
            types::U64_COLUMN,
            true,
            (0..5000).map(|i| i as u8).collect(),
        ),
    ]
}

fn container_fixture(dir: &Path) {
    let mut c = Container::open(dir.join(CONTAINER)).expect("create the container");
    let sections = container_sections();
    fn put<'a>(
        (name, kind, required, bytes): &'a (&'static str, u32, bool, Vec<u8>),
    ) -> Change<'a> {
        Change::Put(SectionData {
            name,
            kind: *kind,
            version: 1,
            required: *required,
            mmap: true,
            index: false,
            bytes: bytes.as_slice().into(),
        })
    }
    c.checkpoint(sections[..2].iter().map(put))
        .expect("checkpoint");
    c.checkpoint(sections[2..].iter().map(put))
        .expect("checkpoint");
}

fn open_container(dir: &Path) -> Seen {
    let mut seen = Seen::default();
    let opts = ContainerOptions::read_only().any_type(true);
    match Container::open_with(dir.join(CONTAINER), opts) {
        Err(e) => seen.open_error = Some(e.to_string()),
        Ok(c) => {
            let broken = slot_notes(&c, &mut seen);
            seen.verify_problems.extend(broken);
            // A damaged newer slot opens the container at the state before it (FORMAT.md,
            // "Container file"): the first checkpoint, without the second's section.
            // (Iteration 1 is the empty state of the container's creation.)
            let expected = if c.iteration() == 3 { 3 } else { 2 };
            if c.iteration() != 3 && seen.notes.is_empty() && seen.verify_problems.is_empty() {
                seen.wrong.push(format!(
                    "opened at iteration {} with no slot damaged",
                    c.iteration()
                ));
            }
            for (i, (name, _, _, bytes)) in container_sections().into_iter().enumerate() {
                match c.read(name) {
                    Ok(None) if i >= expected => {}
                    Ok(Some(b)) if b == bytes => {}
                    Ok(Some(_)) => seen
                        .wrong
                        .push(format!("section {name} read back different")),
                    Ok(None) => seen.wrong.push(format!("section {name} silently gone")),
                    Err(e) => seen.read_errors.push(e.to_string()),
                }
            }
            match c.verify() {
                Err(e) => seen.verify_problems.push(e.to_string()),
                Ok(bad) => seen
                    .verify_problems
                    .extend(bad.into_iter().map(|(n, why)| format!("{n}: {why}"))),
            }
        }
    }
    seen
}

/// Notes every commit slot that is neither valid nor empty; returns the broken ones (they
/// check out but point at damage), which verification reports as damage.
fn slot_notes(c: &Container, seen: &mut Seen) -> Vec<String> {
    let mut broken = Vec::new();
    for (i, s) in c.slots().iter().enumerate() {
        match s {
            SlotState::Empty | SlotState::Valid { .. } => {}
            SlotState::Broken { problem, .. } => broken.push(format!("slot {i} broken: {problem}")),
            other => seen.notes.push(format!("slot {i}: {other:?}")),
        }
    }
    broken
}

/// The damages of a container file beyond the generic ones: its header's and slots' fields,
/// and a section's length in the directory.
fn container_damages(len: usize, page: usize) -> Vec<Damage> {
    let mut damages = generic(len);
    damages.push(wrong_magic(0, 8, header_crc(60)));
    damages.push(newer_version(8, 1, header_crc(60)));
    damages.push(set(
        "a huge page size",
        12,
        &(1u32 << 31).to_le_bytes(),
        header_crc(60),
    ));
    damages.push(set(
        "an unknown incompatible feature",
        24,
        &1u64.to_le_bytes(),
        header_crc(60),
    ));
    for slot in [page, 2 * page] {
        damages.extend(generic_at(slot, 64));
        damages.push(wrong_magic(slot, 8, Fix::Container));
        damages.push(huge_u32("a huge section count", slot + 24, Fix::Container));
        damages.extend(huge_u64(
            "a huge directory offset",
            slot + 16,
            Fix::Container,
        ));
        damages.extend(huge_u64("a huge file length", slot + 32, Fix::Container));
    }
    damages
}

/// Damage a container reader never reads: the slot of the previous state (used only when the
/// current one fails) and the free space between sections. (What is read is compared with
/// what was written, so a damage reported as passing here did not reach any data read.)
fn spare_space(d: &Damage) -> Option<&'static str> {
    match d {
        Damage::Flip(at) | Damage::Set { at, .. } if *at >= 64 => {
            Some("the spare slot, or space no section uses")
        }
        _ => None,
    }
}

/// One-bit flips every 5 bytes of `len` bytes from `from`.
fn generic_at(from: usize, len: usize) -> Vec<Damage> {
    (from..from + len).step_by(5).map(Damage::Flip).collect()
}

/// Where the current state's directory lies in a container file: (offset, entry count).
fn current_directory(b: &[u8]) -> (usize, usize) {
    let page = u32_at(b, 12) as usize;
    let slot = [page, 2 * page]
        .into_iter()
        .max_by_key(|&s| u64_at(b, s + 8))
        .expect("two slots");
    (u64_at(b, slot + 16) as usize, u32_at(b, slot + 24) as usize)
}

#[test]
fn container_files() {
    let fixture = tempfile::tempdir().expect("temporary directory");
    let dir = fixture.path();
    container_fixture(dir);
    let bytes = std::fs::read(dir.join(CONTAINER)).expect("read");
    let page = u32_at(&bytes, 12) as usize;
    let mut damages = container_damages(bytes.len(), page);
    let (directory, count) = current_directory(&bytes);
    for i in 0..count {
        damages.extend(huge_u64(
            "a huge section length in the directory",
            directory + i * 64 + 24,
            Fix::Container,
        ));
        damages.extend(huge_u64(
            "a huge section offset in the directory",
            directory + i * 64 + 16,
            Fix::Container,
        ));
        damages.push(Damage::Flip(directory + i * 64 + 40));
    }
    for (name, ..) in container_sections() {
        let info = Container::open_with(dir.join(CONTAINER), ContainerOptions::read_only())
            .expect("open")
            .section(name)
            .expect("a section");
        if info.len > 0 {
            damages.push(Damage::Flip(info.offset as usize + 1));
        }
    }
    let kinds = [Kind {
        name: "container file",
        file: CONTAINER.into(),
        names: CONTAINER.into(),
        damages,
        may_pass_unnoticed: Some(spare_space),
    }];
    run_all("container", dir, &kinds, &open_container);
}

const PACK: &str = "graph.pack";

fn pack_fixture(dir: &Path) -> Stored {
    let stored = Stored::graph(8);
    let mem = MemStore::new();
    mem.put_batch(&stored.puts()).expect("put");
    for (name, key) in &stored.roots {
        mem.set_root(name, Some(*key)).expect("root");
    }
    // Only the graph under the root goes into the pack.
    let mut in_pack = Stored {
        objects: Vec::new(),
        roots: stored.roots.clone(),
    };
    let root = stored.roots[0].1;
    let (_, children, _) = stored
        .objects
        .iter()
        .find(|o| o.0 == root)
        .expect("the root")
        .clone();
    in_pack.objects = stored
        .objects
        .iter()
        .filter(|o| o.0 == root || children.contains(&o.0))
        .cloned()
        .collect();
    export_pack(&mem, &["main".to_string()], &dir.join(PACK)).expect("export");
    in_pack
}

fn open_pack(dir: &Path, stored: &Stored) -> Seen {
    let mut seen = Seen::default();
    match PackStore::open(dir.join(PACK)) {
        Err(e) => seen.open_error = Some(e.to_string()),
        Ok(pack) => {
            if let Ok(c) = Container::open_with(dir.join(PACK), ContainerOptions::read_only()) {
                let broken = slot_notes(&c, &mut seen);
                seen.verify_problems.extend(broken);
            }
            let report = pack.open_report();
            seen.notes.extend(report.index_rebuilt.clone());
            seen.notes.extend(
                report
                    .damaged_ranges
                    .iter()
                    .map(|(a, b)| format!("damaged range {a}..{b}")),
            );
            stored.read_back(&pack, &mut seen);
            if let Err(e) = pack.verify_objects() {
                seen.verify_problems.push(e.to_string());
            }
        }
    }
    seen
}

#[test]
fn pack_files() {
    let fixture = tempfile::tempdir().expect("temporary directory");
    let dir = fixture.path();
    let stored = pack_fixture(dir);
    let bytes = std::fs::read(dir.join(PACK)).expect("read");
    let page = u32_at(&bytes, 12) as usize;
    let mut damages = container_damages(bytes.len(), page);
    let (directory, count) = current_directory(&bytes);
    for i in 0..count {
        let e = directory + i * 64;
        let name = String::from_utf8_lossy(&bytes[e + 32..e + 64])
            .trim_end_matches('\0')
            .to_string();
        let data = u64_at(&bytes, e + 16) as usize;
        if std::env::var_os("SPILLWAY_BAD_FILES_VERBOSE").is_some() {
            eprintln!(
                "pack section {name:?} at {data}, {} bytes",
                u64_at(&bytes, e + 24)
            );
        }
        damages.extend(huge_u64(
            "a huge section length in the directory",
            e + 24,
            Fix::Container,
        ));
        match name.as_str() {
            "objects" => {
                damages.push(huge_u32(
                    "a huge child count in a record",
                    data + 12,
                    Fix::Container,
                ));
                damages.push(huge_u32(
                    "a huge payload length in a record",
                    data + 16,
                    Fix::Container,
                ));
                damages.push(Damage::Flip(data + 40));
            }
            "object-index" => {
                damages.extend(huge_u64(
                    "a huge record offset in the index",
                    data + 16,
                    Fix::Container,
                ));
                damages.push(huge_u32(
                    "a huge record length in the index",
                    data + 24,
                    Fix::Container,
                ));
                damages.push(Damage::Flip(data + 3));
            }
            "roots" => {
                damages.push(huge_u32("a huge root count", data + 12, Fix::Container));
                damages.push(set(
                    "a huge root name length",
                    data + 16,
                    &u16::MAX.to_le_bytes(),
                    Fix::Container,
                ));
                damages.push(Damage::Flip(data + 20));
            }
            other => panic!("a pack section the test does not know: {other}"),
        }
    }
    let kinds = [Kind {
        name: "pack",
        file: PACK.into(),
        names: PACK.into(),
        damages,
        may_pass_unnoticed: Some(spare_space),
    }];
    run_all("pack", dir, &kinds, &|d| open_pack(d, &stored));
}

// ------------------------------------------------------------------------------------------
// SQLite store

const DATABASE: &str = "store.db";

fn sqlite_fixture(dir: &Path) -> Stored {
    let stored = Stored::graph(6);
    let store = SqliteStore::open(dir.join(DATABASE)).expect("create the SQLite store");
    store.put_batch(&stored.puts()).expect("put");
    for (name, key) in &stored.roots {
        store.set_root(name, Some(*key)).expect("root");
    }
    store.flush(Durability::Durable).expect("flush");
    store.close().expect("close");
    stored
}

fn open_sqlite(dir: &Path, stored: &Stored) -> Seen {
    let mut seen = Seen::default();
    if let Some(store) = stored.open_and_read(SqliteStore::open(dir.join(DATABASE)), &mut seen) {
        let check = store.check();
        seen.checked_and_closed(check, store.close());
    }
    seen
}

#[test]
fn sqlite_database() {
    let fixture = tempfile::tempdir().expect("temporary directory");
    let dir = fixture.path();
    let stored = sqlite_fixture(dir);
    let len = file_len(&dir.join(DATABASE));
    // Zero bytes is a store whose creation was cut short (FORMAT.md, "SQLite store"): it is
    // created again, below.
    let mut damages: Vec<Damage> = generic(len)
        .into_iter()
        .filter(|d| !matches!(d, Damage::Truncate(0)))
        .collect();
    // SQLite's own header: its magic, and our application id (big-endian, at 68).
    damages.push(set("a wrong magic", 0, b"NOT SQLite", Fix::Nothing));
    damages.push(set(
        "another application id",
        68,
        &[0x12, 0x34, 0x56, 0x78], // big-endian, as SQLite stores it
        Fix::Nothing,
    ));
    let kinds = [Kind {
        name: "SQLite database",
        file: DATABASE.into(),
        names: DATABASE.into(),
        damages,
        may_pass_unnoticed: Some(|d| match d {
            // SQLite's 100-byte header holds counters and hints that no read depends on.
            Damage::Flip(at) if *at < 100 => Some("a field of SQLite's header no read uses"),
            _ => None,
        }),
    }];
    run_all("SQLite store", dir, &kinds, &|d| open_sqlite(d, &stored));

    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::write(dir.join(DATABASE), b"").expect("cut the database to zero bytes");
    let store =
        SqliteStore::open(dir.join(DATABASE)).expect("a zero-byte database is created again");
    assert!(store.keys().expect("keys").is_empty());
    assert!(store.roots().expect("roots").is_empty());
    CASES.fetch_add(1, Ordering::Relaxed);
}

// ------------------------------------------------------------------------------------------
// Regressions: bugs the corpus found, each pinned on its own.

/// A durable mark past the end of the log (a damaged `SYNC`) named only the segment, so the
/// user could not tell which file was wrong.
#[test]
fn a_mark_past_the_log_names_sync() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("temporary directory");
    log_fixture(dir.path());
    let path = dir.path().join("SYNC");
    let mut b = std::fs::read(&path).expect("read SYNC");
    for slot in [0, 4096] {
        b[slot + 32..slot + 40].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let crc = crc32c::crc32c(&b[slot..slot + 44]);
        b[slot + 44..slot + 48].copy_from_slice(&crc.to_le_bytes());
    }
    std::fs::write(&path, &b).expect("write SYNC");
    let Err(err) = LogStore::open(dir.path()) else {
        panic!("open accepted a mark past the log");
    };
    assert!(err.to_string().contains("`SYNC`"), "{err}");
}

/// A pack whose last checkpoint is damaged opened at the export's first checkpoint: the
/// objects without their roots, as a pack with no roots and no word of damage.
#[test]
fn a_pack_without_its_roots_is_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("temporary directory");
    pack_fixture(dir.path());
    let path = dir.path().join(PACK);
    let mut b = std::fs::read(&path).expect("read the pack");
    let page = u32_at(&b, 12) as usize;
    let newest = [page, 2 * page]
        .into_iter()
        .max_by_key(|&s| u64_at(&b, s + 8))
        .expect("two slots");
    b[newest + 8] ^= 1;
    std::fs::write(&path, &b).expect("write the pack");
    let Err(err) = PackStore::open(&path) else {
        panic!("open accepted a pack without roots");
    };
    let text = err.to_string();
    assert!(text.contains(PACK) && text.contains("\"roots\""), "{text}");
}

/// SQLite takes a file shorter than a page for an empty database: a database cut to a few
/// bytes opened as a new, empty store and was written over.
#[test]
fn a_database_cut_inside_its_header_is_refused_and_left_alone() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("temporary directory");
    sqlite_fixture(dir.path());
    let path = dir.path().join(DATABASE);
    let cut = std::fs::read(&path).expect("read")[..50].to_vec();
    std::fs::write(&path, &cut).expect("cut");
    let Err(err) = SqliteStore::open(&path) else {
        panic!("open accepted a database cut inside its header");
    };
    assert!(err.to_string().contains(DATABASE), "{err}");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        cut,
        "the file was changed"
    );
}
