# shellcheck shell=bash disable=SC2034 # the variables set here are read by the scripts that source it
# Sourced by the ci/ scripts: chooses how to build for thumbv7m-none-eabi on this machine.
#
# Sets FW_TOOLCHAIN to one of
#   rustup  - rustup's stable toolchain with the thumbv7m-none-eabi target installed;
#   debian  - Debian's rustc/cargo (packages rustc-web, cargo-web, rust-web-src, lld-22),
#             which ship core's sources: core is built from them (-Zbuild-std=core,
#             allowed on a stable compiler by RUSTC_BOOTSTRAP=1);
#   none    - neither (run ci/setup.sh).
# and FW_CARGO to the command (an array) that runs cargo for the firmware.

FW_TARGET=thumbv7m-none-eabi
DEBIAN_RUSTC=/usr/bin/rustc
DEBIAN_CARGO=/usr/bin/cargo

fw_rustup_has_target() {
    command -v rustc >/dev/null 2>&1 || return 1
    local sysroot
    sysroot=$(rustc --print sysroot 2>/dev/null) || return 1
    [ -d "$sysroot/lib/rustlib/$FW_TARGET/lib" ]
}

fw_debian_ready() {
    [ -x "$DEBIAN_RUSTC" ] && [ -x "$DEBIAN_CARGO" ] &&
        [ -d /usr/lib/rustlib/src/rust/library/core ] &&
        command -v rust-lld >/dev/null 2>&1
}

fw_choose_toolchain() {
    if fw_rustup_has_target; then
        FW_TOOLCHAIN=rustup
        FW_CARGO=(cargo)
        FW_CARGO_FLAGS=()
    elif fw_debian_ready; then
        FW_TOOLCHAIN=debian
        FW_CARGO=(env RUSTC="$DEBIAN_RUSTC" RUSTC_BOOTSTRAP=1
            CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$FW_ROOT/target/debian}" "$DEBIAN_CARGO")
        FW_CARGO_FLAGS=(-Zbuild-std=core)
    else
        FW_TOOLCHAIN=none
        FW_CARGO=()
        FW_CARGO_FLAGS=()
    fi
}

FW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fw_choose_toolchain
