//! Register map of the Ethernet controller (LM3S6965 datasheet, section 15.5).

/// Base address of the Ethernet MAC.
const BASE: usize = 0x4004_8000;
/// MACIA0: bytes 0-3 of the station address, little-endian.
const IA0: usize = 0x014;
/// MACIA1: bytes 4-5 of the station address in the low half.
const IA1: usize = 0x018;

/// Handle to the controller's registers. There is one controller, at a fixed address.
pub struct Regs(());

impl Regs {
    pub fn new() -> Self {
        Regs(())
    }

    fn read(&self, offset: usize) -> u32 {
        // SAFETY: `offset` is one of this module's register offsets, all inside the
        // controller's MMIO block, which is always mapped and 4-byte aligned.
        unsafe { ((BASE + offset) as *const u32).read_volatile() }
    }

    pub fn ia0(&self) -> u32 {
        self.read(IA0)
    }

    pub fn ia1(&self) -> u32 {
        self.read(IA1)
    }
}
