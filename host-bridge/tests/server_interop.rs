//! The reverse-echo server against independent clients: Python's `websockets`
//! (RFC 6455) and a hand-written hixie-76 client, plus the raw client here.

#[path = "common/skip.rs"]
mod skip;

mod server_support;
use server_support::*;

use std::process::Command;
use std::time::Duration;

use host_bridge::server::ServerConfig;

const TEXTS: [&str; 5] = ["hello", "añb😀c", "", "Ünïcödé ✓ 日本語", "a\u{0301}b"];

fn reversed(s: &str) -> String {
    s.chars().rev().collect()
}

#[test]
fn rfc6455_python_websockets_client_gets_each_message_reversed() {
    let Some(py) = python_with_websockets() else {
        skip::skip("no python with the 'websockets' package (pip install websockets)");
        return;
    };
    let srv = TestServer::start(ServerConfig::default());
    let big = "x".repeat(70_000) + "yz";
    let mut cmd = Command::new(py);
    cmd.arg(py_dir().join("ws_client.py")).arg(srv.url());
    for t in TEXTS {
        cmd.arg(format!("t:{t}"));
    }
    cmd.arg(format!("t:{big}"));
    cmd.arg("b:000102ff80").arg("b:");
    let stdout = run_client(cmd);
    let replies = replies(&stdout);
    let mut expected: Vec<String> = TEXTS
        .iter()
        .map(|t| format!("t:{}", json(&reversed(t))))
        .collect();
    expected.push(format!("t:{}", json(&reversed(&big))));
    expected.push("b:80ff020100".into());
    expected.push("b:".into());
    assert_eq!(replies, expected);
    assert!(stdout.contains("closed 1000"), "{stdout}");
}

/// Runs a Python client (30 s at most), fails with its output unless it
/// succeeds, returns what it printed.
fn run_client(cmd: Command) -> String {
    let out = output_within(cmd, Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The client's `reply: ` lines, without the prefix.
fn replies(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("reply: "))
        .collect()
}

/// JSON string encoding as Python's json.dumps does it (ASCII only).
fn json(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{:04x}", u));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
fn hixie76_hand_written_client_gets_each_message_reversed() {
    if !has_python3() {
        skip::skip("no python3");
        return;
    }
    let srv = TestServer::start(ServerConfig::default());
    let mut cmd = Command::new("python3");
    cmd.arg(py_dir().join("hixie76_client.py"))
        .arg("127.0.0.1")
        .arg(srv.addr.port().to_string())
        .arg("/ws");
    let texts = ["hello", "añb😀c", "Ünïcödé ✓ 日本語"];
    cmd.args(texts);
    let stdout = run_client(cmd);
    assert!(stdout.contains("handshake ok"), "{stdout}");
    let replies = replies(&stdout);
    let expected: Vec<String> = texts.iter().map(|t| json(&reversed(t))).collect();
    assert_eq!(replies, expected);
    assert!(stdout.contains("closed ok"), "{stdout}");
}

#[test]
fn raw_client_fragmented_pipelined_and_ping() {
    let srv = TestServer::start(ServerConfig::default());
    let (mut s, mut pending) = ws_connect(srv.addr);
    use std::io::Write;
    // A fragmented text message split inside a code point, a ping in between,
    // then two pipelined binary messages, all in one write.
    let text = "añb😀c".as_bytes();
    let mut wire = Vec::new();
    let mut first = frame(0x1, &text[..3]);
    first[0] &= 0x7f; // FIN off
    wire.extend(first);
    wire.extend(frame(0x9, b"p"));
    wire.extend(frame(0x0, &text[3..]));
    wire.extend(frame(0x2, &[1, 2, 3]));
    wire.extend(frame(0x2, &[9]));
    s.write_all(&wire).expect("write");
    assert_eq!(read_frame(&mut s, &mut pending), Some((0xA, b"p".to_vec())));
    assert_eq!(
        read_frame(&mut s, &mut pending),
        Some((0x1, "c😀bña".as_bytes().to_vec()))
    );
    assert_eq!(read_frame(&mut s, &mut pending), Some((0x2, vec![3, 2, 1])));
    assert_eq!(read_frame(&mut s, &mut pending), Some((0x2, vec![9])));
    s.write_all(&frame(0x8, &1000u16.to_be_bytes()))
        .expect("close");
    let (op, payload) = read_frame(&mut s, &mut pending).expect("close answer");
    assert_eq!((op, close_code(&payload)), (0x8, Some(1000)));
    assert_eq!(
        read_frame(&mut s, &mut pending),
        None,
        "the server closes TCP after the close handshake"
    );
}

#[test]
fn echo_mode_sends_messages_back_unchanged() {
    let srv = TestServer::start(ServerConfig {
        echo: true,
        ..ServerConfig::default()
    });
    let (mut s, mut pending) = ws_connect(srv.addr);
    use std::io::Write;
    s.write_all(&frame(0x1, "añb".as_bytes())).expect("write");
    assert_eq!(
        read_frame(&mut s, &mut pending),
        Some((0x1, "añb".as_bytes().to_vec()))
    );
}
