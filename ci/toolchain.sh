# shellcheck shell=bash disable=SC2034 # the variables set here are read by the scripts that source it
# Sourced by the ci/ scripts: chooses how to build for thumbv7m-none-eabi on this machine.
#
# Sets FW_TOOLCHAIN to one of
#   rustup  - rustup's stable toolchain with the thumbv7m-none-eabi target and the
#             rust-src component (core's sources) installed;
#   debian  - Debian's rustc/cargo (packages rustc-web, cargo-web, rust-web-src, lld-22),
#             which ship core's sources;
#   none    - neither (run ci/setup.sh).
# and FW_CARGO to the command (an array) that runs cargo for the firmware, FW_CARGO_FLAGS
# to the flags it adds.
#
# Both toolchains build the image the same way, smallest first (the budget is 64 KiB of
# flash): core is built from source (-Zbuild-std=core) with its size-optimised variants
# (optimize_for_size), without panic locations (-Zlocation-detail=none: a panic prints
# its message only) and with `{:?}` compiled to nothing (-Zfmt-debug=none; the firmware
# never prints Debug), and lld folds identical functions (--icf=all). These are nightly
# flags, which RUSTC_BOOTSTRAP=1 allows on the stable compilers of both paths.

FW_TARGET=thumbv7m-none-eabi
DEBIAN_RUSTC=/usr/bin/rustc
DEBIAN_CARGO=/usr/bin/cargo
# Added to .cargo/config.toml's rustflags for the target (cargo merges the arrays).
FW_RUSTFLAGS="['-Zlocation-detail=none', '-Zfmt-debug=none', '-Zmir-opt-level=1', '-Ctarget-cpu=cortex-m3', '-Cllvm-args=-inline-threshold=50', '-Clink-arg=--icf=all']"

fw_rustup_has_target() {
    command -v rustc >/dev/null 2>&1 || return 1
    local sysroot
    sysroot=$(rustc --print sysroot 2>/dev/null) || return 1
    [ -d "$sysroot/lib/rustlib/$FW_TARGET/lib" ]
}

fw_rustup_has_src() {
    local sysroot
    sysroot=$(rustc --print sysroot 2>/dev/null) || return 1
    [ -d "$sysroot/lib/rustlib/src/rust/library/core" ]
}

fw_debian_ready() {
    [ -x "$DEBIAN_RUSTC" ] && [ -x "$DEBIAN_CARGO" ] &&
        [ -d /usr/lib/rustlib/src/rust/library/core ] &&
        command -v rust-lld >/dev/null 2>&1
}

fw_choose_toolchain() {
    FW_CARGO_FLAGS=(-Zbuild-std=core -Zbuild-std-features=optimize_for_size
        --config "target.$FW_TARGET.rustflags=$FW_RUSTFLAGS")
    if fw_rustup_has_target && fw_rustup_has_src; then
        FW_TOOLCHAIN=rustup
        FW_CARGO=(env RUSTC_BOOTSTRAP=1 cargo)
    elif fw_debian_ready; then
        FW_TOOLCHAIN=debian
        FW_CARGO=(env RUSTC="$DEBIAN_RUSTC" RUSTC_BOOTSTRAP=1
            CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$FW_ROOT/target/debian}" "$DEBIAN_CARGO")
    else
        FW_TOOLCHAIN=none
        FW_CARGO=()
        FW_CARGO_FLAGS=()
    fi
}

FW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fw_choose_toolchain

# Builds what the tests boot: the CI image (profile `firmware`), exported as
# FIRMWARE_IMAGE so that no test rebuilds it, and, where rustup's target exists, what
# `cargo build` in firmware/ makes (its dev profile, firmware/.cargo/config.toml), so
# that the front-door test's `cargo run` there boots at once. ci/test.sh and
# ci/soak.sh both call it.
fw_build_test_images() {
    (cd "$FW_ROOT" && ci/cargo-firmware build)
    if [ "$FW_TOOLCHAIN" = rustup ]; then
        (cd "$FW_ROOT/firmware" && cargo build)
    fi
    FIRMWARE_IMAGE=$("$FW_ROOT/ci/cargo-firmware" path)
    export FIRMWARE_IMAGE
}
