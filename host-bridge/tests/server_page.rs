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
    let Some(python) = python_with_websockets() else {
        skip::skip("no Python with websockets (ci/setup.sh makes one)");
        return;
    };
    let srv = TestServer::start(ServerConfig::default());
    let url = format!(
        "http://{}/?send=hello%20world&send=a%C3%B1b%F0%9F%98%80c",
        srv.addr
    );
    let sent = r#"<li class="sent">hello world</li>"#;
    let echoes = [
        r#"<li class="received">dlrow olleh</li>"#,
        r#"<li class="received">c😀bña</li>"#,
    ];
    // Polls the live DOM until the echoes are in it (30 s of real time at most):
    // see page_dom.py for why not `--dump-dom`.
    let mut cmd = Command::new(python);
    cmd.arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/page_dom.py"))
        .args([browser, url.as_str(), "30", sent, echoes[0], echoes[1]]);
    let out = output_within(cmd, Duration::from_secs(90));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chromium failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains(sent), "{dom}");
    assert!(dom.contains(echoes[0]), "{dom}");
    assert!(dom.contains(echoes[1]), "{dom}");
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
