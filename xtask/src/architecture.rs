//! `cargo xtask architecture`: every invariant ARCHITECTURE.md states names what enforces it,
//! and what it names exists. An invariant is a line `- <what holds> — <reference>; <reference>`
//! in the section [`SECTION`], and a reference is `<path>::<name>`: a file of the repository and
//! a test or function in it, written `fn <name>(` or `fn <name><`, or named on a line of a macro
//! invocation that generates it (`per_tier!(<name>)`, `<name>: Shared -> Schema,` inside
//! `per_pair! { … }`). An invariant without a reference, a file that does not exist and a name
//! the file does not define each fail the check with a line of their own.

use std::path::Path;

use anyhow::Context;

/// The file the invariants are read from, relative to the repository's root.
const FILE: &str = "ARCHITECTURE.md";

/// The heading of the section whose list items are the invariants.
const SECTION: &str = "## Architecture invariants";

/// Between an invariant's statement and its references.
const REFERENCES_AFTER: &str = " — ";

/// Between two references.
const REFERENCE_SEPARATOR: &str = "; ";

/// One line of the invariants section.
#[derive(Debug, PartialEq, Eq)]
struct Invariant {
    /// The line number in the file, from 1.
    line: usize,
    text: String,
    references: Vec<String>,
}

pub fn run(root: &Path) -> anyhow::Result<bool> {
    let markdown = std::fs::read_to_string(root.join(FILE))
        .with_context(|| format!("failed to read {FILE}"))?;
    let invariants = parse(&markdown);
    let problems = problems(&invariants, |path| {
        std::fs::read_to_string(root.join(path)).ok()
    });
    for problem in &problems {
        eprintln!("architecture: {problem}");
    }
    println!(
        "architecture: {} invariants, {} references checked, {} problems",
        invariants.len(),
        invariants.iter().map(|i| i.references.len()).sum::<usize>(),
        problems.len()
    );
    Ok(problems.is_empty())
}

/// The invariants: the list items of [`SECTION`], up to the next heading of its level.
fn parse(markdown: &str) -> Vec<Invariant> {
    let mut invariants = Vec::new();
    let mut inside = false;
    for (n, line) in markdown.lines().enumerate() {
        if line.starts_with("## ") {
            inside = line.trim_end() == SECTION;
            continue;
        }
        let Some(item) = line.strip_prefix("- ").filter(|_| inside) else {
            continue;
        };
        let (text, references) = match item.rsplit_once(REFERENCES_AFTER) {
            Some((text, references)) => (
                text,
                references
                    .split(REFERENCE_SEPARATOR)
                    .map(|r| r.trim().trim_matches('`').to_string())
                    .filter(|r| !r.is_empty())
                    .collect(),
            ),
            None => (item, Vec::new()),
        };
        invariants.push(Invariant {
            line: n + 1,
            text: text.trim().to_string(),
            references,
        });
    }
    invariants
}

/// What is wrong with `invariants`, one line each; `read` gives a file's text by its path, or
/// `None` when there is no such file.
fn problems(invariants: &[Invariant], read: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut problems = Vec::new();
    if invariants.is_empty() {
        problems.push(format!("{FILE}: no invariant under `{SECTION}`"));
    }
    for invariant in invariants {
        let at = format!("{FILE}:{}: \"{}\"", invariant.line, invariant.text);
        if invariant.references.is_empty() {
            problems.push(format!(
                "{at}: names no test or lint that enforces it (end the line with `{REFERENCES_AFTER}path/to/file.rs::name`)"
            ));
        }
        for reference in &invariant.references {
            let Some((path, name)) = split_reference(reference) else {
                problems.push(format!(
                    "{at}: `{reference}` is not a reference of the form path/to/file.rs::name"
                ));
                continue;
            };
            match read(path) {
                None => problems.push(format!("{at}: `{reference}`: there is no file {path}")),
                Some(source) if !defines(&source, name) => problems.push(format!(
                    "{at}: `{reference}`: {path} has no test or function `{name}`"
                )),
                Some(_) => {}
            }
        }
    }
    problems
}

/// `path::name` as its path (a relative `.rs` file inside the repository) and its name.
fn split_reference(reference: &str) -> Option<(&str, &str)> {
    let (path, name) = reference.rsplit_once("::")?;
    let inside = !path.starts_with('/') && !path.split('/').any(|part| part == "..");
    let identifier = name.chars().next().is_some_and(|c| !c.is_ascii_digit())
        && name.chars().all(is_identifier_char);
    (inside && path.ends_with(".rs") && identifier).then_some((path, name))
}

/// Whether `source` defines `name`: `fn name(` or `fn name<`, or `name` on a line of a macro
/// invocation that starts a line (a test-generating macro such as `per_tier!`). Comment lines
/// and `macro_rules!` definitions do not count.
fn defines(source: &str, name: &str) -> bool {
    // How far inside the brackets of a macro invocation the current line is.
    let mut depth: i64 = 0;
    for line in source.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        if declares_fn(code, name) {
            return true;
        }
        if depth > 0 || starts_macro_invocation(code) {
            if words(code).any(|word| word == name) {
                return true;
            }
            depth = (depth + bracket_balance(code)).max(0);
        }
    }
    false
}

/// Whether `code` holds `fn name` followed by `(` or `<`.
fn declares_fn(code: &str, name: &str) -> bool {
    code.match_indices(name).any(|(at, _)| {
        let before = code[..at].trim_end();
        let after = code[at + name.len()..].trim_start();
        let whole = !code[..at].ends_with(is_identifier_char)
            && !code[at + name.len()..].starts_with(is_identifier_char);
        whole
            && before
                .strip_suffix("fn")
                .is_some_and(|rest| !rest.ends_with(is_identifier_char))
            && after.starts_with(['(', '<'])
    })
}

/// Whether `code` begins with a macro invocation (`name!(`, `name! {`, `name![`) other than a
/// `macro_rules!` definition.
fn starts_macro_invocation(code: &str) -> bool {
    let end = code
        .find(|c: char| !is_identifier_char(c))
        .unwrap_or(code.len());
    let (macro_name, rest) = code.split_at(end);
    !macro_name.is_empty()
        && macro_name != "macro_rules"
        && rest
            .strip_prefix('!')
            .is_some_and(|rest| rest.trim_start().starts_with(['(', '{', '[']))
}

/// Opening brackets less closing ones on a line.
fn bracket_balance(code: &str) -> i64 {
    code.chars()
        .map(|c| match c {
            '(' | '{' | '[' => 1,
            ')' | '}' | ']' => -1,
            _ => 0,
        })
        .sum()
}

/// The identifiers of a line.
fn words(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| !is_identifier_char(c))
        .filter(|w| !w.is_empty())
}

fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const DOC: &str = "# Architecture

## Code map

- Not an invariant. — crates/a/src/lib.rs::ignored

## Architecture invariants

Each line below is checked.

- One thing holds. — crates/a/tests/one.rs::it_holds
- Two things hold — together. — `crates/a/tests/one.rs::first`; crates/b/src/lint.rs::run
- Nothing enforces this.

## Decisions

- Not an invariant either. — x.rs::y
";

    #[test]
    fn only_the_items_of_the_invariants_section_are_read() {
        let invariants = parse(DOC);
        assert_eq!(
            invariants,
            [
                Invariant {
                    line: 11,
                    text: "One thing holds.".to_string(),
                    references: vec!["crates/a/tests/one.rs::it_holds".to_string()],
                },
                Invariant {
                    line: 12,
                    text: "Two things hold — together.".to_string(),
                    references: vec![
                        "crates/a/tests/one.rs::first".to_string(),
                        "crates/b/src/lint.rs::run".to_string(),
                    ],
                },
                Invariant {
                    line: 13,
                    text: "Nothing enforces this.".to_string(),
                    references: vec![],
                },
            ]
        );
    }

    #[test]
    fn references_are_a_relative_rust_file_and_an_identifier() {
        assert_eq!(
            split_reference("crates/a/tests/one.rs::it_holds"),
            Some(("crates/a/tests/one.rs", "it_holds"))
        );
        for bad in [
            "crates/a/tests/one.rs",
            "crates/a/tests/one.rs::",
            "crates/a/tests/one.rs::two words",
            "crates/a/tests/one.rs::9lives",
            "crates/a/tests/one.md::it_holds",
            "/etc/one.rs::it_holds",
            "crates/../../one.rs::it_holds",
            "it_holds",
        ] {
            assert_eq!(split_reference(bad), None, "{bad}");
        }
    }

    #[test]
    fn functions_and_tests_generated_by_macros_are_found() {
        let source = "
#[tokio::test]
async fn plain_test() {}

pub fn generic<T>(t: T) {}

fn spaced (x: u8) {}

per_tier!(made_per_tier);
async fn made_per_tier(tier: Isolation) {}

per_pair! {
    shared_to_schema: Shared -> Schema,
    schema_to_shared: Schema -> Shared,
}

fn after_the_block() {}
";
        for name in [
            "plain_test",
            "generic",
            "spaced",
            "made_per_tier",
            "shared_to_schema",
            "schema_to_shared",
            "after_the_block",
        ] {
            assert!(defines(source, name), "{name}");
        }
    }

    #[test]
    fn mentions_prefixes_comments_and_macro_definitions_are_not_definitions() {
        let source = "
// fn commented_out() {}
/// per_tier!(in_a_doc_comment);
fn longer_name_than_asked() {}
let x = called_here();
macro_rules! per_pair {
    ($($name:ident: $from:ident -> $to:ident,)*) => { $(async fn $name() {})* };
}
per_pair! {
    a: Shared -> Schema,
}
fn not_a_call = 1;
";
        for name in [
            "commented_out",
            "in_a_doc_comment",
            "longer_name",
            "called_here",
            "name",
            "not_a_call",
            "Schema_to",
        ] {
            assert!(!defines(source, name), "{name}");
        }
        assert!(defines(source, "a"));
    }

    #[test]
    fn each_missing_reference_and_unreferenced_invariant_is_a_problem() {
        let files = HashMap::from([
            ("crates/a/tests/one.rs", "per_tier!(it_holds);\n"),
            ("crates/b/src/lint.rs", "pub fn run() {}\n"),
        ]);
        let problems = problems(&parse(DOC), |path| files.get(path).map(|s| s.to_string()));
        assert_eq!(
            problems,
            [
                "ARCHITECTURE.md:12: \"Two things hold — together.\": `crates/a/tests/one.rs::first`: crates/a/tests/one.rs has no test or function `first`",
                "ARCHITECTURE.md:13: \"Nothing enforces this.\": names no test or lint that enforces it (end the line with ` — path/to/file.rs::name`)",
            ]
        );
        let missing = problems_of(
            "- Holds. — crates/c/tests/gone.rs::x; not-a-reference",
            &files,
        );
        assert_eq!(
            missing,
            [
                "ARCHITECTURE.md:2: \"Holds.\": `crates/c/tests/gone.rs::x`: there is no file crates/c/tests/gone.rs",
                "ARCHITECTURE.md:2: \"Holds.\": `not-a-reference` is not a reference of the form path/to/file.rs::name",
            ]
        );
    }

    #[test]
    fn a_missing_section_is_a_problem() {
        assert_eq!(
            problems(&parse("# Architecture\n\n- Holds. — a.rs::b\n"), |_| None),
            ["ARCHITECTURE.md: no invariant under `## Architecture invariants`"]
        );
    }

    fn problems_of(item: &str, files: &HashMap<&str, &str>) -> Vec<String> {
        let doc = format!("{SECTION}\n{item}\n");
        problems(&parse(&doc), |path| files.get(path).map(|s| s.to_string()))
    }
}
