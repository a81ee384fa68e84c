//! The firmware sleeps (WFI) while it waits for the network instead of spinning:
//! against a server that accepts the connection and never answers, QEMU uses a
//! small fraction of one host CPU until the firmware's own timeout ends the run
//! with exit status 4. (A separate test binary: the CPU time of reaped child
//! processes is per process, so no other test may run QEMU alongside.)

mod common;
use common::{boot, Peer};

use std::time::Instant;

/// User + system CPU seconds of this process's reaped children (/proc/self/stat
/// fields 16 and 17, in clock ticks; Linux's USER_HZ is 100).
fn children_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // The command name (field 2) may hold spaces: count fields after its ')'.
    let rest = &stat[stat.rfind(')').expect("comm field") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so field N is fields[N - 3].
    let ticks: u64 = fields[13].parse::<u64>().unwrap() + fields[14].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[test]
fn waiting_for_a_silent_server_sleeps_then_times_out_with_exit_4() {
    let script = "import socket, time\n\
         s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(4)\n\
         print('listening on %s:%d' % s.getsockname(), flush=True)\n\
         held = []\n\
         while True:\n    c, _ = s.accept(); held.append(c); print('accepted, saying nothing', flush=True)\n";
    let silent = Peer::spawn("fw-silent-server", "python3", &["-c", script]);
    let port = silent.port();
    common::firmware_image(); // build (or check) the image outside the measurement
    let cpu_before = children_cpu_seconds();
    let start = Instant::now();
    let url = format!("ws://10.0.2.2:{port}/ws");
    let run = boot(&["--url", &url, "--timeout-ms", "4000"], None, 60);
    let wall = start.elapsed().as_secs_f64();
    let cpu = children_cpu_seconds() - cpu_before;
    assert_eq!(
        run.status,
        Some(4),
        "{run}\n--- server\n{}",
        silent.log_tail(10)
    );
    run.assert_printed("error: timeout: waiting for the handshake response (4000 ms)");
    assert!(wall >= 4.0, "the firmware gave up early: {wall:.2} s");
    assert!(
        cpu < 0.4 * wall,
        "QEMU used {cpu:.2} s of CPU in {wall:.2} s: the firmware busy-waits\n{run}"
    );
    eprintln!("idle wait: {cpu:.2} s CPU in {wall:.2} s wall");
}
