//! The crate's modules import each other one way only: each imports only modules listed before
//! it in the crate docs ("Modules" in `src/lib.rs`). This holds the code to that list, so the
//! list cannot drift and no import circle can come back.

use std::collections::BTreeSet;
use std::path::Path;

/// The module names, in the order the crate docs list them.
fn documented_order(lib: &str) -> Vec<String> {
    let section = lib
        .split("//! ## Modules")
        .nth(1)
        .expect("src/lib.rs has a \"## Modules\" section");
    let mut names = Vec::new();
    for line in section.lines().skip(1).take_while(|l| l.starts_with("//!")) {
        // Every name in backticks in the section is a module's.
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 1 && part.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                names.push(part.to_owned());
            }
        }
    }
    names
}

/// The sibling modules `source` imports: every `crate::name` (or `crate::{a, b}`) outside
/// comments.
fn imports(source: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group
                .split('}')
                .next()
                .unwrap_or("")
                .split(',')
                .map(|n| n.trim().split("::").next().unwrap_or(""))
                .collect(),
            None => vec![
                rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or(""),
            ],
        };
        found.extend(
            names
                .into_iter()
                .filter(|n| modules.contains(*n))
                .map(str::to_owned),
        );
    }
    found
}

#[test]
fn each_module_imports_only_modules_listed_before_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("read src/lib.rs");
    let order = documented_order(&lib);
    let files: BTreeSet<String> = std::fs::read_dir(&src)
        .expect("read src")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|m| m != "lib")
        .collect();
    let listed: BTreeSet<String> = order.iter().cloned().collect();
    assert_eq!(
        listed, files,
        "the crate docs list exactly the module files"
    );
    assert_eq!(listed.len(), order.len(), "a module is listed twice");

    let mut problems = Vec::new();
    for (position, module) in order.iter().enumerate() {
        let source =
            std::fs::read_to_string(src.join(format!("{module}.rs"))).expect("read a module");
        for imported in imports(&source, &files) {
            if imported == *module {
                continue;
            }
            let at = order.iter().position(|m| *m == imported);
            if at.is_none_or(|at| at > position) {
                problems.push(format!("{module} imports {imported}, listed after it"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_import_scan_sees_paths_and_groups_but_not_comments() {
    let modules: BTreeSet<String> = ["a", "b", "c", "d"].map(String::from).into();
    let source = "use crate::a::X;\nuse crate::{b, c::Y};\n// crate::d\nfn f() { crate::a::g() }";
    let expected: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    assert_eq!(imports(source, &modules), expected);
}
