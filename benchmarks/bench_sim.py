"""Simulation throughput: raw MuJoCo physics vs PiDogEnv.step vs SubprocVecEnv (2 workers).

    python -m benchmarks.bench_sim [--steps N]

Target (issue 3): env steps/s >= 50 % of the raw physics bound (substeps x mj_step time).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

import mujoco
import numpy as np

from benchmarks.common import machine_summary, write_result


def raw_physics_rate(steps: int) -> tuple[float, int]:
    """mj_step alone, replaying the servo commands of a trot so contacts match the env run."""
    from pidog_sim import PiDogEnv
    from pidog_sim.controllers import TrotController

    env = PiDogEnv(randomize=False)
    trot = TrotController()
    obs, _ = env.reset(seed=0)
    ctrls = []
    for _ in range(500):
        obs, *_ = env.step(trot(obs))
        ctrls.append(env.sim.data.ctrl.copy())
    sim = env.sim
    substeps = sim.config["physics_substeps"]
    m, d = sim.model, sim.data
    sim.reset(np.random.default_rng(0))
    t = time.perf_counter()
    for i in range(steps):
        d.ctrl[:] = ctrls[i % len(ctrls)]
        mujoco.mj_step(m, d, nstep=substeps)
    return steps / (time.perf_counter() - t), substeps


def env_rate(steps: int) -> tuple[float, str]:
    from pidog_sim import PiDogEnv
    from pidog_sim.controllers import TrotController

    env = PiDogEnv(randomize=True)
    trot = TrotController()
    obs, _ = env.reset(seed=0)
    actions = []
    for _ in range(200):  # precompute so the controller's cost is not counted as env cost
        actions.append(trot(obs))
        obs, *_ = env.step(actions[-1])

    def run(n: int) -> float:
        env.reset(seed=1)
        t = time.perf_counter()
        for i in range(n):
            _, _, term, trunc, _ = env.step(actions[i % len(actions)])
            if term or trunc:
                env.reset()
        return n / (time.perf_counter() - t)

    rate = run(steps)  # timed without the profiler, then profiled separately
    profiler = cProfile.Profile()
    profiler.enable()
    run(steps // 2)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(8)
    return rate, out.getvalue()


def vec_rate(steps: int, n_envs: int) -> float:
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from pidog_sim import PiDogEnv

    vec = SubprocVecEnv([lambda: PiDogEnv(randomize=True) for _ in range(n_envs)])
    vec.seed(0)
    vec.reset()
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.2, 0.2, (n_envs, 8)).astype(np.float32)
    for _ in range(50):
        vec.step(actions)
    t = time.perf_counter()
    for _ in range(steps // n_envs):
        vec.step(actions)
    rate = (steps // n_envs) * n_envs / (time.perf_counter() - t)
    vec.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5000)
    args = parser.parse_args()
    raw, substeps = raw_physics_rate(args.steps)
    env, profile = env_rate(args.steps)
    vec = vec_rate(args.steps, 2)
    ratio = env / raw
    lines = [
        "## Simulation throughput (`python -m benchmarks.bench_sim`)",
        "",
        f"Machine: {machine_summary()}",
        "",
        "| what | control steps/s | notes |",
        "|---|---:|---|",
        f"| raw physics bound | {raw:,.0f} | {substeps} x `mj_step` (2 ms) per 20 ms control step |",
        f"| `PiDogEnv.step`, 1 env | {env:,.0f} | {ratio:.0%} of the raw bound (target >= 50 %), randomisation on |",
        f"| `SubprocVecEnv`, 2 workers | {vec:,.0f} | {vec / env:.2f}x one env on 2 cores |",
        "",
        f"Real-time factor of one env: {env / 50:,.0f}x (the policy runs at 50 Hz).",
        "",
        "Where the rest of `PiDogEnv.step` goes (cProfile, top functions by own time; the",
        "profiler itself inflates the small Python calls):",
        "",
        "```",
        profile.strip(),
        "```",
        "",
    ]
    path = write_result("sim", "\n".join(lines))
    print("\n".join(lines[:12]))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
