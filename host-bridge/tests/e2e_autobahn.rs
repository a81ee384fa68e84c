//! Scenario 8 of the end-to-end suite: conformance, judged by the Autobahn
//! TestSuite. Its fuzzing client tests host-bridge's server (`serve --echo`), and
//! its fuzzing server tests the firmware's `--autobahn` mode over QEMU's user
//! network. Every case must end OK, NON-STRICT or INFORMATIONAL.
//!
//! wstest is Python 2 only: ci/setup.sh installs it into target/autobahn-venv from
//! the machine's Python 2.7 when there is one. Where there is none the tests say
//! SKIP and why.

mod common;
use common::skip;
use common::{artifacts_dir, repo_root, Peer};

use std::path::{Path, PathBuf};
use std::process::Command;

const HOST_BRIDGE: &str = env!("CARGO_BIN_EXE_host-bridge");

fn wstest_python() -> Option<PathBuf> {
    let python = repo_root().join("target/autobahn-venv/bin/python");
    python.exists().then_some(python)
}

fn wstest_args(mode: &str, spec: &Path) -> Vec<String> {
    let wrapper = repo_root().join("ci/peers/wstest_loopback.py");
    vec![
        wrapper.display().to_string(),
        "-m".into(),
        mode.into(),
        "-s".into(),
        spec.display().to_string(),
        "--webport".into(),
        "0".into(),
    ]
}

/// What a case's own report says about how its connection ended (for a failure's
/// message: a close handshake that timed out reads differently from a dropped TCP).
fn why_unclean(outdir: &Path, result: &serde_json::Value) -> String {
    let Some(file) = result["reportfile"].as_str() else {
        return String::new();
    };
    let Ok(text) = std::fs::read_to_string(outdir.join(file)) else {
        return String::new();
    };
    let Ok(case) = serde_json::from_str::<serde_json::Value>(&text) else {
        return String::new();
    };
    let fields = [
        "wasNotCleanReason",
        "wasCloseHandshakeTimeout",
        "wasServerConnectionDropTimeout",
        "droppedByMe",
        "closedByMe",
        "duration",
    ];
    let said: Vec<String> = fields.iter().map(|f| format!("{f}={}", case[*f])).collect();
    format!(" [{}]", said.join(", "))
}

/// Reads an Autobahn report's index.json and checks every case's outcome.
/// Returns (cases, per-outcome counts) or panics listing the failures, followed
/// by `context` (the other side's log: why it ended a connection).
fn check_report(outdir: &Path, agent: &str, context: &str) -> String {
    let index = outdir.join("index.json");
    let text = std::fs::read_to_string(&index)
        .unwrap_or_else(|e| panic!("no Autobahn report at {}: {e}", index.display()));
    let report: serde_json::Value = serde_json::from_str(&text).expect("index.json is JSON");
    let cases = report
        .get(agent)
        .and_then(|c| c.as_object())
        .unwrap_or_else(|| panic!("no results for agent {agent} in {}", index.display()));
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let mut failures = Vec::new();
    for (case, result) in cases {
        let behavior = result["behavior"].as_str().unwrap_or("?");
        let close = result["behaviorClose"].as_str().unwrap_or("?");
        *counts.entry(behavior.to_string()).or_default() += 1;
        let fine = |b: &str| matches!(b, "OK" | "NON-STRICT" | "INFORMATIONAL");
        if !fine(behavior) || !(fine(close) || close == "UNCLEAN" && behavior == "INFORMATIONAL") {
            failures.push(format!(
                "{case}: {behavior} (close {close}){}",
                why_unclean(outdir, result)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} Autobahn cases failed for {agent} (report: {}):\n{}\n{context}",
        failures.len(),
        cases.len(),
        outdir.display(),
        failures.join("\n")
    );
    let summary = format!("{agent}: {} cases, {counts:?}", cases.len());
    eprintln!("Autobahn {summary}");
    summary
}

#[test]
fn server_passes_autobahn_fuzzing_client() {
    let Some(python) = wstest_python() else {
        skip::skip("no Autobahn TestSuite (target/autobahn-venv): this machine has no Python 2.7");
        return;
    };
    let server = Peer::spawn(
        "autobahn-echo-server",
        HOST_BRIDGE,
        &[
            "serve",
            "--echo",
            "--quiet",
            "--listen",
            "127.0.0.1:0",
            "--max-message",
            "16777216",
        ],
    );
    let port = server.port();
    let dir = artifacts_dir().join("autobahn-server");
    std::fs::create_dir_all(&dir).expect("report dir");
    let outdir = dir.join("report");
    let spec = dir.join("fuzzingclient.json");
    let spec_json = serde_json::json!({
        "outdir": outdir,
        "servers": [{ "agent": "host-bridge", "url": format!("ws://127.0.0.1:{port}/ws") }],
        // Sections 1-7 and 10 whole; of section 9 (performance) the sizes up to
        // 1 MiB, which fit CI's time.
        "cases": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*",
                  "9.1.1", "9.1.2", "9.1.3", "9.2.1", "9.2.2", "9.2.3",
                  "9.3.1", "9.4.1", "9.5.1", "9.6.1", "9.7.1", "9.8.1"],
        "exclude-cases": [],
        "exclude-agent-cases": {}
    });
    std::fs::write(&spec, spec_json.to_string()).expect("write spec");
    let status = Command::new(python)
        .args(wstest_args("fuzzingclient", &spec))
        .current_dir(&dir)
        .status()
        .expect("run wstest");
    assert!(status.success(), "wstest fuzzingclient failed: {status}");
    // The server logs (warnings, with --quiet) every connection it drops
    // without a closing handshake, and why.
    let server_log = format!("--- host-bridge serve\n{}", server.log_tail(40));
    check_report(&outdir, "host-bridge", &server_log);
}

#[test]
fn firmware_passes_autobahn_fuzzing_server() {
    let Some(python) = wstest_python() else {
        skip::skip("no Autobahn TestSuite (target/autobahn-venv): this machine has no Python 2.7");
        return;
    };
    let dir = artifacts_dir().join("autobahn-firmware");
    std::fs::create_dir_all(&dir).expect("report dir");
    let outdir = dir.join("report");
    let spec = dir.join("fuzzingserver.json");
    let spec_json = serde_json::json!({
        // Port 0: any free port, which the wrapper prints (0 also turns off
        // wstest's check of the Host header's port).
        "url": "ws://127.0.0.1:0",
        "outdir": outdir,
        "cases": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"],
        "exclude-cases": [],
        "exclude-agent-cases": {}
    });
    std::fs::write(&spec, spec_json.to_string()).expect("write spec");
    let mut args = wstest_args("fuzzingserver", &spec);
    // The peer here is an emulated board, which a busy host pauses now and then:
    // its kill bound (0.5-10 s a case) is stretched to what the firmware's own
    // waits allow (see ci/peers/wstest_loopback.py).
    args.extend(["--kill-scale".into(), "10".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let fuzzing_server = Peer::spawn("autobahn-fuzzing-server", python, &args);
    let port = fuzzing_server.port();
    let url = format!("ws://10.0.2.2:{port}");
    let run = common::boot(&["--autobahn", &url, "--timeout-ms", "20000"], None, 1200);
    std::fs::write(dir.join("firmware.log"), run.to_string()).expect("write log");
    assert_eq!(
        run.status,
        Some(0),
        "{run}\n--- wstest\n{}",
        fuzzing_server.log_tail(30)
    );
    let firmware_log = format!(
        "--- the firmware's log: {}",
        dir.join("firmware.log").display()
    );
    check_report(&outdir, "firmware", &firmware_log);
}
