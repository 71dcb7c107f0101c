//! `cargo xtask door-lint`: the door is the only way to tenant data. The engine's pools are
//! private to it (the compiler enforces that); this fails when product code outside the tenancy
//! crate sets the tenant, the search path or the role itself (`set_config(`, `SET LOCAL app.` /
//! `search_path`, `SET ROLE`, a session-level `SET`), or takes the owner role's handle
//! (`Operator`) outside operator work. It also runs the co-location check
//! (`colocation::check`): every join of two tenant-schema tables equates their `tenant_id`s.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Statements only the engine may run.
const FORBIDDEN_SQL: &[&str] = &[
    "set_config(",
    "SET LOCAL app.",
    "SET LOCAL search_path",
    "SET search_path",
    "SET SESSION",
    "SET ROLE",
    "SET app.",
    "app.tenant_id",
];

/// The owner role's handle (`tenantry_tenancy::Operator`): for operator work only. The engine's
/// pools themselves are private to the engine (the compiler holds everything else to that).
const OPERATOR: &[&str] = &["Operator::new(", "begin_restore("];

/// Where operator work is done: archives (the CLI's and the owners' export), audit verification
/// and the CLI's commands. Never the request path of the other routes.
const OPERATOR_ALLOWED: &[&str] = &[
    "crates/archive/src/",
    "crates/audit/src/verify.rs",
    "crates/tenantry/src/commands/",
];

/// Crates whose code may do what the lint forbids: the engine itself, the benchmark (which
/// measures the door's statements against the raw ones) and the test harness.
const EXEMPT: &[&str] = &["crates/tenancy", "crates/bench", "crates/testkit"];

pub fn run(root: &Path) -> anyhow::Result<bool> {
    let files = crate_sources(root, EXEMPT, &["rs", "sql"])?;
    let mut problems = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(root)?.to_string_lossy().to_string();
        let text =
            std::fs::read_to_string(file).with_context(|| format!("failed to read {relative}"))?;
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for pattern in FORBIDDEN_SQL {
                if line.contains(pattern) {
                    problems.push(format!(
                        "{relative}:{}: `{pattern}`: only the tenancy engine sets the tenant, the search path or the role (use a TenantTx)",
                        n + 1
                    ));
                }
            }
            if !OPERATOR_ALLOWED.iter().any(|a| relative.starts_with(a)) {
                for pattern in OPERATOR {
                    if line.contains(pattern) {
                        problems.push(format!(
                            "{relative}:{}: `{pattern}`: the owner role is for operator work (archives, audit verification, the CLI), never a request: use the door (TenantCtx) or ControlDb",
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    let (sql_files, joins) = crate::colocation::check(root)?;
    for problem in problems.iter().chain(&joins) {
        eprintln!("door-lint: {problem}");
    }
    println!(
        "door-lint: {} files checked, {} problems; co-location: {sql_files} files checked, {} cross-tenant joins",
        files.len(),
        problems.len(),
        joins.len()
    );
    Ok(problems.is_empty() && joins.is_empty())
}

/// The files under `crates/*/src` whose extension is one of `extensions`, sorted, the crates
/// named in `skipped` (as `crates/NAME`) aside.
pub fn crate_sources(
    root: &Path,
    skipped: &[&str],
    extensions: &[&str],
) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root.join("crates")).context("failed to read crates/")? {
        let krate = entry?.path();
        let relative = krate.strip_prefix(root)?.to_string_lossy().to_string();
        if !skipped.contains(&relative.as_str()) {
            collect(&krate.join("src"), extensions, &mut files)?;
        }
    }
    files.sort();
    Ok(files)
}

fn collect(dir: &Path, extensions: &[&str], files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, extensions, files)?;
        } else if path
            .extension()
            .is_some_and(|e| extensions.iter().any(|x| e == *x))
        {
            files.push(path);
        }
    }
    Ok(())
}
