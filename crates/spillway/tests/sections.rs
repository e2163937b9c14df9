//! Sections under a pool's budget: round trips through the file, the budget held with sections
//! and values together, spills and reloads, tier overrides and caps.

mod common;

use spillway::container::{KeyIndex, Section, SectionWriter, U64Column, View, types};
use spillway::{ContentKey, ErrorKind, Paged, Pool, Priority, SectionOptions, Tier};

const MIB: u64 = 1 << 20;

fn pool(budget: u64) -> Pool {
    common::mem_pool(budget)
}

fn column(n: u64) -> U64Column {
    U64Column((0..n).map(|i| i * 3).collect())
}

fn in_ram(s: &spillway::Sections, name: &str) -> bool {
    s.stats()
        .iter()
        .find(|x| x.name == name)
        .expect("section")
        .in_ram
}

#[test]
fn sections_round_trip_through_the_file_and_a_new_pool() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("graph.spw");
    let keys: Vec<ContentKey> = (0..1000u32)
        .map(|i| ContentKey::of(&i.to_le_bytes(), &[]))
        .collect();
    {
        let p = pool(64 * MIB);
        let s = p.sections(&path).expect("sections");
        s.create("times", column(10_000), SectionOptions::default())
            .expect("create");
        s.create(
            "keys",
            KeyIndex::new(keys.clone()),
            SectionOptions::default(),
        )
        .expect("create");
        s.update("times", |c: &mut U64Column| c.0.push(7))
            .expect("update");
        s.checkpoint().expect("checkpoint");
        assert!(p.stats().resident_bytes >= 80_000, "sections are charged");
    }
    let p = pool(64 * MIB);
    let s = p.sections(&path).expect("reopen");
    s.attach::<U64Column>("times", SectionOptions::tier(Tier::Disk))
        .expect("attach");
    s.attach::<KeyIndex>("keys", SectionOptions::tier(Tier::Disk))
        .expect("attach");
    let (len, last, mapped) = s
        .read("times", |v: View<'_, U64Column>| {
            (v.len(), v.get(10_000), matches!(v, View::Mapped(_)))
        })
        .expect("read");
    assert_eq!((len, last, mapped), (10_001, Some(7), true));
    assert!(
        s.read("keys", |v: View<'_, KeyIndex>| keys
            .iter()
            .all(|k| v.contains(k)))
            .expect("read")
    );
    assert!(
        !s.read("keys", |v: View<'_, KeyIndex>| v
            .contains(&ContentKey::of(b"absent", &[])))
            .expect("read")
    );
    assert_eq!(p.stats().resident_bytes, 0, "Disk sections take no budget");
    let e = s
        .read("times", |v: View<'_, KeyIndex>| v.len())
        .expect_err("wrong type");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn the_budget_holds_sections_and_values_together() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let budget = 4 * MIB;
    let p = pool(budget);
    let s = p.sections(tmp.path().join("s.spw")).expect("sections");
    // Two sections of 1.5 MiB each, then 6 MiB of values: values are evicted first, then a
    // section spills when values alone cannot make room. Never past the budget.
    s.create("a", column(196_608), SectionOptions::default())
        .expect("a");
    s.create("b", column(196_608), SectionOptions::default())
        .expect("b");
    assert!(in_ram(&s, "a") && in_ram(&s, "b"));
    let mut held: Vec<Paged<Vec<u8>>> = Vec::new();
    for i in 0..96u32 {
        held.push(p.insert(vec![i as u8; 64 << 10]).expect("insert"));
        let stats = p.stats();
        assert!(
            stats.resident_bytes <= budget,
            "{} > {budget} after {i} values",
            stats.resident_bytes
        );
    }
    assert!(p.stats().peak_resident_bytes <= budget);
    // Values are evicted by the policy; held guards would pin them, so sections spill when
    // every value is pinned.
    let guards: Vec<_> = held[..40].iter().map(|h| h.get().expect("get")).collect();
    assert!(p.stats().resident_bytes <= budget);
    let spilled = s.stats().iter().filter(|x| !x.in_ram).count();
    assert!(
        spilled >= 1,
        "a section spilled for pinned values: {:?}",
        s.stats()
    );
    // A spilled section is still readable (from the file), and correct.
    let sum = s.read("a", |v: View<'_, U64Column>| v.sum()).expect("read");
    assert_eq!(sum, (0..196_608u64).map(|i| i * 3).sum::<u64>());
    drop(guards);
    assert!(p.stats().peak_resident_bytes <= budget, "{:?}", p.stats());
}

#[test]
fn a_ram_section_never_spills_and_growth_past_the_budget_fails_and_reverts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let budget = 2 * MIB;
    let p = pool(budget);
    let s = p.sections(tmp.path().join("s.spw")).expect("sections");
    s.create("pinned", column(100_000), SectionOptions::tier(Tier::Ram))
        .expect("create");
    // Values fill the rest; the Ram section stays.
    let _values: Vec<Paged<Vec<u8>>> = (0..40u8)
        .map(|i| p.insert(vec![i; 64 << 10]).expect("insert"))
        .collect();
    assert!(in_ram(&s, "pinned"));
    assert_eq!(
        s.spill("pinned").expect_err("never spilled").kind(),
        ErrorKind::InvalidArgument
    );
    // Growing it past the whole budget: an error, and the section as at its last checkpoint.
    let e = s
        .update("pinned", |c: &mut U64Column| c.0.extend(0..400_000u64))
        .expect_err("too large");
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    assert!(e.to_string().contains("\"pinned\""), "{e}");
    assert_eq!(
        s.read("pinned", |v: View<'_, U64Column>| v.len())
            .expect("read"),
        100_000
    );
    assert!(in_ram(&s, "pinned"));
    assert!(p.stats().resident_bytes <= budget);
}

#[test]
fn caps_are_honoured() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = pool(64 * MIB);
    let s = p.sections(tmp.path().join("s.spw")).expect("sections");
    let cap = 200_000;
    // Auto with a cap: past it, written and spilled, still readable.
    s.create("auto", column(1000), SectionOptions::default().ram_cap(cap))
        .expect("create");
    s.update("auto", |c: &mut U64Column| c.0.extend(0..50_000u64))
        .expect("grows");
    assert!(!in_ram(&s, "auto"), "{:?}", s.stats());
    assert_eq!(
        s.read("auto", |v: View<'_, U64Column>| v.len())
            .expect("read"),
        51_000
    );
    // Ram with a cap: past it, refused and reverted.
    s.create(
        "ram",
        column(1000),
        SectionOptions::tier(Tier::Ram).ram_cap(cap),
    )
    .expect("create");
    let e = s
        .update("ram", |c: &mut U64Column| c.0.extend(0..50_000u64))
        .expect_err("cap");
    assert!(e.to_string().contains("RAM cap"), "{e}");
    assert_eq!(
        s.read("ram", |v: View<'_, U64Column>| v.len())
            .expect("read"),
        1000
    );
    // Disk: updated in memory, written and dropped.
    s.create("disk", column(1000), SectionOptions::tier(Tier::Disk))
        .expect("create");
    s.update("disk", |c: &mut U64Column| c.0.push(1))
        .expect("update");
    assert!(!in_ram(&s, "disk"));
    assert_eq!(
        s.read("disk", |v: View<'_, U64Column>| v.get(1000))
            .expect("read"),
        Some(1)
    );
}

#[test]
fn a_spilled_section_comes_back_when_the_pressure_falls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = pool(4 * MIB);
    let s = p.sections(tmp.path().join("s.spw")).expect("sections");
    s.create("a", column(100_000), SectionOptions::default())
        .expect("a");
    s.spill("a").expect("spill");
    assert!(!in_ram(&s, "a"));
    assert_eq!(p.stats().resident_bytes, 0);
    // Room in the budget: a read brings it back.
    s.read("a", |v: View<'_, U64Column>| v.len()).expect("read");
    assert!(in_ram(&s, "a"));
    assert!(p.stats().resident_bytes >= 800_000);
    // Under pressure, it stays on disk.
    s.spill("a").expect("spill");
    let _values: Vec<Paged<Vec<u8>>> = (0..60u8)
        .map(|i| p.insert(vec![i; 64 << 10]).expect("insert"))
        .collect();
    s.read("a", |v: View<'_, U64Column>| v.len()).expect("read");
    assert!(!in_ram(&s, "a"), "reloaded under pressure");
}

#[test]
fn a_section_below_values_spills_before_any_value_is_evicted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let budget = 4 * MIB;
    let p = pool(budget);
    let s = p.sections(tmp.path().join("s.spw")).expect("sections");
    let low = SectionOptions::default().priority(Priority::BelowValues);
    s.create("low", column(196_608), low).expect("low");
    s.create("high", column(196_608), SectionOptions::default())
        .expect("high");
    // About 0.9 MiB of values fit beside the two sections; the next ones need room.
    let values: Vec<Paged<Vec<u8>>> = (0..20u8)
        .map(|i| p.insert(vec![i; 64 << 10]).expect("insert"))
        .collect();
    assert!(!in_ram(&s, "low"), "the low section gave way first");
    assert!(in_ram(&s, "high"));
    assert!(
        values.iter().all(|v| v.is_resident()),
        "no value was evicted while a section below them was in memory"
    );
    assert!(p.stats().peak_resident_bytes <= budget);
    // With the low section gone, values give way before the high one.
    let more: Vec<Paged<Vec<u8>>> = (0..20u8)
        .map(|i| p.insert(vec![i; 64 << 10]).expect("insert"))
        .collect();
    assert!(in_ram(&s, "high"));
    assert!(values.iter().chain(&more).any(|v| !v.is_resident()));
    assert!(p.stats().peak_resident_bytes <= budget);
}

#[test]
fn attach_refuses_a_section_known_already_and_charges_nothing_twice() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("s.spw");
    {
        let p = pool(64 * MIB);
        let s = p.sections(&path).expect("sections");
        s.create("a", column(100_000), SectionOptions::default())
            .expect("create");
        assert!(p.stats().resident_bytes >= 800_000);
        let e = s
            .attach::<U64Column>("a", SectionOptions::default())
            .expect_err("known already");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        drop(s);
        assert_eq!(
            p.stats().resident_bytes,
            0,
            "bytes still charged after the sections are gone"
        );
    }
    let p = pool(64 * MIB);
    let s = p.sections(&path).expect("sections");
    s.attach::<U64Column>("a", SectionOptions::tier(Tier::Ram))
        .expect("attach");
    let once = p.stats().resident_bytes;
    assert!(
        s.attach::<U64Column>("a", SectionOptions::tier(Tier::Ram))
            .is_err()
    );
    assert_eq!(p.stats().resident_bytes, once, "charged twice");
    drop(s);
    // A Ram attach that does not fit leaves nothing behind.
    let small = pool(256 << 10);
    let t = small.sections(&path).expect("sections");
    assert!(
        t.attach::<U64Column>("a", SectionOptions::tier(Tier::Ram))
            .is_err()
    );
    assert!(t.stats().is_empty());
    assert_eq!(small.stats().resident_bytes, 0);
}

/// A section type of the user's own, numbered as the container module says.
#[derive(Debug, Default)]
struct Mine(Vec<u8>);

impl Section for Mine {
    const KIND: u32 = types::FIRST_USER;
    const VERSION: u32 = 1;
    fn encode(&self, w: &mut SectionWriter<'_>) -> spillway::Result<()> {
        w.write(&self.0)
    }
    fn decode(bytes: &[u8], _version: u32) -> spillway::Result<Self> {
        Ok(Mine(bytes.to_vec()))
    }
    fn memory_bytes(&self) -> u64 {
        24 + self.0.capacity() as u64
    }
}

/// A type whose encoding fails.
struct Broken;

impl Section for Broken {
    const KIND: u32 = types::FIRST_USER + 1;
    const VERSION: u32 = 1;
    fn encode(&self, _w: &mut SectionWriter<'_>) -> spillway::Result<()> {
        Err(spillway::Error::InvalidArgument("cannot encode".into()))
    }
    fn decode(_bytes: &[u8], _version: u32) -> spillway::Result<Self> {
        Ok(Broken)
    }
    fn memory_bytes(&self) -> u64 {
        1000
    }
}

#[test]
fn user_section_types_work_and_a_failed_create_leaves_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("s.spw");
    let p = pool(64 * MIB);
    let s = p.sections(&path).expect("sections");
    s.create("mine", Mine(vec![1; 1000]), SectionOptions::default())
        .expect("a user type");
    let e = s
        .create("broken", Broken, SectionOptions::default())
        .expect_err("encode fails");
    assert!(e.to_string().contains("cannot encode"), "{e}");
    assert_eq!(s.stats().len(), 1, "{:?}", s.stats());
    s.update("mine", |m: &mut Mine| m.0.push(2))
        .expect("update");
    s.checkpoint().expect("the others still checkpoint");
    drop(s);
    let s = p.sections(&path).expect("reopen");
    s.attach::<Mine>("mine", SectionOptions::default())
        .expect("attach");
    assert_eq!(
        s.read("mine", |v: View<'_, Mine>| match v {
            View::Ram(m) => m.0.len(),
            View::Mapped(b) => b.len(),
        })
        .expect("read"),
        1001
    );
}

#[test]
fn growing_a_section_spills_a_sibling_below_values_before_any_value() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = pool(4 * MIB);
    let s = p.sections(tmp.path().join("s.spw")).expect("sections");
    let low = SectionOptions::default().priority(Priority::BelowValues);
    s.create("low", column(131_072), low).expect("low");
    s.create("high", column(1000), SectionOptions::default())
        .expect("high");
    let values: Vec<Paged<Vec<u8>>> = (0..32u8)
        .map(|i| p.insert(vec![i; 64 << 10]).expect("insert"))
        .collect();
    assert!(values.iter().all(|v| v.is_resident()));
    s.update("high", |c: &mut U64Column| c.0.extend(0..131_072u64))
        .expect("grow");
    let evicted = values.iter().filter(|v| !v.is_resident()).count();
    assert_eq!(
        (evicted, in_ram(&s, "low")),
        (0, false),
        "values evicted while a section below them stayed in memory"
    );
}

#[test]
fn a_mapped_column_read_far_past_its_end_is_none() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = pool(64 * MIB);
    let s = p.sections(tmp.path().join("s.spw")).expect("sections");
    s.create("a", column(10), SectionOptions::tier(Tier::Disk))
        .expect("create");
    let got = s
        .read("a", |v: View<'_, U64Column>| {
            (v.get(1usize << 61), v.get(usize::MAX), v.get(10), v.get(9))
        })
        .expect("read");
    assert_eq!(got, (None, None, None, Some(27)));
}
