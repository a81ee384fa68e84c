//! The device test rig: the real firmware image under QEMU on host-bridge's tap
//! bridge, with everything around the board under the test's control while it
//! runs: the bridge (`host-bridge bridge --no-server`, a child process) whose
//! link the rig pulls and plugs back (SIGUSR1), and host-bridge's server, run
//! by the rig inside the bridge's namespace on the address the firmware reaches
//! (192.168.76.1:8000), which it kills, restarts on the same address, freezes
//! (SIGSTOP) and thaws (SIGCONT). The firmware's console is read line by line,
//! each line stamped with when it arrived.
//!
//! Everything the rig started is stopped, and the namespace removed, when it is
//! dropped (also when a test fails). Logs go to `target/e2e/NAME-PID-*.log`.
//!
//! Needs `mod common;` at the test crate's root (the image build and skips).
#![allow(dead_code)] // each test binary uses a different part

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use host_bridge::impair::CountersSnapshot;
use host_bridge::netns;
use host_bridge::relay::RelayStats;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::common::{self, artifacts_dir, skip};

const BIN: &str = env!("CARGO_BIN_EXE_host-bridge");

/// Where the firmware reaches the server: the tap's address in the namespace
/// (the bridge's default `--host-ip`), a fixed port: the namespace is the rig's own.
pub const SERVER_IP: &str = "192.168.76.1";
pub const SERVER_PORT: u16 = 8000;
/// The board's static address (without `--dhcp`).
pub const GUEST_IP: &str = "192.168.76.2";

/// One line of a child's output and when it arrived.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// Its index among all lines of that output.
    pub index: usize,
    pub at: Instant,
    pub text: String,
}

/// The lines read so far from a pipe, and whether it has closed.
#[derive(Default)]
struct Lines {
    state: Mutex<(Vec<LogLine>, bool)>,
    grew: Condvar,
}

impl Lines {
    /// Reads `r` line by line on a thread of its own until it closes.
    fn read(r: impl Read + Send + 'static) -> Arc<Lines> {
        let lines = Arc::new(Lines::default());
        let sink = lines.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(r);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&buf);
                        let text = text.trim_end_matches(['\n', '\r']).to_owned();
                        let mut st = sink.state.lock().unwrap_or_else(|e| e.into_inner());
                        let index = st.0.len();
                        st.0.push(LogLine {
                            index,
                            at: Instant::now(),
                            text,
                        });
                        sink.grew.notify_all();
                    }
                }
            }
            let mut st = sink.state.lock().unwrap_or_else(|e| e.into_inner());
            st.1 = true;
            sink.grew.notify_all();
        });
        lines
    }

    /// The first line at or after `from` containing `pattern`, waiting up to
    /// `timeout` for it (None: not within the time, or the pipe closed first).
    fn wait(&self, from: usize, pattern: &str, timeout: Duration) -> Option<LogLine> {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = from;
        loop {
            if let Some(l) = st.0.iter().skip(next).find(|l| l.text.contains(pattern)) {
                return Some(l.clone());
            }
            next = st.0.len().max(from);
            if st.1 {
                return None;
            }
            st = self.wait_grew(st, deadline)?;
        }
    }

    /// Waits until the log grows or closes, or `deadline` (then None).
    fn wait_grew<'a>(
        &self,
        st: MutexGuard<'a, (Vec<LogLine>, bool)>,
        deadline: Instant,
    ) -> Option<MutexGuard<'a, (Vec<LogLine>, bool)>> {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        let (st, _) = self
            .grew
            .wait_timeout(st, deadline - now)
            .unwrap_or_else(|e| e.into_inner());
        Some(st)
    }

    /// Waits (up to `timeout`) until the pipe has closed.
    fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while !st.1 {
            let Some(grown) = self.wait_grew(st, deadline) else {
                return false;
            };
            st = grown;
        }
        true
    }

    fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0.len()
    }

    /// The longest time between two lines arriving.
    fn longest_pause(&self) -> Duration {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0.windows(2)
            .map(|w| w[1].at.saturating_duration_since(w[0].at))
            .max()
            .unwrap_or_default()
    }

    /// Everything so far, one line each.
    fn text(&self) -> String {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0.iter().fold(String::new(), |mut s, l| {
            s.push_str(&l.text);
            s.push('\n');
            s
        })
    }
}

/// The firmware running under QEMU (`ci/qemu-run`, its own process group).
struct Board {
    child: Child,
    out: Arc<Lines>,
    err: Arc<Lines>,
}

impl Board {
    fn kill(&mut self) {
        // The group: ci/qemu-run's `timeout` and QEMU under it.
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The rig. See the module's documentation.
pub struct DeviceRig {
    name: String,
    bridge: Child,
    bridge_out: Arc<Lines>,
    netns: String,
    firmware_net: String,
    dhcp: bool,
    link_up: bool,
    server: Option<Child>,
    server_args: Vec<String>,
    server_log: PathBuf,
    servers_started: usize,
    frozen: bool,
    board: Option<Board>,
    /// The console of the board that ran last (kept after it exited).
    last_console: Option<Arc<Lines>>,
    boots: usize,
}

/// How long the rig waits for its own helpers (bridge ready, server listening,
/// a link switch acknowledged).
const SETUP_LIMIT: Duration = Duration::from_secs(20);

impl DeviceRig {
    /// Starts the bridge with `bridge_args` (e.g. `["--impair", "loss=10%",
    /// "--seed", "7"]`, `["--dhcp"]`) and the server in its namespace. None (the
    /// test is recorded as skipped) when this machine cannot run it.
    pub fn start(name: &str, bridge_args: &[&str]) -> Option<DeviceRig> {
        Self::start_with_server(name, bridge_args, &[])
    }

    /// Same, with `server_args` for `host-bridge serve` (e.g. `["--echo"]`).
    pub fn start_with_server(
        name: &str,
        bridge_args: &[&str],
        server_args: &[&str],
    ) -> Option<DeviceRig> {
        if !netns::is_root() || !Path::new("/dev/net/tun").exists() {
            skip::skip("the device rig's bridge needs root and /dev/net/tun");
            return None;
        }
        let dhcp = bridge_args.contains(&"--dhcp");
        if dhcp
            && !Command::new("dnsmasq")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        {
            skip::skip("no dnsmasq for --dhcp (apt-get install dnsmasq-base)");
            return None;
        }
        // Build the image before anything runs: a first build takes minutes.
        common::firmware_image();
        // Logs named per process too: the same test may run in two at once.
        let name = format!("{name}-{}", std::process::id());
        let bridge_log_path = artifacts_dir().join(format!("{name}-bridge.log"));
        let bridge_log = File::create(&bridge_log_path).expect("create the bridge's log");
        let mut bridge = Command::new(BIN)
            .args(["bridge", "--no-server"])
            .args(bridge_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(bridge_log)
            .spawn()
            .expect("start host-bridge bridge");
        let bridge_out = Lines::read(bridge.stdout.take().expect("the bridge's stdout"));
        let ready = bridge_out.wait(0, "ready", SETUP_LIMIT);
        let value = |key: &str| {
            bridge_out
                .wait(0, key, Duration::ZERO)
                .and_then(|l| l.text.strip_prefix(key).map(str::to_owned))
        };
        let (netns, firmware_net) = (value("netns="), value("FIRMWARE_NET="));
        let (Some(_), Some(netns), Some(firmware_net)) = (ready, netns, firmware_net) else {
            let _ = bridge.kill();
            let _ = bridge.wait();
            panic!(
                "the bridge did not start:\n{}\n{}",
                bridge_out.text(),
                read_tail(&bridge_log_path, 30)
            );
        };
        let server_log = artifacts_dir().join(format!("{name}-server.log"));
        File::create(&server_log).expect("create the server's log");
        let mut rig = DeviceRig {
            name,
            bridge,
            bridge_out,
            netns,
            firmware_net,
            dhcp,
            link_up: true,
            server: None,
            server_args: server_args.iter().map(|s| s.to_string()).collect(),
            server_log,
            servers_started: 0,
            frozen: false,
            board: None,
            last_console: None,
            boots: 0,
        };
        rig.start_server();
        Some(rig)
    }

    /// The bridge's namespace.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The URL the firmware is given.
    pub fn url(&self) -> String {
        format!("ws://{SERVER_IP}:{SERVER_PORT}/ws")
    }

    // ---- the server ----------------------------------------------------

    /// Starts the server in the namespace and waits until it listens. Its output
    /// is appended to `target/e2e/NAME-server.log`.
    pub fn start_server(&mut self) {
        assert!(self.server.is_none(), "a server is already running");
        let log = File::options()
            .append(true)
            .open(&self.server_log)
            .expect("open the server's log");
        let listen = format!("{SERVER_IP}:{SERVER_PORT}");
        // `ip netns exec` execs the program: the child's pid is the server's, so
        // signals reach it directly.
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns, BIN, "--threads", "2", "serve"])
            .args(["--listen", &listen])
            .args(&self.server_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("start host-bridge serve in the namespace");
        self.server = Some(child);
        self.servers_started += 1;
        let deadline = Instant::now() + SETUP_LIMIT;
        while self.server_log_text().matches("Server Started").count() < self.servers_started {
            if let Some(Ok(Some(st))) = self.server.as_mut().map(Child::try_wait) {
                self.server = None;
                panic!("the server exited ({st}):\n{}", self.server_log_tail(30));
            }
            assert!(
                Instant::now() < deadline,
                "the server did not start:\n{}",
                self.server_log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server as a crash would (SIGKILL): the kernel closes its
    /// connections.
    pub fn kill_server(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        self.frozen = false;
    }

    /// Kills the server and starts a new one on the same address.
    pub fn restart_server(&mut self) {
        self.kill_server();
        self.start_server();
    }

    /// Freezes the server (SIGSTOP): its connections stay open, the kernel still
    /// acknowledges what arrives, nothing is answered.
    pub fn freeze_server(&mut self) {
        self.signal_server(Signal::SIGSTOP);
        self.frozen = true;
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn thaw_server(&mut self) {
        self.signal_server(Signal::SIGCONT);
        self.frozen = false;
    }

    fn signal_server(&self, sig: Signal) {
        let s = self.server.as_ref().expect("a running server");
        kill(Pid::from_raw(s.id() as i32), sig).expect("signal the server");
    }

    /// How many times a server was started (1 + restarts).
    pub fn servers_started(&self) -> usize {
        self.servers_started
    }

    /// The server's whole log so far (every server the rig started).
    pub fn server_log_text(&self) -> String {
        std::fs::read_to_string(&self.server_log).unwrap_or_default()
    }

    pub fn server_log_tail(&self, lines: usize) -> String {
        read_tail(&self.server_log, lines)
    }

    // ---- the cable -------------------------------------------------------

    /// Takes the link down or brings it back (SIGUSR1 to the bridge), and waits
    /// until the bridge says it did.
    pub fn set_link(&mut self, up: bool) {
        if self.link_up == up {
            return;
        }
        let from = self.bridge_out.len();
        kill(Pid::from_raw(self.bridge.id() as i32), Signal::SIGUSR1).expect("signal the bridge");
        let said = if up { "link up" } else { "link down" };
        assert!(
            self.bridge_out.wait(from, said, SETUP_LIMIT).is_some(),
            "the bridge did not say {said:?}:\n{}",
            self.bridge_out.text()
        );
        self.link_up = up;
    }

    // ---- the board -------------------------------------------------------

    /// Boots the firmware in the background with `args`, after `--url` (and
    /// `--ip`/`--gateway` unless the bridge leases by DHCP); QEMU is killed after
    /// `timeout_s` seconds (status 124).
    pub fn boot(&mut self, args: &[&str], timeout_s: u32) {
        assert!(self.board.is_none(), "a board is already running");
        let mut cmd = Command::new(common::repo_root().join("ci/qemu-run"));
        cmd.arg(common::firmware_image())
            .args(["--url", &self.url()]);
        if !self.dhcp {
            cmd.args(["--ip", &format!("{GUEST_IP}/24"), "--gateway", SERVER_IP]);
        }
        cmd.args(args)
            .env("FIRMWARE_NET", &self.firmware_net)
            .env("FIRMWARE_TIMEOUT", timeout_s.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().expect("start ci/qemu-run");
        let out = Lines::read(child.stdout.take().expect("QEMU's stdout"));
        let err = Lines::read(child.stderr.take().expect("QEMU's stderr"));
        self.last_console = Some(out.clone());
        self.board = Some(Board { child, out, err });
        self.boots += 1;
    }

    /// The console of the running board, or of the last one once it exited.
    fn console(&self) -> &Lines {
        self.last_console.as_deref().expect("a board was booted")
    }

    /// The first line of the firmware's console containing `pattern`, waiting
    /// up to `timeout` (None: not printed in time, or the board exited).
    pub fn wait_line(&self, pattern: &str, timeout: Duration) -> Option<LogLine> {
        self.console().wait(0, pattern, timeout)
    }

    /// Same, among the lines after line `index`.
    pub fn wait_line_after(
        &self,
        index: usize,
        pattern: &str,
        timeout: Duration,
    ) -> Option<LogLine> {
        self.console().wait(index + 1, pattern, timeout)
    }

    /// Like [`DeviceRig::wait_line`], failing the test with the logs when the
    /// line does not come.
    #[track_caller]
    pub fn expect_line(&self, pattern: &str, timeout: Duration) -> LogLine {
        self.wait_line(pattern, timeout).unwrap_or_else(|| {
            panic!(
                "the firmware did not print {pattern:?} within {timeout:?}:\n{}\n--- server\n{}",
                self.board_log(),
                self.server_log_tail(20)
            )
        })
    }

    /// The firmware's console so far (the last board's, once it exited).
    pub fn board_log(&self) -> String {
        self.last_console
            .as_ref()
            .map(|c| c.text())
            .unwrap_or_default()
    }

    /// The longest the last board's console stayed quiet, on the host's clock
    /// (the board's own clock loses ticks when the host is busy): how long an
    /// outage held the run up, since a running board prints every echo.
    pub fn longest_pause(&self) -> Duration {
        self.last_console
            .as_ref()
            .map(|c| c.longest_pause())
            .unwrap_or_default()
    }

    /// Whether the board is still running.
    pub fn board_running(&mut self) -> bool {
        self.board
            .as_mut()
            .is_some_and(|b| matches!(b.child.try_wait(), Ok(None)))
    }

    /// Waits for the board to exit (killing it after `timeout`); returns its
    /// status and whole log, also written to `target/e2e/NAME-boardN.log`.
    pub fn wait_exit(&mut self, timeout: Duration) -> common::Run {
        let mut board = self.board.take().expect("a board was booted");
        let deadline = Instant::now() + timeout;
        let status = loop {
            match board.child.try_wait() {
                Ok(Some(st)) => break st.code(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    board.kill();
                    break None;
                }
            }
        };
        board.out.wait_closed(Duration::from_secs(5));
        board.err.wait_closed(Duration::from_secs(5));
        let run = common::Run {
            status,
            stdout: board.out.text(),
            stderr: board.err.text(),
        };
        let log = artifacts_dir().join(format!("{}-board{}.log", self.name, self.boots));
        let _ = std::fs::write(log, run.to_string());
        run
    }

    // ---- the end ---------------------------------------------------------

    /// Stops everything; returns the relay's frame counters (printed by the
    /// bridge as it exits) and checks that its namespace is gone.
    pub fn finish(mut self) -> RelayStats {
        self.stop_children();
        let text = self.bridge_out.text();
        let find = |prefix: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(parse_counters)
                .unwrap_or_else(|| panic!("no {prefix:?} counters from the bridge:\n{text}"))
        };
        let stats = RelayStats {
            to_guest: find("to guest:"),
            to_host: find("to host:"),
        };
        assert!(
            !netns::exists(&self.netns),
            "namespace {} left behind",
            self.netns
        );
        stats
    }

    /// Board, server, then bridge (SIGTERM: it removes its namespace and prints
    /// its counters; SIGKILL and `ip netns del` if it does not end).
    fn stop_children(&mut self) {
        if let Some(mut b) = self.board.take() {
            b.kill();
        }
        if let (true, Some(s)) = (self.frozen, &self.server) {
            // A stopped process takes SIGKILL too, but don't leave it to chance.
            let _ = kill(Pid::from_raw(s.id() as i32), Signal::SIGCONT);
        }
        self.kill_server();
        let pid = Pid::from_raw(self.bridge.id() as i32);
        if matches!(self.bridge.try_wait(), Ok(None)) {
            let _ = kill(pid, Signal::SIGTERM);
            if !self.bridge_out.wait_closed(Duration::from_secs(15)) {
                let _ = self.bridge.kill();
            }
        }
        let _ = self.bridge.wait();
        if netns::exists(&self.netns) {
            let _ = netns::ip(&["netns", "del", &self.netns]);
        }
    }
}

impl Drop for DeviceRig {
    fn drop(&mut self) {
        self.stop_children();
    }
}

/// The last `lines` lines of a log file.
fn read_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One direction's counters as the bridge prints them (the order of
/// `CountersSnapshot`'s `Display` in host-bridge's impair.rs).
pub fn parse_counters(text: &str) -> Option<CountersSnapshot> {
    if !text.contains("link down") {
        return None; // not the format this reads
    }
    let nums = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    let [frames_in, bytes_in, frames_out, bytes_out, lost, duplicated, reordered, corrupted, overflow, undeliverable, pending_at_stop, link_down] =
        nums[..]
    else {
        return None;
    };
    Some(CountersSnapshot {
        frames_in,
        bytes_in,
        frames_out,
        bytes_out,
        lost,
        duplicated,
        reordered,
        corrupted,
        overflow,
        undeliverable,
        pending_at_stop,
        link_down,
    })
}

/// The stack high-water mark the firmware prints at exit (`stack: N of M bytes
/// used; ...`), in bytes.
pub fn stack_high_water(log: &str) -> Option<u32> {
    log.lines()
        .find_map(|l| l.strip_prefix("stack: "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
}

/// Checks that the firmware's log shows every echo 1..=`count` received exactly
/// once, in order (`received N after ...` lines; a message sent again after an
/// outage is sent twice but must be received once).
pub fn echoes_in_order(log: &str, count: u32) -> Result<(), String> {
    let got: Vec<u32> = log
        .lines()
        .filter_map(|l| l.strip_prefix("received "))
        .filter_map(|rest| rest.split_once(" after ").map(|(n, _)| n))
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    if let Some(at) = got.iter().zip(1..).position(|(&n, want)| n != want) {
        return Err(format!(
            "echo {} was reported as {} (after {} in order)",
            at + 1,
            got[at],
            at
        ));
    }
    if got.len() != count as usize {
        return Err(format!("{} echoes received, {count} expected", got.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_bridge_and_the_firmware_print() {
        let line = " 12 frames in (900 bytes), 10 out (800 bytes); lost 1, duplicated 0, reordered 0, corrupted 0, overflow 0, undeliverable 0, pending at stop 0, link down 1";
        let c = parse_counters(line).expect("counters");
        assert_eq!(
            (c.frames_in, c.bytes_out, c.lost, c.link_down),
            (12, 800, 1, 1)
        );
        assert_eq!(parse_counters("12 frames in"), None);
        let log = "received 1 after 3 ms: reversed ok (uptime 90 ms)\nsent 2: text 1 bytes \"0\"\nreceived 2 after 1 ms: reversed ok\nstack: 6200 of 20480 bytes used; uptime 99 ms; exit 0\n";
        assert_eq!(stack_high_water(log), Some(6200));
        assert_eq!(echoes_in_order(log, 2), Ok(()));
        assert!(echoes_in_order(log, 3).is_err());
        let twice = "received 1 after 3 ms\nreceived 1 after 3 ms\n";
        assert!(echoes_in_order(twice, 2).is_err());
        let swapped = "received 2 after 3 ms\nreceived 1 after 3 ms\n";
        assert!(echoes_in_order(swapped, 2).is_err());
    }
}
