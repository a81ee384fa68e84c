//! The debugger: `host-bridge run --gdb` (through `ci/qemu-run`'s `FIRMWARE_GDB`)
//! starts QEMU halted with its gdb stub; gdb-multiarch attaches, stops in the app
//! where a message is sent, and the run then ends as it would without gdb.
//!
//! The stub listens on a unix socket in a fresh path rather than on a TCP port:
//! QEMU's `-gdb tcp::0` would bind a free port without telling us which, and a
//! port picked and released beforehand could be taken by a parallel test.

mod common;
use common::skip::skip;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn gdb_stops_in_the_app_where_a_message_is_sent_and_the_run_ends_zero() {
    if Command::new("gdb-multiarch")
        .arg("--version")
        .output()
        .is_err()
    {
        return skip("no gdb-multiarch (ci/setup.sh installs it)");
    }
    let image = common::firmware_image();
    let sock = std::env::temp_dir().join(format!("hb-gdb-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let log = common::unique_artifact("debugger-run", "log");
    let out_log = common::unique_artifact("debugger-run", "out");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_host-bridge"));
    cmd.args(["run", "--user-net", "--timeout", "60", "--gdb"])
        .arg(&sock)
        .arg("--image")
        .arg(image)
        .args(["--", "--count", "2"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_log).expect("create run output"))
        .stderr(std::fs::File::create(&log).expect("create run log"));
    host_bridge::child::end_with_parent(&mut cmd, nix::sys::signal::Signal::SIGTERM);
    let mut run = cmd.spawn().expect("start host-bridge run");
    let cleanup = |run: &mut std::process::Child| {
        let _ = run.kill();
        let _ = run.wait();
        let _ = std::fs::remove_file(&sock);
    };

    // QEMU makes the socket once it listens; the firmware must not run before gdb.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sock.exists() {
        if Instant::now() > deadline || run.try_wait().ok().flatten().is_some() {
            cleanup(&mut run);
            panic!(
                "no gdb socket at {}:\n{}",
                sock.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let gdb = Command::new("timeout")
        .args(["60", "gdb-multiarch", "-batch", "-nx", "-q"])
        .arg(image)
        .arg("-ex")
        .arg(format!("target remote {}", sock.display()))
        .args([
            "-ex",
            "break firmware::app::session::Session::queue_staged",
            "-ex",
            "continue",
            "-ex",
            "backtrace",
            "-ex",
            "delete",
            "-ex",
            "continue",
        ])
        .output()
        .expect("run gdb-multiarch");
    let gdb_out =
        String::from_utf8_lossy(&gdb.stdout).into_owned() + &String::from_utf8_lossy(&gdb.stderr);

    let status = run.wait().expect("wait for host-bridge run");
    let stdout = std::fs::read_to_string(&out_log).unwrap_or_default();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&sock);
    let all = format!("--- gdb\n{gdb_out}\n--- run stdout\n{stdout}\n--- run stderr\n{stderr}");

    // The exact command to attach was printed.
    assert!(
        stderr.contains(&format!("-ex 'target remote {}'", sock.display())),
        "no attach command printed:\n{all}"
    );
    // Stopped at the breakpoint, in the middle of sending a message...
    assert!(
        gdb_out.contains("Breakpoint 1, firmware::app::session::Session::queue_staged"),
        "gdb did not stop at the breakpoint:\n{all}"
    );
    // ...and the backtrace runs through the app down to main.
    let bt: Vec<&str> = gdb_out.lines().filter(|l| l.starts_with('#')).collect();
    for frame in [
        "Session::send_message",
        "reverse_echo::reverse_echo",
        "__cortex_m_rt_main",
    ] {
        assert!(
            bt.iter().any(|l| l.contains(frame)),
            "no {frame} in the backtrace:\n{all}"
        );
    }
    // Continued to the end, and the run's status is 0. (Whether gdb hears the exit
    // before QEMU closes the socket is a race: "exited normally" or "Target
    // disconnected", both fine, so gdb's own last words are not checked.)
    assert!(
        stdout.contains("all 2 echoes matched"),
        "the firmware's run did not complete:\n{all}"
    );
    assert_eq!(status.code(), Some(0), "run status:\n{all}");
}
