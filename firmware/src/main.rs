//! WebSocket reverse-echo client for QEMU's lm3s6965evb.
//!
//! Boot: read the command line, print the banner, then run the mode the options select.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use lm3s6965 as _; // the interrupt vector table
use panic_semihosting as _;

use firmware::cmdline;
use firmware::config::{Config, Crash, Mode, USAGE};

mod ethernet;
mod exit;
mod fault;
mod host;

use exit::{exit, ExitCode};

/// Name and version printed in the banner.
const NAME: &str = env!("CARGO_PKG_NAME");
const VERSION: &str = env!("CARGO_PKG_VERSION");

#[entry]
fn main() -> ! {
    let mac = ethernet::mac_address();
    hprintln!(
        "{} {} on lm3s6965evb, mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        NAME,
        VERSION,
        mac[0],
        mac[1],
        mac[2],
        mac[3],
        mac[4],
        mac[5]
    );

    // The command line and everything borrowed from it live as long as the program.
    let mut line = [0u8; host::CMDLINE_CAPACITY];
    let Some(len) = host::read_cmdline(&mut line) else {
        hprintln!(
            "error: cannot read the command line (longer than {} bytes?)",
            line.len()
        );
        exit(ExitCode::Usage as u8)
    };
    let args = match cmdline::split(&mut line[..len]) {
        Ok(args) => args,
        Err(e) => usage_error(e.as_str(), ""),
    };
    for (i, arg) in args.iter().enumerate().skip(1) {
        hprintln!("arg {}: {:?}", i, arg);
    }
    let config = match Config::parse(&args) {
        Ok(config) => config,
        Err(e) => usage_error(e.message, e.argument),
    };
    if config.help {
        hprintln!("{}", USAGE);
        exit(ExitCode::Success as u8)
    }
    match config.crash {
        Some(Crash::Panic) => panic!("crash requested by --crash panic"),
        Some(Crash::HardFault) => fault::trigger_hardfault(),
        None => {}
    }
    match config.mode {
        Mode::BootCheck => {
            hprintln!("boot check ok");
            exit(ExitCode::Success as u8)
        }
        Mode::ReverseEcho | Mode::Echo | Mode::Autobahn => {
            hprintln!("error: network modes are not built yet");
            exit(ExitCode::Usage as u8)
        }
    }
}

fn usage_error(message: &str, argument: &str) -> ! {
    hprintln!("error: {}: {}\n{}", message, argument, USAGE);
    exit(ExitCode::Usage as u8)
}
