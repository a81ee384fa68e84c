//! The IPv4 network: smoltcp's interface over the Ethernet driver, an address by
//! DHCP or from `--ip`, one TCP socket for the WebSocket client, `--ping`, and the
//! sleep-until-something-happens loop everything waits in.
//!
//! smoltcp answers ARP and ICMP echo requests (ping) itself. `--ping` sends its own
//! echo requests without a smoltcp socket (an ICMP or raw socket costs 2.4 KiB of
//! flash): it resolves the next hop with its own ARP request, sends the frames
//! through the driver and picks the replies out of the received frames ([`watch`]),
//! which smoltcp still gets.

use core::cell::Cell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

use cortex_m::interrupt::{self, Mutex};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::{ChecksumCapabilities, Device, TxToken};
use smoltcp::socket::{dhcpv4, tcp};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    HardwareAddress, Icmpv4Message, Icmpv4Packet, IpAddress, IpCidr, IpProtocol, Ipv4Address,
    Ipv4Cidr, Ipv4Packet, Ipv4Repr,
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

    /// The sooner of the two (the clock wraps: compared by their difference).
    pub fn earlier(self, other: Deadline) -> Deadline {
        if other.0.wrapping_sub(self.0) as i32 >= 0 {
            self
        } else {
            other
        }
    }
}

pub struct Net {
    pub iface: Interface,
    eth: &'static mut Ethernet,
    pub sockets: SocketSet<'static>,
    dhcp: Option<SocketHandle>,
    pub tcp: SocketHandle,
    pub rng: Rng,
    /// This board's address once configured.
    pub address: Option<Ipv4Cidr>,
    /// The default route's gateway, if any (for `--ping` beyond the subnet).
    gateway: Option<Ipv4Address>,
    mac: EthernetAddress,
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
                    sockets: [SocketStorage::EMPTY; 2],
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
        // No Nagle: a message whose last segment is short would otherwise wait
        // for the ACK of the one before, which Linux delays up to 40 ms.
        socket.set_nagle_enabled(false);
        socket.connect(cx, (IpAddress::Ipv4(ip4(ip)), port), local)
    }

    /// Sends ICMP echo request `seq` to `target` and waits for its reply; returns
    /// the round-trip time in milliseconds. The next hop (`target` on the subnet,
    /// else the gateway) is resolved by ARP first, on the first ping.
    pub fn ping(&mut self, target: [u8; 4], seq: u16, deadline: Deadline) -> Result<u32, Timeout> {
        let target = ip4(target);
        let own = self.address.ok_or(Timeout)?;
        let hop = if own.contains_addr(&target) {
            target
        } else {
            self.gateway.ok_or(Timeout)?
        };
        let start = clock::now_ms();
        let mut w = watched();
        if w.hop != Some(hop) {
            w.hop = Some(hop);
            w.hop_mac = None;
        }
        w.target = target;
        w.reply = None;
        interrupt::free(|cs| WATCH.borrow(cs).set(w));
        let hop_mac = match w.hop_mac {
            Some(mac) => mac,
            None => {
                let arp = ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Request,
                    source_hardware_addr: self.mac,
                    source_protocol_addr: own.address(),
                    target_hardware_addr: EthernetAddress([0; 6]),
                    target_protocol_addr: hop,
                };
                self.ask_every_second(
                    deadline,
                    |net| {
                        net.send_frame(
                            EthernetAddress::BROADCAST,
                            EthernetProtocol::Arp,
                            28,
                            |buf| arp.emit(&mut ArpPacket::new_unchecked(buf)),
                        )
                    },
                    || watched().hop_mac,
                )?
            }
        };
        let payload = start.to_le_bytes();
        let repr = Ipv4Repr {
            src_addr: own.address(),
            dst_addr: target,
            next_header: IpProtocol::Icmp,
            payload_len: 8 + payload.len(),
            hop_limit: 64,
        };
        let request = |buf: &mut [u8]| {
            let mut ip = Ipv4Packet::new_unchecked(buf);
            repr.emit(&mut ip, &ChecksumCapabilities::default());
            let mut packet = Icmpv4Packet::new_unchecked(ip.payload_mut());
            packet.set_msg_type(Icmpv4Message::EchoRequest);
            packet.set_msg_code(0);
            packet.set_echo_ident(PING_IDENT);
            packet.set_echo_seq_no(seq);
            packet.data_mut().copy_from_slice(&payload);
            packet.fill_checksum();
        };
        self.ask_every_second(
            deadline,
            |net| {
                net.send_frame(
                    hop_mac,
                    EthernetProtocol::Ipv4,
                    20 + 8 + payload.len(),
                    request,
                )
            },
            || (watched().reply == Some(seq)).then(|| clock::now_ms().wrapping_sub(start)),
        )
    }

    /// Sends a request, and sends it again every second until `answer` gives a
    /// value or the deadline passes. A request or its answer can be lost on the
    /// wire, or in a receive FIFO reset after an overrun: one try is not enough.
    fn ask_every_second<T>(
        &mut self,
        deadline: Deadline,
        mut send: impl FnMut(&mut Net),
        answer: impl Fn() -> Option<T>,
    ) -> Result<T, Timeout> {
        loop {
            send(self);
            let first = deadline.earlier(Deadline::after_ms(1000));
            if let Ok(value) = self.wait(first, |_| answer()) {
                return Ok(value);
            }
            if deadline.passed() {
                return Err(Timeout);
            }
        }
    }

    /// Sends one Ethernet frame from this board to `dst` whose payload of `len`
    /// bytes `fill` writes (with smoltcp's emitters, which its own sending already
    /// links); dropped if the transmitter is busy (a lost ping).
    fn send_frame(
        &mut self,
        dst: EthernetAddress,
        ethertype: EthernetProtocol,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) {
        if let Some(tx) = self.eth.transmit(clock::now()) {
            tx.consume(14 + len, |buf| {
                let mut frame = EthernetFrame::new_unchecked(buf);
                frame.set_dst_addr(dst);
                frame.set_src_addr(self.mac);
                frame.set_ethertype(ethertype);
                fill(frame.payload_mut());
            });
        }
    }
}

/// The echo requests' identifier.
const PING_IDENT: u16 = 0x5753;

/// What `--ping` waits for, filled in by [`watch`].
#[derive(Clone, Copy)]
struct Watched {
    /// The next hop whose ARP reply is awaited, and its MAC once it came.
    hop: Option<Ipv4Address>,
    hop_mac: Option<EthernetAddress>,
    /// The pinged host, and the sequence number of its last echo reply.
    target: Ipv4Address,
    reply: Option<u16>,
}

static WATCH: Mutex<Cell<Watched>> = Mutex::new(Cell::new(Watched {
    hop: None,
    hop_mac: None,
    target: Ipv4Address::UNSPECIFIED,
    reply: None,
}));

fn watched() -> Watched {
    interrupt::free(|cs| WATCH.borrow(cs).get())
}

/// Looks at every received Ethernet frame (called by the driver, before smoltcp
/// gets it) for what `--ping` waits for: the next hop's ARP reply and the target's
/// echo replies. Read by offset (RFC 826, RFC 791, RFC 792): smoltcp's checked
/// packet views would add their own copies of its parsers for this buffer type.
pub fn watch(frame: &[u8]) {
    let mut w = watched();
    let Some(hop) = w.hop else { return };
    let field = |at: usize, len: usize| frame.get(at..at + len).unwrap_or(&[]);
    match field(12, 2) {
        // ARP reply for Ethernet/IPv4 from the next hop: its MAC.
        [0x08, 0x06]
            if field(14, 8) == [0, 1, 8, 0, 6, 4, 0, 2] && field(28, 4) == hop.octets() =>
        {
            // Present: the guard above read bytes 28..32.
            let Ok(mac) = <[u8; 6]>::try_from(field(22, 6)) else {
                return;
            };
            w.hop_mac = Some(EthernetAddress(mac));
        }
        // IPv4, ICMP, from the target: an echo reply with our identifier.
        [0x08, 0x00] if field(23, 1) == [1] && field(26, 4) == w.target.octets() => {
            let icmp = 14 + 4 * (field(14, 1).first().copied().unwrap_or(0) & 15) as usize;
            if field(icmp, 1) == [0] && field(icmp + 4, 2) == PING_IDENT.to_be_bytes() {
                let seq = field(icmp + 6, 2);
                w.reply = Some(u16::from_be_bytes([
                    seq.first().copied().unwrap_or(0),
                    seq.get(1).copied().unwrap_or(0),
                ]));
            }
        }
        _ => return,
    }
    interrupt::free(|cs| WATCH.borrow(cs).set(w));
}
