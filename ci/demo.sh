#!/usr/bin/env bash
# The demo: sets up the machine, builds the firmware and boots it under QEMU.
# Arguments are passed to the firmware (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
ci/cargo-firmware run -- "$@"
