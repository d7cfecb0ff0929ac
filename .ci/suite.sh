#!/usr/bin/env bash
# Runs a test command (its arguments), its output shown as it comes. If the command fails, the
# failing tests are printed once more at the end, with their errors, then the runner's summary:
# the TAP reporter shows a failure only where it happened, which the tail of a long CI log cuts off.
set -uo pipefail
log=$(mktemp "${TMPDIR:-/tmp}/veil-suite.XXXXXX")
trap 'rm -f "$log"' EXIT
"$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo
  echo "== the failing tests, again (exit $status):"
  # Each "not ok" line with the lines under it (its error and stack), the innermost first in the log.
  awk '/^ *not ok / { left = 30 } left > 0 { print; left-- }' "$log" | head -n 150
  grep -E '^# (tests|pass|fail) ' "$log" | tail -n 3
fi
exit "$status"
