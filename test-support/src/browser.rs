//! A real browser for the status page's tests: Debian's headless Chromium,
//! driven through chromedriver's WebDriver API (plain HTTP and JSON, so no
//! client crate), with JavaScript on or off.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether chromium and chromedriver are installed; in CI (which installs
/// them) their absence fails the test.
pub fn installed() -> bool {
    crate::peer_installed(
        &["chromium", "chromedriver"],
        "chromium and chromium-driver",
    )
}

/// Flags every headless run takes: no sandbox (CI runs as root), no GPU,
/// a fixed window, and nothing fetched from outside.
const FLAGS: [&str; 6] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--window-size=1280,720",
    "--no-first-run",
    "--disable-background-networking",
];

/// One WebDriver session in headless Chromium, ended when dropped.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = call(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One HTTP/1.1 request to chromedriver: the reply's JSON `value`.
fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    // chromedriver may keep the connection open: read the head, then
    // exactly its Content-Length.
    let mut reader = std::io::BufReader::new(s);
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).map_err(|e| e.to_string())?;
        if line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(|_| "bad Content-Length")?;
            }
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    let body = String::from_utf8_lossy(&body);
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {head}\n{body}"))?;
    if head.split(' ').nth(1) != Some("200") {
        return Err(format!("{method} {path}: {v}"));
    }
    Ok(v["value"].clone())
}

impl Browser {
    /// chromedriver on a free loopback port, and a headless session.
    pub fn start() -> Browser {
        Browser::with_javascript(true)
    }

    /// A session whose pages run no script: what a browser without
    /// JavaScript shows ([`Browser::source`] reads it).
    pub fn without_javascript() -> Browser {
        Browser::with_javascript(false)
    }

    fn with_javascript(on: bool) -> Browser {
        let addr: SocketAddr = crate::free_port().parse().unwrap();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={}", addr.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let t = Instant::now();
        while call(addr, "GET", "/status", None).is_err() {
            assert!(t.elapsed() < IO_TIMEOUT, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": FLAGS,
                "prefs": {"profile.managed_default_content_settings.javascript": if on { 1 } else { 2 }},
            },
        }}});
        let session = call(addr, "POST", "/session", Some(&capabilities))
            .expect("a WebDriver session")["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        Browser {
            driver,
            addr,
            session,
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("/session/{}/{rest}", self.session)
    }

    /// Loads `url` and waits for it.
    pub fn goto(&self, url: &str) {
        call(
            self.addr,
            "POST",
            &self.path("url"),
            Some(&json!({ "url": url })),
        )
        .unwrap_or_else(|e| panic!("load {url}: {e}"));
    }

    /// The current page's DOM, serialised.
    pub fn source(&self) -> String {
        call(self.addr, "GET", &self.path("source"), None)
            .expect("the page source")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` (a function body; `return` gives the result) in the
    /// page.
    pub fn run(&self, script: &str) -> Value {
        call(
            self.addr,
            "POST",
            &self.path("execute/sync"),
            Some(&json!({ "script": script, "args": [] })),
        )
        .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Waits at most `within` for `script` to return true.
    pub fn wait_for(&self, what: &str, within: Duration, script: &str) -> Duration {
        let t = Instant::now();
        while self.run(script) != Value::Bool(true) {
            assert!(t.elapsed() < within, "not {what} within {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        t.elapsed()
    }

    /// Saves a screenshot of the window as a PNG at `path`.
    pub fn screenshot(&self, path: &Path) {
        let b64 = call(self.addr, "GET", &self.path("screenshot"), None).expect("a screenshot");
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("base64 text"))
            .expect("a base64 PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}
