#!/usr/bin/env bash
# Everything CI checks, in the order a failure is cheapest to see: set-up, format,
# lints, unit and property tests, then the end-to-end tests that boot the real
# firmware image under QEMU. `.ci/run` and the GitHub workflow run exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Under sudo, whatever the suite builds or writes as root in the user's tree (target/,
# the logs and captures in target/e2e/) is handed back to the user at the end, however
# the suite ends. (The runs themselves already write as the user: host-bridge run drops
# to SUDO_UID after its set-up.)
if [ "$(id -u)" = 0 ] && [ -n "${SUDO_UID:-}" ] && [ "${SUDO_UID}" != 0 ]; then
    give_back() { find . -xdev -user 0 ! -path ./.git ! -path './.git/*' -exec chown -h "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" {} + 2>/dev/null || true; }
    trap give_back EXIT
fi

bash ci/setup.sh
# shellcheck source=ci/toolchain.sh
source ci/toolchain.sh
export PYTHON="$PWD/target/ci-venv/bin/python"

step() { printf '\n=== %s\n' "$*"; }

step "format"
cargo fmt --all --check

step "lint scripts and the workflow"
shellcheck -x ci/*.sh ci/cargo-firmware ci/qemu-run .ci/run firmware/tools/rustc-gate firmware/tools/run-on-qemu
target/ci-venv/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

step "firmware layers: imports point down"
bash ci/check-layers.sh

step "lint host crates"
cargo clippy -p websocket -p reverse-echo -p host-bridge -p bench --all-targets -- -D warnings
cargo clippy -p firmware --lib --tests -- -D warnings

step "lint and build the firmware image ($FW_TOOLCHAIN toolchain)"
if [ "$FW_TOOLCHAIN" = rustup ]; then
    ci/cargo-firmware clippy -- -D warnings
else
    echo "(Debian's toolchain has no clippy: the image is built, and linted where rustup's target exists)"
fi
fw_build_test_images

step "tests"
rm -f target/e2e/skipped.txt
# The image built above (FIRMWARE_IMAGE) is the one every end-to-end test boots.
# One nextest run over the whole workspace: the firmware's host-testable library
# (its image is a binary without tests), the protocol library, the reverse-echo
# behaviour, host-bridge (unit, integration and end-to-end tests) and the bench's
# load generator. Profile `ci` (.config/nextest.toml): no retries, a slow test is ended,
# JUnit in target/nextest/ci/junit.xml. TEST_PARTITION=count:K/N runs shard K of N
# (the workflow's matrix); the shards together run every test exactly once.
partition=()
if [ -n "${TEST_PARTITION:-}" ]; then
    partition=(--partition "$TEST_PARTITION")
fi
cargo nextest run --profile ci --workspace "${partition[@]}"
# nextest does not run documentation examples: cargo does (the first shard only).
case "${TEST_PARTITION:-count:1/1}" in
*:1/*) cargo test --doc -p websocket -p reverse-echo -p host-bridge ;;
esac

step "skipped (what this machine could not run)"
if [ -s target/e2e/skipped.txt ]; then
    cat target/e2e/skipped.txt
else
    echo "none: every test ran"
fi
