"""A multi-node Ray cluster on one machine (ray.cluster_utils.Cluster: a head without CPUs and three
one-CPU worker nodes, token authentication on), joined by `gen-dmlab --address`: the actors spread over
the nodes, and losing a node mid-run loses nothing: its in-flight episode is redone on another node and
the store is byte-identical to an undisturbed run."""
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from conftest import assert_same_objects, local_objects, wait_for_complete, subprocess_env
from storage import StoreReader
from storage.verify import verify

N = 9
GEN = ["--length", "20", "--no-progress"]


@pytest.fixture(scope="module")
def cluster(ray_home):
    from ray._private.authentication_test_utils import reset_auth_token_state
    from ray.cluster_utils import Cluster
    tmp = tempfile.mkdtemp(prefix="rc", dir="/tmp")   # short: Ray's socket paths must fit in 107 bytes
    os.makedirs(os.path.join(tmp, "ray"))
    token = os.path.join(tmp, "auth_token")
    with open(token, "w") as f:
        f.write(secrets.token_hex(32))
    env = {"HOME": ray_home["home"], "RAY_TMPDIR": tmp, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": token}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():   # the nodes are children of this process and inherit these
            mp.setenv(k, v)
        reset_auth_token_state()   # this process reads RAY_AUTH_* once: make it re-read them (Ray's own test helper)
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, "temp_dir": tmp})
        nodes = [c.add_node(num_cpus=1) for _ in range(3)]
        c.wait_for_nodes()
        try:
            yield c, nodes, env
        finally:
            c.shutdown()
    reset_auth_token_state()
    shutil.rmtree(tmp, ignore_errors=True)   # back to the session's settings for later test modules


def gen_cmd(url, address):
    return [sys.executable, "-m", "generators.dmlab.cli", "--episodes", str(N), "--out", url, "--address", address, *GEN]


def assert_same_store(a, b):
    assert_same_objects(local_objects(a), local_objects(b))


@pytest.fixture(scope="module")
def undisturbed(cluster, ray_home, tmp_path_factory):
    c, _, env = cluster
    url = str(tmp_path_factory.mktemp("undisturbed") / "d.zarr")
    out = subprocess.run(gen_cmd(url, c.address), env=subprocess_env(ray_home, **env), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return url, out.stdout


def test_gen_address_spreads_actors_over_nodes(undisturbed):
    """One actor per CPU of the cluster; the head has none and each worker node one, so the three actors
    run on three different nodes."""
    url, stdout = undisturbed
    assert f"{N}/{N} episodes complete" in stdout and "3 workers" in stdout
    assert verify(url, progress=False).ok


@pytest.mark.slow
def test_losing_a_node_mid_run_loses_nothing(cluster, undisturbed, ray_home, tmp_path):
    c, nodes, env = cluster
    url = str(tmp_path / "d.zarr")
    p = subprocess.Popen(gen_cmd(url, c.address), env=subprocess_env(ray_home, TECO_FAULTS="delay:1.0", **env),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_complete(p, url, 2, timeout=240)
    c.remove_node(nodes[0])   # kills the node's raylet and its worker processes: an episode is in flight there
    try:
        stdout, stderr = p.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        stdout, stderr = p.communicate()
        pytest.fail(f"gen-dmlab did not finish within 150 s of losing a node ({int(StoreReader(url).complete_mask().sum())}"
                    f"/{N} complete): the runner waits on a replacement actor that no node can place\n{stderr[-2000:]}")
    assert p.returncode == 0, stderr
    assert f"{N}/{N} episodes complete" in stdout
    assert "worker died" in stderr   # an in-flight episode was lost with the node, then redone elsewhere
    assert verify(url, progress=False).ok
    assert_same_store(undisturbed[0], url)
