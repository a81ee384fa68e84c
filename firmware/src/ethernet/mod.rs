//! Driver for the LM3S6965's on-chip Ethernet MAC (QEMU's `stellaris_enet`).

mod regs;

/// The station address QEMU (or the board's boot loader) put in MACIA0/MACIA1.
pub fn mac_address() -> [u8; 6] {
    let regs = regs::Regs::new();
    let ia0 = regs.ia0();
    let ia1 = regs.ia1();
    let [a, b, c, d] = ia0.to_le_bytes();
    let [e, f, _, _] = ia1.to_le_bytes();
    [a, b, c, d, e, f]
}
