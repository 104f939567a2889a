"""Long- vs short-context TECO on revisits, on our own DMLab data: one command, resumable stage by stage.

    python -m experiments.consistency                   # the full experiment (<= 75 min on 2 CPU cores)
    python -m experiments.consistency --preset toy      # the plumbing in < 1 min (tests/test_experiment.py)

Stages, in order; each writes WORK/<stage>.done when finished and is skipped on a rerun (the report is
always redone), and an interrupted stage resumes where its tool stopped (gen-dmlab, train-vqgan --resume,
train-teco --resume):

  data       gen-dmlab, embedded, with the retrace probe (--retrace-cells: views recur 17-40 frames later)
  tokenizer  train-vqgan (GAN off), then teco-encode the whole store
  teco       two TECOs of one config trained side by side, one thread each: "long" (the full window) and
             "short" (--context 16)
  eval       eval-teco on the held-out episodes: long with short as baseline, copy-last-frame, revisit split
  samples    a labelled grid: ground truth | long | short, the conditioning boundary marked
  report     RESULTS/results.json + results.md (the table), psnr_curves.png, samples.gif + samples.png

experiments/README.md explains the figures. Nothing here changes the tools' defaults.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
STAGES = ("data", "tokenizer", "teco", "eval", "ablation", "samples", "report")


@dataclass
class Preset:
    """Everything the experiment chooses; `full` is sized for <= 75 minutes on 2 cores."""
    episodes: int = 400
    length: int = 300
    retrace_cells: int = 2
    gen_workers: int = 2
    test_fraction: float = 0.16          # 64 of 400 held out: eval-teco samples 64 distinct test episodes
    vq_config: str = "tiny64k"
    vq_steps: int = 4000                 # tiny64k: 17.9 / 18.7 / 19.3 / 19.9 dB at 600-1500 steps, rising
    vq_threads: int = 2                  # alone on the machine: both cores
    teco_config: str = "probe48"
    teco_steps: int = 3000               # 0.62 s of CPU per step at 48 frames, 1024 VQ codes: ~31 min
    short_context: int = 16
    cond: int = 36
    horizon: int = 60
    eval_examples: int = 64
    eval_runs: int = 3                   # one sampling seed per run
    sample_batch: int = 32
    grid_episodes: int = 4
    num_workers: int = 1                 # DataLoader processes per training run


PRESETS = {
    "full": Preset(),
    "toy": Preset(episodes=6, length=20, gen_workers=1, test_fraction=0.34, vq_steps=4, teco_steps=3,
                  short_context=2, cond=4, horizon=4, eval_examples=2, eval_runs=2, sample_batch=2,
                  grid_episodes=2, num_workers=0),
}
TOY_SEQ_LEN = 8      # the toy TECO window (the full one is the config's 48)


class StageError(RuntimeError):
    pass


# -- running the tools ------------------------------------------------------------------------------

def tool_env(threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    root = os.path.dirname(HERE)   # this checkout's packages win over an installed copy
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_tool(module: str, args: list[str], log_path: str, threads: int, quiet: bool) -> None:
    """python -m module args; output to the terminal (its own progress bar) and to log_path. A failure
    raises with the log's last lines."""
    cmd = [sys.executable, "-m", module, *map(str, args)]
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, env=tool_env(threads), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for chunk in iter(lambda: proc.stdout.read1(4096), b""):
            log.write(chunk.decode(errors="replace"))
            log.flush()
            if not quiet:
                sys.stderr.write(chunk.decode(errors="replace"))
                sys.stderr.flush()
        rc = proc.wait()
    if rc != 0:
        raise StageError(f"{module} failed (exit {rc}); last lines of {log_path}:\n" + tail(log_path))


def tail(path: str, n: int = 15) -> str:
    with open(path, errors="replace") as f:
        return "".join(f.read().replace("\r", "\n").splitlines(True)[-n:])


def last_step(run_dir: str) -> int:
    """The newest training step in a run's log.jsonl (0 when none yet)."""
    path = os.path.join(run_dir, "log.jsonl")
    step = 0
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    step = max(step, int(json.loads(line).get("step") or 0))
                except (ValueError, TypeError):
                    continue
    return step


def run_parallel(jobs: dict[str, tuple[str, list[str], str, str]], total: int, quiet: bool) -> None:
    """Run {name: (module, args, log, run_dir)} side by side with one thread each; one progress bar per
    job from its log.jsonl. Any failure stops the others and raises."""
    from tqdm import tqdm
    procs, bars = {}, {}
    for i, (name, (module, args, log_path, run_dir)) in enumerate(jobs.items()):
        log = open(log_path, "a")
        cmd = [sys.executable, "-m", module, *map(str, args)]
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        procs[name] = (subprocess.Popen(cmd, env=tool_env(1), stdout=log, stderr=subprocess.STDOUT), log)
        bars[name] = tqdm(total=total, initial=last_step(run_dir), desc=f"teco {name}", unit="step",
                          position=i, disable=quiet, dynamic_ncols=True)
    failed = None
    try:
        while procs:
            time.sleep(0.5 if quiet else 5.0)
            for name in list(procs):
                p, log = procs[name]
                bars[name].n = last_step(jobs[name][3])
                bars[name].refresh()
                rc = p.poll()
                if rc is None:
                    continue
                log.close()
                del procs[name]
                if rc != 0 and failed is None:
                    failed = (name, rc)
            if failed:
                break
    finally:
        for p, log in procs.values():   # stop the twin of a failed run (or all, on Ctrl-C); it can resume
            p.terminate()
            p.wait()
            log.close()
        for b in bars.values():
            b.close()
    if failed:
        name, rc = failed
        raise StageError(f"train-teco ({name}) failed (exit {rc}); last lines of {jobs[name][2]}:\n"
                         + tail(jobs[name][2]))


# -- the experiment ---------------------------------------------------------------------------------

class Experiment:
    def __init__(self, work: str, results: str, preset: Preset, preset_name: str, quiet: bool):
        self.work, self.results, self.p, self.name, self.quiet = work, results, preset, preset_name, quiet
        self.store = os.path.join(work, "data.zarr")
        self.vq = os.path.join(work, "vqgan")
        self.runs = {"long": os.path.join(work, "teco_long"), "short": os.path.join(work, "teco_short")}
        self.metrics = os.path.join(work, "metrics.json")
        self.grid_npz = os.path.join(work, "samples.npz")
        self.ablation = os.path.join(work, "ablation.json")
        self.logs = os.path.join(work, "logs")

    # bookkeeping
    def marker(self, stage: str) -> str:
        return os.path.join(self.work, f"{stage}.done")

    def done(self, stage: str) -> bool:
        return os.path.exists(self.marker(stage))

    def log(self, stage: str) -> str:
        return os.path.join(self.logs, f"{stage}.log")

    def check_preset(self) -> None:
        """A work folder belongs to one preset: mixing stages of two would be meaningless."""
        path = os.path.join(self.work, "preset.json")
        want = {"name": self.name, **dataclasses.asdict(self.p)}
        if os.path.exists(path):
            with open(path) as f:
                have = json.load(f)
            if have != want:
                diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
                raise StageError(f"{self.work} holds an experiment with other settings ({', '.join(diff)}); "
                                 "use another --work or delete it")
        else:
            with open(path, "w") as f:
                json.dump(want, f, indent=1)

    def run(self, stages: list[str]) -> None:
        os.makedirs(self.logs, exist_ok=True)
        os.makedirs(self.results, exist_ok=True)
        self.check_preset()
        t_all = time.time()
        for i, stage in enumerate(STAGES):
            if stage not in stages:
                continue
            if stage != "report" and self.done(stage):   # the report is cheap: always redone
                print(f"[{i + 1}/{len(STAGES)}] {stage}: done before, skipped", file=sys.stderr)
                continue
            print(f"[{i + 1}/{len(STAGES)}] {stage} ...", file=sys.stderr)
            t0 = time.time()
            getattr(self, f"stage_{stage}")()
            if stage != "report":
                with open(self.marker(stage), "w") as f:
                    json.dump({"seconds": round(time.time() - t0, 1)}, f)
            print(f"[{i + 1}/{len(STAGES)}] {stage}: {time.time() - t0:.0f} s", file=sys.stderr)
        print(f"consistency: finished in {time.time() - t_all:.0f} s this call; results in {self.results}",
              file=sys.stderr)

    # stages
    def stage_data(self) -> None:
        p = self.p
        run_tool("generators.dmlab.cli", ["--episodes", p.episodes, "--out", self.store, "--backend", "embedded",
                                          "--workers", p.gen_workers, "--length", p.length,
                                          "--retrace-cells", p.retrace_cells, "--seed", 0]
                 + (["--no-progress"] if self.quiet else []), self.log("data"), 1, self.quiet)

    def stage_tokenizer(self) -> None:
        p = self.p
        args = ["--store", self.store, "--out", self.vq, "--config", p.vq_config, "--steps", p.vq_steps,
                "--test-fraction", p.test_fraction, "--num-workers", p.num_workers, "--device", "cpu",
                "--ckpt-every", max(1, min(500, p.vq_steps)), "--log-every", max(1, min(50, p.vq_steps))]
        if os.path.exists(os.path.join(self.vq, "ckpt.pt")):
            args.append("--resume")
        run_tool("teco.train_vqgan", args, self.log("tokenizer"), p.vq_threads, self.quiet)
        run_tool("teco.encode", ["--store", self.store, "--vqgan", self.vq, "--device", "cpu",
                                 "--num-workers", p.num_workers], self.log("tokenizer"), p.vq_threads, self.quiet)

    def teco_args(self, name: str) -> list[str]:
        p = self.p
        args = ["--store", self.store, "--vqgan", self.vq, "--out", self.runs[name], "--config", p.teco_config,
                "--steps", p.teco_steps, "--test-fraction", p.test_fraction, "--device", "cpu",
                "--num-workers", p.num_workers, "--seed", 0]
        if self.name == "toy":
            args += ["--seq-len", TOY_SEQ_LEN, "--ckpt-every", 2, "--log-every", 1, "--heldout-windows", 2]
        if name == "short":
            args += ["--context", p.short_context]
        if os.path.exists(os.path.join(self.runs[name], "ckpt.pt")):
            args.append("--resume")
        return args

    def stage_teco(self) -> None:
        jobs = {n: ("teco.train", self.teco_args(n), self.log(f"teco_{n}"), d) for n, d in self.runs.items()}
        run_parallel(jobs, self.p.teco_steps, self.quiet)

    def stage_eval(self) -> None:
        p = self.p
        run_tool("teco.evaluate", ["--ckpt", self.runs["long"], "--baseline", self.runs["short"],
                                   "--out", self.metrics, "--plot", os.path.join(self.work, "curves.png"),
                                   "--cond", p.cond, "--horizon", p.horizon, "--batch-size", p.eval_examples,
                                   "--runs", p.eval_runs, "--sample-batch", p.sample_batch,
                                   "--short-context", p.short_context, "--no-fvd", "--device", "cpu"],
                 self.log("eval"), 2, self.quiet)

    def stage_ablation(self) -> None:
        """The long model's held-out prior NLL with its attention cut to the short context vs its full
        context, by frame cohort (experiments/context_ablation.py): does it use its far frames at all?"""
        import torch
        from experiments.context_ablation import ablate
        torch.set_num_threads(2)
        res = ablate(self.runs["long"], self.p.short_context, progress=not self.quiet)
        with open(self.ablation, "w") as f:
            json.dump(res, f, indent=1)

    def stage_samples(self) -> None:
        """ground truth | long | short on the first held-out episodes, the same sampling seed for both."""
        import torch
        from storage import StoreReader
        from storage.preview import write_grid
        from teco.encode import encode_frames
        from teco.sample import Sampler, decode_codes, load_teco, sample
        torch.set_num_threads(2)
        p = self.p
        models = {n: load_teco(d) for n, d in self.runs.items()}
        info = models["long"][2]
        reader = StoreReader(self.store)
        n = p.cond + p.horizon
        eps = sorted(info["split"]["test"])[:p.grid_episodes]
        video = np.stack([reader.read("video", e, 0, n) for e in eps])
        actions = torch.from_numpy(np.stack([reader.read("actions", e, 0, n) for e in eps]).astype(np.int64))
        vq = models["long"][1]
        cond = torch.stack([encode_frames(vq, v[:p.cond]) for v in video])
        preds = {}
        for name, (model, vqgan, _) in models.items():
            codes = sample(model, cond, actions, p.horizon, generator=torch.Generator().manual_seed(0),
                           **Sampler().resolve(model.cfg))
            preds[name] = decode_codes(vqgan, codes)
            preds[name][:, :p.cond] = video[:, :p.cond]   # conditioning shown as given, not re-decoded
        np.savez_compressed(self.grid_npz, truth=video, long=preds["long"], short=preds["short"],
                            episodes=np.asarray(eps), cond=p.cond)

    def stage_report(self) -> None:
        with open(self.metrics) as f:
            metrics = json.load(f)
        report = build_report(metrics, self)
        with open(os.path.join(self.results, "results.json"), "w") as f:
            json.dump(report, f, indent=1)
        with open(os.path.join(self.results, "results.md"), "w") as f:
            f.write(markdown(report))
        draw_psnr_curves(os.path.join(self.results, "psnr_curves.png"), metrics, self.p)
        d = np.load(self.grid_npz)
        cond = int(d["cond"])
        labels = ["ground truth", f"long context ({metrics['models']['teco']['context']})",
                  f"short context ({metrics['models']['baseline']['context']})"]
        videos = np.stack([d["truth"], d["long"], d["short"]], 1).reshape(-1, *d["truth"].shape[1:])
        rows = d["truth"].shape[0]
        write_grid_files(self.results, videos, rows, labels, cond)


# -- report ------------------------------------------------------------------------------------------

def _get(d, *path):
    for k in path:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def revisit_signal_of(exp: Experiment, episodes: list[int], long: int) -> dict:
    from storage import StoreReader
    from teco.revisit import revisit_signal, tolerances
    reader = StoreReader(exp.store)
    radius, yaw = tolerances(reader.config.params)
    poses = [np.asarray(reader.read("pose", e)) for e in episodes]
    s = exp.p.short_context
    return revisit_signal(poses, radius, yaw, bins=((1, s), (s + 1, long), (long + 1, None)))


def build_report(metrics: dict, exp: Experiment) -> dict:
    names = {"long": metrics["models"]["teco"], "short": metrics["models"]["baseline"],
             "copy_last_frame": metrics["copy_last_frame"]}
    rows = {}
    for n, m in names.items():
        row = {"context": m.get("context", "–")}
        for metric in ("psnr", "ssim", "lpips"):
            row[metric] = _get(m, metric, "mean")
            row[metric + "_std"] = _get(m, metric, "std")
            for g in ("memory", "novel", "recent"):
                row[f"{g}_{metric}"] = _get(m, "consistency", g, metric, "mean")
                row[f"{g}_{metric}_std"] = _get(m, "consistency", g, metric, "std")
        for g in ("memory", "novel", "recent"):
            row[f"{g}_frames_per_run"] = _get(m, "consistency", g, "frames_per_run")
            row[f"{g}_frames"] = _get(m, "consistency", g, "frames")
        for k in ("prior_nll_per_token", "code_entropy", "next_frame_acc", "copy_acc", "posterior_acc"):
            row[k] = _get(m, "learning", k)
        row["train_step"] = m.get("train_step")
        rows[n] = row
    long_m, short_m = rows["long"].get("memory_psnr"), rows["short"].get("memory_psnr")
    long_n, short_n = rows["long"].get("novel_psnr"), rows["short"].get("novel_psnr")
    gap = None if long_m is None or short_m is None else long_m - short_m
    novel_gap = None if long_n is None or short_n is None else long_n - short_n
    vq_psnr = None
    vq_log = os.path.join(exp.vq, "log.jsonl")
    if os.path.exists(vq_log):
        with open(vq_log) as f:
            for line in f:
                rec = json.loads(line)
                if "test_psnr" in rec:
                    vq_psnr = rec["test_psnr"]
    from storage import StoreReader
    test = sorted(json.load(open(os.path.join(exp.runs["long"], "run.json")))["split"]["test"])
    timings = {}
    for st in STAGES[:-1]:
        if os.path.exists(exp.marker(st)):
            timings[st] = json.load(open(exp.marker(st)))["seconds"]
    return {
        "preset": exp.name, "settings": dataclasses.asdict(exp.p), "store": StoreReader(exp.store).url,
        "test_episodes": len(test), "revisit_signal_test": revisit_signal_of(exp, test, rows["long"]["context"]),
        "tokenizer_heldout_psnr": vq_psnr, "models": rows,
        "memory_psnr_gain": gap, "novel_psnr_gain": novel_gap,
        "hypothesis": ("supported" if gap is not None and gap >= 1.5 and novel_gap is not None
                       and abs(novel_gap) < 1.0 else "not supported") if gap is not None else "no memory frames",
        "protocol": metrics.get("protocol"), "sampling_seeds": metrics.get("sampling_seeds"),
        "stage_seconds": timings, "notes": metrics.get("notes", []),
        "context_ablation": json.load(open(exp.ablation)) if os.path.exists(exp.ablation) else None,
    }


def _f(v, fmt=".2f"):
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def _pm(row, key, fmt=".2f"):
    v, s = row.get(key), row.get(key + "_std")
    return _f(v, fmt) + ("" if s is None else f" ± {_f(s, fmt)}")


def markdown(r: dict) -> str:
    p = r["protocol"] or {}
    lines = [f"# Long- vs short-context TECO on revisits ({r['preset']} preset)", "",
             f"Held-out: {r['test_episodes']} test episodes; {p.get('examples_per_run')} videos x {p.get('runs')} "
             f"sampling seeds ({r['sampling_seeds']}); {p.get('cond')} conditioning + {p.get('horizon')} "
             f"predicted frames. Mean ± std over the seeds.", "",
             f"Tokenizer held-out PSNR: {_f(r['tokenizer_heldout_psnr'])} dB.", "",
             "| model | context | PSNR | SSIM | LPIPS | memory PSNR | novel PSNR | recent PSNR | memory frames/run "
             "| prior NLL/token | code entropy | next-frame acc | copy acc |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for n, row in r["models"].items():
        lines.append(f"| {n} | {row['context']} | {_pm(row, 'psnr')} | {_pm(row, 'ssim', '.3f')} | "
                     f"{_pm(row, 'lpips', '.3f')} | {_pm(row, 'memory_psnr')} | {_pm(row, 'novel_psnr')} | "
                     f"{_pm(row, 'recent_psnr')} | {row.get('memory_frames_per_run')} | "
                     f"{_f(row.get('prior_nll_per_token'), '.3f')} | {_f(row.get('code_entropy'), '.3f')} | "
                     f"{_f(row.get('next_frame_acc'), '.3f')} | {_f(row.get('copy_acc'), '.3f')} |")
    sig = r["revisit_signal_test"]["any"]
    lines += ["", f"Memory PSNR gain (long - short): {_f(r['memory_psnr_gain'])} dB; novel: "
              f"{_f(r['novel_psnr_gain'])} dB. Hypothesis (>= 1.5 dB on memory frames, within 1 dB on novel): "
              f"**{r['hypothesis']}**.", "",
              "Revisit signal of the test episodes (share of frames whose place was last seen k frames earlier): "
              + ", ".join(f"{k}: {v:.1%}" for k, v in sig.items()), "",
              *ablation_lines(r.get("context_ablation")),
              "Stage times (s): " + ", ".join(f"{k} {v}" for k, v in r["stage_seconds"].items()), ""]
    lines += [f"Note: {n}" for n in r["notes"]]
    return "\n".join(lines) + "\n"


def ablation_lines(a: dict | None) -> list[str]:
    if not a:
        return []
    lines = [f"Context ablation (experiments/context_ablation.py): the long model's held-out prior NLL per token "
             f"(nats, teacher-forced, {a['windows']} windows of {a['window_frames']} frames from {a['episodes']} "
             f"test episodes, step {a['train_step']}) with its full context ({a['context']}) vs attention cut to "
             f"the last {a['cut']} frames. Same weights, same codes: a positive cut - full on memory frames means "
             "the model uses frames beyond the short context.", "",
             "| frames | count | NLL full | NLL cut | cut - full |", "| --- | --- | --- | --- | --- |"]
    for g in ("memory", "recent", "novel", "all"):
        d = a[g]
        sem = f" ± {d['sem']:.4f} (s.e.m. over {d['episodes_with_memory_frames']} episodes)" if "sem" in d else ""
        lines.append(f"| {g} | {a['frames'][g]} | {_f(d['nll_full'], '.4f')} | {_f(d['nll_cut'], '.4f')} | "
                     f"{_f(d['cut_minus_full'], '.4f')}{sem} |")
    return lines + [""]


def draw_psnr_curves(path: str, metrics: dict, p: Preset) -> None:
    """PSNR per prediction step: long vs short vs copy-last-frame (teco.evaluate.draw_curves)."""
    from teco.evaluate import draw_curves
    m = metrics["models"]
    curves = {f"long context ({m['teco']['context']})": {"psnr": m["teco"]["per_step"]["psnr"]},
              f"short context ({m['baseline']['context']})": {"psnr": m["baseline"]["per_step"]["psnr"]},
              "copy last frame": {"psnr": metrics["copy_last_frame"]["per_step"]["psnr"]}}
    draw_curves(path, curves)


def write_grid_files(folder: str, videos: np.ndarray, rows: int, labels: list[str], cond: int) -> None:
    """samples.gif (animated) and samples.png (stills: the last conditioning frame and three later ones)."""
    from PIL import Image
    from storage.preview import annotate, grid_shape, tile, write_grid
    write_grid(os.path.join(folder, "samples.gif"), videos, rows=rows, fps=6, scale=2, labels=labels,
               boundary=cond, title="left: ground truth; green border = given, red = predicted")
    T = videos.shape[1]
    picks = sorted({cond - 1, cond + (T - cond) // 3, cond + 2 * (T - cond) // 3, T - 1})
    _, cols = grid_shape(len(videos), rows)
    frames = annotate(tile(videos, rows, 2).repeat(2, 1).repeat(2, 2), (videos.shape[2] * 2, videos.shape[3] * 2),
                      4, cols, labels, cond)
    strip = np.concatenate([np.pad(frames[t], ((0, 0), (0, 8), (0, 0)), constant_values=255) for t in picks], 1)
    Image.fromarray(strip).save(os.path.join(folder, "samples.png"))


# -- CLI ----------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="experiments.consistency", description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="full")
    p.add_argument("--work", help="work folder: store, runs, logs (default: experiments/work/PRESET)")
    p.add_argument("--results", help="tables and figures (default: experiments/results/consistency for full, "
                                     "WORK/results otherwise)")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    p.add_argument("--redo", default="", help="comma-separated stages to run again (their .done markers are removed)")
    p.add_argument("--quiet", action="store_true", help="no progress output (logs still in WORK/logs)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    redo = [s for s in args.redo.split(",") if s]
    bad = [s for s in stages + redo if s not in STAGES]
    if bad:
        print(f"experiments.consistency: error: unknown stage(s) {bad}; choose from {', '.join(STAGES)}", file=sys.stderr)
        return 2
    work = os.path.abspath(args.work or os.path.join(HERE, "work", args.preset))
    results = os.path.abspath(args.results or (os.path.join(HERE, "results", "consistency") if args.preset == "full"
                                               else os.path.join(work, "results")))
    exp = Experiment(work, results, PRESETS[args.preset], args.preset, args.quiet)
    for s in redo:
        if os.path.exists(exp.marker(s)):
            os.remove(exp.marker(s))
    try:
        exp.run(stages)
    except StageError as e:
        print(f"experiments.consistency: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("experiments.consistency: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
