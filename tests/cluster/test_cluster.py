"""Sweeps and remote rollouts on a real two-node Ray cluster (loopback, separate processes)."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from cluster_helpers import LoopbackCluster, listening_addresses, processes_mentioning

pytestmark = pytest.mark.slow

# Tiny runs with every pipeline phase, minus videos and the tracking grid (not what is tested).
# What these tests do not look at: videos, the tracking grid, the command calibration.
FAST = [
    "--set",
    "visualize_freq=0",
    "--set",
    "eval.tracking_episodes=0",
    "--set",
    "calibration.enabled=false",
]


def cli(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def sweep_command(cluster: LoopbackCluster, folder: Path, spec: dict) -> list[str]:
    """Write the sweep file ``spec`` into ``folder``; pidog-sweep on it against the test cluster."""
    sweep_file = folder / f"{spec['name']}.yaml"
    sweep_file.write_text(yaml.safe_dump(spec))
    return cli(
        "pidog_learning.sweep", str(sweep_file), "--ray-address", cluster.address, "--output-dir", str(folder)
    )


@contextmanager
def running(cluster: LoopbackCluster, command: list[str], log: Path) -> Iterator[subprocess.Popen]:
    """The command in the background, output to ``log``; killed if still running afterwards."""
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=cluster.env())
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def run_cli(
    cluster: LoopbackCluster, module: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess:
    """``python -m module args`` against the test cluster, to completion."""
    return subprocess.run(
        cli(module, *args), capture_output=True, text=True, timeout=timeout, env=cluster.env()
    )


def test_every_ray_process_listens_on_loopback_only(cluster: LoopbackCluster) -> None:
    cluster.ensure_worker()
    pids = processes_mentioning(str(cluster.root))
    assert pids
    addresses = listening_addresses(pids)
    assert addresses and addresses <= {"127.0.0.1"}, addresses


def test_ppo_simulators_run_on_the_second_node(cluster: LoopbackCluster, tmp_path: Path) -> None:
    cluster.ensure_worker()
    run = run_cli(
        cluster,
        "pidog_learning.train_cli",
        *("--config", "tiny", "--ray-address", cluster.address, "--output-dir", str(tmp_path)),
        *("--experiment-name", "remote", *FAST),
        # A curriculum stage: the remote simulator's task is changed through the actor.
        *("--set", 'curriculum=[{"from_timesteps": 128, "env": {"reward": {"foot_slip": 3.0}}}]'),
        timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    # The learner (this driver, attached to the head) kept the policy; the robot was simulated
    # by an actor on the other node.
    assert f"1 simulated robots on 1 Ray workers: 1 on node {cluster.node_ids['worker']}" in output
    assert "curriculum stage 1 of 1 from 128 steps" in output
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run_dir,) = (tmp_path / "remote" / "tensorboard").iterdir()
    events = EventAccumulator(str(run_dir))
    events.Reload()
    # Per-rollout means of the remote robot's reward terms, logged when each rollout ends.
    slip = {e.step: e.value for e in events.Scalars("reward/foot_slip")}
    assert slip and all(v == 0.0 for step, v in slip.items() if step <= 128), slip
    assert any(v < 0.0 for step, v in slip.items() if step > 128), slip
    exp = tmp_path / "remote"
    for name in ("policy.onnx", "eval.json", "checkpoints/ppo_final.zip", "training_history.json"):
        assert (exp / name).is_file(), name
    history = json.loads((exp / "training_history.json").read_text())
    assert history["rewards"], "PPO collected no rollouts"
    assert max(e["timesteps"] for e in history["evaluations"]) >= 256
    assert "finetuned" in json.loads((exp / "eval.json").read_text())["results"]
    assert json.loads((exp / "config.json").read_text())["ray"]["address"] == cluster.address


def test_a_cluster_too_small_is_refused_before_any_work(cluster: LoopbackCluster, tmp_path: Path) -> None:
    cluster.ensure_worker()
    command = sweep_command(cluster, tmp_path, {"name": "big", "preset": "tiny", "num_cpus": 4})
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, env=cluster.env())
    assert run.returncode == 2
    assert "num_cpus=4" in run.stderr and "largest node" in run.stderr and "1 CPUs" in run.stderr
    assert not (tmp_path / "big" / "attempts").exists()

    # Two simulator workers on a 1-CPU node: refused before demonstrations and BC.
    run = run_cli(
        cluster,
        "pidog_learning.train_cli",
        *(
            "--config",
            "tiny",
            "--n-envs",
            "2",
            "--ray-address",
            cluster.address,
            "--ray-workers-per-node",
            "2",
        ),
        *("--output-dir", str(tmp_path), "--experiment-name", "crowded"),
    )
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    assert "has 1 CPUs: too few for ray.workers_per_node=2" in run.stderr
    assert not (tmp_path / "crowded").exists()


def test_ctrl_c_stops_the_sweep_cleanly_and_a_rerun_resumes_the_trial(
    cluster: LoopbackCluster, tmp_path: Path
) -> None:
    cluster.ensure_worker()
    command = sweep_command(
        cluster,
        tmp_path,
        {
            "name": "long",
            "preset": "tiny",
            # Long enough PPO to be interrupted in; no periodic evaluations to wait for.
            "base": {
                "total_rl_timesteps": 1024,
                "visualize_freq": 0,
                "eval": {"freq": 0, "tracking_episodes": 0},
                "calibration": {"enabled": False},
            },
            "seeds": [0],
        },
    )
    trial = tmp_path / "long" / "base_seed0"
    log = tmp_path / "sweep.log"
    with running(cluster, command, log) as proc:
        # Generous: on a machine shared with trainings the trial took over 120 s to reach PPO, and
        # a Ctrl-C sent before PPO starts has no checkpoint to save (a different test).
        deadline = time.monotonic() + 300
        # SB3 opens its TensorBoard run inside learn(): PPO is collecting rollouts.
        while not list(trial.glob("tensorboard/ppo_*/events.*")):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "PPO did not start within 300 s: " + log.read_text()[-3000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        rc = proc.wait(timeout=120)
    output = log.read_text()
    assert rc == 130, output[-4000:]
    assert "run the same command again to continue" in output
    assert (trial / "checkpoints" / "latest.zip").is_file(), "the interrupted PPO saved no checkpoint"
    assert not (trial / "eval.json").exists()
    assert not (tmp_path / "long" / "trials" / "base_seed0.json").exists()

    again = subprocess.run(command, capture_output=True, text=True, timeout=240, env=cluster.env())
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    record = json.loads((tmp_path / "long" / "trials" / "base_seed0.json").read_text())
    assert record["status"] == "done" and record["attempts"] == 2
    history = json.loads((trial / "training_history.json").read_text())
    assert max(e["timesteps"] for e in history["evaluations"]) >= 1024


def test_ppo_stops_with_a_clear_error_when_the_simulator_node_dies(
    cluster: LoopbackCluster, tmp_path: Path
) -> None:
    cluster.ensure_worker()
    command = cli(
        "pidog_learning.train_cli",
        *("--config", "tiny", "--ray-address", cluster.address, "--output-dir", str(tmp_path)),
        *("--experiment-name", "orphan", *FAST, "--set", "eval.freq=0", "--total-rl-timesteps", "4096"),
    )
    log = tmp_path / "train.log"
    with running(cluster, command, log) as proc:
        deadline = time.monotonic() + 120
        while "simulated robots on 1 Ray workers" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.1)
        cluster.worker.kill_hard()  # PPO is collecting rollouts from it
        rc = proc.wait(timeout=120)
    output = log.read_text()
    assert rc == 2, output[-4000:]
    assert "pidog-train: error: a simulator worker died" in output
    assert "pidog-train --resume" in output
    assert not (tmp_path / "orphan" / "eval.json").exists()


def _attempts(sweep_dir: Path) -> dict[str, list[dict]]:
    logs = sweep_dir / "attempts"
    if not logs.is_dir():
        return {}
    return {
        p.stem: [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        for p in logs.glob("*.jsonl")
    }


def test_a_trial_that_raises_is_retried_then_reported_failed_while_the_others_finish(
    cluster: LoopbackCluster, tmp_path: Path
) -> None:
    # A real failure at run time: SB3's PPO refuses a minibatch of 1 (advantage normalisation)
    # when it is built, after demonstrations and BC; the config and the pipeline's preflight
    # accept it, so the trial starts and raises (no ConfigError/PipelineError: it is retried).
    from pidog_learning.config import resolve_config

    broken = {"ppo": {"batch_size": 1}}
    assert resolve_config("tiny", broken)["ppo"]["batch_size"] == 1, (
        "the config now refuses ppo.batch_size=1: give this test another failure that only shows at run time"
    )
    cluster.ensure_worker()
    command = sweep_command(
        cluster,
        tmp_path,
        {
            "name": "flaky",
            "preset": "tiny",
            "base": {
                "visualize_freq": 0,
                "eval": {"tracking_episodes": 0},
                "calibration": {"enabled": False},
            },
            "trials": [{"name": "ok"}, {"name": "broken", **broken}],
            "seeds": [0],
            "num_cpus": 1,
            "max_retries": 1,
        },
    )
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, env=cluster.env())
    output = run.stdout + run.stderr
    assert run.returncode == 1, output[-4000:]
    assert "1 trial(s) failed: broken_seed0" in run.stderr
    assert "broken_seed0: FAILED" in run.stdout and "`batch_size` must be greater than 1" in run.stdout

    sweep_dir = tmp_path / "flaky"
    # Both attempts ran (the first and max_retries=1 more), each in a fresh worker process.
    tries = _attempts(sweep_dir)
    assert [t["attempt"] for t in tries["broken_seed0"]] == [1, 2]
    assert len({t["pid"] for t in tries["broken_seed0"]}) == 2
    with open(sweep_dir / "results.csv") as f:
        rows = {row["trial"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"ok_seed0", "broken_seed0"}
    assert rows["broken_seed0"]["status"] == "failed" and rows["broken_seed0"]["attempts"] == "2"
    assert "`batch_size` must be greater than 1" in rows["broken_seed0"]["error"]
    assert rows["ok_seed0"]["status"] == "done" and rows["ok_seed0"]["attempts"] == "1"
    assert (sweep_dir / "ok_seed0" / "eval.json").is_file()
    # It failed for the reason given, after the phases before PPO, and never got further.
    assert (sweep_dir / "broken_seed0" / "bc_pretrained_policy.pth").is_file()
    assert not (sweep_dir / "broken_seed0" / "eval.json").exists()
    record = json.loads((sweep_dir / "trials" / "broken_seed0.json").read_text())
    assert record["status"] == "failed" and record["attempts"] == 2 and record["metrics"] == {}
    table = (sweep_dir / "results.md").read_text()
    assert "| broken | 0/1 |" in table and "| ok | 1/1 |" in table
    assert any(line.startswith("| broken_seed0 | broken | 0 | failed | 2 |") for line in table.splitlines())


def test_sweep_retries_the_trial_of_a_dead_node_and_skips_finished_trials(
    cluster: LoopbackCluster, tmp_path: Path
) -> None:
    # Last in this module: it kills the second node (ensure_worker restarts it if needed).
    cluster.ensure_worker()
    command = sweep_command(
        cluster,
        tmp_path,
        {
            "name": "pair",
            "preset": "tiny",
            "base": {
                "visualize_freq": 0,
                "eval": {"tracking_episodes": 0},
                "calibration": {"enabled": False},
            },
            "seeds": [0, 1],
            "num_cpus": 1,
            "max_retries": 2,
        },
    )
    sweep_dir = tmp_path / "pair"
    log = tmp_path / "sweep.log"
    worker_id, head_id = cluster.node_ids["worker"], cluster.node_ids["head"]
    with running(cluster, command, log) as proc:
        # One CPU per node and SPREAD scheduling: one trial starts on the second node.
        deadline = time.monotonic() + 120
        victim = None
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            victim = next(
                (t for t, tries in _attempts(sweep_dir).items() if tries and tries[0]["node"] == worker_id),
                None,
            )
            time.sleep(0.2)
        assert victim is not None, f"no trial started on the second node:\n{log.read_text()[-3000:]}"
        cluster.worker.kill_hard()  # mid-trial: the attempt was logged as the trial began
        rc = proc.wait(timeout=300)
    output = log.read_text()
    assert rc == 0, output[-4000:]

    with open(sweep_dir / "results.csv") as f:
        rows = {row["trial"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"base_seed0", "base_seed1"}
    assert all(row["status"] == "done" for row in rows.values()), rows
    # The dead node's trial ran again, on the surviving node, and finished.
    assert rows[victim]["attempts"] == "2"
    tries = _attempts(sweep_dir)[victim]
    assert [t["node"] for t in tries] == [worker_id, head_id]
    record = json.loads((sweep_dir / "trials" / f"{victim}.json").read_text())
    assert record["node"] == head_id and record["metrics"]["selected"] in ("bc", "finetuned")
    for trial in rows:
        for name in ("config.json", "policy.onnx", "eval.json"):
            assert (sweep_dir / trial / name).is_file(), (trial, name)
    for name in ("results.md", "results.json", "results.png", "sweep.json"):
        assert (sweep_dir / name).is_file(), name
    assert "| base | 2/2 |" in (sweep_dir / "results.md").read_text()

    # A re-run finds both trials finished: nothing runs again (no new attempts).
    before = _attempts(sweep_dir)
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, env=cluster.env())
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 of 2 trials finished earlier: skipped" in again.stdout
    assert _attempts(sweep_dir) == before
