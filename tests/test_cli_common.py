"""The bottom floor: one-line errors for every layer's UserError, one strict policy for recorded configs."""
import dataclasses
import os

import pytest

from cli_common import UserError, run_main, strict_from_json
from generators.backend import BackendUnavailable
from storage import StoreConfig
from storage.schema import StoreError


def test_layer_errors_are_user_errors_and_print_one_line(capsys):
    for err in (StoreError("store x is damaged"), BackendUnavailable("install y"), UserError("bad z")):
        assert isinstance(err, UserError)

        def fail(err=err):
            raise err
        assert run_main(fail, "prog") == 2
        assert capsys.readouterr().err == f"prog: error: {err}\n"

    def wrapped():                        # our own message for a full disk names the path: it is kept
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            raise UserError("cannot write checkpoint /runs/x: No space left on device; free space") from None
    assert run_main(wrapped, "prog") == 2
    assert "/runs/x" in capsys.readouterr().err

    def library():                        # a library's error around a full disk: the OS error's line
        try:
            raise OSError(28, "No space left on device", "/data/y")
        except OSError:
            raise ValueError("codec failed")
    assert run_main(library, "prog") == 2
    assert "No space left on device: /data/y" in capsys.readouterr().err
    with pytest.raises(KeyError):        # anything else is a bug: its traceback stays
        run_main(lambda: {}["k"], "prog")


def test_recorded_configs_refuse_unknown_fields():
    cfg = StoreConfig(dataset="d", episodes=2, length=3, height=4, width=4, action_names=["a"], pose_names=[])
    assert StoreConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match=r"unknown store config fields: \['future'\]"):
        StoreConfig.from_json({**cfg.to_json(), "future": 1})

    @dataclasses.dataclass
    class C:
        a: int = 1
    assert strict_from_json(C, {}, "c") == C()
    with pytest.raises(ValueError, match="must be a JSON object"):
        strict_from_json(C, [1], "c")


def _console_scripts() -> dict[str, str]:
    import tomllib
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]["scripts"]


def test_every_console_script_states_each_default_once(capsys):
    import importlib
    scripts = _console_scripts()
    texts = {}
    for name, target in scripts.items():
        module, fn = target.split(":")
        main = getattr(importlib.import_module(module), fn)
        for argv in ([["info", "--help"], ["verify", "--help"], ["preview", "--help"], ["import", "--help"]]
                     if name == "teco-store" else [["--help"]]):
            with pytest.raises(SystemExit) as e:
                main(argv)
            assert e.value.code == 0, (name, argv)
            text = " ".join(capsys.readouterr().out.split())
            assert "(default: None)" not in text and "(default: False)" not in text, (name, argv, text)
            texts[f"{name} {argv[0]}"] = text
    gen = texts["gen-dmlab --help"]
    assert "--workers WORKERS simulator actors (default: all CPUs of the cluster) --address" in gen
    assert "(default: no limit)" in texts["gen-habitat --help"]
    assert "DataLoader processes per rank (default: 2)" in texts["train-teco --help"]
    assert "animation (default: 15)" in texts["teco-store preview"]


def test_a_closed_output_pipe_ends_quietly_and_other_broken_pipes_stay_bugs(tmp_path):
    import subprocess
    import sys
    code = ("import sys\nfrom cli_common import run_main\n"
            "def f():\n    for i in range(200000): print('line', i)\n"
            "sys.exit(run_main(f, 'prog'))\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # `prog | head -1`: the reader leaves after one line
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141 and err == "", err

    def other_pipe():                     # not standard output's pipe (here stdout is pytest's capture): a bug
        raise BrokenPipeError(32, "Broken pipe")
    with pytest.raises(BrokenPipeError):
        run_main(other_pipe, "prog")


def test_object_store_credentials_and_endpoint_errors_are_one_line(capsys):
    class NoCredentialsError(Exception):          # what botocore raises, matched by name
        pass

    def no_credentials():
        try:
            raise NoCredentialsError("Unable to locate credentials")
        except NoCredentialsError as e:
            raise RuntimeError("s3fs wrapper") from e
    assert run_main(no_credentials, "prog") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Unable to locate credentials" in err and "AWS_*" in err
