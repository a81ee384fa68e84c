//! Log output: whole lines over semihosting's stdout, built with [`Line`] so each
//! line costs one host call and no `core::fmt` machinery anywhere.

use core::cell::Cell;

use cortex_m::interrupt::{self, Mutex};
use cortex_m_semihosting::hio::{self, HostStream};
use firmware::text::Line;

/// The host's stdout, opened (SYS_OPEN ":tt") on first use and kept: each open
/// takes a new host file descriptor.
static STDOUT: Mutex<Cell<Option<HostStream>>> = Mutex::new(Cell::new(None));

/// Prints `line` and a newline.
pub fn log(line: &mut Line) {
    print(line.finish());
}

/// Prints `text` as it is (no formatting: a `core::fmt` call would link its
/// machinery, kilobytes of flash).
pub fn print(text: &str) {
    interrupt::free(|cs| {
        let cell = STDOUT.borrow(cs);
        let Some(mut out) = cell.get().or_else(|| hio::hstdout().ok()) else {
            return;
        };
        cell.set(Some(out));
        let _ = out.write_all(text.as_bytes());
    });
}
