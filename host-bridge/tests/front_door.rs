//! The front door is `cargo run`: in `firmware/` it builds the image for the board
//! and boots it under QEMU (firmware/.cargo/config.toml); at the root it runs the
//! tutorial (host-bridge with no command); and where the board cannot be built, the
//! build stops with one message that says what to do (firmware/tools/rustc-gate).
//!
//! These tests run cargo as a user would, inside the test. They share the
//! repository's target/ (warm: ci/test.sh builds the image and the firmware's dev
//! build before the tests run); cargo takes the build directory's lock only while
//! it builds, so the nested cargo waits at most for another build, and every nested
//! run is bounded by `timeout` in case a cargo holds the lock while tests run.

mod common;
use common::repo_root;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BOARD: &str = "thumbv7m-none-eabi";

/// `cargo ARGS` in `dir`, ended after `timeout_s`, with the environment a user's
/// shell would have (none of the test runner's RUSTFLAGS or wrappers).
fn cargo(dir: &Path, args: &[&str], timeout_s: u32, env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", &timeout_s.to_string(), "cargo"])
        .args(args)
        .current_dir(dir);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    host_bridge::child::end_with_parent(&mut cmd, nix::sys::signal::Signal::SIGTERM);
    let out = cmd.output().expect("run cargo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !(out.status.code() == Some(124) && stderr.contains("Blocking waiting for file lock")),
        "the nested cargo waited for the build directory's lock until its timeout:\n{stderr}"
    );
    out
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The active toolchain's sysroot (`rustc --print sysroot`).
fn sysroot() -> PathBuf {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("run rustc");
    assert!(out.status.success(), "rustc --print sysroot failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Whether the active toolchain can build for the board (rustup's target installed).
fn has_board_target() -> bool {
    sysroot()
        .join("lib/rustlib")
        .join(BOARD)
        .join("lib")
        .is_dir()
}

#[test]
fn firmware_cargo_run_help_prints_the_usage_and_exits_zero() {
    if !has_board_target() {
        common::skip::skip("rustup's thumbv7m-none-eabi target is not installed");
        return;
    }
    let out = cargo(
        &repo_root().join("firmware"),
        &["run", "-q", "--", "--help"],
        280,
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The board's own usage text, printed by the image booted under QEMU.
    assert!(
        stdout.contains(firmware::config::USAGE),
        "no usage text:\n{}",
        text(&out)
    );
    assert!(
        stdout.contains("on lm3s6965evb, mac 52:54:00:12:34:56"),
        "no banner: not the board's image?\n{}",
        text(&out)
    );
}

#[test]
fn root_cargo_run_count_3_runs_the_tutorial_to_success() {
    let out = cargo(&repo_root(), &["run", "-q", "--", "--count", "3"], 280, &[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Both logs: the board's (stdout) and the server's (stderr).
    for line in [
        ": \"--count\"\nfirmware| arg ", // passed on, after the added --url (and --ip)
        "firmware| all 3 echoes matched",
        "firmware| closed",
    ] {
        assert!(stdout.contains(line), "no {line:?}:\n{}", text(&out));
    }
    for line in ["new connection from", "sending back message to"] {
        assert!(stderr.contains(line), "no {line:?}:\n{}", text(&out));
    }
}

/// A toolchain without the board's target, made honestly: the real rustc with a
/// sysroot of its own that holds the host's libraries and nothing for the board.
/// Removed when dropped.
struct NoBoardToolchain {
    dir: PathBuf,
}

impl NoBoardToolchain {
    fn new() -> NoBoardToolchain {
        let dir = common::unique_artifact("no-board-toolchain", "d");
        let real = sysroot();
        let host = host_triple();
        let rustlib = dir.join("sysroot/lib/rustlib");
        std::fs::create_dir_all(&rustlib).expect("create the sysroot");
        std::os::unix::fs::symlink(real.join("lib/rustlib").join(&host), rustlib.join(&host))
            .expect("link the host's libraries");
        let rustc = dir.join("rustc");
        std::fs::write(
            &rustc,
            format!(
                "#!/bin/sh\nexec '{}' --sysroot '{}' \"$@\"\n",
                real.join("bin/rustc").display(),
                dir.join("sysroot").display()
            ),
        )
        .expect("write the rustc script");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&rustc, std::fs::Permissions::from_mode(0o755))
            .expect("make it executable");
        NoBoardToolchain { dir }
    }

    fn rustc(&self) -> PathBuf {
        self.dir.join("rustc")
    }

    fn target_dir(&self) -> PathBuf {
        self.dir.join("target")
    }
}

impl Drop for NoBoardToolchain {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn host_triple() -> String {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    let info = String::from_utf8_lossy(&out.stdout).into_owned();
    info.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

/// Fails unless `out` failed with exactly one `needle` message and no rustc error.
#[track_caller]
fn assert_one_clear_message(out: &Output, needle: &str, hints: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{}", text(out));
    assert_eq!(stderr.matches(needle).count(), 1, "{}", text(out));
    for hint in hints {
        assert!(stderr.contains(hint), "no {hint:?}:\n{}", text(out));
    }
    assert!(!stderr.contains("error["), "rustc's errors:\n{}", text(out));
}

#[test]
fn missing_board_target_stops_with_one_message_saying_what_to_do() {
    let toolchain = NoBoardToolchain::new();
    let rustc = toolchain.rustc();
    let target = toolchain.target_dir();
    let env = [
        ("RUSTC", rustc.as_path()),
        ("CARGO_TARGET_DIR", target.as_path()),
    ];
    let firmware = repo_root().join("firmware");
    let out = cargo(&firmware, &["run", "--", "--help"], 280, &env);
    assert_one_clear_message(
        &out,
        "thumbv7m-none-eabi is not installed",
        &[
            "rustup target add thumbv7m-none-eabi",
            "ci/cargo-firmware run -- ARGS",
        ],
    );
    // The same build without the gate (an empty RUSTC_WRAPPER turns it off) fails
    // in rustc: the simulated toolchain really lacks the target.
    let empty = Path::new("");
    let ungated = [env[0], env[1], ("RUSTC_WRAPPER", empty)];
    let out = cargo(&firmware, &["build"], 280, &ungated);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("error[E0463]: can't find crate for `core`"),
        "{}",
        text(&out)
    );
}

#[test]
fn host_build_of_the_firmware_stops_with_one_message_saying_what_to_do() {
    let host = host_triple();
    let out = cargo(
        &repo_root().join("firmware"),
        &["build", "--target", &host],
        280,
        &[],
    );
    assert_one_clear_message(
        &out,
        "the firmware's binary runs on the board only",
        &[
            "cargo test -p firmware --lib",
            "ci/cargo-firmware run -- ARGS",
        ],
    );
}
