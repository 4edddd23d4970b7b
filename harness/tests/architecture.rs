//! The architecture, checked rather than hoped for (as ArchUnit does for Java): the harness's
//! own sources are parsed as Rust and their imports followed from file to file.
//!
//! - The top-level modules form a pipeline (`PIPELINE`, as ARCHITECTURE.md draws it): a module
//!   may use only the modules before it. A new top-level module must be placed in it.
//! - No two files import each other, directly or through others: no cycle among the files.
//! - External programs run only through `process` (its time limits and process groups).
//!
//! An import is any path the code names: `use` items, paths in expressions and types, and
//! `crate::…`/`super::…` paths inside macro calls (`format!`, `anyhow::bail!`).

use quote::ToTokens;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// The top-level modules in pipeline order: each may use only those before it. Where the code
/// map of ARCHITECTURE.md says why each sits where it does.
const PIPELINE: &[&str] = &[
    // Foundations: no module of the harness below them.
    "axes",
    "text",
    "version",
    "rate",
    "cleanup",
    "process",
    "files",
    "project",
    // This machine, probed once, before planning.
    "host",
    "scenario",
    "plan",
    // The data model every later stage fills in or reads.
    "record",
    "events",
    "stack",
    "build",
    "engine",
    "image",
    "observe",
    "execute",
    "verdict",
    "vm",
    "report",
    "run",
    "compare",
    "bugreport",
    "bisect",
    "cli",
    // The binary.
    "main",
];

/// Where a file's module is: `crate::stack::exec` is `["stack", "exec"]`; `main.rs` is `["main"]`.
type ModulePath = Vec<String>;

struct Source {
    path: PathBuf,
    module: ModulePath,
    syntax: syn::File,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&root, &mut files);
    files
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(&root).unwrap().with_extension("");
            let mut module: ModulePath = relative.iter().map(|c| c.to_string_lossy().into_owned()).collect();
            if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let syntax = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            Source { path, module, syntax }
        })
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The paths one file names, each resolved to an absolute module path (`["stack", "exec",
/// "run"]`), and where external programs are started.
struct Imports<'a> {
    /// The module of the file, then of each inline module (`mod tests { ... }`) being visited.
    scope: Vec<ModulePath>,
    /// Child modules declared in each scope (`mod exec;` and inline `mod x { }`).
    children: Vec<BTreeSet<String>>,
    /// Whether the current item is `#[cfg(test)]`.
    in_test: Vec<bool>,
    found: BTreeSet<ModulePath>,
    /// What `#[cfg(test)]` code names: held to the pipeline's direction, not in the cycle check
    /// (a unit test may reach its module through the parser that calls it).
    found_in_tests: BTreeSet<ModulePath>,
    commands: Vec<String>,
    file: &'a Path,
}

impl Imports<'_> {
    fn resolve(&self, segments: &[String]) -> Option<ModulePath> {
        let here = self.scope.last().expect("a scope");
        let (first, rest) = segments.split_first()?;
        let mut path = match first.as_str() {
            "crate" | "criu_matrix" => Vec::new(),
            "self" => here.clone(),
            "super" => {
                let mut p = here.clone();
                p.pop();
                let mut rest = rest;
                while rest.first().is_some_and(|s| s == "super") {
                    p.pop();
                    rest = &rest[1..];
                }
                p.extend(rest.iter().cloned());
                return Some(p);
            }
            child if self.children.last().expect("a scope").contains(child) => {
                let mut p = here.clone();
                p.push(child.to_string());
                p
            }
            _ => return None,
        };
        path.extend(rest.iter().cloned());
        Some(path)
    }

    fn record(&mut self, segments: Vec<String>) {
        let test = *self.in_test.last().expect("a scope");
        let joined = segments.join("::");
        if !test
            && (joined.starts_with("std::process::Command")
                || joined.starts_with("tokio::process::Command")
                || joined.starts_with("process_wrap"))
        {
            self.commands.push(format!("{}: {joined}", self.file.display()));
        }
        if let Some(path) = self.resolve(&segments) {
            if test {
                self.found_in_tests.insert(path);
            } else {
                self.found.insert(path);
            }
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut full = prefix.clone();
                if n.ident != "self" {
                    full.push(n.ident.to_string());
                }
                self.record(full);
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.clone();
                full.push(r.ident.to_string());
                self.record(full);
            }
            syn::UseTree::Glob(_) => self.record(prefix.clone()),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(prefix, t)),
        }
    }
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("cfg") && a.meta.to_token_stream().to_string().contains("test"))
}

impl<'ast> Visit<'ast> for Imports<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            _ => &[],
        };
        let test = *self.in_test.last().expect("a scope") || is_cfg_test(attrs);
        self.in_test.push(test);
        syn::visit::visit_item(self, item);
        self.in_test.pop();
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.children.last_mut().expect("a scope").insert(m.ident.to_string());
        if let Some((_, items)) = &m.content {
            let mut scope = self.scope.last().expect("a scope").clone();
            scope.push(m.ident.to_string());
            self.scope.push(scope);
            let declared = items
                .iter()
                .filter_map(|i| match i {
                    syn::Item::Mod(m) => Some(m.ident.to_string()),
                    _ => None,
                })
                .collect();
            self.children.push(declared);
            for item in items {
                self.visit_item(item);
            }
            self.children.pop();
            self.scope.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            self.record(segments);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        // Macro arguments are tokens, not syntax: their `crate::…`/`super::…` paths, as text.
        let text = mac.tokens.to_string().replace(' ', "");
        let re = regex::Regex::new(r"\b(crate|super|criu_matrix)((?:::\w+)+)").unwrap();
        for c in re.captures_iter(&text) {
            let mut segments = vec![c[1].to_string()];
            segments.extend(c[2].split("::").filter(|s| !s.is_empty()).map(String::from));
            self.record(segments);
        }
        syn::visit::visit_macro(self, mac);
    }
}

struct Graph {
    /// File (module path) -> the files it imports (outside its tests).
    edges: BTreeMap<ModulePath, BTreeSet<ModulePath>>,
    /// File -> the files its tests import.
    test_edges: BTreeMap<ModulePath, BTreeSet<ModulePath>>,
    paths: BTreeMap<ModulePath, PathBuf>,
    commands: Vec<String>,
}

fn graph() -> Graph {
    let sources = sources();
    let modules: BTreeSet<ModulePath> = sources.iter().map(|s| s.module.clone()).collect();
    let mut graph =
        Graph { edges: BTreeMap::new(), test_edges: BTreeMap::new(), paths: BTreeMap::new(), commands: Vec::new() };
    for source in &sources {
        let declared = source
            .syntax
            .items
            .iter()
            .filter_map(|i| match i {
                syn::Item::Mod(m) => Some(m.ident.to_string()),
                _ => None,
            })
            .collect();
        let mut imports = Imports {
            scope: vec![source.module.clone()],
            children: vec![declared],
            in_test: vec![false],
            found: BTreeSet::new(),
            found_in_tests: BTreeSet::new(),
            commands: Vec::new(),
            file: &source.path,
        };
        for item in &source.syntax.items {
            // A `mod x;` declaration is containment, not an import.
            if matches!(item, syn::Item::Mod(m) if m.content.is_none()) {
                continue;
            }
            imports.visit_item(item);
        }
        // Each path names the file of its longest module prefix.
        let files = |found: &BTreeSet<ModulePath>| -> BTreeSet<ModulePath> {
            found
                .iter()
                .filter_map(|path| (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| modules.contains(p)))
                .filter(|target| *target != source.module && !target.is_empty())
                .collect()
        };
        graph.commands.extend(imports.commands);
        graph.edges.insert(source.module.clone(), files(&imports.found));
        graph.test_edges.insert(source.module.clone(), files(&imports.found_in_tests));
        graph.paths.insert(source.module.clone(), source.path.clone());
    }
    graph
}

fn top(module: &ModulePath) -> &str {
    module.first().map(String::as_str).unwrap_or("crate")
}

fn name(module: &ModulePath) -> String {
    if module.is_empty() {
        "lib.rs".to_string()
    } else {
        module.join("::")
    }
}

#[test]
fn every_top_level_module_has_its_place_in_the_pipeline() {
    let graph = graph();
    let tops: BTreeSet<&str> = graph.edges.keys().filter(|m| !m.is_empty()).map(top).collect();
    let unplaced: Vec<&&str> = tops.iter().filter(|t| !PIPELINE.contains(t)).collect();
    assert!(unplaced.is_empty(), "top-level modules missing from PIPELINE (and ARCHITECTURE.md): {unplaced:?}");
    let gone: Vec<&&str> = PIPELINE.iter().filter(|p| !tops.contains(**p)).collect();
    assert!(gone.is_empty(), "PIPELINE names modules that do not exist: {gone:?}");
}

#[test]
fn imports_run_in_the_direction_of_the_pipeline() {
    let graph = graph();
    let rank = |m: &ModulePath| PIPELINE.iter().position(|p| *p == top(m));
    let mut against = Vec::new();
    for (from, targets) in graph.edges.iter().chain(&graph.test_edges) {
        for to in targets {
            if top(from) == top(to) || from.is_empty() {
                continue;
            }
            if let (Some(a), Some(b)) = (rank(from), rank(to)) {
                if b > a {
                    against.push(format!("{} imports {}, which comes later in the pipeline", name(from), name(to)));
                }
            }
        }
    }
    assert!(against.is_empty(), "imports against the pipeline:\n{}", against.join("\n"));
}

#[test]
fn no_file_imports_itself_through_others() {
    let graph = graph();
    // Tarjan's strongly connected components: every one of more than one file is a cycle.
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a ModulePath, usize>,
        low: BTreeMap<&'a ModulePath, usize>,
        stack: Vec<&'a ModulePath>,
        on_stack: BTreeSet<&'a ModulePath>,
        cycles: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a ModulePath) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.edges.get(v).into_iter().flatten() {
            if !s.graph.edges.contains_key(w) {
                continue;
            }
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(name(w));
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.cycles.push(component);
            }
        }
    }
    let mut state = State {
        graph: &graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        cycles: Vec::new(),
    };
    for v in graph.edges.keys() {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    let cycles: Vec<String> = state.cycles.iter().map(|c| c.join(" <-> ")).collect();
    assert!(cycles.is_empty(), "files that import each other (directly or through others):\n{}", cycles.join("\n"));
}

#[test]
fn external_programs_start_only_in_the_process_module() {
    let graph = graph();
    let outside: Vec<&String> = graph.commands.iter().filter(|c| !c.contains("/src/process/")).collect();
    assert!(outside.is_empty(), "commands built outside `process` (no time limit, no process group):\n{outside:#?}");
}

/// The test can fail: a file that imports against the pipeline, and two that import each
/// other, are found.
#[test]
fn the_checks_see_a_violation_when_there_is_one() {
    let file =
        syn::parse_file("use crate::run::Runner;\nfn f() { crate::cli::main(); format!(\"{}\", crate::report::x()); }")
            .unwrap();
    let mut imports = Imports {
        scope: vec![vec!["stack".into(), "exec".into()]],
        children: vec![BTreeSet::new()],
        in_test: vec![false],
        found: BTreeSet::new(),
        found_in_tests: BTreeSet::new(),
        commands: Vec::new(),
        file: Path::new("x.rs"),
    };
    imports.visit_file(&file);
    let found: Vec<String> = imports.found.iter().map(|p| p.join("::")).collect();
    assert!(found.contains(&"run::Runner".to_string()), "{found:?}");
    assert!(found.contains(&"cli::main".to_string()), "{found:?}");
    assert!(found.iter().any(|p| p.starts_with("report::x")), "a path in a macro: {found:?}");
}

#[test]
fn the_graph_covers_every_file() {
    let graph = graph();
    assert!(graph.paths.len() > 60, "{} files", graph.paths.len());
    // A sample edge the pipeline depends on: execution fills in the record's evidence types.
    let execute_round = vec!["execute".to_string(), "round".to_string()];
    assert!(graph.edges[&execute_round].iter().any(|t| top(t) == "record"), "{:?}", graph.edges[&execute_round]);
}
