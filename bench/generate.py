"""Generation speed: the bare embedded simulator vs the toolkit end to end (Ray workers + store).

    python bench/generate.py [--datasets dmlab,minecraft,habitat] [--episodes N] [--rounds R] [--no-memory-maze]
                             [--compression-level L]

Per dataset, in one run and one process, `--rounds` times over (this VM's speed drifts by tens of percent
within minutes, so each ratio is taken between measurements made next to each other, and the figure is the
median of the rounds; every round's value is in the JSON too):
  bare      the embedded backend stepping the dataset's own policy, no Ray, no storage (frames/s), over the
            same episodes as the end-to-end runs with the same warm-up left out (episode 0; the first few
            episodes of a fresh process still load JIT code, so few episodes understate the bare rate)
  gen_1w    gen-* end to end with 1 worker, steady state (first to last finished episode: cluster start-up
            and JIT excluded; the wall-clock rate is printed too)
  gen_2w    the same with 2 workers on this machine; episodes per core-hour and the core-hours of the full
            dataset (40k DMLab, 200k Minecraft / Habitat) come from it: every core busy, as on a cluster
  bare_2p   the bare backend in 2 processes at once: the machine's own ceiling for 2 workers (DMLab)
Once per dataset:
  write CPU the store writer's CPU time per episode (compression + crc + file), in this process; with every
            core simulating, each core also compresses its episodes, so 2 workers / 2 bare processes cannot
            exceed simulate / (simulate + write CPU): printed as the CPU-budget bound (DMLab)
  store     bytes per episode of a gen_1w store (default settings) and the full dataset extrapolated
  memory-maze 9x9 at 64x64 with random actions, a pip-installable MuJoCo maze, for comparison (if installed)
`--compression-level L` runs gen-* and the writer-CPU measurement with gen's --compression-level L (the
speed a user gets for a larger store); the goals are for the default.
Goals (issue 14): DMLab gen 1 worker / bare >= 0.95, gen 2 workers / 2 bare processes >= 0.85;
Minecraft and Habitat gen 1 worker / bare >= 0.97.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

# the repository root first, also when PYTHONPATH names it: else bench/storage.py shadows storage/; and as
# the working directory, which Ray's workers put on their path (started from bench/, they failed to import)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.chdir(ROOT)

from common import finish, goals_table, load, table, wait_quiet  # noqa: E402

from generators import registry  # noqa: E402

os.environ.setdefault("MUJOCO_GL", "egl")

GOALS = {"dmlab_gen_1w_over_bare": (">=", 0.95, "DMLab gen 1 worker / bare simulator"),
         "dmlab_gen_2w_over_bare_2p": (">=", 0.85, "DMLab gen 2 workers / 2 bare processes"),
         "minecraft_gen_1w_over_bare": (">=", 0.97, "Minecraft gen 1 worker / bare"),
         "habitat_gen_1w_over_bare": (">=", 0.97, "Habitat gen 1 worker / bare")}


def _bare_run(spec, params, episodes: int, ready=None) -> tuple[int, float, float, float]:
    """The embedded backend alone: episode 0 warms it up (construction, JIT, scene load), `ready()` is
    called, then episodes 1..episodes run. -> (frames, start, end, warm-up seconds); times from time.time()."""
    t0 = time.time()
    backend = spec.make_backend("embedded", params)
    spec.episode(backend, 0, 0, params)
    warm = time.time() - t0
    if ready is not None:
        ready()
    start = time.time()
    frames = sum(len(spec.episode(backend, i, 0, params).video) for i in range(1, episodes + 1))
    end = time.time()
    backend.close()
    return frames, start, end, warm


def bare_fps(spec, params, episodes: int) -> tuple[float, float]:
    """(frames/s, seconds of the first episode: construction, JIT and scene load included)."""
    frames, start, end, warm = _bare_run(spec, params, episodes)
    return frames / (end - start), warm


def _bare_worker(args):
    """One of bare_parallel_fps's simulators: warm up, wait for the others; -> (frames, end time)."""
    name, params, episodes, barrier = args
    frames, _, end, _ = _bare_run(registry.get(name), params, episodes, ready=barrier.wait)
    return frames, end


def bare_parallel_fps(spec, params, episodes: int, procs: int) -> float:
    """Frames/s of `procs` bare simulators run at once (what the hardware allows): all frames over the wall
    time from the common start, after every one has warmed up, to the last one's end."""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    with ctx.Manager() as m, ctx.Pool(procs) as pool:
        barrier = m.Barrier(procs + 1)
        result = pool.map_async(_bare_worker, [(spec.name, params, episodes, barrier)] * procs)
        barrier.wait()
        t0 = time.time()
        done = result.get()
    return sum(f for f, _ in done) / (max(t for _, t in done) - t0)


def write_cpu_ms(spec, params, episodes: int, tmp: str, level: int | None = None) -> float:
    """CPU milliseconds the store writer spends per episode (as a gen worker writes: serial compression),
    the least of `episodes` writes."""
    from storage import StoreWriter
    backend = spec.make_backend("embedded", params)
    eps = [spec.episode(backend, i, 0, params) for i in range(episodes)]
    backend.close()
    url = os.path.join(tmp, f"{spec.name}_write.zarr")
    w = StoreWriter.create(url, spec.store_config(params, "embedded", episodes, 0, level))
    w.serial_compression = True
    best = float("inf")
    for i, e in enumerate(eps):
        t0 = time.process_time()
        w.write_episode(i, e.video, e.actions, e.pose, fresh=True, **e.extras)
        best = min(best, time.process_time() - t0)
    shutil.rmtree(url, ignore_errors=True)
    return 1000 * best


def median(xs: list[float]) -> float:
    return float(np.median(xs))


def du(path: str) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def e2e(spec, params, episodes: int, workers: int, tmp: str, level: int | None = None):
    """-> (RunReport, store bytes per episode)."""
    from generators.runner import RunOptions, generate
    out = os.path.join(tmp, f"{spec.name}_{workers}w.zarr")
    rep = generate(spec, params, RunOptions(out=out, episodes=episodes, workers=workers, progress=False,
                                             compression_level=level))
    assert not rep.failed, rep.failed
    per_episode = du(out) / episodes
    shutil.rmtree(out, ignore_errors=True)
    return rep, per_episode


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


def load_spec(name: str, tmp: str):
    """The registered dataset and its default params (the paper's settings; habitat: two generated scenes)."""
    spec = registry.get(name)
    return spec, spec.params_from_argv(spec.setup_args(tmp))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=",".join(registry.PAPER_DATASETS),
                    help=f"comma-separated, any of {', '.join(registry.names())}")
    ap.add_argument("--episodes", type=int, default=None,
                    help="episodes per end-to-end measurement (default: 32 DMLab, 10 Minecraft/Habitat)")
    ap.add_argument("--bare-episodes", type=int, default=None,
                    help="episodes per bare measurement (default: as many as the end-to-end runs)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="bare / end-to-end measurements alternated this many times; figures are their medians")
    ap.add_argument("--no-memory-maze", action="store_true")
    ap.add_argument("--memory-maze-steps", type=int, default=300)
    ap.add_argument("--compression-level", type=int, default=None,
                    help="gen's --compression-level for the end-to-end runs (default: the store's default)")
    args = ap.parse_args()
    import ray
    from generators.runner import hide_ray_auth_notice
    import logging
    logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(hide_ray_auth_notice)
    tmp = tempfile.mkdtemp(prefix="bench_gen")
    fig: dict = {"load_before": load(), "compression_level": args.compression_level}
    rows, sizes = [], []
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        for name in args.datasets.split(","):
            spec, params = load_spec(name, tmp)
            n_e2e = args.episodes or (32 if name == "dmlab" else 10)
            n_bare = args.bare_episodes or n_e2e
            fig[f"{name}_waited_for_quiet_s"] = wait_quiet()   # Ray's start-up, the last dataset's writers
            _, warm = bare_fps(spec, params, max(1, n_bare // 10))   # a fresh process's first run is slower
            fig[f"{name}_first_episode_s"] = warm
            if name == "habitat":
                be = spec.make_backend("embedded", params)
                t0 = time.perf_counter()
                be.load_scene(1)
                fig["habitat_scene_load_s"] = time.perf_counter() - t0
                be.close()
                rows.append((name, "scene load (mesh + nav grid + GPU upload)", fig["habitat_scene_load_s"], "seconds"))
            bares, r1s, r2s, b2s = [], [], [], []
            for _ in range(args.rounds):
                wait_quiet()
                bares.append(bare_fps(spec, params, n_bare)[0])
                # store size: the same every round
                r1, per_ep = e2e(spec, params, n_e2e, 1, tmp, args.compression_level)
                r1s.append(r1)
                r2s.append(e2e(spec, params, n_e2e, 2, tmp, args.compression_level)[0])
                if name == "dmlab":
                    wait_quiet()
                    b2s.append(bare_parallel_fps(spec, params, n_bare, 2))
            write_ms = write_cpu_ms(spec, params, 4, tmp, args.compression_level)
            g1s = [r.steady_frames_per_s / b for r, b in zip(r1s, bares)]
            bare = median(bares)
            gen1, gen2 = median([r.steady_frames_per_s for r in r1s]), median([r.steady_frames_per_s for r in r2s])
            length = r1.frames / r1.generated
            sim_ms = 1000 * length / bare
            full = spec.default_episodes
            eps_core_h = gen2 / length * 3600 / 2
            fig.update({
                f"{name}_bare_fps": bare, f"{name}_bare_fps_rounds": bares,
                f"{name}_gen_1w_fps": gen1, f"{name}_gen_1w_wall_fps": median([r.frames_per_s for r in r1s]),
                f"{name}_gen_1w_over_bare": median(g1s), f"{name}_gen_1w_over_bare_rounds": g1s,
                f"{name}_gen_2w_fps": gen2,
                f"{name}_gen_2w_over_1w": median([two.steady_frames_per_s / one.steady_frames_per_s
                                                  for one, two in zip(r1s, r2s)]),
                f"{name}_worker_sim_ms_per_episode": median([1000 * r.sim_seconds / r.generated for r in r1s]),
                f"{name}_worker_write_ms_per_episode": median([1000 * r.write_seconds / r.generated for r in r1s]),
                f"{name}_bare_sim_ms_per_episode": sim_ms,
                f"{name}_write_cpu_ms_per_episode": write_ms,
                f"{name}_episodes_per_core_hour": eps_core_h,
                f"{name}_full_dataset_episodes": full,
                f"{name}_full_dataset_core_hours": full / eps_core_h,
                f"{name}_store_MB_per_episode": per_ep / 1e6,
                f"{name}_full_dataset_store_GB": per_ep * full / 1e9,
            })
            g1 = GOALS.get(f"{name}_gen_1w_over_bare")
            spread = lambda xs: " / ".join(f"{x:.2f}" for x in xs)  # noqa: E731
            rows += [(name, f"bare backend + policy (median of {args.rounds})", bare,
                      " / ".join(f"{x:.0f}" for x in bares)),
                     (name, "gen end to end, 1 worker (steady)", gen1,
                      f"{fig[f'{name}_gen_1w_over_bare']:.2f}x bare (goal {g1[0]} {g1[1]}; rounds {spread(g1s)}); "
                      f"wall clock incl. start-up {fig[f'{name}_gen_1w_wall_fps']:.0f}/s"),
                     (name, "  in the worker: simulate / write ms per episode (overlapped)",
                      fig[f"{name}_worker_sim_ms_per_episode"], f"{fig[f'{name}_worker_write_ms_per_episode']:.1f} ms write"),
                     (name, "  bare: simulate ms / store writer CPU ms per episode", sim_ms, f"{write_ms:.1f} ms write CPU"),
                     (name, "gen end to end, 2 workers (steady)", gen2,
                      f"{fig[f'{name}_gen_2w_over_1w']:.2f}x 1 worker")]
            if name == "dmlab":
                b2 = median(b2s)
                g2s = [r.steady_frames_per_s / b for r, b in zip(r2s, b2s)]
                bound = sim_ms / (sim_ms + write_ms)
                fig.update({"dmlab_bare_2p_fps": b2, "dmlab_bare_2p_fps_rounds": b2s, "dmlab_bare_2p_over_bare": b2 / bare,
                            "dmlab_gen_2w_over_bare_2p": median(g2s), "dmlab_gen_2w_over_bare_2p_rounds": g2s,
                            "dmlab_gen_2w_cpu_bound": bound})
                rows += [(name, "bare, 2 processes (hardware ceiling)", b2,
                          f"{b2 / bare:.2f}x bare; gen 2 workers reach {fig['dmlab_gen_2w_over_bare_2p']:.2f}x of it "
                          f"(goal >= 0.85; rounds {spread(g2s)})"),
                         (name, "  CPU-budget bound for 2 workers / 2 bare: sim / (sim + write CPU)", bound,
                          "every core simulates and compresses")]
                if not args.no_memory_maze:
                    try:
                        mm = memory_maze_fps(args.memory_maze_steps)
                    except ImportError as e:
                        print(f"memory-maze not installed ({e}); pip install -e '.[bench]'")
                    else:
                        fig["memory_maze_fps"] = mm
                        fig["dmlab_gen_1w_over_memory_maze"] = gen1 / mm
                        rows.append(("memory-maze", "9x9, 64x64, random actions", mm,
                                     f"gen 1 worker is {fig['dmlab_gen_1w_over_memory_maze']:.1f}x"))
            sizes.append((name, f"{fig[f'{name}_store_MB_per_episode']:.2f}", full,
                          f"{fig[f'{name}_full_dataset_store_GB']:.0f}", f"{eps_core_h:.0f}",
                          f"{fig[f'{name}_full_dataset_core_hours']:.1f}"))
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    fig["load_after"] = load()
    print(f"{fig['load_before']} before, {fig['load_after']} after; end-to-end rates are steady state")
    print(table(rows, ("dataset", "what", "frames/s", "ratio")))
    settings = ("default settings" if args.compression_level is None
                else f"--compression-level {args.compression_level}; the goals are for the default")
    print(f"\nper dataset ({settings}; core-hours from 2 workers keeping this machine's 2 cores busy):")
    print(table(sizes, ("dataset", "store MB/episode", "full episodes", "full store GB", "episodes/core-hour",
                        "full core-hours")))
    print(goals_table(fig, GOALS))
    finish(fig, GOALS)


if __name__ == "__main__":
    main()
