"""Roll out a controller in the simulator (a batch of robots, or one PiDogEnv when filmed) and
measure how well it walks and follows commands.

- Speed is the heading-frame forward velocity (the reward's), averaged over the episode, not
  world-x displacement / time: a slow yaw drift must not read as a slow walk.
- Episode ``k`` of every evaluation uses seed ``seed + k``, so two controllers evaluated with the
  same seed meet the same robots, pushes and commands: compare them with ``paired_difference``.
- Every mean comes with a 95 % confidence interval (Student t over episodes).
- ``evaluate_tracking`` runs a grid of (vx, wz) commands and reports achieved velocities, errors,
  falls and gait quality: swing-foot clearance, stance-foot slip and cost of transport.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import mujoco
import numpy as np

from pidog_description.robot import LEG_NAMES
from pidog_description.rotations import up_in_body, yaw_from_quaternion
from pidog_description.spec import (
    CONTROL_DT,
    FREEFALL_S,
    IMU_READ_HZ,
    LIFT_WINDOW_S,
    OBS_SLICES,
    STANDARD_GRAVITY,
    picked_up,
    seconds_to_steps,
    teleop_commands,
)

from .batch import BatchSim
from .env import PiDogEnv
from .model import foot_radii
from .rollout import MAX_BATCH, EpisodeRecord, env_config_for, run_episodes
from .task import MIN_SWING_S

Controller = Callable[[np.ndarray], np.ndarray]

# (vx m/s, wz rad/s): standing, forward, backward, turning in place both ways, arcs.
TRACKING_GRID: tuple[tuple[float, float], ...] = (
    (0.0, 0.0),
    (0.05, 0.0),
    (0.1, 0.0),
    (0.2, 0.0),
    (0.3, 0.0),
    (-0.05, 0.0),
    (-0.1, 0.0),
    (-0.15, 0.0),
    (0.0, 0.3),
    (0.0, -0.3),
    (0.0, 0.6),
    (0.0, -0.6),
    (0.0, 1.0),
    (0.0, -1.0),
    (0.1, 0.3),
    (0.1, -0.3),
    (0.2, 0.5),
    (0.2, -0.5),
    (0.3, 0.3),
    (0.3, -0.3),
    (-0.1, 0.3),
    (-0.1, -0.3),
)
# Below this commanded speed a row says nothing about the cost of transport (v -> 0).
COT_MIN_SPEED = 0.05
# Issue 12's steering targets on this grid: mean |vx error| (m/s) and |wz error| (rad/s), the
# turn-in-place rate at |wz| = 1 (rad/s, or 90 % of the scripted gait's), and the top forward
# speed as a multiple of the scripted gait's. Benchmarks judge by them; the pipeline weighs the
# two errors by them when it picks the policy to deploy.
TRACKING_TARGETS: dict[str, float] = {
    "vx_error": 0.03,
    "wz_error": 0.15,
    "turn_in_place": 0.6,
    "top_speed_ratio": 1.5,
}
# Issue 14's robustness target: every robot with servos of this stall torque (N·m, the whole
# robot), this control latency (steps) and this total mass (kg) keeps speed_ratio of the nominal
# robot's forward speed without a fall (benchmarks.bench_robustness walks the cells; pidog-train's
# default training robots cover it, tests/learning/test_config.py).
ROBUSTNESS_TARGETS: dict[str, Any] = {
    "strength": (0.25, 0.45),
    "latency": (0, 2),
    "mass": (0.85, 1.15),
    "speed_ratio": 0.7,
}
TRACKING_SETTLE_S = 2.0  # the start of a tracking episode not scored: the gait gets going
VIDEO_FRAME_EVERY = 2  # control steps per video frame: 25 fps is plenty

_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


def t_quantile_975(dof: int) -> float:
    """Two-sided 95 % Student t quantile (table to 30 degrees of freedom, then ~1.96 + 2.5/dof)."""
    if dof < 1:
        raise ValueError(f"a confidence interval needs at least 2 samples (dof >= 1), got dof {dof}")
    return _T975[dof - 1] if dof <= len(_T975) else 1.96 + 2.5 / dof


def mean_ci(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """(mean, half-width of the 95 % confidence interval); the half-width is nan for one sample."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1:
        return float(x[0]), float("nan")
    return float(x.mean()), float(t_quantile_975(x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """``a - b`` over paired episodes (same seeds): mean, 95 % CI half-width, and whether the
    interval excludes 0 (a measured difference)."""
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if xa.shape != xb.shape:
        raise ValueError(f"paired samples must have the same length, got {xa.size} and {xb.size}")
    mean, ci = mean_ci(xa - xb)
    return {"mean": mean, "ci95": ci, "significant": bool(np.isfinite(ci) and abs(mean) > ci)}


# --- gait quality -------------------------------------------------------------------------------


def chatter_rate(chatters: int, control_steps: int) -> float:
    """Landings after a flight shorter than MIN_SWING_S, per foot and second of watched time."""
    return chatters / (len(LEG_NAMES) * control_steps * CONTROL_DT) if control_steps else float("nan")


@dataclass
class GaitMeter:
    """Swing-foot clearance, stance-foot slip, low-g phases and mechanical power of robot
    ``row`` of a batch (``pooled`` sums the meters of several rows).

    Reads the batch's own sensors (foot positions, velocities, floor contacts: the arrays the
    reward uses; the accelerometer at every physics step), so measuring costs no extra MuJoCo
    pass. Low g: physics steps (2 ms) whose specific force is below FREEFALL_ACCEL_MPS2, the body
    in flight as a bouncing gait throws it. The robot's hw_node takes FREEFALL_S of that for a
    drop and stops (docs/ABLATIONS.md). Lift test: hw_node's other 'lifted' check
    (``pidog_description.spec.picked_up``) on the accelerometer read as hw_node reads it, every
    1 / IMU_READ_HZ s, over sliding LIFT_WINDOW_S windows: the largest window mean, and how often
    the test would have latched.
    """

    model: mujoco.MjModel
    row: int = 0  # the robot of the batch this meter reads
    clearances: list[float] = field(default_factory=list)  # m, peak height per swing
    slip_speeds: list[float] = field(default_factory=list)  # m/s, horizontal speed of stance feet
    powers: list[float] = field(default_factory=list)  # W, sum over joints of |torque x speed|
    low_g_runs: list[float] = field(default_factory=list)  # s, each run of low-g physics steps
    # Landings after a flight shorter than MIN_SWING_S: a foot hopping off the floor for one
    # control period, which lands sliding (docs/ABLATIONS.md, twenty-second session).
    chatters: int = 0
    samples: int = 0
    low_g_samples: int = 0
    max_lift_mean: float = float("-inf")  # m/s^2, the largest lift-window mean of upward acceleration
    lift_trips: int = 0  # windows where hw_node's lift test would latch, after one where it would not

    def __post_init__(self) -> None:
        self._radius = foot_radii(self.model)  # clearance is measured from the sole
        self._swing_peak = np.full(len(LEG_NAMES), np.nan)  # nan: the foot is on the ground
        self._swing_steps = np.zeros(len(LEG_NAMES), dtype=np.int64)
        self._low_g_run = 0
        timestep = float(self.model.opt.timestep)
        self._read_every = max(1, round(1.0 / (IMU_READ_HZ * timestep)))  # physics steps per IMU read
        self._window = round(LIFT_WINDOW_S * IMU_READ_HZ)  # IMU reads per lift window
        self._gravity = float(-self.model.opt.gravity[2])
        self._reads: deque[float] = deque(maxlen=self._window)
        self._physics_steps = 0
        self._lifted = False

    def start(self) -> None:
        """New window (after settling): swings and low-g runs that began before it are not
        counted; a low-g run the last episode ended in counts as far as it went."""
        self._swing_peak[:] = np.nan
        self._swing_steps[:] = 0
        self._close_low_g_run()
        self._reads.clear()
        self._lifted = False

    def _close_low_g_run(self) -> None:
        if self._low_g_run:
            self.low_g_runs.append(self._low_g_run * float(self.model.opt.timestep))
        self._low_g_run = 0

    def _lift_test(self, sim: BatchSim) -> None:
        # Up from the true orientation (the IMU's noisy one would shift the policy's random
        # stream); held over the control period, whose 20 ms hardly turn the body.
        up = up_in_body(sim.qpos[self.row, 3:7])
        for force in sim.specific_force_trace()[self.row]:
            if self._physics_steps % self._read_every == 0:
                self._reads.append(float(force @ up) - self._gravity)
                if len(self._reads) == self._window:
                    lifted, mean, _ = picked_up(np.array(self._reads))
                    self.max_lift_mean = max(self.max_lift_mean, mean)
                    self.lift_trips += int(lifted and not self._lifted)
                    self._lifted = lifted
            self._physics_steps += 1

    def update(self, sim: BatchSim) -> None:
        self._lift_test(sim)
        r = self.row
        contact = sim.foot_contacts()[r]
        low_g = sim.low_g_trace()[r]
        self.samples += low_g.size
        self.low_g_samples += int(low_g.sum())
        for low in low_g:
            if low:
                self._low_g_run += 1
            else:
                self._close_low_g_run()
        heights = sim.foot_positions()[r, :, 2] - self._radius
        slip = np.hypot(*sim.foot_velocities()[r, :, :2].T)
        for i in range(len(LEG_NAMES)):
            if contact[i]:
                if np.isfinite(self._swing_peak[i]):  # it lands
                    if self._swing_steps[i] * CONTROL_DT >= MIN_SWING_S:
                        self.clearances.append(float(self._swing_peak[i]))
                    else:
                        self.chatters += 1
                self._swing_peak[i] = np.nan
                self._swing_steps[i] = 0
                self.slip_speeds.append(float(slip[i]))
            else:
                self._swing_peak[i] = max(np.nan_to_num(self._swing_peak[i], nan=0.0), float(heights[i]))
                self._swing_steps[i] += 1
        self.powers.append(float(np.sum(np.abs(sim.joint_torques()[r] * sim.joint_velocities()[r]))))

    @classmethod
    def pooled(cls, meters: Sequence[GaitMeter]) -> GaitMeter:
        """One meter holding every sample of ``meters`` (their open low-g runs closed), as if
        one meter had watched all their episodes."""
        total = cls(meters[0].model)
        for meter in meters:
            meter._close_low_g_run()
            total.clearances += meter.clearances
            total.slip_speeds += meter.slip_speeds
            total.powers += meter.powers
            total.low_g_runs += meter.low_g_runs
            total.chatters += meter.chatters
            total.samples += meter.samples
            total.low_g_samples += meter.low_g_samples
            total.max_lift_mean = max(total.max_lift_mean, meter.max_lift_mean)
            total.lift_trips += meter.lift_trips
        return total

    def summary(self) -> dict[str, float]:
        return {
            "median_clearance_mm": float(np.median(self.clearances) * 1000)
            if self.clearances
            else float("nan"),
            "mean_stance_slip_mps": float(np.mean(self.slip_speeds)) if self.slip_speeds else float("nan"),
            "mean_power_w": float(np.mean(self.powers)) if self.powers else float("nan"),
            "swings": len(self.clearances),
            "chatter_per_foot_s": chatter_rate(self.chatters, len(self.powers)),
            "low_g_percent": 100.0 * self.low_g_samples / self.samples if self.samples else float("nan"),
            "longest_low_g_s": max(self.low_g_runs + [self._low_g_run * float(self.model.opt.timestep)]),
            "max_lift_mean_mps2": self.max_lift_mean if np.isfinite(self.max_lift_mean) else float("nan"),
            "lift_trips": self.lift_trips,
        }


# --- one episode ---------------------------------------------------------------------------------


@dataclass
class Episode:
    steps: int
    fell: bool
    total_return: float
    distance: float
    forward_speed: float  # heading-frame, mean over the scored window
    yaw_rate: float  # heading change / time over the scored window
    scored_steps: int


def run_episode(
    env: PiDogEnv,
    controller: Controller,
    seed: int,
    command: tuple[float, float] | None = None,
    frames: list[np.ndarray] | None = None,
    viewer: Any | None = None,
) -> Episode:
    """One episode in ``env``, every step scored; for filming (``frames``) and for ``viewer`` (a
    ``pidog_sim.viewer.LiveViewer``, which shows it live and may set the command from its
    keyboard). Everything else runs batched (``rollout.run_episodes``)."""
    options = None if command is None else {"command": [float(command[0]), float(command[1])]}
    obs, info = env.reset(seed=seed, options=options)
    if hasattr(controller, "reset"):
        controller.reset()
    if viewer is not None:
        viewer.begin_episode()
    record = EpisodeRecord(index=0, seed=seed)
    done = False
    while not done:
        if viewer is not None:
            viewer.drive(env)
            viewer.saw(env, obs)
        obs, reward, terminated, truncated, info = env.step(controller(obs))
        if viewer is not None:
            viewer.show(env)
        record.total_return += reward
        record.steps += 1
        done = terminated or truncated
        record.fell = record.fell or bool(info["fell"])
        record.forward.append(float(info["forward_speed"]))
        record.yaw.append(cast(float, yaw_from_quaternion(env.sim.base_quaternion())))  # one robot: a float
        if frames is not None and record.steps % VIDEO_FRAME_EVERY == 0:
            frames.append(cast(np.ndarray, env.render()))  # frames are filmed with render_mode rgb_array
    record.distance = float(info["distance"])
    return _episode(record)


def _check_budget(episodes: int, seconds: float) -> None:
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")


# --- walking at the configured command ---------------------------------------------------------


def _episode(record: EpisodeRecord) -> Episode:
    return Episode(
        steps=record.steps,
        fell=record.fell,
        total_return=record.total_return,
        distance=record.distance,
        forward_speed=record.mean_forward(),
        yaw_rate=record.yaw_rate(),
        scored_steps=len(record.forward),
    )


def _run_batched(
    controller: Controller, seeds: Sequence[int], progress: bool, desc: str, **options: Any
) -> list[EpisodeRecord]:
    """``rollout.run_episodes`` with a progress bar over its episodes when ``progress``."""
    if not progress:
        return run_episodes(controller, seeds, **options)
    from tqdm import tqdm

    with tqdm(total=len(seeds), desc=desc, unit="episode") as bar:
        return run_episodes(controller, seeds, on_episode=lambda _r: bar.update(), **options)


def evaluate(
    controller: Controller,
    episodes: int = 10,
    seconds: float = 10.0,
    randomize: bool = True,
    seed: int = 0,
    video_path: str | Path | None = None,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
    command: tuple[float, float] | None = None,
    viewer: Any | None = None,
    max_batch: int = MAX_BATCH,
) -> dict[str, Any]:
    """Run ``episodes`` episodes of ``seconds`` each (seeds ``seed + k``: paired across
    controllers). ``command`` (vx, wz) holds for every episode; by default the env's command
    mode decides. The episodes run ``max_batch`` at a time (``rollout.run_episodes``), except
    in a ``PiDogEnv``, one at a time, with the same results: the first one when filmed to
    ``video_path``, and all of them when a ``viewer`` (a LiveViewer) shows them live."""
    _check_budget(episodes, seconds)
    kwargs = dict(env_kwargs or {})
    if viewer is not None:
        runs = _evaluate_one_at_a_time(
            controller,
            range(episodes),
            seconds,
            randomize,
            seed,
            video_path,
            kwargs,
            progress,
            command,
            viewer,
        )
    else:
        filmed = 1 if video_path is not None else 0  # episode 0 runs alone, in front of the camera
        runs = []
        if filmed:
            runs = _evaluate_one_at_a_time(
                controller, range(1), seconds, randomize, seed, video_path, kwargs, False, command, None
            )
        if episodes > filmed:
            use_camera = bool(kwargs.pop("use_camera", False))
            records = _run_batched(
                controller,
                [seed + k for k in range(filmed, episodes)],
                progress,
                "evaluating",
                env_config={**kwargs, "episode_seconds": seconds},
                randomize=randomize,
                commands=None
                if command is None
                else np.tile(np.asarray(command, dtype=np.float64), (episodes - filmed, 1)),
                use_camera=use_camera,
                max_batch=max_batch,
            )
            runs += [_episode(r) for r in records]
    speeds = [r.forward_speed for r in runs]
    returns = [r.total_return for r in runs]
    speed, speed_ci = mean_ci(speeds)
    mean_return, return_ci = mean_ci(returns)
    return {
        "episodes": episodes,
        "seconds": seconds,
        "randomize": randomize,
        "seed": seed,
        "speed_measure": "heading-frame forward velocity, mean over each episode",
        "mean_forward_speed_mps": speed,
        "ci95_forward_speed_mps": speed_ci,
        "std_forward_speed_mps": float(np.std(speeds)),
        "falls": sum(r.fell for r in runs),
        "mean_return": mean_return,
        "ci95_return": return_ci,
        "mean_distance_m": float(np.mean([r.distance for r in runs])),
        "mean_episode_seconds": float(np.mean([r.steps * CONTROL_DT for r in runs])),
        "mean_yaw_rate_radps": float(np.mean([r.yaw_rate for r in runs])),
        "per_episode_speed_mps": [float(s) for s in speeds],
        "per_episode_return": [float(r) for r in returns],
        "per_episode_fell": [bool(r.fell) for r in runs],
        **({} if command is None else {"command": {"vx": float(command[0]), "wz": float(command[1])}}),
    }


def _evaluate_one_at_a_time(
    controller: Controller,
    episodes: range,
    seconds: float,
    randomize: bool,
    seed: int,
    video_path: str | Path | None,
    env_kwargs: dict[str, Any],
    progress: bool,
    command: tuple[float, float] | None,
    viewer: Any | None,
) -> list[Episode]:
    """``evaluate``'s episodes ``episodes`` (seeds ``seed + k``) in one ``PiDogEnv``: for
    filming (the first one) and for the live viewer."""
    kwargs = {**env_config_for(controller, env_kwargs), "randomize": randomize, "episode_seconds": seconds}
    if video_path is not None:
        kwargs["render_mode"] = "rgb_array"
    env = PiDogEnv(**kwargs)
    frames: list[np.ndarray] = []
    iterator: Any = episodes
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="evaluating", unit="episode")
    try:
        runs = [
            run_episode(
                env,
                controller,
                seed + k,
                command,
                frames=frames if video_path is not None and k == episodes[0] else None,
                viewer=viewer,
            )
            for k in iterator
        ]
    finally:
        env.close()
    if video_path is not None:
        write_video(video_path, frames, fps=int(round(1.0 / (VIDEO_FRAME_EVERY * CONTROL_DT))))
    return runs


def write_video(path: str | Path, frames: list[np.ndarray], fps: int) -> Path:
    """Write an MP4 atomically (temp file, then rename)."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=7, macro_block_size=8) as writer:
        for frame in frames:
            writer.append_data(frame)  # type: ignore[attr-defined]  # imageio's stub: __enter__ gives the base class
    tmp.replace(path)
    return path


# --- a driven sequence of commands ---------------------------------------------------------------

# What an operator does in a minute: walk, turn in place both ways, arc, back up, stop.
COMMAND_SEQUENCE: tuple[tuple[float, float, float], ...] = (
    (3.0, 0.2, 0.0),
    (3.0, 0.0, 0.6),
    (3.0, 0.0, -0.6),
    (3.0, 0.15, 0.4),
    (3.0, 0.3, 0.0),
    (3.0, -0.1, 0.0),
    (2.0, 0.0, 0.0),
)
"""(seconds, vx m/s, wz rad/s) segments."""


def command_sequence(
    controller: Controller,
    segments: Sequence[tuple[float, float, float]] = COMMAND_SEQUENCE,
    randomize: bool = True,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
) -> dict[str, list[float]]:
    """One episode whose command changes segment by segment, as a person driving would.

    Returns time series (sim time s, commanded vx/wz, achieved heading-frame vx and world yaw
    rate averaged over the gait-cycle window the reward uses) for a commanded-vs-achieved plot.
    """
    total = float(sum(seconds for seconds, _vx, _wz in segments))
    kwargs = {
        **env_config_for(controller, env_kwargs),
        "randomize": randomize,
        "episode_seconds": total,
        "command_mode": "fixed",
    }
    env = PiDogEnv(**kwargs)
    series: dict[str, list[float]] = {
        "t": [],
        "command_vx": [],
        "command_wz": [],
        "vx": [],
        "wz": [],
        "fell": [],
    }
    try:
        obs, _ = env.reset(seed=seed, options={"command": [segments[0][1], segments[0][2]]})
        if hasattr(controller, "reset"):
            controller.reset()
        ends = np.cumsum([seconds for seconds, _vx, _wz in segments])
        step, done = 0, False
        while not done:
            t = step * CONTROL_DT
            segment = min(int(np.searchsorted(ends, t, side="right")), len(segments) - 1)
            _seconds, vx, wz = segments[segment]
            env.task.command[0] = (vx, wz)  # the operator's new command, as /cmd_vel would bring it
            obs[OBS_SLICES["command"]] = (vx, wz)
            obs, _r, terminated, truncated, info = env.step(controller(obs))
            step += 1
            done = terminated or truncated
            averaged = env.task.averaged_velocity()[0]
            for key, value in (
                ("t", step * CONTROL_DT),
                ("command_vx", vx),
                ("command_wz", wz),
                ("vx", averaged[0]),
                ("wz", averaged[1]),
                ("fell", float(info["fell"])),
            ):
                series[key].append(float(value))
    finally:
        env.close()
    return series


# --- following a grid of commands ---------------------------------------------------------------


def evaluate_tracking(
    controller: Controller,
    commands: Sequence[tuple[float, float]] | None = None,
    seconds: float = 8.0,
    randomize: bool = True,
    seed: int = 0,
    settle_seconds: float = TRACKING_SETTLE_S,
    episodes_per_command: int = 1,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
    max_batch: int = MAX_BATCH,
) -> dict[str, Any]:
    """How closely a controller follows velocity commands (vx m/s, wz rad/s), and how it walks.

    Each command (default ``TRACKING_GRID``) gets ``episodes_per_command`` episodes with seeds
    ``seed + i * episodes_per_command + k`` (paired across controllers), run ``max_batch`` at a
    time, each row of the batch with a ``GaitMeter`` of its own; the first
    ``settle_seconds`` of each are not scored. Per command: achieved heading-frame vx and yaw
    rate (means and 95 % CIs over the non-fallen episodes), falls. Overall: mean |vx error| and
    |wz error| over non-fallen episodes, falls, median swing-foot clearance (mm), mean
    stance-foot slip (m/s), the share of time in low g and the longest spell of it (s; hw_node
    takes FREEFALL_S of it for a drop), hw_node's lift test on the accelerometer (largest window
    mean, m/s^2, and how often it would latch: GaitMeter), and cost of transport (mean mechanical power / (m g |vx|) over the
    rows commanded at least COT_MIN_SPEED).
    """
    commands = list(TRACKING_GRID if commands is None else commands)
    if not commands:
        raise ValueError("evaluate_tracking needs at least one command")
    _check_budget(episodes_per_command, seconds)
    if seconds <= settle_seconds:
        raise ValueError(f"seconds ({seconds}) must exceed settle_seconds ({settle_seconds})")
    config = {**(env_kwargs or {}), "episode_seconds": seconds, "command_mode": "fixed"}
    use_camera = bool(config.pop("use_camera", False))
    n = len(commands) * episodes_per_command
    pinned = np.repeat(np.asarray(commands, dtype=np.float64), episodes_per_command, axis=0)
    settle_steps = seconds_to_steps(settle_seconds)
    meters: dict[int, GaitMeter] = {}  # one per batch row, each pooling the episodes it ran
    cot: dict[int, tuple[float, float]] = {}  # episode -> (mean power W, m g |vx| of its robot)
    # Where each episode's samples begin in its row's meter (powers, slip speeds, clearances,
    # chatters).
    starts: dict[int, tuple[int, int, int, int]] = {}
    slips: dict[int, list[float]] = {}  # episode -> its stance-foot speeds (m/s)
    clearances: dict[int, list[float]] = {}  # episode -> its swing peaks (m)
    chatters: dict[int, tuple[int, int]] = {}  # episode -> (its chatters, its watched control steps)

    def measure(slot: int, record: EpisodeRecord, task: Any, done: bool) -> None:
        meter = meters.get(slot)
        if meter is None:
            meter = meters[slot] = GaitMeter(task.sim.models[slot], row=slot)
        if record.steps == 1:
            meter.start()
            starts[record.index] = (
                len(meter.powers),
                len(meter.slip_speeds),
                len(meter.clearances),
                meter.chatters,
            )
        if record.steps > settle_steps and not done:
            meter.update(task.sim)
        if not done:
            return
        power_start, slip_start, clearance_start, chatter_start = starts[record.index]
        slips[record.index] = meter.slip_speeds[slip_start:]
        clearances[record.index] = meter.clearances[clearance_start:]
        chatters[record.index] = (meter.chatters - chatter_start, len(meter.powers) - power_start)
        if not record.fell and len(meter.powers) > power_start:
            mass = float(np.sum(task.sim.models[slot].body_mass))  # this episode's randomised mass
            power = float(np.mean(meter.powers[power_start:]))
            cot[record.index] = (power, mass * STANDARD_GRAVITY * abs(record.mean_forward()))

    records = _run_batched(
        controller,
        [seed + k for k in range(n)],
        progress,
        "tracking",
        env_config=config,
        randomize=randomize,
        commands=pinned,
        settle_steps=settle_steps,
        use_camera=use_camera,
        max_batch=max_batch,
        on_step=measure,
    )
    rows, vx_errors, wz_errors = [], [], []
    cot_power, cot_weight_speed = 0.0, 0.0
    for i, (vx_cmd, wz_cmd) in enumerate(commands):
        runs = [_episode(r) for r in records[i * episodes_per_command : (i + 1) * episodes_per_command]]
        for k, run in enumerate(runs):
            if run.fell:
                continue
            vx_errors.append(abs(run.forward_speed - vx_cmd))
            wz_errors.append(abs(run.yaw_rate - wz_cmd))
            index = i * episodes_per_command + k
            if abs(vx_cmd) >= COT_MIN_SPEED and index in cot:
                cot_power += cot[index][0]
                cot_weight_speed += cot[index][1]
        standing = [r for r in runs if not r.fell]
        vx, vx_ci = mean_ci([r.forward_speed for r in standing])
        wz, wz_ci = mean_ci([r.yaw_rate for r in standing])
        episodes = range(i * episodes_per_command, (i + 1) * episodes_per_command)
        # Gait quality per command, over every episode's scored samples as the overall figures
        # pool them: where a controller's slip or low steps come from (turning, speed, backing).
        command_slips = [v for k in episodes for v in slips.get(k, [])]
        command_clearances = [v for k in episodes for v in clearances.get(k, [])]
        command_chatters = [chatters.get(k, (0, 0)) for k in episodes]
        rows.append(
            {
                "command_vx": float(vx_cmd),
                "command_wz": float(wz_cmd),
                "vx": vx,
                "wz": wz,
                "ci95_vx": vx_ci,
                "ci95_wz": wz_ci,
                "falls": len(runs) - len(standing),
                "episodes": len(runs),
                "fell": len(standing) < len(runs),
                "stance_slip_mps": float(np.mean(command_slips)) if command_slips else float("nan"),
                "stance_samples": len(command_slips),
                "median_clearance_mm": float(np.median(command_clearances) * 1000)
                if command_clearances
                else float("nan"),
                "swings": len(command_clearances),
                "chatter_per_foot_s": chatter_rate(
                    sum(c for c, _ in command_chatters), sum(n for _, n in command_chatters)
                ),
            }
        )
    vx_err, vx_ci = mean_ci(vx_errors)
    wz_err, wz_ci = mean_ci(wz_errors)
    quality = GaitMeter.pooled([meters[slot] for slot in sorted(meters)]).summary()
    return {
        "commands": rows,
        "episodes": len(commands) * episodes_per_command,
        "falls": sum(r["falls"] for r in rows),
        "mean_abs_vx_error": vx_err,
        "ci95_abs_vx_error": vx_ci,
        "mean_abs_wz_error": wz_err,
        "ci95_abs_wz_error": wz_ci,
        "median_clearance_mm": quality["median_clearance_mm"],
        "mean_stance_slip_mps": quality["mean_stance_slip_mps"],
        "chatter_per_foot_s": quality["chatter_per_foot_s"],
        "low_g_percent": quality["low_g_percent"],
        "longest_low_g_s": quality["longest_low_g_s"],
        "max_lift_mean_mps2": quality["max_lift_mean_mps2"],
        "lift_trips": quality["lift_trips"],
        "cost_of_transport": cot_power / cot_weight_speed if cot_weight_speed > 0 else float("nan"),
        "seconds": seconds,
        "settle_seconds": settle_seconds,
        "randomize": randomize,
        "seed": seed,
    }


def keyboard_falls(
    controller: Controller,
    randomize: bool = False,
    seconds: float = 8.0,
    seed: int = 0,
    settle_seconds: float = TRACKING_SETTLE_S,
    episodes_per_command: int = 2,
    env_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Falls over every command keyboard_teleop can send (``teleop_commands``: 90 with its default
    steps), ``episodes_per_command`` episodes each, by default on the nominal robot ``sim_node``
    runs: the commands a user drives with, the top speed among them, which the tracking grid
    samples lightly. A policy that passed the grid fell at (0.3, 0) there every time
    (docs/ABLATIONS.md, twenty-fifth session). Returns the command count, episodes, falls and
    the commands (vx, wz) with a fall."""
    result = evaluate_tracking(
        controller,
        teleop_commands(),
        seconds=seconds,
        randomize=randomize,
        seed=seed,
        settle_seconds=settle_seconds,
        episodes_per_command=episodes_per_command,
        env_kwargs=env_kwargs,
    )
    return {
        "commands": len(result["commands"]),
        "episodes": result["episodes"],
        "seconds": seconds,
        "falls": result["falls"],
        "fell_at": [[r["command_vx"], r["command_wz"]] for r in result["commands"] if r["falls"]],
    }


def format_commands(commands: Sequence[Sequence[float]]) -> str:
    """(vx, wz) commands as "(+0.30, +0.00), ..." (m/s, rad/s): how the keyboard check's
    falls read in the report, on the console and in bench_deploy_gap."""
    return ", ".join(f"({vx:+.2f}, {wz:+.2f})" for vx, wz in commands)


def tracking_table(results: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown: one summary row per controller, then achieved (vx, wz) per command."""
    lines = [
        "| controller | mean abs vx error (m/s) | mean abs wz error (rad/s) | falls | median swing clearance (mm) "
        f"| mean stance slip (m/s) | chatter (flights < {MIN_SWING_S * 1000:g} ms per foot and s) "
        "| cost of transport | low g (% of time) | longest low g (s) "
        f"| lift test: largest {LIFT_WINDOW_S:g} s mean (m/s^2) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        # Results saved before the low-g metrics (older evaluations) have none.
        low_g, longest = r.get("low_g_percent", float("nan")), r.get("longest_low_g_s", float("nan"))
        lift, trips = r.get("max_lift_mean_mps2", float("nan")), r.get("lift_trips", 0)  # the same, lift test
        chatter = r.get("chatter_per_foot_s", float("nan"))  # the same, chatter
        lines.append(
            f"| {name} | {r['mean_abs_vx_error']:.3f} | {r['mean_abs_wz_error']:.3f} | {r['falls']}/{r['episodes']} "
            f"| {r['median_clearance_mm']:.1f} | {r['mean_stance_slip_mps']:.3f} | {chatter:.2f} "
            f"| {r['cost_of_transport']:.2f} "
            f"| {low_g:.1f} | {longest:.3f}{' **(hw_node: free fall)**' if longest >= FREEFALL_S else ''} "
            f"| {lift:.2f}{f' **(hw_node: picked up, {trips}x)**' if trips else ''} |"
        )
    names = list(results)
    lines += ["", "| command (vx m/s, wz rad/s) | " + " | ".join(f"{n}: vx, wz" for n in names) + " |"]
    lines.append("|---|" + "---|" * len(names))
    first = results[names[0]]["commands"]
    for i, row in enumerate(first):
        cells = []
        for name in names:
            r = results[name]["commands"][i]
            cells.append(f"{r['vx']:+.3f}, {r['wz']:+.2f}" + (f" ({r['falls']} fell)" if r["falls"] else ""))
        lines.append(f"| {row['command_vx']:+.2f}, {row['command_wz']:+.1f} | " + " | ".join(cells) + " |")
    if all("chatter_per_foot_s" in results[name]["commands"][0] for name in names):  # older results: none
        lines += ["", *_quality_by_command(results)]
    return lines


def _quality_by_command(results: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown: stance slip, swing clearance and chatter per command and controller, to tell a
    gait that slides everywhere from one that slides only where it turns or hurries."""
    names = list(results)
    lines = [
        "| command (vx m/s, wz rad/s) | "
        + " | ".join(f"{n}: stance slip (m/s), clearance (mm), chatter (per foot and s)" for n in names)
        + " |",
        "|---|" + "---|" * len(names),
    ]
    for i, row in enumerate(results[names[0]]["commands"]):
        cells = [
            f"{r['stance_slip_mps']:.3f}, {r['median_clearance_mm']:.1f}, {r['chatter_per_foot_s']:.2f}"
            for r in (results[name]["commands"][i] for name in names)
        ]
        lines.append(f"| {row['command_vx']:+.2f}, {row['command_wz']:+.1f} | " + " | ".join(cells) + " |")
    return lines
