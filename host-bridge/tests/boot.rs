//! The firmware image boots on QEMU's lm3s6965evb, reads its command line and
//! exits with a status a script can test; faults end it clearly, never hang it.

mod common;
use common::boot;

#[test]
fn boots_prints_banner_and_arguments_and_exits_zero() {
    let run = boot(
        &["--count", "3", "--message", "two words, \"quoted\" \\ here"],
        None,
        60,
    );
    run.assert_status(0);
    run.assert_printed(concat!(
        "firmware ",
        env!("CARGO_PKG_VERSION"),
        " on lm3s6965evb, mac 52:54:00:12:34:56"
    ));
    run.assert_printed("arg 1: \"--count\"\narg 2: \"3\"\narg 3: \"--message\"\n");
    run.assert_printed(r#"arg 4: "two words, \"quoted\" \\ here""#);
    run.assert_printed("boot check ok");
}

#[test]
fn panic_prints_message_and_exits_non_zero() {
    let run = boot(&["--crash", "panic"], None, 60);
    run.assert_status(1);
    // Locations are left out of the image (-Zlocation-detail=none): "<redacted>:0:0".
    run.assert_printed("panicked at");
    run.assert_printed("crash requested by --crash panic");
}

#[test]
fn hardfault_prints_registers_and_exits_non_zero() {
    let run = boot(&["--crash", "hardfault"], None, 60);
    run.assert_status(3);
    run.assert_printed("HARD FAULT: pc=0x");
    run.assert_printed("HFSR=0x40000000"); // FORCED: the UsageFault escalated
}

#[test]
fn bad_arguments_are_named_and_exit_two() {
    let run = boot(&["--count", "many"], None, 60);
    run.assert_status(2);
    run.assert_printed("error: --count takes a whole number: many");
    run.assert_printed("usage: firmware");
}
