//! The crate's layers, checked: no source file imports one that (directly or through others)
//! imports it back. A cycle means two layers were not told apart (the report engine once
//! imported the stores that import it); this test names the files of the first cycle found.
//!
//! Files, not only top-level modules, are the nodes: `report/count.rs` importing
//! `report/mod.rs`, which imports `report/count.rs`, is a cycle too. An edge is any path
//! through `crate::`, `super::` or `self::` (in `use` or in code, tests included), resolved to
//! the deepest module file it names; a module's own `mod` declarations are not edges.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`report::count`) of every source file of the library.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(src).unwrap();
            if rel.starts_with("bin") {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || rel == Path::new("lib.rs") {
                continue;
            }
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let last = parts.pop().unwrap();
            if last != "mod.rs" {
                parts.push(last.trim_end_matches(".rs").to_string());
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The paths a file names from `crate::`, `super::` and `self::`, as module paths (with any
/// item names still on the end), groups (`{a, b::C}`) expanded.
fn paths(text: &str, module: &[String]) -> Vec<Vec<String>> {
    // Comments out; a `//` after a colon is a URL in a string (`https://`), not a comment.
    let comment = regex::Regex::new(r"(?m)(^|[^:])//.*$").unwrap();
    let text = comment.replace_all(text, "$1");
    let path_re =
        regex::Regex::new(r"\b(crate|super|self)((?:::(?:[A-Za-z_][A-Za-z0-9_]*|\{))+)").unwrap();
    let mut out = Vec::new();
    // `use count::X;` or `shard::default_threads()` in report/mod.rs: a path relative to the
    // module itself (kept only if it names one of its submodules).
    let relative = regex::Regex::new(r"(?:^|[^:\w])([a-z_][a-z0-9_]*)::").unwrap();
    for m in relative.captures_iter(&text) {
        if !["crate", "super", "self"].contains(&&m[1]) {
            let mut path = module.to_vec();
            path.push(m[1].to_string());
            out.push(path);
        }
    }
    for m in path_re.captures_iter(&text) {
        // The module the path starts from.
        let base: Vec<String> = match &m[1] {
            "crate" => Vec::new(),
            // `super` in report/count.rs and in report/mod.rs alike is the module above.
            "super" => module[..module.len().saturating_sub(1)].to_vec(),
            _ => module.to_vec(),
        };
        let mut segments: Vec<String> = m[2]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        // Leading `super::super::…` climbs further.
        let mut base = base;
        while segments.first().is_some_and(|s| s == "super") {
            segments.remove(0);
            base.pop();
        }
        if segments.last().is_some_and(|s| s == "{") {
            segments.pop();
            // A group: each member is a path of its own from here.
            let start = m.get(0).unwrap().end();
            let mut depth = 1;
            let mut end = start;
            for (i, c) in text[start..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = start + i;
                    break;
                }
            }
            for member in text[start..end].split(',') {
                let first: Vec<String> = member
                    .trim()
                    .split("::")
                    .map(|s| s.trim().to_string())
                    .take_while(|s| !s.is_empty() && !s.starts_with('{'))
                    .collect();
                let mut path = base.clone();
                path.extend(segments.iter().cloned());
                path.extend(first);
                out.push(path);
            }
        } else {
            let mut path = base;
            path.extend(segments);
            out.push(path);
        }
    }
    out
}

#[test]
fn no_source_file_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let mut edges: BTreeMap<&[String], BTreeSet<&[String]>> = BTreeMap::new();
    for (module, path) in &modules {
        let text = std::fs::read_to_string(path).unwrap();
        for named in paths(&text, module) {
            // The deepest module file the path names (`use std::…` in `batch` names `batch`
            // itself, which is no edge).
            let target = (1..=named.len()).rev().find_map(|n| {
                modules
                    .get_key_value(&named[..n])
                    .map(|(k, _)| k.as_slice())
            });
            if let Some(target) = target
                && target != module.as_slice()
            {
                edges.entry(module).or_default().insert(target);
            }
        }
    }
    assert!(
        edges.values().map(BTreeSet::len).sum::<usize>() > 30,
        "the import scan found too few edges to be trusted: {edges:?}"
    );
    // Depth-first search, keeping the path: a back edge closes a cycle.
    fn visit<'a>(
        node: &'a [String],
        edges: &BTreeMap<&'a [String], BTreeSet<&'a [String]>>,
        state: &mut BTreeMap<&'a [String], bool>,
        stack: &mut Vec<&'a [String]>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(true) => return None,
            Some(false) => {
                let at = stack.iter().position(|n| *n == node).unwrap();
                let mut cycle: Vec<String> = stack[at..].iter().map(|n| n.join("::")).collect();
                cycle.push(node.join("::"));
                return Some(cycle);
            }
            None => {}
        }
        state.insert(node, false);
        stack.push(node);
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, state, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        state.insert(node, true);
        None
    }
    let mut state = BTreeMap::new();
    for module in modules.keys() {
        if let Some(cycle) = visit(module, &edges, &mut state, &mut Vec::new()) {
            panic!("module cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_scan_sees_a_cycle_when_there_is_one() {
    let path = |p: &str| -> Vec<String> { p.split("::").map(str::to_string).collect() };
    let has = |found: &[Vec<String>], p: &str| found.contains(&path(p));
    // report/count.rs naming items of report/mod.rs and report/filter.rs.
    let found = paths(
        "use super::{Report, filter::Filter};",
        &path("report::count"),
    );
    assert!(
        has(&found, "report::Report") && has(&found, "report::filter::Filter"),
        "{found:?}"
    );
    // report/mod.rs naming its submodule count in four ways, and row; not a URL in a string.
    let found = paths(
        "pub use count::X; let c = self::count::Counter::new(); shard::f(); crate::row::Row; \
         let u = \"https://example.com/x\"; // crate::lock::Lock",
        &path("report"),
    );
    for p in [
        "report::count",
        "report::count::Counter::new",
        "report::shard",
        "row::Row",
    ] {
        assert!(has(&found, p), "{p} in {found:?}");
    }
    assert!(
        !found.iter().any(|p| p.contains(&"lock".to_string())),
        "a comment is no edge: {found:?}"
    );
}
