//! Scenarios 1 and 2 of the end-to-end suite: both protocols over both networks
//! (QEMU's user network; host-bridge's tap bridge), then the bridge with a bad wire.
//! Each runs `host-bridge run`, the README's demo path: it starts the server (in its
//! own network namespace on the bridge), boots the real image and exits with the
//! firmware's status.

mod common;
use common::skip;
use common::{artifacts_dir, is_root};

use std::process::Command;
use std::time::{Duration, Instant};

const HOST_BRIDGE: &str = env!("CARGO_BIN_EXE_host-bridge");

/// Runs `host-bridge run BRIDGE_ARGS -- FIRMWARE_ARGS`; returns its output and time.
fn run(name: &str, bridge_args: &[&str], firmware_args: &[&str]) -> (common::Run, Duration) {
    let image = common::firmware_image();
    let started = Instant::now();
    let run = common::run_logged(
        name,
        Command::new(HOST_BRIDGE)
            .arg("run")
            .arg("--image")
            .arg(image)
            .args(bridge_args)
            .arg("--")
            .args(firmware_args),
    );
    (run, started.elapsed())
}

/// Whether the tap bridge can be made here (root: network namespaces); else the
/// test says it is skipped.
fn bridge_possible() -> bool {
    if !is_root() {
        skip::skip("the tap bridge needs root (network namespaces)");
    }
    is_root()
}

fn echoes(name: &str, bridge_args: &[&str], proto: &str) -> Duration {
    let (run, elapsed) = run(name, bridge_args, &["--proto", proto, "--count", "10"]);
    run.assert_status(0);
    run.assert_printed("connected");
    run.assert_printed("received");
    elapsed
}

#[test]
fn rfc6455_over_user_network() {
    echoes("user-rfc6455", &["--user-net"], "rfc6455");
}

#[test]
fn hixie76_over_user_network() {
    echoes("user-hixie76", &["--user-net"], "hixie76");
}

#[test]
fn rfc6455_over_tap_bridge() {
    if !bridge_possible() {
        return;
    }
    echoes("tap-rfc6455", &[], "rfc6455");
}

#[test]
fn hixie76_over_tap_bridge() {
    if !bridge_possible() {
        return;
    }
    echoes("tap-hixie76", &[], "hixie76");
}

#[test]
fn impaired_wire_every_echo_in_order_exactly_once() {
    if !bridge_possible() {
        return;
    }
    let firmware = ["--count", "30", "--timeout-ms", "30000"];
    let (clean, clean_time) = run("tap-clean", &[], &firmware);
    clean.assert_status(0);
    let pcap = artifacts_dir().join("impaired.pcap");
    let pcap = pcap.to_str().expect("utf-8 path");
    let (bad, bad_time) = run(
        "tap-impaired",
        &[
            "--impair",
            "loss=10%,dup=2%,reorder=5%,delay=20ms,jitter=10ms",
            "--seed",
            "7",
            "--pcap",
            pcap,
        ],
        &firmware,
    );
    // The firmware checks each reply is the reverse of the message it just sent,
    // in order, and exits 0 only when all 30 matched exactly once.
    bad.assert_status(0);
    assert_eq!(
        bad.stdout.matches("received").count(),
        clean.stdout.matches("received").count(),
        "{bad}"
    );
    eprintln!(
        "impaired wire (10% loss, 2% dup, 5% reorder, 20±10 ms): {:.2} s vs clean {:.2} s ({:.1}x)",
        bad_time.as_secs_f64(),
        clean_time.as_secs_f64(),
        bad_time.as_secs_f64() / clean_time.as_secs_f64()
    );
}

/// `--window 16` on the bad wire, both protocols: messages go out ahead of their
/// echoes (message 2 is sent before message 1's echo is in) and still every echo
/// comes back once, in order (the firmware checks each against the message it
/// awaited and exits 0 only when all matched).
#[test]
fn window_of_sixteen_on_an_impaired_wire_every_echo_once_in_order() {
    if !bridge_possible() {
        return;
    }
    for proto in ["rfc6455", "hixie76"] {
        let (run, _) = run(
            &format!("tap-window-{proto}"),
            &["--impair", "loss=10%,dup=2%,reorder=5%", "--seed", "7"],
            &["--proto", proto, "--count", "200", "--window", "16"],
        );
        run.assert_status(0);
        let received: Vec<&str> = run
            .stdout
            .lines()
            .filter_map(|line| line.split("received ").nth(1))
            .filter_map(|rest| rest.split(' ').next())
            .collect();
        let in_order: Vec<String> = (1..=200).map(|n| n.to_string()).collect();
        assert_eq!(received, in_order, "{run}");
        let sent_2 = run.stdout.find("sent 2:").expect("message 2 sent");
        let received_1 = run.stdout.find("received 1 ").expect("echo 1 received");
        assert!(
            sent_2 < received_1,
            "no message sent ahead of an echo:\n{run}"
        );
    }
}

/// The round trips the firmware logged (`received N after X ms`), in order.
fn echo_times_ms(stdout: &str) -> Vec<u32> {
    stdout
        .lines()
        .filter_map(|l| {
            let after = l.split("received ").nth(1)?.split(" after ").nth(1)?;
            after.split(" ms").next()?.trim().parse().ok()
        })
        .collect()
}

/// Issue 17: the board's TCP resends a lost frame after tens of milliseconds, not
/// RFC 6298's 1 s. smoltcp 0.14 has no knob for its minimum RTO: this is the check
/// that the patched copy (firmware/vendor/smoltcp/PATCHED.md) and its setting in
/// .cargo/config.toml are in effect. Only the board's frames are lost, so every
/// stall is the board's own retransmission timer; with a 1 s floor each one costs at
/// least 1000 ms (checked: an image built with SMOLTCP_RTTE_MIN_RTO=1000 fails here).
#[test]
fn lost_frames_are_recovered_in_tens_of_milliseconds() {
    if !bridge_possible() {
        return;
    }
    let count = 60;
    let (run, _) = run(
        "tap-board-loss",
        &["--impair-to-host", "loss=10%", "--seed", "4"],
        &[
            "--count",
            &count.to_string(),
            "--message",
            "lost and found",
            "--timeout-ms",
            "30000",
        ],
    );
    run.assert_status(0);
    let waits = echo_times_ms(&run.stdout);
    assert_eq!(waits.len(), count, "{run}");
    // At least one echo waited for a resend (a clean one takes about 1 ms), or this
    // run tested nothing: 10% of some 120 frames are lost.
    let slowest = waits.iter().copied().max().unwrap_or(0);
    assert!(
        slowest >= 15,
        "no echo waited for a resend: {waits:?}\n{run}"
    );
    // Even four losses of the same frame in a row (20+40+80+160 ms of back-off)
    // stay under this; one loss with a 1 s floor does not.
    assert!(
        slowest < 500,
        "an echo waited {slowest} ms: the minimum RTO is not in the tens of ms: {waits:?}\n{run}"
    );
}
