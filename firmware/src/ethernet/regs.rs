//! Register map of the Ethernet controller (LM3S6965 datasheet, section 15.5,
//! "Ethernet Controller Register Descriptions"), checked against QEMU's model
//! (`hw/net/stellaris_enet.c`).
//!
//! Each register is a [`Reg`] typed by its value: bit fields are named constants of
//! small `Copy` newtypes, so a write says which bits it sets (embassy-style).

use core::marker::PhantomData;

/// Base address of the Ethernet MAC's register block.
const BASE: usize = 0x4004_8000;

/// One 32-bit memory-mapped register holding values of type `T`.
pub struct Reg<T> {
    offset: usize,
    _value: PhantomData<T>,
}

impl<T: From<u32> + Into<u32>> Reg<T> {
    const fn at(offset: usize) -> Self {
        Reg {
            offset,
            _value: PhantomData,
        }
    }

    #[inline(always)]
    pub fn read(&self) -> T {
        // SAFETY: every `Reg` is one of the constants below: an offset inside the
        // controller's 4 KiB MMIO block, which is always mapped and word-aligned.
        // Reads have no side effect except on MACDATA, whose users account for it.
        T::from(unsafe { ((BASE + self.offset) as *const u32).read_volatile() })
    }

    #[inline(always)]
    pub fn write(&self, value: T) {
        // SAFETY: as in `read`; a write only changes the controller's state.
        unsafe { ((BASE + self.offset) as *mut u32).write_volatile(value.into()) }
    }
}

macro_rules! bits {
    ($(#[$doc:meta])* $name:ident { $($(#[$bdoc:meta])* $bit:ident = $value:expr;)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
        pub struct $name(pub u32);
        #[allow(dead_code)]
        impl $name {
            $($(#[$bdoc])* pub const $bit: $name = $name($value);)*
            /// No bit set.
            pub const NONE: $name = $name(0);
            /// Whether any bit of `other` is set in `self`.
            pub fn any(self, other: $name) -> bool {
                self.0 & other.0 != 0
            }
        }
        impl core::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }
        impl From<u32> for $name {
            fn from(v: u32) -> $name {
                $name(v)
            }
        }
        impl From<$name> for u32 {
            fn from(v: $name) -> u32 {
                v.0
            }
        }
    };
}

bits! {
    /// Interrupt sources, as read from MACRIS, written to MACIACK (write 1 to clear)
    /// and to MACIM (1 = unmasked; reset value 0x7F, all unmasked).
    Int {
        /// RXINT: a frame was received (NP > 0).
        RX = 1 << 0;
        /// TXER: transmit error (frame longer than the FIFO). Acknowledging it
        /// also empties the transmit FIFO.
        TXER = 1 << 1;
        /// TXEMP: the transmit FIFO is empty (the last frame went out).
        TXEMP = 1 << 2;
        /// FOV: receive FIFO overrun: a frame was dropped.
        FOV = 1 << 3;
        /// RXER: receive error (bad CRC, length, alignment).
        RXER = 1 << 4;
        /// MDINT: an MII management transaction completed.
        MD = 1 << 5;
        /// PHYINT: the PHY raised an interrupt.
        PHY = 1 << 6;
    }
}

bits! {
    /// MACRCTL: receive control (reset 0x08).
    Rctl {
        /// RXEN: receiver enabled. Frames arriving while clear are dropped.
        RXEN = 1 << 0;
        /// AMUL: accept all multicast frames.
        AMUL = 1 << 1;
        /// PRMS: promiscuous mode.
        PRMS = 1 << 2;
        /// BADCRC: reject frames whose FCS is wrong.
        BADCRC = 1 << 3;
        /// RSTFIFO: empty the receive FIFO (write with RXEN clear).
        RSTFIFO = 1 << 4;
    }
}

bits! {
    /// MACTCTL: transmit control (reset 0).
    Tctl {
        /// TXEN: transmitter enabled.
        TXEN = 1 << 0;
        /// PADEN: pad frames shorter than 60 bytes with zeros.
        PADEN = 1 << 1;
        /// CRC: the MAC appends the FCS.
        CRC = 1 << 2;
        /// DUPLEX: full duplex.
        DUPLEX = 1 << 4;
    }
}

bits! {
    /// MACTR: transmission request.
    Tr {
        /// NEWTX: write 1 to send the frame in the FIFO; reads 1 until it is out.
        NEWTX = 1 << 0;
    }
}

bits! {
    /// MACTHR: transmit threshold. 0x3F (reset) disables early transmission: a frame
    /// is only sent when NEWTX is written.
    Thr {
        /// The reset value: threshold mode off.
        OFF = 0x3F;
    }
}

/// A plain 32-bit value register (FIFO data, counts, address halves).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Word(pub u32);

impl From<u32> for Word {
    fn from(v: u32) -> Word {
        Word(v)
    }
}

impl From<Word> for u32 {
    fn from(v: Word) -> u32 {
        v.0
    }
}

/// MACRIS (read): raw interrupt status. Same offset as MACIACK.
pub const RIS: Reg<Int> = Reg::at(0x000);
/// MACIACK (write): acknowledge (clear) the interrupt sources whose bits are set.
pub const IACK: Reg<Int> = Reg::at(0x000);
/// MACIM: interrupt mask (1 = source may raise IRQ 42).
pub const IM: Reg<Int> = Reg::at(0x004);
/// MACRCTL: receive control.
pub const RCTL: Reg<Rctl> = Reg::at(0x008);
/// MACTCTL: transmit control.
pub const TCTL: Reg<Tctl> = Reg::at(0x00C);
/// MACDATA: the FIFOs. Reading pops the next word of the receive FIFO (the first
/// word of a frame holds its length in the low half: frame + 2 length bytes + 4 FCS
/// bytes); writing pushes onto the transmit FIFO (first word: payload length without
/// the 14-byte header in the low half). Bytes are little-endian within each word.
pub const DATA: Reg<Word> = Reg::at(0x010);
/// MACIA0: station address bytes 0-3, little-endian.
pub const IA0: Reg<Word> = Reg::at(0x014);
/// MACIA1: station address bytes 4-5 in the low half.
pub const IA1: Reg<Word> = Reg::at(0x018);
/// MACTHR: transmit threshold.
pub const THR: Reg<Thr> = Reg::at(0x01C);
/// MACNP: number of frames in the receive FIFO (0..=31).
pub const NP: Reg<Word> = Reg::at(0x034);
/// MACTR: transmission request.
pub const TR: Reg<Tr> = Reg::at(0x038);

/// RCGC2, the System Control block's run-mode clock gating register 2: the MAC and
/// PHY clocks must be on before touching the controller on real silicon (QEMU does
/// not model gating).
pub mod sysctl {
    /// RCGC2 address.
    pub const RCGC2: usize = 0x400F_E108;
    /// EMAC0: Ethernet MAC clock.
    pub const EMAC0: u32 = 1 << 28;
    /// EPHY0: Ethernet PHY clock.
    pub const EPHY0: u32 = 1 << 30;

    /// Turns the MAC and PHY clocks on.
    pub fn enable_ethernet_clocks() {
        // SAFETY: RCGC2 is a always-mapped System Control register; setting the two
        // Ethernet gate bits only starts clocks, leaving the other gates as they were.
        unsafe {
            let reg = RCGC2 as *mut u32;
            reg.write_volatile(reg.read_volatile() | EMAC0 | EPHY0);
        }
        // The datasheet asks for a few cycles before the peripheral is touched.
        cortex_m::asm::delay(8);
    }
}
