"""The Ray runner shared by every gen-* command: long-lived simulator actors, a bounded queue of
episode indices, retries, resume, progress. The driver is the only process that marks episodes
complete; workers write episode arrays straight into the store."""
from __future__ import annotations

import errno
import logging
import os
import signal
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import ray
from tqdm import tqdm

from cli_common import UserError, first_line, os_error_in_chain, plural
from storage import StoreError, StoreWriter
from storage.lock import StoreLock
from storage.store import make_parent

from . import faults
from .backend import pick_backend
from .bgwriter import ProcessWriter
from .seeds import episode_seed
from .spec import DatasetSpec

log = logging.getLogger(__name__)

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# tasks per actor: the next one is queued at the actor, which never waits for the driver; with a writer
# process one more, so the simulator never waits for a write to finish (writes of a balanced pipeline vary)
PIPELINE = 2
PIPELINE_OVERLAP = 3
OVERLAP_MODES = ("auto", "on", "off")


@dataclass
class RunOptions:
    out: str
    episodes: int
    seed: int = 0
    backend: str = "auto"
    workers: int | None = None          # default: every CPU of the (local or joined) cluster
    address: str | None = None          # join an existing Ray cluster instead of starting one
    max_retries: int = 3                # attempts per episode = 1 + max_retries
    compression_level: int | None = None   # zstd level of new stores (None: StoreConfig's default)
    overlap_writes: str = "auto"         # on: a writer process per actor; auto: on when cores are spare
    episode_timeout: float | None = None
    progress: bool = True
    ray_init: dict[str, Any] = field(default_factory=dict)   # extra ray.init kwargs (tests: _temp_dir)


@dataclass
class RunReport:
    store: str
    backend: str
    requested: int
    generated: int = 0
    already_complete: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    retried: int = 0
    workers: int = 0
    seconds: float = 0.0
    frames: int = 0
    first_done: float | None = None      # wall time of the first and last finished episode: the rate
    last_done: float | None = None       # between them excludes cluster start-up and JIT warm-up
    frames_after_first: int = 0
    sim_seconds: float = 0.0             # summed over workers: where a worker's time goes
    write_seconds: float = 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def steady_frames_per_s(self) -> float:
        span = (self.last_done or 0) - (self.first_done or 0)
        return self.frames_after_first / span if span > 0 else 0.0

    def rates(self) -> str:
        """Both rates, labelled: a short run's wall-clock rate is mostly Ray start-up and JIT."""
        steady = (f"steady {self.steady_frames_per_s:.0f} frames/s, " if self.steady_frames_per_s
                  else "")
        return f"{steady}wall clock {self.frames_per_s:.0f} frames/s (with start-up)"


class SimWorker:
    """One simulator for the actor's lifetime; generates episodes and has them written into the store.

    overlap=True: the actor runs three tasks at once (max_concurrency=PIPELINE_OVERLAP); while one waits
    for its episode to be compressed and written by the actor's writer process (bgwriter) and the next
    waits its turn at the writer, another already simulates. That pays when the node has a spare core for
    the writer; when every core has a simulator it only adds a process and a copy of the frames per
    episode, so then (overlap=False) the actor writes each episode itself, in series, with the next task
    already queued at the actor.
    Every simulator call runs on one thread of its own, built there too: one episode at a time, and an
    OpenGL context (Habitat, Minecraft) stays current on the thread that made it. Episodes are simulated
    in the order the driver sent them (`ticket`): Ray starts a threaded actor's tasks in no set order, and
    the driver's timeout charges the oldest task of a slot, which must then be the one that ran first.
    A task returns only once its episode is written, so the driver's "returned => mark complete" rule is
    unchanged."""

    def __init__(self, spec: DatasetSpec, backend: str, params: dict, store_url: str, overlap: bool = True):
        from concurrent.futures import ThreadPoolExecutor
        self.spec, self.params = spec, params
        store = StoreWriter.open(store_url)   # fail here, in the actor, if the store is not writable
        store.serial_compression = True       # its core is the simulator's (inline) or the writer's own
        self.writer = ProcessWriter(store_url).start() if overlap else _InlineWriter(store)
        self._sim = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simulator")
        self._turn, self._turns = 0, threading.Condition()    # the next ticket to simulate
        self.backend = self._sim.submit(spec.make_backend, backend, params).result()

    def _episode(self, index: int, base_seed: int):
        t0 = time.perf_counter()
        ep = self.spec.episode(self.backend, index, base_seed, self.params)
        return ep, time.perf_counter() - t0

    def run(self, index: int, base_seed: int, attempt: int, ticket: int) -> tuple[int, int, int, float, float, list]:
        """-> (index, seed used, frames, simulation seconds, write seconds, the episode's notes for the log).
        `ticket`: 0, 1, 2, ... in the order the driver sent this actor its tasks."""
        with self._turns:     # the simulator thread is FIFO: queue in ticket order
            self._turns.wait_for(lambda: self._turn == ticket)
            simulated = self._sim.submit(self._episode, index, base_seed)
            self._turn += 1
            self._turns.notify_all()
        ep, sim_s = simulated.result()
        faults.inject(index, attempt)
        t0 = time.perf_counter()
        self.writer.write_episode(index, ep.video, ep.actions, ep.pose, **ep.extras)
        seed = ep.seed if ep.seed >= 0 else episode_seed(base_seed, index)
        return index, int(seed), len(ep.video), sim_s, time.perf_counter() - t0, list(ep.notes)

    def ping(self) -> int:
        return os.getpid()


class _InlineWriter:
    """ProcessWriter's interface, written by the actor itself (overlap off)."""

    def __init__(self, store: StoreWriter):
        self.store = store

    def write_episode(self, i: int, video, actions, pose, **extras) -> None:
        self.store.write_episode(i, video, actions, pose, fresh=True, **extras)


def overlap_writes(mode: str, workers: int, cluster_cpus: int) -> bool:
    """Whether actors get a writer process: 'auto' only when the cluster has a spare core per worker."""
    if mode not in OVERLAP_MODES:
        raise ValueError(f"--overlap-writes must be one of {', '.join(OVERLAP_MODES)}, got {mode!r}")
    return mode == "on" or (mode == "auto" and cluster_cpus >= 2 * workers)


def hide_ray_auth_notice(record: logging.LogRecord) -> bool:
    """Ray announces at every start that it turned token authentication on. It stays on; the notice is
    Ray's internals, not something a gen user acts on. Its other warnings (auth *disabled*) still show."""
    return not record.getMessage().startswith("Token authentication is enabled")


def _check_reachable(address: str) -> None:
    """A `host:port` cluster address that refuses a TCP connection fails here, in one line: ray.init
    would retry it for minutes. ('auto' and ray:// addresses are left to Ray.)"""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return
    import socket
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=10).close()
    except OSError as e:
        raise UserError(f"cannot reach the Ray cluster at {address} ({e.strerror or e}): check --address, "
                        "or start the head node with `ray start --head` (docs/CLUSTER.md)") from None


def _start_ray(opts: RunOptions) -> bool:
    """Connect to or start a cluster; True when we started it (and so must shut it down)."""
    if ray.is_initialized():
        return False
    quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
    if opts.address:
        try:
            ray.init(address=opts.address, **quiet, **opts.ray_init)
        except ConnectionError as e:   # 'auto' with no cluster running
            raise UserError(f"no Ray cluster at --address {opts.address} ({first_line(e)}): "
                            "start one with `ray start --head` (docs/CLUSTER.md), or leave out --address to "
                            "use this machine alone") from None
        return False
    logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(hide_ray_auth_notice)
    kwargs = dict(include_dashboard=False, **quiet)
    if opts.workers:
        kwargs["num_cpus"] = max(opts.workers, os.cpu_count() or 1)
    kwargs.update(opts.ray_init)
    ray.init(**kwargs)
    return True


_REAPER = r"""
import os, select, signal, sys, time
driver = int(sys.argv[1])
def tree(root):
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    st = f.read().rsplit(")", 1)[1].split()
                kids.setdefault(int(st[1]), []).append((int(p), st[19]))
            except OSError:
                pass
    out, todo = {}, [root]
    while todo:
        for pid, start in kids.get(todo.pop(), []):
            if pid != os.getpid():
                out[pid] = start; todo.append(pid)
    return out
before = tree(driver)          # the driver's processes from before the cluster started: never ours to kill
seen, stopped = {}, False
while os.path.exists(f"/proc/{driver}") and os.getppid() == driver:
    seen.update(tree(driver))
    if select.select([sys.stdin], [], [], 1.0)[0]:    # the driver closed our stdin: Ray is shut down
        seen.update(tree(driver))
        stopped = True
        break
for pid, start in seen.items():
    if stopped and before.get(pid) == start:
        continue
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[19] == start:   # same process, not a reused id
                os.kill(pid, signal.SIGKILL)
    except (OSError, IndexError):
        pass
"""


class _Reaper:
    """A watchdog for a cluster we start, started before it. If the driver dies without shutting Ray down
    (kill -9, OOM killer), or Ray's start-up or shutdown is cut short (Ctrl-C), Ray's agents outlive the
    raylet (~200 MB, blocked on the dead GCS). The watchdog kills every process the driver started while
    it ran: when the driver dies, or when `stop()` says Ray is shut down (what is left then is left over).
    By id and start time, so a reused id is left alone. Linux only (/proc); a no-op elsewhere."""

    def __init__(self):
        import subprocess
        import sys
        self.proc = None
        if os.path.isdir("/proc/self"):
            self.proc = subprocess.Popen([sys.executable, "-c", _REAPER, str(os.getpid())], start_new_session=True,
                                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        """Kill what the cluster left behind, then end the watchdog."""
        if self.proc is not None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except Exception:
                self.proc.kill()
                self.proc.wait()


class _InterruptAfter:
    """Ctrl-C during Ray's start-up takes effect when ray.init returns: an interrupted ray.init leaves
    processes that nobody shuts down (Ray's own children ignore SIGINT)."""

    def __enter__(self):
        self.hit = False
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:
            self.old = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, signum, frame):
        self.hit = True

    def __exit__(self, *exc):
        if self.installed:
            signal.signal(signal.SIGINT, self.old)
        if self.hit and exc[0] is None:
            raise KeyboardInterrupt


class _TermAsInterrupt:
    """SIGTERM ends a run like Ctrl-C (workers stopped, Ray shut down, "rerun to resume") instead of
    Ray's C-level stack dump. Installed after ray.init, which installs that dump handler."""

    def __enter__(self):
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:
            self.old = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.installed:   # a handler set from C (Ray's dump) reads as None: back to the default
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self.old is None else self.old)


class _Pool:
    """Actors plus the bookkeeping to replace a dead one."""

    def __init__(self, spec, backend, params, url, n, env, overlap: bool):
        self.depth = PIPELINE_OVERLAP if overlap else PIPELINE   # tasks in flight per actor
        opts = {"num_cpus": 1, "max_restarts": 0, "max_concurrency": self.depth if overlap else 1}
        if env:
            opts["runtime_env"] = {"env_vars": env}
        self.cls = ray.remote(SimWorker).options(**opts)
        self.args = (spec, backend, params, url, overlap)
        self.actors = [self.cls.remote(*self.args) for _ in range(n)]
        self.sent = [0] * n                  # tasks sent to each slot's current actor (its next ticket)
        self.last_group: dict[int, Any] = {}

    def run(self, k: int, index: int, base_seed: int, attempt: int) -> Any:
        """Send episode `index` to slot k's actor; its ref."""
        self.sent[k] += 1
        return self.actors[k].run.remote(index, base_seed, attempt, self.sent[k] - 1)

    def ping(self, k: int) -> Any:
        """A ref that is ready once slot k's actor is placed on a node and constructed."""
        return self.actors[k].ping.remote()

    def replace(self, k: int) -> Any:
        """A new actor in slot k; returns its ping (see `ping`)."""
        try:
            ray.kill(self.actors[k], no_restart=True)
        except Exception:   # already dead
            pass
        self.actors[k] = self.cls.remote(*self.args)
        self.sent[k] = 0
        self.last_group.pop(k, None)
        return self.ping(k)

    def shutdown(self) -> None:
        for a in self.actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:
                pass


class EpisodeQueue:
    """Pending episodes in index order, with a per-group view so a worker can stay on its scene."""

    def __init__(self, groups: dict[int, Any]):
        self.group_of = dict(groups)
        self.pending = set(groups)
        self.order = deque(sorted(groups))
        self.by_group: dict[Any, deque] = defaultdict(deque)
        for i in self.order:
            self.by_group[self.group_of[i]].append(i)

    def __bool__(self) -> bool:
        return bool(self.pending)

    def push_front(self, i: int) -> None:
        self.pending.add(i)
        self.order.appendleft(i)
        self.by_group[self.group_of[i]].appendleft(i)

    def pop(self, prefer_group: Any = None) -> int:
        """Lazy deletion: an index already taken through the other view is skipped."""
        for q in (self.by_group.get(prefer_group), self.order):
            while q:
                i = q.popleft()
                if i in self.pending:
                    self.pending.discard(i)
                    return i
        raise IndexError("no pending episodes")


def generate(spec: DatasetSpec, params: dict, opts: RunOptions) -> RunReport:
    """Fill `opts.out` with episodes 0..episodes-1 (only the incomplete ones). Resumable and idempotent."""
    if opts.episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {opts.episodes}")
    if opts.workers is not None and opts.workers <= 0:
        raise ValueError(f"--workers must be positive, got {opts.workers}")
    if opts.max_retries < 0:
        raise ValueError("--max-retries must be >= 0")
    overlap_writes(opts.overlap_writes, 1, 1)     # a bad mode fails before anything starts
    backend = pick_backend(opts.backend, spec.real_backend, spec.real_module, spec.install_hint)
    spec.validate(params, backend)
    if backend != "embedded":
        log.warning("using the real simulator backend '%s'", backend)
    cfg = spec.store_config(params, backend, opts.episodes, opts.seed, opts.compression_level)
    report = RunReport(store=opts.out, backend=backend, requested=opts.episodes)
    if opts.address:
        _check_reachable(opts.address)   # before the store exists: nothing is left behind
    t0 = time.time()
    make_parent(opts.out)
    full = False
    with StoreLock(str(opts.out)) as lock:
        try:
            writer = StoreWriter.create(opts.out, cfg)
            complete = writer.complete_mask()[: opts.episodes]
            todo = [i for i in range(opts.episodes) if not complete[i]]
            report.already_complete = opts.episodes - len(todo)
            if not todo:
                report.seconds = time.time() - t0
                return report
            # a cluster we start is watched from before it starts (see _Reaper)
            reaper = _Reaper() if not (opts.address or ray.is_initialized()) else None
            started = False
            try:
                with _InterruptAfter():
                    started = _start_ray(opts)
                with _TermAsInterrupt():
                    _run(spec, params, opts, backend, writer, todo, report, lock)
            finally:
                if started:
                    ray.shutdown()
                if reaper is not None:
                    reaper.stop()
        except Exception as e:   # the driver's own writes (complete flags, seeds, attributes) meet a full disk too
            if not _no_space(e):
                raise
            full = True
    if full:   # raised outside the handler: no OSError context for the CLI to report instead of this line
        raise StoreError(no_space_message(opts.out))
    report.seconds = time.time() - t0
    return report


def _last_line(e: BaseException) -> str:
    """An actor's start-up error in one line: Ray's message ends with the constructor's exception."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(e).__name__)[:300]


def _no_space(e: BaseException | None) -> bool:
    """Whether e, or an exception in its cause/context chain, is a full disk (or quota)."""
    return os_error_in_chain(e, NO_SPACE) is not None


def no_space_message(url, episode: int | None = None) -> str:
    where = f" (writing episode {episode})" if episode is not None else ""
    return (f"no space left on the device holding {url}{where}; complete episodes are intact: free space "
            "and rerun the same command to resume")


def _run(spec, params, opts, backend, writer, todo, report, lock) -> None:
    cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
    n = max(1, min(opts.workers or cluster_cpus, len(todo)))
    report.workers = n
    report.overlap_writes = overlap_writes(opts.overlap_writes, n, cluster_cpus)
    env = {"TECO_FAULTS": os.environ["TECO_FAULTS"]} if os.environ.get("TECO_FAULTS") else None
    pool = _Pool(spec, backend, params, writer.url, n, env, report.overlap_writes)

    queue = EpisodeQueue({i: spec.group(i, opts.seed, params) for i in todo})
    attempts: dict[int, int] = defaultdict(int)
    previously_failed = {int(k) for k in writer.failed()}
    inflight: dict[Any, tuple[int, int]] = {}              # ref -> (actor slot, episode)
    lanes: list[list] = [[] for _ in range(n)]              # per slot: its refs in submission order
    head_since = [0.0] * n                                  # when the slot's oldest task became its oldest
    suspects: set[int] = set()      # in flight on a worker that died with several episodes: rerun alone
    # A slot gets episodes only once its actor answered a ping: a replacement for an actor lost with its
    # node may never be placed (no node has a free CPU), and episodes handed to it would wait forever.
    placing: dict[Any, int] = {pool.ping(k): k for k in range(n)}   # ping ref -> slot
    up = [False] * n
    start_error = ""                # why the last actor that failed to start did (its slot is retired)
    noted: set[str] = set()         # episodes' notes already logged (each once)
    waiting_since = time.time()     # since when no slot has been up (warn once if that lasts)
    bar = tqdm(total=opts.episodes, initial=report.already_complete, unit="ep", disable=not opts.progress,
               desc=f"{spec.name} [{backend}, {plural(n, 'worker')}]", dynamic_ncols=True, smoothing=0.05)
    last_beat = time.time()

    def fail(i: int, why: str) -> None:
        attempts[i] += 1
        if attempts[i] <= opts.max_retries:
            report.retried += 1
            queue.push_front(i)
            log.warning("episode %d failed (%s); retry %d/%d", i, why, attempts[i], opts.max_retries)
        else:
            report.failed[i] = why
            writer.record_failed(i, why)
            log.error("episode %d failed %d times, giving up: %s", i, attempts[i], why)

    def retire(k: int, ref) -> None:
        """Drop a finished ref from its slot; the next one's clock starts when it reaches the head."""
        if lanes[k] and lanes[k][0] == ref:
            head_since[k] = time.time()
        lanes[k].remove(ref)
        inflight.pop(ref, None)

    def lose_worker(k: int, why: str, culprit: int | None) -> None:
        """Replace slot k's actor. Its episodes die with it: `culprit` (or the only one) is charged an
        attempt; when several were in flight and none is known, none is charged and each reruns alone,
        so an innocent episode never pays for its neighbour."""
        episodes = [inflight.pop(r)[1] for r in lanes[k]]
        lanes[k].clear()
        up[k] = False
        placing[pool.replace(k)] = k
        if culprit is None and len(episodes) == 1:
            culprit = episodes[0]
        for i in reversed(episodes):
            if i == culprit:
                suspects.discard(i)
                fail(i, why)
            else:
                if culprit is None:
                    suspects.add(i)
                report.retried += 1
                queue.push_front(i)
                log.warning("episode %d requeued: its worker was lost (%s)", i, why)

    def submit(k: int) -> bool:
        lane = lanes[k]
        if stop or not up[k] or len(lane) >= pool.depth or not queue or any(inflight[r][1] in suspects for r in lane):
            return False
        i = queue.pop(pool.last_group.get(k))
        if i in suspects and lane:        # a suspect waits for an empty worker
            queue.push_front(i)
            return False
        pool.last_group[k] = queue.group_of[i]
        ref = pool.run(k, i, opts.seed, attempts[i])
        if not lane:
            head_since[k] = time.time()
        lane.append(ref)
        inflight[ref] = (k, i)
        return True

    stop: StoreError | None = None
    try:
        while (queue and not stop) or inflight:
            # breadth first: every worker gets one episode before any gets its queued second
            for depth in range(pool.depth):
                for k in range(n):
                    if len(lanes[k]) == depth:
                        submit(k)
            if not any(up) and not placing and queue and not stop:
                raise StoreError(f"every simulator worker failed to start (last: {start_error}); completed "
                                 "episodes are kept: fix that and rerun the same command to resume")
            if any(up) or not queue:
                waiting_since = time.time()
            elif waiting_since and time.time() - waiting_since > 120:
                log.warning("no simulator worker has started for %.0f s (%d waiting): the cluster has no free "
                            "CPU for one, or the simulator hangs at start-up; add a node or stop with Ctrl-C "
                            "(complete episodes are kept)", time.time() - waiting_since, len(placing))
                waiting_since = 0.0       # once
            ready, _ = ray.wait(list(inflight) + list(placing), num_returns=1, timeout=0.5)
            for ref in ready:
                if ref in placing:            # an actor is up; one that failed to start retires its slot
                    k = placing.pop(ref)
                    try:
                        ray.get(ref)
                        up[k] = True
                    except ray.exceptions.RayError as e:   # its slot is retired: the others carry on
                        start_error = _last_line(e)
                        log.warning("a simulator worker failed to start (%s); going on without it", start_error)
                    continue
                if ref not in inflight:       # its worker was already replaced this round
                    continue
                k, i = inflight[ref]
                try:
                    idx, seed, frames, sim_s, write_s, notes = ray.get(ref)
                except ray.exceptions.RayActorError as e:
                    lose_worker(k, f"worker died: {type(e).__name__}", None)
                    continue
                except ray.exceptions.RayTaskError as e:
                    retire(k, ref)
                    cause = e.cause if getattr(e, "cause", None) is not None else e
                    if isinstance(cause, OSError) and cause.errno in NO_SPACE:   # retrying cannot help:
                        # hand out nothing more, let the episodes in flight finish, then stop
                        stop = stop or StoreError(no_space_message(writer.url, i))
                        continue
                    suspects.discard(i)
                    fail(i, f"{type(cause).__name__}: {first_line(cause, 200)}")
                    continue
                retire(k, ref)
                suspects.discard(idx)
                for note in notes:   # workers' logs do not reach the driver: what the user must know comes here
                    if note not in noted:
                        noted.add(note)
                        log.warning("%s", note)
                writer.mark_complete(idx, seed)
                if idx in previously_failed:
                    writer.record_failed(idx, None)
                report.generated += 1
                report.frames += frames
                report.sim_seconds += sim_s
                report.write_seconds += write_s
                now = time.time()
                if report.first_done is None:
                    report.first_done = now
                else:
                    report.frames_after_first += frames
                report.last_done = now
                bar.update(1)
                bar.set_postfix(fps=f"{report.frames / max(bar.format_dict['elapsed'], 1e-9):.0f}",
                                failed=len(report.failed), refresh=False)
            if opts.episode_timeout:
                # a slot's oldest task is the one that may hang; its clock started when it became oldest
                now = time.time()
                for k in range(n):
                    if lanes[k] and now - head_since[k] > opts.episode_timeout:
                        lose_worker(k, f"timed out after {opts.episode_timeout:.0f} s", inflight[lanes[k][0]][1])
            if time.time() - last_beat > 60:
                lock.heartbeat()
                last_beat = time.time()
    finally:
        bar.close()
        pool.shutdown()   # kills in-flight episodes too; they were never marked complete
    if stop:
        raise stop
