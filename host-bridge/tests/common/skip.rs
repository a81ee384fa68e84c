//! Skipping a test that this machine cannot run, loudly: cargo hides a passing
//! test's output, so the reason is also appended to `target/e2e/skipped.txt`, which
//! `ci/test.sh` prints at the end. A skip is never a silent pass.

/// Records why the calling test is skipped; the test then returns.
pub fn skip(reason: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    eprintln!("SKIP: {reason}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e");
    let _ = std::fs::create_dir_all(&dir);
    let line = format!("{} {test}: {reason}\n", env!("CARGO_CRATE_NAME"));
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("skipped.txt"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
}
