//! The dashboard in a real browser: `cairn testnet --serve` as a newcomer runs it, opened in
//! headless Chromium, which must show every node on the ring, draw live lookups, put a value
//! through the page's form and show it, switch colour schemes and fit a phone's screen.
//!
//! Needs Chromium (Debian's `chromium` package; `.ci/run` installs it). Without one the test
//! says so and does nothing; set `CAIRN_REQUIRE_BROWSER=1` to make that a failure instead.

#[path = "browser/cdp.rs"]
mod cdp;
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{CAIRN, free_addr, temp_dir};

const NODES: usize = 12;

#[cfg_attr(
    cairn_no_chromium,
    ignore = "needs Chromium (Debian's `chromium`, or CAIRN_CHROMIUM); CAIRN_REQUIRE_BROWSER=1 fails instead"
)]
#[test]
fn the_dashboard_shows_the_network_and_puts_through_its_form() {
    let Some(chromium) = cdp::find_chromium() else {
        let required = std::env::var_os("CAIRN_REQUIRE_BROWSER").is_some();
        assert!(
            !required,
            "CAIRN_REQUIRE_BROWSER is set but no Chromium was found"
        );
        eprintln!(
            "SKIPPED the_dashboard_shows_the_network_and_puts_through_its_form: no Chromium found \
             (install Debian's `chromium` package or set CAIRN_CHROMIUM; .ci/run installs it)"
        );
        return;
    };
    let api = free_addr();
    let mut testnet = Command::new(CAIRN)
        .args(["testnet", "--nodes", &NODES.to_string(), "--items", "8"])
        .args(["--serve", "--api", &api.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cairn testnet starts");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    common::wait_for_api(&rt, api);

    let url = format!("http://{api}/");
    let mut page = cdp::Browser::open(&chromium, &temp_dir("chromium"), &url, 1280, 1000);
    let wait = Duration::from_secs(60);

    // Every node of the network is on the ring, and the feed is live.
    let ring = format!("document.querySelectorAll('#nodes-layer .node').length === {NODES}");
    assert!(
        page.wait_for(&ring, wait),
        "the ring never showed {NODES} nodes"
    );
    assert!(page.wait_for(
        "document.getElementById('live').textContent === 'live'",
        wait
    ));
    // The workload's lookups are drawn as arcs between nodes as they happen.
    assert!(
        page.wait_for(
            "document.querySelectorAll('#hops-layer .hop').length > 0",
            wait
        ),
        "no lookup was drawn"
    );

    // A put through the form shows in the result, the recent operations, the items table and
    // on the ring.
    page.eval(
        "document.getElementById('name').value = 'from-the-browser';
         document.getElementById('value').value = 'hello from chromium';
         document.getElementById('put').click(); true",
    );
    assert!(page.wait_for(
        "/stored “from-the-browser” on \\d+ nodes/.test(document.getElementById('result').textContent)",
        wait
    ));
    let key =
        page.eval("document.getElementById('result').textContent.match(/key ([0-9a-f]{128})/)[1]");
    let key = key.as_str().expect("the result names the key").to_owned();
    let shown = format!(
        "document.querySelector('#items tr[data-key=\"{key}\"]') !== null
         && document.querySelector('#items-layer [data-key=\"{key}\"]') !== null
         && document.querySelector('#operations li[data-operation=\"put\"]') !== null"
    );
    assert!(page.wait_for(&shown, wait), "the put never appeared");
    // And a get through the form finds it again.
    page.eval("document.getElementById('get').click(); true");
    assert!(page.wait_for(
        "document.getElementById('result').textContent === 'found: hello from chromium'",
        wait
    ));

    let shot = page.screenshot();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&path, &shot).expect("the screenshot is saved");
    eprintln!("dashboard screenshot: {}", path.display());
    assert!(shot.starts_with(b"\x89PNG"), "a PNG");

    // The other colour scheme is one click (or Enter on the focused button) away.
    let background = "getComputedStyle(document.body).backgroundColor";
    let before = page.eval(background);
    page.eval(
        "document.getElementById('theme').focus(); document.getElementById('theme').click(); true",
    );
    assert_ne!(
        page.eval(background),
        before,
        "the theme button changes the colours"
    );

    // On a phone-sized screen nothing is wider than the screen.
    page.resize(390, 844, true);
    assert!(page.wait_for(
        "document.documentElement.scrollWidth <= window.innerWidth",
        wait
    ));
    drop(page);

    // Ctrl-C stops the network and the dashboard cleanly.
    let pid = testnet.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status();
    assert!(sent.is_ok_and(|s| s.success()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = testnet.try_wait().expect("waits") {
            break status;
        }
        assert!(started.elapsed() < wait, "the test network did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
}
