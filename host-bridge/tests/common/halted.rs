//! A `host-bridge run --gdb` started halted (QEMU's gdb stub on a unix socket in a
//! fresh path, the firmware told `--count 2`), for the tests that look at the run
//! while it is certainly under way and then let gdb run it to the end. A unix
//! socket rather than a TCP port: QEMU's `-gdb tcp::0` would not say which port,
//! and a port picked and released beforehand could be taken by a parallel test.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Whether gdb-multiarch is missing (ci/setup.sh installs it).
pub fn no_gdb() -> bool {
    Command::new("gdb-multiarch")
        .arg("--version")
        .output()
        .is_err()
}

/// The running `host-bridge run`; dropping it kills the run and removes the socket.
pub struct HaltedRun {
    pub run: Child,
    pub sock: PathBuf,
    pub image: PathBuf,
    out: PathBuf,
    log: PathBuf,
}

impl HaltedRun {
    /// Starts `host-bridge run --timeout 60 ARGS --gdb SOCK --image IMAGE --
    /// --count 2`, its output in `target/e2e/STEM-*.{out,log}`; `setup` adds to the
    /// command (its environment).
    pub fn start<S: AsRef<OsStr>>(
        stem: &str,
        args: impl IntoIterator<Item = S>,
        setup: impl FnOnce(&mut Command),
    ) -> HaltedRun {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sock = std::env::temp_dir().join(format!("hb-{stem}-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&sock);
        let image = super::firmware_image().to_path_buf();
        let out = super::unique_artifact(stem, "out");
        let log = super::unique_artifact(stem, "log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_host-bridge"));
        cmd.args(["run", "--timeout", "60"])
            .args(args)
            .arg("--gdb")
            .arg(&sock)
            .arg("--image")
            .arg(&image)
            .args(["--", "--count", "2"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("create run output"))
            .stderr(std::fs::File::create(&log).expect("create run log"));
        setup(&mut cmd);
        host_bridge::child::end_with_parent(&mut cmd, nix::sys::signal::Signal::SIGTERM);
        let run = cmd.spawn().expect("start host-bridge run");
        HaltedRun {
            run,
            sock,
            image,
            out,
            log,
        }
    }

    /// Waits (30 s at most) until the stub listens and `found(run's pid)` finds
    /// what the test looks for; fails with `what` and the run's output if the
    /// run ends or the time is up first.
    pub fn wait_for<T>(&mut self, what: &str, mut found: impl FnMut(u32) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.sock.exists() {
                if let Some(t) = found(self.run.id()) {
                    return t;
                }
            }
            if Instant::now() > deadline || self.run.try_wait().ok().flatten().is_some() {
                let _ = self.run.kill();
                let _ = self.run.wait();
                panic!("{what}:\n{}", self.texts());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Attaches gdb-multiarch (60 s at most) and gives it `commands` (`-ex`
    /// each) after `target remote`.
    pub fn gdb(&self, commands: &[&str]) -> Output {
        let mut gdb = Command::new("timeout");
        gdb.args(["60", "gdb-multiarch", "-batch", "-nx", "-q"])
            .arg(&self.image)
            .arg("-ex")
            .arg(format!("target remote {}", self.sock.display()));
        for c in commands {
            gdb.args(["-ex", c]);
        }
        gdb.output().expect("run gdb-multiarch")
    }

    /// Waits for the run to end.
    pub fn wait(&mut self) -> ExitStatus {
        self.run.wait().expect("wait for host-bridge run")
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The run's output, for failure messages.
    pub fn texts(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        )
    }
}

impl Drop for HaltedRun {
    fn drop(&mut self) {
        let _ = self.run.kill();
        let _ = self.run.wait();
        let _ = std::fs::remove_file(&self.sock);
    }
}
