//! The browser end of the tutorial: `GET /` serves a page that opens a
//! WebSocket to `/ws`; headless Chromium loads it, sends messages, and the
//! reversed echoes appear in its DOM.

#[path = "common/skip.rs"]
mod skip;

mod server_support;
use server_support::*;

use std::process::Command;
use std::time::Duration;

use host_bridge::server::ServerConfig;

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[test]
fn page_shows_each_message_and_its_reversed_echo_in_headless_chromium() {
    let Some(browser) = chromium() else {
        skip::skip("no chromium (apt-get install chromium)");
        return;
    };
    let srv = TestServer::start(ServerConfig::default());
    let profile = std::env::temp_dir().join(format!("server-page-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).expect("profile dir");
    let url = format!(
        "http://{}/?send=hello%20world&send=a%C3%B1b%F0%9F%98%80c",
        srv.addr
    );
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--virtual-time-budget=3000",
        "--dump-dom",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(&url);
    let out = output_within(cmd, Duration::from_secs(90));
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chromium failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains(r#"<li class="sent">hello world</li>"#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"<li class="received">dlrow olleh</li>"#),
        "{dom}"
    );
    assert!(dom.contains(r#"<li class="received">c😀bña</li>"#), "{dom}");
    assert!(dom.contains("connected to ws://"), "{dom}");
}

#[test]
fn page_is_plain_http_with_the_configured_path() {
    let srv = TestServer::start(ServerConfig {
        path: "/echo".into(),
        ..ServerConfig::default()
    });
    let mut s = connect(srv.addr);
    let (status, head, body) = http(&mut s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("Content-Type: text/html"), "{head}");
    let mut body = body;
    use std::io::Read;
    s.read_to_end(&mut body).expect("body");
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains(r#"location.host + "/echo""#), "{body}");
}
