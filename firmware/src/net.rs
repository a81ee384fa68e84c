//! The IPv4 network: smoltcp's interface over the Ethernet driver, an address by
//! DHCP or from `--ip`, one TCP socket for the WebSocket client, an ICMP socket for
//! `--ping`, and the sleep-until-something-happens loop everything waits in.
//!
//! smoltcp answers ARP and ICMP echo requests (ping) itself.

use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{dhcpv4, raw, tcp};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Message, Icmpv4Packet, IpAddress, IpCidr, IpProtocol,
    IpVersion, Ipv4Address, Ipv4Cidr, Ipv4Packet, Ipv4Repr,
};

use firmware::config::StaticIp;
use firmware::text::Line;

use crate::ethernet::{self, Ethernet};
use crate::log::log;
use crate::rng::Rng;
use crate::{clock, sleep};

/// TCP receive window / buffer. Large enough for a few full segments so the
/// server is rarely throttled; WebSocket messages stream through it.
pub const TCP_RX: usize = 4096;
/// TCP send buffer.
pub const TCP_TX: usize = 2048;
const ICMP_BUF: usize = 256;

/// The statics the network lives in: the buffers, all zero, in `.bss` (not on the
/// stack, and not in `.data`, whose initial values would be copied from flash).
struct Buffers {
    eth: Ethernet,
    tcp_rx: [u8; TCP_RX],
    tcp_tx: [u8; TCP_TX],
    icmp_rx: [u8; ICMP_BUF],
    icmp_tx: [u8; ICMP_BUF],
}

static mut BUFFERS: Buffers = Buffers {
    eth: Ethernet::EMPTY,
    tcp_rx: [0; TCP_RX],
    tcp_tx: [0; TCP_TX],
    icmp_rx: [0; ICMP_BUF],
    icmp_tx: [0; ICMP_BUF],
};

/// The small tables whose empty values are not all zero.
struct Tables {
    sockets: [SocketStorage<'static>; 3],
    icmp_rx_meta: [raw::PacketMetadata; 1],
    icmp_tx_meta: [raw::PacketMetadata; 1],
}

/// Filled in by [`Net::new`]: `MaybeUninit` keeps it in `.bss`.
static mut TABLES: MaybeUninit<Tables> = MaybeUninit::uninit();
static TAKEN: AtomicBool = AtomicBool::new(false);

/// A wait ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout;

/// A deadline on the millisecond clock.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(u32);

impl Deadline {
    pub fn after_ms(ms: u32) -> Self {
        Deadline(clock::now_ms().wrapping_add(ms))
    }

    pub fn passed(self) -> bool {
        clock::now_ms().wrapping_sub(self.0) as i32 >= 0
    }
}

pub struct Net {
    pub iface: Interface,
    eth: &'static mut Ethernet,
    pub sockets: SocketSet<'static>,
    dhcp: Option<SocketHandle>,
    pub tcp: SocketHandle,
    icmp: SocketHandle,
    pub rng: Rng,
    /// This board's address once configured.
    pub address: Option<Ipv4Cidr>,
    next_port: u16,
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
                    sockets: [SocketStorage::EMPTY; 3],
                    icmp_rx_meta: [raw::PacketMetadata::EMPTY; 1],
                    icmp_tx_meta: [raw::PacketMetadata::EMPTY; 1],
                }),
            )
        };
        st.eth.init();
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = rng.next_u64();
        let mut iface = Interface::new(config, &mut st.eth, clock::now());
        let mut sockets = SocketSet::new(&mut tables.sockets[..]);
        let tcp = sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(&mut st.tcp_rx[..]),
            tcp::SocketBuffer::new(&mut st.tcp_tx[..]),
        ));
        let icmp = sockets.add(raw::Socket::new(
            Some(IpVersion::Ipv4),
            Some(IpProtocol::Icmp),
            raw::PacketBuffer::new(&mut tables.icmp_rx_meta[..], &mut st.icmp_rx[..]),
            raw::PacketBuffer::new(&mut tables.icmp_tx_meta[..], &mut st.icmp_tx[..]),
        ));
        let mut address = None;
        let dhcp = match static_ip {
            Some(s) => {
                let cidr = Ipv4Cidr::new(ip4(s.address), s.prefix_len);
                iface.update_ip_addrs(|addrs| {
                    let _ = addrs.push(IpCidr::Ipv4(cidr));
                });
                if let Some(gw) = s.gateway {
                    let _ = iface.routes_mut().add_default_ipv4_route(ip4(gw));
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
            icmp,
            rng,
            address,
            next_port,
        }
    }

    /// Lets smoltcp process what arrived and send what is due; handles DHCP.
    pub fn poll(&mut self) {
        self.eth.service();
        self.iface.poll(clock::now(), self.eth, &mut self.sockets);
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

    /// Sleeps until an interrupt (a frame, the 1 ms tick) unless smoltcp has
    /// something to do right now.
    pub fn idle(&mut self) {
        let due_now = self
            .iface
            .poll_delay(clock::now(), &self.sockets)
            .is_some_and(|d| d.total_millis() == 0);
        if !due_now {
            sleep(ethernet::has_work);
        }
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
    pub fn wait_up(&mut self, deadline: Deadline) -> Result<Ipv4Cidr, Timeout> {
        self.wait(deadline, |net| net.address)
    }

    pub fn tcp(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.tcp)
    }

    /// Starts a TCP connection from a fresh ephemeral port.
    pub fn connect(&mut self, ip: [u8; 4], port: u16) -> Result<(), tcp::ConnectError> {
        self.next_port = if self.next_port >= 65000 {
            49152
        } else {
            self.next_port + 1
        };
        let local = self.next_port;
        let cx = self.iface.context();
        let socket = self.sockets.get_mut::<tcp::Socket>(self.tcp);
        socket.abort();
        socket.connect(cx, (IpAddress::Ipv4(ip4(ip)), port), local)
    }

    /// Sends one ICMP echo request to `target` and waits for its reply; returns the
    /// round-trip time in milliseconds. (A raw IPv4 socket for ICMP: 1.x KiB smaller
    /// than smoltcp's ICMP socket.)
    pub fn ping(&mut self, target: [u8; 4], seq: u16, deadline: Deadline) -> Result<u32, Timeout> {
        let ident = 0x5753;
        let handle = self.icmp;
        let src = self
            .address
            .map(|a| a.address())
            .unwrap_or(Ipv4Address::UNSPECIFIED);
        let socket = self.sockets.get_mut::<raw::Socket>(handle);
        let start = clock::now_ms();
        let payload = start.to_le_bytes();
        let repr = Ipv4Repr {
            src_addr: src,
            dst_addr: ip4(target),
            next_header: IpProtocol::Icmp,
            payload_len: 8 + payload.len(),
            hop_limit: 64,
        };
        if let Ok(buf) = socket.send(repr.buffer_len() + 8 + payload.len()) {
            let mut ip = Ipv4Packet::new_unchecked(buf);
            repr.emit(&mut ip, &ChecksumCapabilities::default());
            let mut packet = Icmpv4Packet::new_unchecked(ip.payload_mut());
            packet.set_msg_type(Icmpv4Message::EchoRequest);
            packet.set_msg_code(0);
            packet.set_echo_ident(ident);
            packet.set_echo_seq_no(seq);
            packet.data_mut().copy_from_slice(&payload);
            packet.fill_checksum();
        }
        self.wait(deadline, |net| {
            let socket = net.sockets.get_mut::<raw::Socket>(handle);
            while let Ok(data) = socket.recv() {
                let Ok(ip) = Ipv4Packet::new_checked(data) else {
                    continue;
                };
                let Ok(packet) = Icmpv4Packet::new_checked(ip.payload()) else {
                    continue;
                };
                if ip.src_addr() == ip4(target)
                    && packet.msg_type() == Icmpv4Message::EchoReply
                    && packet.echo_ident() == ident
                    && packet.echo_seq_no() == seq
                {
                    return Some(clock::now_ms().wrapping_sub(start));
                }
            }
            None
        })
    }
}
