//! `inspect` and `verify` of a container file (`.spw`): its header, both commit slots and its
//! sections, read-only. Sections of every type are listed (a tool reads files written by any
//! program); `verify` checks every section's checksum.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;
use spillway::container::{Container, ContainerOptions, SectionInfo, SlotState};

use crate::output::Output;
use crate::size::human;

fn open(path: &Path) -> spillway::Result<Container> {
    Container::open_with(path, ContainerOptions::read_only().any_type(true))
}

fn slot_json(s: &SlotState) -> serde_json::Value {
    match s {
        SlotState::Empty => json!({"state": "empty"}),
        SlotState::Valid {
            iteration,
            sections,
        } => json!({"state": "valid", "iteration": iteration, "sections": sections}),
        SlotState::Broken { iteration, problem } => {
            json!({"state": "broken", "iteration": iteration, "problem": problem})
        }
        SlotState::Damaged(why) => json!({"state": "damaged", "problem": why}),
    }
}

fn slot_text(s: &SlotState) -> String {
    match s {
        SlotState::Empty => "never written".into(),
        SlotState::Valid {
            iteration,
            sections,
        } => format!("iteration {iteration}, {sections} sections"),
        SlotState::Broken { iteration, problem } => {
            format!("iteration {iteration}, DAMAGED: {problem}")
        }
        SlotState::Damaged(why) => format!("damaged or torn: {why}"),
    }
}

/// Damage the slots show: a slot that checks out but points at damage (its directory, or data
/// past the file's end). Never a crash's doing.
fn broken_slots(c: &Container) -> Vec<String> {
    c.slots()
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            SlotState::Broken { iteration, problem } => Some(format!(
                "slot {i} (iteration {iteration}) checks out but {problem}{}",
                if *iteration > c.iteration() {
                    format!(
                        "; the container opened at the older iteration {}",
                        c.iteration()
                    )
                } else {
                    String::new()
                }
            )),
            _ => None,
        })
        .collect()
}

fn flags(s: &SectionInfo) -> String {
    let mut f = Vec::new();
    if s.required {
        f.push("required");
    }
    if s.mmap {
        f.push("mmap");
    }
    f.push(if s.index { "index" } else { "data" });
    f.join(",")
}

/// A container opened and read through: its damaged sections (name, problem), its slots that
/// point at damage, and whether it is clean.
struct Checked {
    c: Container,
    damaged: Vec<(String, String)>,
    broken: Vec<String>,
    ok: bool,
}

fn check(path: &Path, out: &Output, what: &str) -> spillway::Result<Checked> {
    let c = open(path)?;
    let pb = out.progress(what);
    let damaged = c.verify();
    pb.finish_and_clear();
    let damaged = damaged?;
    let broken = broken_slots(&c);
    let ok = damaged.is_empty() && broken.is_empty();
    Ok(Checked {
        c,
        damaged,
        broken,
        ok,
    })
}

/// Lists the header, the slots and the sections, with each section's checksum status.
pub fn inspect(path: &Path, out: &Output) -> spillway::Result<ExitCode> {
    // Broken slots show in the slots' own lines; they count in `ok`.
    let Checked {
        c,
        damaged,
        broken: _,
        ok,
    } = check(path, out, "checking sections")?;
    let status = |name: &str| {
        damaged
            .iter()
            .find(|(n, _)| n == name)
            .map_or("ok".to_string(), |(_, why)| why.clone())
    };
    let h = c.header();
    let sections = c.sections();
    if out.json {
        out.print_json(&json!({
            "ok": ok,
            "file": path.display().to_string(),
            "kind": "container file",
            "version": h.version,
            "page_size": h.page_size,
            "compat_features": h.compat,
            "incompat_features": h.incompat,
            "iteration": c.iteration(),
            "slots": c.slots().iter().map(slot_json).collect::<Vec<_>>(),
            "sections": sections.iter().map(|s| json!({
                "name": s.name,
                "type": s.kind,
                "version": s.version,
                "required": s.required,
                "mmap": s.mmap,
                "index": s.index,
                "offset": s.offset,
                "len": s.len,
                "crc": format!("{:#010x}", s.crc),
                "checksum": status(&s.name),
            })).collect::<Vec<_>>(),
        }));
    } else {
        crate::say!("file        {} (container file)", path.display());
        crate::say!(
            "format      version {}, page size {}, features {:#x} / {:#x}",
            h.version,
            h.page_size,
            h.compat,
            h.incompat
        );
        crate::say!("state       iteration {}", c.iteration());
        for (i, s) in c.slots().iter().enumerate() {
            crate::say!("slot {i}      {}", slot_text(s));
        }
        crate::say!("sections    {}", sections.len());
        for s in &sections {
            crate::say!(
                "  {:<32} type {:#x} v{} {:<22} {:>10} at {:<12} {}",
                s.name,
                s.kind,
                s.version,
                flags(s),
                human(s.len),
                s.offset,
                status(&s.name)
            );
        }
    }
    Ok(exit(ok))
}

/// Checks every section's checksum; names each damaged section, and a damaged slot.
pub fn verify(path: &Path, out: &Output) -> spillway::Result<ExitCode> {
    let Checked {
        c,
        damaged,
        broken,
        ok,
    } = check(path, out, "verifying")?;
    // A slot that does not check out is either torn by a crash during a checkpoint (harmless:
    // the other slot holds the state) or damaged; both are reported, neither is damage to the
    // state that opened.
    let slot_notes: Vec<String> = c
        .slots()
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            SlotState::Damaged(why) => Some(format!(
                "slot {i} does not check out ({why}): torn by a crash during a checkpoint, or \
                 damaged; the state of iteration {} is used",
                c.iteration()
            )),
            _ => None,
        })
        .collect();
    if out.json {
        out.print_json(&json!({
            "ok": ok,
            "file": path.display().to_string(),
            "iteration": c.iteration(),
            "damaged_slots": broken,
            "sections": c.sections().len(),
            "damaged_sections": damaged.iter().map(|(n, why)| json!({"name": n, "problem": why})).collect::<Vec<_>>(),
            "slot_notes": slot_notes,
        }));
    } else {
        for (name, why) in &damaged {
            crate::say!("damaged section {name:?}: {why}");
        }
        for b in &broken {
            crate::say!("damaged: {b}");
        }
        for n in &slot_notes {
            crate::say!("note: {n}");
        }
        if ok {
            crate::say!(
                "ok: {} sections of iteration {} check out",
                c.sections().len(),
                c.iteration()
            );
        } else {
            crate::say!(
                "{} of {} sections are damaged, {} slot(s)",
                damaged.len(),
                c.sections().len(),
                broken.len()
            );
        }
    }
    Ok(exit(ok))
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::DAMAGE)
    }
}
