"""Generation speed: the bare embedded simulator vs the toolkit end to end (Ray workers + store).

    python bench/generate.py [--datasets dmlab,minecraft,habitat] [--episodes 16] [--no-memory-maze]

Per dataset, in one run and one process:
  bare      the embedded backend stepping the dataset's own policy, no Ray, no storage (frames/s)
  e2e_1w    gen-* end to end with 1 worker, steady state (from the first finished episode to the last,
            so cluster start-up and JIT warm-up are excluded; the full wall time is printed too)
  e2e_2w    the same with 2 workers (DMLab)
  bare_2p   the bare backend in 2 processes at once: the machine's own scaling ceiling (DMLab)
  memory-maze 9x9 at 64x64 with random actions, a pip-installable MuJoCo maze, for comparison (DMLab)
Goals (issue): dmlab e2e_1w/bare >= 0.8, e2e_2w/e2e_1w >= 1.7 on 2 cores, e2e_1w/memory_maze >= 3;
minecraft and habitat e2e_1w/bare >= 0.8.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

# the repository root first, also when PYTHONPATH names it: else bench/storage.py shadows storage/
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import finish, table  # noqa: E402

from generators import registry  # noqa: E402

os.environ.setdefault("MUJOCO_GL", "egl")


def bare_fps(spec, params, episodes: int) -> tuple[float, float]:
    """(frames/s, seconds of the first episode: construction, JIT and scene load included)."""
    t0 = time.perf_counter()
    backend = spec.make_backend("embedded", params)
    spec.episode(backend, 0, 0, params)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    frames = sum(len(spec.episode(backend, i, 0, params).video) for i in range(1, episodes + 1))
    fps = frames / (time.perf_counter() - t0)
    backend.close()
    return fps, warm


def _bare_worker(args):
    name, params, episodes = args
    from generators import registry
    return bare_fps(registry.get(name), params, episodes)[0]


def bare_parallel_fps(spec, params, episodes: int, procs: int) -> float:
    """Total frames/s of `procs` independent bare simulators (what the hardware allows)."""
    import multiprocessing as mp
    with mp.get_context("spawn").Pool(procs) as pool:
        return sum(pool.map(_bare_worker, [(spec.name, params, episodes)] * procs))


def e2e(spec, params, episodes: int, workers: int, tmp: str):
    from generators.runner import RunOptions, generate
    out = os.path.join(tmp, f"{spec.name}_{workers}w.zarr")
    rep = generate(spec, params, RunOptions(out=out, episodes=episodes, workers=workers, progress=False))
    assert not rep.failed, rep.failed
    shutil.rmtree(out, ignore_errors=True)
    return rep


def memory_maze_fps(steps: int) -> float:
    import numpy as np
    from memory_maze import tasks
    env = tasks.memory_maze_9x9(image_only_obs=True, camera_resolution=64)
    env.reset()
    n = env.action_spec().num_values
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        if env.step(int(rng.integers(n))).last():
            env.reset()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=",".join(registry.PAPER_DATASETS),
                    help=f"comma-separated, any of {', '.join(registry.names())}")
    ap.add_argument("--episodes", type=int, default=None,
                    help="episodes per end-to-end measurement (default: 48 DMLab, 12 Minecraft/Habitat)")
    ap.add_argument("--bare-episodes", type=int, default=4)
    ap.add_argument("--no-memory-maze", action="store_true")
    ap.add_argument("--memory-maze-steps", type=int, default=300)
    args = ap.parse_args()
    import ray
    tmp = tempfile.mkdtemp(prefix="bench_gen")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    fig, rows = {}, []
    try:
        for name in args.datasets.split(","):
            SPEC = registry.get(name)
            params = SPEC.params_from_argv(SPEC.setup_args(tmp))      # the paper's defaults
            n_e2e = args.episodes or (48 if name == "dmlab" else 12)
            bare, warm = bare_fps(SPEC, params, args.bare_episodes)
            fig[f"{name}_bare_fps"] = bare
            fig[f"{name}_first_episode_s"] = warm
            if name == "habitat":
                be = SPEC.make_backend("embedded", params)
                t0 = time.perf_counter()
                be.load_scene(1)
                fig["habitat_scene_load_s"] = time.perf_counter() - t0
                be.close()
            r1 = e2e(SPEC, params, n_e2e, 1, tmp)
            fig[f"{name}_e2e_1w_fps"] = r1.steady_frames_per_s
            fig[f"{name}_e2e_1w_wall_fps"] = r1.frames_per_s
            fig[f"{name}_e2e_1w_over_bare"] = r1.steady_frames_per_s / bare
            fig[f"{name}_worker_sim_ms_per_episode"] = 1000 * r1.sim_seconds / r1.generated
            fig[f"{name}_worker_write_ms_per_episode"] = 1000 * r1.write_seconds / r1.generated
            rows += [(name, "bare backend + policy", bare, ""),
                     (name, "gen end to end, 1 worker", r1.steady_frames_per_s,
                      f"{fig[f'{name}_e2e_1w_over_bare']:.2f}x bare (goal >= 0.8); wall incl. start-up {r1.frames_per_s:.0f}/s"),
                     (name, "  in the worker: simulate / write ms per episode",
                      fig[f"{name}_worker_sim_ms_per_episode"], f"{fig[f'{name}_worker_write_ms_per_episode']:.1f} ms write")]
            if name == "dmlab":
                r2 = e2e(SPEC, params, n_e2e, 2, tmp)
                fig["dmlab_e2e_2w_fps"] = r2.steady_frames_per_s
                fig["dmlab_e2e_2w_over_1w"] = r2.steady_frames_per_s / r1.steady_frames_per_s
                fig["dmlab_2w_worker_sim_ms_per_episode"] = 1000 * r2.sim_seconds / r2.generated
                fig["dmlab_2w_worker_write_ms_per_episode"] = 1000 * r2.write_seconds / r2.generated
                rows.append((name, "gen end to end, 2 workers", r2.steady_frames_per_s,
                             f"{fig['dmlab_e2e_2w_over_1w']:.2f}x 1 worker (goal >= 1.7)"))
                rows.append((name, "  in each worker: simulate / write ms per episode",
                             fig["dmlab_2w_worker_sim_ms_per_episode"],
                             f"{fig['dmlab_2w_worker_write_ms_per_episode']:.1f} ms write"))
                b2 = bare_parallel_fps(SPEC, params, 3 * args.bare_episodes, 2)
                fig["dmlab_bare_2p_fps"] = b2
                fig["dmlab_bare_2p_over_bare"] = b2 / bare
                fig["dmlab_e2e_2w_over_bare_2p"] = r2.steady_frames_per_s / b2
                rows.append((name, "bare, 2 processes (hardware ceiling)", b2,
                             f"{b2 / bare:.2f}x bare; gen 2 workers reach {r2.steady_frames_per_s / b2:.2f}x of it"))
                if not args.no_memory_maze:
                    try:
                        mm = memory_maze_fps(args.memory_maze_steps)
                    except ImportError as e:
                        print(f"memory-maze not installed ({e}); pip install -e '.[bench]'")
                    else:
                        fig["memory_maze_fps"] = mm
                        fig["dmlab_e2e_1w_over_memory_maze"] = r1.steady_frames_per_s / mm
                        rows.append(("memory-maze", "9x9, 64x64, random actions", mm, ""))
                        rows.append((name, "gen 1 worker vs memory-maze", r1.steady_frames_per_s,
                                     f"{fig['dmlab_e2e_1w_over_memory_maze']:.1f}x (goal >= 3)"))
            if name == "habitat":
                rows.append((name, "scene load (mesh + nav grid + GPU upload)", fig["habitat_scene_load_s"], "seconds"))
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"cores: {os.cpu_count()}; end-to-end rates are steady state (first to last finished episode)")
    print(table(rows, ("dataset", "what", "frames/s", "ratio")))
    finish(fig)


if __name__ == "__main__":
    main()
