//! The library's modules form layers: no module uses one of its siblings
//! that uses it back, directly or through others. That holds among the
//! top-level modules of `src/` (`crate::name`) and among the submodules of
//! each module (`super::name`, `crate::parent::name`, `self::name` from
//! its `mod.rs`). A cycle fails this test with the modules on it. The
//! domain model and the queue sit below the wire protocol and the access
//! checks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path below the crate root (`["queue", "sqlite"]` for
/// `src/queue/sqlite/mod.rs`); empty for the crate roots.
type ModPath = Vec<String>;

/// The module a source file holds: `a/b.rs` and `a/b/mod.rs` hold `a::b`.
fn module_of(relative: &Path) -> ModPath {
    let mut path: ModPath = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        path.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        path.pop();
    }
    path
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The paths named after `prefix` (`crate::`, `super::`, `self::`): the
/// identifier chain that follows, and each branch of a `{..}` group, as
/// segments. Only the first segments matter for the graph.
fn paths_after(line: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (i, _) in line.match_indices(prefix) {
        let before = line[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue; // `super::super::` or `x::crate::`: counted at its start
        }
        let mut rest = &line[i + prefix.len()..];
        let mut supers = 0;
        while prefix == "super::" && rest.starts_with("super::") {
            supers += 1;
            rest = &rest["super::".len()..];
        }
        let lead = vec!["super".to_string(); supers];
        found.extend(chains(rest).into_iter().map(|c| [lead.clone(), c].concat()));
    }
    found
}

/// `a::b::{c, d::e}` as `[a, b, c]` and `[a, b, d, e]`.
fn chains(text: &str) -> Vec<Vec<String>> {
    let mut segments = Vec::new();
    let mut rest = text;
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut end = group.len();
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        end = i;
                        break;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            let mut items = Vec::new();
            let (mut depth, mut start) = (0, 0);
            let inner = &group[..end];
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(&inner[start..i]);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            items.push(&inner[start..]);
            return items
                .into_iter()
                .flat_map(|item| chains(item.trim_start()))
                .map(|c| [segments.clone(), c].concat())
                .collect();
        }
        let name = ident(rest);
        if name.is_empty() {
            break;
        }
        segments.push(name.to_string());
        match rest[name.len()..].strip_prefix("::") {
            Some(next) => rest = next,
            None => break,
        }
    }
    vec![segments]
}

/// The modules the file of module `module` names (as absolute paths),
/// from `text`, comments and its `#[cfg(test)]` tail aside.
fn named_modules(module: &[String], text: &str, is_mod_file: bool) -> Vec<ModPath> {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    // `super::` in `a/b.rs` and `a/b/mod.rs` alike names `a`'s items.
    let parent = &module[..module.len().saturating_sub(1)];
    let mut found = Vec::new();
    for line in text
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
    {
        for chain in paths_after(line, "crate::") {
            found.push(chain);
        }
        for chain in paths_after(line, "super::") {
            let ups = chain.iter().take_while(|s| *s == "super").count();
            let Some(base) = parent.len().checked_sub(ups) else {
                continue;
            };
            found.push([parent[..base].to_vec(), chain[ups..].to_vec()].concat());
        }
        if is_mod_file {
            for chain in paths_after(line, "self::") {
                found.push([module.to_vec(), chain].concat());
            }
        }
    }
    found
}

/// For each module with submodules (the crate root is `[]`), the graph of
/// its submodules: each and the siblings it uses. `files` are the sources
/// as paths relative to `src/` and their text.
fn module_graphs(
    files: &[(PathBuf, String)],
) -> BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> {
    let modules: BTreeSet<ModPath> = files.iter().map(|(p, _)| module_of(p)).collect();
    let mut graphs: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for module in &modules {
        if let Some((name, parent)) = module.split_last() {
            graphs
                .entry(parent.to_vec())
                .or_default()
                .entry(name.clone())
                .or_default();
        }
    }
    for (file, text) in files {
        let module = module_of(file);
        let is_mod_file = file.file_stem().is_some_and(|s| s == "mod");
        for target in named_modules(&module, text, is_mod_file) {
            // An edge in the graph of every common ancestor below which the
            // two part ways: `queue::sqlite::claims` naming `crate::job`
            // is `queue -> job` at the root.
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            let (Some(from), Some(to)) = (module.get(common), target.get(common)) else {
                continue;
            };
            let parent = module[..common].to_vec();
            if modules.contains(&[parent.clone(), vec![to.clone()]].concat()) {
                graphs
                    .entry(parent)
                    .or_default()
                    .entry(from.clone())
                    .or_default()
                    .insert(to.clone());
            }
        }
    }
    graphs
}

/// A cycle through `node`, if any, as the modules on it.
fn cycle_from(
    graph: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    if let Some(start) = path.iter().position(|n| n == node) {
        let mut cycle = path[start..].to_vec();
        cycle.push(node.to_string());
        return Some(cycle);
    }
    path.push(node.to_string());
    for next in graph.get(node).into_iter().flatten() {
        if let Some(cycle) = cycle_from(graph, next, path) {
            return Some(cycle);
        }
    }
    path.pop();
    None
}

/// A cycle among the submodules of each module that has one, as full
/// names.
fn cycles(graphs: &BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>>) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (parent, graph) in graphs {
        let full = |n: &String| [parent.clone(), vec![n.clone()]].concat().join("::");
        if let Some(cycle) = graph
            .keys()
            .find_map(|node| cycle_from(graph, node, &mut Vec::new()))
        {
            found.push(cycle.iter().map(full).collect());
        }
    }
    found
}

/// The sources of `src/`, relative to it, and their text.
fn sources() -> Vec<(PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f.strip_prefix(&src).unwrap().to_path_buf(), text)
        })
        .collect()
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graphs = module_graphs(&sources());
    assert!(graphs[&vec![]].len() > 10, "found the modules: {graphs:?}");
    assert!(
        graphs[&vec!["ffmpeg".to_string()]].len() >= 4,
        "found the submodules of ffmpeg: {graphs:?}"
    );
    let cycles: Vec<String> = cycles(&graphs).iter().map(|c| c.join(" -> ")).collect();
    assert!(cycles.is_empty(), "module cycles: {}", cycles.join("; "));
}

#[test]
fn the_domain_model_and_the_queue_know_neither_the_wire_nor_access() {
    let graphs = module_graphs(&sources());
    let top = &graphs[&vec![]];
    for (module, allowed) in [
        ("job", &[][..]),
        ("effects", &[][..]),
        ("folder", &[][..]),
        ("history", &[][..]),
        (
            "queue",
            &["job", "effects", "folder", "history", "process", "naming"][..],
        ),
    ] {
        let used = &top[module];
        let beyond: Vec<_> = used
            .iter()
            .filter(|m| !allowed.contains(&m.as_str()))
            .collect();
        assert!(beyond.is_empty(), "{module} uses {beyond:?}");
    }
}

/// A tree of sources given as (path below `src/`, text).
fn tree(files: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
    files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.to_string()))
        .collect()
}

#[test]
fn a_cycle_would_be_found() {
    let top = tree(&[
        ("lib.rs", "pub mod a; pub mod b; pub mod c;"),
        ("a.rs", "use crate::b::X; // crate::c"),
        ("b/mod.rs", "use crate::c::{self, Y};\n// crate::gone"),
        ("c.rs", "pub fn f() { crate::a::g() }"),
    ]);
    assert_eq!(cycles(&module_graphs(&top)), [["a", "b", "c", "a"]]);
}

#[test]
fn a_cycle_between_submodules_would_be_found() {
    // The circle issue 23 found: argv importing check's `Samples` through
    // `super::`, check calling `super::argv` back.
    let circle = [
        (
            "ffmpeg/mod.rs",
            "pub mod argv;\npub mod check;\npub struct EncodeSettings;",
        ),
        (
            "ffmpeg/argv.rs",
            "use super::{EncodeSettings, check::Samples};",
        ),
        (
            "ffmpeg/check.rs",
            "fn run() { let a = super::argv::check(); }",
        ),
    ];
    assert_eq!(
        cycles(&module_graphs(&tree(&circle))),
        [["ffmpeg::argv", "ffmpeg::check", "ffmpeg::argv"]]
    );
    // The same circle spelled from the crate root, one level down.
    let deep = [
        ("queue/mod.rs", "pub mod sqlite;"),
        ("queue/sqlite/mod.rs", "mod claims;\nmod settle;"),
        (
            "queue/sqlite/claims.rs",
            "use crate::queue::sqlite::settle::x;",
        ),
        (
            "queue/sqlite/settle.rs",
            "use super::super::sqlite::claims::y;\nuse super::claims;",
        ),
    ];
    assert_eq!(
        cycles(&module_graphs(&tree(&deep))),
        [[
            "queue::sqlite::claims",
            "queue::sqlite::settle",
            "queue::sqlite::claims"
        ]]
    );
    // Using the parent's own items, or a sibling only one way, is no cycle;
    // nor is what a file's tests import.
    let fine = [
        (
            "ffmpeg/mod.rs",
            "pub mod argv;\npub mod samples;\npub struct EncodeSettings;",
        ),
        (
            "ffmpeg/argv.rs",
            "use super::{EncodeSettings, samples::Samples};",
        ),
        (
            "ffmpeg/samples.rs",
            "use super::EncodeSettings;\n#[cfg(test)]\nmod tests { use super::super::argv; }",
        ),
    ];
    assert!(cycles(&module_graphs(&tree(&fine))).is_empty());
}
