#!/usr/bin/env bash
# Builds the cargo-fuzz targets (fuzz/, nightly + libFuzzer) and runs each for a while, one
# process at a time on one core. Not part of scripts/test-all.sh (CI has 2 cores and a time
# budget); the normal test suite replays the committed inputs instead (tests/tests/fuzz_replay.rs).
#
#   scripts/fuzz.sh [seconds-per-target] [target...]
#
# Default: 10 seconds for each of the targets below. Needs `rustup toolchain install nightly`
# and `cargo install cargo-fuzz`. The growing corpus is kept in fuzz/corpus/<target>/ (not
# committed; reused by the next run), crashes in fuzz/artifacts/<target>/. A summary line per
# target (seconds, executions, outcome) goes to standard output and to fuzz/runs.log; see
# FUZZING.md for what to do with a finding.
set -uo pipefail
cd "$(dirname "$0")/.."

secs=${1:-10}
shift $(($# > 0 ? 1 : 0))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(wire conntrack defrag rules config control pcap l2 engine helper_ftp helper_tftp helper_talk
             ipsec_decap ipsec_parse h323_per h323_ras h323_q931 h323_h245)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
fi

# No sanitizer: the code under test is safe Rust (ASan would halve the speed for nothing
# it can see); debug assertions and overflow checks stay on (cargo-fuzz's default).
flags=(--fuzz-dir fuzz -s none)
cargo +nightly fuzz build "${flags[@]}" || exit 2

bin=fuzz/target/x86_64-unknown-linux-gnu/release
found=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    dict=()
    [ -f "fuzz/dicts/$t.dict" ] && dict=("-dict=fuzz/dicts/$t.dict")
    log="fuzz/artifacts/$t/last-run.log"
    # The binary built above, run directly (as `cargo fuzz run` would, without rebuilding
    # from sources edited since). New inputs go to the first folder (the working corpus);
    # the seeds are only read. One process (libFuzzer's default: no -jobs/-workers fork).
    start=$(date +%s)
    nice -n 10 "$bin/$t" "fuzz/corpus/$t" "fuzz/seeds/$t" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" "${dict[@]}" >"$log" 2>&1
    rc=$?
    took=$(($(date +%s) - start))
    # libFuzzer's count (printed on a crash too, by -print_final_stats).
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ $rc -eq 0 ]; then
        outcome=ok
    else
        outcome="FINDING (exit $rc): $(grep -a -o 'Test unit written to .*\|panicked at .*' "$log" | head -2 | tr '\n' ' ')"
        found=1
    fi
    line="$(date -u +%Y-%m-%dT%H:%M:%SZ) target=$t seconds=$took execs=${execs:-?} $outcome"
    echo "$line" | tee -a fuzz/runs.log
done
exit $found
