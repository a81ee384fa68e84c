#!/bin/sh
# Runs every fuzz target for $1 seconds (default 600), one after another,
# from firmware/websocket/. Logs go to fuzz/logs/<target>.log.
set -u
T=${1:-600}
cd "$(dirname "$0")/.."
mkdir -p fuzz/logs
for t in ${TARGETS:-frame_rfc6455 frame_hixie76 handshake_server handshake_client}; do
    mkdir -p fuzz/corpus/$t
    RUSTC_BOOTSTRAP=1 cargo fuzz run $t fuzz/corpus/$t fuzz/seeds/$t -- \
        -max_total_time=$T -rss_limit_mb=2048 -print_final_stats=1 > fuzz/logs/$t.log 2>&1
    echo "$t exit $?" >> fuzz/logs/summary.txt
done
