//! The keys of the watcher's HTTP listener (`exporter.rs`, the status
//! page): `http_listen`, who may use it: `http_allow` (client networks)
//! and `http_user` with `http_password_file` (basic auth), and what it
//! does for them: `http_probe` (`/probe`, on unless `false`) within
//! `http_probe_max_timeout`.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use health_server::allow::{parse_network, AllowList};
use toml::Spanned;

use health_probe::text::shown;

/// Who may use the listener; everyone without `http_allow` or basic auth.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Access {
    /// Client networks allowed (`http_allow`); without the key, everyone.
    /// Others are closed at accept.
    pub allow: AllowList,
    /// Basic auth: the user and the password every request must give.
    pub auth: Option<(String, String)>,
    /// `/probe`: on, with the longest check timeout a request may ask for
    /// (`http_probe_max_timeout`); `None` when `http_probe = false`.
    pub probe: Option<Duration>,
}

/// The longest check `/probe` runs unless `http_probe_max_timeout` says:
/// Prometheus's default scrape timeout. A client cannot ask for more, so
/// hung probes give their connections back within it.
pub(crate) const DEFAULT_PROBE_MAX_TIMEOUT: Duration = Duration::from_secs(10);

/// The raw keys, read with the other top-level settings.
#[derive(Debug)]
pub(super) struct RawHttp<'a> {
    pub listen: Option<&'a Spanned<String>>,
    pub allow: Option<&'a Spanned<Vec<String>>>,
    pub user: Option<&'a Spanned<String>>,
    pub password_file: Option<&'a Spanned<String>>,
    pub probe: Option<&'a Spanned<bool>>,
    /// `http_probe_max_timeout`, checked for its range already.
    pub probe_max_timeout: Duration,
}

/// Longest password read from `http_password_file`.
const MAX_PASSWORD: usize = 1024;

/// Validates the keys; each problem is given to `error` with where it is,
/// and what is allowed but unwise to `warn`.
pub(super) fn validate(
    raw: RawHttp<'_>,
    mut error: impl FnMut(Range<usize>, String),
    mut warn: impl FnMut(String),
) -> (Option<SocketAddr>, Access) {
    let listen = raw.listen.and_then(|l| match listen_addr(l.get_ref()) {
        Ok(a) => Some(a),
        Err(e) => {
            error(l.span(), format!("http_listen {}: {e}", shown(l.get_ref())));
            None
        }
    });
    let probe_on = raw.probe.is_none_or(|p| *p.get_ref());
    let mut access = Access {
        probe: probe_on.then_some(raw.probe_max_timeout),
        ..Access::default()
    };
    if let Some(list) = raw.allow {
        if list.get_ref().is_empty() {
            // Empty would let no one in: surely not what was meant, and
            // never "everyone" (a list fails closed).
            error(
                list.span(),
                "http_allow = [] would let no client in: name the networks allowed, or leave the key out to allow every client".into(),
            );
        }
        let mut networks = Vec::new();
        for net in list.get_ref() {
            match parse_network(net) {
                Ok(n) => networks.push(n),
                Err(e) => error(list.span(), format!("http_allow: {} {e}", shown(net))),
            }
        }
        access.allow = AllowList::only(networks);
    }
    match (raw.user, raw.password_file) {
        (Some(user), Some(file)) => {
            let name = user.get_ref();
            if name.is_empty() || name.contains(':') || name.chars().any(char::is_control) {
                error(
                    user.span(),
                    "http_user must be a name without ':' or control characters".into(),
                );
            }
            warn_if_others_read(file.get_ref(), &mut warn);
            match std::fs::read_to_string(file.get_ref()) {
                Ok(text) => {
                    let password = text.trim_end_matches(['\n', '\r']).to_string();
                    if password.is_empty() || password.len() > MAX_PASSWORD {
                        error(
                            file.span(),
                            format!("http_password_file {}: the password must be 1 to {MAX_PASSWORD} bytes", shown(file.get_ref())),
                        );
                    } else {
                        access.auth = Some((name.clone(), password));
                    }
                }
                Err(e) => error(
                    file.span(),
                    format!(
                        "http_password_file {}: cannot read: {e}",
                        shown(file.get_ref())
                    ),
                ),
            }
        }
        (Some(user), None) => error(user.span(), "http_user needs http_password_file".into()),
        (None, Some(file)) => error(file.span(), "http_password_file needs http_user".into()),
        (None, None) => {}
    }
    if listen.is_none() && (raw.allow.is_some() || raw.user.is_some() || raw.probe.is_some()) {
        if let Some(l) = raw
            .allow
            .map(Spanned::span)
            .or(raw.user.map(Spanned::span))
            .or(raw.probe.map(Spanned::span))
        {
            error(
                l,
                "http_allow, http_user and http_probe need http_listen".into(),
            );
        }
    }
    if let Some(addr) = listen {
        if !addr.ip().is_loopback() && access.allow.is_everyone() && access.auth.is_none() {
            warn(format!(
                "http_listen {addr} is open to every host that reaches it, with neither http_allow nor basic auth (http_user): anyone can read the status, the history and the metrics{}",
                if probe_on {
                    ", and make this host connect anywhere through /probe (set http_probe = false if Prometheus does not use it)"
                } else {
                    ""
                }
            ));
        }
    }
    (listen, access)
}

/// A password file other users may read is a password they may read.
fn warn_if_others_read(path: &str, warn: &mut impl FnMut(String)) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o004 != 0 {
            warn(format!(
                "http_password_file {} can be read by every user (mode {:o}): chmod o-r it, so that only the watcher's user (and group) can",
                shown(path),
                mode & 0o777
            ));
        }
    }
}

/// `http_listen`: `IP:PORT` or `[IPv6]:PORT`; with no host (`:9101`, or
/// `localhost:9101`), loopback: the exporter is for this host unless the
/// config says otherwise.
pub(super) fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let addr = if let Ok(addr) = text.parse::<SocketAddr>() {
        addr
    } else {
        let port = text
            .strip_prefix("localhost:")
            .or_else(|| text.strip_prefix(':'))
            .ok_or("must be IP:PORT, [IPv6]:PORT, localhost:PORT or :PORT")?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("port {} is not a number from 1 to 65535", shown(port)))?;
        SocketAddr::from(([127, 0, 0, 1], port))
    };
    if addr.port() == 0 {
        return Err("port 0 would be a different port every start: name one".into());
    }
    Ok(addr)
}
