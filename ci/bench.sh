#!/usr/bin/env bash
# The benchmarks, in one command: sets the machine up, builds host-bridge, the bench
# crate and the firmware image in release mode, then runs
#   - the server grid: host-bridge's server, a tokio-tungstenite server and the
#     tutorial's tornado server under the same loads (C connections x S bytes), paired,
#     then host-bridge and tokio-tungstenite again under a two-thread load;
#   - the firmware end to end through QEMU (user network, tap bridge, QEMU's own tap);
#   - the firmware's flash/RAM by part (appended to footprint.csv);
# and writes host-bridge/bench/report/REPORT.md with its PNG charts.
#
#   bash ci/bench.sh                      the full run (about 6 minutes warm, 10 cold)
#   bash ci/bench.sh --secs 1 --reps 1    a quick one
#   bash ci/bench.sh impaired [ARGS]      only the lossy-bridge row (about 5 minutes; see
#                                         `bench impaired --help`), then REPORT.md
# Arguments go to `bench all` (see `bench all --help`). Run as root (namespaces, taps).
set -euo pipefail
cd "$(dirname "$0")/.."

bash ci/setup.sh

venv=target/ci-venv
if ! "$venv/bin/python" -c 'import tornado' 2>/dev/null; then
    echo "bench: installing tornado into $venv"
    "$venv/bin/pip" install -q tornado
fi
if ! command -v llvm-nm >/dev/null || ! command -v llvm-size >/dev/null; then
    echo "bench: installing llvm (llvm-nm, llvm-size)"
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends llvm >/dev/null
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
echo "bench: building (release)"
cargo build --release -q -p bench
if ! cargo build --release -q -p host-bridge; then
    echo "bench: host-bridge does not build: its rows will say so" >&2
fi
ci/cargo-firmware build -q

mode=all
if [ "${1:-}" = impaired ]; then
    mode=impaired
    shift
fi
exec "$CARGO_TARGET_DIR/release/bench" "$mode" --no-build --out host-bridge/bench/report "$@"
