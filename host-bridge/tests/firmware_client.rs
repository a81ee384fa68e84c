//! The firmware's network stack and WebSocket client, end to end: the real image
//! under QEMU, its emulated Stellaris Ethernet on QEMU's user network (slirp: DHCP,
//! the host's 127.0.0.1 at 10.0.2.2), against `firmware_support/reverse_server.py`
//! (a standard-library reverse-echo server that can also answer the handshake
//! wrongly, or drive the firmware's `--echo` mode). Every run is bounded by QEMU's
//! timeout and every firmware wait by `--timeout-ms`. The plain reverse-echo runs
//! also go against host-bridge's own server (`serve`).

mod common;
use common::{boot, repo_root, Peer, PortReservation, Run};

/// Starts the test server on a free port with `extra` arguments.
fn server(name: &str, extra: &[&str]) -> (Peer, u16) {
    let script = repo_root().join("host-bridge/tests/firmware_support/reverse_server.py");
    let args = [&[script.to_str().expect("utf-8 path"), "0"], extra].concat();
    let peer = Peer::spawn(name, "python3", &args);
    let port = peer.port();
    (peer, port)
}

fn url(port: u16) -> String {
    format!("ws://10.0.2.2:{port}/ws")
}

#[track_caller]
fn assert_status(run: &Run, peer: &Peer, expected: i32) {
    assert_eq!(
        run.status,
        Some(expected),
        "{run}\n--- server (last lines)\n{}",
        peer.log_tail(30)
    );
}

/// The driver's counters and the stack high-water mark end every network run.
#[track_caller]
fn assert_footer(run: &Run) {
    run.assert_printed("eth: in ");
    run.assert_printed(", overruns 0, rx errors 0, tx errors 0");
    run.assert_printed("stack: ");
}

#[test]
fn rfc6455_generated_set_is_echoed_reversed_and_closed_cleanly() {
    let (peer, port) = server("fw-rfc6455", &[]);
    // 9 messages: the whole generated set (0, 1, 125, 126, 127 bytes, UTF-8, binary,
    // 1.5 KB UTF-8, 1000 bytes binary).
    let run = boot(&["--url", &url(port), "--count", "9"], None, 60);
    assert_status(&run, &peer, 0);
    run.assert_printed("dhcp: 10.0.2.15/24 gateway 10.0.2.2");
    run.assert_printed(&format!("connected to ws://10.0.2.2:{port}/ws"));
    run.assert_printed("sent 1: text 0 bytes");
    run.assert_printed("sent 4: text 126 bytes");
    run.assert_printed("sent 7: binary 300 bytes");
    run.assert_printed("received 9 after ");
    run.assert_printed("all 9 echoes matched\nclosed\n");
    assert_footer(&run);
    assert!(
        peer.log_tail(40).contains("origin=http://10.0.2.15"),
        "default Origin is the board's own address:\n{}",
        peer.log_tail(40)
    );
}

#[test]
fn hixie76_generated_set_is_echoed_reversed_and_closed_cleanly() {
    let (peer, port) = server("fw-hixie76", &[]);
    let run = boot(
        &["--url", &url(port), "--proto", "hixie76", "--count", "9"],
        None,
        60,
    );
    assert_status(&run, &peer, 0);
    run.assert_printed("connected to ws://");
    run.assert_printed("received 9 after ");
    run.assert_printed("all 9 echoes matched\nclosed\n");
    assert_footer(&run);
}

#[test]
fn given_message_with_spaces_and_multibyte_utf8_is_reversed_by_code_point() {
    let (peer, port) = server("fw-message", &[]);
    let run = boot(
        &[
            "--url",
            &url(port),
            "--message",
            "h\u{e9}llo w\u{f6}rld \u{1F642}\u{20ac}",
            "--count",
            "3",
            "--origin",
            "http://example.com",
        ],
        None,
        60,
    );
    assert_status(&run, &peer, 0);
    run.assert_printed("all 3 echoes matched");
    assert!(peer.log_tail(40).contains("origin=http://example.com"));
}

/// `--echo` (after `proto`) against the driving peer: the firmware sends back
/// what it gets until the peer closes; `peer_line` is what the protocol's
/// exchange leaves in the peer's log besides the echo.
fn echo_mode(name: &str, proto: &[&str], peer_line: &str) {
    let (peer, port) = server(name, &["--drive"]);
    let url = url(port);
    let mut args = vec!["--url", url.as_str()];
    args.extend(proto);
    args.push("--echo");
    let run = boot(&args, None, 60);
    assert_status(&run, &peer, 0);
    run.assert_printed("echoed 3 messages; closed");
    let log = peer.log_tail(40);
    assert!(log.contains("echo of 3000 bytes: ok"), "{log}");
    assert!(log.contains(peer_line), "{log}");
    assert!(log.contains("drive ok"), "{log}");
}

#[test]
fn echo_mode_streams_messages_back_until_the_server_closes() {
    echo_mode("fw-echo", &[], "pong b'ping!'");
}

#[test]
fn nothing_listening_retries_with_backoff_then_exits_4() {
    // Held, never listened on: every connection attempt is refused.
    let reserved = PortReservation::new();
    let port = reserved.port();
    let run = boot(
        &["--url", &url(port), "--retry", "3", "--timeout-ms", "2000"],
        None,
        60,
    );
    run.assert_status(4);
    // Backoff 100, 200, 400 ms, each wait drawn from the upper half (jitter).
    for (k, backoff) in [(1, 100), (2, 200), (3, 400)] {
        let prefix = format!("connect: connection refused; retry {k}/3 in ");
        let wait: u32 = run
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix)?.strip_suffix(" ms")?.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix:?}N ms line:\n{run}"));
        assert!(
            (backoff / 2..=backoff).contains(&wait),
            "retry {k}: {wait} ms, not within {}..={backoff}",
            backoff / 2
        );
    }
    assert!(!run.stdout.contains("retry 4/"), "a fourth retry:\n{run}");
    run.assert_printed("error: connection refused");
}

#[test]
fn ping_gateway_over_slirp_with_dhcp() {
    let run = boot(&["--ping", "10.0.2.2"], None, 60);
    run.assert_status(0);
    run.assert_printed("ping 10.0.2.2: seq 0 time ");
    run.assert_printed("ping 10.0.2.2: seq 2 time ");
    assert_footer(&run);
}

#[test]
fn static_address_and_gateway_without_dhcp() {
    let run = boot(
        &[
            "--ip",
            "10.0.2.16/24",
            "--gateway",
            "10.0.2.2",
            "--ping",
            "10.0.2.2",
        ],
        None,
        60,
    );
    run.assert_status(0);
    run.assert_printed("net: static 10.0.2.16/24");
    run.assert_printed("ping 10.0.2.2: seq 2 time ");
    assert!(!run.stdout.contains("dhcp:"), "{run}");
}

#[test]
fn ping_to_nobody_times_out_with_exit_4() {
    let run = boot(
        &[
            "--ip",
            "10.0.2.16/24",
            "--ping",
            "10.0.2.99",
            "--timeout-ms",
            "1000",
        ],
        None,
        60,
    );
    run.assert_status(4);
    run.assert_printed("error: no ping reply from 10.0.2.99 within 1000 ms");
}

/// Boots the board with a static address on a QEMU socket network whose other end
/// is a scripted Ethernet host (`eth_peer.py` with `peer_args`), and has the board
/// ping that host. Returns the host and the board's run.
fn ping_scripted_host(name: &str, peer_args: &[&str]) -> (Peer, Run) {
    let script = repo_root().join("host-bridge/tests/firmware_support/eth_peer.py");
    let args = [
        &[
            script.to_str().expect("utf-8 path"),
            "0",
            "192.168.77.1",
            "192.168.77.2",
        ][..],
        peer_args,
    ]
    .concat();
    let peer = Peer::spawn(name, "python3", &args);
    let port = peer.port();
    let net = format!("-nic socket,model=stellaris,mac=52:54:00:12:34:56,connect=127.0.0.1:{port}");
    let run = boot(
        &[
            "--ip",
            "192.168.77.2/24",
            "--ping",
            "192.168.77.1",
            "--timeout-ms",
            "3000",
        ],
        Some(&net),
        60,
    );
    (peer, run)
}

/// smoltcp answers ICMP echo requests itself: a scripted host on a QEMU socket
/// network (no slirp, no DHCP: static address) pings the board while the board
/// pings it.
#[test]
fn board_answers_ping_on_a_socket_network_with_a_static_address() {
    let (peer, run) = ping_scripted_host("fw-eth-peer", &[]);
    assert_status(&run, &peer, 0);
    run.assert_printed("ping 192.168.77.1: seq 2 time ");
    let log = peer.log_tail(40);
    for seq in 0..3 {
        assert!(
            log.contains(&format!("echo reply from 192.168.77.2 seq {seq}")),
            "the board did not answer ping {seq}:\n{log}"
        );
    }
}

#[test]
fn hixie76_echo_mode_streams_messages_back_until_the_server_closes() {
    echo_mode(
        "fw-echo-hixie76",
        &["--proto", "hixie76"],
        "close answer b'\\xff\\x00'",
    );
}

#[test]
fn echo_that_is_not_reversed_is_a_mismatch_with_exit_6() {
    let (peer, port) = server("fw-no-reverse", &["--no-reverse"]);
    let run = boot(&["--url", &url(port), "--timeout-ms", "3000"], None, 60);
    assert_status(&run, &peer, 6);
    // Messages 1 and 2 (empty, one byte) read the same both ways; 3 does not.
    run.assert_printed("received 2 after ");
    run.assert_printed("MISMATCH 3 after ");
    run.assert_printed("reply: text 125 bytes \"0123456789");
    run.assert_printed("is not the reverse of the 125 bytes sent");
    run.assert_printed("error: echo mismatch");
}

/// A frame larger than the receive FIFO makes QEMU's Stellaris model report an
/// overrun (FOV): the driver counts it, resets the FIFO and carries on. Frames
/// that arrived behind the big one are lost with the reset (here the ARP reply
/// or the first echo reply, depending on timing): `--ping` asks again every
/// second, so the run still gets its three replies.
#[test]
fn receive_fifo_overrun_is_counted_and_recovered_from() {
    let (peer, run) = ping_scripted_host("fw-eth-oversize", &["--oversize"]);
    assert_status(&run, &peer, 0);
    assert!(peer.log_tail(40).contains("sent a 2100-byte frame"));
    run.assert_printed("ping 192.168.77.1: seq 2 time ");
    run.assert_printed("overruns 1, rx errors 0, tx errors 0, fifo resets 1");
}

#[test]
fn duplicate_echo_is_caught_with_exit_6() {
    let (peer, port) = server("fw-twice", &["--twice"]);
    // One message: its echo matches, the duplicate arrives during the close.
    // `--reconnect` changes nothing: a repeated echo is an error, not an outage.
    let url = url(port);
    for extra in [None, Some("--reconnect")] {
        let mut args = vec![
            "--url",
            &url,
            "--count",
            "1",
            "--message",
            "abc",
            "--timeout-ms",
            "3000",
        ];
        args.extend(extra);
        let run = boot(&args, None, 60);
        assert_status(&run, &peer, 6);
        run.assert_printed("received 1 after ");
        run.assert_printed("error: echo mismatch: a message arrived after the last echo");
        assert!(!run.stdout.contains("outage"), "{run}");
    }
}

/// The tutorial's own tornado server replies to a binary message with a text
/// frame holding the reversed bytes (not UTF-8): the client reads it as binary.
#[test]
fn binary_echoed_in_a_text_frame_is_tolerated() {
    let (peer, port) = server("fw-binary-as-text", &["--binary-as-text"]);
    let run = boot(&["--url", &url(port), "--count", "9"], None, 60);
    assert_status(&run, &peer, 0);
    run.assert_printed("sent 7: binary 300 bytes");
    run.assert_printed("tolerated: the binary reply came in a text frame\nreceived 7 after ");
    run.assert_printed("all 9 echoes matched");
}

/// host-bridge's own reverse-echo server (`serve`), both protocols on one port.
fn host_bridge_server(name: &str) -> (Peer, u16) {
    let peer = Peer::spawn(
        name,
        env!("CARGO_BIN_EXE_host-bridge"),
        &["serve", "--listen", "127.0.0.1:0"],
    );
    let port = peer.port();
    (peer, port)
}

#[test]
fn both_protocols_against_host_bridge_serve() {
    let (peer, port) = host_bridge_server("fw-host-bridge-serve");
    for proto in ["rfc6455", "hixie76"] {
        let run = boot(
            &["--url", &url(port), "--proto", proto, "--count", "9"],
            None,
            60,
        );
        assert_status(&run, &peer, 0);
        run.assert_printed("all 9 echoes matched\nclosed\n");
        assert_footer(&run);
    }
}
