//! The memory copy and fill routines the compiler calls (ARM EABI `__aeabi_mem*`
//! and C's `mem*`), a byte at a time: about 100 bytes of code instead of the 1.2 KiB
//! of compiler_builtins' word-at-a-time versions, whose weak symbols these replace.
//! The firmware's copies are small (frames, log lines, payload chunks of at most a
//! few KiB), so speed does not matter here.
//!
//! Volatile accesses keep LLVM from recognising the loops as a copy and turning
//! them back into a call to the very function being defined.

use core::ptr;

/// Copies `n` bytes, correct for overlapping ranges.
///
/// # Safety
/// `src` readable and `dest` writable for `n` bytes.
#[inline(never)]
unsafe fn copy(dest: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller's contract; the copy direction makes overlap safe.
    unsafe {
        if (dest as usize) <= (src as usize) {
            let mut i = 0;
            while i < n {
                ptr::write_volatile(dest.add(i), ptr::read_volatile(src.add(i)));
                i += 1;
            }
        } else {
            let mut i = n;
            while i > 0 {
                i -= 1;
                ptr::write_volatile(dest.add(i), ptr::read_volatile(src.add(i)));
            }
        }
    }
}

/// Fills `n` bytes with `c`.
///
/// # Safety
/// `dest` writable for `n` bytes.
#[inline(never)]
unsafe fn fill(dest: *mut u8, n: usize, c: u8) {
    let mut i = 0;
    while i < n {
        // SAFETY: the caller's contract.
        unsafe { ptr::write_volatile(dest.add(i), c) };
        i += 1;
    }
}

macro_rules! copies {
    ($($name:ident),*) => {$(
        /// # Safety
        /// As `memmove`.
        #[no_mangle]
        pub unsafe extern "C" fn $name(dest: *mut u8, src: *const u8, n: usize) {
            // SAFETY: the caller's contract.
            unsafe { copy(dest, src, n) }
        }
    )*};
}
copies!(
    __aeabi_memcpy,
    __aeabi_memcpy4,
    __aeabi_memcpy8,
    __aeabi_memmove,
    __aeabi_memmove4,
    __aeabi_memmove8
);

macro_rules! fills {
    ($($name:ident),*) => {$(
        /// # Safety
        /// As `memset`, with the EABI's argument order.
        #[no_mangle]
        pub unsafe extern "C" fn $name(dest: *mut u8, n: usize, c: i32) {
            // SAFETY: the caller's contract.
            unsafe { fill(dest, n, c as u8) }
        }
    )*};
}
fills!(__aeabi_memset, __aeabi_memset4, __aeabi_memset8);

macro_rules! clears {
    ($($name:ident),*) => {$(
        /// # Safety
        /// As `memset` with 0.
        #[no_mangle]
        pub unsafe extern "C" fn $name(dest: *mut u8, n: usize) {
            // SAFETY: the caller's contract.
            unsafe { fill(dest, n, 0) }
        }
    )*};
}
clears!(__aeabi_memclr, __aeabi_memclr4, __aeabi_memclr8);

/// # Safety
/// As C's `memcpy`.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe { copy(dest, src, n) };
    dest
}

/// # Safety
/// As C's `memmove`.
#[no_mangle]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe { copy(dest, src, n) };
    dest
}

/// # Safety
/// As C's `memset`.
#[no_mangle]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe { fill(dest, n, c as u8) };
    dest
}
