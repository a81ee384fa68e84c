//! The debugger: `host-bridge run --gdb` (through `ci/qemu-run`'s `FIRMWARE_GDB`)
//! starts QEMU halted with its gdb stub; gdb-multiarch attaches, stops in the app
//! where a message is sent, and the run then ends as it would without gdb.
//!
//! The stub listens on a unix socket in a fresh path (`common::halted`).

mod common;
use common::halted::{no_gdb, HaltedRun};
use common::skip::skip;

#[test]
fn gdb_stops_in_the_app_where_a_message_is_sent_and_the_run_ends_zero() {
    if no_gdb() {
        return skip("no gdb-multiarch (ci/setup.sh installs it)");
    }
    let mut run = HaltedRun::start("debugger-run", ["--user-net"], |_| {});
    // QEMU makes the socket once it listens; the firmware must not run before gdb.
    let sock = run.sock.clone();
    run.wait_for(
        &format!("no gdb socket at {}", sock.display()),
        |_| Some(()),
    );

    let gdb = run.gdb(&[
        "break firmware::app::session::Session::queue_staged",
        "continue",
        "backtrace",
        "delete",
        "continue",
    ]);
    let gdb_out =
        String::from_utf8_lossy(&gdb.stdout).into_owned() + &String::from_utf8_lossy(&gdb.stderr);

    let status = run.wait();
    let stdout = run.stdout();
    let stderr = run.stderr();
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
