//! Scenarios 3, 4 and 6 of the end-to-end suite, over QEMU's user network against
//! host-bridge's reverse-echo server: a server that comes up late, a server that
//! dies mid-run, and four boards at once.

mod common;
use common::{boot, Peer, PortReservation};

use std::thread;
use std::time::{Duration, Instant};

const SERVER: &str = env!("CARGO_BIN_EXE_host-bridge");

/// host-bridge's server on any free port of 127.0.0.1.
fn serve(name: &str) -> Peer {
    Peer::spawn(name, SERVER, &["serve", "--listen", "127.0.0.1:0"])
}

fn url(port: u16) -> String {
    format!("ws://10.0.2.2:{port}/ws")
}

#[test]
fn server_starts_late_and_the_firmware_retries() {
    // The port is known before the server runs, and refuses connections until then.
    let reserved = PortReservation::new();
    let port = reserved.port();
    let firmware = thread::spawn(move || {
        boot(
            &["--url", &url(port), "--retry", "20", "--count", "4"],
            None,
            90,
        )
    });
    // Boot and DHCP take well under a second: the first attempts find no server.
    thread::sleep(Duration::from_secs(3));
    let listen = format!("127.0.0.1:{port}");
    let server = Peer::spawn(
        "late-server",
        SERVER,
        &["serve", "--reuse-port", "--listen", &listen],
    );
    let run = firmware.join().expect("firmware thread");
    assert_eq!(
        run.status,
        Some(0),
        "{run}\n--- server\n{}",
        server.log_tail(30)
    );
    run.assert_printed("retry");
    run.assert_printed("connected");
}

#[test]
fn server_dies_mid_run_and_the_firmware_says_so() {
    let mut server = serve("dying-server");
    let port = server.port();
    let firmware = thread::spawn(move || {
        boot(
            &[
                "--url",
                &url(port),
                "--count",
                "100000",
                "--timeout-ms",
                "3000",
            ],
            None,
            90,
        )
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.log_tail(5).contains("message received") {
        assert!(
            Instant::now() < deadline,
            "no message reached the server:\n{}",
            server.log_tail(30)
        );
        thread::sleep(Duration::from_millis(50));
    }
    server.kill();
    let run = firmware.join().expect("firmware thread");
    // This firmware has no reconnect mode: losing the server is a network failure
    // (status 4), said clearly.
    run.assert_status(4);
    assert!(run.stdout.contains("error"), "no error message:\n{run}");
}

#[test]
fn four_boards_at_once_against_one_server() {
    let server = serve("shared-server");
    let port = server.port();
    let boards: Vec<_> = (0..4)
        .map(|i| {
            let proto = if i % 2 == 0 { "rfc6455" } else { "hixie76" };
            thread::spawn(move || {
                boot(
                    &["--url", &url(port), "--proto", proto, "--count", "10"],
                    None,
                    120,
                )
            })
        })
        .collect();
    for (i, board) in boards.into_iter().enumerate() {
        let run = board.join().expect("firmware thread");
        assert_eq!(
            run.status,
            Some(0),
            "board {i}:\n{run}\n--- server\n{}",
            server.log_tail(30)
        );
    }
}
