#!/usr/bin/env bash
# A flake hunt: the whole suite N times back to back from one build, optionally with
# every core kept busy by a lowest-priority load (as on a shared CI runner), then
# each test's pass count and every failure with its output.
#
#   bash ci/soak.sh N [--contention]
#
# Runs and JUnit reports go to target/soak/<start time>/ (run-K.log, run-K.xml).
# Exit status 0 only if every test passed in every run.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: $0 N [--contention]   (N: how many full runs, at least 1)" >&2
    exit 2
}
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
runs=$1
[[ $runs =~ ^[1-9][0-9]*$ ]] || usage
contention=false
if [ $# -eq 2 ]; then
    [ "$2" = --contention ] || usage
    contention=true
fi

bash ci/setup.sh
# shellcheck source=ci/toolchain.sh
source ci/toolchain.sh
export PYTHON="$PWD/target/ci-venv/bin/python"

# One build: the image, and every test binary (later runs find them fresh).
fw_build_test_images
cargo nextest run --profile ci --workspace --no-run

out=target/soak/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"

load_pids=()
stop_load() {
    if [ ${#load_pids[@]} -gt 0 ]; then
        kill "${load_pids[@]}" 2>/dev/null || true
    fi
}
trap stop_load EXIT
if $contention; then
    # One busy loop per core at the lowest priority: the suite gets the CPU only
    # when it asks, and waits a scheduler tick for it, as beside other jobs.
    for _ in $(seq "$(nproc)"); do
        nice -n 19 bash -c 'while :; do :; done' &
        load_pids+=($!)
    done
    echo "soak: $(nproc) busy loops at nice 19"
fi

start=$SECONDS
for k in $(seq "$runs"); do
    run_start=$SECONDS
    status=0
    cargo nextest run --profile ci --workspace >"$out/run-$k.log" 2>&1 || status=$?
    cp target/nextest/ci/junit.xml "$out/run-$k.xml" 2>/dev/null || true
    if [ "$status" != 0 ]; then
        # The next run overwrites the tests' logs, captures and reports: keep them.
        cp -a target/e2e "$out/run-$k-e2e" 2>/dev/null || true
    fi
    echo "soak: run $k/$runs: status $status, $((SECONDS - run_start)) s"
done
stop_load
echo "soak: $runs runs in $((SECONDS - start)) s$($contention && echo ' under contention'); reports in $out"

# Per-test pass counts and every failure, from the JUnit reports.
python3 - "$out" "$runs" <<'EOF'
import glob, os, sys
import xml.etree.ElementTree as ET

out, runs = sys.argv[1], int(sys.argv[2])
passes, failures, reports = {}, [], 0
for path in sorted(glob.glob(os.path.join(out, "run-*.xml"))):
    reports += 1
    run = os.path.basename(path)[4:-4]
    for case in ET.parse(path).getroot().iter("testcase"):
        name = "%s %s" % (case.get("classname"), case.get("name"))
        passes.setdefault(name, 0)
        bad = [e for e in case if e.tag in ("failure", "error", "flakyFailure", "rerunFailure")]
        if bad:
            text = "\n".join((e.get("message") or "") + "\n" + (e.text or "") for e in bad)
            for tag in ("system-out", "system-err"):
                for e in case.iter(tag):
                    text += "\n--- %s\n%s" % (tag, e.text or "")
            failures.append((run, name, text))
        elif case.find("skipped") is None:
            passes[name] += 1
width = max((len(n) for n in passes), default=0)
print("\nper-test passes (of %d runs):" % runs)
for name in sorted(passes):
    print("  %-*s %d/%d" % (width, name, passes[name], runs))
if reports != runs:
    print("\n%d of %d runs wrote no JUnit report: see their run-K.log" % (runs - reports, runs))
print("\n%d failures" % len(failures))
for run, name, text in failures:
    print("\n=== run %s: %s\n%s" % (run, name, text.strip()))
sys.exit(1 if failures or reports != runs else 0)
EOF
