# Sourced by the bench scripts (`. "$(dirname "$0")/lib.sh"`): what they share. Strict mode, the
# repository root as the working folder (so that the scripts run from anywhere), and the median
# step time of a tic-train run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# median_step METRICS SKIP DIGITS: the median of the step_s fields of the tic-train metrics file
# METRICS after its first SKIP steps (warm-up), printed with DIGITS decimals.
median_step() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, statistics, sys
path, skip, digits = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = [json.loads(l)["step_s"] for l in open(path)][skip:]
print(f"{statistics.median(s):.{digits}f}")
PY
}
