//! The network layer: smoltcp's IPv4 interface over the Ethernet driver, an
//! address by DHCP or from `--ip`, and the sleep-until-something-happens loop
//! everything waits in. The app sees none of smoltcp: [`tcp`] gives it one TCP
//! connection in plain terms, [`ping`] sends `--ping`'s echo requests.
//!
//! smoltcp answers ARP and ICMP echo requests (ping) itself.
//!
//! Dependencies point down: this module uses `ethernet` and `board`, and `app`
//! uses it (see `ci/check-layers.sh`).

mod ping;
pub mod tcp;

use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::socket::{dhcpv4, tcp as smol_tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use firmware::config::StaticIp;
use firmware::text::Line;

use crate::board::clock::{self, sleep};
pub use crate::board::clock::{Deadline, Timeout};
use crate::board::entropy::Rng;
use crate::board::log::log;
use crate::ethernet::{self, Ethernet};

/// The station address of the board's MAC (for the banner and the PRNG seed,
/// before the network is brought up).
pub use crate::ethernet::mac_address;

/// TCP receive window / buffer. Large enough for a few full segments so the
/// server is rarely throttled; WebSocket messages stream through it.
pub const TCP_RX: usize = 4096;
/// TCP send buffer.
pub const TCP_TX: usize = 2048;

/// The statics the network lives in: the buffers, all zero, in `.bss` (not on the
/// stack, and not in `.data`, whose initial values would be copied from flash).
struct Buffers {
    eth: Ethernet,
    tcp_rx: [u8; TCP_RX],
    tcp_tx: [u8; TCP_TX],
}

static mut BUFFERS: Buffers = Buffers {
    eth: Ethernet::EMPTY,
    tcp_rx: [0; TCP_RX],
    tcp_tx: [0; TCP_TX],
};

/// The small tables whose empty values are not all zero.
struct Tables {
    sockets: [SocketStorage<'static>; 2],
}

/// Filled in by [`Net::new`]: `MaybeUninit` keeps it in `.bss`.
static mut TABLES: MaybeUninit<Tables> = MaybeUninit::uninit();
static TAKEN: AtomicBool = AtomicBool::new(false);

/// smoltcp's view of the board's clock.
fn now() -> Instant {
    Instant::from_millis(clock::now_ms() as i64)
}

/// The network: interface, sockets and the driver under them. One exists.
pub struct Net {
    iface: Interface,
    eth: &'static mut Ethernet,
    sockets: SocketSet<'static>,
    dhcp: Option<SocketHandle>,
    tcp: SocketHandle,
    /// The PRNG (stirred with the timing of network events), for the app's
    /// WebSocket keys and masks.
    pub rng: Rng,
    /// This board's address once configured.
    address: Option<Ipv4Cidr>,
    /// The default route's gateway, if any (for `--ping` beyond the subnet).
    gateway: Option<Ipv4Address>,
    mac: EthernetAddress,
    next_port: u16,
    /// What `--ping` waits for in the received frames.
    watched: ping::Watched,
}

fn ip4(a: [u8; 4]) -> Ipv4Address {
    Ipv4Address::new(a[0], a[1], a[2], a[3])
}

impl Net {
    /// Brings the interface up: static address if given, else a DHCP client.
    pub fn new(mac: [u8; 6], static_ip: Option<StaticIp>, mut rng: Rng) -> Net {
        assert!(!TAKEN.swap(true, Relaxed), "Net::new called twice");
        // SAFETY: TAKEN guarantees these are the only references ever made to
        // BUFFERS and TABLES.
        let (st, tables): (&'static mut Buffers, &'static mut Tables) = unsafe {
            (
                &mut *core::ptr::addr_of_mut!(BUFFERS),
                (*core::ptr::addr_of_mut!(TABLES)).write(Tables {
                    sockets: [SocketStorage::EMPTY; 2],
                }),
            )
        };
        st.eth.init();
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = rng.next_u64();
        let mut iface = Interface::new(config, &mut st.eth, now());
        let mut sockets = SocketSet::new(&mut tables.sockets[..]);
        let tcp = sockets.add(smol_tcp::Socket::new(
            smol_tcp::SocketBuffer::new(&mut st.tcp_rx[..]),
            smol_tcp::SocketBuffer::new(&mut st.tcp_tx[..]),
        ));
        let mut address = None;
        let mut gateway = None;
        let dhcp = match static_ip {
            Some(s) => {
                let cidr = Ipv4Cidr::new(ip4(s.address), s.prefix_len);
                iface.update_ip_addrs(|addrs| {
                    let _ = addrs.push(IpCidr::Ipv4(cidr));
                });
                if let Some(gw) = s.gateway {
                    let _ = iface.routes_mut().add_default_ipv4_route(ip4(gw));
                    gateway = Some(ip4(gw));
                }
                address = Some(cidr);
                log(Line::new()
                    .s("net: static ")
                    .ip(s.address)
                    .s("/")
                    .u(s.prefix_len as u32));
                None
            }
            None => Some(sockets.add(dhcpv4::Socket::new())),
        };
        let next_port = 49152 + (rng.next_u64() % 16000) as u16;
        // SAFETY: the handler only touches the controller's interrupt registers and
        // an atomic; unmasking it cannot break a critical section (there is none).
        unsafe { cortex_m::peripheral::NVIC::unmask(lm3s6965::Interrupt::ETHERNET) };
        Net {
            iface,
            eth: &mut st.eth,
            sockets,
            dhcp,
            tcp,
            rng,
            address,
            gateway,
            mac: EthernetAddress(mac),
            next_port,
            watched: ping::Watched::NONE,
        }
    }

    /// Lets smoltcp process what arrived and send what is due; handles DHCP.
    /// Every received frame passes `--ping`'s watch on its way to smoltcp.
    pub fn poll(&mut self) {
        self.eth.service();
        let mut device = ping::Watch {
            eth: &mut *self.eth,
            watched: &mut self.watched,
        };
        self.iface.poll(now(), &mut device, &mut self.sockets);
        let Some(handle) = self.dhcp else { return };
        let event = match self.sockets.get_mut::<dhcpv4::Socket>(handle).poll() {
            None => return,
            Some(dhcpv4::Event::Configured(c)) => Some((c.address, c.router)),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        self.rng.stir_time();
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            if let Some((cidr, _)) = event {
                let _ = addrs.push(IpCidr::Ipv4(cidr));
            }
        });
        self.iface.routes_mut().remove_default_ipv4_route();
        self.gateway = event.and_then(|(_, router)| router);
        match event {
            Some((cidr, router)) => {
                let mut line = Line::new();
                line.s("dhcp: ")
                    .ip(cidr.address().octets())
                    .s("/")
                    .u(cidr.prefix_len() as u32);
                if let Some(router) = router {
                    let _ = self.iface.routes_mut().add_default_ipv4_route(router);
                    line.s(" gateway ").ip(router.octets());
                }
                line.s(" after ").u(clock::now_ms()).s(" ms");
                log(&mut line);
                self.address = Some(cidr);
            }
            None => self.address = None,
        }
    }

    /// Sleeps until an interrupt (a frame, the 1 ms tick) unless a frame waits.
    ///
    /// smoltcp's own timers are not asked (`poll_delay`, 0.7 KiB of flash): [`poll`]
    /// sends everything that can go, so what is left is due on a timer, and every
    /// smoltcp timer has millisecond resolution, which the 1 ms tick that ends every
    /// sleep honours.
    ///
    /// [`poll`]: Net::poll
    pub fn idle(&mut self) {
        sleep(ethernet::has_work);
    }

    /// Polls until `ready` returns a value or `deadline` passes.
    pub fn wait<T>(
        &mut self,
        deadline: Deadline,
        mut ready: impl FnMut(&mut Net) -> Option<T>,
    ) -> Result<T, Timeout> {
        loop {
            self.poll();
            if let Some(value) = ready(self) {
                return Ok(value);
            }
            if deadline.passed() {
                return Err(Timeout);
            }
            self.idle();
        }
    }

    /// Waits for an IPv4 address (DHCP lease or static).
    pub fn wait_up(&mut self, deadline: Deadline) -> Result<[u8; 4], Timeout> {
        self.wait(deadline, |net| net.address())
    }

    /// This board's IPv4 address, once it has one.
    pub fn address(&self) -> Option<[u8; 4]> {
        self.address.map(|cidr| cidr.address().octets())
    }
}

/// The Ethernet driver's counters, each after its label in the exit report:
/// "eth: in 12 frames/3456 bytes, out ...".
static COUNTERS: [(&str, &AtomicU32); 9] = {
    let s = &ethernet::STATS;
    [
        ("eth: in ", &s.frames_in),
        (" frames/", &s.bytes_in),
        (" bytes, out ", &s.frames_out),
        ("/", &s.bytes_out),
        (", dropped ", &s.rx_dropped),
        (", overruns ", &s.overruns),
        (", rx errors ", &s.rx_errors),
        (", tx errors ", &s.tx_errors),
        (", fifo resets ", &s.fifo_resets),
    ]
};

/// Prints the Ethernet driver's traffic and error counters (at exit).
pub fn log_counters() {
    let mut line = Line::new();
    for (label, counter) in &COUNTERS {
        line.s(label).u(counter.load(Relaxed));
    }
    log(&mut line);
}
