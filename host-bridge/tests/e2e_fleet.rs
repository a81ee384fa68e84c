//! `host-bridge fleet`: many real firmware images at once against one server, on
//! one emulated Ethernet segment (root: a Linux bridge in a namespace, DHCP) or
//! each on its own QEMU user network (not root). Boots the real image 64 times.

mod common;
use common::is_root;

use std::process::Command;

const HOST_BRIDGE: &str = env!("CARGO_BIN_EXE_host-bridge");

/// Runs `host-bridge fleet FLEET_ARGS -- FIRMWARE_ARGS`, keeps its log.
fn fleet(name: &str, fleet_args: &[&str], firmware_args: &[&str]) -> common::Run {
    common::run_logged(
        name,
        Command::new(HOST_BRIDGE)
            .args(["--quiet", "fleet", "--image"])
            .arg(common::firmware_image())
            .args(fleet_args)
            .arg("--")
            .args(firmware_args),
    )
}

#[test]
fn sixty_four_boards_each_echo_twenty_messages() {
    let run = fleet("fleet-64", &["--boards", "64"], &["--count", "20"]);
    run.assert_status(0);
    let network = if is_root() { "bridge" } else { "user network" };
    assert!(
        run.stdout
            .contains(&format!("fleet: 64 boards on the {network}"))
            && run.stdout.contains("booted 64, passed 64, failed 0"),
        "summary:\n{run}"
    );
    // Every board echoed, so the percentiles are times, not "-".
    assert!(run.stdout.contains("time to first echo: p50 "), "{run}");
    assert!(!run.stdout.contains("p99 -"), "{run}");
}

#[test]
fn a_board_that_fails_fails_the_fleet_and_shows_its_log() {
    // Nothing listens on port 1 of the server's address: every board's connect fails.
    let url = if is_root() {
        "ws://10.77.0.1:1/ws"
    } else {
        "ws://10.0.2.2:1/ws"
    };
    let run = fleet(
        "fleet-fails",
        &["--boards", "2", "--first-board", "300", "--timeout", "60"],
        &["--url", url, "--count", "1"],
    );
    assert_eq!(run.status, Some(1), "{run}");
    assert!(run.stdout.contains("passed 0, failed 2"), "{run}");
    // Each failing board's log, named by its number and MAC (from --first-board).
    assert!(
        run.stderr
            .contains("board 300 (52:54:01:00:01:2c) exited with status")
            && run.stderr.contains("board 301| firmware| "),
        "{run}"
    );
}
