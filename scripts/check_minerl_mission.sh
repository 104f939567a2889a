#!/usr/bin/env bash
# Check the MineRL adapter's mission against the real minerl 0.4.4 Python layer (no Java, no Minecraft):
# builds the venv if needed (scripts/setup_minerl_venv.sh, about a minute), then runs
# tests/minerl_real/check_mission.py. Set COLLECTOR_ENV to the authors' env.py
# (wilson1yan/collect-minecraft) to also diff our mission XML against theirs.
#
#   scripts/check_minerl_mission.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-/tmp/minerl-venv}
if ! "$VENV/bin/python" -c "import minerl" >/dev/null 2>&1; then
  scripts/setup_minerl_venv.sh "$VENV" >/dev/null
fi
extra=()
[ -n "${COLLECTOR_ENV:-}" ] && extra=(--collector-env "$COLLECTOR_ENV")
PYTHONPATH="$PWD" PYTHONWARNINGS=ignore "$VENV/bin/python" tests/minerl_real/check_mission.py "${extra[@]}"
