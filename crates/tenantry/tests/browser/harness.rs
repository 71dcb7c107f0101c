//! A real `tenantry serve` (no configuration but its public address and the SMTP sink), a
//! real headless Chromium driven through ChromeDriver (WebDriver), and the helpers the tests
//! use to act as a person does: find fields by their label, buttons and links by their text.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use tenantry_testkit::smtp::SmtpSink;

use crate::support::{self, Server};

/// How long a page or a change may take to show.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Where screenshots are saved (a test artefact of every run).
pub fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A port free now (it may be taken before whoever is given it binds it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server with an SMTP sink for its emails.
pub struct Site {
    pub server: Server,
    pub mail: SmtpSink,
    pub dir: tempfile::TempDir,
}

impl Site {
    /// `tenantry serve` on a free port, its emails to a sink, the SSRF guard off (the tests'
    /// monitors check this machine).
    pub async fn start() -> Site {
        let dir = support::data_dir();
        let mail = SmtpSink::start().await;
        // The public address names the port, so the port is chosen first; it may be taken
        // before serve binds it, and then another is tried.
        for _ in 0..5 {
            let port = free_port();
            let public = format!("http://127.0.0.1:{port}");
            let started = Server::try_spawn_on(
                dir.path(),
                port,
                &[
                    ("TENANTRY_FORBID_PRIVATE_TARGETS", "false"),
                    ("TENANTRY_SMTP_URL", &mail.url()),
                    ("TENANTRY_PUBLIC_URL", &public),
                ],
            );
            if let Some(server) = started {
                return Site { server, mail, dir };
            }
        }
        panic!("serve found no free port in 5 tries");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }

    /// The link of the latest email to `to` that holds `marker`.
    pub async fn link_in_mail(&self, to: &str, marker: &str) -> String {
        let messages = self
            .mail
            .wait_for(
                |m| {
                    m.iter()
                        .any(|m| m.recipients.iter().any(|r| r == to) && m.text().contains(marker))
                },
                PATIENCE,
            )
            .await;
        let message = messages
            .iter()
            .rev()
            .find(|m| m.recipients.iter().any(|r| r == to) && m.text().contains(marker))
            .unwrap();
        let text = message.text();
        let start = text.find(marker).unwrap();
        let begin = text[..start].rfind("http").unwrap();
        text[begin..].split_whitespace().next().unwrap().to_string()
    }
}

/// ChromeDriver, on a free port, for as long as it is held.
pub struct Driver {
    child: Child,
    pub port: u16,
}

impl Driver {
    pub async fn start() -> Driver {
        // A port found free may be taken before chromedriver binds it: then it ends, and
        // another port is tried.
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver is not installed: apt-get install chromium chromium-driver");
            // Held from here, so that chromedriver is stopped if it never answers.
            let mut driver = Driver { child, port };
            let deadline = tokio::time::Instant::now() + PATIENCE;
            loop {
                let listening = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok();
                let ended = driver.child.try_wait().unwrap().is_some();
                if listening && !ended {
                    return driver;
                }
                if ended {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "chromedriver did not listen within {PATIENCE:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        panic!("chromedriver found no free port in 5 tries");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser (its own profile: its own cookies), as one person uses it.
pub struct Browser {
    pub client: Client,
    base: String,
}

impl Browser {
    /// A headless Chromium `width` pixels wide.
    pub async fn open(driver: &Driver, site: &Site, width: u32) -> Browser {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--hide-scrollbars", "--force-device-scale-factor=1",
                    format!("--window-size={width},900"),
                ]
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a Chromium session through chromedriver");
        Browser {
            client,
            base: site.server.base.clone(),
        }
    }

    pub async fn goto(&self, path: &str) {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        self.client.goto(&url).await.unwrap();
    }

    /// The current path (and query).
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// The input labelled `label` (its `<label for>`).
    pub async fn field(&self, label: &str) -> Element {
        let xpath = format!("//label[normalize-space()={}]", xpath_text(label));
        let label = self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|_| panic!("no field labelled {label:?}"));
        let id = label.attr("for").await.unwrap().unwrap();
        self.client.find(Locator::Id(&id)).await.unwrap()
    }

    pub async fn fill(&self, label: &str, value: &str) {
        let field = self.field(label).await;
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    pub async fn choose(&self, label: &str, value: &str) {
        self.field(label)
            .await
            .select_by_value(value)
            .await
            .unwrap();
    }

    /// The button whose visible text is `text`, optionally inside the element matching `within`
    /// (an XPath).
    pub async fn button(&self, text: &str) -> Element {
        let xpath = format!("//button[normalize-space()={}]", xpath_text(text));
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|_| panic!("no button {text:?}"))
    }

    pub async fn press(&self, text: &str) {
        self.button(text).await.click().await.unwrap();
    }

    pub async fn link(&self, text: &str) -> Element {
        let xpath = format!("//a[normalize-space()={}]", xpath_text(text));
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|_| panic!("no link {text:?}"))
    }

    pub async fn follow(&self, text: &str) {
        self.link(text).await.click().await.unwrap();
    }

    /// The visible text of the page (empty while a page is loading).
    pub async fn text(&self) -> String {
        match self
            .client
            .execute(
                "return document.body ? document.body.innerText : ''",
                vec![],
            )
            .await
        {
            Ok(serde_json::Value::String(text)) => text,
            _ => String::new(),
        }
    }

    /// Waits until the page shows `text`.
    pub async fn sees(&self, text: &str) {
        let what = format!("the page showing {text:?}");
        tenantry_testkit::eventually(&what, PATIENCE, async || {
            let shown = self.text().await;
            if shown.contains(text) {
                Ok(())
            } else {
                Err(format!("{}:\n{shown}", self.path().await))
            }
        })
        .await;
    }

    /// Answers the page's confirmation dialog with OK.
    pub async fn confirm(&self) {
        tenantry_testkit::eventually("a confirmation", PATIENCE, async || {
            self.client.accept_alert().await.map_err(|e| e.to_string())
        })
        .await;
    }

    /// Saves a screenshot of what the browser shows as `<name>.png` among the artefacts.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let path = screenshots().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Resizes the window (for the phone-width screenshots).
    pub async fn width(&self, width: u32) {
        self.client.set_window_size(width, 900).await.unwrap();
    }

    pub async fn close(self) {
        self.client.close().await.unwrap();
    }
}

/// `text` as an XPath string literal.
fn xpath_text(text: &str) -> String {
    if text.contains('\'') {
        format!("\"{text}\"")
    } else {
        format!("'{text}'")
    }
}

/// Signs `email` up through the sign-up page.
pub async fn sign_up(browser: &Browser, name: &str, email: &str) {
    browser.goto("/signup").await;
    browser.fill("Name", name).await;
    browser.fill("Email", email).await;
    browser.fill("Password", "correct horse battery").await;
    browser.press("Sign up").await;
    browser.sees("Log out").await;
}

/// Creates an organization through the "Create organization" page; its slug.
pub async fn create_org(browser: &Browser, name: &str) -> String {
    browser.goto("/orgs/new").await;
    browser.fill("Organization name", name).await;
    browser.press("Create").await;
    browser.sees(&format!("{name} is created")).await;
    let path = browser.path().await;
    path.split('/').nth(2).unwrap().to_string()
}

/// An HTTP endpoint for monitors to check: answers `200 ok` while up, `503` while down.
pub struct Target {
    pub url: String,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Target {
    pub async fn start() -> Target {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let shared = up.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let up = shared.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let _ = stream.read(&mut buffer).await;
                    let answer: &[u8] = if up {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                    } else {
                        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nconnection: close\r\n\r\ndown"
                    };
                    let _ = stream.write_all(answer).await;
                });
            }
        });
        Target { url, up, task }
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Creates a monitor through the "New monitor" page; its page's path.
pub async fn create_monitor(
    browser: &Browser,
    slug: &str,
    name: &str,
    kind: &str,
    target: &str,
    interval: &str,
) -> String {
    browser.goto(&format!("/o/{slug}/monitors/new")).await;
    browser.fill("Name", name).await;
    browser.choose("Type", kind).await;
    if !target.is_empty() {
        browser.fill("Target", target).await;
    }
    browser.fill("Interval (seconds)", interval).await;
    browser.press("Create").await;
    browser.sees(name).await;
    browser.path().await
}
