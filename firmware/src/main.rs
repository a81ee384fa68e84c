//! WebSocket reverse-echo client for QEMU's lm3s6965evb.
//!
//! The binary's layers, each a folder whose `mod.rs` is its page; imports point
//! down only (`ci/check-layers.sh` checks): [`app`] (the client modes) -> [`net`]
//! (smoltcp, DHCP, TCP, ping) -> [`ethernet`] (the MAC driver) -> [`board`] (clock,
//! semihosting, faults, stack, entropy). The host-tested library (`firmware::`,
//! in `portable/`) sits beside them and depends on none of them.
//!
//! Boot: paint the stack, start the 1 ms clock, read the command line, print the
//! banner; then bring the network up (DHCP or `--ip`) and run the mode the options
//! select. Every path ends in [`finish`], which prints the driver's counters and
//! the stack high-water mark and exits with an [`ExitCode`].
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use panic_semihosting as _;

use firmware::cmdline;
use firmware::config::{Config, Crash, Mode, USAGE};
use firmware::text::Line;

mod app;
mod board;
mod ethernet;
mod net;

use board::exit::{exit, ExitCode};
use board::log::{log, print};
use board::{clock, entropy, fault, host, stack};
use net::{Deadline, Net};

/// Name and version printed in the banner.
const NAME: &str = env!("CARGO_PKG_NAME");
const VERSION: &str = env!("CARGO_PKG_VERSION");

#[entry]
fn main() -> ! {
    stack::paint();
    let Some(core) = cortex_m::Peripherals::take() else {
        unreachable!()
    };
    clock::start(core.SYST);
    let mac = net::mac_address();
    let mut banner = Line::new();
    banner.s(NAME).s(" ").s(VERSION).s(" on lm3s6965evb, mac ");
    for (i, byte) in mac.iter().enumerate() {
        banner.s(if i == 0 { "" } else { ":" }).hex(*byte as u32, 2);
    }
    log(&mut banner);

    // The command line and everything borrowed from it live as long as the program.
    let mut line = [0u8; host::CMDLINE_CAPACITY];
    let Some(len) = host::read_cmdline(&mut line) else {
        log(Line::new()
            .s("error: cannot read the command line (longer than ")
            .u(line.len() as u32)
            .s(" bytes?)"));
        exit(ExitCode::Usage as u8)
    };
    let args = match cmdline::split(&mut line[..len]) {
        Ok(args) => args,
        Err(e) => usage_error(e.as_str(), ""),
    };
    for (i, arg) in args.iter().enumerate().skip(1) {
        log(Line::new().s("arg ").u(i as u32).s(": ").quoted(arg));
    }
    let config = match Config::parse(&args) {
        Ok(config) => config,
        Err(e) => usage_error(e.message, e.argument),
    };
    if config.help {
        print(USAGE);
        print("\n");
        exit(ExitCode::Success as u8)
    }
    match config.crash {
        Some(Crash::Panic) => panic!("crash requested by --crash panic"),
        Some(Crash::HardFault) => fault::trigger_hardfault(),
        None => {}
    }
    if config.mode == Mode::BootCheck {
        print("boot check ok\n");
        exit(ExitCode::Success as u8)
    }

    let rng = entropy::Rng::seed(mac);
    let mut net = Net::new(mac, config.static_ip, rng);
    if net.wait_up(Deadline::after_ms(config.timeout_ms)).is_err() {
        fail(
            ExitCode::Network,
            Line::new()
                .s("error: no IPv4 address (DHCP) within ")
                .u(config.timeout_ms as u32)
                .s(" ms"),
        )
    }
    if let Some(target) = config.ping {
        ping(&mut net, target, config.timeout_ms);
    }
    let code = match config.mode {
        Mode::BootCheck | Mode::Ping => ExitCode::Success,
        Mode::ReverseEcho => app::reverse_echo(&mut net, &config),
        Mode::Echo => app::echo(&mut net, &config),
        Mode::Autobahn => app::autobahn(&mut net, &config),
    };
    finish(code)
}

/// `--ping`: three echo requests, each answered within the timeout.
fn ping(net: &mut Net, target: [u8; 4], timeout_ms: u32) {
    for seq in 0..3u16 {
        match net.ping(target, seq, Deadline::after_ms(timeout_ms)) {
            Ok(rtt) => log(Line::new()
                .s("ping ")
                .ip(target)
                .s(": seq ")
                .u(seq as u32)
                .s(" time ")
                .u(rtt)
                .s(" ms")),
            Err(_) => fail(
                ExitCode::Network,
                Line::new()
                    .s("error: no ping reply from ")
                    .ip(target)
                    .s(" within ")
                    .u(timeout_ms)
                    .s(" ms"),
            ),
        }
    }
}

/// Prints `message` and ends with `code`.
fn fail(code: ExitCode, message: &mut Line) -> ! {
    log(message);
    finish(code)
}

/// Prints the Ethernet counters and the stack high-water mark, then exits.
fn finish(code: ExitCode) -> ! {
    net::log_counters();
    log(Line::new()
        .s("stack: ")
        .u(stack::high_water() as u32)
        .s(" of ")
        .u(stack::size() as u32)
        .s(" bytes used; uptime ")
        .u(clock::now_ms())
        .s(" ms; exit ")
        .u(code as u32));
    exit(code as u8)
}

fn usage_error(message: &str, argument: &str) -> ! {
    log(Line::new().s("error: ").s(message).s(": ").s(argument));
    print(USAGE);
    print("\n");
    exit(ExitCode::Usage as u8)
}
