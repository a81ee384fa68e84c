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
    let out = Command::new(HOST_BRIDGE)
        .arg("run")
        .arg("--image")
        .arg(image)
        .args(bridge_args)
        .arg("--")
        .args(firmware_args)
        .output()
        .expect("run host-bridge");
    let elapsed = started.elapsed();
    let run = common::Run {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    std::fs::write(artifacts_dir().join(format!("{name}.log")), run.to_string())
        .expect("write log");
    (run, elapsed)
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
    if !is_root() {
        skip::skip("the tap bridge needs root (network namespaces)");
        return;
    }
    echoes("tap-rfc6455", &[], "rfc6455");
}

#[test]
fn hixie76_over_tap_bridge() {
    if !is_root() {
        skip::skip("the tap bridge needs root (network namespaces)");
        return;
    }
    echoes("tap-hixie76", &[], "hixie76");
}

#[test]
fn impaired_wire_every_echo_in_order_exactly_once() {
    if !is_root() {
        skip::skip("the tap bridge needs root (network namespaces)");
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
