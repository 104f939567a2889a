"""Object storage end to end: a local S3-compatible server (moto in server mode, a separate process started
here) and s3fs, credentials and endpoint passed the standard way (AWS_* environment variables). Every
command a user runs against a bucket: gen-dmlab (same bytes as on local disk, killed and resumed, the lock),
teco-store, train-vqgan, teco-encode, train-teco, and the loader with several DataLoader workers."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch

from conftest import assert_same_objects, local_objects, wait_for_complete, call_cli, subprocess_env
from generators.dmlab.cli import main as gen_main
from storage import StoreReader, StoreWriter
from storage.cli import main as store_cli
from storage.lock import StoreLock

BUCKET = "teco"
GEN = ["--length", "20", "--no-progress"]   # 20-frame 64x64 DMLab episodes: ~0.1 s each
N = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on a free loopback port, the AWS_* variables pointing at it, one bucket."""
    import boto3
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2)
            break
        except OSError:
            assert server.poll() is None and time.time() < deadline, "moto server did not start"
            time.sleep(0.2)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield env
    server.terminate()
    server.wait(30)
    log.close()


def s3fs_fs():
    import fsspec
    return fsspec.filesystem("s3", skip_instance_cache=True)   # a fresh listing cache: other processes write


def objects_s3(url) -> dict[str, bytes]:
    fs = s3fs_fs()
    root = url[len("s3://"):].rstrip("/")
    return {k[len(root) + 1:]: fs.cat_file(k) for k in fs.find(root)}


def assert_same_store(local, url):
    assert_same_objects(local_objects(local), objects_s3(url))


@pytest.fixture(scope="module")
def local_ref(ray_cluster, tmp_path_factory):
    url = str(tmp_path_factory.mktemp("local") / "d.zarr")
    assert gen_main(["--episodes", str(N), "--out", url, *GEN]) == 0
    return url


@pytest.fixture(scope="module")
def bucket_store(s3, ray_cluster, local_ref):
    url = f"s3://{BUCKET}/d.zarr"
    assert gen_main(["--episodes", str(N), "--out", url, *GEN]) == 0
    return url


def test_gen_into_bucket_same_bytes_as_local_disk(bucket_store, local_ref):
    assert_same_store(local_ref, bucket_store)
    assert not s3fs_fs().exists(f"{BUCKET}/d.zarr.lock")   # released


def test_killed_mid_run_resumes_on_bucket(s3, ray_home, ray_cluster, local_ref):
    """SIGKILL of the driver leaves its lock object in the bucket; the rerun (same host, owner dead)
    takes the lock over, generates only what is missing, and the store equals the local one."""
    url = f"s3://{BUCKET}/killed.zarr"
    cmd = [sys.executable, "-m", "generators.dmlab.cli", "--episodes", str(N), "--out", url, "--workers", "1", *GEN]
    p = subprocess.Popen(cmd, env=subprocess_env(ray_home, TECO_FAULTS="delay:1.0", **s3),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_complete(p, url, 2, timeout=240)
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    done = int(StoreReader(url).complete_mask().sum())
    assert 2 <= done < N
    assert s3fs_fs().exists(f"{BUCKET}/killed.zarr.lock")   # left behind by the killed driver
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):   # the rerun, in this process: its Ray cluster is already up
        assert gen_main(cmd[3:]) == 0
    assert f"{N - done} generated now" in buf.getvalue()
    assert_same_store(local_ref, url)


def test_lock_on_bucket(s3):
    """The lock's create is conditional (If-None-Match: *), so exactly one of two racing runs gets it on
    servers that honour conditional writes (AWS S3, this one); a dead owner on this host, or an owner on
    another host whose heartbeat is older than STALE_AFTER_S, is taken over."""
    from storage import lock as lockmod
    url = f"s3://{BUCKET}/locked.zarr"
    fs = s3fs_fs()
    path = f"{BUCKET}/locked.zarr.lock"
    with StoreLock(url):
        with pytest.raises(FileExistsError, match="another generation run"):
            StoreLock(url).acquire()
        with pytest.raises(FileExistsError):   # the server refuses a second exclusive create
            with fs.open(path, "xb") as f:
                f.write(b"{}")
        assert json.loads(fs.cat_file(path))["pid"] == os.getpid()
    assert not fs.exists(path)
    for age, taken in [(10.0, False), (lockmod.STALE_AFTER_S + 60, True)]:
        other = {"host": "another-node", "pid": 1, "started": 0, "heartbeat": time.time() - age}
        fs.pipe_file(path, json.dumps(other).encode())
        lock = StoreLock(url)
        if taken:
            lock.acquire()
            assert json.loads(fs.cat_file(path))["host"] == socket.gethostname()
            lock.release()
        else:
            with pytest.raises(FileExistsError, match="another-node"):
                lock.acquire()
            fs.rm(path)


def test_store_cli_on_bucket(bucket_store, tmp_path):
    code, err = call_cli(store_cli, ["verify", bucket_store, "--no-progress"])
    assert code == 0, err
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert store_cli(["info", bucket_store, "--json"]) == 0
    info = json.loads(buf.getvalue())
    assert info["complete"] == N and info["failed"] == 0 and info["failed_episodes"] == {}
    assert info["bytes_on_disk"] > 0 and info["store"] == bucket_store
    gif = tmp_path / "p.gif"
    code, err = call_cli(store_cli, ["preview", bucket_store, "--out", str(gif), "--episodes", "2", "--frames", "5"])
    assert code == 0, err
    assert gif.stat().st_size > 0


def test_endpoint_from_fsspec_config(bucket_store, s3, tmp_path):
    """Without AWS_ENDPOINT_URL: the endpoint from an FSSPEC_S3_* variable, or everything from an fsspec
    config file (FSSPEC_CONFIG_DIR/*.json), reaches every command."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base["PYTHONPATH"] = os.pathsep.join(sys.path)
    (tmp_path / "s3.json").write_text(json.dumps({"s3": {"endpoint_url": s3["AWS_ENDPOINT_URL"], "key": "testing",
                                                          "secret": "testing", "client_kwargs": {"region_name": "us-east-1"}}}))
    for env in ({**base, **{k: v for k, v in s3.items() if k != "AWS_ENDPOINT_URL"},
                 "FSSPEC_S3_ENDPOINT_URL": s3["AWS_ENDPOINT_URL"]},
                {**base, "FSSPEC_CONFIG_DIR": str(tmp_path)}):
        out = subprocess.run([sys.executable, "-m", "storage.cli", "info", bucket_store, "--json"], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["complete"] == N


def test_loader_streams_windows_from_bucket(bucket_store, local_ref):
    """Several DataLoader worker processes read random windows straight from the bucket."""
    from torch.utils.data import DataLoader
    from storage.loader import WindowDataset
    ds = WindowDataset(bucket_store, window=8, fields=("video", "actions"), infinite=False, seed=3)
    items = list(DataLoader(ds, batch_size=None, num_workers=2))
    assert sorted(it["episode"] for it in items) == list(range(N))
    ref = StoreReader(local_ref)
    for it in items:
        i, t = it["episode"], it["start"]
        assert np.array_equal(it["video"].numpy(), ref.read("video", i, t, t + 8))
        assert np.array_equal(it["actions"].numpy(), ref.read("actions", i, t, t + 8))


def test_an_emptied_shard_on_the_bucket_is_damage_not_black_frames(bucket_store):
    """zarr reads a 0-byte shard as an absent one (fill values); on a bucket only the reader's check stops it."""
    fs = s3fs_fs()
    src, dst = bucket_store[len("s3://"):], f"{BUCKET}/emptied.zarr"
    fs.copy(src, dst, recursive=True)
    fs.pipe(f"{dst}/video/c/2/0/0/0/0", b"")
    url = f"s3://{dst}"
    from storage.reader import EpisodeDataError
    with pytest.raises(EpisodeDataError, match="episode 2: array 'video' is unreadable \\(empty object"):
        StoreReader(url).read("video", 2)
    from storage.verify import verify
    report = verify(url, progress=False)
    assert list(report.bad) == [2] and "video: empty object(s)" in report.bad[2][0]
    assert StoreReader(url).read("video", 1).any()


def test_train_encode_grow_on_bucket(bucket_store, tmp_path, ray_cluster):
    """train-vqgan and train-teco read the bucket (2 DataLoader workers), teco-encode writes codes into it;
    episodes added after encoding are reported as not encoded (not as damage) until encoded too."""
    from teco.encode import main as encode_main
    from teco.train import main as teco_main
    from teco.train_vqgan import main as vqgan_main
    torch.set_num_threads(1)
    vq, tc = tmp_path / "vq", tmp_path / "teco"
    code, err = call_cli(vqgan_main, ["--store", bucket_store, "--out", str(vq), "--config", "tiny64", "--device",
                                      "cpu", "--steps", "2", "--batch-size", "2", "--eval-frames", "2",
                                      "--num-workers", "2", "--test-fraction", "0.25"])
    assert code == 0, err
    enc = ["--store", bucket_store, "--vqgan", str(vq), "--device", "cpu", "--num-workers", "2"]
    code, err = call_cli(encode_main, enc)
    assert code == 0, err
    r = StoreReader(bucket_store)
    assert (r.array("codes")[:] >= 0).all()
    assert r.attrs["codes"]["encoded_episodes"] == N and r.attrs["codes"]["vqgan_run"] == str(vq)
    code, err = call_cli(teco_main, ["--store", bucket_store, "--vqgan", str(vq), "--out", str(tc), "--config",
                                     "tiny", "--device", "cpu", "--steps", "2", "--num-workers", "2"])
    assert code == 0, err
    assert (tc / "ckpt.pt").exists()

    # the store grows: the new episode is complete but not encoded; verify says so and passes
    assert gen_main(["--episodes", str(N + 1), "--out", bucket_store, *GEN]) == 0
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert store_cli(["verify", bucket_store, "--no-progress"]) == 0
    assert "1 complete episodes not encoded yet" in buf.getvalue()
    code, err = call_cli(encode_main, enc)
    assert code == 0, err
    r = StoreReader(bucket_store)
    assert (r.array("codes")[:] >= 0).all() and r.attrs["codes"]["encoded_episodes"] == N + 1
