//! Faults of the harness itself, with the real firmware image under the real QEMU:
//! `host-bridge run` SIGKILLed (QEMU dies with it; its namespace and tap, unnamed
//! once set up, go with it; the next start removes its socket directory, and says
//! so), QEMU killed under a run (the run says
//! so and ends at once), SIGINT or SIGTERM to a run (nothing left behind), and two
//! runs at once with default options (both pass); and a test process interrupted
//! (Ctrl-C to its group, or SIGTERM to it alone) leaves no QEMU or server behind.
//!
//! Each test that kills a run gives its runs a namespace prefix of its own
//! (`HOST_BRIDGE_NETNS_PREFIX`), so that only its own next start can reap what they
//! leave: other tests start bridges in parallel.

mod common;
use common::skip;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use host_bridge::netns;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_host-bridge");

fn can_run_bridge() -> bool {
    if !netns::is_root() || !Path::new("/dev/net/tun").exists() {
        skip::skip("the bridge needs root and /dev/net/tun");
        return false;
    }
    true
}

/// A namespace prefix no other test process uses.
fn own_prefix() -> String {
    format!("hbt{}", std::process::id())
}

/// A `host-bridge run` started as a shell starts a job: in a process group of its
/// own. Its stdout and stderr lines arrive on `lines`; SIGKILLed on drop.
struct RunJob {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl RunJob {
    fn start(prefix: Option<&str>, firmware_args: &[&str]) -> RunJob {
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--image"])
            .arg(common::firmware_image())
            .arg("--")
            .args(firmware_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(prefix) = prefix {
            cmd.env("HOST_BRIDGE_NETNS_PREFIX", prefix);
        }
        let mut child = cmd.spawn().expect("spawn host-bridge run");
        let (tx, lines) = channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(l);
            }
        });
        RunJob {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a line containing `needle`.
    fn wait_line(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self.seen.iter().any(|l| l.contains(needle)) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!(
                    "no line with {needle:?} within {limit:?}:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the run to end; returns its exit code and how long that took.
    fn wait_exit(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                // Collect what is still in the pipes.
                std::thread::sleep(Duration::from_millis(100));
                self.seen.extend(self.lines.try_iter());
                return (st.code(), start.elapsed());
            }
            assert!(
                start.elapsed() < limit,
                "host-bridge run did not end within {limit:?}:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        self.seen.join("\n")
    }
}

impl Drop for RunJob {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The parent pid of process `pid` (None once it is gone or a zombie).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" {
        return None;
    }
    fields.next()?.parse().ok()
}

/// Every live process whose ancestry includes `root`.
fn descendants(root: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let mut p = pid;
        while let Some(parent) = parent_of(p) {
            if parent == root {
                found.push(pid);
                break;
            }
            if parent <= 1 {
                break;
            }
            p = parent;
        }
    }
    found
}

fn is_alive(pid: u32) -> bool {
    parent_of(pid).is_some()
}

fn command_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The QEMU process under `run` (through ci/qemu-run's `timeout`).
fn qemu_under(run: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(q) = descendants(run)
            .into_iter()
            .find(|&p| command_name(p).starts_with("qemu-system"))
        {
            return q;
        }
        assert!(Instant::now() < deadline, "no QEMU under {run}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Namespaces whose names start with `prefix-PID-`.
fn namespaces_of(prefix: &str, pid: u32) -> Vec<String> {
    let ours = format!("{prefix}-{pid}-");
    std::fs::read_dir(netns::NETNS_DIR)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&ours))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until none of `pids` runs any more; returns those still running after `limit`.
fn wait_gone(pids: &[u32], limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| is_alive(p)).collect();
        if alive.is_empty() || Instant::now() > deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A long run: the firmware keeps echoing for minutes unless something stops it.
const LONG_RUN: &[&str] = &["--count", "1000000"];

/// The namespaces (as `net:[INODE]`, the form of `/proc/PID/ns/net`) that process
/// `pid` holds open as files: nsfs files (an unnamed namespace's file reads back
/// as `/`, so they are told by their filesystem, that of `/proc/self/ns/net`).
fn netns_fds(pid: u32) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let nsfs = std::fs::metadata("/proc/self/ns/net").expect("nsfs").dev();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::metadata(e.path()).ok())
                .filter(|m| m.dev() == nsfs)
                .map(|m| format!("net:[{}]", m.ino()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether process `pid` is in, or holds open, network namespace `ns` (`net:[INODE]`).
fn in_or_holds(pid: u32, ns: &str) -> bool {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|l| l.to_string_lossy() == ns)
        || netns_fds(pid).iter().any(|l| l == ns)
}

#[test]
fn run_killed_with_sigkill_takes_qemu_along_and_leaves_no_namespace() {
    if !can_run_bridge() {
        return;
    }
    let prefix = own_prefix();
    let mut run = RunJob::start(Some(&prefix), LONG_RUN);
    run.wait_line("firmware| connected", Duration::from_secs(60));
    let qemu = qemu_under(run.pid());
    // Set up, the run gave up root and its namespace's name: the namespace lives only
    // as long as the run's descriptors (no root needed to take it down).
    let named = namespaces_of(&prefix, run.pid());
    assert!(
        named.is_empty(),
        "a named namespace while running: {named:?}"
    );
    let held = netns_fds(run.pid());
    assert_eq!(held.len(), 1, "one namespace held by the run: {held:?}");
    // Nothing else of the run's (its QEMU, `timeout`, ci/qemu-run) is in the
    // namespace or holds it: the run's own descriptor is its only reference.
    let tree = descendants(run.pid());
    assert!(tree.contains(&qemu));
    let also: Vec<u32> = tree
        .iter()
        .copied()
        .filter(|&p| in_or_holds(p, &held[0]))
        .collect();
    assert!(
        also.is_empty(),
        "besides the run, {also:?} in or holding {}",
        held[0]
    );
    kill(Pid::from_raw(run.pid() as i32), Signal::SIGKILL).expect("SIGKILL");
    run.wait_exit(Duration::from_secs(10));
    // QEMU dies with its parent (PR_SET_PDEATHSIG through `timeout`), and so
    // does every other process of the run.
    let alive = wait_gone(&[qemu], Duration::from_secs(10));
    assert!(alive.is_empty(), "QEMU {qemu} outlived its SIGKILLed run");
    let alive = wait_gone(&tree, Duration::from_secs(10));
    let names: Vec<String> = alive
        .iter()
        .map(|&p| format!("{p} {}", command_name(p)))
        .collect();
    assert!(alive.is_empty(), "outlived the SIGKILLed run: {names:?}");
    // SIGKILL runs no cleanup, yet nothing holds the namespace (and its tap) any
    // more: its only references were the run and its processes, all gone, and
    // it was unnamed (no bind mount). The machine is not scanned for the
    // namespace's number: the kernel hands a freed namespace number to the next
    // new namespace at once, and with tests making namespaces in parallel a
    // scan found another test's namespace under it (soak, 2 Dec 2026).
    // Only the socket directory stays: the next start removes it, and says so.
    let mut next = RunJob::start(Some(&prefix), &["--count", "3"]);
    let (status, _) = next.wait_exit(Duration::from_secs(90));
    assert_eq!(status, Some(0), "{}", next.log());
    let dir = format!("host-bridge-{prefix}-{}-", run.pid());
    let said = next
        .seen
        .iter()
        .filter(|l| l.contains("removed socket directory") && l.contains(&dir))
        .count();
    assert_eq!(said, 1, "one line about it:\n{}", next.log());
}

#[test]
fn bridge_killed_with_sigkill_leaves_a_namespace_that_the_next_start_reaps_and_names() {
    if !can_run_bridge() {
        return;
    }
    let prefix = own_prefix();
    let start_bridge = || {
        let mut child = Command::new(BIN)
            .args(["bridge"])
            .env("HOST_BRIDGE_NETNS_PREFIX", &prefix)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn host-bridge bridge");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let lines: Vec<String> = out
            .lines()
            .map_while(Result::ok)
            .take_while(|l| l != "ready")
            .collect();
        (child, lines)
    };
    let (mut first, _) = start_bridge();
    let left = namespaces_of(&prefix, first.id());
    assert_eq!(left.len(), 1, "{left:?}");
    first.kill().expect("SIGKILL");
    first.wait().expect("wait");
    assert!(netns::exists(&left[0]));
    let (second, _) = start_bridge();
    kill(Pid::from_raw(second.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let out = second.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains(&format!("removed namespace {}", left[0])))
            .count(),
        1,
        "one line saying so:\n{stderr}"
    );
    assert!(!netns::exists(&left[0]));
}

#[test]
fn qemu_killed_mid_run_ends_the_run_at_once_and_says_so() {
    // On the bridge when root, else on QEMU's user network: the same path either way.
    let mut run = RunJob::start(None, LONG_RUN);
    run.wait_line("firmware| connected", Duration::from_secs(60));
    let qemu = qemu_under(run.pid());
    kill(Pid::from_raw(qemu as i32), Signal::SIGKILL).expect("kill QEMU");
    let (status, took) = run.wait_exit(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s != 0),
        "status {status:?}:\n{}",
        run.log()
    );
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} to notice:\n{}",
        run.log()
    );
    assert!(
        run.log().contains("QEMU was killed by signal 9"),
        "no message:\n{}",
        run.log()
    );
    assert!(namespaces_of("hb", run.pid()).is_empty());
}

#[test]
fn sigint_or_sigterm_to_a_run_leaves_no_qemu_namespace_or_tap() {
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let mut run = RunJob::start(None, LONG_RUN);
        run.wait_line("firmware| connected", Duration::from_secs(60));
        let qemu = qemu_under(run.pid());
        let everything = descendants(run.pid());
        // As Ctrl-C in a terminal does: to the whole process group.
        killpg(Pid::from_raw(run.pid() as i32), signal).expect("signal the group");
        let (status, _) = run.wait_exit(Duration::from_secs(15));
        assert_eq!(status, Some(130), "{signal}:\n{}", run.log());
        let alive = wait_gone(&everything, Duration::from_secs(5));
        assert!(
            alive.is_empty(),
            "{signal}: still running: {alive:?} (QEMU was {qemu})"
        );
        let left = namespaces_of("hb", run.pid());
        assert!(left.is_empty(), "{signal}: left behind: {left:?}");
    }
}

/// Not run by itself: the child of `sigint_or_sigterm_to_a_test_run_leaves_no_qemu`,
/// a test process with a QEMU and a peer under it.
#[test]
#[ignore = "the child of another test"]
fn a_test_that_boots_the_firmware_for_minutes() {
    let server = common::Peer::spawn(
        "harness-faults-server",
        BIN,
        &["serve", "--listen", "127.0.0.1:0"],
    );
    let url = format!("ws://10.0.2.2:{}/ws", server.port());
    let run = common::boot(&["--url", &url, "--count", "1000000"], None, 600);
    panic!("the firmware ended before the test was interrupted:\n{run}");
}

#[test]
fn sigint_or_sigterm_to_a_test_run_leaves_no_qemu_or_server() {
    let me = std::env::current_exe().expect("this test binary");
    // Ctrl-C in a terminal signals the whole process group; a runner that ends a
    // test may signal only its process.
    for (signal, whole_group) in [(Signal::SIGINT, true), (Signal::SIGTERM, false)] {
        let mut test = Command::new(&me)
            .args([
                "--ignored",
                "--exact",
                "a_test_that_boots_the_firmware_for_minutes",
            ])
            .args(["--nocapture", "--test-threads", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn the child test");
        let pid = test.id();
        let qemu = qemu_under(pid);
        // Let the firmware get going (it is echoing once QEMU runs for a moment).
        std::thread::sleep(Duration::from_millis(500));
        let everything = descendants(pid);
        assert!(everything.contains(&qemu));
        if whole_group {
            killpg(Pid::from_raw(pid as i32), signal).expect("signal the group");
        } else {
            kill(Pid::from_raw(pid as i32), signal).expect("signal the test process");
        }
        let _ = test.wait();
        let alive = wait_gone(&everything, Duration::from_secs(10));
        let names: Vec<String> = alive.iter().map(|&p| command_name(p)).collect();
        assert!(
            alive.is_empty(),
            "{signal}: still running: {alive:?} {names:?}"
        );
    }
}

#[test]
fn two_runs_at_once_with_default_options_both_pass() {
    let mut a = RunJob::start(None, &["--count", "50"]);
    let mut b = RunJob::start(None, &["--count", "50"]);
    let (sa, _) = a.wait_exit(Duration::from_secs(120));
    let (sb, _) = b.wait_exit(Duration::from_secs(120));
    assert_eq!(sa, Some(0), "first run:\n{}", a.log());
    assert_eq!(sb, Some(0), "second run:\n{}", b.log());
    a.wait_line("all 50 echoes matched", Duration::from_secs(1));
    b.wait_line("all 50 echoes matched", Duration::from_secs(1));
}
