"""Robustness of the shipped policy to the robot's physics (issue 14, item 4).

    python -m benchmarks.bench_robustness [--episodes 3] [--seconds 8] [--policy PATH|trot]
                                          [--imu-orientation noisy_truth|filter] [--targets-only]
                                          [--seed N [N ...]]

The shipped policy (models/policies/pidog_walk.onnx, as the robot runs it) walks forward at a
fixed command on a grid of servo strength (stall torque, N·m; the model's is 0.35), control
latency (steps of 20 ms) and total mass (kg; the torso's mass is scaled, the legs keep theirs).
Every other randomisation is off (no pushes, nominal friction and servo speed, no gyro bias);
only the IMU noise is on, so the episodes of one cell differ. The whole grid runs as one batch
of ``pidog_sim.task.WalkTask`` robots. Reported per cell: forward speed relative to the nominal
robot (0.35 N·m, latency 0, the model's mass), falls, and the yaw drift. Speed is the
heading-frame forward velocity, as ``pidog-eval`` and the tracking grid measure it: a robot that
veers off its straight command walks as fast along its heading but makes less world-x progress,
and that is a steering error, reported as the drift (|mean yaw rate|; the tracking grid's wz
error target is 0.15 rad/s), not as slowness. Target: >= 70 % of nominal speed with 0 falls
over strength 0.25-0.45 N·m, latency 0-2 steps and mass 0.85-1.15 kg.
Why a cell fails is measured two ways: how often its servos sit at their stall torque (a
torque-bound gait cannot go faster on weaker servos), and its speed when the failing cells are
walked again at the fastest forward command training samples.
`--policy trot` runs the scripted trot (the demonstrations' gait) over the same grid instead: the
reference for what this gait family does on weaker and stronger robots.
`--imu-orientation filter` lets the policy observe the orientation the robot's `hw_node` publishes
(its complementary filter over the simulated gyro and accelerometer) instead of the simulator's
truth with white noise, as training does.
`--targets-only` walks only the target's 60 cells (and the nominal robot), prints the count a
candidate policy is judged by and its failing cells, and writes no page: a check for a training
run, with 244 robots where the full grid has 576 (53 s on one thread beside two training runs).
`--seed N` re-draws the IMU noise (the only noise in the chart). Trained candidates moved by up to
6 cells between draws (docs/ABLATIONS.md, twenty-ninth session), so compare two policies over
several draws: with `--targets-only`, `--seed 1000 2000 3000 4000` walks the cells at each draw
and ends with one line over all of them (the cells kept per draw, and each cell that failed at
some draw with how often): the measure docs/ABLATIONS.md compares training runs by.
Results: docs/benchmarks/robustness.md and robustness.png (robustness_trot.* for the trot,
robustness_filter.* with the filter), or in `--results-dir DIR`: judge a candidate's whole chart
there, and the shipped policy's page stays.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import (
    FILTER_OBSERVATION,
    FILTER_TITLE,
    IMU_FILTER,
    SHIPPED_POLICY,
    add_imu_orientation_argument,
    add_results_dir_argument,
    figure_link,
    machine_summary,
    repo_relative,
    write_result,
)
from pidog_sim.config import DEFAULT_SIM_CONFIG
from pidog_sim.evaluation import ROBUSTNESS_TARGETS, TRACKING_SETTLE_S, TRACKING_TARGETS

POLICY = SHIPPED_POLICY
TROT = "trot"  # --policy trot: the scripted gait as the reference
TROT_ROLE = " (the demonstrations' gait, for reference)"
STRENGTHS_NM = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45)
LATENCIES = (0, 1, 2, 3)
MASSES_KG = (0.8, 0.85, None, 1.1, 1.15, 1.2)  # None: the model's own total mass
COMMAND_VX = 0.2
# Failing cells are walked again at the fastest forward command training samples: if they are
# no faster then, the command is not what holds them back.
FAST_COMMAND_VX = float(DEFAULT_SIM_CONFIG["command_ranges"]["vx"][1])
SATURATED = 0.98  # a servo at >= this share of its stall torque counts as saturated
WARMUP_S = TRACKING_SETTLE_S  # not scored, as on the tracking grid
DRIFT_LIMIT_RADPS = TRACKING_TARGETS["wz_error"]  # the tracking grid's wz error target (issue 12)
NOISE_SEED = 1000  # the IMU noise draw the pages use; --seed draws another


def batch_controller(
    policy: Path | str,
) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], None]]:
    """``act(obs batch) -> action batch`` for an ONNX policy (checked as the robot checks it)
    or for the scripted trot (``"trot"``), and a check that the batch agrees with one robot."""
    if policy == TROT:
        from pidog_sim.controllers import TrotController

        trot = TrotController()
        return lambda obs: np.stack([trot(o) for o in obs]), lambda obs1: None
    from pidog_control.policy_runtime import OnnxPolicy

    runtime = OnnxPolicy(Path(policy))  # validates the file exactly as the robot does

    def check(obs1: np.ndarray) -> None:  # the batched run and the robot's single one agree
        assert np.allclose(runtime.act(obs1[0]), runtime.act_batch(obs1)[0], atol=1e-5)

    return runtime.act_batch, check


def run_grid(
    policy: Path | str,
    episodes: int,
    seconds: float,
    threads: int | None,
    imu_orientation: str = DEFAULT_SIM_CONFIG["imu_orientation"],
    command_vx: float = COMMAND_VX,
    only: list[tuple[float, int, float]] | None = None,
    targets_only: bool = False,
    seed: int = NOISE_SEED,
) -> dict:
    """Every (strength, latency, mass) cell, or ``only`` those, or with ``targets_only`` those in
    the target range (the nominal cell is always run: speeds are reported relative to it)."""
    from pidog_description.robot import SERVO_STALL_TORQUE
    from pidog_description.spec import seconds_to_steps
    from pidog_sim.rollout import env_config_for
    from pidog_sim.task import WalkTask

    act, check = batch_controller(policy)

    probe = WalkTask(1, randomize=False, config={"episode_seconds": seconds})
    total_mass = float(probe.sim.models[0].body_mass.sum())
    torso_mass = float(probe.sim.models[0].body_mass[probe.sim.base_id])
    probe.close()
    masses = tuple(total_mass if m is None else m for m in MASSES_KG)
    grid = list(itertools.product(STRENGTHS_NM, LATENCIES, masses))
    cells = grid
    if only is not None:
        cells = [c for c in cells if c in only or c == nominal_cell(total_mass)]
    if targets_only:
        cells = [c for c in cells if in_target(cell_row(c)) or c == nominal_cell(total_mass)]
    n = len(cells) * episodes
    strength = np.repeat([c[0] / SERVO_STALL_TORQUE for c in cells], episodes)
    latency = np.repeat([c[1] for c in cells], episodes).astype(np.int64)
    mass_scale = np.repeat([(c[2] - (total_mass - torso_mass)) / torso_mass for c in cells], episodes)

    config = {
        "episode_seconds": seconds + 1.0,
        "command_mode": "fixed",
        "forward_speed": command_vx,
        "nominal": {"latency_steps": max(LATENCIES)},  # sizes the latency queue
        "imu_orientation": imu_orientation,
    }
    task = WalkTask(n, randomize=False, config=env_config_for(act, config), threads=threads)
    sim = task.sim
    noise = sim.config["randomization"]
    base_id = sim.base_id
    forcerange = sim._nominal_forcerange
    mass0 = sim._nominal_mass
    inertia0 = sim._nominal_inertia
    # Per-robot physics (the config's "nominal" block is one value for the whole batch).
    for i in range(n):
        m = sim.models[i]
        m.body_mass[:] = mass0
        m.body_inertia[:] = inertia0
        m.body_mass[base_id] *= mass_scale[i]
        m.body_inertia[base_id] *= mass_scale[i]
        m.actuator_forcerange[:] = forcerange * strength[i]
    sim.mass_scale[:] = mass_scale
    sim.servo_strength[:] = strength[:, None]
    sim.latency_steps[:] = latency
    sim.gyro_noise[:] = noise["imu_gyro_noise"]
    sim.gravity_noise[:] = noise["imu_gravity_noise"]
    # Fresh episodes without re-randomising (BatchSim.reset would restore the batch nominal).
    sim._randomize = lambda robots: None
    # Each episode's noise seed from its cell's place in the whole grid, so a cell walked alone
    # (--targets-only, the fast re-run) sees the same noise as in the full grid.
    seeds = (
        seed
        + np.repeat([grid.index(c) * episodes for c in cells], episodes)
        + np.tile(np.arange(episodes), len(cells))
    )
    task.reset(np.arange(n), seeds=seeds, commands=np.array([command_vx, 0.0]))

    steps = seconds_to_steps(seconds)
    warm = seconds_to_steps(WARMUP_S)
    fell = np.zeros(n, dtype=bool)
    speed_sum, yaw_sum, saturated = np.zeros(n), np.zeros(n), np.zeros(n)
    stall = SERVO_STALL_TORQUE * sim.servo_strength  # (n, joints), N·m
    t0 = time.monotonic()
    for k in range(steps):
        out = task.step(act(task.observe().astype(np.float32)))
        fell |= out["terminated"]
        if k + 1 > warm:  # the step's own heading-frame velocity and yaw rate, not a re-read
            speed_sum += out["forward_speed"]
            yaw_sum += out["yaw_rate"]
            saturated += (np.abs(sim.joint_torques()) >= SATURATED * stall).mean(axis=1)
    wall = time.monotonic() - t0
    speed = speed_sum / (steps - warm)
    drift = np.abs(yaw_sum / (steps - warm))
    saturated /= steps - warm
    speed[fell] = np.nan
    drift[fell] = np.nan
    check(task.observe(np.array([0])).astype(np.float32))
    task.close()

    rows = []
    for c, (s, lat, mass) in enumerate(cells):
        sl = slice(c * episodes, (c + 1) * episodes)
        ok = np.isfinite(speed[sl])
        rows.append(
            {
                "strength": s,
                "latency": lat,
                "mass": mass,
                "falls": int(fell[sl].sum()),
                "speed": float(speed[sl][ok].mean()) if ok.any() else float("nan"),
                "slowest": float(speed[sl][ok].min()) if ok.any() else float("nan"),
                "drift": float(drift[sl][ok].mean()) if ok.any() else float("nan"),
                "saturated": float(saturated[sl][ok].mean()) if ok.any() else float("nan"),
            }
        )
    result = {"rows": rows, "total_mass": total_mass}
    nominal = nominal_row(result)
    for r in rows:
        r["ratio"] = r["speed"] / nominal["speed"]
    return {
        **result,
        "nominal_speed": nominal["speed"],
        "masses": masses,
        "robots": n,
        "steps": steps,
        "wall_s": wall,
        "threads": sim.threads,
        "imu_orientation": imu_orientation,
        "command_vx": command_vx,
        "noise_seed": seed,
    }


def cell_key(r: dict) -> tuple[float, int, float]:
    return (r["strength"], r["latency"], r["mass"])


def cell_row(cell: tuple[float, int, float]) -> dict:
    """The inverse of ``cell_key``: a cell as the row fields ``in_target`` reads."""
    return {"strength": cell[0], "latency": cell[1], "mass": cell[2]}


def nominal_cell(total_mass: float) -> tuple[float, int, float]:
    """The robot every cell's speed is compared with: the model's servos, mass, no latency."""
    from pidog_description.robot import SERVO_STALL_TORQUE

    return (SERVO_STALL_TORQUE, 0, total_mass)


def nominal_row(result: dict) -> dict:
    return next(r for r in result["rows"] if cell_key(r) == nominal_cell(result["total_mass"]))


def in_target(r: dict) -> bool:
    return (
        ROBUSTNESS_TARGETS["strength"][0] - 1e-9 <= r["strength"] <= ROBUSTNESS_TARGETS["strength"][1] + 1e-9
        and ROBUSTNESS_TARGETS["latency"][0] <= r["latency"] <= ROBUSTNESS_TARGETS["latency"][1]
        and ROBUSTNESS_TARGETS["mass"][0] - 1e-9 <= r["mass"] <= ROBUSTNESS_TARGETS["mass"][1] + 1e-9
    )


def passes(r: dict) -> bool:
    return r["falls"] == 0 and np.isfinite(r["ratio"]) and r["ratio"] >= ROBUSTNESS_TARGETS["speed_ratio"]


def holds_heading(r: dict) -> bool:
    return bool(np.isfinite(r["drift"]) and r["drift"] <= DRIFT_LIMIT_RADPS)


def target_tally(result: dict) -> dict[str, list[dict]]:
    """The target range's rows, those failing it, and the passing ones that veer."""
    target_rows = [r for r in result["rows"] if in_target(r)]
    return {
        "target": target_rows,
        "failing": [r for r in target_rows if not passes(r)],
        "veering": [r for r in target_rows if passes(r) and not holds_heading(r)],
    }


def nominal_speed_text(result: dict) -> str:
    """The speed every cell is compared with, in words; a policy that fell on the nominal robot
    has none (every cell then fails), and saying so beats printing nan."""
    if np.isfinite(result["nominal_speed"]):
        return f"{result['nominal_speed']:.3f} m/s at {result['command_vx']:g} commanded"
    falls = nominal_row(result)["falls"]
    return f"none: it fell in all {falls} episodes on the nominal robot at {result['command_vx']:g} m/s"


def cell_text(row: dict, unit: str = "") -> str:
    """A cell's speed as a share of nominal (``unit`` after it); its own speed when there is no
    nominal to share (the policy fell on the nominal robot); "all fell" when it has neither."""
    if np.isfinite(row["ratio"]):
        return f"{row['ratio']:.2f}{unit}"
    return _speed_or_fell(row, space="")


def falls_text(row: dict, sep: str = " ") -> str:
    """'(N fell)' after ``sep`` for a cell where some episodes fell and some walked ('all fell'
    says the rest)."""
    return f"{sep}({row['falls']} fell)" if row["falls"] and np.isfinite(row["speed"]) else ""


def _speed_or_fell(row: dict, space: str = " ") -> str:
    """A cell's own speed, or "all fell" where no episode walked to the end."""
    return f"{row['speed']:.3f}{space}m/s" if np.isfinite(row["speed"]) else "all fell"


def failing_text(row: dict, episodes: int) -> str:
    """How a failing cell walked, for the report's list (its speed alone where the policy fell on
    the nominal robot and there is no share of nominal to give)."""
    if not np.isfinite(row["speed"]):
        return f"all {row['falls']} episodes fell"
    speed = f"{row['speed']:.3f} m/s, slowest episode {row['slowest']:.3f}"
    if np.isfinite(row["ratio"]):
        speed = f"{row['ratio']:.2f} × nominal ({speed})"
    return (
        f"speed {speed}, yaw drift {row['drift']:.2f} rad/s, {row['falls']}/{episodes} fell; "
        f"servos saturated {row['saturated']:.0%}"
    )


def target_summary(result: dict, policy: Path | str) -> str:
    """One line for a candidate policy: the cells it keeps, its falls, the cells that fail."""
    tally = target_tally(result)
    kept = len(tally["target"]) - len(tally["failing"])
    falls = sum(r["falls"] for r in tally["target"])
    failing = " ".join(
        f"{r['strength']:.2f}N·m/lat{r['latency']}/{r['mass']:.2f}kg:{cell_text(r, 'x')}"
        + falls_text(r, sep="")
        for r in tally["failing"]
    )
    return (
        f"{describe(policy)[1]}: keeps {ROBUSTNESS_TARGETS['speed_ratio']:.0%} of its nominal speed "
        f"({nominal_speed_text(result)}) with 0 falls in "
        f"{kept} of {len(tally['target'])} target cells ({falls} falls in all), "
        f"{kept - len(tally['veering'])} of them holding heading"
        + (f"; failing: {failing}" if failing else "")
    )


def draws_summary(results: list[dict], policy: Path | str) -> str:
    """One line over several noise draws of the target cells: the cells kept and the falls per
    draw, and every cell that failed at some draw, with at how many."""
    tallies = [target_tally(r) for r in results]
    kept = [len(t["target"]) - len(t["failing"]) for t in tallies]
    falls = [sum(r["falls"] for r in t["target"]) for t in tallies]
    failed: dict[tuple[float, int, float], int] = {}
    for t in tallies:
        for r in t["failing"]:
            failed[cell_key(r)] = failed.get(cell_key(r), 0) + 1
    cells = " ".join(
        f"{s:.2f}N·m/lat{lat}/{m:.2f}kg:{n}/{len(results)}" for (s, lat, m), n in sorted(failed.items())
    )
    seeds = ", ".join(str(r["noise_seed"]) for r in results)
    return (
        f"{describe(policy)[1]} over {len(results)} noise draws (seeds {seeds}): "
        f"cells kept {' / '.join(map(str, kept))} of {len(tallies[0]['target'])} "
        f"(falls {' / '.join(map(str, falls))})"
        + (f"; failing at some draw: {cells}" if cells else "; no cell failed at any draw")
    )


def describe(policy: Path | str) -> tuple[str, str]:
    """(what is tested, in words; how to name it in the re-run command and the text)."""
    if policy == TROT:
        return "the scripted trot", TROT
    name = str(repo_relative(Path(policy)))
    return ("the shipped policy" if Path(policy).resolve() == POLICY.resolve() else f"`{name}`"), name


def sentence_start(text: str) -> str:
    return text[:1].upper() + text[1:]


def plot(result: dict, path: Path, policy: Path | str = POLICY) -> None:
    import matplotlib
    import matplotlib.patches

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    masses = result["masses"]
    # Colours are speed / nominal; a policy that fell on the nominal robot has no nominal speed,
    # so its cells are coloured by speed / command and labelled in m/s.
    has_nominal = bool(np.isfinite(result["nominal_speed"]))
    reference = result["nominal_speed"] if has_nominal else result["command_vx"]
    relative_to = "nominal" if has_nominal else "the command (the nominal robot fell)"
    fig, axes = plt.subplots(1, len(LATENCIES), figsize=(4.2 * len(LATENCIES), 4.0), sharey=True)
    for ax, lat in zip(axes, LATENCIES, strict=True):
        grid = np.full((len(STRENGTHS_NM), len(masses)), np.nan)
        for r in result["rows"]:
            if r["latency"] != lat:
                continue
            i, j = STRENGTHS_NM.index(r["strength"]), masses.index(r["mass"])
            grid[i, j] = r["speed"] / reference
            text = (cell_text(r) if has_nominal else _speed_or_fell(r, space="\n")) + falls_text(r, sep="\n")
            if not falls_text(r) and np.isfinite(r["drift"]) and not holds_heading(r):
                text += f"\n{r['drift']:.2f} r/s"
            ax.text(j, i, text, ha="center", va="center", fontsize=7)
        im = ax.imshow(grid, origin="lower", cmap="RdYlGn", vmin=0.0, vmax=1.2, aspect="auto")
        if (
            ROBUSTNESS_TARGETS["latency"][0] <= lat <= ROBUSTNESS_TARGETS["latency"][1]
        ):  # the target range, outlined
            si = [i for i, s in enumerate(STRENGTHS_NM) if ROBUSTNESS_TARGETS["strength"][0] - 1e-9 <= s]
            mj = [
                j
                for j, m in enumerate(masses)
                if ROBUSTNESS_TARGETS["mass"][0] - 1e-9 <= m <= ROBUSTNESS_TARGETS["mass"][1] + 1e-9
            ]
            ax.add_patch(
                matplotlib.patches.Rectangle(
                    (mj[0] - 0.5, si[0] - 0.5), len(mj), len(si), fill=False, lw=2, ec="black"
                )
            )
        ax.set_xticks(range(len(masses)), [f"{m:.2f}" for m in masses])
        ax.set_yticks(range(len(STRENGTHS_NM)), [f"{s:.2f}" for s in STRENGTHS_NM])
        ax.set_xlabel("total mass (kg)")
        ax.set_title(f"latency {lat} step{'s' if lat != 1 else ''}")
    axes[0].set_ylabel("servo stall torque (N·m)")
    fig.colorbar(im, ax=axes, label=f"forward speed / {'nominal' if has_nominal else 'command'}", shrink=0.8)
    fig.suptitle(
        f"{sentence_start(describe(policy)[0])} at vx = {result['command_vx']:g} m/s: heading-frame speed relative to "
        f"{relative_to} (and falls; yaw drift in rad/s where over {DRIFT_LIMIT_RADPS:g}); black box: the target "
        f"range (>= {ROBUSTNESS_TARGETS['speed_ratio']:.2f} of nominal, no falls)"
    )
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def report(result: dict, episodes: int, seconds: float, png: str, policy: Path | str = POLICY) -> str:
    rows = result["rows"]
    tally = target_tally(result)
    target_rows, failing, veering = tally["target"], tally["failing"], tally["veering"]
    ok = not failing
    subject, name = describe(policy)
    outside_fail = [r for r in rows if not in_target(r) and not passes(r)]
    filtered = result["imu_orientation"] == IMU_FILTER
    seed = result["noise_seed"]
    lines = [
        f"## Robustness of {subject}{TROT_ROLE if policy == TROT else ''} to servo strength, latency and mass"
        f"{FILTER_TITLE if filtered else ''}",
        "",
        f"`python -m benchmarks.bench_robustness --episodes {episodes} --seconds {seconds:g}"
        f"{'' if subject == 'the shipped policy' else f' --policy {name}'}"
        f"{' --imu-orientation filter' if filtered else ''}"
        f"{'' if seed == NOISE_SEED else f' --seed {seed}'}` ({machine_summary()}).",
        "",
        f"{'The scripted trot' if policy == TROT else f'`{name}`'} commanded straight ahead at vx = {COMMAND_VX} m/s, {episodes} episodes of "
        f"{seconds:g} s per cell (speed, the heading-frame forward velocity as `pidog-eval` measures "
        f"it, and yaw drift, |mean yaw rate|, after the first {WARMUP_S:g} s), in one batch of "
        f"{result['robots']} simulated robots ({result['threads']} physics "
        f"thread{'' if result['threads'] == 1 else 's'}, "
        f"{result['wall_s']:.0f} s). Servo stall torque (the model's: 0.35 N·m), control latency "
        f"(20 ms steps) and total mass (the model's: {result['total_mass']:.3f} kg; the torso's mass "
        "and inertia are scaled) vary; friction, servo speed, pushes and gyro bias stay nominal; "
        "IMU noise is on (so the episodes differ). "
        + (f"The controller observes {FILTER_OBSERVATION}. " if filtered else "")
        + "Nominal (0.35 N·m, latency 0, model mass): "
        + (
            f"{result['nominal_speed']:.3f} m/s (the command: {COMMAND_VX} m/s), so "
            f"{ROBUSTNESS_TARGETS['speed_ratio']:.0%} of nominal is {ROBUSTNESS_TARGETS['speed_ratio'] * result['nominal_speed']:.3f} m/s."
            if np.isfinite(result["nominal_speed"])
            else f"{nominal_speed_text(result)}, so no cell can keep {ROBUSTNESS_TARGETS['speed_ratio']:.0%} of it."
        ),
        "",
        f"**Target** (>= {ROBUSTNESS_TARGETS['speed_ratio']:.0%} of nominal speed and 0 falls for 0.25-0.45 N·m, "
        f"latency 0-2, 0.85-1.15 kg): **{'met' if ok else 'NOT met'}** "
        f"({len(target_rows) - len(failing)} of {len(target_rows)} cells pass). "
        f"Of the passing cells, {len(veering)} veer off the straight command by more than "
        f"{DRIFT_LIMIT_RADPS:g} rad/s (the tracking grid's wz error target): "
        f"{len(target_rows) - len(failing) - len(veering)} of {len(target_rows)} cells also hold "
        "their heading.",
        "",
        f"![robustness]({png})",
        "",
    ]
    if failing:
        fast = {cell_key(r): r for r in result.get("fast", {}).get("rows", [])}
        lines.append(
            f"Cells inside the target range that fail (servos saturated: the share of servo-steps at "
            f">= {SATURATED:.0%} of the robot's stall torque; the nominal robot's: "
            + (
                f"{nominal_row(result)['saturated']:.0%}"
                if np.isfinite(nominal_row(result)["saturated"])
                else "none, it fell"
            )
            + (
                f"; walked again commanded {result['fast']['command_vx']:g} m/s, the fastest forward "
                "command training samples"
                if fast
                else ""
            )
            + "):"
        )
        lines.append("")
        lines += [
            f"- {r['strength']:.2f} N·m, latency {r['latency']}, {r['mass']:.2f} kg: "
            + failing_text(r, episodes)
            + (
                f"; commanded {result['fast']['command_vx']:g} m/s: {_speed_or_fell(fast[cell_key(r)])}"
                if cell_key(r) in fast
                else ""
            )
            for r in failing
        ]
        lines.append("")
    if veering:
        lines.append("Cells inside the target range that keep their speed but veer:")
        lines.append("")
        lines += [
            f"- {r['strength']:.2f} N·m, latency {r['latency']}, {r['mass']:.2f} kg: "
            f"speed {r['ratio']:.2f} × nominal, yaw drift {r['drift']:.2f} rad/s"
            for r in veering
        ]
        lines.append("")
    # Where it breaks, per latency: cells passing, the weakest strength passing at every mass,
    # the worst cell and the falls.
    lines += ["Where it breaks (every mass, 0.80-1.20 kg):", ""]
    for lat in LATENCIES:
        at = [r for r in rows if r["latency"] == lat]
        solid = [s for s in STRENGTHS_NM if all(passes(r) for r in at if r["strength"] >= s - 1e-9)]
        worst = min(at, key=lambda r: r["speed"] if np.isfinite(r["speed"]) else -1.0)
        lines.append(
            f"- latency {lat}: {sum(passes(r) for r in at)} of {len(at)} cells pass; "
            + (
                f"every cell from {solid[0]:.2f} N·m up passes"
                if solid
                else "no strength passes at every mass"
            )
            + f"; worst {cell_text(worst, ' × nominal')} ({worst['strength']:.2f} N·m, {worst['mass']:.2f} kg); "
            f"{sum(r['falls'] for r in at)} falls in {len(at) * episodes} episodes"
        )
    lines += [
        f"{len(outside_fail)} failing cells lie outside the target range.",
        "",
        "| latency | stall torque (N·m) | " + " | ".join(f"{m:.2f} kg" for m in result["masses"]) + " |",
        "|---|---|" + "---|" * len(result["masses"]),
    ]
    for lat in LATENCIES:
        for s in STRENGTHS_NM:
            cells = []
            for m in result["masses"]:
                r = next(r for r in rows if r["latency"] == lat and r["strength"] == s and r["mass"] == m)
                cell = cell_text(r) + falls_text(r)
                if not falls_text(r) and np.isfinite(r["speed"]) and not holds_heading(r):
                    cell += f" ({r['drift']:.2f} rad/s)"
                cells.append(cell if passes(r) else f"**{cell}**")
            lines.append(f"| {lat} | {s:.2f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        (
            "Cells: speed / nominal"
            if np.isfinite(result["nominal_speed"])
            else "Cells: speed (the nominal robot fell)"
        )
        + f" (bold: below {ROBUSTNESS_TARGETS['speed_ratio']:.0%} or a fall; in brackets the yaw drift where it is over "
        f"{DRIFT_LIMIT_RADPS:g} rad/s).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--policy", default=str(POLICY), help=f"an ONNX policy, or '{TROT}' (the scripted gait)")
    p.add_argument("--threads", type=int, default=None)
    add_imu_orientation_argument(p)
    p.add_argument(
        "--targets-only",
        action="store_true",
        help="walk only the target range's cells and print the tally; writes no page",
    )
    p.add_argument(
        "--seed",
        type=int,
        nargs="+",
        default=[NOISE_SEED],
        help=f"first IMU noise seed (default {NOISE_SEED}, the pages'); another seed re-draws the "
        "noise; several (with --targets-only) walk the cells at each and sum them up",
    )
    add_results_dir_argument(p)
    args = p.parse_args(argv)
    policy: Path | str = TROT if args.policy == TROT else Path(args.policy).resolve()
    if policy != TROT and not Path(policy).is_file():
        p.error(f"--policy {args.policy}: no such file (an ONNX policy, or '{TROT}')")
    if len(args.seed) > 1 and not args.targets_only:
        p.error("--seed: one noise draw for the page; several only with --targets-only")
    walk = functools.partial(
        run_grid, policy, args.episodes, args.seconds, args.threads, args.imu_orientation
    )
    if args.targets_only:
        results = []
        for seed in args.seed:
            results.append(walk(targets_only=True, seed=seed))
            prefix = "" if len(args.seed) == 1 else f"draw {seed}: "
            print(prefix + target_summary(results[-1], policy), flush=True)
        if len(results) > 1:
            print(draws_summary(results, policy))
        return 0
    (seed,) = args.seed
    result = walk(seed=seed)
    failing = [cell_key(r) for r in target_tally(result)["failing"]]
    if failing:
        result["fast"] = walk(command_vx=FAST_COMMAND_VX, only=failing, seed=seed)
    section = ("robustness_trot" if policy == TROT else "robustness") + (
        f"_{IMU_FILTER}" if args.imu_orientation == IMU_FILTER else ""
    )
    args.results_dir.mkdir(parents=True, exist_ok=True)
    plot(result, args.results_dir / f"{section}.png", policy)
    png = figure_link(args.results_dir, f"{section}.png")
    path = write_result(section, report(result, args.episodes, args.seconds, png, policy), args.results_dir)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
