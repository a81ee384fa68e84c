//! Shared by the end-to-end tests: build the real firmware image once and boot it
//! under qemu-system-arm through `ci/qemu-run` (the same runner `cargo run` uses).
#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the firmware image (once per test binary) and returns its path.
pub fn firmware_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let root = repo_root();
        let status = Command::new(root.join("ci/cargo-firmware"))
            .arg("build")
            .status()
            .expect("run ci/cargo-firmware (bash)");
        assert!(status.success(), "firmware build failed: {status}");
        let path = Command::new(root.join("ci/cargo-firmware"))
            .arg("path")
            .output()
            .expect("ci/cargo-firmware path");
        PathBuf::from(String::from_utf8(path.stdout).expect("utf-8 path").trim())
    })
}

/// What one boot of the firmware printed and how it ended.
pub struct Run {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Fails the test with the whole log unless `needle` was printed.
    #[track_caller]
    pub fn assert_printed(&self, needle: &str) {
        assert!(
            self.stdout.contains(needle),
            "expected {needle:?} in the firmware's output:\n{self}"
        );
    }

    #[track_caller]
    pub fn assert_status(&self, expected: i32) {
        assert_eq!(
            self.status,
            Some(expected),
            "unexpected exit status:\n{self}"
        );
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status {:?}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Boots the image with `args` on the network QEMU options `net` (None: QEMU's user
/// network), killed after `timeout_s` seconds (status 124 then).
pub fn boot(args: &[&str], net: Option<&str>, timeout_s: u32) -> Run {
    let mut cmd = Command::new(repo_root().join("ci/qemu-run"));
    cmd.arg(firmware_image())
        .args(args)
        .env("FIRMWARE_TIMEOUT", timeout_s.to_string());
    if let Some(net) = net {
        cmd.env("FIRMWARE_NET", net);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run ci/qemu-run");
    Run {
        status: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}
