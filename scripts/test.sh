#!/usr/bin/env bash
# Run the test suite: setup (idempotent) then pytest; extra arguments go to pytest,
# e.g. `bash scripts/test.sh -k testbed -x`.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

timings=$(mktemp)
trap 'rm -f "$timings"' EXIT

start=$(date +%s.%N)
if ! SETUP_TIMINGS_FILE="$timings" bash scripts/setup.sh; then
    echo "[test] setup failed; not running the tests" >&2
    exit 1
fi
setup_secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
images_secs=$(awk '$1 == "images" { print $2 }' "$timings")

start=$(date +%s.%N)
.venv/bin/pytest "$@"
rc=$?
suite_secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

echo "[test] setup ${setup_secs}s (image build ${images_secs:-?}s), test suite ${suite_secs}s" >&2
if [ "$rc" -eq 5 ]; then
    echo "[test] FAILED: pytest collected no tests (exit 5)" >&2
    exit 1
fi
if [ "$rc" -ne 0 ]; then
    echo "[test] FAILED: pytest exited $rc" >&2
fi
exit "$rc"
