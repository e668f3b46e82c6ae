//! The keys of the watcher's HTTP listener (`exporter.rs`, the status
//! page): `http_listen`, and who may use it: `http_allow` (client
//! networks) and `http_user` with `http_password_file` (basic auth).

use std::net::SocketAddr;
use std::ops::Range;

use ipnet::IpNet;
use toml::Spanned;

use health_probe::text::shown;

/// Who may use the listener; everyone when both are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Access {
    /// Client networks allowed; empty: any. Others are closed at accept.
    pub allow: Vec<IpNet>,
    /// Basic auth: the user and the password every request must give.
    pub auth: Option<(String, String)>,
}

/// The raw keys, read with the other top-level settings.
#[derive(Debug)]
pub(super) struct RawHttp<'a> {
    pub listen: Option<&'a Spanned<String>>,
    pub allow: Option<&'a Spanned<Vec<String>>>,
    pub user: Option<&'a Spanned<String>>,
    pub password_file: Option<&'a Spanned<String>>,
}

/// Longest password read from `http_password_file`.
const MAX_PASSWORD: usize = 1024;

/// Validates the keys; each problem is given to `error` with where it is.
pub(super) fn validate(
    raw: RawHttp<'_>,
    mut error: impl FnMut(Range<usize>, String),
) -> (Option<SocketAddr>, Access) {
    let listen = raw.listen.and_then(|l| match listen_addr(l.get_ref()) {
        Ok(a) => Some(a),
        Err(e) => {
            error(l.span(), format!("http_listen {}: {e}", shown(l.get_ref())));
            None
        }
    });
    let mut access = Access::default();
    if let Some(list) = raw.allow {
        for net in list.get_ref() {
            let parsed = net
                .trim()
                .parse::<IpNet>()
                .or_else(|_| net.trim().parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(n) => access.allow.push(n),
                Err(_) => error(
                    list.span(),
                    format!(
                        "http_allow: {} is not a network (10.0.0.0/8) or an address",
                        shown(net)
                    ),
                ),
            }
        }
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
    if listen.is_none() && (raw.allow.is_some() || raw.user.is_some()) {
        if let Some(l) = raw.allow.map(Spanned::span).or(raw.user.map(Spanned::span)) {
            error(l, "http_allow and http_user need http_listen".into());
        }
    }
    (listen, access)
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
