//! The co-location lint, part of `cargo xtask door-lint`: no query of the tenant schema joins
//! across tenants, so the shared tier can be distributed by `tenant_id` (every tenant-schema table
//! co-located on it). The tenant-schema tables are the ones the tenant migrations create
//! (`crates/*/migrations/tenant/*.sql`). In the Rust sources of the crates, every string literal
//! (normal or raw) that reads as SQL is parsed, and wherever two tenant-schema tables meet in one
//! query (an explicit `JOIN … ON`/`USING`/`NATURAL JOIN`, a comma join `FROM a, b WHERE`, a
//! correlated subquery `EXISTS (SELECT … FROM b WHERE b.x = a.x)`, an `IN (SELECT …)` semi-join,
//! the `FROM` of an `UPDATE` or the `USING` of a `DELETE`), their `tenant_id`s must be equated:
//! `a.tenant_id = b.tenant_id`, `USING (tenant_id, …)`, or both equal to one parameter
//! (`a.tenant_id = $1 AND b.tenant_id = $1`), directly or through other equalities of the query's
//! `ON`/`WHERE` conjuncts (never under an `OR`).
//!
//! Deliberately simple: a `{NAME}` in a literal is replaced by the file's `const NAME: &str`
//! (the column lists kept in constants), but a query otherwise assembled at run time (`concat!`,
//! `push_str`, a `format!` of a variable) is read literal by literal; a derived table or a CTE
//! counts as a table outside the tenant schema (its own query is checked, its rows are not traced
//! back to their tables); an unqualified column is resolved only when its query level has a single
//! table; only `src/` is read, not the tests. What it cannot see it does not report.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// A join of two tenant-schema tables without an equality of their `tenant_id`s.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    /// The source line of the later table's name.
    pub line: usize,
    pub left: String,
    pub right: String,
}

/// Crates whose sources are not read: the test harness (it creates and drops whole databases,
/// never queries tenant data).
const SKIPPED: &[&str] = &["crates/testkit"];

/// Checks every crate's `src/`; returns how many files were read and the problems, as
/// `path:line: JOIN of a and b without tenant_id equality`.
pub fn check(root: &Path) -> anyhow::Result<(usize, Vec<String>)> {
    let tables = tenant_tables(root)?;
    anyhow::ensure!(
        !tables.is_empty(),
        "no CREATE TABLE in crates/*/migrations/tenant/"
    );
    let files = crate::door_lint::crate_sources(root, SKIPPED, &["rs"])?;
    let mut problems = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(root)?.to_string_lossy().to_string();
        let text =
            std::fs::read_to_string(file).with_context(|| format!("failed to read {relative}"))?;
        for v in violations(&text, &tables) {
            problems.push(format!(
                "{relative}:{}: JOIN of {} and {} without tenant_id equality",
                v.line, v.left, v.right
            ));
        }
    }
    Ok((files.len(), problems))
}

/// The tables the tenant migrations create.
pub fn tenant_tables(root: &Path) -> anyhow::Result<BTreeSet<String>> {
    let mut tables = BTreeSet::new();
    for krate in sorted_entries(&root.join("crates"))? {
        let dir = krate.join("migrations").join("tenant");
        if !dir.is_dir() {
            continue;
        }
        for file in sorted_entries(&dir)? {
            if file.extension().is_some_and(|e| e == "sql") {
                let sql = std::fs::read_to_string(&file)
                    .with_context(|| format!("failed to read {}", file.display()))?;
                tables.extend(created_tables(&sql));
            }
        }
    }
    Ok(tables)
}

/// The names of `CREATE [UNLOGGED] TABLE [IF NOT EXISTS] [schema.]name`, without the schema.
pub fn created_tables(sql: &str) -> Vec<String> {
    let tokens = tokenize(sql);
    let mut names = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !t.is_word("create") {
            continue;
        }
        let mut j = i + 1;
        while tokens
            .get(j)
            .is_some_and(|t| t.is_word("unlogged") || t.is_word("temp") || t.is_word("temporary"))
        {
            j += 1;
        }
        if !tokens.get(j).is_some_and(|t| t.is_word("table")) {
            continue;
        }
        j += 1;
        if tokens.get(j).is_some_and(|t| t.is_word("if")) {
            j += 3;
        }
        let mut name = None;
        while let Some(Tok::Word(w, _)) = tokens.get(j).map(|t| &t.tok) {
            name = Some(w.clone());
            if tokens.get(j + 1).is_some_and(|t| t.tok == Tok::Dot) {
                j += 2;
            } else {
                break;
            }
        }
        names.extend(name);
    }
    names
}

/// The cross-tenant joins in the SQL literals of one Rust source. A `{NAME}` in a literal (a
/// `format!` argument) is replaced by the value of the file's `const NAME: &str = "…"`, so a
/// column list kept in a constant is read within its query.
pub fn violations(source: &str, tables: &BTreeSet<String>) -> Vec<Violation> {
    let literals = rust_strings(source);
    let consts: HashMap<String, &Literal> = literals
        .iter()
        .filter_map(|l| Some((l.const_name.clone()?, l)))
        .collect();
    let mut found = BTreeSet::new();
    for literal in &literals {
        let literal = expand(literal, &consts, 0);
        if !looks_like_sql(&literal.text) {
            continue;
        }
        for (pos, left, right) in sql_violations(&literal.text, tables) {
            let line = literal
                .lines
                .get(pos)
                .copied()
                .unwrap_or(literal.first_line);
            found.insert(Violation { line, left, right });
        }
    }
    found.into_iter().collect()
}

/// The cross-tenant joins of one SQL text: (byte offset of the later table's name, the earlier
/// table, the later one).
pub fn sql_violations(sql: &str, tables: &BTreeSet<String>) -> Vec<(usize, String, String)> {
    let nodes = tree(tokenize(sql));
    let mut analyzer = Analyzer {
        tables,
        next_id: 0,
        found: Vec::new(),
    };
    analyzer.block(&nodes, &[], &[], None);
    analyzer.found.sort();
    analyzer.found.dedup();
    analyzer.found
}

fn sorted_entries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("failed to read {}", dir.display()))?
    {
        entries.push(entry?.path());
    }
    entries.sort();
    Ok(entries)
}

// ---------------------------------------------------------------------------------------------
// Rust string literals

/// A string literal's value, and for each of its bytes the source line it came from.
#[derive(Debug, Default, Clone)]
struct Literal {
    text: String,
    lines: Vec<usize>,
    first_line: usize,
    /// `NAME` when the literal is the value of `const NAME: &str`.
    const_name: Option<String>,
}

/// The literal with each `{NAME}` of a constant in `consts` replaced by its value (to a depth of
/// three).
fn expand(literal: &Literal, consts: &HashMap<String, &Literal>, depth: usize) -> Literal {
    if depth == 3 || !literal.text.contains('{') {
        return literal.clone();
    }
    let mut out = Literal {
        first_line: literal.first_line,
        ..Literal::default()
    };
    let text = &literal.text;
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with("{{") {
            out.text.push_str("{{");
            out.lines.extend_from_slice(&literal.lines[i..i + 2]);
            i += 2;
            continue;
        }
        if text[i..].starts_with('{')
            && let Some(end) = text[i..].find('}')
            && let Some(value) = consts.get(&text[i + 1..i + end])
        {
            let value = expand(value, consts, depth + 1);
            out.text.push_str(&value.text);
            out.lines.extend_from_slice(&value.lines);
            i += end + 1;
            continue;
        }
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        out.text.push(c);
        out.lines
            .extend_from_slice(&literal.lines[i..i + c.len_utf8()]);
        i += c.len_utf8();
    }
    out
}

/// `NAME` if the source before a literal ends with `const NAME: &str =` (or `&'static str`).
fn const_name(before: &str) -> Option<String> {
    let rest = before.trim_end().strip_suffix('=')?.trim_end();
    let rest = rest
        .strip_suffix("&str")
        .or_else(|| rest.strip_suffix("&'static str"))?
        .trim_end()
        .strip_suffix(':')?
        .trim_end();
    let start = rest
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map_or(0, |k| k + 1);
    let name = &rest[start..];
    let keyword = rest[..start].trim_end();
    (!name.is_empty() && keyword.ends_with("const")).then(|| name.to_string())
}

impl Literal {
    fn push(&mut self, c: char, line: usize) {
        self.text.push(c);
        self.lines.extend(std::iter::repeat_n(line, c.len_utf8()));
    }
}

/// The string literals of a Rust source (`"…"`, `b"…"`, `c"…"`, `r"…"`, `r#"…"#`, …), with
/// escapes decoded; comments, character literals and lifetimes are skipped.
fn rust_strings(source: &str) -> Vec<Literal> {
    let chars: Vec<char> = source.chars().collect();
    let named = |mut literal: Literal, start: usize| {
        let before: String = chars[start.saturating_sub(200)..start].iter().collect();
        literal.const_name = const_name(&before);
        literal
    };
    let at = |i: usize| chars.get(i).copied();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while let Some(c) = at(i) {
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            '/' if at(i + 1) == Some('/') => {
                while at(i).is_some_and(|c| c != '\n') {
                    i += 1;
                }
            }
            '/' if at(i + 1) == Some('*') => {
                let mut depth = 0;
                while let Some(c) = at(i) {
                    if c == '/' && at(i + 1) == Some('*') {
                        depth += 1;
                        i += 2;
                    } else if c == '*' && at(i + 1) == Some('/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if c == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            '"' => {
                let (literal, next, next_line) = escaped_string(&chars, i + 1, line);
                out.push(named(literal, i));
                i = next;
                line = next_line;
            }
            '\'' => {
                if at(i + 1) == Some('\\') {
                    // '\n', '\'', '\u{…}'
                    i += 3;
                    while at(i).is_some_and(|c| c != '\'') {
                        i += 1;
                    }
                    i += 1;
                } else if at(i + 2) == Some('\'') {
                    i += 3;
                } else {
                    i += 1; // a lifetime or a label
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    i += 1;
                }
                let ident: String = chars[start..i].iter().collect();
                if matches!(ident.as_str(), "r" | "br" | "cr") {
                    let mut hashes = 0;
                    while at(i + hashes) == Some('#') {
                        hashes += 1;
                    }
                    if at(i + hashes) == Some('"') {
                        let (literal, next, next_line) =
                            raw_string(&chars, i + hashes + 1, hashes, line);
                        out.push(named(literal, start));
                        i = next;
                        line = next_line;
                    }
                } else if matches!(ident.as_str(), "b" | "c") && at(i) == Some('"') {
                    let (literal, next, next_line) = escaped_string(&chars, i + 1, line);
                    out.push(named(literal, start));
                    i = next;
                    line = next_line;
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// The literal whose text starts at `i` (after its opening quote), the index after its closing
/// quote, and the line there.
fn escaped_string(chars: &[char], mut i: usize, mut line: usize) -> (Literal, usize, usize) {
    let at = |i: usize| chars.get(i).copied();
    let mut literal = Literal {
        first_line: line,
        ..Literal::default()
    };
    while let Some(c) = at(i) {
        match c {
            '"' => return (literal, i + 1, line),
            '\\' => {
                let escaped = at(i + 1);
                i += 2;
                match escaped {
                    Some('\n') => {
                        line += 1;
                        while at(i).is_some_and(char::is_whitespace) {
                            if at(i) == Some('\n') {
                                line += 1;
                            }
                            i += 1;
                        }
                    }
                    Some('n') => literal.push('\n', line),
                    Some('t') => literal.push('\t', line),
                    Some('r') => literal.push('\r', line),
                    Some('0') => literal.push('\0', line),
                    Some('x') => {
                        let hex: String = chars[i.min(chars.len())..(i + 2).min(chars.len())]
                            .iter()
                            .collect();
                        i += 2;
                        if let Some(c) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                        {
                            literal.push(c, line);
                        }
                    }
                    Some('u') => {
                        let start = i + 1;
                        while at(i).is_some_and(|c| c != '}') {
                            i += 1;
                        }
                        let hex: String = chars[start.min(i)..i].iter().collect();
                        i += 1;
                        if let Some(c) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                        {
                            literal.push(c, line);
                        }
                    }
                    Some(other) => literal.push(other, line),
                    None => {}
                }
            }
            '\n' => {
                literal.push('\n', line);
                line += 1;
                i += 1;
            }
            c => {
                literal.push(c, line);
                i += 1;
            }
        }
    }
    (literal, i, line)
}

/// Like [`escaped_string`] for a raw string closed by `"` and `hashes` hashes.
fn raw_string(
    chars: &[char],
    mut i: usize,
    hashes: usize,
    mut line: usize,
) -> (Literal, usize, usize) {
    let mut literal = Literal {
        first_line: line,
        ..Literal::default()
    };
    while let Some(&c) = chars.get(i) {
        if c == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return (literal, i + 1 + hashes, line);
        }
        literal.push(c, line);
        if c == '\n' {
            line += 1;
        }
        i += 1;
    }
    (literal, i, line)
}

/// Whether a literal reads as SQL: it has one of the upper-case keywords that a query joining
/// tables needs (prose writes them in lower case).
fn looks_like_sql(text: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| matches!(w, "SELECT" | "FROM" | "JOIN" | "UPDATE" | "DELETE"))
}

// ---------------------------------------------------------------------------------------------
// SQL tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// An identifier or keyword, folded to lower case unless quoted (`true`); a `{…}` placeholder
    /// of `format!` counts as a quoted identifier.
    Word(String, bool),
    Param(String),
    /// A string, number or dollar-quoted body.
    Lit(String),
    Op(String),
    Open,
    Close,
    Comma,
    Dot,
    Semi,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
}

impl Token {
    fn is_word(&self, word: &str) -> bool {
        matches!(&self.tok, Tok::Word(w, false) if w == word)
    }
}

fn tokenize(sql: &str) -> Vec<Token> {
    let bytes = sql.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(b) = at(i) {
        let start = i;
        let tok = match b {
            b if b.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'-' if at(i + 1) == Some(b'-') => {
                while at(i).is_some_and(|b| b != b'\n') {
                    i += 1;
                }
                continue;
            }
            b'/' if at(i + 1) == Some(b'*') => {
                let mut depth = 0;
                while let Some(b) = at(i) {
                    if b == b'/' && at(i + 1) == Some(b'*') {
                        depth += 1;
                        i += 2;
                    } else if b == b'*' && at(i + 1) == Some(b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'\'' => {
                i += 1;
                loop {
                    match at(i) {
                        Some(b'\'') if at(i + 1) == Some(b'\'') => i += 2,
                        Some(b'\'') | None => break,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
                Tok::Lit(sql.get(start..i.min(sql.len())).unwrap_or("").to_string())
            }
            b'"' => {
                i += 1;
                let mut name = Vec::new();
                loop {
                    match at(i) {
                        Some(b'"') if at(i + 1) == Some(b'"') => {
                            name.push(b'"');
                            i += 2;
                        }
                        Some(b'"') | None => break,
                        Some(b) => {
                            name.push(b);
                            i += 1;
                        }
                    }
                }
                i += 1;
                Tok::Word(String::from_utf8_lossy(&name).into_owned(), true)
            }
            b'$' if at(i + 1).is_some_and(|b| b.is_ascii_digit()) => {
                i += 1;
                while at(i).is_some_and(|b| b.is_ascii_digit()) {
                    i += 1;
                }
                Tok::Param(sql[start..i].to_string())
            }
            b'$' => {
                // $$…$$ or $tag$…$tag$
                let mut j = i + 1;
                while at(j).is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    j += 1;
                }
                if at(j) == Some(b'$') {
                    let tag = &sql[i..=j];
                    let body = j + 1;
                    i = sql[body..]
                        .find(tag)
                        .map_or(sql.len(), |k| body + k + tag.len());
                    Tok::Lit(sql[start..i].to_string())
                } else {
                    i += 1;
                    Tok::Op("$".to_string())
                }
            }
            b'{' if sql[i..].find('}').is_some() => {
                let end = sql[i..].find('}').map_or(sql.len(), |k| i + k + 1);
                i = end;
                Tok::Word(sql[start..i].to_string(), true)
            }
            b if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                while at(i).is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
                    || at(i).is_some_and(|b| b >= 0x80)
                {
                    i += 1;
                }
                Tok::Word(sql[start..i].to_lowercase(), false)
            }
            b if b.is_ascii_digit() => {
                while at(i).is_some_and(|b| b.is_ascii_digit())
                    || (at(i) == Some(b'.') && at(i + 1).is_some_and(|b| b.is_ascii_digit()))
                {
                    i += 1;
                }
                Tok::Lit(sql[start..i].to_string())
            }
            b'(' => {
                i += 1;
                Tok::Open
            }
            b')' => {
                i += 1;
                Tok::Close
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'.' => {
                i += 1;
                Tok::Dot
            }
            b';' => {
                i += 1;
                Tok::Semi
            }
            b':' => {
                i += if at(i + 1) == Some(b':') { 2 } else { 1 };
                Tok::Op(sql[start..i].to_string())
            }
            b if b"+-*/<>=~!@#%^&|?".contains(&b) => {
                i += 1;
                while at(i).is_some_and(|b| b"+-*/<>=~!@#%^&|?".contains(&b))
                    && !(at(i) == Some(b'-') && at(i + 1) == Some(b'-'))
                    && !(at(i) == Some(b'/') && at(i + 1) == Some(b'*'))
                {
                    i += 1;
                }
                Tok::Op(sql[start..i].to_string())
            }
            _ => {
                i += 1;
                while !sql.is_char_boundary(i) {
                    i += 1;
                }
                Tok::Op(sql[start..i].to_string())
            }
        };
        out.push(Token { tok, pos: start });
    }
    out
}

/// A token, or a parenthesized group (with the offset of its `(`).
#[derive(Debug, Clone)]
enum Node {
    Tok(Token),
    Group(Vec<Node>, usize),
}

impl Node {
    fn is_word(&self, word: &str) -> bool {
        matches!(self, Node::Tok(t) if t.is_word(word))
    }

    fn is(&self, tok: &Tok) -> bool {
        matches!(self, Node::Tok(t) if &t.tok == tok)
    }

    /// An identifier that may name a table, column or alias (not a keyword of the grammar below).
    fn name(&self) -> Option<&str> {
        match self {
            Node::Tok(Token {
                tok: Tok::Word(w, quoted),
                ..
            }) if *quoted || !RESERVED.split_whitespace().any(|r| r == w) => Some(w),
            _ => None,
        }
    }

    fn pos(&self) -> usize {
        match self {
            Node::Tok(t) => t.pos,
            Node::Group(_, pos) => *pos,
        }
    }

    /// The group's nodes if it holds a query.
    fn query(&self) -> Option<&[Node]> {
        match self {
            Node::Group(inner, _)
                if inner.first().is_some_and(|n| {
                    [
                        "select", "with", "values", "insert", "update", "delete", "table",
                    ]
                    .iter()
                    .any(|k| n.is_word(k))
                }) =>
            {
                Some(inner)
            }
            _ => None,
        }
    }
}

/// Keywords that end a table reference or a clause: never an alias.
const RESERVED: &str = "\
    all and as between by cross delete distinct do except fetch for from full group having \
    in inner insert intersect into is join lateral left limit natural not offset on only or \
    order outer returning right select set tablesample union update using values where \
    window with";

/// Words that end a `FROM` list or a `WHERE` condition.
const CLAUSE_END: &[&str] = &[
    "where",
    "group",
    "having",
    "window",
    "order",
    "limit",
    "offset",
    "fetch",
    "for",
    "returning",
    "union",
    "intersect",
    "except",
    "on",
    "set",
    "into",
];

/// Words that begin a join of the `FROM` list.
const JOIN_START: &[&str] = &["join", "inner", "left", "right", "full", "cross", "natural"];

fn tree(tokens: Vec<Token>) -> Vec<Node> {
    let mut stack: Vec<(Vec<Node>, usize)> = vec![(Vec::new(), 0)];
    for token in tokens {
        match token.tok {
            Tok::Open => stack.push((Vec::new(), token.pos)),
            Tok::Close if stack.len() > 1 => {
                if let Some((inner, pos)) = stack.pop()
                    && let Some((outer, _)) = stack.last_mut()
                {
                    outer.push(Node::Group(inner, pos));
                }
            }
            Tok::Close => {}
            _ => {
                if let Some((nodes, _)) = stack.last_mut() {
                    nodes.push(Node::Tok(token));
                }
            }
        }
    }
    // Unclosed groups close at the end.
    while stack.len() > 1 {
        if let Some((inner, pos)) = stack.pop()
            && let Some((outer, _)) = stack.last_mut()
        {
            outer.push(Node::Group(inner, pos));
        }
    }
    stack.pop().map(|(nodes, _)| nodes).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Joins

/// A table (or function, or derived table) of a `FROM` list.
#[derive(Debug, Clone)]
struct Rel {
    id: usize,
    alias: String,
    /// The tenant-schema table it reads, if it is one.
    table: Option<String>,
    pos: usize,
}

/// An `IN (SELECT …)` semi-join: the outer side's terms, and the outer tenant tables they read.
#[derive(Debug, Clone, Default)]
struct InLink {
    terms: Vec<Option<String>>,
    rels: Vec<Rel>,
}

type Eq = (String, String);

struct Analyzer<'t> {
    tables: &'t BTreeSet<String>,
    next_id: usize,
    found: Vec<(usize, String, String)>,
}

/// What one query level's `FROM` list says.
#[derive(Default)]
struct FromList<'a> {
    rels: Vec<Rel>,
    conditions: Vec<&'a [Node]>,
    eqs: Vec<Eq>,
}

fn key(rel: usize, column: &str) -> String {
    format!("r{rel}.{column}")
}

fn split(nodes: &[Node], at: impl Fn(&Node) -> bool) -> Vec<&[Node]> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, n) in nodes.iter().enumerate() {
        if at(n) {
            parts.push(&nodes[start..i]);
            start = i + 1;
        }
    }
    parts.push(&nodes[start..]);
    parts
}

fn text(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(|n| match n {
            Node::Tok(t) => match &t.tok {
                Tok::Word(w, _) | Tok::Param(w) | Tok::Lit(w) | Tok::Op(w) => w.clone(),
                Tok::Comma => ",".to_string(),
                Tok::Dot => ".".to_string(),
                Tok::Semi => ";".to_string(),
                Tok::Open | Tok::Close => String::new(),
            },
            Node::Group(inner, _) => format!("({})", text(inner)),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Analyzer<'_> {
    /// A query text: statements, each with its CTEs and its set operations.
    fn block(&mut self, nodes: &[Node], env: &[Vec<Rel>], outer: &[Eq], link: Option<&InLink>) {
        for statement in split(nodes, |n| n.is(&Tok::Semi)) {
            let mut rest = statement;
            if rest.first().is_some_and(|n| n.is_word("with")) {
                let mut i = 1;
                if rest.get(i).is_some_and(|n| n.is_word("recursive")) {
                    i += 1;
                }
                loop {
                    // name [(columns)] AS [NOT] [MATERIALIZED] (query)
                    i += 1;
                    if matches!(rest.get(i), Some(Node::Group(..))) {
                        i += 1;
                    }
                    if rest.get(i).is_some_and(|n| n.is_word("as")) {
                        i += 1;
                    }
                    while rest
                        .get(i)
                        .is_some_and(|n| n.is_word("not") || n.is_word("materialized"))
                    {
                        i += 1;
                    }
                    if let Some(Node::Group(inner, _)) = rest.get(i) {
                        self.block(inner, env, outer, None);
                        i += 1;
                    }
                    if rest.get(i).is_some_and(|n| n.is(&Tok::Comma)) {
                        i += 1;
                    } else {
                        break;
                    }
                }
                rest = rest.get(i..).unwrap_or(&[]);
            }
            let set_ops = ["union", "intersect", "except"];
            for mut part in split(rest, |n| set_ops.iter().any(|k| n.is_word(k))) {
                while part
                    .first()
                    .is_some_and(|n| n.is_word("all") || n.is_word("distinct"))
                {
                    part = &part[1..];
                }
                if let [group @ Node::Group(..)] = part
                    && let Some(inner) = group.query()
                {
                    self.block(inner, env, outer, link);
                } else {
                    self.part(part, env, outer, link);
                }
            }
        }
    }

    /// One `SELECT`, `INSERT`, `UPDATE` or `DELETE` (or a fragment of one) of one query level.
    fn part(&mut self, nodes: &[Node], env: &[Vec<Rel>], outer: &[Eq], link: Option<&InLink>) {
        let mut from = FromList::default();
        let mut i = 0;
        let first = nodes.first();
        if first.is_some_and(|n| n.is_word("update")) {
            i = self.item(nodes, 1, &mut from);
        } else if first.is_some_and(|n| n.is_word("delete")) {
            i = self.item(nodes, 2, &mut from);
            if nodes.get(i).is_some_and(|n| n.is_word("using")) {
                i = self.parse_from(nodes, i + 1, &mut from);
            }
        }
        // The FROM clause (not `IS [NOT] DISTINCT FROM`).
        if let Some(f) = (i..nodes.len())
            .find(|&k| nodes[k].is_word("from") && !(k > 0 && nodes[k - 1].is_word("distinct")))
        {
            self.parse_from(nodes, f + 1, &mut from);
        }
        // Every WHERE clause of this level.
        for (k, n) in nodes.iter().enumerate() {
            if n.is_word("where") {
                let end = (k + 1..nodes.len())
                    .find(|&e| CLAUSE_END.iter().any(|w| nodes[e].is_word(w)))
                    .unwrap_or(nodes.len());
                from.conditions.push(&nodes[k + 1..end]);
            }
        }

        let locals = from.rels.clone();
        let mut scope: Vec<Vec<Rel>> = env.to_vec();
        scope.push(locals.clone());
        let resolve = |qualifier: Option<&str>, column: &str| -> String {
            match qualifier {
                Some(q) => scope
                    .iter()
                    .rev()
                    .find_map(|s| s.iter().find(|r| r.alias == q))
                    .map_or_else(|| format!("?{q}.{column}"), |r| key(r.id, column)),
                None if locals.len() == 1 => key(locals[0].id, column),
                None => format!("?{column}"),
            }
        };

        // Equalities of the ON and WHERE conjuncts, and which tables each conjunct names.
        let mut eqs: Vec<Eq> = outer.to_vec();
        eqs.append(&mut from.eqs);
        let mut mentions: Vec<HashSet<usize>> = Vec::new();
        let mut links: HashMap<usize, InLink> = HashMap::new();
        for condition in &from.conditions {
            for conjunct in conjuncts(condition) {
                let mut named = HashSet::new();
                for q in qualified_refs(conjunct) {
                    if let Some(r) = scope
                        .iter()
                        .rev()
                        .find_map(|s| s.iter().find(|r| r.alias == q))
                    {
                        named.insert(r.id);
                    }
                }
                mentions.push(named);
                equalities(conjunct, &resolve, &mut eqs, &mut links, &scope);
            }
        }
        // An IN (SELECT …) of the level above: its terms equal this level's select list.
        let mut outer_rels: Vec<Rel> = Vec::new();
        if let Some(link) = link {
            let items = select_list(nodes);
            for (outer_term, item) in link.terms.iter().zip(items) {
                if let (Some(o), Some(inner)) = (outer_term, term(item, &resolve)) {
                    eqs.push((o.clone(), inner));
                }
            }
            outer_rels.extend(link.rels.iter().cloned());
        }
        // Tables of the levels above that this level names (a correlated subquery).
        for q in qualified_refs(nodes) {
            if locals.iter().any(|r| r.alias == q) {
                continue;
            }
            if let Some(r) = env
                .iter()
                .rev()
                .find_map(|s| s.iter().find(|r| r.alias == q))
                && r.table.is_some()
                && !outer_rels.iter().any(|o| o.id == r.id)
            {
                outer_rels.push(r.clone());
            }
        }

        let mut classes = UnionFind::default();
        for (a, b) in &eqs {
            classes.union(a, b);
        }
        self.report(&outer_rels, &locals, &mut classes, &mentions);

        // Subqueries, each a level below this one.
        for (group, inner) in subqueries(nodes) {
            let link = links.get(&group);
            self.block(inner, &scope, &eqs, link);
        }
    }

    /// Groups the tenant tables of this level (`outer` first: the tables of the levels above that
    /// it names) by equal `tenant_id`, and reports each group with a table of this level that is
    /// not the first group.
    fn report(
        &mut self,
        outer: &[Rel],
        locals: &[Rel],
        classes: &mut UnionFind,
        mentions: &[HashSet<usize>],
    ) {
        let tenant_locals: Vec<&Rel> = locals.iter().filter(|r| r.table.is_some()).collect();
        if tenant_locals.is_empty() {
            return;
        }
        let all: Vec<(&Rel, bool)> = outer
            .iter()
            .map(|r| (r, false))
            .chain(tenant_locals.iter().map(|r| (*r, true)))
            .collect();
        let mut components: Vec<(String, Vec<(&Rel, bool)>)> = Vec::new();
        for (rel, local) in all {
            let root = classes.find(&key(rel.id, "tenant_id"));
            match components.iter_mut().find(|(r, _)| *r == root) {
                Some((_, members)) => members.push((rel, local)),
                None => components.push((root, vec![(rel, local)])),
            }
        }
        let named_together =
            |a: usize, b: usize| mentions.iter().any(|m| m.contains(&a) && m.contains(&b));
        for c in 1..components.len() {
            let members = &components[c].1;
            let Some(&(first_local, _)) = members.iter().find(|(_, local)| *local) else {
                continue; // tables of the levels above only: reported there
            };
            let earlier: Vec<&Rel> = components[..c]
                .iter()
                .flat_map(|(_, m)| m.iter().map(|(r, _)| *r))
                .collect();
            let pair = members
                .iter()
                .filter(|(_, local)| *local)
                .find_map(|(mine, _)| {
                    earlier
                        .iter()
                        .find(|e| named_together(e.id, mine.id))
                        .map(|e| (*e, *mine))
                })
                .or_else(|| earlier.first().map(|e| (*e, first_local)));
            if let Some((left, right)) = pair {
                self.found.push((
                    right.pos,
                    left.table.clone().unwrap_or_default(),
                    right.table.clone().unwrap_or_default(),
                ));
            }
        }
    }

    /// A `FROM` list from `i`: items separated by commas, each with its joins. Returns the index
    /// after it.
    fn parse_from<'a>(
        &mut self,
        nodes: &'a [Node],
        mut i: usize,
        from: &mut FromList<'a>,
    ) -> usize {
        loop {
            let chain_start = from.rels.len();
            let next = self.item(nodes, i, from);
            if next == i {
                return i;
            }
            i = next;
            // Its joins.
            loop {
                let mut k = i;
                let natural = nodes.get(k).is_some_and(|n| n.is_word("natural"));
                if natural {
                    k += 1;
                }
                if nodes.get(k).is_some_and(|n| {
                    ["inner", "left", "right", "full", "cross"]
                        .iter()
                        .any(|w| n.is_word(w))
                }) {
                    k += 1;
                }
                if nodes.get(k).is_some_and(|n| n.is_word("outer")) {
                    k += 1;
                }
                if !nodes.get(k).is_some_and(|n| n.is_word("join")) {
                    break;
                }
                let left: Vec<usize> = from.rels[chain_start..].iter().map(|r| r.id).collect();
                let right_start = from.rels.len();
                i = self.item(nodes, k + 1, from);
                let right: Vec<usize> = from.rels[right_start..].iter().map(|r| r.id).collect();
                let mut columns = Vec::new();
                if natural {
                    columns.push("tenant_id".to_string());
                }
                if nodes.get(i).is_some_and(|n| n.is_word("on")) {
                    let end = (i + 1..nodes.len())
                        .find(|&e| {
                            nodes[e].is(&Tok::Comma)
                                || JOIN_START.iter().any(|w| nodes[e].is_word(w))
                                || CLAUSE_END.iter().any(|w| nodes[e].is_word(w))
                        })
                        .unwrap_or(nodes.len());
                    from.conditions.push(&nodes[i + 1..end]);
                    i = end;
                } else if nodes.get(i).is_some_and(|n| n.is_word("using")) {
                    if let Some(Node::Group(inner, _)) = nodes.get(i + 1) {
                        columns.extend(inner.iter().filter_map(|n| n.name().map(str::to_string)));
                    }
                    i += 2;
                }
                for column in &columns {
                    for l in &left {
                        for r in &right {
                            from.eqs.push((key(*l, column), key(*r, column)));
                        }
                    }
                }
            }
            if nodes.get(i).is_some_and(|n| n.is(&Tok::Comma)) {
                i += 1;
            } else {
                return i;
            }
        }
    }

    /// One item of a `FROM` list at `i` (a table, a function, a subquery or a parenthesized
    /// join) with its alias. Returns the index after it (`i` if there is none).
    fn item<'a>(&mut self, nodes: &'a [Node], mut i: usize, from: &mut FromList<'a>) -> usize {
        while nodes
            .get(i)
            .is_some_and(|n| n.is_word("lateral") || n.is_word("only"))
        {
            i += 1;
        }
        let Some(node) = nodes.get(i) else {
            return i;
        };
        let pos = node.pos();
        let (table, default_alias) = match node {
            Node::Group(inner, _) if node.query().is_none() => {
                // (a JOIN b ON …)
                let mut inside = FromList::default();
                self.parse_from(inner, 0, &mut inside);
                from.rels.append(&mut inside.rels);
                from.conditions.append(&mut inside.conditions);
                from.eqs.append(&mut inside.eqs);
                i += 1;
                return skip_alias(nodes, i).1;
            }
            Node::Group(..) => {
                i += 1;
                (None, String::new())
            }
            Node::Tok(_) => {
                let Some(mut name) = node.name() else {
                    return i;
                };
                i += 1;
                while nodes.get(i).is_some_and(|n| n.is(&Tok::Dot))
                    && let Some(part) = nodes.get(i + 1).and_then(Node::name)
                {
                    name = part;
                    i += 2;
                }
                if matches!(nodes.get(i), Some(Node::Group(..))) {
                    // A function: unnest(…) [WITH ORDINALITY]
                    i += 1;
                    if nodes.get(i).is_some_and(|n| n.is_word("with"))
                        && nodes.get(i + 1).is_some_and(|n| n.is_word("ordinality"))
                    {
                        i += 2;
                    }
                    (None, name.to_string())
                } else {
                    let table = self.tables.contains(name).then(|| name.to_string());
                    (table, name.to_string())
                }
            }
        };
        let (alias, next) = skip_alias(nodes, i);
        self.next_id += 1;
        from.rels.push(Rel {
            id: self.next_id,
            alias: alias.unwrap_or(default_alias),
            table,
            pos,
        });
        next
    }
}

/// `[AS] alias [(columns)]` at `i`: the alias, and the index after.
fn skip_alias(nodes: &[Node], mut i: usize) -> (Option<String>, usize) {
    let explicit = nodes.get(i).is_some_and(|n| n.is_word("as"));
    if explicit {
        i += 1;
    }
    let Some(alias) = nodes.get(i).and_then(Node::name) else {
        return (None, i);
    };
    i += 1;
    if matches!(nodes.get(i), Some(Node::Group(..))) {
        i += 1;
    }
    (Some(alias.to_string()), i)
}

/// The conjuncts of a condition: split at top-level `AND` (not `BETWEEN … AND`), parenthesized
/// conjunctions opened; a conjunct with a top-level `OR` is left out.
fn conjuncts(nodes: &[Node]) -> Vec<&[Node]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut between = false;
    let mut pieces = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.is_word("between") {
            between = true;
        } else if n.is_word("and") {
            if between {
                between = false;
            } else {
                pieces.push(&nodes[start..i]);
                start = i + 1;
            }
        }
    }
    pieces.push(&nodes[start..]);
    for piece in pieces {
        if piece.iter().any(|n| n.is_word("or")) {
            continue;
        }
        match piece {
            [group @ Node::Group(inner, _)] if group.query().is_none() => {
                out.extend(conjuncts(inner));
            }
            [] => {}
            _ => out.push(piece),
        }
    }
    out
}

/// The equalities of one conjunct (`x = y`, `(a, b) = (c, d)`), and its `[NOT] IN (SELECT …)`.
fn equalities(
    conjunct: &[Node],
    resolve: &dyn Fn(Option<&str>, &str) -> String,
    eqs: &mut Vec<Eq>,
    links: &mut HashMap<usize, InLink>,
    scope: &[Vec<Rel>],
) {
    if let Some(k) = conjunct.iter().position(|n| n.is_word("in"))
        && let [Node::Group(_, pos)] = &conjunct[k + 1..]
        && conjunct[k + 1].query().is_some()
    {
        let mut lhs = &conjunct[..k];
        if lhs.last().is_some_and(|n| n.is_word("not")) {
            lhs = &lhs[..lhs.len() - 1];
        }
        let items = match lhs {
            [group @ Node::Group(inner, _)] if group.query().is_none() => {
                split(inner, |n| n.is(&Tok::Comma))
            }
            _ => vec![lhs],
        };
        let mut link = InLink::default();
        for item in items {
            link.terms.push(term(item, resolve));
            for q in qualified_refs(item) {
                if let Some(r) = scope
                    .iter()
                    .rev()
                    .find_map(|s| s.iter().find(|r| r.alias == q))
                {
                    link.rels.push(r.clone());
                }
            }
            if let [n] = item
                && n.name().is_some()
                && let Some(only) = scope.last().filter(|s| s.len() == 1)
            {
                link.rels.push(only[0].clone());
            }
        }
        link.rels.retain(|r| r.table.is_some());
        links.insert(*pos, link);
        return;
    }
    let Some(k) = conjunct
        .iter()
        .position(|n| n.is(&Tok::Op("=".to_string())))
    else {
        return;
    };
    let (lhs, rhs) = (&conjunct[..k], &conjunct[k + 1..]);
    match (lhs, rhs) {
        ([l @ Node::Group(a, _)], [r @ Node::Group(b, _)])
            if l.query().is_none() && r.query().is_none() =>
        {
            for (x, y) in split(a, |n| n.is(&Tok::Comma))
                .into_iter()
                .zip(split(b, |n| n.is(&Tok::Comma)))
            {
                if let (Some(x), Some(y)) = (term(x, resolve), term(y, resolve)) {
                    eqs.push((x, y));
                }
            }
        }
        _ => {
            if let (Some(x), Some(y)) = (term(lhs, resolve), term(rhs, resolve)) {
                eqs.push((x, y));
            }
        }
    }
}

/// What one side of an equality is: a column (`r<id>.<column>`, `?…` when unresolved), a
/// parameter, or any other expression by its text. A trailing cast is dropped.
fn term(nodes: &[Node], resolve: &dyn Fn(Option<&str>, &str) -> String) -> Option<String> {
    let mut nodes = nodes;
    if let Some(k) = nodes.iter().position(|n| n.is(&Tok::Op("::".to_string()))) {
        nodes = &nodes[..k];
    }
    if let [.., as_, Node::Tok(_)] = nodes
        && as_.is_word("as")
    {
        nodes = &nodes[..nodes.len() - 2];
    }
    let names: Vec<Option<&str>> = nodes.iter().map(Node::name).collect();
    let dot = |i: usize| nodes[i].is(&Tok::Dot);
    match (nodes.len(), names.as_slice()) {
        (0, _) => None,
        (1, [Some(constant)]) if matches!(*constant, "true" | "false" | "null") => {
            Some(format!("expr:{constant}"))
        }
        (1, [Some(column)]) => Some(resolve(None, column)),
        (3, [Some(q), _, Some(column)]) if dot(1) => Some(resolve(Some(q), column)),
        (5, [_, _, Some(q), _, Some(column)]) if dot(1) && dot(3) => Some(resolve(Some(q), column)),
        (1, _)
            if matches!(
                &nodes[0],
                Node::Tok(Token {
                    tok: Tok::Param(_),
                    ..
                })
            ) =>
        {
            Some(text(nodes))
        }
        _ => Some(format!("expr:{}", text(nodes))),
    }
}

/// The select list of a `SELECT` (its items, split at top-level commas).
fn select_list(nodes: &[Node]) -> Vec<&[Node]> {
    let Some(s) = nodes.iter().position(|n| n.is_word("select")) else {
        return Vec::new();
    };
    let mut start = s + 1;
    while nodes
        .get(start)
        .is_some_and(|n| n.is_word("distinct") || n.is_word("all"))
    {
        start += 1;
    }
    if nodes.get(start).is_some_and(|n| n.is_word("on")) {
        start += 2;
    }
    let end = (start..nodes.len())
        .find(|&k| nodes[k].is_word("from") || nodes[k].is_word("into"))
        .unwrap_or(nodes.len());
    split(nodes.get(start..end).unwrap_or(&[]), |n| n.is(&Tok::Comma))
}

/// The qualifiers `q` of the `q.column` (and `schema.q.column`) references of these nodes at any
/// depth, except inside subqueries.
fn qualified_refs(nodes: &[Node]) -> Vec<String> {
    let mut out = Vec::new();
    collect_refs(nodes, &mut out);
    out
}

fn collect_refs(nodes: &[Node], out: &mut Vec<String>) {
    let mut i = 0;
    while i < nodes.len() {
        match &nodes[i] {
            group @ Node::Group(inner, _) => {
                if group.query().is_none() {
                    collect_refs(inner, out);
                }
                i += 1;
            }
            n => {
                let dotted = |k: usize| {
                    nodes.get(k).is_some_and(|n| n.is(&Tok::Dot))
                        && nodes.get(k + 1).and_then(Node::name).is_some()
                };
                if let Some(q) = n.name()
                    && dotted(i + 1)
                {
                    if dotted(i + 3) {
                        // schema.table.column
                        if let Some(t) = nodes[i + 2].name() {
                            out.push(t.to_string());
                        }
                        i += 5;
                    } else {
                        out.push(q.to_string());
                        i += 3;
                    }
                } else {
                    i += 1;
                }
            }
        }
    }
}

/// The subqueries of a query level at any depth of its parentheses: (offset of the `(`, nodes).
fn subqueries(nodes: &[Node]) -> Vec<(usize, &[Node])> {
    let mut out = Vec::new();
    for n in nodes {
        if let Node::Group(inner, pos) = n {
            match n.query() {
                Some(q) => out.push((*pos, q)),
                None => out.extend(subqueries(inner)),
            }
        }
    }
    out
}

#[derive(Default)]
struct UnionFind {
    parent: HashMap<String, String>,
}

impl UnionFind {
    fn find(&mut self, x: &str) -> String {
        let mut root = x.to_string();
        while let Some(p) = self.parent.get(&root) {
            if *p == root {
                break;
            }
            root = p.clone();
        }
        // Path compression.
        let mut cur = x.to_string();
        while let Some(p) = self.parent.get(&cur).cloned() {
            if p == root {
                break;
            }
            self.parent.insert(cur, root.clone());
            cur = p;
        }
        root
    }

    fn union(&mut self, a: &str, b: &str) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent.insert(ra, rb);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> BTreeSet<String> {
        [
            "monitors",
            "check_results",
            "incidents",
            "alert_channels",
            "alert_channel_monitors",
            "alert_deliveries",
            "audit_log",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect()
    }

    /// The (earlier, later) table pairs reported for one SQL text.
    fn joins(sql: &str) -> Vec<(String, String)> {
        sql_violations(sql, &tables())
            .into_iter()
            .map(|(_, l, r)| (l, r))
            .collect()
    }

    fn pair(l: &str, r: &str) -> Vec<(String, String)> {
        vec![(l.to_string(), r.to_string())]
    }

    #[test]
    fn explicit_join_with_tenant_equality_passes() {
        assert!(
            joins(
                "SELECT m.name FROM check_results r
                 JOIN monitors m ON r.tenant_id = m.tenant_id AND r.monitor_id = m.id"
            )
            .is_empty()
        );
        // The other order, LEFT OUTER, no alias, casts.
        assert!(
            joins(
                "SELECT 1 FROM monitors LEFT OUTER JOIN incidents
                 ON incidents.monitor_id = monitors.id
                 AND monitors.tenant_id::uuid = incidents.tenant_id"
            )
            .is_empty()
        );
    }

    #[test]
    fn explicit_join_without_tenant_equality_fails() {
        assert_eq!(
            joins("SELECT m.name FROM check_results r JOIN monitors m ON r.monitor_id = m.id"),
            pair("check_results", "monitors")
        );
        // tenant_id of only one side, or equated to something else.
        assert_eq!(
            joins(
                "SELECT 1 FROM monitors AS m INNER JOIN incidents AS i
                 ON i.monitor_id = m.id AND i.tenant_id = m.id"
            ),
            pair("monitors", "incidents")
        );
        // Under an OR the equality does not hold for every row.
        assert_eq!(
            joins(
                "SELECT 1 FROM monitors m JOIN incidents i
                 ON i.monitor_id = m.id AND (i.tenant_id = m.tenant_id OR m.id = $1)"
            ),
            pair("monitors", "incidents")
        );
    }

    #[test]
    fn aliases_are_resolved_per_level() {
        // `m` is an alias of monitors; the name `monitors` itself is hidden behind it.
        assert_eq!(
            joins(
                "SELECT 1 FROM monitors m JOIN incidents i
                 ON i.monitor_id = m.id AND i.tenant_id = monitors.tenant_id"
            ),
            pair("monitors", "incidents")
        );
        // Self-join.
        assert_eq!(
            joins("SELECT 1 FROM monitors a JOIN monitors b ON a.id = b.agent_id"),
            pair("monitors", "monitors")
        );
        assert!(
            joins(
                "SELECT 1 FROM monitors a JOIN monitors b
                 ON a.tenant_id = b.tenant_id AND a.id = b.agent_id"
            )
            .is_empty()
        );
    }

    #[test]
    fn using_and_natural() {
        assert!(
            joins("SELECT 1 FROM incidents JOIN check_results USING (tenant_id, monitor_id)")
                .is_empty()
        );
        assert_eq!(
            joins("SELECT 1 FROM incidents i JOIN check_results r USING (monitor_id)"),
            pair("incidents", "check_results")
        );
        assert!(joins("SELECT 1 FROM incidents NATURAL JOIN check_results").is_empty());
    }

    #[test]
    fn three_tables_report_the_missing_link_once() {
        assert!(
            joins(
                "SELECT 1 FROM alert_deliveries d
                 JOIN alert_channels c ON c.tenant_id = d.tenant_id AND c.id = d.channel_id
                 JOIN incidents i ON i.tenant_id = c.tenant_id AND i.id = d.incident_id"
            )
            .is_empty()
        );
        assert_eq!(
            joins(
                "SELECT 1 FROM alert_deliveries d
                 JOIN alert_channels c ON c.tenant_id = d.tenant_id AND c.id = d.channel_id
                 JOIN incidents i ON i.id = d.incident_id"
            ),
            pair("alert_deliveries", "incidents")
        );
    }

    #[test]
    fn comma_joins() {
        assert_eq!(
            joins("SELECT 1 FROM monitors m, incidents i WHERE i.monitor_id = m.id"),
            pair("monitors", "incidents")
        );
        assert!(
            joins(
                "SELECT 1 FROM monitors m, incidents i
                 WHERE i.monitor_id = m.id AND m.tenant_id = i.tenant_id ORDER BY 1"
            )
            .is_empty()
        );
        // Both equal to one parameter: the same tenant too.
        assert!(
            joins(
                "SELECT 1 FROM monitors m, incidents i
                 WHERE m.tenant_id = $1 AND i.tenant_id = $1::uuid AND i.monitor_id = m.id"
            )
            .is_empty()
        );
        // The condition's other clauses do not count.
        assert_eq!(
            joins(
                "SELECT 1 FROM monitors m, incidents i WHERE i.monitor_id = m.id
                 ORDER BY m.tenant_id = i.tenant_id"
            ),
            pair("monitors", "incidents")
        );
    }

    #[test]
    fn correlated_subqueries() {
        assert_eq!(
            joins(
                "SELECT c.id FROM alert_channels c
                 WHERE c.all_monitors OR EXISTS (SELECT 1 FROM alert_channel_monitors m
                     WHERE m.channel_id = c.id AND m.monitor_id = $1)"
            ),
            pair("alert_channels", "alert_channel_monitors")
        );
        assert!(
            joins(
                "SELECT c.id FROM alert_channels c
                 WHERE EXISTS (SELECT 1 FROM alert_channel_monitors m
                     WHERE m.tenant_id = c.tenant_id AND m.channel_id = c.id)"
            )
            .is_empty()
        );
        // A scalar subquery of the select list, unqualified inside.
        assert!(
            joins(
                "SELECT m.name, (SELECT count(*) FROM check_results
                     WHERE tenant_id = m.tenant_id AND monitor_id = m.id) FROM monitors m"
            )
            .is_empty()
        );
        assert_eq!(
            joins(
                "SELECT m.name, (SELECT count(*) FROM check_results r WHERE r.monitor_id = m.id)
                 FROM monitors m"
            ),
            pair("monitors", "check_results")
        );
        // Uncorrelated: not a join.
        assert!(
            joins("SELECT 1 FROM monitors WHERE EXISTS (SELECT 1 FROM incidents WHERE id = $1)")
                .is_empty()
        );
    }

    #[test]
    fn in_subqueries() {
        assert!(
            joins(
                "DELETE FROM alert_deliveries WHERE (tenant_id, id) IN (
                     SELECT tenant_id, id FROM alert_deliveries WHERE failed_at IS NOT NULL)"
            )
            .is_empty()
        );
        assert_eq!(
            joins(
                "SELECT 1 FROM incidents i WHERE i.monitor_id NOT IN (
                     SELECT id FROM monitors WHERE enabled)"
            ),
            pair("incidents", "monitors")
        );
    }

    #[test]
    fn update_from_and_delete_using() {
        assert_eq!(
            joins(
                "UPDATE incidents i SET resolved_at = now() FROM monitors m
                 WHERE m.id = i.monitor_id AND m.status = 'up'"
            ),
            pair("incidents", "monitors")
        );
        assert!(
            joins(
                "DELETE FROM incidents i USING monitors m
                 WHERE m.tenant_id = i.tenant_id AND m.id = i.monitor_id"
            )
            .is_empty()
        );
    }

    #[test]
    fn other_tables_are_not_the_subject() {
        // Control schema, unnest, CTEs, derived tables.
        assert!(
            joins(
                "SELECT u.id FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, n)
                 WHERE NOT EXISTS (SELECT 1 FROM monitors m WHERE m.id = u.id)"
            )
            .is_empty()
        );
        assert!(
            joins(
                "SELECT 1 FROM orgs.memberships m JOIN identity.users u ON u.id = m.user_id
                 JOIN control.tenants t ON t.id = m.org_id"
            )
            .is_empty()
        );
        assert!(
            joins(
                "WITH due AS (SELECT tenant_id, id FROM alert_deliveries LIMIT $2)
                 UPDATE alert_deliveries d SET lease_owner = $1
                 FROM due WHERE d.tenant_id = due.tenant_id AND d.id = due.id"
            )
            .is_empty()
        );
        // The CTE's own query is checked.
        assert_eq!(
            joins(
                "WITH x AS (SELECT m.id FROM monitors m JOIN incidents i ON i.monitor_id = m.id)
                 SELECT * FROM x"
            ),
            pair("monitors", "incidents")
        );
        // Keywords in strings and comments, and `IS DISTINCT FROM`.
        assert!(
            joins(
                "SELECT 'FROM monitors, incidents' -- JOIN incidents
                 FROM monitors WHERE name IS DISTINCT FROM $1"
            )
            .is_empty()
        );
        // Another schema's table of the same name is still a tenant table (the shared schema).
        assert_eq!(
            joins("SELECT 1 FROM shared.monitors m, {schema}.incidents i"),
            pair("monitors", "incidents")
        );
    }

    #[test]
    fn rust_literals_and_lines() {
        let source = r##"
// "SELECT 1 FROM monitors m, incidents i" in a comment
fn f<'a>(x: &'a str) -> char {
    let _ = "plain, with \"quotes\" and FROM prose";
    let _ = sqlx::query(
        "SELECT 1 FROM monitors m \
         JOIN incidents i ON i.monitor_id = m.id",
    );
    let _ = r#"SELECT 1
        FROM check_results r,
             monitors m
        WHERE r.monitor_id = m.id"#;
    let _ = "SELECT 1 FROM monitors m
             JOIN incidents i ON i.tenant_id = m.tenant_id AND i.monitor_id = m.id";
    '"'
}
"##;
        assert_eq!(
            violations(source, &tables()),
            vec![
                Violation {
                    line: 7,
                    left: "monitors".into(),
                    right: "incidents".into()
                },
                Violation {
                    line: 11,
                    left: "check_results".into(),
                    right: "monitors".into()
                },
            ]
        );
    }

    #[test]
    fn format_arguments_of_constants_are_read_in_their_query() {
        let source = r#"
const COLUMNS: &str = "c.id, c.name,
    array(SELECT m.monitor_id FROM alert_channel_monitors m WHERE m.channel_id = c.id)";
const GOOD: &'static str = "m.id, (SELECT count(*) FROM incidents i
    WHERE i.tenant_id = m.tenant_id AND i.monitor_id = m.id) AS n";
fn f() {
    let _ = format!("SELECT {COLUMNS} FROM alert_channels c WHERE c.id = $1");
    let _ = format!("SELECT {GOOD} FROM monitors m WHERE m.id = $1 AND {{}}");
    let _ = format!("SELECT {OTHER} FROM monitors m");
}
"#;
        assert_eq!(
            violations(source, &tables()),
            vec![Violation {
                line: 3,
                left: "alert_channels".into(),
                right: "alert_channel_monitors".into()
            }]
        );
        assert_eq!(
            const_name("\npub(crate) const A_B: &str =\n    "),
            Some("A_B".into())
        );
        assert_eq!(const_name("let a: &str = "), None);
    }

    #[test]
    fn migrations_name_their_tables() {
        assert_eq!(
            created_tables(
                "-- CREATE TABLE not_this (x int);
                 CREATE TABLE monitors (tenant_id uuid);
                 CREATE UNLOGGED TABLE IF NOT EXISTS s.\"checks\" (tenant_id uuid);
                 CREATE INDEX monitors_idx ON monitors (tenant_id);"
            ),
            vec!["monitors".to_string(), "checks".to_string()]
        );
    }

    #[test]
    fn the_repository_has_tenant_tables() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let tables = tenant_tables(root).unwrap();
        for t in ["monitors", "check_results", "audit_log", "tenant_settings"] {
            assert!(tables.contains(t), "{t} missing from {tables:?}");
        }
    }
}
