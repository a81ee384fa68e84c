//! Stack high-water mark: the stack is painted with a pattern at boot and, at exit,
//! the deepest word that no longer holds the pattern tells how much was ever used.
//!
//! The stack grows down from the top of RAM (`_stack_start`) towards the end of the
//! static data (`_stack_end`, placed by cortex-m-rt's `link.x` after `.uninit`).

const PAINT: u32 = 0xC0DE_57AC;

extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

fn bounds() -> (usize, usize) {
    // Only the symbols' addresses are taken; nothing is read through them.
    (
        core::ptr::addr_of!(_stack_end) as usize,
        core::ptr::addr_of!(_stack_start) as usize,
    )
}

/// Paints the free part of the stack, below the current frame. Call once, early.
#[inline(never)]
pub fn paint() {
    let (bottom, _) = bounds();
    // Leave a margin below the stack pointer for this function's own calls.
    let limit = cortex_m::register::msp::read() as usize - 64;
    let mut p = bottom;
    while p < limit {
        // SAFETY: [bottom, limit) lies between the end of the statics and the
        // current stack pointer: RAM that nothing uses yet; word-aligned by link.x.
        unsafe { (p as *mut u32).write_volatile(PAINT) };
        p += 4;
    }
}

/// Bytes of stack ever used since [`paint`].
pub fn high_water() -> usize {
    let (bottom, top) = bounds();
    let mut p = bottom;
    // SAFETY: reads stay within [bottom, top), RAM owned by the stack.
    while p < top && unsafe { (p as *const u32).read_volatile() } == PAINT {
        p += 4;
    }
    top - p
}

/// Bytes of RAM reserved for the stack (all RAM above the statics).
pub fn size() -> usize {
    let (bottom, top) = bounds();
    top - bottom
}
