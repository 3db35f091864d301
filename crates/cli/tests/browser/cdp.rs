//! Just enough of the Chrome DevTools Protocol to drive a headless Chromium from a test: start
//! the browser, open a page, run JavaScript in it, resize it and take a screenshot.
//!
//! The protocol is JSON messages over one WebSocket (`tungstenite` carries them): a command
//! `{id, method, params, sessionId}` gets a reply with the same `id`; events in between are
//! skipped. (The CDP crates for Rust download the protocol's description while they build,
//! which a machine without the internet cannot do; the few commands used here need none of it.)

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// The Chromium to run: `CAIRN_CHROMIUM`, else the first of the usual names on the `PATH`.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CAIRN_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
    .find(|candidate| candidate.is_file())
}

/// A headless Chromium with one page open; the browser is killed when this is dropped.
pub struct Browser {
    child: Child,
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    profile: PathBuf,
}

impl Browser {
    /// Starts `chromium` (a fresh profile in `profile`) and opens `url` in a page of
    /// `width` x `height` CSS pixels.
    pub fn open(chromium: &Path, profile: &Path, url: &str, width: u32, height: u32) -> Self {
        let _ = std::fs::remove_dir_all(profile);
        let mut child = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        let endpoint = devtools_endpoint(&mut child);
        let (socket, _) = tungstenite::connect(endpoint.as_str()).expect("DevTools connects");
        let mut browser = Browser {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            profile: profile.to_owned(),
        };
        let target = browser.command("Target.createTarget", json!({ "url": url }));
        let target_id = target["targetId"].clone();
        let attached = browser.command(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser
    }

    /// Sends a command (to the page once attached) and returns its result.
    pub fn command(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .expect("DevTools takes the command");
        loop {
            let reply = self.socket.read().expect("DevTools answers");
            let Message::Text(text) = reply else { continue };
            let reply: Value = serde_json::from_str(&text).expect("DevTools speaks JSON");
            if reply["id"] != json!(id) {
                continue; // an event, or another command's reply
            }
            assert!(reply.get("error").is_none(), "{method} failed: {reply}");
            return reply["result"].clone();
        }
    }

    /// Runs `expression` in the page (awaiting it if it is a promise) and returns its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.command(
            "Runtime.evaluate",
            json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression} threw: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` until it is true, at most `limit`; returns whether it became so.
    pub fn wait_for(&mut self, expression: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.eval(expression) == json!(true) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Makes the page `width` x `height` CSS pixels, as a phone (`mobile`) or a desktop.
    pub fn resize(&mut self, width: u32, height: u32, mobile: bool) {
        self.command(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        );
    }

    /// A PNG of the page as it is shown now.
    pub fn screenshot(&mut self) -> Vec<u8> {
        use base64::Engine;
        let shot = self.command("Page.captureScreenshot", json!({ "format": "png" }));
        let data = shot["data"].as_str().expect("image data");
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Reads Chromium's standard error until it says where DevTools listens.
fn devtools_endpoint(child: &mut Child) -> String {
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let endpoint = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix("DevTools listening on ")
                .map(str::to_owned)
        })
        .expect("chromium prints its DevTools address");
    // Keep draining, so that the browser never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    endpoint
}
