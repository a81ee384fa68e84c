//! host-bridge: the reverse-echo WebSocket server and the tap bridge that joins
//! QEMU's emulated lm3s6965evb to it. The binary (`src/main.rs`) is a thin CLI
//! over these modules; the integration tests use them directly.
//!
//! * [`server`]: the tutorial's reverse-echo server (RFC 6455 and hixie-76).
//! * [`netns`]: network namespaces of our own, taps inside them.
//! * [`bridge`]: namespace + tap + relay to QEMU's `-netdev dgram` socket.
//! * [`relay`] and [`impair`]: frame relay with seeded impairment and pcap.
//! * [`link`]: the cable: scheduled outages and a manual switch.
//! * [`qemu`]: booting the firmware through `ci/qemu-run` on the bridge.
//! * [`child`]: child processes (QEMU, dnsmasq) that die with us, even on SIGKILL.
//! * [`run`]: `host-bridge run` as a library call: server, bridge and QEMU boot.

//!
//! # The command line (clap, derive)
//!
//! ```text
//! host-bridge [--quiet] [--log-level FILTER] [--threads N] <COMMAND>
//!   serve   [--listen 127.0.0.1:8000] [SERVER FLAGS]
//!   bridge  [--no-server] [BRIDGE FLAGS] [SERVER FLAGS] (root; prints FIRMWARE_NET=...)
//!   run     [--image PATH] [--user-net] [--no-auto-args] [--mac MAC] [--timeout S]
//!           [BRIDGE FLAGS] [SERVER FLAGS] -- FIRMWARE_ARGS
//! SERVER FLAGS: --path /ws  --echo  --allow-origin ORIGIN...  --max-message 1048576
//!               --max-header 8192  --handshake-timeout 10  --ping-interval 20
//!               --idle-timeout 60  --max-connections 1024
//! BRIDGE FLAGS: --port 8000  --host-ip 192.168.76.1  --guest-ip 192.168.76.2  --dhcp
//!               --impair SPEC  --impair-to-guest SPEC  --impair-to-host SPEC
//!               --seed 1  --pcap FILE
//! SPEC: loss=5%,delay=20ms,jitter=5ms,dup=1%,reorder=2%,corrupt=0.1%,rate=1mbit,queue=4096,
//!       down=LEN@START (repeatable, up to 4: the link is down from START after the
//!       relay started, for LEN; every frame is dropped and counted as `link down`)
//! SIGUSR1 to `bridge` or `run`: the link goes down (or up again); prints
//! `link down` / `link up` on stdout.
//! ```
//!
//! `run` boots through `ci/qemu-run` with `FIRMWARE_NET` set to
//! `-netdev dgram,...,local.type=unix,... -net nic,model=stellaris,netdev=n0,macaddr=MAC`
//! and adds `--url ws://192.168.76.1:8000/ws --ip 192.168.76.2/24 --gateway
//! 192.168.76.1` (bridge; no `--ip` with `--dhcp`) or `--url ws://10.0.2.2:PORT/ws`
//! (user network) where the firmware arguments lack them. It exits with the
//! firmware's status.

pub mod bridge;
pub mod child;
pub mod impair;
pub mod link;
pub mod netns;
pub mod qemu;
pub mod relay;
pub mod run;
pub mod server;
