//! TLS peers for the tls check's tests: certificates made for the test
//! ([`Pki`], with rcgen: a CA and leaves with any validity, expired ones
//! too), served by real servers from Debian's packages: OpenSSL's own
//! `openssl s_server` ([`SServer`]) and Dovecot for STARTTLS
//! ([`Dovecot`]: IMAP, POP3 and SMTP submission on loopback ports).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A test CA and the leaves it signs, as PEM files in one folder.
pub struct Pki {
    dir: PathBuf,
    ca: Issuer<'static, KeyPair>,
    /// The CA's certificate: what `--ca` trusts.
    pub ca_pem: PathBuf,
}

/// A leaf certificate and its key, as files.
#[derive(Debug)]
pub struct Leaf {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

/// `now` moved by `days` (negative: past), as rcgen takes times.
fn days_from_now(days: i64) -> time::OffsetDateTime {
    let now = time::OffsetDateTime::from(SystemTime::now());
    now + time::Duration::days(days)
}

impl Pki {
    /// A CA named "health-probe test CA", valid from a year ago for ten
    /// years, in `dir`.
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "health-probe test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = days_from_now(-365);
        params.not_after = days_from_now(3650);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_pem = dir.join("ca.pem");
        std::fs::write(&ca_pem, cert.pem()).unwrap();
        Pki {
            dir: dir.to_path_buf(),
            ca: Issuer::new(params, key),
            ca_pem,
        }
    }

    /// A leaf for `names` (DNS names or IP addresses; the first is its
    /// common name), valid from `from_days` to `until_days` from now
    /// (negative: past), signed by the CA, written as `file`.pem and
    /// `file`.key.
    pub fn leaf(&self, file: &str, names: &[&str], from_days: i64, until_days: i64) -> Leaf {
        let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        params.not_before = days_from_now(from_days);
        params.not_after = days_from_now(until_days);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let leaf = Leaf {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }
}

/// Waits until `addr` accepts a connection (at most 10 s).
fn wait_listening(addr: SocketAddr, child: &mut Child, what: &str) {
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on {addr}: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} is not listening on {addr} after 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `openssl s_server` serving `leaf` on a loopback port until dropped.
#[derive(Debug)]
pub struct SServer {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl SServer {
    /// Starts it with `leaf`, and `extra` arguments (`-tls1_2`, ...).
    pub fn start(leaf: &Leaf, extra: &[&str]) -> SServer {
        let addr: SocketAddr = crate::free_port().parse().unwrap();
        let mut child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(addr.to_string())
            .arg("-cert")
            .arg(&leaf.cert)
            .arg("-key")
            .arg(&leaf.key)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server starts");
        wait_listening(addr, &mut child, "openssl s_server");
        SServer { child, addr }
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Dovecot in the foreground, with its own config and folders under a
/// test folder, offering STARTTLS on IMAP, POP3 and SMTP submission
/// (`ssl = required` on none of them: the upgrade is what is tested).
#[derive(Debug)]
pub struct Dovecot {
    child: Child,
    /// IMAP (STARTTLS).
    pub imap: SocketAddr,
    /// POP3 (STLS).
    pub pop3: SocketAddr,
    /// SMTP submission (STARTTLS).
    pub submission: SocketAddr,
}

impl Dovecot {
    /// Starts it in `dir` with `leaf`.
    pub fn start(dir: &Path, leaf: &Leaf) -> Dovecot {
        std::fs::create_dir_all(dir.join("run")).unwrap();
        let port = |a: &SocketAddr| a.port();
        let [imap, pop3, submission]: [SocketAddr; 3] =
            std::array::from_fn(|_| crate::free_port().parse().unwrap());
        let config = dir.join("dovecot.conf");
        std::fs::write(
            &config,
            format!(
                "protocols = imap pop3 submission\n\
                 listen = 127.0.0.1\n\
                 base_dir = {run}\n\
                 state_dir = {run}\n\
                 log_path = {dir}/dovecot.log\n\
                 ssl = yes\n\
                 ssl_cert = <{cert}\n\
                 ssl_key = <{key}\n\
                 disable_plaintext_auth = no\n\
                 mail_location = maildir:{dir}/mail/%u\n\
                 submission_relay_host = 127.0.0.1\n\
                 passdb {{\n  driver = static\n  args = password=unused\n}}\n\
                 userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={dir}/home/%u\n}}\n\
                 service imap-login {{\n  inet_listener imap {{\n    port = {imap}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
                 service pop3-login {{\n  inet_listener pop3 {{\n    port = {pop3}\n  }}\n  inet_listener pop3s {{\n    port = 0\n  }}\n}}\n\
                 service submission-login {{\n  inet_listener submission {{\n    port = {submission}\n  }}\n}}\n",
                run = dir.join("run").display(),
                dir = dir.display(),
                cert = leaf.cert.display(),
                key = leaf.key.display(),
                imap = port(&imap),
                pop3 = port(&pop3),
                submission = port(&submission),
            ),
        )
        .unwrap();
        let mut child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dovecot starts");
        for addr in [imap, pop3, submission] {
            wait_listening(addr, &mut child, "dovecot");
        }
        Dovecot {
            child,
            imap,
            pop3,
            submission,
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
