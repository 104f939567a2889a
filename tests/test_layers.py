"""The house's floors: cli_common at the bottom, storage on it, generators and teco side by side on top.
Every import in every file counts, the ones inside functions too."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FORBIDDEN = {                   # package -> top-level packages it must never import
    "cli_common": {"storage", "generators", "teco"},
    "storage": {"generators", "teco"},
    "generators": {"teco"},
    "teco": {"generators"},
}


def imported_packages(path: pathlib.Path) -> dict[str, int]:
    """Top-level package of every absolute import in the file -> first line it is imported on."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names = [node.args[0].value]           # importlib.import_module("generators.x"): an import all the same
        else:
            continue
        for name in names:
            found.setdefault(name.split(".")[0], node.lineno)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_crosses_a_floor(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no python files under {package}/"
    bad = [f"{f.relative_to(ROOT)}:{line} imports {pkg}" for f in files
           for pkg, line in imported_packages(f).items() if pkg in FORBIDDEN[package]]
    assert not bad, "\n".join(bad)


def test_the_walker_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\n\ndef g():\n    from teco.config import get_config\n    import generators.registry\n"
                 "    importlib.import_module('storage.x')\n")
    assert imported_packages(f) == {"os": 1, "teco": 4, "generators": 5, "storage": 6}
