"""`impasto serve --backend ray`: jobs as Ray tasks on a two-node cluster on this machine.

The cluster runs inside a network namespace with only loopback (``unshare --net``), so Ray's
traffic cannot leave 127.0.0.1 whatever address it would pick (ray_scenario.py does the work;
this file checks what it saw). Nothing here starts Ray outside that namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from impasto.errors import UsageError
from impasto.service.ray_backend import RETRIES, RayBackend, gpu_request
from impasto.service.jobs import JobStore

from tests.conftest import require, require_module

HERE = Path(__file__).resolve().parent


def test_a_job_asks_for_a_gpu_when_its_device_wants_one():
    assert gpu_request({"device": "cpu"}, cluster_gpus=8) == 0
    assert gpu_request({"device": "cuda"}, cluster_gpus=0) == 1  # Ray queues it until a GPU node joins
    assert gpu_request({"device": "cuda:1"}, cluster_gpus=2) == 1
    assert gpu_request({"device": "auto"}, cluster_gpus=1) == 1
    assert gpu_request({"device": "auto"}, cluster_gpus=0) == 0
    assert gpu_request({}, cluster_gpus=0) == 0


def test_an_unreachable_or_malformed_address_is_one_line_at_once(tmp_path):
    require_module("ray")
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UsageError, match=rf"^--ray-address 127.0.0.1:{port}: no Ray head answers there \(Connection refused\)$"):
        RayBackend(JobStore(tmp_path), address=f"127.0.0.1:{port}").connect()
    with pytest.raises(UsageError, match=r"^--ray-address head: expected HOST:PORT of the Ray head, or auto$"):
        RayBackend(JobStore(tmp_path), address="head").connect()


def test_without_ray_installed_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UsageError, match=r"^--backend ray needs Ray: pip install 'impasto\[ray\]'$"):
        RayBackend(JobStore(tmp_path)).connect()


def test_cli_ray_flags_need_the_ray_backend(capsys):
    from impasto.cli.main import main

    assert main(["serve", "--ray-address", "127.0.0.1:6379"]) == 2
    assert capsys.readouterr().err.strip().endswith("--ray-address needs --backend ray")
    assert main(["serve", "--backend", "ray", "--job-cpus", "0"]) == 2
    assert capsys.readouterr().err.strip().endswith("--job-cpus must be > 0, got 0")


def _loopback_namespace() -> list[str]:
    """The command prefix that runs a program in a new network namespace with only loopback up."""
    unshare = shutil.which("unshare")
    require(unshare, "unshare (util-linux) is not on PATH")
    prefix = [unshare, "--net", "--map-root-user", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
    require(probe.returncode == 0, f"cannot make a loopback-only network namespace ({probe.stderr.strip()})")
    return prefix


def test_ray_cluster_two_nodes_kill_cancel_restart_time_limit(tmp_path):
    """A job whose node is killed mid-run is retried on the other node and completes with the same
    image as a direct run; cancel frees the CPU; a server restart re-queues a running job; the
    time limit stops a task."""
    require_module("ray")
    prefix = _loopback_namespace()
    out = tmp_path / "facts.json"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(HERE.parents[1] / "src")}
    proc = subprocess.run([*prefix, sys.executable, str(HERE / "ray_scenario.py"), str(out)], capture_output=True, text=True, timeout=400, env=env)
    assert proc.returncode == 0 and out.is_file(), proc.stdout[-3000:] + proc.stderr[-6000:]
    facts = json.loads(out.read_text())
    assert facts["ready"] == {"backend": "ray", "workers": 2}  # one job per CPU of the cluster
    assert facts["driver_on_head"]
    assert 0.2 <= facts["killed_at_progress"] < 1.0  # killed mid-job, not at a convenient moment
    assert facts["statuses"] == {"killed": "done", "other": "done"}
    assert facts["killed_job"]["attempts"] == 2 and facts["killed_job"]["final_node_is_head"]
    assert facts["killed_job"]["error"] is None and facts["killed_job"]["progress"] == 1.0
    assert facts["result_vs_direct_max_diff"] == 0  # nothing lost: the retried job's image is the direct run's
    events = facts["events"]
    assert events["progress"] >= 5 and events["snapshot"] >= 2 and events["progress_after_retry"]
    assert len(events["retry_messages"]) == 1 and "(attempt 2)" in events["retry_messages"][0]
    assert events["last"] == {"type": "status", "status": "done"}
    assert facts["snapshot_served"] == 200
    assert facts["cancel_status"] == "cancelled" and facts["cpu_back_after_cancel"] and facts["cancelled_stays_cancelled"] == "cancelled"
    assert facts["restarted_job"] == {"status": "done", "has_result": True}
    assert facts["all_jobs"] == ["cancelled", "done", "done", "done"]
    assert facts["time_limit"] == {"status": "failed", "error": "time limit of 3 s reached"} and facts["cpu_back_after_time_limit"]
    assert facts["auto_without_cluster"].startswith("--ray-address auto: cannot connect to a Ray cluster (")
    assert RETRIES >= 1
