//! host-bridge: the reverse-echo WebSocket server and the tap bridge that joins
//! QEMU's emulated lm3s6965evb to it. The binary (`src/main.rs`) is a thin CLI
//! over these modules; the integration tests use them directly.
//!
//! * [`server`]: the tutorial's reverse-echo server (RFC 6455 and hixie-76).
//! * [`netns`]: network namespaces of our own, taps inside them.
//! * [`bridge`]: namespace + tap + relay to QEMU's `-netdev dgram` socket.
//! * [`relay`] and [`impair`]: frame relay with seeded impairment and pcap.
//! * [`qemu`]: booting the firmware through `ci/qemu-run` on the bridge.

pub mod bridge;
pub mod impair;
pub mod netns;
pub mod qemu;
pub mod relay;
pub mod server;
