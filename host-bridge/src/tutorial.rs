//! `host-bridge` with no command, which is what `cargo run` at the repository's root
//! starts: the tutorial end to end. The firmware image is built first with
//! `ci/cargo-firmware build` (cargo decides: nothing to do when the image is up to
//! date, a build when it is missing or stale), then [`crate::run::run`] starts the
//! server and boots the board as `host-bridge run -- ARGS` does.

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};

/// Builds (or refreshes) the firmware image with the repository's `ci/cargo-firmware`.
/// Its output (cargo's progress, or why no toolchain fits) goes to our stderr.
pub fn build_image(repo: &Path) -> Result<()> {
    let script = repo.join("ci/cargo-firmware");
    tracing::info!("firmware image: {} build", script.display());
    let status = Command::new(&script)
        .arg("build")
        // Cargo's progress on our stderr, never mixed into the logs on stdout.
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .with_context(|| format!("run {}", script.display()))?;
    ensure!(
        status.success(),
        "building the firmware image failed ({status}): see cargo's messages above"
    );
    Ok(())
}
