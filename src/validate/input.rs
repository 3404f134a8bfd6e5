//! Paths into documents. A file is read as multi-document YAML; a directory is searched recursively for
//! `.yaml`/`.yml` files, except that a directory holding a `kustomization.yaml` is built with kustomize and its
//! output validated instead (a kustomize `Component` cannot be built alone and is skipped). `--against REV`
//! reads the same paths from `git archive REV` into a temporary directory and collects them the same way.
//!
//! kustomize is an external program: `$GUARDRAILS_KUSTOMIZE` (a kustomize binary), else `kustomize build`,
//! else `kubectl kustomize`, whichever is found first on PATH. The binary needs no Go at run time; without
//! either tool a kustomize directory is a problem saying so.
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{Check, Problem};
use crate::manifest::{documents, read_file, ObjectRef};

/// Names kustomize accepts for its configuration file.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Files and directories searched below one path (bounds a wrong path such as `/`).
pub const MAX_FILES: usize = 10_000;

/// One YAML document and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The file as the user named it (for a kustomize build, the directory's kustomization file).
    pub file: String,
    /// `None` for a document without `kind` (a patch, a values file): only read, never checked.
    pub object: Option<ObjectRef>,
    pub value: Value,
}

/// Every document under `paths`; what cannot be read or built becomes a problem.
pub fn collect(paths: &[PathBuf], problems: &mut Vec<Problem>) -> Vec<Document> {
    let mut out = Vec::new();
    for path in paths {
        let mut budget = MAX_FILES;
        collect_path(
            path,
            &path.display().to_string(),
            &mut out,
            problems,
            &mut budget,
        );
    }
    out
}

fn collect_path(
    path: &Path,
    shown: &str,
    out: &mut Vec<Document>,
    problems: &mut Vec<Problem>,
    budget: &mut usize,
) {
    if *budget == 0 {
        problems.push(Problem::in_file(
            Check::Read,
            shown,
            format!("more than {MAX_FILES} files and directories below this path"),
        ));
        return;
    }
    *budget -= 1;
    if !path.is_dir() {
        match read_file(path) {
            Ok(text) => push_documents(&text, shown, out, problems),
            Err(e) => problems.push(Problem::in_file(Check::Read, shown, e.to_string())),
        }
        return;
    }
    if let Some(kustomization) = KUSTOMIZATION_FILES
        .iter()
        .map(|name| path.join(name))
        .find(|p| p.is_file())
    {
        let file = format!(
            "{}/{}",
            shown.trim_end_matches('/'),
            kustomization
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        );
        if is_component(&kustomization) {
            return;
        }
        match build(path) {
            Ok(text) => push_documents(&text, &file, out, problems),
            Err(reason) => problems.push(Problem::in_file(Check::Kustomize, &file, reason)),
        }
        return;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            problems.push(Problem::in_file(
                Check::Read,
                shown,
                format!("cannot read: {e}"),
            ));
            return;
        }
    };
    entries.sort();
    for entry in entries {
        let name = entry
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.starts_with('.') {
            continue;
        }
        let child = format!("{}/{name}", shown.trim_end_matches('/'));
        if entry.is_dir() || name.ends_with(".yaml") || name.ends_with(".yml") {
            collect_path(&entry, &child, out, problems, budget);
        }
    }
}

fn push_documents(text: &str, file: &str, out: &mut Vec<Document>, problems: &mut Vec<Problem>) {
    let (values, error) = documents(text);
    for value in values {
        out.push(Document {
            file: file.to_string(),
            object: ObjectRef::of(&value),
            value,
        });
    }
    if let Some(e) = error {
        problems.push(Problem::in_file(Check::Read, file, e.to_string()));
    }
}

fn is_component(kustomization: &Path) -> bool {
    let Ok(text) = read_file(kustomization) else {
        return false;
    };
    let (values, _) = documents(&text);
    values
        .first()
        .and_then(|v| v.get("kind"))
        .and_then(Value::as_str)
        == Some("Component")
}

/// `kustomize build DIR` with the first tool found; the error names what kustomize could not find.
pub fn build(dir: &Path) -> Result<String, String> {
    let mut tools: Vec<(String, Vec<&str>)> = Vec::new();
    if let Some(tool) = std::env::var_os("GUARDRAILS_KUSTOMIZE") {
        tools.push((tool.to_string_lossy().into_owned(), vec!["build"]));
    }
    tools.push(("kustomize".into(), vec!["build"]));
    tools.push(("kubectl".into(), vec!["kustomize"]));
    for (tool, args) in tools {
        let output = match Command::new(&tool).args(&args).arg(dir).output() {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot run {tool}: {e}")),
        };
        if output.status.success() {
            return String::from_utf8(output.stdout)
                .map_err(|_| format!("{tool} printed output that is not UTF-8"));
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(build_error(stderr.trim(), dir));
    }
    Err("cannot build: neither kustomize nor kubectl is on PATH (or set GUARDRAILS_KUSTOMIZE to a kustomize binary)".into())
}

/// kustomize's error, led by the file it could not find (relative to the directory) when it says so.
fn build_error(stderr: &str, dir: &Path) -> String {
    let stderr = stderr
        .strip_prefix("error: ")
        .or_else(|| stderr.strip_prefix("Error: "))
        .unwrap_or(stderr);
    let first_line = stderr.lines().next().unwrap_or_default();
    // kubectl prefixes a klog header: keep the error itself.
    let first_line = match first_line.split_once("err=\"") {
        Some((_, error)) => error.trim_end_matches('"'),
        None => first_line,
    };
    let missing = first_line
        .split(['\'', '"', ' '])
        .filter(|word| !word.is_empty())
        .find(|word| {
            let path = Path::new(word.trim_end_matches(':'));
            path.is_absolute()
                && !path.exists()
                && path.starts_with(dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()))
        })
        .map(|word| {
            let path = Path::new(word.trim_end_matches(':'));
            let base = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
            path.strip_prefix(&base)
                .unwrap_or(path)
                .display()
                .to_string()
        });
    match missing {
        Some(file) => format!("kustomize build failed: cannot find `{file}`: {first_line}"),
        None => format!("kustomize build failed: {first_line}"),
    }
}

/// The documents under `paths` at git revision `rev` of the repository each path lives in. A path that did not
/// exist at `rev` has no documents. Errors: not a git repository, unknown revision.
pub fn collect_at(
    rev: &str,
    paths: &[PathBuf],
    problems: &mut Vec<Problem>,
) -> Result<Vec<Document>, String> {
    let _ = problems;
    let scratch = Scratch::new()?;
    let mut out = Vec::new();
    for (index, path) in paths.iter().enumerate() {
        let (root, relative) = in_repository(path, rev)?;
        let target = scratch.0.join(index.to_string());
        let Some(tree) = unpack_at(&root, rev, &relative, &target)? else {
            continue; // the path did not exist at `rev`: nothing to compare with
        };
        let mut ignored = Vec::new();
        let mut budget = MAX_FILES;
        collect_path(
            &tree.join(relative),
            &path.display().to_string(),
            &mut out,
            &mut ignored,
            &mut budget,
        );
    }
    Ok(out)
}

/// The repository `path` lives in (its top level, canonical) and `path` relative to it; `rev` must be a
/// commit there.
fn in_repository(path: &Path, rev: &str) -> Result<(PathBuf, PathBuf), String> {
    let absolute = path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = if absolute.is_dir() {
        absolute.clone()
    } else {
        absolute.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let root = git(&dir, &["rev-parse", "--show-toplevel"])?;
    let root = PathBuf::from(root.trim());
    let root = root.canonicalize().unwrap_or(root);
    git(
        &root,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .map_err(|_| "no such revision in the repository".to_string())?;
    let relative = absolute.strip_prefix(&root).map_err(|_| {
        format!(
            "{} is outside the repository {}",
            path.display(),
            root.display()
        )
    })?;
    Ok((root.clone(), relative.to_path_buf()))
}

/// `relative` as it was at `rev`, unpacked under `target` (`git archive` and tar); `None` when it did not
/// exist at `rev`. Returns the unpacked tree's root.
fn unpack_at(
    root: &Path,
    rev: &str,
    relative: &Path,
    target: &Path,
) -> Result<Option<PathBuf>, String> {
    std::fs::create_dir_all(target)
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let archive = target.join("archive.tar");
    let relative_text = if relative.as_os_str().is_empty() {
        ".".to_string()
    } else {
        relative.display().to_string()
    };
    let archived = git(
        root,
        &[
            "archive",
            "--format=tar",
            "-o",
            &archive.display().to_string(),
            rev,
            "--",
            &relative_text,
        ],
    );
    if archived.is_err() {
        return Ok(None);
    }
    let tree = target.join("tree");
    std::fs::create_dir_all(&tree)
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&tree)
        .status()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    if !status.success() {
        return Err("tar could not unpack git archive's output".into());
    }
    Ok(Some(tree))
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A temporary directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, String> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rollouts-guardrails-against-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
