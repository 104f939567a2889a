"""experiments/consistency.py end to end at toy scale: every stage runs, writes its outputs and is
skipped on a rerun (the plumbing, not the result)."""
import json
import os

import pytest

from experiments import consistency as exp


@pytest.mark.slow
def test_consistency_toy_end_to_end_and_resume(tmp_path, capsys):
    work, results = tmp_path / "work", tmp_path / "results"
    args = ["--preset", "toy", "--work", str(work), "--results", str(results), "--quiet"]
    assert exp.main(args) == 0, capsys.readouterr().err
    for stage in exp.STAGES[:-1]:
        assert (work / f"{stage}.done").exists(), stage
    for name in ("results.json", "results.md", "psnr_curves.png", "samples.gif", "samples.png"):
        assert (results / name).stat().st_size > 0, name
    r = json.loads((results / "results.json").read_text())
    assert set(r["models"]) == {"long", "short", "copy_last_frame"}
    assert r["models"]["short"]["context"] == exp.PRESETS["toy"].short_context
    assert r["models"]["long"]["context"] == exp.TOY_SEQ_LEN - 1
    assert r["protocol"]["runs"] == 2 and len(r["sampling_seeds"]) == 2
    for k in ("prior_nll_per_token", "code_entropy", "next_frame_acc", "copy_acc"):
        assert r["models"]["long"][k] is not None, k
    assert r["hypothesis"] in ("supported", "not supported", "no memory frames")
    # the context ablation scored the long model with its attention cut to the short context
    a = r["context_ablation"]
    assert (a["cut"], a["context"]) == (exp.PRESETS["toy"].short_context, exp.TOY_SEQ_LEN - 1)
    assert a["frames"]["all"] > 0 and a["all"]["nll_full"] > 0 and a["all"]["nll_cut"] > 0
    assert "Context ablation" in (results / "results.md").read_text()
    assert "| long |" in (results / "results.md").read_text()
    # train-teco scored the held-out windows at its checkpoints (steps 2 and 3): the learning figures
    from teco.runlog import read_log
    held = [r for r in read_log(work / "teco_long") if r.get("event") == "heldout"]
    assert [r["step"] for r in held] == [2, 3]
    assert all(r["frames"] > 0 and 0 <= r["copy_acc"] <= 1 and r["code_entropy"] > 0 for r in held)
    logged = [r for r in read_log(work / "teco_long") if "prior_loss" in r]
    assert logged and all(r["prior_nll_per_token"] > 0 and r["recon_ce_per_code"] > 0 for r in logged)
    # the store was made with the probe variant, recorded in its params
    from storage import StoreReader
    assert StoreReader(str(work / "data.zarr")).config.params["retrace_cells"] == 2
    capsys.readouterr()
    # a rerun skips every finished stage; --redo reruns one
    assert exp.main(args) == 0
    err = capsys.readouterr().err
    assert err.count("done before, skipped") == len(exp.STAGES) - 1     # report has no marker: it reruns
    os.remove(results / "results.md")
    assert exp.main(args + ["--stages", "report"]) == 0 and (results / "results.md").exists()


def test_consistency_cli_errors(tmp_path, capsys):
    assert exp.main(["--stages", "data,bogus", "--work", str(tmp_path)]) == 2
    assert "bogus" in capsys.readouterr().err
    # a work folder made with other settings is refused, not mixed
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "preset.json").write_text(json.dumps({"name": "full", "episodes": 1}))
    assert exp.main(["--preset", "toy", "--work", str(tmp_path / "w"), "--stages", "report", "--quiet"]) == 1
    assert "other settings" in capsys.readouterr().err
