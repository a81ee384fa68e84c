//! `--ping`: ICMP echo requests sent without a smoltcp socket (an ICMP or raw
//! socket costs 2.4 KiB of flash). It resolves the next hop with its own ARP
//! request, sends the frames through the driver, and picks the replies out of
//! the received frames with [`Watch`], a wrapper around the driver's [`Device`]
//! in the spirit of smoltcp's `phy::Tracer`: every frame still goes on to
//! smoltcp, and the driver knows nothing of it.

use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, TxToken};
use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    Icmpv4Message, Icmpv4Packet, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr,
};

use super::{ip4, now, Deadline, Net, Timeout};
use crate::board::clock;
use crate::ethernet::{self, Ethernet};

/// The driver as smoltcp sees it in [`Net::poll`]: every received frame is shown
/// to [`Watched::watch`] as smoltcp reads it.
pub(super) struct Watch<'a> {
    pub eth: &'a mut Ethernet,
    pub watched: &'a mut Watched,
}

/// A received frame on its way to smoltcp, seen by [`Watched::watch`] first.
pub(super) struct WatchRx<'a> {
    token: ethernet::RxToken<'a>,
    watched: &'a mut Watched,
}

impl phy::RxToken for WatchRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        self.token.consume(|frame| {
            self.watched.watch(frame);
            f(frame)
        })
    }
}

impl Device for Watch<'_> {
    type RxToken<'b>
        = WatchRx<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = ethernet::TxToken<'b>
    where
        Self: 'b;

    // Out of line: inlined, it tips LLVM into inlining smoltcp's whole
    // `process_ethernet` into `Net::poll`, 232 bytes more flash (measured with
    // firmware/tools/size-by-part.py).
    #[inline(never)]
    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (token, tx) = self.eth.receive(now)?;
        let watched = &mut *self.watched;
        Some((WatchRx { token, watched }, tx))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        self.eth.transmit(now)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.eth.capabilities()
    }
}

impl Net {
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
        let w = &mut self.watched;
        if w.hop != Some(hop) {
            w.hop = Some(hop);
            w.hop_mac = None;
        }
        w.target = target;
        w.reply = None;
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
                    |net| net.watched.hop_mac,
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
            |net| (net.watched.reply == Some(seq)).then(|| clock::now_ms().wrapping_sub(start)),
        )
    }

    /// Sends a request, and sends it again every second until `answer` gives a
    /// value or the deadline passes. A request or its answer can be lost on the
    /// wire, or in a receive FIFO reset after an overrun: one try is not enough.
    fn ask_every_second<T>(
        &mut self,
        deadline: Deadline,
        mut send: impl FnMut(&mut Net),
        answer: impl Fn(&Net) -> Option<T>,
    ) -> Result<T, Timeout> {
        loop {
            send(self);
            let first = deadline.earlier(Deadline::after_ms(1000));
            if let Ok(value) = self.wait(first, |net| answer(net)) {
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
        if let Some(tx) = self.eth.transmit(now()) {
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

/// What `--ping` waits for, filled in by [`Watched::watch`].
#[derive(Clone, Copy)]
pub(super) struct Watched {
    /// The next hop whose ARP reply is awaited, and its MAC once it came.
    hop: Option<Ipv4Address>,
    hop_mac: Option<EthernetAddress>,
    /// The pinged host, and the sequence number of its last echo reply.
    target: Ipv4Address,
    reply: Option<u16>,
}

impl Watched {
    /// Nothing awaited.
    pub const NONE: Watched = Watched {
        hop: None,
        hop_mac: None,
        target: Ipv4Address::UNSPECIFIED,
        reply: None,
    };

    /// Looks at every received Ethernet frame (called by [`Watch`], as smoltcp
    /// reads it) for what `--ping` waits for: the next hop's ARP reply and the target's
    /// echo replies. Read by offset (RFC 826, RFC 791, RFC 792): smoltcp's checked
    /// packet views would add their own copies of its parsers for this buffer type.
    fn watch(&mut self, frame: &[u8]) {
        let w = self;
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
            _ => {}
        }
    }
}
