//! The `bridge` and `run` subcommands as a user runs them: the namespace and tap
//! exist while they run and are gone after SIGTERM, after QEMU crashes, and
//! (reaped by the next run) even after SIGKILL; `run` hands QEMU's options to
//! ci/qemu-run in FIRMWARE_NET and exits with the firmware's status.

#[path = "common/skip.rs"]
mod skip;

mod server_support;
use server_support::*;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use host_bridge::netns;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn can_run() -> bool {
    if !netns::is_root() || !Path::new("/dev/net/tun").exists() {
        skip::skip("the bridge needs root and /dev/net/tun");
        return false;
    }
    true
}

/// Kills the child if the test fails before it ends.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `host-bridge bridge ARGS`; returns it and its namespace's name once ready.
fn start_bridge(args: &[&str]) -> (Guard, String, std::thread::JoinHandle<String>) {
    let mut cmd = Command::new(BIN);
    cmd.args(["--quiet", "bridge"])
        .args(args)
        .stderr(Stdio::inherit());
    let (mut ns, mut net) = (None, None);
    let (child, rest) = spawn_until_ready(cmd, false, |line| {
        if let Some(n) = line.strip_prefix("netns=") {
            ns = Some(n.to_owned());
        }
        if let Some(n) = line.strip_prefix("FIRMWARE_NET=") {
            net = Some(n.to_owned());
        }
        line == "ready"
    });
    let ns = ns.expect("bridge printed its namespace");
    let net = net.expect("bridge printed FIRMWARE_NET");
    assert!(
        net.contains("-netdev dgram,id=n0,local.type=unix") && net.contains("model=stellaris"),
        "{net}"
    );
    (Guard(child), ns, rest)
}

fn wait_exit(g: &mut Guard, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = g.0.try_wait().expect("wait") {
            return st;
        }
        assert!(start.elapsed() < limit, "did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bridge_subcommand_cleans_up_on_sigterm() {
    if !can_run() {
        return;
    }
    let pcap = std::env::temp_dir().join(format!("bridge-cli-{}.pcap", std::process::id()));
    let (mut g, ns, rest) = start_bridge(&["--pcap", pcap.to_str().expect("utf-8")]);
    assert!(netns::exists(&ns));
    let addr = Command::new("ip")
        .args(["-n", &ns, "-4", "addr", "show", "tap0"])
        .output()
        .expect("ip");
    let addr = String::from_utf8_lossy(&addr.stdout);
    assert!(
        addr.contains("192.168.76.1/24") && addr.contains("UP"),
        "{addr}"
    );
    // The tap is only inside the namespace.
    let host = Command::new("ip")
        .args(["link", "show", "tap0"])
        .output()
        .expect("ip");
    assert!(!host.status.success() || !String::from_utf8_lossy(&host.stdout).contains("tap0"));
    kill(Pid::from_raw(g.0.id() as i32), Signal::SIGTERM).expect("kill");
    let st = wait_exit(&mut g, Duration::from_secs(10));
    assert!(st.success(), "{st}");
    assert!(!netns::exists(&ns), "namespace {ns} left behind");
    let out = rest.join().expect("stdout");
    assert!(
        out.contains("to guest:") && out.contains("to host:"),
        "frame counters at exit: {out}"
    );
    let bytes = std::fs::read(&pcap).expect("pcap");
    assert_eq!(&bytes[..4], &0xa1b2c3d4u32.to_le_bytes(), "pcap header");
    let _ = std::fs::remove_file(&pcap);
}

/// A script that reads the bridge's options and then stops reading (closes the
/// pipe) must not turn the bridge's exit into a panic: the counters it prints at
/// exit go nowhere, the exit is still clean.
#[test]
fn bridge_exits_cleanly_when_nobody_reads_its_output_any_more() {
    if !can_run() {
        return;
    }
    let mut child = Command::new(BIN)
        .args(["--quiet", "bridge"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn host-bridge bridge");
    let stderr = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut ns = None;
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(n) = line.strip_prefix("netns=") {
            ns = Some(n.to_owned());
        }
        if line == "ready" {
            break;
        }
    }
    drop(lines); // the reader goes away
    let mut g = Guard(child);
    kill(Pid::from_raw(g.0.id() as i32), Signal::SIGTERM).expect("kill");
    let st = wait_exit(&mut g, Duration::from_secs(10));
    let errors = errors.join().expect("stderr");
    assert!(st.success(), "{st}: {errors}");
    assert!(!errors.contains("panicked"), "{errors}");
    let ns = ns.expect("bridge printed its namespace");
    assert!(!netns::exists(&ns), "namespace {ns} left behind");
}

#[test]
fn a_namespace_left_by_sigkill_is_reaped_by_the_next_run() {
    if !can_run() {
        return;
    }
    let (mut g, ns, _) = start_bridge(&[]);
    kill(Pid::from_raw(g.0.id() as i32), Signal::SIGKILL).expect("kill");
    wait_exit(&mut g, Duration::from_secs(10));
    assert!(netns::exists(&ns), "SIGKILL runs no cleanup");
    let (mut g2, ns2, _) = start_bridge(&[]);
    assert!(!netns::exists(&ns), "the next bridge reaps {ns}");
    kill(Pid::from_raw(g2.0.id() as i32), Signal::SIGTERM).expect("kill");
    assert!(wait_exit(&mut g2, Duration::from_secs(10)).success());
    assert!(!netns::exists(&ns2));
}

/// A stand-in repository whose ci/qemu-run prints what it got and then behaves
/// like a crashing QEMU (killed by SIGSEGV) or a firmware exiting with 3.
fn fake_repo(behaviour: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "bridge-cli-repo-{}-{behaviour}",
        std::process::id()
    ));
    std::fs::create_dir_all(dir.join("ci")).expect("dir");
    let script = format!(
        "#!/bin/sh\necho \"bridge-pid=$PPID\"\necho \"image=$1\"\nshift\necho \"args=$*\"\necho \"net=$FIRMWARE_NET\"\necho \"mac=$FIRMWARE_MAC\"\necho \"fds=$(ls /proc/$$/fd | tr '\\n' ' ')\"\n{behaviour}\n"
    );
    let path = dir.join("ci/qemu-run");
    std::fs::write(&path, script).expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Runs `host-bridge run` with the fake QEMU and checks that it exits with
/// `status`; returns its stdout and the namespaces of that host-bridge process
/// still present afterwards.
fn run_with_fake_qemu(behaviour: &str, extra: &[&str], status: i32) -> (String, Vec<String>) {
    let repo = fake_repo(behaviour);
    let mut cmd = Command::new(BIN);
    cmd.env("HOST_BRIDGE_REPO", &repo)
        .args(["run", "--image", "/dev/null"])
        .args(extra)
        .args(["--", "--proto", "hixie76", "--count", "2"]);
    let out = output_within(cmd, Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&repo);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(status),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = stdout
        .lines()
        .find_map(|l| l.strip_prefix("firmware| bridge-pid="))
        .unwrap_or_else(|| panic!("the fake QEMU ran: {stdout}"))
        .to_owned();
    // Other tests run bridges in parallel: only this process's namespaces count.
    let left = std::fs::read_dir(netns::NETNS_DIR)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("hb-{pid}-")))
                .collect()
        })
        .unwrap_or_default();
    (stdout, left)
}

#[test]
fn run_passes_the_bridge_to_qemu_run_and_exits_with_the_firmware_status() {
    if !can_run() {
        return;
    }
    let (stdout, left) = run_with_fake_qemu("exit 3", &[], 3);
    assert!(stdout.contains("firmware| image=/dev/null"), "{stdout}");
    assert!(
        stdout.contains(
            "firmware| args=--url ws://192.168.76.1:8000/ws --ip 192.168.76.2/24 --gateway 192.168.76.1 --proto hixie76 --count 2"
        ),
        "{stdout}"
    );
    // Nothing for the relay to do: QEMU gets the tap itself, a descriptor it inherits.
    let fd = stdout
        .split("net=-netdev tap,id=n0,fd=")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("no tap fd in the network options: {stdout}"));
    let fds = stdout
        .lines()
        .find_map(|l| l.strip_prefix("firmware| fds="))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        fds.split(' ').any(|f| f == fd),
        "fd {fd} not inherited (has {fds}): {stdout}"
    );
    assert!(
        stdout.contains("-net nic,model=stellaris,netdev=n0,macaddr=52:54:00:12:34:56"),
        "{stdout}"
    );
    assert!(left.is_empty(), "left behind: {left:?}");
    // --relay: the relay's dgram socket instead.
    let (stdout, left) = run_with_fake_qemu("exit 3", &["--relay"], 3);
    assert!(
        stdout.contains("net=-netdev dgram,id=n0,local.type=unix,local.path=/"),
        "{stdout}"
    );
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn run_cleans_up_after_qemu_crashes() {
    if !can_run() {
        return;
    }
    let (_, left) = run_with_fake_qemu("kill -SEGV $$", &[], 128 + 11);
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn run_on_the_user_network_needs_no_namespace() {
    let (stdout, left) = run_with_fake_qemu("exit 0", &["--user-net"], 0);
    assert!(
        stdout.contains("firmware| args=--url ws://10.0.2.2:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("firmware| net=\n"),
        "no FIRMWARE_NET: ci/qemu-run's default user network: {stdout}"
    );
    assert!(left.is_empty());
}

#[test]
fn ctrl_c_during_run_stops_qemu_cleans_up_and_exits_130() {
    if !can_run() {
        return;
    }
    let repo = fake_repo("exec sleep 60");
    let child = Command::new(BIN)
        .env("HOST_BRIDGE_REPO", &repo)
        .args(["--quiet", "run", "--image", "/dev/null"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut g = Guard(child);
    let mut lines = BufReader::new(g.0.stdout.take().expect("stdout")).lines();
    let pid = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("firmware| bridge-pid=").map(str::to_owned))
        .expect("the fake QEMU started");
    kill(Pid::from_raw(g.0.id() as i32), Signal::SIGINT).expect("kill");
    let st = wait_exit(&mut g, Duration::from_secs(15));
    assert_eq!(st.code(), Some(130), "{st}");
    let _ = std::fs::remove_dir_all(&repo);
    let ours = format!("hb-{pid}-");
    let left: Vec<_> = std::fs::read_dir(netns::NETNS_DIR)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_else(|_| Vec::new())
        .into_iter()
        .filter(|n: &String| n.starts_with(&ours))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// An ARP request from the guest (52:54:00:12:34:56, 192.168.76.2) for the host
/// (192.168.76.1), as the board would send it.
fn arp_request() -> Vec<u8> {
    let guest_mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&guest_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&guest_mac);
    f.extend_from_slice(&[192, 168, 76, 2]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[192, 168, 76, 1]);
    f
}

/// Whether the host's ARP reply to [`arp_request`] arrives on `sock` within `limit`.
fn arp_answered(sock: &std::os::unix::net::UnixDatagram, remote: &str, limit: Duration) -> bool {
    // Asked again every 200 ms, as a host's ARP would: one request sent while the
    // link was still down (the outage's schedule counts from the relay's start,
    // which the test only bounds) must not decide the answer.
    const AGAIN: Duration = Duration::from_millis(200);
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 2048];
    let mut next_ask = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        if now >= next_ask {
            sock.send_to(&arp_request(), remote)
                .expect("send to the bridge");
            next_ask = now + AGAIN;
        }
        let wait = next_ask.min(deadline).saturating_duration_since(now);
        sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .expect("timeout");
        match sock.recv(&mut buf) {
            // EtherType ARP, opcode 2 (reply), sender 192.168.76.1.
            Ok(n) if n >= 42 && buf[12..14] == [8, 6] && buf[20..22] == [0, 2] => {
                if buf[28..32] == [192, 168, 76, 1] {
                    return true;
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
    }
}

/// The cable: a scheduled outage (`--impair down=LEN@START`) and SIGUSR1 both
/// take the link down: the host's ARP replies stop, and come again once it is
/// back; every frame dropped meanwhile is counted. QEMU's side of the socket is
/// played by the test; `--no-server` leaves the namespace's port free.
#[test]
fn the_link_goes_down_on_schedule_and_on_sigusr1_and_comes_back() {
    if !can_run() {
        return;
    }
    let mut child = Command::new(BIN)
        .args(["--quiet", "bridge", "--no-server", "--impair", "down=3s@0s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn host-bridge bridge");
    let started = Instant::now();
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let g = Guard(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |what: &str| {
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("the bridge did not print {what}"))
    };
    let mut head = Vec::new();
    while head.last().map(String::as_str) != Some("ready") {
        head.push(next_line("ready"));
    }
    assert!(
        !head.iter().any(|l| l.starts_with("server=")),
        "--no-server: {head:?}"
    );
    let ns = head
        .iter()
        .find_map(|l| l.strip_prefix("netns="))
        .expect("netns")
        .to_owned();
    let net = head
        .iter()
        .find_map(|l| l.strip_prefix("FIRMWARE_NET="))
        .expect("FIRMWARE_NET");
    let path = |key: &str| {
        net.split([',', ' '])
            .find_map(|p| p.strip_prefix(key))
            .expect("a socket path")
            .to_owned()
    };
    let (local, remote) = (path("local.path="), path("remote.path="));
    let listening = Command::new("ip")
        .args(["netns", "exec", &ns, "ss", "-Hltn"])
        .output()
        .expect("ss");
    assert!(
        !String::from_utf8_lossy(&listening.stdout).contains(":8000"),
        "--no-server, yet something listens: {}",
        String::from_utf8_lossy(&listening.stdout)
    );
    let sock = std::os::unix::net::UnixDatagram::bind(&local).expect("bind as QEMU would");
    let short = Duration::from_millis(500);

    // Scheduled: down for the first 3 s after the relay started, which lies between
    // `started` and `ready`: so it is down at least until `started` + 3 s, and up
    // again at the latest at `ready` + 3 s. The outage is that long so that a
    // bridge slow to start on a busy machine still leaves room to see it.
    let ready = Instant::now();
    let window = Duration::from_secs(3).saturating_sub(started.elapsed());
    assert!(
        window > short,
        "the bridge took {:?} to be ready: no time left to see the outage",
        started.elapsed()
    );
    assert!(!arp_answered(&sock, &remote, short), "answered while down");
    let back_by = ready + Duration::from_secs(3);
    assert!(
        arp_answered(
            &sock,
            &remote,
            back_by.saturating_duration_since(Instant::now()) + Duration::from_secs(3)
        ),
        "not answered after the outage"
    );

    // By hand: SIGUSR1 pulls the cable, a second one plugs it back.
    let pid = Pid::from_raw(g.0.id() as i32);
    kill(pid, Signal::SIGUSR1).expect("kill");
    assert_eq!(next_line("link down"), "link down");
    assert!(!arp_answered(&sock, &remote, short), "answered while down");
    kill(pid, Signal::SIGUSR1).expect("kill");
    assert_eq!(next_line("link up"), "link up");
    assert!(
        arp_answered(&sock, &remote, Duration::from_secs(3)),
        "not answered after link up"
    );

    let mut g = g;
    kill(pid, Signal::SIGTERM).expect("kill");
    assert!(wait_exit(&mut g, Duration::from_secs(10)).success());
    let _ = std::fs::remove_file(&local);
    // The reader ends when the bridge's stdout closes (it has exited).
    let counters: Vec<String> = rx.iter().collect();
    let to_host = counters
        .iter()
        .find(|l| l.starts_with("to host:"))
        .unwrap_or_else(|| panic!("counters at exit: {counters:?}"));
    let dropped: u64 = to_host
        .rsplit("link down ")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{to_host}"));
    // At least the two requests sent while down.
    assert!(dropped >= 2, "{to_host}");
    assert!(!netns::exists(&ns), "namespace {ns} left behind");
}

/// SIGUSR1 to `run --relay` switches its bridge's link too (here the stand-in
/// QEMU sends it, twice, to the host-bridge that started it).
#[test]
fn sigusr1_to_run_takes_the_link_down_and_up() {
    if !can_run() {
        return;
    }
    // The cable is the relay's: `--relay` keeps it on the fast path's default.
    let (stdout, left) = run_with_fake_qemu(
        "kill -USR1 $PPID; sleep 0.3; kill -USR1 $PPID; sleep 0.3; exit 0",
        &["--relay"],
        0,
    );
    let down = stdout.find("\nlink down\n");
    let up = stdout.find("\nlink up\n");
    assert!(
        matches!((down, up), (Some(d), Some(u)) if d < u),
        "{stdout}"
    );
    assert!(left.is_empty(), "left behind: {left:?}");
}
