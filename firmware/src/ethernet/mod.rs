//! Driver for the LM3S6965's on-chip Ethernet MAC (QEMU's `stellaris_enet`), as a
//! smoltcp [`Device`].
//!
//! - Receive: MACNP counts the frames in the 31-frame receive FIFO. A frame is read
//!   as `ceil(len / 4)` little-endian words from MACDATA, where `len`, the low half
//!   of the first word, counts the 2 length bytes, the frame and the 4 FCS bytes.
//!   Words land in a word-aligned buffer, so the frame is simply bytes `2..len-4`.
//! - Transmit: the frame is built at byte 2 of a word-aligned buffer whose bytes 0-1
//!   hold the payload length (frame minus the 14-byte header); its words go to
//!   MACDATA and NEWTX in MACTR sends it. The MAC appends the FCS and pads.
//! - IRQ 42 (the `ETHERNET` handler) acknowledges the sources and records them for the
//!   main loop, which wakes from WFI. Overruns and RX/TX errors are counted and
//!   cleared by resetting the FIFO: never fatal.
//!
//! The driver layer: it uses the board's registers and smoltcp's `phy` traits,
//! and nothing above it (whoever wants to look at frames wraps the [`Device`], as
//! `net` does for `--ping`; see `ci/check-layers.sh`).

pub mod regs;

use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

use lm3s6965::interrupt;
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use regs::{Int, Rctl, Tctl, Thr, Tr, Word};

/// Largest Ethernet frame handled, without FCS (1500-byte MTU + 14-byte header).
pub const MAX_FRAME: usize = 1514;
/// Buffer words: 2 length bytes + frame + 4 FCS bytes, rounded up to a word.
const BUF_WORDS: usize = (2 + MAX_FRAME + 4).div_ceil(4);

/// Traffic and error counters, readable from anywhere (`net` prints them at exit).
pub struct Stats {
    pub frames_in: AtomicU32,
    pub bytes_in: AtomicU32,
    pub frames_out: AtomicU32,
    pub bytes_out: AtomicU32,
    /// Frames dropped because their length word was impossible.
    pub rx_dropped: AtomicU32,
    /// Receive FIFO overruns (FOV).
    pub overruns: AtomicU32,
    /// Receive errors (RXER).
    pub rx_errors: AtomicU32,
    /// Transmit errors (TXER) and frames the driver refused to send.
    pub tx_errors: AtomicU32,
    /// Receive FIFO resets done to recover.
    pub fifo_resets: AtomicU32,
}

pub static STATS: Stats = Stats {
    frames_in: AtomicU32::new(0),
    bytes_in: AtomicU32::new(0),
    frames_out: AtomicU32::new(0),
    bytes_out: AtomicU32::new(0),
    rx_dropped: AtomicU32::new(0),
    overruns: AtomicU32::new(0),
    rx_errors: AtomicU32::new(0),
    tx_errors: AtomicU32::new(0),
    fifo_resets: AtomicU32::new(0),
};

/// Interrupt sources seen by the `ETHERNET` handler and not yet handled by the main loop.
static PENDING: AtomicU32 = AtomicU32::new(0);

/// The sources the driver unmasks: receive and the three error conditions. TXEMP is
/// left masked: transmission is synchronous enough (NEWTX is polled) that waking on
/// it would only cost an extra loop turn.
const ENABLED: Int = Int(Int::RX.0 | Int::TXER.0 | Int::FOV.0 | Int::RXER.0);

/// MACRCTL while running: receiver on, frames with a bad FCS rejected, multicast
/// accepted (unicast to this address and broadcast always are).
const RX_ON: Rctl = Rctl(Rctl::RXEN.0 | Rctl::BADCRC.0 | Rctl::AMUL.0);

/// The Ethernet interrupt handler (IRQ 42): acknowledges every source that is set
/// (the line is level-triggered) and leaves them for the main loop.
#[interrupt]
fn ETHERNET() {
    let ris = regs::RIS.read();
    regs::IACK.write(ris);
    PENDING.fetch_or(ris.0, Relaxed);
}

/// Whether the IRQ reported something the main loop has not looked at yet, or a
/// frame waits in the FIFO. Call with interrupts masked before sleeping.
pub fn has_work() -> bool {
    PENDING.load(Relaxed) != 0 || regs::NP.read().0 != 0
}

/// The station address QEMU (or the board's boot loader) put in MACIA0/MACIA1.
pub fn mac_address() -> [u8; 6] {
    let [a, b, c, d] = regs::IA0.read().0.to_le_bytes();
    let [e, f, _, _] = regs::IA1.read().0.to_le_bytes();
    [a, b, c, d, e, f]
}

/// The controller, owning its frame buffers. There is one, so only one may exist.
pub struct Ethernet {
    rx: [u32; BUF_WORDS],
    tx: [u32; BUF_WORDS],
}

impl Ethernet {
    /// The driver before [`Ethernet::init`]: empty buffers (a `const`, so that the
    /// driver can live in `.bss`).
    pub const EMPTY: Ethernet = Ethernet {
        rx: [0; BUF_WORDS],
        tx: [0; BUF_WORDS],
    };

    /// Brings the MAC up: clocks on, FIFOs empty, receive (rejecting bad CRC) and
    /// transmit (with padding and CRC) enabled, interrupts acknowledged and
    /// unmasked in the controller. The caller unmasks IRQ 42 in the NVIC.
    pub fn init(&mut self) {
        regs::sysctl::enable_ethernet_clocks();
        regs::IM.write(Int::NONE);
        regs::RCTL.write(Rctl::NONE);
        regs::TCTL.write(Tctl::NONE);
        regs::RCTL.write(Rctl::RSTFIFO);
        regs::THR.write(Thr::OFF);
        regs::TCTL.write(Tctl::TXEN | Tctl::PADEN | Tctl::CRC | Tctl::DUPLEX);
        regs::RCTL.write(RX_ON);
        // TXEMP is set from any earlier send: clear everything before unmasking.
        regs::IACK.write(Int(0x7F));
        PENDING.store(0, Relaxed);
        regs::IM.write(ENABLED);
    }

    /// Handles the error sources the IRQ recorded: counts them and, for receive
    /// errors, resets the receive FIFO. (TXER's acknowledge already emptied the
    /// transmit FIFO.)
    pub fn service(&mut self) {
        let pending = Int(PENDING.swap(0, Relaxed));
        if pending.any(Int::FOV) {
            STATS.overruns.fetch_add(1, Relaxed);
        }
        if pending.any(Int::RXER) {
            STATS.rx_errors.fetch_add(1, Relaxed);
        }
        if pending.any(Int::TXER) {
            STATS.tx_errors.fetch_add(1, Relaxed);
        }
        if pending.any(Int::FOV | Int::RXER) {
            reset_rx_fifo();
        }
    }

    /// Reads the next frame from the receive FIFO into `self.rx`; returns its length,
    /// or `None` when the FIFO is empty or the frame was dropped.
    fn read_frame(&mut self) -> Option<usize> {
        if regs::NP.read().0 == 0 {
            return None;
        }
        let first = regs::DATA.read().0;
        let total = (first & 0xFFFF) as usize;
        // 2 length bytes + at least a header + 4 FCS bytes, and it must fit.
        if !(2 + 14 + 4..=BUF_WORDS * 4).contains(&total) {
            // The length word cannot be trusted, so neither can the word count:
            // start over with an empty FIFO rather than read garbage as frames.
            STATS.rx_dropped.fetch_add(1, Relaxed);
            reset_rx_fifo();
            return None;
        }
        self.rx[0] = first;
        for word in self.rx[1..total.div_ceil(4)].iter_mut() {
            *word = regs::DATA.read().0;
        }
        let len = total - 6;
        STATS.frames_in.fetch_add(1, Relaxed);
        STATS.bytes_in.fetch_add(len as u32, Relaxed);
        Some(len)
    }
}

/// Empties the receive FIFO with the receiver stopped, as the datasheet asks, then
/// restarts it. Frames in the FIFO are lost (counted in `fifo_resets`).
fn reset_rx_fifo() {
    regs::RCTL.write(Rctl::BADCRC | Rctl::AMUL);
    regs::RCTL.write(Rctl::BADCRC | Rctl::AMUL | Rctl::RSTFIFO);
    regs::RCTL.write(RX_ON);
    STATS.fifo_resets.fetch_add(1, Relaxed);
}

/// Views a word buffer as bytes.
fn bytes(words: &[u32; BUF_WORDS]) -> &[u8; BUF_WORDS * 4] {
    // SAFETY: u32 has no padding and any 4 bytes are valid u8s; same size, and the
    // alignment of u8 (1) is weaker than u32's.
    unsafe { &*(words as *const [u32; BUF_WORDS] as *const [u8; BUF_WORDS * 4]) }
}

/// Views a word buffer as mutable bytes.
fn bytes_mut(words: &mut [u32; BUF_WORDS]) -> &mut [u8; BUF_WORDS * 4] {
    // SAFETY: as in `bytes`; every byte pattern is a valid u32, so writes through
    // the byte view cannot make the words invalid.
    unsafe { &mut *(words as *mut [u32; BUF_WORDS] as *mut [u8; BUF_WORDS * 4]) }
}

pub struct RxToken<'a> {
    buf: &'a [u32; BUF_WORDS],
    len: usize,
}

pub struct TxToken<'a> {
    buf: &'a mut [u32; BUF_WORDS],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&bytes(self.buf)[2..2 + self.len])
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.clamp(14, MAX_FRAME);
        let buf = bytes_mut(self.buf);
        let result = f(&mut buf[2..2 + len]);
        buf[..2].copy_from_slice(&((len - 14) as u16).to_le_bytes());
        // Zero the unused bytes of the last word (tidy; the MAC ignores them).
        let words = (2 + len).div_ceil(4);
        buf[2 + len..words * 4].fill(0);
        for &word in self.buf[..words].iter() {
            regs::DATA.write(Word(word));
        }
        regs::TR.write(Tr::NEWTX);
        STATS.frames_out.fetch_add(1, Relaxed);
        STATS.bytes_out.fetch_add(len as u32, Relaxed);
        result
    }
}

/// The transmitter is free when the previous frame has left (NEWTX reads 0).
fn tx_ready() -> bool {
    !regs::TR.read().any(Tr::NEWTX)
}

impl Device for Ethernet {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        if !tx_ready() {
            return None;
        }
        let len = self.read_frame()?;
        Some((
            RxToken { buf: &self.rx, len },
            TxToken { buf: &mut self.tx },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        tx_ready().then_some(TxToken { buf: &mut self.tx })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps.max_burst_size = Some(1);
        caps
    }
}
