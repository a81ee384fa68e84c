//! The server's answers to bad requests and its limits: 400/426/404/431 for
//! bad handshakes, 403 for a refused Origin, 503 beyond the connection limit,
//! close 1009/1007/1002 for oversize and bad frames, pings and the idle timeout,
//! slow and hostile clients that don't stall others, and 1001 on SIGTERM/SIGINT.

mod server_support;
use server_support::*;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use host_bridge::server::ServerConfig;

fn status_of(srv: &TestServer, request: &str) -> u16 {
    let mut s = connect(srv.addr);
    http(&mut s, request).0
}

#[test]
fn bad_handshakes_get_400_426_404_405_or_431() {
    let srv = TestServer::start(ServerConfig {
        max_header: 1024,
        ..ServerConfig::default()
    });
    let no_key = "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
    assert_eq!(status_of(&srv, no_key), 400);
    let v8 = upgrade_request("/ws", "").replace("Version: 13", "Version: 8");
    assert_eq!(status_of(&srv, &v8), 426);
    let bad_key = upgrade_request("/ws", "").replace(KEY, "short");
    assert_eq!(status_of(&srv, &bad_key), 400);
    assert_eq!(
        status_of(&srv, "GET /ws HTTP/1.1\r\nHost: h\r\n\r\n"),
        400,
        "plain GET of the endpoint"
    );
    assert_eq!(
        status_of(&srv, &upgrade_request("/ws", "").replace("GET", "POST")),
        400
    );
    assert_eq!(status_of(&srv, &upgrade_request("/other", "")), 404);
    assert_eq!(status_of(&srv, "DELETE / HTTP/1.1\r\nHost: h\r\n\r\n"), 405);
    assert_eq!(status_of(&srv, "complete garbage\r\n\r\n"), 400);
    let huge = upgrade_request("/ws", &format!("X-Pad: {}\r\n", "a".repeat(2000)));
    assert_eq!(status_of(&srv, &huge), 431);
    let bad_hixie = "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Key1: 12345\r\nSec-WebSocket-Key2: 1 2\r\n\r\n12345678";
    assert_eq!(
        status_of(&srv, bad_hixie),
        400,
        "hixie-76 key without spaces"
    );
    // Still serving after all that.
    ws_connect(srv.addr);
}

#[test]
fn origin_is_any_by_default_and_checked_when_restricted() {
    let any = TestServer::start(ServerConfig::default());
    assert_eq!(
        status_of(
            &any,
            &upgrade_request("/ws", "Origin: http://anything.example\r\n")
        ),
        101
    );
    let srv = TestServer::start(ServerConfig {
        allow_origins: vec!["http://good.example".into()],
        ..ServerConfig::default()
    });
    assert_eq!(
        status_of(
            &srv,
            &upgrade_request("/ws", "Origin: http://good.example\r\n")
        ),
        101
    );
    assert_eq!(
        status_of(
            &srv,
            &upgrade_request("/ws", "Origin: http://evil.example\r\n")
        ),
        403
    );
    assert_eq!(
        status_of(&srv, &upgrade_request("/ws", "")),
        403,
        "no Origin when one is required"
    );
    let hixie = "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\
                 Origin: http://evil.example\r\nSec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n\
                 Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\n^n:ds[4U";
    assert_eq!(status_of(&srv, hixie), 403);
    let ok = hixie.replace("evil", "good");
    assert_eq!(status_of(&srv, &ok), 101);
}

#[test]
fn connections_beyond_the_limit_get_503() {
    let srv = TestServer::start(ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    });
    let a = ws_connect(srv.addr);
    let _b = ws_connect(srv.addr);
    assert_eq!(status_of(&srv, &upgrade_request("/ws", "")), 503);
    drop(a);
    // The slot comes back once the server has seen the first one go.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let st = status_of(&srv, &upgrade_request("/ws", ""));
        if st == 101 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slot never came back (last status {st})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn expect_close(addr: SocketAddr, cfg_wire: &[u8], code: u16) {
    let (mut s, mut pending) = ws_connect(addr);
    s.write_all(cfg_wire).expect("write");
    loop {
        match read_frame(&mut s, &mut pending) {
            Some((0x8, p)) => {
                assert_eq!(close_code(&p), Some(code));
                return;
            }
            Some(_) => continue,
            None => panic!("connection ended without a close frame (expected {code})"),
        }
    }
}

#[test]
fn oversize_bad_utf8_and_protocol_errors_close_with_their_codes() {
    let srv = TestServer::start(ServerConfig {
        max_message: 1000,
        ..ServerConfig::default()
    });
    expect_close(srv.addr, &frame(0x2, &[7u8; 2000]), 1009);
    // Over the limit only in total, across fragments.
    let mut frag = frame(0x2, &[7u8; 600]);
    frag[0] &= 0x7f;
    frag.extend(frame(0x0, &[7u8; 600]));
    expect_close(srv.addr, &frag, 1009);
    expect_close(srv.addr, &frame(0x1, &[0xff, 0xfe]), 1007);
    let mut unmasked = frame(0x1, b"x");
    unmasked[1] &= 0x7f;
    unmasked.drain(2..6);
    expect_close(srv.addr, &unmasked, 1002);
    expect_close(srv.addr, &frame(0x3, b"x"), 1002); // reserved opcode
                                                     // A message at the limit is fine.
    let (mut s, mut pending) = ws_connect(srv.addr);
    s.write_all(&frame(0x2, &[5u8; 1000])).expect("write");
    assert_eq!(
        read_frame(&mut s, &mut pending),
        Some((0x2, vec![5u8; 1000]))
    );
}

#[test]
fn quiet_clients_are_pinged_then_closed_with_1001() {
    let srv = TestServer::start(ServerConfig {
        ping_interval: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(1200),
        ..ServerConfig::default()
    });
    let (mut s, mut pending) = ws_connect(srv.addr);
    let start = Instant::now();
    assert_eq!(
        read_frame(&mut s, &mut pending).map(|f| f.0),
        Some(0x9),
        "a ping"
    );
    // Answering keeps it open.
    s.write_all(&frame(0xA, b"")).expect("pong");
    assert_eq!(
        read_frame(&mut s, &mut pending).map(|f| f.0),
        Some(0x9),
        "another ping"
    );
    // Not answering gets it closed.
    let (op, payload) = read_frame(&mut s, &mut pending).expect("close");
    assert_eq!((op, close_code(&payload)), (0x8, Some(1001)));
    assert!(
        start.elapsed() >= Duration::from_millis(1200),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn slowloris_and_stalled_readers_do_not_stall_others() {
    let srv = TestServer::start(ServerConfig {
        handshake_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    });
    // 100 connections that send half a request head and then nothing.
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut s = connect(srv.addr);
        s.write_all(b"GET /ws HTTP/1.1\r\nHost: h\r\n")
            .expect("write");
        slow.push(s);
    }
    // 5 clients that flood big messages and never read the replies.
    let mut stalled = Vec::new();
    for _ in 0..5 {
        let (s, _) = ws_connect(srv.addr);
        let mut w = s.try_clone().expect("clone");
        let big = frame(0x2, &vec![1u8; 500_000]);
        let flood = std::thread::spawn(move || while w.write_all(&big).is_ok() {});
        stalled.push((s, flood));
    }
    std::thread::sleep(Duration::from_millis(300));
    // A well-behaved client is served at once.
    let t = Instant::now();
    for i in 0..20u8 {
        let (mut s, mut pending) = ws_connect(srv.addr);
        s.write_all(&frame(0x2, &[i, 1])).expect("write");
        assert_eq!(read_frame(&mut s, &mut pending), Some((0x2, vec![1, i])));
    }
    // Stalled behind the flooders they would wait the 5 s write timeout; the
    // margin allows for a loaded CI machine.
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "others stalled: {:?}",
        t.elapsed()
    );
    // The half-open heads are answered 408 (or closed) after the handshake timeout.
    for mut s in slow {
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf);
        assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    // The stalled readers are dropped after the write (idle) timeout: their
    // flooding writes then fail.
    let start = Instant::now();
    for (_s, flood) in stalled {
        while !flood.is_finished() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "a stalled reader was never dropped"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Spawns the binary on an ephemeral port; returns it and its address.
fn spawn_binary(
    extra: &[&str],
) -> (
    std::process::Child,
    SocketAddr,
    std::thread::JoinHandle<String>,
) {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::null());
    let mut addr = None;
    let (child, rest) = spawn_until_ready(cmd, true, |line| {
        let Some(rest) = line.split("Started at ").nth(1) else {
            return false;
        };
        addr = rest.split(' ').next().and_then(|a| a.parse().ok());
        true
    });
    let addr = addr.expect("the server printed its address");
    (child, addr, rest)
}

fn stops_with_1001_on(signal: nix::sys::signal::Signal) {
    let (mut child, addr, log) = spawn_binary(&[]);
    let (mut s, mut pending) = ws_connect(addr);
    s.write_all(&frame(0x1, b"abc")).expect("write");
    assert_eq!(
        read_frame(&mut s, &mut pending),
        Some((0x1, b"cba".to_vec()))
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).expect("kill");
    let (op, payload) = read_frame(&mut s, &mut pending).expect("close frame");
    assert_eq!((op, close_code(&payload)), (0x8, Some(1001)));
    s.write_all(&frame(0x8, &1001u16.to_be_bytes()))
        .expect("close answer");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("server did not exit after {signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    // New connections are refused once it stopped.
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    let log = log.join().expect("log");
    assert!(log.contains("connection closed"), "{log}");
}

#[test]
fn sigterm_closes_connections_with_1001_and_exits_zero() {
    stops_with_1001_on(nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn ctrl_c_closes_connections_with_1001_and_exits_zero() {
    stops_with_1001_on(nix::sys::signal::Signal::SIGINT);
}

#[test]
fn logs_what_the_tutorial_server_prints_and_quiet_silences_it() {
    let (mut child, addr, log) = spawn_binary(&[]);
    let (mut s, mut pending) = ws_connect(addr);
    s.write_all(&frame(0x1, b"hello")).expect("write");
    assert_eq!(
        read_frame(&mut s, &mut pending),
        Some((0x1, b"olleh".to_vec()))
    );
    s.write_all(&frame(0x8, &1000u16.to_be_bytes()))
        .expect("close");
    let _ = read_frame(&mut s, &mut pending);
    std::thread::sleep(Duration::from_millis(200));
    let _ = child.kill();
    let _ = child.wait();
    let log = log.join().expect("log");
    let peer = s.local_addr().expect("addr").to_string();
    for needle in [
        format!("new connection from {peer}"),
        format!("message received from {peer}: hello"),
        format!("sending back message to {peer}: olleh"),
        format!("connection closed: {peer}"),
    ] {
        assert!(log.contains(&needle), "{needle:?} not in:\n{log}");
    }
    // --quiet: nothing per connection.
    let mut child = Command::new(BIN)
        .args(["serve", "--quiet", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(300));
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn random_garbage_before_and_after_the_handshake_never_hurts_the_server() {
    let srv = TestServer::start(ServerConfig {
        handshake_timeout: Duration::from_secs(1),
        max_message: 64 * 1024,
        ..ServerConfig::default()
    });
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let addr = srv.addr;
            let seeds: Vec<u64> = (0..40).map(|_| rand()).collect();
            std::thread::spawn(move || {
                for (i, s0) in seeds.into_iter().enumerate() {
                    let mut x = s0 | 1;
                    let len = (x % 3000) as usize;
                    let junk: Vec<u8> = (0..len)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            x as u8
                        })
                        .collect();
                    let mut s = connect(addr);
                    s.set_read_timeout(Some(Duration::from_secs(5)))
                        .expect("timeout");
                    if (i + t) % 2 == 0 {
                        // Garbage instead of a request head (sometimes with a head end).
                        let _ = s.write_all(&junk);
                        let _ = s.write_all(b"\r\n\r\n");
                    } else {
                        // A valid handshake, then garbage frames.
                        let (status, _, _) = http(&mut s, &upgrade_request("/ws", ""));
                        assert_eq!(status, 101);
                        let _ = s.write_all(&junk);
                    }
                    let mut sink = Vec::new();
                    let _ = s.read_to_end(&mut sink);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    // Still answering, correctly.
    let (mut s, mut pending) = ws_connect(srv.addr);
    s.write_all(&frame(0x1, b"still here")).expect("write");
    assert_eq!(
        read_frame(&mut s, &mut pending),
        Some((0x1, b"ereh llits".to_vec()))
    );
}
