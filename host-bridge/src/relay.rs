//! Moves Ethernet frames between the tap device (the host's side of the wire) and
//! QEMU's `-netdev dgram` unix socket (the guest's side), one datagram per frame,
//! through an [`Impairer`] per direction, writing what crosses to a pcap file.
//! While the [`Link`] is down (scheduled or switched off) every frame is dropped.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use pcap_file::pcap::{PcapPacket, PcapWriter};
use tokio::net::UnixDatagram;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::impair::{Counters, CountersSnapshot, Impairer, Impairment};
use crate::link::{Link, Outages};

/// Largest frame moved (a tap with MTU 1500 gives at most 1514 bytes; room for more).
pub const MAX_FRAME: usize = 65536;

/// One end of the relay.
#[derive(Clone)]
pub enum Port {
    /// A tap device (frames without packet information).
    Tap(Arc<tun::AsyncDevice>),
    /// A bound unix datagram socket; frames go to `peer` (QEMU's socket).
    Unix {
        sock: Arc<UnixDatagram>,
        peer: PathBuf,
    },
}

impl Port {
    async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Port::Tap(t) => t.recv(buf).await,
            Port::Unix { sock, .. } => sock.recv(buf).await,
        }
    }

    async fn send(&self, frame: &[u8]) -> std::io::Result<usize> {
        match self {
            Port::Tap(t) => t.send(frame).await,
            Port::Unix { sock, peer } => sock.send_to(frame, peer).await,
        }
    }
}

/// Relay settings.
#[derive(Debug, Clone, Default)]
pub struct RelayConfig {
    /// Seed of all random choices (each direction derives its own).
    pub seed: u64,
    /// Impairment of frames from the host (tap) to the guest (QEMU).
    pub to_guest: Impairment,
    /// Impairment of frames from the guest (QEMU) to the host (tap).
    pub to_host: Impairment,
    /// Write every frame that crossed (after impairment) here.
    pub pcap: Option<PathBuf>,
}

/// Frame counters of both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Host (tap) to guest (QEMU).
    pub to_guest: CountersSnapshot,
    /// Guest (QEMU) to host (tap).
    pub to_host: CountersSnapshot,
}

impl std::fmt::Display for RelayStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "to guest: {}\nto host:  {}", self.to_guest, self.to_host)
    }
}

type Pcap = Arc<Mutex<PcapWriter<BufWriter<File>>>>;

/// A running relay; [`Relay::stop`] ends it and returns the counters.
pub struct Relay {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    to_guest: Arc<Counters>,
    to_host: Arc<Counters>,
    pcap: Option<Pcap>,
    link: Arc<Link>,
}

impl Relay {
    /// Starts moving frames between `host` (the tap) and `guest` (QEMU's socket).
    pub fn start(host: Port, guest: Port, cfg: &RelayConfig) -> Result<Relay> {
        let pcap = match &cfg.pcap {
            Some(path) => {
                let file =
                    File::create(path).with_context(|| format!("create {}", path.display()))?;
                let w = PcapWriter::new(BufWriter::new(file)).context("write the pcap header")?;
                Some(Arc::new(Mutex::new(w)))
            }
            None => None,
        };
        let stop = CancellationToken::new();
        let to_guest = Arc::new(Counters::default());
        let to_host = Arc::new(Counters::default());
        let link = Arc::new(Link::new(Instant::now()));
        for (name, imp) in [("to guest", &cfg.to_guest), ("to host", &cfg.to_host)] {
            for o in imp.down.iter() {
                tracing::info!("link {name}: scheduled {o} (after the relay started)");
            }
        }
        let tasks = vec![
            tokio::spawn(direction(
                host.clone(),
                guest.clone(),
                Impairer::new(cfg.to_guest, cfg.seed ^ 0x7467_7565_7374), // "tguest"
                Cable {
                    link: link.clone(),
                    outages: cfg.to_guest.down,
                },
                to_guest.clone(),
                pcap.clone(),
                stop.clone(),
            )),
            tokio::spawn(direction(
                guest,
                host,
                Impairer::new(cfg.to_host, cfg.seed ^ 0x7468_6f73_7400), // "thost"
                Cable {
                    link: link.clone(),
                    outages: cfg.to_host.down,
                },
                to_host.clone(),
                pcap.clone(),
                stop.clone(),
            )),
        ];
        Ok(Relay {
            stop,
            tasks,
            to_guest,
            to_host,
            pcap,
            link,
        })
    }

    /// Switches the link up or down by hand (both directions; scheduled
    /// outages still apply while it is up).
    pub fn set_link(&self, up: bool) {
        self.link.set(up);
    }

    /// Flips the manual link switch; returns whether the link is now up.
    pub fn toggle_link(&self) -> bool {
        self.link.toggle()
    }

    /// The counters so far.
    pub fn stats(&self) -> RelayStats {
        RelayStats {
            to_guest: self.to_guest.snapshot(),
            to_host: self.to_host.snapshot(),
        }
    }

    /// Stops both directions (frames still delayed are dropped), flushes the pcap.
    pub async fn stop(mut self) -> Result<RelayStats> {
        self.stop.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        if let Some(p) = self.pcap.take() {
            use std::io::Write;
            // The tasks are done, so this is the last reference.
            if let Ok(m) = Arc::try_unwrap(p) {
                let w = m.into_inner().unwrap_or_else(|e| e.into_inner());
                w.into_writer().flush().context("flush the pcap")?;
            }
        }
        Ok(RelayStats {
            to_guest: self.to_guest.snapshot(),
            to_host: self.to_host.snapshot(),
        })
    }
}

fn record(pcap: &Option<Pcap>, frame: &[u8]) {
    if let Some(p) = pcap {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let pkt = PcapPacket::new(ts, frame.len() as u32, frame);
        let mut w = p.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = w.write_packet(&pkt) {
            tracing::warn!("pcap write failed: {e}");
        }
    }
}

async fn deliver(dst: &Port, frame: &[u8], c: &Counters, pcap: &Option<Pcap>) {
    use std::sync::atomic::Ordering::Relaxed;
    match dst.send(frame).await {
        Ok(_) => {
            c.frames_out.fetch_add(1, Relaxed);
            c.bytes_out.fetch_add(frame.len() as u64, Relaxed);
            record(pcap, frame);
        }
        Err(e) => {
            Counters::bump(&c.undeliverable);
            tracing::trace!("frame not delivered: {e}");
        }
    }
}

/// What one direction needs to know of the link.
struct Cable {
    link: Arc<Link>,
    outages: Outages,
}

impl Cable {
    /// Whether a frame passes now; counts it when it does not.
    fn passes(&self, c: &Counters) -> bool {
        let up = self.link.is_up(Instant::now(), &self.outages);
        if !up {
            Counters::bump(&c.link_down);
        }
        up
    }
}

async fn direction(
    src: Port,
    dst: Port,
    mut imp: Impairer,
    cable: Cable,
    c: Arc<Counters>,
    pcap: Option<Pcap>,
    stop: CancellationToken,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut buf = vec![0u8; MAX_FRAME];
    let far = Duration::from_secs(3600);
    loop {
        let next = imp.next_due().unwrap_or_else(|| Instant::now() + far);
        tokio::select! {
            _ = stop.cancelled() => {
                c.pending_at_stop.fetch_add(imp.pending() as u64, Relaxed);
                return;
            }
            r = src.recv(&mut buf) => match r {
                Ok(n) => {
                    let frame = buf.get(..n).unwrap_or(&[]);
                    c.frames_in.fetch_add(1, Relaxed);
                    c.bytes_in.fetch_add(n as u64, Relaxed);
                    if !cable.passes(&c) {
                        // Dropped on the way in.
                    } else if imp.is_transparent() {
                        deliver(&dst, frame, &c, &pcap).await;
                    } else {
                        imp.push(Instant::now(), frame.to_vec(), &c);
                    }
                }
                Err(e) => {
                    tracing::debug!("relay receive error: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = tokio::time::sleep_until(next) => {}
        }
        let now = Instant::now();
        while let Some(f) = imp.pop_due(now) {
            // A frame still delayed when the cable is pulled is lost too.
            if cable.passes(&c) {
                deliver(&dst, &f, &c, &pcap).await;
            }
        }
    }
}

/// Binds a unix datagram socket at `path` (replacing a stale file).
pub fn bind_unix(path: &Path) -> Result<UnixDatagram> {
    let _ = std::fs::remove_file(path);
    UnixDatagram::bind(path).with_context(|| format!("bind {}", path.display()))
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Also when not stopped properly (a panic): the tasks end and drop the tap.
        self.stop.cancel();
    }
}
