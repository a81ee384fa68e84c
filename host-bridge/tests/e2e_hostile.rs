//! Scenario 5 of the end-to-end suite: a hostile server. The real firmware, booted
//! under QEMU on its user network, connects to a small server in this test that
//! answers wrongly on purpose. Each case must end with a clear error message and a
//! non-zero status: never a panic (1), a hard fault (3) or a hang (124).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use websocket::handshake::{hixie76, rfc6455, Parse};
use websocket::Protocol;

/// Reads the client's whole opening handshake and returns the correct answer to it.
fn read_request_and_answer(stream: &mut TcpStream, proto: Protocol) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).expect("read the request");
        assert!(n > 0, "client closed during its handshake");
        buf.extend_from_slice(&chunk[..n]);
        let mut out = vec![0u8; 1024];
        let len = match proto {
            Protocol::Rfc6455 => match rfc6455::parse_request(&buf, 8192).expect("valid request") {
                Parse::Incomplete => continue,
                Parse::Done { value, .. } => rfc6455::write_accept(&value, None, &mut out),
            },
            Protocol::Hixie76 => match hixie76::parse_request(&buf, 8192).expect("valid request") {
                Parse::Incomplete => continue,
                Parse::Done { value, .. } => hixie76::write_accept(&value, None, &mut out),
            },
        }
        .expect("answer fits");
        out.truncate(len);
        return out;
    }
}

/// Runs the firmware against a one-connection server that answers with `reply(correct)`,
/// where `correct` is the right handshake answer, and returns what the firmware did.
fn against(proto: Protocol, reply: fn(Vec<u8>) -> Vec<u8>) -> common::Run {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let correct = read_request_and_answer(&mut stream, proto);
        // Errors below are the firmware hanging up on us: expected.
        let _ = stream.write_all(&reply(correct));
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    });
    let url = format!("ws://10.0.2.2:{port}/ws");
    let run = common::boot(
        &[
            "--url",
            &url,
            "--proto",
            proto.name(),
            "--count",
            "2",
            "--timeout-ms",
            "3000",
        ],
        None,
        60,
    );
    // A firmware that never connected leaves the server in accept(): don't wait then.
    if run.stdout.contains("connected") {
        let _ = server.join();
    }
    run
}

/// The firmware must end with `status` (5: handshake or protocol error, 6: not the
/// echo it sent) and print `message`: never a panic (1), a fault (3) or a hang (124).
#[track_caller]
fn assert_clean_failure(run: &common::Run, status: i32, message: &str) {
    run.assert_status(status);
    run.assert_printed(message);
}

fn corrupt_last(mut answer: Vec<u8>, from_end: usize) -> Vec<u8> {
    let i = answer.len() - from_end;
    answer[i] ^= 0x01;
    answer
}

#[test]
fn rfc6455_wrong_accept() {
    // The accept value ends 4 bytes before the end ("...=\r\n\r\n").
    let run = against(Protocol::Rfc6455, |a| corrupt_last(a, 6));
    assert_clean_failure(
        &run,
        5,
        "error: handshake failed: missing or wrong Sec-WebSocket-Accept",
    );
}

#[test]
fn hixie76_wrong_md5() {
    let run = against(Protocol::Hixie76, |a| corrupt_last(a, 1));
    assert_clean_failure(
        &run,
        5,
        "error: handshake failed: wrong hixie-76 challenge response",
    );
}

#[test]
fn rfc6455_no_101() {
    let run = against(Protocol::Rfc6455, |_| {
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi".to_vec()
    });
    assert_clean_failure(&run, 5, "error: handshake failed: status is not 101");
}

#[test]
fn hixie76_no_101() {
    let run = against(Protocol::Hixie76, |_| {
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
    });
    assert_clean_failure(&run, 5, "error: handshake failed: status is not 101");
}

#[test]
fn rfc6455_garbage_frames() {
    // Reserved opcode 0xF with reserved bits set, then noise.
    let run = against(Protocol::Rfc6455, |mut a| {
        a.extend_from_slice(&[0xff, 0x05, 1, 2, 3, 4, 5, 0x00, 0x80, 0x13]);
        a
    });
    assert_clean_failure(&run, 5, "error: protocol error: reserved bits set");
}

#[test]
fn hixie76_garbage_frames() {
    // A text frame holding invalid UTF-8, then bytes that start no frame at all.
    let run = against(Protocol::Hixie76, |mut a| {
        a.extend_from_slice(&[0x00, 0xc3, 0x28, 0xff, 0x7f, 0x7f]);
        a
    });
    assert_clean_failure(&run, 5, "error: protocol error: invalid UTF-8");
}

#[test]
fn rfc6455_ten_mib_length() {
    // A text frame announcing 10 MiB (64-bit length), with only a little payload.
    let run = against(Protocol::Rfc6455, |mut a| {
        a.extend_from_slice(&[0x81, 0x7f]);
        a.extend_from_slice(&(10u64 << 20).to_be_bytes());
        a.extend_from_slice(&[b'x'; 64]);
        a
    });
    assert_clean_failure(&run, 6, "error: echo mismatch");
}

#[test]
fn hixie76_unterminated_huge_message() {
    // A text frame that never ends: far longer than anything the firmware sent.
    let run = against(Protocol::Hixie76, |mut a| {
        a.push(0x00);
        a.extend(std::iter::repeat_n(b'a', 256 * 1024));
        a
    });
    assert_clean_failure(&run, 6, "error: echo mismatch");
}
