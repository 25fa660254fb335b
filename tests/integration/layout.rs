//! The shape of the code, checked: the rules that keep berth reading as its
//! pipeline (`source -> spec -> secrets -> placement -> plan -> render`,
//! `hosts` observing and changing, `apply` executing) hold only if nothing
//! enforces them by accident, so this test reads `src/` as text and fails
//! when one is broken:
//!
//! - no import cycle between files (a file is a node; `foo.rs` or
//!   `foo/mod.rs` is the module `foo`; an edge is a `use` of, or a path
//!   through, `crate::…`, `super::…`, `self::…` or a child module);
//! - `git2` only inside `src/source*` (the one stage that talks to git);
//! - the pure stages (`spec`, `placement`, `plan`, `render`, `apply::schedule`,
//!   `apply::policy`) do no I/O and import no adapter.
//!
//! Test code (`#[cfg(test)]` items and `tests.rs` files declared so) is not
//! read: tests may build fixtures on disk and reach into any module.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Cycles that exist today in code being reshaped elsewhere, each to be
/// removed from this list by the change that breaks it (the test fails when
/// a listed cycle is gone, so the list only shrinks).
const KNOWN_CYCLES: &[&[&str]] = &[];

/// Files outside `src/source*` that use `git2` today, to move into `source`
/// (the test fails when a listed file no longer does, so the list only shrinks).
const KNOWN_GIT2: &[&str] = &[];

/// Paths that mean I/O, as a pure stage must never name them.
const IO_PATHS: &[&str] = &[
    "std::fs",
    "tokio",
    "bollard",
    "openssh",
    "std::process",
    "std::net",
];

/// Plain values under `std::net`: parsing an address is not I/O.
const NET_VALUES: &[&str] = &["IpAddr", "Ipv4Addr", "Ipv6Addr", "SocketAddr"];

/// Known, named exceptions to the I/O rule: (file, path prefix, why).
const IO_EXCEPTIONS: &[(&str, &str, &str)] = &[(
    "src/spec/mod.rs",
    "std::fs",
    "`spec::load` reads the checkout's own files (berth.yaml, compose files); it touches no host",
), (
    "src/spec/resolve.rs",
    "std::fs",
    "reading a stack pulls in the repo files it names (`.env`, `env_file`, `extends`, `include`), checked to stay inside the checkout; it touches no host",
), (
    "src/spec/configs.rs",
    "std::fs",
    "configs are the checkout's files (`configs: {x: {file: ...}}`, `./` bind mounts), read and digested at load, checked to stay inside the checkout; it touches no host",
)];

/// The pure stages, by file path prefix (a prefix `src/plan` covers
/// `src/plan.rs` and `src/plan/…`).
const PURE: &[&str] = &[
    "src/spec",
    "src/placement",
    "src/plan",
    "src/render",
    "src/apply/schedule.rs",
    "src/apply/policy.rs",
    "src/import",
    "src/swarm",
];

/// What the pure stages may import besides each other: the plain data
/// `hosts` reports (labels, observations), and the crate root.
const PURE_MAY_ALSO_IMPORT: &[&str] = &["src/labels.rs", "src/observed.rs", "src/lib.rs"];

/// One source file, as far as this test cares.
struct File {
    /// `src/hosts/docker/mod.rs`
    path: String,
    /// `["hosts", "docker"]`; empty for `lib.rs`.
    module: Vec<String>,
    /// Comments, strings and test-only items blanked out.
    code: String,
    /// Child modules declared with `mod x;` outside test code.
    children: BTreeSet<String>,
}

/// An import of one file by another, with where it was seen.
#[derive(Clone)]
struct Edge {
    to: usize,
    line: usize,
    text: String,
}

#[test]
fn no_import_cycles() {
    let files = read_src();
    let graph = graph(&files);
    let mut report = String::new();
    let found = cycles(&graph);
    let mut known_seen = BTreeSet::new();
    for cycle in found {
        let mut names: Vec<&str> = cycle.iter().map(|&i| files[i].path.as_str()).collect();
        names.sort();
        if let Some(k) = KNOWN_CYCLES.iter().position(|k| *k == names.as_slice()) {
            known_seen.insert(k);
            continue;
        }
        writeln!(report, "import cycle:").ok();
        for (i, &from) in cycle.iter().enumerate() {
            let to = cycle[(i + 1) % cycle.len()];
            let edge = graph[from]
                .iter()
                .find(|e| e.to == to)
                .map(|e| format!("line {}: `{}`", e.line, e.text))
                .unwrap_or_default();
            writeln!(
                report,
                "  {} -> {}  ({edge})",
                files[from].path, files[to].path
            )
            .ok();
        }
    }
    for (k, known) in KNOWN_CYCLES.iter().enumerate() {
        if !known_seen.contains(&k) {
            writeln!(
                report,
                "the known cycle {known:?} is gone (or changed): take it out of `KNOWN_CYCLES`"
            )
            .ok();
        }
    }
    assert!(
        report.is_empty(),
        "{report}\nhelp: move what both sides need down into a module that imports neither \
         (data types and pure helpers below the stages that use them), or pass it in as an argument"
    );
}

#[test]
fn git2_stays_in_source() {
    let files = read_src();
    let mut outside: Vec<String> = files
        .iter()
        .filter(|f| !f.path.starts_with("src/source") && !KNOWN_GIT2.contains(&f.path.as_str()))
        .flat_map(|f| {
            f.code
                .lines()
                .enumerate()
                .filter(|(_, l)| contains_path(l, "git2"))
                .map(|(n, l)| format!("  {}:{}: {}", f.path, n + 1, l.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    for known in KNOWN_GIT2 {
        let still = files
            .iter()
            .any(|f| f.path == *known && f.code.lines().any(|l| contains_path(l, "git2")));
        if !still {
            outside.push(format!(
                "  {known} no longer uses `git2`: take it out of `KNOWN_GIT2`"
            ));
        }
    }
    assert!(
        outside.is_empty(),
        "`git2` used outside `src/source`:\n{}\nhelp: git is the source stage's business: \
         add a function to `source` and call that",
        outside.join("\n")
    );
}

#[test]
fn pure_stages_do_no_io() {
    let files = read_src();
    let mut found = Vec::new();
    for f in files.iter().filter(|f| is_pure(&f.path)) {
        for (n, line) in f.code.lines().enumerate() {
            for path in paths_in(line) {
                let Some(io) = IO_PATHS.iter().find(|p| starts_with_path(&path, p)) else {
                    continue;
                };
                if *io == "std::net"
                    && NET_VALUES
                        .iter()
                        .any(|v| path.split("::").nth(2) == Some(v))
                {
                    continue;
                }
                if IO_EXCEPTIONS
                    .iter()
                    .any(|(file, prefix, _)| *file == f.path && starts_with_path(&path, prefix))
                {
                    continue;
                }
                found.push(format!("  {}:{}: `{path}`", f.path, n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "a pure stage does I/O:\n{}\nhelp: pure stages (spec, placement, plan, render, \
         apply::schedule, apply::policy) decide; I/O belongs at the edges (source, hosts, the \
         rollout executor): take the data as an argument instead",
        found.join("\n")
    );
}

#[test]
fn pure_stages_import_no_adapter() {
    let files = read_src();
    let graph = graph(&files);
    let mut found = Vec::new();
    for (i, f) in files.iter().enumerate().filter(|(_, f)| is_pure(&f.path)) {
        for e in &graph[i] {
            let to = &files[e.to].path;
            if !is_pure(to) && !PURE_MAY_ALSO_IMPORT.contains(&to.as_str()) {
                found.push(format!("  {}:{}: `{}` (in {to})", f.path, e.line, e.text));
            }
        }
    }
    assert!(
        found.is_empty(),
        "a pure stage imports an adapter or a later stage:\n{}\nhelp: the pure stages may \
         import each other and the data `hosts` reports (`labels`, `observed`); \
         move the helper down, or pass its result in",
        found.join("\n")
    );
}

/// The rules themselves, on small sources: a test that cannot fail proves nothing.
#[test]
fn the_checks_see_what_they_should() {
    let files = vec![
        file("src/lib.rs", "pub mod a; pub mod b;"),
        file("src/a.rs", "use crate::b::Thing; pub struct A;"),
        file(
            "src/b/mod.rs",
            "mod c; pub use c::C; // crate::a::A in a comment\n\
             const S: &str = \"crate::a::A\";\n\
             #[cfg(test)]\nmod tests { use crate::a::A; }\n\
             pub struct Thing;",
        ),
        file(
            "src/b/c.rs",
            "use super::super::a::{self, A}; pub struct C;",
        ),
    ];
    let graph = graph(&files);
    let cycles = cycles(&graph);
    assert_eq!(cycles.len(), 1, "one cycle: a -> b -> c -> a");
    assert_eq!(cycles[0].len(), 3);
    assert!(
        graph[2].iter().all(|e| files[e.to].path != "src/a.rs"),
        "comments, strings and tests are not imports"
    );
    assert_eq!(
        paths_in("let x = std::fs::read(p); use std::net::{IpAddr, TcpStream};"),
        vec!["std::fs::read", "std::net::IpAddr", "std::net::TcpStream"]
    );
    assert!(is_pure("src/plan.rs") && is_pure("src/spec/image.rs"));
    assert!(!is_pure("src/apply/rollout.rs"));
    assert_eq!(
        test_modules("#[cfg(test)]\nmod a;\n#[cfg(test)]\npub(crate) mod b;\nmod c;"),
        vec!["a", "b"],
        "test-only modules, whatever their visibility"
    );
}

fn is_pure(path: &str) -> bool {
    PURE.iter().any(|p| {
        path == *p || path.starts_with(&format!("{p}.rs")) || path.starts_with(&format!("{p}/"))
    })
}

fn starts_with_path(path: &str, prefix: &str) -> bool {
    path == prefix || path.starts_with(&format!("{prefix}::"))
}

fn contains_path(line: &str, root: &str) -> bool {
    paths_in(line).iter().any(|p| starts_with_path(p, root))
}

fn read_src() -> Vec<File> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    walk(&root.join("src"), &mut paths);
    paths.sort();
    let mut files: Vec<File> = paths
        .iter()
        .filter(|p| !p.ends_with("main.rs") || p.parent() != Some(&root.join("src")))
        .filter_map(|p| {
            let rel = p
                .strip_prefix(root)
                .ok()?
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(p).ok()?;
            Some(file(&rel, &text))
        })
        .collect();
    // Files declared only under `#[cfg(test)]` are test code.
    let test_only: BTreeSet<Vec<String>> = files
        .iter()
        .flat_map(|f| {
            let declared = f.children.clone();
            let raw = std::fs::read_to_string(root.join(&f.path)).unwrap_or_default();
            test_modules(&raw)
                .into_iter()
                .filter(move |m| !declared.contains(m))
                .map(|m| {
                    let mut path = f.module.clone();
                    path.push(m);
                    path
                })
                .collect::<Vec<_>>()
        })
        .collect();
    files.retain(|f| !test_only.contains(&f.module));
    files
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn file(path: &str, text: &str) -> File {
    let module: Vec<String> = {
        let rel = path.trim_start_matches("src/").trim_end_matches(".rs");
        let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
        if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
            parts.pop();
        }
        parts
    };
    let code = drop_test_items(&blank_comments_and_strings(text));
    let children = declared_modules(&code);
    File {
        path: path.to_string(),
        module,
        code,
        children,
    }
}

/// `mod x;` declarations in (already test-free) code.
fn declared_modules(code: &str) -> BTreeSet<String> {
    let tokens = tokens(code);
    let mut out = BTreeSet::new();
    for w in tokens.windows(3) {
        if w[0] == "mod" && w[2] == ";" {
            out.insert(w[1].clone());
        }
    }
    out
}

/// Names of `#[cfg(test)] mod x;` declarations.
fn test_modules(text: &str) -> Vec<String> {
    let code = blank_comments_and_strings(text);
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("#[cfg(test)]") {
        rest = &rest[i + "#[cfg(test)]".len()..];
        let t = tokens(rest);
        let t: Vec<&str> = t.iter().map(String::as_str).take(7).collect();
        // Any visibility: `mod x;`, `pub mod x;`, `pub(crate) mod x;`.
        let t = match t.as_slice() {
            ["pub", "(", _, ")", rest @ ..] | ["pub", rest @ ..] => rest,
            all => all,
        };
        if let ["mod", name, ";", ..] = t {
            out.push(name.to_string());
        }
    }
    out
}

/// Identifiers and single punctuation characters (`::` kept whole).
fn tokens(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
            continue;
        }
        if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
            continue;
        }
        if !c.is_whitespace() {
            out.push(c.to_string());
        }
        i += 1;
    }
    out
}

/// Replaces comments and string/char literals with spaces, keeping lines.
fn blank_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_'))
        {
            // Raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let body_start = j + 1;
            let rest: String = chars[body_start..].iter().collect();
            let end = rest
                .find(&close)
                .map(|k| body_start + rest[..k].chars().count() + close.chars().count())
                .unwrap_or(chars.len());
            while i < end {
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '"' {
            blank(&mut out, c);
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
            if i < chars.len() {
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '\'' {
            // A char literal ('x', '\n', '\''), not a lifetime ('a).
            let is_char = matches!(
                (next, chars.get(i + 2)),
                (Some('\\'), _) | (Some(_), Some('\''))
            );
            if is_char {
                let mut j = i + 1;
                if chars[j] == '\\' {
                    j += 2;
                }
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                while i <= j.min(chars.len() - 1) {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Blanks every item under `#[cfg(test)]`: up to its `;` or the end of its
/// `{ … }` block.
fn drop_test_items(code: &str) -> String {
    let mark: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut out: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i + mark.len() <= out.len() {
        if out[i..i + mark.len()] != mark[..] {
            i += 1;
            continue;
        }
        let mut j = i + mark.len();
        let mut depth = 0usize;
        let mut end = out.len();
        while j < out.len() {
            match out[j] {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = j + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = j + 1;
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        for c in &mut out[i..end] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        i = end;
    }
    out.into_iter().collect()
}

/// Every `a::b::c` path on a line, `use` groups expanded
/// (`use x::{a, b::c}` gives `x::a`, `x::b::c`).
fn paths_in(line: &str) -> Vec<String> {
    let t = tokens(line);
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let starts_path = is_ident(&t[i])
            && t.get(i + 1).is_some_and(|n| n == "::")
            && (i == 0 || t[i - 1] != "::");
        if !starts_path {
            i += 1;
            continue;
        }
        let (paths, next) = path_at(&t, i, String::new());
        out.extend(paths);
        i = next.max(i + 1);
    }
    out
}

/// The path (or paths, through a `{…}` group) starting at token `i`.
fn path_at(t: &[String], mut i: usize, prefix: String) -> (Vec<String>, usize) {
    let mut path = prefix;
    loop {
        match t.get(i).map(String::as_str) {
            Some("{") => {
                let mut out = Vec::new();
                i += 1;
                while i < t.len() && t[i] != "}" {
                    if t[i] == "," {
                        i += 1;
                        continue;
                    }
                    let (paths, next) = path_at(t, i, path.clone());
                    out.extend(paths);
                    i = next.max(i + 1);
                    if t.get(i).is_some_and(|x| x == "as") {
                        i += 2;
                    }
                }
                return (out, i + 1);
            }
            Some(word) if is_ident(word) => {
                if word == "self" && !path.is_empty() {
                    path.truncate(path.len() - 2);
                } else {
                    path.push_str(word);
                }
                i += 1;
                if t.get(i).is_some_and(|x| x == "::") {
                    path.push_str("::");
                    i += 1;
                } else {
                    return (vec![path], i);
                }
            }
            _ => {
                let path = path.trim_end_matches("::").to_string();
                return (if path.is_empty() { vec![] } else { vec![path] }, i);
            }
        }
    }
}

fn is_ident(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Edges between files: each file's imports resolved to the file that
/// defines the module they go through.
fn graph(files: &[File]) -> Vec<Vec<Edge>> {
    let by_module: BTreeMap<&[String], usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.module.as_slice(), i))
        .collect();
    files
        .iter()
        .enumerate()
        .map(|(me, f)| {
            let mut edges: Vec<Edge> = Vec::new();
            for (n, line) in f.code.lines().enumerate() {
                for path in paths_in(line) {
                    let Some(target) = resolve(f, &path) else {
                        continue;
                    };
                    // The longest prefix that is a file.
                    let to = (1..=target.len())
                        .rev()
                        .find_map(|k| by_module.get(&target[..k]).copied());
                    let Some(to) = to else { continue };
                    if to == me || edges.iter().any(|e| e.to == to) {
                        continue;
                    }
                    edges.push(Edge {
                        to,
                        line: n + 1,
                        text: path,
                    });
                }
            }
            edges
        })
        .collect()
}

/// A path as seen from `f`, made absolute (module segments from the crate
/// root); None for paths outside the crate.
fn resolve(f: &File, path: &str) -> Option<Vec<String>> {
    let segments: Vec<&str> = path.split("::").collect();
    let mut base: Vec<String>;
    let mut rest = segments.as_slice();
    match segments.first().copied() {
        Some("crate") => {
            base = Vec::new();
            rest = &rest[1..];
        }
        Some("super") | Some("self") => {
            base = f.module.clone();
            while let Some(&first) = rest.first() {
                match first {
                    "super" => {
                        base.pop()?;
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
        }
        Some(first) if f.children.contains(first) => {
            base = f.module.clone();
        }
        _ => return None,
    }
    base.extend(rest.iter().map(|s| s.to_string()));
    Some(base)
}

/// Every strongly connected component of more than one file, each as one
/// cycle through it (shortest found by a walk from its first file).
fn cycles(graph: &[Vec<Edge>]) -> Vec<Vec<usize>> {
    // Tarjan's algorithm, iterative enough for a few hundred files.
    struct Tarjan<'a> {
        graph: &'a [Vec<Edge>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for e in &self.graph[v] {
                match self.index[e.to] {
                    None => {
                        self.visit(e.to);
                        self.low[v] = self.low[v].min(self.low[e.to]);
                    }
                    Some(i) if self.on_stack[e.to] => self.low[v] = self.low[v].min(i),
                    _ => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    self.out.push(scc);
                }
            }
        }
    }
    let n = graph.len();
    let mut t = Tarjan {
        graph,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    t.out
        .into_iter()
        .map(|scc| {
            let members: BTreeSet<usize> = scc.iter().copied().collect();
            let start = *members.iter().next().unwrap_or(&0);
            shortest_cycle(graph, start, &members)
        })
        .collect()
}

/// A shortest cycle through `start` within `members` (breadth-first).
fn shortest_cycle(graph: &[Vec<Edge>], start: usize, members: &BTreeSet<usize>) -> Vec<usize> {
    let mut parent: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for e in &graph[v] {
            if !members.contains(&e.to) {
                continue;
            }
            if e.to == start {
                let mut cycle = vec![v];
                let mut at = v;
                while at != start {
                    at = parent[&at];
                    cycle.push(at);
                }
                cycle.reverse();
                return cycle;
            }
            if let std::collections::btree_map::Entry::Vacant(slot) = parent.entry(e.to) {
                slot.insert(v);
                queue.push_back(e.to);
            }
        }
    }
    members.iter().copied().collect()
}
