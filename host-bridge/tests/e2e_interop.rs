//! Scenario 7 of the end-to-end suite: the firmware against servers no one here
//! wrote, over QEMU's user network: the tutorial's own tornado server (ported to
//! Python 3) for RFC 6455, and eventlet's websocket module for hixie-76.

mod common;
use common::{boot, python, repo_root, Peer};

/// `script` takes `--port`; `extra` are its other arguments.
fn run_against(name: &str, script: &str, extra: &[&str], proto: &str) {
    let script = repo_root().join("ci/peers").join(script);
    let peer = Peer::spawn(
        name,
        python(),
        &[
            &[script.to_str().expect("utf-8 path"), "--port", "0"],
            extra,
        ]
        .concat(),
    );
    let port = peer.port();
    let url = format!("ws://10.0.2.2:{port}/ws");
    let run = boot(
        &["--url", &url, "--proto", proto, "--count", "12"],
        None,
        90,
    );
    assert_eq!(
        run.status,
        Some(0),
        "firmware against {name} failed:\n{run}\n--- {name} (last lines)\n{}",
        peer.log_tail(30)
    );
    run.assert_printed("connected");
    run.assert_printed("received");
}

#[test]
fn rfc6455_against_the_tutorials_tornado_server() {
    run_against(
        "tornado",
        "tornado_reverse_server.py",
        &["--address", "127.0.0.1"],
        "rfc6455",
    );
}

#[test]
fn hixie76_against_eventlet() {
    run_against("eventlet", "eventlet_hixie_server.py", &[], "hixie76");
}
