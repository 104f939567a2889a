"""The MineRL adapter's mission against the REAL minerl 0.4.4 Python layer and Malmo's Mission.xsd.

minerl 0.4.4 cannot live in the project's environment (it pins gym < 0.20 and numpy < 1.24), so it runs
in its own venv: build it with `scripts/setup_minerl_venv.sh` (about a minute, ~110 MB download; no
Java). The venv's python is $MINERL_VENV_PYTHON, else /tmp/minerl-venv/bin/python; without it the test
is skipped. The checks themselves are in tests/minerl_real/check_mission.py.
"""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "tests" / "minerl_real" / "check_mission.py"
VENV_PYTHON = os.environ.get("MINERL_VENV_PYTHON", "/tmp/minerl-venv/bin/python")


def _has_minerl(py: str) -> bool:
    if not os.access(py, os.X_OK):
        return False
    probe = "import minerl.herobraine.env_specs.simple_embodiment, lxml"
    return subprocess.run([py, "-c", probe], capture_output=True, timeout=120).returncode == 0


pytestmark = pytest.mark.skipif(not _has_minerl(VENV_PYTHON),
                                reason=f"no minerl 0.4.4 venv at {VENV_PYTHON}: run scripts/setup_minerl_venv.sh "
                                       "(or set MINERL_VENV_PYTHON)")


def _run(*args, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run([VENV_PYTHON, str(CHECK), *args], capture_output=True, text=True, env=env, timeout=300,
                          cwd=ROOT)


def test_mission_validates_against_mission_xsd_and_carries_the_collectors_settings():
    r = _run()
    assert r.returncode == 0, r.stderr[-3000:]
    assert '"xsd_valid": true' in r.stdout.splitlines()[-1]


def test_the_check_fails_on_a_mission_without_the_collectors_sea_level(tmp_path):
    # the same check, with real.generator_options patched to Minecraft's default sea level: it must fail
    shim = tmp_path / "sitecustomize.py"
    shim.write_text("import generators.minecraft.real as r\n_g = r.generator_options\n"
                    "r.generator_options = lambda b=6, s=1: _g(b, 63)\n")
    r = _run(env_extra={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert r.returncode != 0 and "seaLevel" in r.stderr
