"""pidog-calibrate-commands: measure how a policy answers its velocity commands, and correct for it.

A PPO policy follows its commands with a systematic bias: deployed (without its exploration
noise) the policy shipped until 2026-12-06 walked 0.10 m/s when asked for 0.05, 0.29 for 0.2 on the
nominal robot, and turned right slower than left. The bias is much the same with nominal and with randomised physics
(docs/ABLATIONS.md, "sixth session"), so it can be measured and inverted, as a feed-forward
calibration in front of the policy:

1. ``measure_response``: run the policy over a lattice of commands in randomised sim, or on the
   nominal robot (``--no-randomize``; the tracking evaluation, heading-frame vx and yaw rate after a
   settle time) -> achieved (vx, wz).
2. ``fit_inverse``: for each command of a finer table, the command to tell the policy: of a
   still finer search grid over the lattice's range (SEARCH_STEPS), the one whose bilinearly
   interpolated response is nearest to it, in units of the tracking targets, with a small
   pull towards the command itself so that flat stretches of the response do not send it
   anywhere. A command that fell more often on the lattice than the wanted command itself
   costs extra (FALL_PENALTY); one next to a lattice command whose every episode fell is
   never chosen.
3. ``calibrated_model``: a bilinear lookup of that table, prepended to the ONNX graph. The file
   keeps its contract (raw observation in, action out; DESIGN.md §5), so policy_node, the twin
   and every benchmark run it unchanged; its metadata says it is calibrated, and on what.

The lattice runs on seeds the tracking grid never uses, so the grid measures the calibration on
episodes it was not fitted to.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pidog_description.spec import COMMAND_LIMITS, OBS_SLICES, seconds_to_steps
from pidog_sim.evaluation import TRACKING_SETTLE_S, TRACKING_TARGETS

from .config import DEFAULT_CONFIG, add_set_option
from .eval_cli import simulator_options

CALIBRATION_KEY = "command_calibration"  # ONNX metadata prop
# Names inside a calibrated graph: the lookup's nodes, the policy's (so it can be taken out again).
LOOKUP_PREFIX, POLICY_PREFIX, LOOKUP_OUTPUT = "command_calibration/", "policy/", "calibrated_obs"
LATTICE_VX = np.linspace(COMMAND_LIMITS["vx"][0], COMMAND_LIMITS["vx"][1], 10)  # 0.05 m/s apart
LATTICE_WZ = np.linspace(COMMAND_LIMITS["wz"][0], COMMAND_LIMITS["wz"][1], 9)  # 0.25 rad/s apart
TABLE_VX = np.linspace(COMMAND_LIMITS["vx"][0], COMMAND_LIMITS["vx"][1], 19)
TABLE_WZ = np.linspace(COMMAND_LIMITS["wz"][0], COMMAND_LIMITS["wz"][1], 17)
SEARCH_STEPS = (91, 81)  # candidate commands searched per axis
# Errors are weighed in units of issue 12's tracking targets (0.03 m/s, 0.15 rad/s).
ERROR_SCALE = np.array([TRACKING_TARGETS["vx_error"], TRACKING_TARGETS["wz_error"]])
PULL = 0.05  # weight of the distance from the command itself, same units
# Cost of each unit of fall rate above the wanted command's own: a quarter of the episodes
# falling more weighs as much as missing by 0.7 targets (0.1 rad/s) on one axis. Mild on
# purpose: one fall in four episodes is mostly chance, and at 8 the straight commands bent
# into 0.1-0.2 rad/s turns to dodge one such cell (tests/learning/test_command_calibration.py).
FALL_PENALTY = 2.0
COMMAND = OBS_SLICES["command"]
# What the CLI prints and the pipeline's report shows of a table: the commands whose bias was
# largest on the policy shipped until 2026-12-06 (slow, fast, backward, turning in place).
EXAMPLE_COMMANDS = ((0.05, 0.0), (0.1, 0.0), (0.3, 0.0), (-0.15, 0.0), (0.0, 1.0), (0.0, -1.0))
# The pipeline's defaults (config "calibration"), also the CLI's. The tracking grid's blocks use
# seeds 1000-1043, 5000-5043, 7000-7043. EPISODES per lattice command; every episode of all 90
# commands runs in one batch (16 episodes: 1,440 robots, 59 s on 2 cores in a default run).
LATTICE_SEED: int = DEFAULT_CONFIG["calibration"]["seed"]
EPISODES: int = DEFAULT_CONFIG["calibration"]["episodes"]
SECONDS: float = DEFAULT_CONFIG["calibration"]["seconds"]


class CalibrationError(ValueError):
    """A policy or a response that cannot be calibrated; the message says why."""


def measure_response(
    act_batch: Callable[[np.ndarray], np.ndarray],
    seed: int = LATTICE_SEED,
    episodes: int = EPISODES,
    seconds: float = SECONDS,
    env_kwargs: dict[str, Any] | None = None,
    threads: int | None = None,
    progress: bool = False,
    randomize: bool = True,
) -> dict[str, Any]:
    """Achieved (vx, wz) over LATTICE_VX x LATTICE_WZ, NaN where every episode fell; the
    ``episodes`` it ran per command (one on the nominal robot) and their ``falls``.

    Every lattice episode runs at once, as one batch of ``WalkTask`` robots (the simulator
    PiDogEnv and the tracking grid step; randomised, or all the nominal robot with
    ``randomize=False``), each with its command fixed for the episode;
    as on the grid, heading-frame forward speed and yaw rate are averaged after the first
    TRACKING_SETTLE_S, and an episode that fell does not count.
    """
    from pidog_sim.rollout import env_config_for
    from pidog_sim.task import WalkTask

    if not randomize:
        # The nominal robot has no noise and no pushes, and its start does not depend on the
        # seed: every episode of a command would be the same one (tests/learning/test_command_calibration.py).
        episodes = 1
    lattice = np.array([(vx, wz) for vx in LATTICE_VX for wz in LATTICE_WZ])
    commands = np.repeat(lattice, episodes, axis=0)
    n = len(commands)
    config = {
        **env_config_for(act_batch, env_kwargs),
        "episode_seconds": seconds + 1.0,
        "command_mode": "fixed",
    }
    task = WalkTask(n, randomize=randomize, config=config, threads=threads)
    try:
        task.reset(np.arange(n), seeds=seed + np.arange(n), commands=commands)
        steps, settle = seconds_to_steps(seconds), seconds_to_steps(TRACKING_SETTLE_S)
        fell = np.zeros(n, dtype=bool)
        sums = np.zeros((n, 2))
        iterator: Any = range(steps)
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, desc=f"lattice ({n} robots)", unit="step")
        for k in iterator:
            out = task.step(act_batch(task.observe()))
            fell |= out["terminated"]
            if k >= settle:
                sums += np.stack([out["forward_speed"], out["yaw_rate"]], axis=1)
    finally:
        task.close()
    per_episode = np.where(fell[:, None], np.nan, sums / (steps - settle)).reshape(len(lattice), episodes, 2)
    falls = fell.reshape(len(lattice), episodes).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all episodes of a command fell: NaN
        achieved = np.nanmean(per_episode, axis=1)
    shape = (len(LATTICE_VX), len(LATTICE_WZ))
    return {
        "achieved": achieved.reshape(*shape, 2),
        "falls": falls.reshape(shape),
        "episodes": episodes,
        "seconds": seconds,
        "seed": seed,
    }


def bilinear(grid_x: np.ndarray, grid_y: np.ndarray, values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """values (Nx, Ny, ...) on a regular grid, at points (M, 2), clamped to the grid's edges."""
    x = np.clip(points[:, 0], grid_x[0], grid_x[-1])
    y = np.clip(points[:, 1], grid_y[0], grid_y[-1])
    i = np.clip(np.searchsorted(grid_x, x, side="right") - 1, 0, len(grid_x) - 2)
    j = np.clip(np.searchsorted(grid_y, y, side="right") - 1, 0, len(grid_y) - 2)
    u = (x - grid_x[i]) / (grid_x[i + 1] - grid_x[i])
    v = (y - grid_y[j]) / (grid_y[j + 1] - grid_y[j])
    extra = (slice(None),) + (None,) * (values.ndim - 2)
    u, v = u[extra], v[extra]
    return (
        (1 - u) * (1 - v) * values[i, j]
        + u * (1 - v) * values[i + 1, j]
        + (1 - u) * v * values[i, j + 1]
        + u * v * values[i + 1, j + 1]
    )


def fit_inverse(achieved: np.ndarray, fall_rate: np.ndarray | None = None) -> np.ndarray:
    """The command to give the policy (TABLE_VX x TABLE_WZ x 2) for each wanted command.

    ``fall_rate`` (lattice shape): the share of each lattice command's episodes that fell. A
    candidate is charged FALL_PENALTY per unit of fall rate *above* that of the wanted command
    itself, so the calibration never trades tracking for a riskier command than the policy
    would get uncalibrated, nor (a single fall being chance) for dodging a merely unlucky cell:
    it once steered a straight 0.3 m/s command into a 0.25 rad/s turn that way. A command whose
    every episode fell (no response) is never chosen.
    """
    shape = (len(LATTICE_VX), len(LATTICE_WZ))
    if achieved.shape != (*shape, 2):
        raise CalibrationError(f"response must have shape {(*shape, 2)}, got {achieved.shape}")
    rate = np.zeros(shape) if fall_rate is None else np.asarray(fall_rate, dtype=np.float64).reshape(shape)
    unsafe = ~np.isfinite(achieved).all(axis=2)
    if max(unsafe.mean(), rate.mean()) > 0.25:
        raise CalibrationError(
            f"the policy fell in {rate.mean():.0%} of the lattice episodes and every time in "
            f"{unsafe.sum()} of {unsafe.size} lattice commands (more than a quarter): train or pick "
            "a steadier policy first"
        )
    filled = np.where(unsafe[..., None], 0.0, achieved)
    cv, cw = np.meshgrid(
        np.linspace(LATTICE_VX[0], LATTICE_VX[-1], SEARCH_STEPS[0]),
        np.linspace(LATTICE_WZ[0], LATTICE_WZ[-1], SEARCH_STEPS[1]),
        indexing="ij",
    )
    candidates = np.stack([cv.ravel(), cw.ravel()], axis=1)
    response = bilinear(LATTICE_VX, LATTICE_WZ, filled, candidates)
    # A candidate whose interpolation touches a command with no response is never chosen.
    reachable = bilinear(LATTICE_VX, LATTICE_WZ, unsafe.astype(np.float64), candidates) == 0.0
    wanted_v, wanted_w = np.meshgrid(TABLE_VX, TABLE_WZ, indexing="ij")
    wanted = np.stack([wanted_v.ravel(), wanted_w.ravel()], axis=1)
    # (wanted, candidate) costs, one axis at a time: no (wanted, candidate, axis) array.
    cost = FALL_PENALTY * np.maximum(
        bilinear(LATTICE_VX, LATTICE_WZ, rate, candidates)[None, :]
        - bilinear(LATTICE_VX, LATTICE_WZ, rate, wanted)[:, None],
        0.0,
    )
    for axis, scale in enumerate(ERROR_SCALE):
        cost += ((response[None, :, axis] - wanted[:, None, axis]) / scale) ** 2
        cost += PULL * ((candidates[None, :, axis] - wanted[:, None, axis]) / scale) ** 2
    cost[:, ~reachable] = np.inf
    best = np.argmin(cost, axis=1)
    return candidates[best].reshape(len(TABLE_VX), len(TABLE_WZ), 2)


def apply_table(table: np.ndarray, commands: np.ndarray) -> np.ndarray:
    """The calibrated commands (M, 2) for wanted commands (M, 2), as the ONNX graph computes them."""
    return bilinear(TABLE_VX, TABLE_WZ, table, np.asarray(commands, dtype=np.float64))


def _lookup_module(table: np.ndarray) -> Any:  # a torch.nn.Module (torch is imported lazily)
    import torch

    start = COMMAND.start
    n_v, n_w = len(TABLE_VX), len(TABLE_WZ)
    origin = (float(TABLE_VX[0]), float(TABLE_WZ[0]))
    step = (float(TABLE_VX[1] - TABLE_VX[0]), float(TABLE_WZ[1] - TABLE_WZ[0]))

    class CommandLookup(torch.nn.Module):
        """obs -> obs with its command replaced by the table's bilinear interpolation."""

        table: torch.Tensor  # a buffer (register_buffer)

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("table", torch.as_tensor(table.reshape(-1, 2), dtype=torch.float32))

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            x = ((obs[:, start] - origin[0]) / step[0]).clamp(0.0, n_v - 1.0)
            y = ((obs[:, start + 1] - origin[1]) / step[1]).clamp(0.0, n_w - 1.0)
            i = torch.floor(x).clamp(max=n_v - 2.0)
            j = torch.floor(y).clamp(max=n_w - 2.0)
            u, v = (x - i).unsqueeze(1), (y - j).unsqueeze(1)
            k = (i * n_w + j).long()
            t = self.table
            command = (
                (1 - u) * (1 - v) * t[k]
                + u * (1 - v) * t[k + n_w]
                + (1 - u) * v * t[k + 1]
                + u * v * t[k + n_w + 1]
            )
            return torch.cat([obs[:, :start], command, obs[:, start + 2 :]], dim=1)

    return CommandLookup().eval()


def calibrated_model(policy_bytes: bytes, table: np.ndarray, info: dict[str, Any]) -> bytes:
    """The policy's ONNX with the command lookup in front of it; metadata kept, plus ours."""
    import io

    import onnx
    import torch
    from onnx import compose

    policy = onnx.load_from_string(policy_bytes)
    meta = {p.key: p.value for p in policy.metadata_props}
    if CALIBRATION_KEY in meta:
        raise CalibrationError("the policy is already command-calibrated: calibrate the uncalibrated one")
    if [i.name for i in policy.graph.input] != ["obs"]:
        raise CalibrationError(
            f"only policies with the single input 'obs' can be calibrated, got {[i.name for i in policy.graph.input]}"
        )
    opset = next(o.version for o in policy.opset_import if o.domain in ("", "ai.onnx"))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _lookup_module(table),
            (torch.zeros(2, policy.graph.input[0].type.tensor_type.shape.dim[1].dim_value),),
            buffer,  # type: ignore[arg-type]  # torch's annotation omits file objects, which it writes to
            dynamo=False,
            input_names=["obs"],
            output_names=[LOOKUP_OUTPUT],
            dynamic_axes={"obs": {0: "batch"}, LOOKUP_OUTPUT: {0: "batch"}},
            opset_version=opset,
        )
    lookup = onnx.load_from_string(buffer.getvalue())
    lookup.ir_version = policy.ir_version
    lookup = compose.add_prefix(lookup, LOOKUP_PREFIX, rename_inputs=False, rename_outputs=True)
    policy_renamed = compose.add_prefix(policy, POLICY_PREFIX, rename_inputs=True, rename_outputs=False)
    merged = compose.merge_models(
        lookup, policy_renamed, io_map=[(LOOKUP_PREFIX + LOOKUP_OUTPUT, POLICY_PREFIX + "obs")]
    )
    opsets = _opsets(merged)  # merge_models lists the shared default domain twice
    del merged.opset_import[:]
    merged.opset_import.extend(opsets)
    del merged.metadata_props[:]
    for key, value in {**meta, CALIBRATION_KEY: json.dumps(info, sort_keys=True)}.items():
        entry = merged.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(merged)
    return merged.SerializeToString()


def examples(table: np.ndarray) -> list[dict[str, list[float]]]:
    """What the policy is told for EXAMPLE_COMMANDS under ``table``."""
    told = apply_table(table, np.array(EXAMPLE_COMMANDS))
    return [
        {"wanted": list(w), "told": [round(float(t[0]), 3), round(float(t[1]), 3)]}
        for w, t in zip(EXAMPLE_COMMANDS, told, strict=True)
    ]


def policy_inside(path: str | Path) -> Any:
    """The ``OnnxPolicy`` inside a (possibly) calibrated file: what BC or PPO themselves compute.
    Validated like any policy file; a file that is no policy is refused by name."""
    return _inside(path)[1]


def _inside(path: str | Path) -> tuple[bytes, Any]:
    """(the uncalibrated model's bytes, its OnnxPolicy) for the policy file at ``path``."""
    from pidog_control.policy_runtime import OnnxPolicy

    OnnxPolicy(path)  # a clear error for a file that is not a policy for this robot
    raw = uncalibrated_model(Path(path).read_bytes())
    with tempfile.TemporaryDirectory() as tmp:
        raw_path = Path(tmp) / Path(path).name
        raw_path.write_bytes(raw)
        return raw, OnnxPolicy(raw_path)  # the session holds the model: the file may go


def _opsets(model: Any) -> list[Any]:
    """The model's opset imports, one per domain."""
    seen: dict[str, Any] = {}
    for opset in model.opset_import:
        seen.setdefault(opset.domain, opset)
    return list(seen.values())


def uncalibrated_model(model_bytes: bytes) -> bytes:
    """The policy inside a calibrated ONNX, as it was before ``calibrated_model`` (an
    uncalibrated one is returned as it is): to calibrate again, e.g. on an identified robot."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    meta = {p.key: p.value for p in model.metadata_props}
    if CALIBRATION_KEY not in meta:
        return model_bytes

    def plain(name: str) -> str:
        if name == LOOKUP_PREFIX + LOOKUP_OUTPUT:
            return "obs"
        return name.removeprefix(POLICY_PREFIX)

    graph = model.graph
    nodes = [n for n in graph.node if n.name.startswith(POLICY_PREFIX)]
    for node in nodes:
        node.name = plain(node.name)
        node.input[:] = [plain(i) for i in node.input]
        node.output[:] = [plain(o) for o in node.output]
    initializers = [t for t in graph.initializer if t.name.startswith(POLICY_PREFIX)]
    for tensor in initializers:
        tensor.name = plain(tensor.name)
    value_info = [v for v in graph.value_info if v.name.startswith(POLICY_PREFIX)]
    for info in value_info:
        info.name = plain(info.name)
    stripped = onnx.helper.make_graph(
        nodes, "policy", graph.input, graph.output, initializers, value_info=value_info
    )
    result = onnx.helper.make_model(stripped, opset_imports=_opsets(model), ir_version=model.ir_version)
    for key, value in meta.items():
        if key != CALIBRATION_KEY:
            entry = result.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.checker.check_model(result)
    return result.SerializeToString()


def calibrate(
    policy_path: str | Path,
    out_path: str | Path,
    episodes: int = EPISODES,
    seconds: float = SECONDS,
    seed: int = LATTICE_SEED,
    env_kwargs: dict[str, Any] | None = None,
    threads: int | None = None,
    progress: bool = False,
    randomize: bool = True,
) -> dict[str, Any]:
    """Measure, fit, write the calibrated ONNX atomically and check it runs; returns the fit.
    ``out_path`` may be ``policy_path``: the policy survives inside the calibrated graph.
    ``randomize=False`` measures on the nominal robot of ``env_kwargs`` (the identified one, with
    a robot parameters file) instead of randomised ones."""
    from pidog_control.policy_runtime import OnnxPolicy

    from .atomic import write_bytes

    policy_path, out_path = Path(policy_path), Path(out_path)
    if episodes < 1 or not math.isfinite(seconds) or seconds <= TRACKING_SETTLE_S:
        raise CalibrationError(
            f"episodes (--episodes, calibration.episodes) must be >= 1 and seconds (--seconds, "
            f"calibration.seconds) > {TRACKING_SETTLE_S:g}, the unscored start; got {episodes} and {seconds:g}"
        )
    raw, policy = _inside(policy_path)  # calibrating again starts from the policy
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / "calibrated.onnx"
        start = time.monotonic()
        response = measure_response(
            policy.act_batch, seed, episodes, seconds, env_kwargs, threads, progress, randomize
        )
        table = fit_inverse(response["achieved"], response["falls"] / response["episodes"])
        info = {
            "lattice_vx": LATTICE_VX.round(4).tolist(),
            "lattice_wz": LATTICE_WZ.round(4).tolist(),
            "achieved": np.round(response["achieved"], 4).tolist(),
            "falls": response["falls"].tolist(),
            "table_vx": TABLE_VX.round(4).tolist(),
            "table_wz": TABLE_WZ.round(4).tolist(),
            "table": np.round(table, 4).tolist(),
            "episodes": response["episodes"],
            "seconds": seconds,
            "seed": seed,
            "randomized": randomize,
            "sim_overrides": json.loads(json.dumps(env_kwargs or {}, default=str)),
            "source": policy_path.name,
        }
        data = calibrated_model(raw, table, info)
        candidate.write_bytes(data)
        check = OnnxPolicy(candidate)  # loads, validates and runs as policy_node would
        probe = np.zeros(check.obs_dim, dtype=np.float32)
        probe[COMMAND] = (0.05, 0.0)
        told = probe.copy()
        told[COMMAND] = apply_table(table, probe[None, COMMAND])[0]
        if not np.allclose(check.act(probe), policy.act(told), atol=1e-4):
            raise CalibrationError(
                f"{policy_path}: the calibrated graph disagrees with its table; nothing written"
            )
    write_bytes(out_path, data)
    return {
        "table": table,
        "achieved": response["achieved"],
        "falls": response["falls"],
        "seconds_taken": time.monotonic() - start,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pidog-calibrate-commands",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("policy", help="an exported policy.onnx (not yet calibrated)")
    parser.add_argument("--out", required=True, help="where to write the calibrated policy .onnx")
    parser.add_argument(
        "--episodes", type=int, default=EPISODES, help=f"episodes per lattice command (default {EPISODES})"
    )
    parser.add_argument(
        "--seconds", type=float, default=SECONDS, help=f"episode length, s (default {SECONDS:g})"
    )
    parser.add_argument(
        "--seed", type=int, default=LATTICE_SEED, help=f"first episode seed (default {LATTICE_SEED})"
    )
    parser.add_argument(
        "--robot-params",
        type=Path,
        default=None,
        metavar="FILE",
        help="robot_params.yaml from pidog-sysid: calibrate on the identified robot's simulator",
    )
    add_set_option(
        parser,
        "a simulator option, as pidog-eval's (repeatable; after --robot-params), e.g. "
        "env.randomization.servo_strength=[0.7,1.3] to measure over the robots a run trained on",
    )
    parser.add_argument(
        "--no-randomize",
        action="store_true",
        help="measure on the nominal robot (with --robot-params, the identified one) instead of "
        "randomised robots; it has no noise, so one episode per command is run",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        env_kwargs = simulator_options(args.robot_params, args.assignments, randomize=not args.no_randomize)
        fit = calibrate(
            args.policy,
            args.out,
            args.episodes,
            args.seconds,
            args.seed,
            env_kwargs,
            progress=True,
            randomize=not args.no_randomize,
        )
    except (CalibrationError, OSError, ValueError) as exc:  # RobotParamsError, PolicyLoadError too
        print(f"pidog-calibrate-commands: {exc}", file=sys.stderr)
        return 2
    print(f"calibrated in {fit['seconds_taken']:.0f} s; wrote {args.out}")
    for example in examples(fit["table"]):
        (wv, ww), (tv, tw) = example["wanted"], example["told"]
        print(f"  wanted vx {wv:+.2f} m/s, wz {ww:+.2f} rad/s -> the policy is told {tv:+.3f}, {tw:+.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
