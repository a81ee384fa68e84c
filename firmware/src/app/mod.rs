//! The client modes: reverse-echo (the tutorial's), echo and Autobahn.

use firmware::config::Config;

use crate::exit::ExitCode;
use crate::net::Net;

pub fn reverse_echo(_net: &mut Net, _config: &Config) -> ExitCode {
    ExitCode::Usage
}

pub fn echo(_net: &mut Net, _config: &Config) -> ExitCode {
    ExitCode::Usage
}

pub fn autobahn(_net: &mut Net, _config: &Config) -> ExitCode {
    ExitCode::Usage
}
