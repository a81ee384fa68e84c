#!/usr/bin/env bash
# The demo: the whole tutorial in one terminal. Sets up the machine, builds the
# firmware and host-bridge, then `host-bridge run` starts the reverse-echo server,
# boots the image under QEMU (on the tap bridge as root, else on QEMU's user
# network), streams both sides' logs and exits with the firmware's status.
# Arguments go to the firmware, e.g. `bash ci/demo.sh --proto hixie76 --count 3`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
ci/cargo-firmware build
cargo build -q -p host-bridge
exec target/debug/host-bridge run -- "$@"
