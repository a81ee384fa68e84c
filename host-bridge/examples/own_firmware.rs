//! A firmware test written with `host_bridge::testing`, as you would write one for
//! your own image: start the reverse-echo server, boot the image on QEMU's user
//! network pointed at it, wait for its console lines, check its exit status.
//!
//!     cargo run -p host-bridge --example own_firmware               # this project's image
//!     FIRMWARE_IMAGE=path/to/your.elf cargo run -p host-bridge --example own_firmware
//!
//! Your image decides what it prints and which arguments it takes: change the
//! arguments and the awaited lines below to yours.

use std::time::Duration;

use anyhow::{ensure, Result};
use host_bridge::testing::{firmware_image, Board, Server};

fn main() -> Result<()> {
    let server = Server::start()?;
    let url = server.guest_url();
    println!("server on 127.0.0.1:{} (the guest's {url})", server.port());
    let args = ["--url", url.as_str(), "--count", "3"];
    let mut board = Board::boot(firmware_image(), &args, None, 60)?;
    println!(
        "{}",
        board.wait_line("connected to", Duration::from_secs(30))?
    );
    println!(
        "{}",
        board.wait_line("echoes matched", Duration::from_secs(30))?
    );
    let run = board.wait()?;
    ensure!(run.status == Some(0), "the firmware failed:\n{run}");
    println!("exit status 0: the test passes");
    Ok(())
}
