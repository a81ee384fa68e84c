//! Log output: whole lines over semihosting's stdout, built with [`Line`] so each
//! line costs one host call and no `core::fmt` machinery per call site.

use cortex_m_semihosting::hprint;
use firmware::text::Line;

/// Prints `line` and a newline.
pub fn log(line: &mut Line) {
    print(line.finish());
}

/// Prints `text` as it is (the one `core::fmt` call site of the log).
pub fn print(text: &str) {
    hprint!("{}", text);
}
