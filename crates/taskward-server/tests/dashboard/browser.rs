//! A real Chromium (Debian's `chromium` + `chromium-driver`), driven over WebDriver with
//! fantoccini: one private chromedriver per test on a free port, one headless browser with a
//! throwaway profile, both killed when the test ends however it ends.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::http::Method;
use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// How long a test waits for the page to show something before failing.
pub const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    pub base: String,
    driver: Child,
    _profile: TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn which(name: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return p.into();
    }
    let path = PathBuf::from("/usr/bin").join(name);
    assert!(
        path.exists(),
        "{} not found: install Debian's chromium and chromium-driver (`.ci/run` does), or set {env}",
        path.display()
    );
    path
}

impl Browser {
    /// A headless Chromium at `width`×`height` pointed at nothing yet; `base` is the server.
    pub async fn open(base: &str) -> Browser {
        Browser::open_sized(base, 1280, 900).await
    }

    pub async fn open_sized(base: &str, width: u32, height: u32) -> Browser {
        let chromium = which("chromium", "CHROMIUM");
        let chromedriver = which("chromedriver", "CHROMEDRIVER");
        let profile = tempfile::tempdir().expect("profile dir");
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // Its own process group, so that Drop takes the browser down with the driver.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-extensions", "--disable-background-networking",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        // A confirm() the test did not expect stays open and fails the next command.
        caps.insert("unhandledPromptBehavior".into(), json!("ignore"));
        let deadline = Instant::now() + PATIENCE;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no WebDriver session: {e}"),
            }
        };
        Browser {
            client,
            base: base.trim_end_matches('/').to_owned(),
            driver,
            _profile: profile,
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("navigate");
    }

    /// Types `key` into the sign-in form and submits it.
    pub async fn sign_in(&self, key: &str) {
        let input = self.wait_css("input[name=key]").await;
        input.clear().await.expect("clear");
        input.send_keys(key).await.expect("type key");
        self.client
            .find(Locator::Css("#sign-in-form button[type=submit]"))
            .await
            .expect("submit button")
            .click()
            .await
            .expect("click submit");
    }

    /// Signs in at `/dashboard/` and waits for the task table.
    pub async fn sign_in_to_list(&self, key: &str) {
        self.goto("/dashboard/").await;
        self.sign_in(key).await;
        self.wait_css("table.tasks").await;
    }

    /// The first element `css` matches, waiting for it to appear.
    pub async fn wait_css(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` within {PATIENCE:?}: {e}"))
    }

    /// Runs `script` (a function body returning a value) in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` (returning a boolean) until it is true; false after `within`.
    pub async fn eventually(&self, script: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.js(script).await == Value::Bool(true) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Like `eventually`, failing the test with `what` when it does not happen.
    pub async fn expect(&self, script: &str, what: &str) {
        assert!(
            self.eventually(script, PATIENCE).await,
            "{what}: `{script}` stayed false"
        );
    }

    /// The text of the status cell of the row of `task_id`, or null without such a row.
    pub async fn row_status(&self, task_id: &str) -> Value {
        self.client
            .execute(
                "const r = document.querySelector(`tr[data-task-id=\"${CSS.escape(arguments[0])}\"]`);
                 return r ? r.querySelector('[data-field=status]').innerText.trim() : null;",
                vec![json!(task_id)],
            )
            .await
            .expect("row status")
    }

    /// The task ids of the table's rows, top to bottom.
    pub async fn row_ids(&self) -> Vec<String> {
        let v = self
            .js("return [...document.querySelectorAll('tr[data-task-id]')].map(r => r.dataset.taskId)")
            .await;
        serde_json::from_value(v).expect("ids")
    }

    /// What the page wrote to the console at level SEVERE (errors, failed loads, CSP
    /// violations), since the last call.
    pub async fn console_errors(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(SessionPost {
                path: "se/log",
                body: r#"{"type":"browser"}"#.to_owned(),
            })
            .await
            .expect("browser log");
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Ends the session; fails the test if the console showed an error that no entry of
    /// `expected` (substrings) accounts for.
    pub async fn finish_expecting(self, expected: &[&str]) {
        let errors = self.console_errors().await;
        let unexpected: Vec<&String> = errors
            .iter()
            .filter(|e| !expected.iter().any(|x| e.contains(x)))
            .collect();
        let _ = self.client.clone().close().await;
        assert!(unexpected.is_empty(), "console errors: {unexpected:#?}");
    }

    /// Ends the session; fails the test on any console error.
    pub async fn finish(self) {
        self.finish_expecting(&[]).await;
    }

    /// A Chrome DevTools Protocol command (chromedriver's `goog/cdp/execute`).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.client
            .issue_cmd(SessionPost {
                path: "goog/cdp/execute",
                body: json!({"cmd": cmd, "params": params}).to_string(),
            })
            .await
            .unwrap_or_else(|e| panic!("{cmd}: {e}"))
    }

    /// The renderer's own counters (`Performance.getMetrics`): `TaskDuration` is the main
    /// thread's busy time in seconds, `ScriptDuration` the part of it in scripts, and so on.
    pub async fn main_thread_metrics(&self) -> std::collections::BTreeMap<String, f64> {
        let m = self.cdp("Performance.getMetrics", json!({})).await;
        m["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e["name"].as_str()?.to_owned(), e["value"].as_f64()?)))
            .collect()
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.expect("screenshot")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(pid) = self
            .driver
            .id()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// A POST to a chromedriver extension endpoint of the session: its browser log
/// (`se/log`; `goog:loggingPrefs` above turns it on) or a DevTools command (`goog/cdp/execute`).
#[derive(Debug)]
struct SessionPost {
    path: &'static str,
    body: String,
}

impl WebDriverCompatibleCommand for SessionPost {
    fn endpoint(
        &self,
        base: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        (Method::POST, Some(self.body.clone()))
    }
}
