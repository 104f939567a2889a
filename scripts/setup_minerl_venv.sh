#!/usr/bin/env bash
# A separate Python venv with minerl 0.4.4's Python layer (env specs, handlers, mission XML, Malmo's XSD
# schemas), installed from its sdist WITHOUT building Minecraft (no Java needed). Used by
# tests/test_minecraft_minerl_real.py to check our SimpleExplore mission against the real library.
#
#   scripts/setup_minerl_venv.sh [VENV_DIR]        (default: /tmp/minerl-venv; prints the venv's python)
#
# Why the pins: minerl 0.4.4 wants gym<0.20, and gym 0.19.0's setup.py only builds with setuptools<66 and
# wheel<0.38 (a non-PEP 440 extras spec), hence --no-build-isolation; minerl uses np.bool/np.float etc.,
# removed in numpy 1.24, hence numpy==1.23.5. minerl's setup.py builds Minecraft (gradle, Java) on install
# unless READTHEDOCS is set, which drops its custom build commands: we want only its Python files.
set -euo pipefail
VENV=${1:-/tmp/minerl-venv}
PY=${PYTHON:-python3.11}
export PIP_DISABLE_PIP_VERSION_CHECK=1
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
P="$VENV/bin/python -m pip install -q"
$P "setuptools<66" "wheel<0.38" "numpy==1.23.5"
$P --no-build-isolation "gym==0.19.0"
# minerl's module-level imports (its requirements.txt also lists GUI/docs extras that importing does not need)
$P "jinja2" "lxml" "xmltodict==0.12.0" "inflection" "coloredlogs" "psutil" "Pyro4" "tqdm" "requests" "dill" \
   "opencv-python-headless==4.8.1.78" "daemoniker" "pytest"
READTHEDOCS=1 $P --no-deps --no-build-isolation "minerl==0.4.4"
"$VENV/bin/python" - <<'PY'
import pathlib, minerl
from minerl.herobraine.hero import handlers
xsd = pathlib.Path(minerl.__file__).parent / "Malmo" / "Schemas" / "Mission.xsd"
assert xsd.is_file(), f"Mission.xsd missing at {xsd}"
assert hasattr(handlers, "DefaultWorldGenerator")
PY
echo "$VENV/bin/python"
