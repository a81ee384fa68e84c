//! The tap bridge end to end without the firmware: a second namespace of the
//! test's own, with its own tap, plays the guest, and a relay from its tap to
//! the bridge's unix socket plays QEMU's `-netdev dgram`. Ping and TCP (a
//! WebSocket session) cross from the guest to the server in the bridge's
//! namespace, clean and impaired; the pcap is checked with capinfos/tshark; no
//! namespace is left behind.

#[path = "common/skip.rs"]
mod skip;

mod server_support;
use server_support::*;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use host_bridge::bridge::{Bridge, BridgeConfig};
use host_bridge::impair::Impairment;
use host_bridge::netns::{self, Netns};
use host_bridge::relay::{bind_unix, Port, Relay, RelayConfig, RelayStats};
use host_bridge::server::{self, ServerConfig};
use tokio_util::sync::CancellationToken;

fn can_run() -> bool {
    if !netns::is_root() {
        skip::skip("the bridge needs root (network namespaces and taps)");
        return false;
    }
    if !Path::new("/dev/net/tun").exists() {
        skip::skip("no /dev/net/tun");
        return false;
    }
    true
}

struct Rig {
    bridge: Option<Bridge>,
    guest: Arc<Netns>,
    guest_relay: Option<Relay>,
    stop: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    names: Vec<String>,
}

const PORT: u16 = 8000;

impl Rig {
    fn start(relay: RelayConfig) -> Rig {
        let bridge = Bridge::start(BridgeConfig {
            relay,
            ..BridgeConfig::default()
        })
        .expect("bridge");
        let listener = bridge.listen_tcp(PORT).expect("listen in the namespace");
        let stop = CancellationToken::new();
        let server = tokio::spawn(server::serve(
            listener,
            ServerConfig::default(),
            stop.clone(),
        ));
        // The stand-in guest: its own namespace and tap, relayed to the bridge's
        // socket exactly as QEMU's dgram netdev would.
        netns::reap_stale("hbtest"); // left by a killed earlier run, if any
        let guest = Netns::create("hbtest").expect("guest namespace");
        let tap = netns::open_tap(&guest, "guest0").expect("guest tap");
        guest
            .ip(&["addr", "add", "192.168.76.2/24", "dev", "guest0"])
            .expect("addr");
        guest.ip(&["link", "set", "guest0", "up"]).expect("up");
        let tap = tun::AsyncDevice::new(tap).expect("async tap");
        let sock = bind_unix(&bridge.guest_socket()).expect("bind as QEMU would");
        let guest_relay = Relay::start(
            Port::Tap(Arc::new(tap)),
            Port::Unix {
                sock: Arc::new(sock),
                peer: bridge.bridge_socket(),
            },
            &RelayConfig::default(),
        )
        .expect("guest relay");
        let names = vec![bridge.netns().name().to_owned(), guest.name().to_owned()];
        Rig {
            bridge: Some(bridge),
            guest: Arc::new(guest),
            guest_relay: Some(guest_relay),
            stop,
            server: Some(server),
            names,
        }
    }

    /// Pings the host (192.168.76.1) from the guest namespace: `count` answers
    /// asked for, `interval` apart, for at most `deadline_s` (ping's `-w`), and
    /// the whole run bounded by `limit`.
    async fn ping_host(
        &self,
        count: u32,
        interval: &str,
        deadline_s: u32,
        limit: Duration,
    ) -> std::process::Output {
        let mut cmd = self.guest.command("ping");
        let (count, deadline) = (count.to_string(), deadline_s.to_string());
        cmd.args([
            "-c",
            &count,
            "-i",
            interval,
            "-w",
            &deadline,
            "192.168.76.1",
        ]);
        tokio::task::spawn_blocking(move || output_within(cmd, limit))
            .await
            .expect("join")
    }

    /// A WebSocket session from inside the guest: `n` messages of growing size,
    /// each checked to come back reversed. Returns the time it took.
    async fn ws_session(&self, n: usize, max_len: usize) -> Duration {
        let guest = self.guest.clone();
        tokio::task::spawn_blocking(move || {
            guest
                .enter(move || {
                    let start = Instant::now();
                    let addr: SocketAddr = ([192, 168, 76, 1], PORT).into();
                    let (mut s, mut pending) = ws_connect(addr);
                    s.set_read_timeout(Some(Duration::from_secs(30)))?;
                    for i in 0..n {
                        let len = if i == 0 {
                            max_len
                        } else {
                            1 + (i * 7919) % max_len
                        };
                        let msg: Vec<u8> = (0..len).map(|k| (k * 31 + i) as u8).collect();
                        s.write_all(&frame(0x2, &msg))?;
                        let mut want = msg.clone();
                        want.reverse();
                        assert_eq!(
                            read_frame(&mut s, &mut pending),
                            Some((0x2, want)),
                            "message {i}"
                        );
                    }
                    s.write_all(&frame(0x8, &1000u16.to_be_bytes()))?;
                    let (op, _) = read_frame(&mut s, &mut pending).expect("close answer");
                    assert_eq!(op, 0x8);
                    Ok(start.elapsed())
                })
                .expect("session in the guest namespace")
        })
        .await
        .expect("join")
    }

    async fn finish(mut self) -> RelayStats {
        self.stop.cancel();
        if let Some(s) = self.server.take() {
            s.await.expect("server task").expect("server");
        }
        if let Some(r) = self.guest_relay.take() {
            r.stop().await.expect("guest relay");
        }
        let stats = self
            .bridge
            .take()
            .expect("bridge")
            .shutdown()
            .await
            .expect("shutdown");
        let names = std::mem::take(&mut self.names);
        drop(self);
        for n in names {
            assert!(!netns::exists(&n), "namespace {n} left behind");
        }
        stats
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // On a failed assertion: everything still goes (Netns and Bridge drops).
        self.stop.cancel();
    }
}

fn has_ping() -> bool {
    let ok = Command::new("ping")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip::skip("ping part: no `ping` (apt-get install iputils-ping)");
    }
    ok
}

/// (transmitted, received) from ping's summary line.
fn ping_counts(out: &std::process::Output) -> (u32, u32) {
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |suffix: &str| {
        text.lines()
            .find_map(|l| {
                l.split(", ")
                    .find_map(|p| p.strip_suffix(suffix))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    };
    (field(" packets transmitted"), field(" received"))
}

fn ping_received(out: &std::process::Output) -> u32 {
    ping_counts(out).1
}

fn check_pcap(path: &Path, stats: &RelayStats) {
    let bytes = std::fs::read(path).expect("pcap written");
    assert!(bytes.len() > 24, "pcap has no packets");
    let magic = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    assert!(
        magic == 0xa1b2c3d4 || magic == 0xa1b23c4d,
        "pcap magic {magic:#x}"
    );
    let linktype = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    assert_eq!(linktype, 1, "Ethernet link type");
    let frames = stats.to_guest.frames_out + stats.to_host.frames_out;
    match Command::new("capinfos")
        .args(["-M", "-c"])
        .arg(path)
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let n: u64 = text
                .lines()
                .find_map(|l| l.strip_prefix("Number of packets:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("capinfos said: {text}"));
            assert_eq!(n, frames, "capinfos count vs relay counters");
        }
        _ => eprintln!(
            "note: capinfos not installed (apt-get install tshark); checked the pcap header only"
        ),
    }
    if let Ok(out) = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args(["-Y", "icmp || tcp.port == 8000"])
        .output()
    {
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                !has_ping() || text.contains("Echo (ping) request"),
                "{text}"
            );
            assert!(
                text.contains("WebSocket") || text.contains("8000"),
                "{text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_wire_relays_ping_and_tcp_and_writes_a_valid_pcap() {
    if !can_run() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("bridge-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let pcap = dir.join("clean.pcap");
    let rig = Rig::start(RelayConfig {
        pcap: Some(pcap.clone()),
        ..RelayConfig::default()
    });
    if has_ping() {
        let ping = rig.ping_host(3, "0.2", 10, Duration::from_secs(20)).await;
        assert_eq!(
            ping_received(&ping),
            3,
            "{}",
            String::from_utf8_lossy(&ping.stdout)
        );
    }
    rig.ws_session(100, 4000).await;
    let stats = rig.finish().await;
    eprintln!("{stats}");
    assert!(
        stats.to_host.frames_in > 100 && stats.to_guest.frames_in > 100,
        "{stats}"
    );
    assert_eq!(stats.to_host.lost + stats.to_guest.lost, 0);
    assert_eq!(stats.to_host.frames_in, stats.to_host.frames_out);
    check_pcap(&pcap, &stats);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impaired_wire_still_carries_tcp_intact_and_counts_what_it_did() {
    if !can_run() {
        return;
    }
    let imp: Impairment = "loss=10%,delay=5ms,jitter=3ms,dup=5%,reorder=5%,corrupt=5%"
        .parse()
        .expect("spec");
    let rig = Rig::start(RelayConfig {
        seed: 7,
        to_guest: imp,
        to_host: imp,
        pcap: None,
    });
    if has_ping() {
        let ping = rig.ping_host(30, "0.05", 8, Duration::from_secs(30)).await;
        // -w: ping sends until 30 answers came back (or 8 s passed).
        let (sent, got) = ping_counts(&ping);
        assert!(
            got > 0 && sent > got,
            "10% loss each way: some pings unanswered, got {got} of {sent}"
        );
    }
    // TCP gets every byte through, in order, despite loss, duplication,
    // reordering and corruption (checksums drop the corrupted segments).
    rig.ws_session(60, 3000).await;
    let stats = rig.finish().await;
    eprintln!("{stats}");
    for d in [stats.to_guest, stats.to_host] {
        assert!(
            d.lost > 0 && d.duplicated > 0 && d.reordered > 0 && d.corrupted > 0,
            "{stats}"
        );
        assert_eq!(
            d.frames_out,
            d.frames_in - d.lost + d.duplicated
                - d.overflow
                - d.undeliverable
                - d.pending_at_stop
                - d.link_down,
            "{stats}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_cap_slows_a_transfer_down() {
    if !can_run() {
        return;
    }
    let imp: Impairment = "rate=400kbit".parse().expect("spec");
    let rig = Rig::start(RelayConfig {
        to_guest: imp,
        to_host: imp,
        ..RelayConfig::default()
    });
    // ~40 KB each way at 400 kbit/s: at least 0.8 s per direction.
    let took = rig.ws_session(1, 40_000).await;
    let took2 = rig.ws_session(2, 40_000).await;
    rig.finish().await;
    let total = took + took2;
    eprintln!("two sessions took {took:?} + {took2:?}");
    assert!(took2 >= Duration::from_millis(1200), "{took2:?}");
    assert!(total < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pulled_cable_drops_every_frame_and_tcp_carries_on_once_it_is_back() {
    if !can_run() {
        return;
    }
    let rig = Rig::start(RelayConfig::default());
    rig.ws_session(3, 100).await; // ARP settled: what follows is the cable's doing
    let bridge = rig.bridge.as_ref().expect("bridge");
    bridge.set_link(false);
    let (took, ()) = tokio::join!(rig.ws_session(20, 2000), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(bridge.stats().to_host.link_down > 0, "the SYN was dropped");
        bridge.set_link(true);
    });
    // The guest's SYN waited for its retransmission after the link came back.
    assert!(took >= Duration::from_millis(900), "{took:?}");
    let stats = rig.finish().await;
    eprintln!("{stats}");
    for d in [stats.to_guest, stats.to_host] {
        assert_eq!(
            d.frames_out,
            d.frames_in - d.link_down - d.undeliverable,
            "{stats}"
        );
    }
}
