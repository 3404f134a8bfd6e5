//! The go-plugin process contract: magic cookie, protocol version, the private unix socket and the
//! handshake line on stdout.
//!
//! Spec: `docs/wire/go-plugin-netrpc.md` (go-plugin `server.go`: `Serve`, `protocolVersion`,
//! `serverListener_unix`).
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::UnixListener;

/// The environment variable the Argo Rollouts controller sets to start a metric-provider plugin.
pub const MAGIC_COOKIE_KEY: &str = "ARGO_ROLLOUTS_RPC_PLUGIN";
/// Its value for metric providers.
pub const MAGIC_COOKIE_VALUE: &str = "metricprovider";
/// go-plugin's core protocol version.
pub const CORE_PROTOCOL_VERSION: u32 = 1;
/// Argo's metric-provider app protocol version.
pub const APP_PROTOCOL_VERSION: u32 = 1;
/// Where the host names the app protocol versions it accepts.
pub const PROTOCOL_VERSIONS_ENV: &str = "PLUGIN_PROTOCOL_VERSIONS";
/// Where the host may ask for the socket's directory.
pub const SOCKET_DIR_ENV: &str = "PLUGIN_UNIX_SOCKET_DIR";
/// Where the host may ask for the socket's group.
pub const SOCKET_GROUP_ENV: &str = "PLUGIN_UNIX_SOCKET_GROUP";
/// Set when the host wants AutoMTLS, which Argo never enables.
pub const CLIENT_CERT_ENV: &str = "PLUGIN_CLIENT_CERT";
/// Attempts at finding an unused directory or socket name.
const NAME_ATTEMPTS: u32 = 16;

/// Why the plugin could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(
        "{MAGIC_COOKIE_KEY}={0:?} is not a plugin kind this binary serves (expected {MAGIC_COOKIE_VALUE:?})"
    )]
    WrongCookie(String),
    #[error("the host asked for AutoMTLS ({CLIENT_CERT_ENV} is set), which this plugin does not support")]
    MtlsRequested,
    #[error("cannot create the socket directory {path}: {source}")]
    SocketDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {path}: {source}")]
    Listen {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set the group of {path} to {group:?}: {reason}")]
    SocketGroup {
        path: PathBuf,
        group: String,
        reason: String,
    },
    #[error("cannot write the handshake line to stdout: {0}")]
    Stdout(std::io::Error),
}

/// Checks the magic cookie's value (the caller has already seen that it is set).
pub fn check_cookie(value: &str) -> Result<(), HandshakeError> {
    if value == MAGIC_COOKIE_VALUE {
        Ok(())
    } else {
        Err(HandshakeError::WrongCookie(value.to_string()))
    }
}

/// Picks the app protocol version from `PLUGIN_PROTOCOL_VERSIONS`. Like go-plugin's `protocolVersion`, we
/// announce our version even when the host did not list it (the host then reports the mismatch itself);
/// the returned flag says whether it was listed.
pub fn negotiate_version(offered: Option<&str>) -> (u32, bool) {
    let listed = match offered {
        None | Some("") => true,
        Some(list) => list
            .split(',')
            .any(|v| v.trim().parse::<u32>() == Ok(APP_PROTOCOL_VERSION)),
    };
    (APP_PROTOCOL_VERSION, listed)
}

/// The line go-plugin's client parses: `CORE|APP|unix|PATH|netrpc|` (empty server certificate).
pub fn handshake_line(app_version: u32, socket: &Path) -> String {
    format!(
        "{CORE_PROTOCOL_VERSION}|{app_version}|unix|{}|netrpc|\n",
        socket.display()
    )
}

/// Writes the handshake line to stdout and flushes it: the only bytes this process ever writes there.
pub fn announce(line: &str) -> Result<(), HandshakeError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(line.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(HandshakeError::Stdout)
}

/// The listening socket; removes the socket file (and the private directory we created) when dropped.
pub struct PluginListener {
    listener: Option<UnixListener>,
    path: PathBuf,
    created_dir: Option<PathBuf>,
}

impl PluginListener {
    /// Listens on a fresh socket in `PLUGIN_UNIX_SOCKET_DIR` or else in a new private (0700) directory under
    /// the system temp dir. The socket is 0600 (0660 with `PLUGIN_UNIX_SOCKET_GROUP`).
    pub fn bind(socket_dir: Option<&Path>, group: Option<&str>) -> Result<Self, HandshakeError> {
        let (dir, created_dir) = match socket_dir {
            Some(dir) => (dir.to_path_buf(), None),
            None => {
                let dir = create_private_dir(&std::env::temp_dir())?;
                (dir.clone(), Some(dir))
            }
        };
        let mut listener = PluginListener {
            listener: None,
            path: PathBuf::new(),
            created_dir,
        };
        let mut last_error = None;
        for attempt in 0..NAME_ATTEMPTS {
            let path = dir.join(format!("plugin{}", unique_suffix(attempt)));
            match UnixListener::bind(&path) {
                Ok(bound) => {
                    listener.listener = Some(bound);
                    listener.path = path;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last_error = Some(e),
                Err(source) => return Err(HandshakeError::Listen { path, source }),
            }
        }
        if listener.listener.is_none() {
            return Err(HandshakeError::Listen {
                path: dir,
                source: last_error.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()),
            });
        }
        let mode = if group.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(&listener.path, std::fs::Permissions::from_mode(mode)).map_err(
            |source| HandshakeError::Listen {
                path: listener.path.clone(),
                source,
            },
        )?;
        if let Some(group) = group {
            let gid = lookup_group(group).ok_or_else(|| HandshakeError::SocketGroup {
                path: listener.path.clone(),
                group: group.to_string(),
                reason: "no such group".into(),
            })?;
            std::os::unix::fs::chown(&listener.path, None, Some(gid)).map_err(|e| {
                HandshakeError::SocketGroup {
                    path: listener.path.clone(),
                    group: group.to_string(),
                    reason: e.to_string(),
                }
            })?;
        }
        Ok(listener)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts the host's connection.
    pub async fn accept(&self) -> std::io::Result<tokio::net::UnixStream> {
        match &self.listener {
            Some(listener) => listener.accept().await.map(|(stream, _)| stream),
            None => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    /// Stops listening: the host connects once; later connections are refused.
    pub fn stop_listening(&mut self) {
        self.listener = None;
    }
}

impl Drop for PluginListener {
    fn drop(&mut self) {
        self.listener = None;
        let _ = std::fs::remove_file(&self.path);
        if let Some(dir) = &self.created_dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn create_private_dir(parent: &Path) -> Result<PathBuf, HandshakeError> {
    let mut last = None;
    for attempt in 0..NAME_ATTEMPTS {
        let path = parent.join(format!("rollouts-guardrails-{}", unique_suffix(attempt)));
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some((path, e)),
            Err(source) => return Err(HandshakeError::SocketDir { path, source }),
        }
    }
    let (path, source) = last.unwrap_or_else(|| {
        (
            parent.to_path_buf(),
            std::io::ErrorKind::AlreadyExists.into(),
        )
    });
    Err(HandshakeError::SocketDir { path, source })
}

fn unique_suffix(attempt: u32) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}{:09}{attempt}", std::process::id(), nanos)
}

/// A numeric gid, or a group name from /etc/group (as go-plugin's `user.LookupGroupId`/`LookupGroup`).
fn lookup_group(group: &str) -> Option<u32> {
    if let Ok(gid) = group.parse() {
        return Some(gid);
    }
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let mut parts = line.split(':');
        (parts.next()? == group).then_some(())?;
        parts.nth(1)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_line_is_what_go_plugin_parses() {
        assert_eq!(
            handshake_line(1, Path::new("/tmp/x/plugin1")),
            "1|1|unix|/tmp/x/plugin1|netrpc|\n"
        );
    }

    #[test]
    fn version_negotiation_follows_the_host_list() {
        assert_eq!(negotiate_version(None), (1, true));
        assert_eq!(negotiate_version(Some("1")), (1, true));
        assert_eq!(negotiate_version(Some("2, 1")), (1, true));
        assert_eq!(negotiate_version(Some("2,3")), (1, false));
    }

    #[test]
    fn wrong_cookie_is_refused_with_the_expected_value_named() {
        let err = check_cookie("stepplugin").expect_err("wrong cookie");
        assert!(err.to_string().contains("metricprovider"), "{err}");
        assert!(check_cookie(MAGIC_COOKIE_VALUE).is_ok());
    }

    #[tokio::test]
    async fn socket_is_private_and_removed_with_its_directory() {
        let listener = PluginListener::bind(None, None).expect("bind");
        let path = listener.path().to_path_buf();
        let dir = path.parent().expect("parent").to_path_buf();
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir), 0o700);
        drop(listener);
        assert!(!path.exists() && !dir.exists());
    }
}
