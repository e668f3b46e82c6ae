//! The workspace's layout rules, checked on its sources: no module of a
//! crate imports another that imports it back (directly or round a
//! longer circle), at any depth, and no source file is over 600 lines.
//!
//! Modules are compared with their siblings: the modules of one folder
//! (the crate's `src/`, or a module's folder like `src/page/`), each with
//! everything under it. A module "imports" a sibling when its code,
//! outside comments and `#[cfg(test)]` modules, names it through
//! `crate::`, `super::` or `self::` paths; a module naming its own parent
//! or child is not a circle (that is what `mod` and `super::` are for).
//! An inherent `impl` of a type in another module than the type's (a
//! method that lives away from its type, as `reload.rs` once held `impl
//! Watcher`) makes the type's module import that one: the type is not
//! whole without it, and its module calls what the other defines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: [&str; 6] = [
    "health-proto",
    "health-server",
    "health-server-capi",
    "health-probe",
    "health-watch",
    "bench",
];
const MAX_LINES: usize = 600;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(at) => &l[..at],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The paths of a use tree at the start of `s` (`a::b`, `a::{b, c::d}`,
/// `{a, b}`), each as its segments, and the bytes read.
fn tree(s: &str) -> (Vec<Vec<String>>, usize) {
    let mut at = 0;
    let mut segments = Vec::new();
    loop {
        let rest = &s[at..];
        let trimmed = rest.trim_start();
        at += rest.len() - trimmed.len();
        if let Some(group) = trimmed.strip_prefix('{') {
            at += 1;
            let mut out = Vec::new();
            let mut inner = group;
            loop {
                let (paths, used) = tree(inner);
                out.extend(paths.into_iter().map(|p| [segments.clone(), p].concat()));
                at += used;
                inner = &inner[used..];
                let t = inner.trim_start();
                at += inner.len() - t.len();
                inner = t;
                match inner.chars().next() {
                    Some(',') => {
                        at += 1;
                        inner = &inner[1..];
                    }
                    Some('}') => {
                        at += 1;
                        break;
                    }
                    _ => break,
                }
            }
            return (out, at);
        }
        let end = trimmed
            .find(|c: char| !is_ident(c))
            .unwrap_or(trimmed.len());
        if end == 0 {
            break;
        }
        segments.push(trimmed[..end].to_string());
        at += end;
        match s[at..].strip_prefix("::") {
            Some(_) => at += 2,
            None => break,
        }
    }
    let paths = if segments.is_empty() {
        vec![]
    } else {
        vec![segments]
    };
    (paths, at)
}

/// Every module path `code` names, made absolute from `module` (the path
/// of the module the code is in): `crate::a::b`, `super::c`, `self::d`.
fn named_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = code[at..].find(['c', 's']) {
        let start = at + found;
        at = start + 1;
        let before = code[..start].chars().last();
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            continue;
        }
        let rest = &code[start..];
        let (base, after) = if let Some(r) = rest.strip_prefix("crate::") {
            (Vec::new(), r)
        } else if let Some(r) = rest.strip_prefix("self::") {
            (module.to_vec(), r)
        } else if rest.starts_with("super::") {
            let mut base = module.to_vec();
            let mut r = rest;
            while let Some(next) = r.strip_prefix("super::") {
                base.pop();
                r = next;
            }
            (base, r)
        } else {
            continue;
        };
        let (paths, used) = tree(after);
        at = code.len() - after.len() + used;
        out.extend(paths.into_iter().map(|p| [base.clone(), p].concat()));
    }
    out
}

/// A file's module path: `page/target.rs` is `[page, target]`,
/// `page/mod.rs` is `[page]`; `None` for the crate root and binaries.
fn module_of(rel: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = rel
        .components()
        .filter_map(|c| c.as_os_str().to_str().map(str::to_string))
        .collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    let last = parts.pop()?;
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    Some(parts)
}

/// Each module of the crate at `src` (by its path, `page::target`) and
/// the sibling modules it imports.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut modules: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for f in &files {
        if let Some(m) = module_of(f.strip_prefix(src).unwrap()) {
            let text = std::fs::read_to_string(f).unwrap();
            modules.insert(m, code(&text));
        }
    }
    let mut edges: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    for (module, code) in &modules {
        for path in named_paths(code, module) {
            // The module it names: the longest known prefix.
            if let Some(target) = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains_key(p))
            {
                edges.push((module.clone(), target));
            }
        }
    }
    // Types by the module that defines them (a name defined twice is left
    // out: which one an impl means cannot be told from the text).
    let mut defined: BTreeMap<String, Option<&Vec<String>>> = BTreeMap::new();
    for (module, code) in &modules {
        for keyword in ["struct ", "enum "] {
            for (at, _) in code.match_indices(keyword) {
                if code[..at].chars().last().is_some_and(is_ident) {
                    continue;
                }
                let rest = &code[at + keyword.len()..];
                let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
                if !name.is_empty() {
                    let entry = defined.entry(name).or_insert(Some(module));
                    if *entry != Some(module) {
                        *entry = None;
                    }
                }
            }
        }
    }
    for (module, code) in &modules {
        for (at, _) in code.match_indices("impl") {
            if code[..at].chars().last().is_some_and(is_ident) {
                continue;
            }
            let head = &code[at + 4..];
            let head = &head[..head.find('{').unwrap_or(head.len())];
            if head.contains(" for ") || !head.starts_with([' ', '<']) {
                continue;
            }
            // The type: the last path segment before any generics.
            let ty = head.trim_start_matches(|c| c != ' ').trim();
            let ty = ty.split('<').next().unwrap_or("").trim();
            let ty = ty.rsplit("::").next().unwrap_or("");
            if let Some(Some(home)) = defined.get(ty) {
                edges.push(((*home).clone(), module.clone()));
            }
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in edges {
        let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
        if common == from.len() || common == to.len() {
            continue; // itself, its parent or its child
        }
        graph
            .entry(from[..=common].join("::"))
            .or_default()
            .insert(to[..=common].join("::"));
    }
    graph
}

/// A circle of imports, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut c = path[at..].to_vec();
            c.push(node.to_string());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut found = Vec::new();
    for krate in CRATES {
        let graph = imports(&workspace().join(krate).join("src"));
        assert!(
            !graph.is_empty() || krate == "bench",
            "{krate}: nothing read"
        );
        if let Some(c) = circle(&graph) {
            found.push(format!(
                "{krate}: modules import each other: {}",
                c.join(" -> ")
            ));
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_circle_finder_finds_circles() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    assert_eq!(circle(&g), None);
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(circle(&g).unwrap(), ["a", "b", "c", "a"]);
    let m = |s: &str| s.split("::").map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        named_paths(
            "use crate::{tcp::X, cli};\nlet x = crate::probe::run();\nuse super::{render::{a, b}, target};\nself::x::y",
            &m("page::list")
        ),
        [
            m("tcp::X"),
            m("cli"),
            m("probe::run"),
            m("page::render::a"),
            m("page::render::b"),
            m("page::target"),
            m("page::list::x::y"),
        ]
    );
    assert_eq!(
        named_paths("use super::super::a;", &m("x::y::z")),
        [m("x::a")]
    );
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut files = Vec::new();
    for dir in [
        "health-proto",
        "health-server",
        "health-server-capi",
        "health-probe",
        "health-watch",
        "bench",
        "examples",
        "test-support",
    ] {
        rust_files(&workspace().join(dir), &mut files);
    }
    let long: Vec<String> = files
        .iter()
        .filter(|f| !f.components().any(|c| c.as_os_str() == "target"))
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).ok()?.lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(files.len() > 50, "only {} files read", files.len());
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}
