//! [`FileAccess`]: which credential and TLS files a request may open, and [`open`], which opens one so that the
//! file read is the file checked, even when a directory on its path is swapped for a symlink in between.
//!
//! Why open-then-verify: a check on the path followed by an open of the path can be raced (a symlink swapped
//! in after the check). Walking every component with `O_NOFOLLOW` (`openat` per component) would also refuse
//! the symlinks Kubernetes itself puts in every Secret volume (`token -> ..data/token`, `..data ->
//! ..2026_12_01…`), and `openat2(RESOLVE_BENEATH)` needs Linux 5.6 and a crate we do not otherwise use. So the
//! path is opened (symlinks followed, `O_NONBLOCK` so a FIFO cannot hang us, `O_NOCTTY`), and then the kernel is
//! asked what was opened: `/proc/self/fd/N` names the real path of the open file description, which no later
//! rename can change. That path must lie inside an allowed directory and outside every denied one, and the
//! file must be a regular file; otherwise it is closed unread. A cheap check before the open (lexical, then
//! canonical) keeps the common refusal from touching the filesystem outside the allowed directories at all, so
//! a refusal is not an oracle for which controller files exist.
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::Secret;

/// Where a file named by a configuration may be read from. Part of the TLS pool key, hence `Hash`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum FileAccess {
    /// Any file the process can read: files named by the controller's admin, or by a person running `check`.
    #[default]
    Unrestricted,
    /// Only regular files whose real path lies inside one of `allowed` and inside none of `denied` (both
    /// canonical absolute directories). With `allowed` empty, no file at all.
    Within {
        allowed: Arc<[PathBuf]>,
        denied: Arc<[PathBuf]>,
    },
}

/// Why a file was not opened. Messages name the path as configured, never the file's content.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The path (or, after resolving `..` and symlinks, its real path) is not inside an allowed directory.
    #[error("is not inside an allowed credentials directory")]
    Outside,
    /// The path lies in a directory that is never readable through a configuration (the service-account
    /// token directory).
    #[error("is inside a directory that is never readable from a template")]
    Denied,
    /// A confined path must be absolute: a relative one would depend on the process' working directory.
    #[error("is not an absolute path")]
    Relative,
    #[error("is not a regular file")]
    NotRegular,
    /// `/proc/self/fd` could not be read, so what was opened cannot be verified (fail closed).
    #[error("cannot be verified after opening (is /proc mounted?): {0}")]
    Unverifiable(std::io::Error),
    #[error("cannot open: {0}")]
    Io(#[from] std::io::Error),
}

impl FileAccess {
    /// The check done before opening: refuses what is visibly outside (lexically, then after resolving
    /// symlinks). [`open`] repeats the decision on what it actually opened.
    pub fn check(&self, path: &Path) -> Result<(), FileError> {
        let FileAccess::Within { allowed, denied } = self else {
            return Ok(());
        };
        if !path.is_absolute() {
            return Err(FileError::Relative);
        }
        let lexical = normalize(path);
        if denied.iter().any(|d| lexical.starts_with(d)) {
            return Err(FileError::Denied);
        }
        if !allowed.iter().any(|a| lexical.starts_with(a)) {
            return Err(FileError::Outside);
        }
        let real = std::fs::canonicalize(path)?;
        self.permits(&real)
    }

    /// Whether a canonical path may be read.
    fn permits(&self, real: &Path) -> Result<(), FileError> {
        match self {
            FileAccess::Unrestricted => Ok(()),
            FileAccess::Within { allowed, denied } => {
                if denied.iter().any(|d| real.starts_with(d)) {
                    Err(FileError::Denied)
                } else if allowed.iter().any(|a| real.starts_with(a)) {
                    Ok(())
                } else {
                    Err(FileError::Outside)
                }
            }
        }
    }
}

/// Opens `path` for reading under `access` (see the module documentation for why open-then-verify).
pub fn open(path: &Path, access: &FileAccess) -> Result<File, FileError> {
    if matches!(access, FileAccess::Unrestricted) {
        return Ok(File::open(path)?);
    }
    access.check(path)?;
    open_and_verify(path, access)
}

/// The open itself and the verification of what was opened: everything that a swap after [`FileAccess::check`]
/// could change is decided here, on the open file.
fn open_and_verify(path: &Path, access: &FileAccess) -> Result<File, FileError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(FileError::Unverifiable)?;
    access.permits(&real)?;
    if !file.metadata()?.is_file() {
        return Err(FileError::NotRegular);
    }
    Ok(file)
}

/// `path` with `.` dropped and `..` applied lexically (no filesystem access).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// At most `limit` bytes of the file at `path` opened under `access`; a longer file is an error. The error
/// says what is wrong with the file, never a byte of it.
pub fn read_bounded(path: &Path, access: &FileAccess, limit: u64) -> Result<Vec<u8>, String> {
    let file = open(path, access).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    Ok(bytes)
}

/// A credential file (a token, a password, a client secret) of at most `limit` bytes, trimmed of surrounding
/// whitespace; an empty or non-UTF-8 file is an error. The read is small and bounded, so it runs on the
/// blocking pool rather than through tokio's file API (which could not use [`open`]).
pub async fn read_secret(path: &Path, access: &FileAccess, limit: u64) -> Result<Secret, String> {
    let (path, access) = (path.to_owned(), access.clone());
    let bytes = tokio::task::spawn_blocking(move || read_bounded(&path, &access, limit))
        .await
        .map_err(|_| "the read was cancelled".to_owned())??;
    let text = String::from_utf8(bytes).map_err(|_| "not utf-8".to_owned())?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty".to_owned());
    }
    Ok(Secret::new(trimmed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn within(allowed: &Path, denied: &[&Path]) -> FileAccess {
        FileAccess::Within {
            allowed: vec![allowed.canonicalize().expect("allowed")].into(),
            denied: denied
                .iter()
                .map(|d| d.canonicalize().expect("denied"))
                .collect::<Vec<_>>()
                .into(),
        }
    }

    #[test]
    fn files_inside_are_read_and_outside_refused_before_opening() {
        let root = tempfile::tempdir().expect("tempdir");
        let creds = root.path().join("creds");
        std::fs::create_dir(&creds).expect("mkdir");
        std::fs::write(creds.join("token"), "tok").expect("write");
        std::fs::write(root.path().join("outside"), "secret").expect("write");
        let access = within(&creds, &[]);
        let mut text = String::new();
        open(&creds.join("token"), &access)
            .expect("inside")
            .read_to_string(&mut text)
            .expect("read");
        assert_eq!(text, "tok");
        assert!(matches!(
            open(&root.path().join("outside"), &access),
            Err(FileError::Outside)
        ));
        assert!(matches!(
            open(&creds.join("../outside"), &access),
            Err(FileError::Outside)
        ));
        // A missing file outside is refused as outside, not as missing: no existence oracle.
        assert!(matches!(
            open(&root.path().join("missing"), &access),
            Err(FileError::Outside)
        ));
        assert!(matches!(
            open(Path::new("creds/token"), &access),
            Err(FileError::Relative)
        ));
    }

    #[test]
    fn symlinks_count_by_their_target() {
        let root = tempfile::tempdir().expect("tempdir");
        let creds = root.path().join("creds");
        std::fs::create_dir_all(creds.join("..data")).expect("mkdir");
        std::fs::write(creds.join("..data/token"), "tok").expect("write");
        // Kubernetes' Secret volume layout: links inside the directory are fine.
        std::os::unix::fs::symlink("..data/token", creds.join("token")).expect("link");
        std::fs::write(root.path().join("outside"), "secret").expect("write");
        std::os::unix::fs::symlink(root.path().join("outside"), creds.join("escape"))
            .expect("link");
        let access = within(&creds, &[]);
        assert!(open(&creds.join("token"), &access).is_ok());
        assert!(matches!(
            open(&creds.join("escape"), &access),
            Err(FileError::Outside)
        ));
    }

    #[test]
    fn denied_directories_win_over_allowed_ones() {
        let root = tempfile::tempdir().expect("tempdir");
        let sa = root.path().join("serviceaccount");
        std::fs::create_dir(&sa).expect("mkdir");
        std::fs::write(sa.join("token"), "sa-token").expect("write");
        let access = within(root.path(), &[&sa]);
        assert!(matches!(
            open(&sa.join("token"), &access),
            Err(FileError::Denied)
        ));
    }

    #[test]
    fn a_swap_between_the_check_and_the_open_is_caught_on_the_open_file() {
        let root = tempfile::tempdir().expect("tempdir");
        let creds = root.path().join("creds");
        std::fs::create_dir(&creds).expect("mkdir");
        std::fs::write(creds.join("token"), "tok").expect("write");
        std::fs::write(root.path().join("outside"), "secret").expect("write");
        let access = within(&creds, &[]);
        let path = creds.join("token");
        access.check(&path).expect("inside at check time");
        // The swap lands after the check, before the open: only the verification of the open file sees it.
        std::fs::remove_file(&path).expect("remove");
        std::os::unix::fs::symlink(root.path().join("outside"), &path).expect("swap");
        assert!(matches!(
            open_and_verify(&path, &access),
            Err(FileError::Outside)
        ));
        std::fs::remove_file(&path).expect("remove");
        std::fs::write(&path, "tok").expect("write");
        assert!(open_and_verify(&path, &access).is_ok());
    }

    #[test]
    fn only_regular_files_are_read() {
        let root = tempfile::tempdir().expect("tempdir");
        let access = within(root.path(), &[]);
        assert!(matches!(
            open(root.path(), &access),
            Err(FileError::NotRegular)
        ));
    }

    #[test]
    fn normalize_applies_dot_dot_lexically() {
        assert_eq!(normalize(Path::new("/a/b/../c/./d")), Path::new("/a/c/d"));
        assert_eq!(normalize(Path::new("/../../etc")), Path::new("/etc"));
    }
}
