"""Check a store: metadata, and for every complete episode every object present, checksums, shapes, ranges."""
from __future__ import annotations

from dataclasses import dataclass, field

import fsspec
import numpy as np
from tqdm import tqdm

from cli_common import first_line

from .reader import StoreReader, object_keys
from .schema import array_specs
from .writer import actions_valid


@dataclass
class VerifyReport:
    url: str
    complete: int = 0
    incomplete: int = 0
    bad: dict[int, list[str]] = field(default_factory=dict)   # episode -> problems
    failed: dict = field(default_factory=dict)                 # episodes the generator gave up on
    not_encoded: list[int] = field(default_factory=list)       # complete, codes not written yet: not damage
    store_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad and not self.store_problems

    def lines(self) -> list[str]:
        out = [f"{self.url}: {self.complete} complete episodes checked, {self.incomplete} incomplete"]
        out += [f"store: {p}" for p in self.store_problems]
        out += [f"episode {i}: {'; '.join(ps)}" for i, ps in sorted(self.bad.items())]
        if self.failed:
            out.append(f"generator reported {len(self.failed)} failed episodes: "
                       + ", ".join(sorted(self.failed, key=int)[:20]))
        if self.not_encoded:
            out.append(f"{len(self.not_encoded)} complete episodes not encoded yet (not damage; teco-encode encodes them)")
        out.append("OK" if self.ok else f"FAULTS in {len(self.bad)} episodes")
        return out


def per_episode_arrays(reader: StoreReader) -> list[str]:
    names = [s.name for s in array_specs(reader.config)]
    if reader.has("codes"):
        names.append("codes")
    return names


def check_episode(reader: StoreReader, i: int, present: dict[str, dict[str, int | None]],
                  not_encoded: list | None = None) -> list[str]:
    """Problems of episode i; `present`: array -> {object key: size in bytes} of the objects that exist."""
    cfg, problems = reader.config, []
    not_encoded = [] if not_encoded is None else not_encoded
    for name in per_episode_arrays(reader):
        arr = reader.array(name)
        keys = object_keys(arr, i)
        missing = [k for k in keys if k not in present[name]]
        if missing and name == "codes":   # not encoded yet: teco-encode's business, not damage
            not_encoded.append(i)
            continue
        if missing:
            problems.append(f"{name}: missing object(s) {', '.join(missing[:3])}")
            continue
        empty = [k for k in keys if present[name][k] == 0]
        if empty:   # zarr would read an empty shard as fill values; no object we write is empty
            problems.append(f"{name}: empty object(s) {', '.join(empty[:3])}")
            continue
        try:
            x = np.asarray(arr[i])
        except Exception as e:   # checksum mismatch, truncated shard, undecodable bytes
            problems.append(f"{name}: unreadable ({type(e).__name__}: {first_line(e, 120)})")
            continue
        if name == "actions" and not actions_valid(x, len(cfg.action_names)):
            problems.append(f"actions: ids outside 0..{len(cfg.action_names) - 1} (-1 only at frame 0)")
        if name == "pose" and cfg.pose_dim and not np.isfinite(x).all():
            problems.append("pose: non-finite values")
        if name == "codes" and (x == -1).all():   # added or regenerated after encoding: reset, not damaged
            not_encoded.append(i)
        elif name == "codes":
            k = int((reader.meta.get("codes") or {}).get("codebook_size") or 0)
            if x.min() < 0 or (k and x.max() >= k):
                problems.append(f"codes: ids outside 0..{k - 1}")
    return problems


def verify(url, progress: bool = True) -> VerifyReport:
    reader = StoreReader(url)   # raises StoreError for wrong format/dataset/shape
    report = VerifyReport(url=reader.url, failed=reader.failed())
    done, unreadable = reader.complete_flags()   # proportional to the flags that exist, not to the config's count
    report.complete, report.incomplete = len(done), reader.config.episodes - len(done)
    for i in unreadable:
        report.bad[int(i)] = ["complete: flag unreadable (counted incomplete)"]
    fs, root = fsspec.core.url_to_fs(reader.url)
    present = {}
    for name in per_episode_arrays(reader):
        base = f"{root.rstrip('/')}/{name}/"
        try:
            present[name] = {p[len(base):]: d.get("size")
                             for p, d in fs.find(base + "c", detail=True).items()}
        except FileNotFoundError:
            present[name] = {}
    for i in tqdm(done, desc="verify", unit="ep", disable=not progress):
        problems = check_episode(reader, int(i), present, report.not_encoded)
        if problems:
            report.bad[int(i)] = problems
    return report
