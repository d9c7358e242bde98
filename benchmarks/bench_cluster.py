"""Cluster costs (issue 15): what Ray adds per rollout batch and per sweep trial, and a scaling model.

    python -m benchmarks.bench_cluster [--steps 300] [--out outputs/bench_cluster]

Measured on this machine (a private local Ray, so every number is a real Ray round trip over
loopback, but the learner and the remote simulators share the same cores):
- physics + task per robot-step: ``PiDogVecEnv.step`` on one physics thread (median step
  times throughout: the machine is shared), fitted as
  ``t(n) = a + b*n`` over batch sizes n;
- the same batches through ``RayVecEnv`` (one actor, one CPU): Ray's cost per batch step
  (actions out, observations/rewards/dones/infos back);
- the learner: SB3's per-step work around ``env.step`` (policy forward on the batch, buffer)
  and the PPO update per sample, with the pipeline's default network and PPO settings;
- a sweep trial's fixed cost: a fresh Ray worker importing the pipeline, and ``ray.init``;
- a small study (the BC->RL study's two arms x 2 seeds, ``demo`` preset on a small budget) run
  twice: directly (one pipeline run after another in one fresh interpreter, each on every
  core, as ``benchmarks/bench_study.py`` does) and through ``pidog-sweep`` on a private local
  Ray (1 CPU per trial, trials side by side): both wall-clocks and Ray's cost per trial.
Then the scaling model (docs/CLUSTER.md) turns them into expected PPO env steps/s for N nodes
of C cores. Results: docs/benchmarks/cluster.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.common import REPO, machine_summary, write_result

BATCHES = (1, 4, 16)
# The BC->RL study's two arms (docs/sweeps/bc_vs_scratch.yaml) x 2 seeds, on the `demo` preset
# (64 robots, the default networks and PPO settings) cut down to a small budget: long enough for
# physics and updates to matter, short enough to run twice in about two minutes on 2 cores.
STUDY: dict[str, Any] = {
    "name": "study",
    "preset": "demo",
    "base": {
        "n_demo_episodes": 4,
        "total_bc_epochs": 10,
        "total_rl_timesteps": 65536,
        "visualize_freq": 0,
        "demos": {"episode_seconds": 5.0},
        "finetune": {"critic_warmup_timesteps": 8192},
        "eval": {
            "freq": 0,
            "episodes": 2,
            "seconds": 5.0,
            "final_episodes": 2,
            "final_seconds": 5.0,
            "tracking_episodes": 0,
        },
    },
    "trials": [{"name": "bcrl"}, {"name": "scratch", "no_bc_init": True, "total_bc_epochs": 1}],
    "seeds": [0, 1],
    "num_cpus": 1,
    "max_retries": 0,
}


def per_step(step: Callable[[], Any], steps: int, warmup: int = 10) -> float:
    """Median seconds per call: other jobs on a shared machine add spikes, not a shift."""
    for _ in range(warmup):
        step()
    times = np.empty(steps)
    for i in range(steps):
        start = time.perf_counter()
        step()
        times[i] = time.perf_counter() - start
    return float(np.median(times))


def env_options(config: dict[str, Any]) -> dict[str, Any]:
    return {"randomize": True, "privileged": bool(config["policy"]["privileged_critic"]), **config["env"]}


def measure_envs(config: dict[str, Any], steps: int) -> tuple[dict[int, float], dict[int, float]]:
    """Seconds per batch step, in-process and through one Ray actor, per batch size."""
    from pidog_learning.ray_vec_env import RayVecEnv
    from pidog_sim.vec_env import PiDogVecEnv

    local, remote = {}, {}
    rng = np.random.default_rng(0)
    for n in BATCHES:
        actions = rng.uniform(-0.3, 0.3, (n, 8)).astype(np.float32)
        env = PiDogVecEnv(n, physics_threads=1, **env_options(config))
        env.seed(0)
        env.reset()
        local[n] = per_step(lambda env=env, a=actions: env.step(a), steps)
        env.close()
        env = RayVecEnv(n, {"address": "local", "cpus_per_worker": 1}, **env_options(config))
        env.seed(0)
        env.reset()
        remote[n] = per_step(lambda env=env, a=actions: env.step(a), steps)
        env.close()  # the private Ray goes with its last VecEnv
    return local, remote


def measure_learner(config: dict[str, Any]) -> dict[str, Any]:
    """SB3's collection overhead per batch step and the PPO update per sample (default settings)."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    from pidog_learning.ppo_finetune import build_ppo, make_vec_env
    from pidog_sim.batch import default_threads

    torch.set_num_threads(int(config["torch_threads"]))
    n_envs, n_steps = int(config["n_envs"]), int(config["ppo"]["n_steps"])
    env = make_vec_env(config, seed=0)
    model = build_ppo(config, env, None, {})
    marks: dict[str, float] = {}

    class Clock(BaseCallback):
        def _on_rollout_start(self) -> None:
            marks["start"] = time.perf_counter()

        def _on_rollout_end(self) -> None:
            marks["collected"] = time.perf_counter()

        def _on_step(self) -> bool:
            return True

    model.learn(total_timesteps=n_steps * n_envs, callback=Clock())
    marks["updated"] = time.perf_counter()
    actions = np.zeros((n_envs, 8), np.float32)
    obs = env.reset()
    env_step = per_step(lambda: env.step(actions), n_steps // 4)
    env.close()
    # The forward pass SB3 makes per batch step, for larger batches (learner(n) in the model).
    forward = {}
    for n in (4, 64, 256):
        batch = torch.as_tensor(np.repeat(obs[:1], n, axis=0))
        with torch.no_grad():
            forward[n] = per_step(lambda b=batch: model.policy(b), 100)
    _, forward_per_robot = fit(forward)
    collect_step = (marks["collected"] - marks["start"]) / n_steps
    samples = n_steps * n_envs
    return {
        "n_envs": n_envs,
        "n_steps": n_steps,
        "n_epochs": int(config["ppo"]["n_epochs"]),
        "batch_size": int(config["ppo"]["batch_size"]),
        "net_arch": "x".join(str(n) for n in config["policy"]["net_arch"]),
        "torch_threads": int(config["torch_threads"]),
        # What the update ran on: pidog_learning.compute.torch_threads(update_threads), 0 = every core.
        "update_threads_option": int(config["update_threads"]),
        "update_threads": int(config["update_threads"]) or default_threads(),
        "collect_step_s": collect_step,
        "env_step_s": env_step,
        "learner_step_s": max(collect_step - env_step, 0.0),
        "forward_per_robot_s": forward_per_robot,
        "update_s": marks["updated"] - marks["collected"],
        "update_per_sample_s": (marks["updated"] - marks["collected"]) / samples,
    }


def measure_trial_overhead() -> dict[str, float]:
    """ray.init of a private Ray; a fresh worker importing the pipeline vs a plain interpreter."""
    start = time.perf_counter()
    cold = subprocess.run(
        [sys.executable, "-c", "import pidog_learning.pipeline"], check=True, capture_output=True
    )
    direct_import = time.perf_counter() - start
    del cold
    from pidog_learning.ray_cluster import connect, import_ray, shutdown

    start = time.perf_counter()
    started = connect("local")
    init_s = time.perf_counter() - start
    ray = import_ray()

    def load() -> float:
        import pidog_learning.pipeline  # noqa: F401 - the import is what is timed

        return time.perf_counter()

    task = ray.remote(max_calls=1)(load).options(num_cpus=1)
    cold_task = []
    for _ in range(2):
        start = time.perf_counter()
        ray.get(task.remote())
        cold_task.append(time.perf_counter() - start)
    warm = ray.remote(lambda: None)
    ray.get(warm.remote())
    start = time.perf_counter()
    ray.get([warm.remote() for _ in range(20)])
    warm_task = (time.perf_counter() - start) / 20
    shutdown(started)
    return {
        "ray_init_s": init_s,
        "cold_trial_task_s": float(np.median(cold_task)),
        "direct_import_s": direct_import,
        "warm_task_s": warm_task,
    }


def direct_study(sweep_file: str, out: str) -> None:
    """The sweep's trials run directly: one ``run_pipeline`` after another in this process, each
    with the single-machine defaults (physics and updates on every core), as bench_study does.
    Runs in a fresh interpreter (see measure_study); prints each trial's seconds as JSON."""
    from pidog_learning.config import combine, resolve_config
    from pidog_learning.pipeline import run_pipeline
    from pidog_learning.sweep import load_sweep

    sweep = load_sweep(sweep_file, output_dir=out)
    walls = {}
    for trial in sweep.trials:
        config = resolve_config(
            sweep.preset,
            combine(
                {"progress_bar": False},
                trial.overrides,
                {"seed": trial.seed, "output_dir": out, "experiment_name": trial.trial_id},
            ),
        )
        start = time.monotonic()
        run_pipeline(config)
        walls[trial.trial_id] = time.monotonic() - start
        print(f"direct {trial.trial_id}: {walls[trial.trial_id]:.1f} s", file=sys.stderr, flush=True)
    print(json.dumps(walls))


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(start as time.time(), seconds, stdout) of a command run to completion from the repo root."""
    started = time.time()
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.time() - started
    if run.returncode != 0:
        raise RuntimeError(
            f"{command[:4]} exited {run.returncode}:\n{run.stdout[-3000:]}{run.stderr[-3000:]}"
        )
    return started, seconds, run.stdout


def measure_study(out: Path) -> dict[str, Any]:
    """The small study twice: directly, and through pidog-sweep on a private local Ray."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    sweep_file = out / f"{STUDY['name']}.yaml"
    sweep_file.write_text(yaml.safe_dump(STUDY))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    code = "import sys; from benchmarks.bench_cluster import direct_study; direct_study(*sys.argv[1:])"
    _, direct_s, stdout = _timed([sys.executable, "-c", code, str(sweep_file), str(out / "direct")], env)
    direct = json.loads(stdout.strip().splitlines()[-1])
    print(f"study directly: {direct_s:.1f} s {direct}", flush=True)

    command = [
        sys.executable,
        "-m",
        "pidog_learning.sweep",
        str(sweep_file),
        "--output-dir",
        str(out / "ray"),
    ]
    started, sweep_s, _ = _timed(command, env)
    folder = out / "ray" / STUDY["name"]
    records = json.loads((folder / "results.json").read_text())["trials"]
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in records), records
    starts = {}
    for r in records:
        (attempt,) = [
            json.loads(line)
            for line in (folder / "attempts" / f"{r['trial']}.jsonl").read_text().splitlines()
        ]
        starts[r["trial"]] = attempt["started"] - started
    inside = {r["trial"]: float(r["wall_s"]) for r in records}
    ends = {t: starts[t] + inside[t] for t in inside}
    n = len(inside)
    slots = min(max(1, (os.cpu_count() or 1) // int(STUDY["num_cpus"])), n)
    # A trial beyond the first `slots` starts when one ends: the gap is a fresh worker process
    # importing the pipeline (and Ray's scheduling).
    later = sorted(starts.values())[slots:]
    gaps = [s - e for s, e in zip(later, sorted(ends.values()), strict=False)]
    result = {
        "trials": n,
        "slots": slots,
        "direct_s": direct_s,
        "direct_trial_s": direct,
        "sweep_s": sweep_s,
        "sweep_trial_s": inside,
        "first_start_s": min(starts.values()),
        "gap_s": float(np.mean(gaps)) if gaps else 0.0,
        "tail_s": sweep_s - max(ends.values()),
        # CPU-slot time (slots x wall-clock) not spent inside a trial, per trial.
        "overhead_per_trial_s": (slots * sweep_s - sum(inside.values())) / n,
    }
    print(f"study through Ray: {sweep_s:.1f} s {result}", flush=True)
    return result


def fit(batches: dict[int, float]) -> tuple[float, float]:
    """t(n) = a + b*n by least squares -> (a, b)."""
    n = np.array(list(batches), float)
    t = np.array(list(batches.values()))
    b, a = np.polyfit(n, t, 1)
    return float(max(a, 0.0)), float(b)


def throughput(nodes: int, cores: int, robots_per_core: int, m: dict[str, float]) -> tuple[float, int]:
    """Expected PPO env steps/s (collection + update) for N nodes of C cores (docs/CLUSTER.md)."""
    n_envs = robots_per_core * nodes * cores
    per_worker = n_envs / nodes
    physics = m["a"] + m["b"] * per_worker / cores  # each node steps its robots on C threads
    transfer = m["ray_a"] + m["ray_b"] * per_worker if nodes > 1 else 0.0
    learner = m["learner_step_s"] + m["forward_per_robot_s"] * (n_envs - m["learner_n_envs"])
    step = physics + transfer + learner
    return n_envs / (step + m["update_per_sample_s"] * n_envs), n_envs


def _threads(learner: dict[str, Any]) -> str:
    """The update's torch threads as the config set them (pidog_learning.compute.torch_threads)."""
    n, option = learner["update_threads"], learner["update_threads_option"]
    return f"{n} torch thread{'s' if n != 1 else ''}, update_threads={option}" + (
        ": every core" if option == 0 else ""
    )


def report(
    local: dict[int, float],
    remote: dict[int, float],
    learner: dict[str, Any],
    trial: dict[str, float],
    study: dict[str, Any],
    elapsed_s: float,
) -> str:
    a, b = fit(local)
    overhead = {n: remote[n] - local[n] for n in BATCHES}
    # Payloads of a few kB: the round trip hardly grows with the batch, and on a shared machine
    # the noise exceeds the growth; the model takes the mean and a non-negative slope.
    ray_a, ray_b = float(np.mean(list(overhead.values()))), max(fit(overhead)[1], 0.0)
    m = {"a": a, "b": b, "ray_a": ray_a, "ray_b": ray_b, "learner_n_envs": learner["n_envs"], **learner}
    lines = [
        "## Cluster: Ray's costs and the scaling model",
        "",
        f"`python -m benchmarks.bench_cluster` ({elapsed_s / 60:.1f} min on the machine below). Model and how to"
        " run a cluster: [docs/CLUSTER.md](CLUSTER.md). Machine: " + machine_summary() + ".",
        "",
        "### Per-step costs (one physics thread; local Ray over loopback)",
        "",
        "| robots per batch | in-process step (ms) | through Ray, 1 actor (ms) | Ray's share (ms) | in-process robot-steps/s | via Ray robot-steps/s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n in BATCHES:
        lines.append(
            f"| {n} | {local[n] * 1e3:.3f} | {remote[n] * 1e3:.3f} | {overhead[n] * 1e3:.3f} "
            f"| {n / local[n]:,.0f} | {n / remote[n]:,.0f} |"
        )
    lines += [
        "",
        f"- physics + task: **{b * 1e3:.3f} ms per robot-step** plus {a * 1e3:.3f} ms per batch step (fit `a + b*n`).",
        f"- Ray, per batch step: **{ray_a * 1e3:.3f} ms** (mean over the batch sizes; growth per robot"
        f" {ray_b * 1e6:.1f} µs): actions out, observations, rewards, dones and infos back, inline in the task"
        f" messages. Here the actor shares the learner's {os.cpu_count()} cores; on a cluster it has its own.",
        f"- learner (SB3 around `env.step`: policy forward on the batch, rollout buffer), {learner['n_envs']} robots:"
        f" **{learner['learner_step_s'] * 1e3:.3f} ms per batch step**, plus"
        f" {learner['forward_per_robot_s'] * 1e6:.1f} µs per extra robot (policy forward, measured to 256).",
        f"- PPO update (the default config: {learner['n_steps']} x {learner['n_envs']} samples,"
        f" {learner['n_epochs']} epochs, minibatch {learner['batch_size']}, {learner['net_arch']} actor and"
        f" critic; the update on {_threads(learner)}): {learner['update_s']:.2f} s per rollout,"
        f" **{learner['update_per_sample_s'] * 1e6:.0f} µs per sample**.",
        "",
        "### A sweep trial's fixed cost",
        "",
        f"- `ray.init` of a private local Ray: {trial['ray_init_s']:.1f} s, once per sweep.",
        f"- a trial task on a fresh worker (`max_calls=1`) importing the pipeline: {trial['cold_trial_task_s']:.1f} s;"
        f" the same imports in a plain interpreter: {trial['direct_import_s']:.1f} s; a warm no-op task:"
        f" {trial['warm_task_s'] * 1e3:.2f} ms.",
    ]
    from pidog_learning.config import resolve_config

    base = STUDY["base"]
    n_envs = resolve_config(STUDY["preset"], base)["n_envs"]
    direct_mean = float(np.mean(list(study["direct_trial_s"].values())))
    inside_mean = float(np.mean(list(study["sweep_trial_s"].values())))
    lines += [
        "",
        f"### The same small study directly and through `pidog-sweep` ({study['trials']} trials)",
        "",
        f"The BC->RL study's two arms (BC->RL, RL from scratch) x {len(STUDY['seeds'])} seeds on the `{STUDY['preset']}`"
        f" preset ({n_envs} robots, the default networks and PPO settings) cut down to {base['n_demo_episodes']}"
        f" demonstration episodes, {base['total_bc_epochs']} BC epochs and {base['total_rl_timesteps']:,} PPO steps"
        f" per trial, short evaluations (`STUDY` in the script): directly, one `run_pipeline` after"
        " another in one fresh interpreter with the single-machine defaults (physics and updates on every core), and"
        f" through `pidog-sweep` on a private local Ray ({STUDY['num_cpus']} CPU per trial: physics and updates on"
        f" one thread, {study['slots']} trials side by side). Both wall-clocks include starting Python and the imports.",
        "",
        "| | wall-clock (s) | a trial, mean (s) |",
        "|---|---:|---:|",
        f"| directly, one after another | {study['direct_s']:.1f} | {direct_mean:.1f} |",
        f"| `pidog-sweep`, local Ray | {study['sweep_s']:.1f} | {inside_mean:.1f} (inside its Ray worker) |",
        "",
        f"- through Ray / directly: **{study['sweep_s'] / study['direct_s']:.2f}x** the wall-clock"
        f" ({study['sweep_s'] - study['direct_s']:+.1f} s, {(study['sweep_s'] - study['direct_s']) / study['trials']:+.1f} s"
        f" per trial). A trial on 1 CPU took {inside_mean / direct_mean:.2f}x as long as one on every core, and"
        f" {study['slots']} ran at once: how much the side-by-side trials gain depends on how much of a run uses more"
        " than one core (the physics of many robots, the updates).",
        f"- Ray's overhead per trial: **{study['overhead_per_trial_s']:.1f} s** of CPU-slot time ({study['slots']} slots x"
        " the wall-clock, less the time spent inside the trials, over the trials). Of it:"
        f" {study['first_start_s']:.1f} s from starting `pidog-sweep` to the first trial's start (Python, config"
        " checks and preflight, `ray.init`, a fresh worker importing the pipeline; every slot waits),"
        f" {study['gap_s']:.1f} s between a trial ending and the next starting on its CPU (a fresh worker),"
        f" {study['tail_s']:.1f} s after the last trial (results table and plot, Ray shutdown), and the slots left"
        " idle while the last trials finish.",
        "",
        "### Projected PPO throughput (env steps/s, collection + update)",
        "",
        "One simulator worker per node using all C cores, 4 robots per core; the learner on its own machine."
        " `1 node` is the in-process path (no Ray). Model: `n_envs / (a + b*n/(N*C) + ray(n/N) + learner(n)"
        " + u*n)`; see docs/CLUSTER.md.",
        "",
        "| nodes x cores | robots | steps/s | steps/s if the update ran 8x faster |",
        "|---|---:|---:|---:|",
    ]
    fast = {**m, "update_per_sample_s": m["update_per_sample_s"] / 8}
    for nodes, cores in ((1, 2), (1, 16), (2, 16), (4, 16), (8, 16), (16, 16), (8, 64)):
        rate, n_envs = throughput(nodes, cores, 4, m)
        lines.append(
            f"| {nodes} x {cores} | {n_envs} | {rate:,.0f} | {throughput(nodes, cores, 4, fast)[0]:,.0f} |"
        )
    lines += [
        "",
        f"The learner's update (one process; here on {_threads(learner)}) bounds PPO at 1/u = {1 / m['update_per_sample_s']:,.0f}"
        " samples/s however many nodes simulate, and its per-step work (policy forward, buffer) adds to every"
        " batch step: remote simulators pay off once a node's physics for its robots costs more than Ray's"
        f" ~{ray_a * 1e3:.1f} ms round trip, and past a few nodes a faster learner (torch threads, a GPU; the last column is a"
        " what-if, not measured) buys more than more simulators. Sweeps scale with trials instead: one trial"
        " per `num_cpus` CPUs, N*C/num_cpus at a time.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300, help="timed batch steps per measurement")
    parser.add_argument(
        "--out", type=Path, default=REPO / "outputs" / "bench_cluster", help="the study's runs (replaced)"
    )
    args = parser.parse_args(argv)
    start = time.monotonic()
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    from pidog_learning.config import resolve_config

    # The pipeline's defaults (what pidog-train runs), physics on one thread so costs are per core.
    config = resolve_config("default", {"progress_bar": False, "physics_threads": 1})
    local, remote = measure_envs(config, args.steps)
    print("env steps", local, remote, flush=True)
    learner = measure_learner(config)
    print("learner", learner, flush=True)
    trial = measure_trial_overhead()
    print("trial", trial, flush=True)
    study = measure_study(args.out.resolve())
    path = write_result("cluster", report(local, remote, learner, trial, study, time.monotonic() - start))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
