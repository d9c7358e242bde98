"""pidog-sysid: identify the simulator's physical parameters from the robot's own bags (issue 14).

pidog-sysid BAG... --out robot_params.yaml [--plot fit.png] [--population 16] [--generations 30]

1. Each bag (rosbag2, from ``bag_recorder`` while ``pidog-excite`` drives the robot) becomes a
   50 Hz series on the IMU's clock: the recorded ``/imu/data`` (gyro, gravity direction from the
   orientation, acceleration), the ``/joint_commands`` target in effect for the control step
   that produced each IMU sample, and the ``/joint_states`` estimate.
2. Short windows (``--window-s``, default 1 s) where the robot moves and nothing is missing
   are cut out. Each window is re-synchronised: the simulated robot starts from the recorded
   joint estimate and attitude, feet on the floor, settles there for ``PREROLL_STEPS`` with its
   candidate parameters (the servos sag under the load), then runs with the recorded commands
   already in its latency queue.
3. CMA-ES (the ``cma`` package) searches servo strength, servo speed, latency (integer steps),
   torso mass and foot friction, and with ``--fit ... contact_timeconst`` how softly the floor
   takes the feet (the contact time constant). Every generation is ONE batched simulation
   (``pidog_sim.batch.BatchSim``): robot ``c * W + w`` runs candidate ``c`` on window ``w``, all
   in C on every core. The cost is the mean squared residual of gyro, gravity direction and
   acceleration (each normalised by the recorded signal's spread); the gyro bias is solved in
   closed form per candidate (the mean gyro residual). Servo speed has its own stage: a profile
   over speed on the windows where a command step reaches the limit of a searched speed
   (``pidog-excite``'s squat snaps), the other parameters at their fit (see SPEED_GRID_STEP);
   then those are refined once more with the snaps in and the speed held (REFINE_*), and the
   speed is profiled again.
4. Output (``pidog_sim.robot_params`` file): values, uncertainties (one standard deviation of
   CMA-ES's final search distribution: how far the data let the parameter move), fit quality
   (R² and RMS per signal), the correlations between parameters, the pairs the data could not
   separate (|correlation| >= 0.7, e.g. strength and mass) with their better-determined ratio,
   the parameters the data do not determine at all (``not_determined``: servo speed when its
   profile stays flat to the top of the search, e.g. because the fitted strength's torque-speed
   curve already caps the joints below the limit: ``speed_cap_of_strength``), and a plot of
   recorded vs simulated traces.
   Uncertainties are at least the spread of the candidates that fit within ``NEAR_TOLERANCE``
   of the best (``near_best``): the cost surface has separate narrow minima.

A fit that did not converge (CMA-ES stopped at ``--generations`` with a wide distribution)
says so and writes nothing unless ``--accept-unconverged``.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from pidog_description import JOINT_NAMES, STAND_POSE
from pidog_description.messages import (
    imu_from_msg,
    joint_command_from_msg,
    joint_positions_from_msg,
)
from pidog_description.robot import N_JOINTS, SERVO_MAX_SPEED
from pidog_description.rotations import tilt_from_quaternion
from pidog_description.spec import CONTROL_DT, gravity_from_quaternion, seconds_to_steps
from pidog_description.topics import (
    IMU_FRAME_ID,
    IMU_TOPIC,
    JOINT_COMMANDS_TOPIC,
    JOINT_STATES_TOPIC,
    TOPIC_TYPES,
)
from pidog_sim.config import CONTACT_TIMECONST_BOUNDS

from .bag_import import BagImportError, _messages_in_file_order, _open_reader, deserialize

SYSID_TOPICS = (JOINT_COMMANDS_TOPIC, IMU_TOPIC, JOINT_STATES_TOPIC)
# Parameters searched and their search box (the file's BOUNDS are wider: what is plausible).
SEARCH: dict[str, tuple[float, float]] = {
    "servo_strength": (0.3, 2.0),
    "servo_speed": (0.5, 1.6),
    "latency_steps": (0.0, 4.0),
    "mass_scale": (0.5, 2.0),
    "friction": (0.3, 1.5),
    # s, the feet's contact time constant (pidog_sim.config nominal.contact_timeconst): how far a
    # foot sinks and springs back. Fitted only when asked (--fit ... contact_timeconst): with the
    # mass and latency known it comes back within 2 %, but with everything free one more dimension cost the
    # search accuracy (14 % off at the model's own 20 ms; docs/SYSID.md, "The floor's contact").
    "contact_timeconst": (CONTACT_TIMECONST_BOUNDS[0], 0.05),
}
DEFAULT_FIT: tuple[str, ...] = tuple(n for n in SEARCH if n != "contact_timeconst")
SPAN = 4.0  # CMA-ES coordinates: every parameter mapped to [0, SPAN]; latency maps 1:1 to steps
HISTORY = int(SEARCH["latency_steps"][1]) + 1
SETTLE_STEPS = 10  # first steps of a window not scored (the unknown start state fades)
WEIGHTS = {"gyro": 1.0, "gravity": 1.0, "accel": 0.5}
SEPARATION_CORRELATION = 0.7
CALM_STEPS = 20  # windows start where the commands rested over this many steps (0.4 s)
# A window starts "from rest" when its commands did not change over those CALM_STEPS and the
# recorded gyro stayed within this band: the robot stood still, so the simulator can start
# exactly where it is. Such windows need no predictability screen (see screen_windows), and a
# fit on them is unbiased where windows started mid-motion biased it (docs/SYSID.md).
REST_COMMAND_TOL = 1e-4  # rad, summed over CALM_STEPS
REST_GYRO_PTP = 0.15  # rad/s, each axis: chosen, not measured on a real robot's IMU noise
# With this many windows from rest, only they are fitted: windows started mid-motion carry
# velocities the robot does not report, and biased the fit toward a heavier, stronger robot
# (docs/SYSID.md, Accuracy). Older bags without rests fall back to the screened windows.
MIN_RESTED_WINDOWS = 4
MAX_WINDOWS = 10  # default; a 60 s bag has ~21 from rest: 10 (+ 6 snaps) fit it within 2 min on 2 cores
TRIM_FRACTION = 0.25  # of the windows, the worst fitting for each candidate, not scored
MAX_GAP_S = 0.1
MAX_TILT_RAD = 0.35  # a window where the body tilts further than this (20°) is not fitted
# Window screening: a window is kept only if its simulated IMU traces forget an unknown start
# (body and joints already moving, which the IMU and the joint estimate cannot tell) within
# SETTLE_STEPS. Contact-switching motions (steps, trot, lifts) often do not: their outcome then
# hinges on state nobody recorded, and their residuals would swamp the parameters' effect.
PERTURB_BODY_RATE = 0.3  # rad/s
PERTURB_JOINT_RATE = 0.5  # rad/s
PRUNE_AFTER = 5  # generations before latencies far behind the best are dropped
PRUNE_RATIO = 2.0  # ... when their best cost is this many times the best
LATENCY_TOLERANCE = 0.2  # latencies within this relative cost of the best count as plausible
# Candidates within this relative cost of the best count as fitting as well. The cost surface
# of contact-rich windows is rugged (separate narrow minima), so CMA-ES's final distribution,
# which describes one minimum only, understates how far the parameters can move: the
# uncertainty reported is the larger of the two.
NEAR_TOLERANCE = 0.1
# Servo speed is fitted on its own (a profile over this grid, every other parameter at its fit)
# on the windows from rest where a command step reaches the speed limit of a searched speed:
# pidog-excite's squat snaps. Everything else is fitted on the windows where no searched speed
# changes anything, so the two fits cannot pull on each other.
SPEED_GRID_STEP = 0.05
MIN_SPEED_WINDOWS = 2
MAX_SPEED_WINDOWS = 6
# After the speed's stage, the other parameters are refined once more with the snap windows in
# and the speed held at its fit: a local search from the first fit (CMA-ES step REFINE_SIGMA in
# its [0, SPAN] coordinates). The snaps are where a strong robot's servos saturate: without them
# a strength 1.1 robot came out +50 %, with them within 1 % (docs/SYSID.md).
REFINE_SIGMA = 0.3
REFINE_GENERATIONS = 10
REFINE_POPULATION = 8  # at most: a local search (it keeps a 60 s bag under 2 min)
PREROLL_STEPS = 10  # steps a re-synchronised robot settles at its start pose (see simulate)
MAX_DIVERGENCE = 0.1  # RMS trace difference after settling, in units of the recorded spread


class SysidError(ValueError):
    """Nothing to identify from (all bags unusable) or a bad option; the message says why."""


@dataclass
class Series:
    """One bag on the IMU's 50 Hz clock."""

    name: str
    commands: np.ndarray  # (T, 8) target in effect for the step that produced sample k
    joints: np.ndarray  # (T, 8) joint estimate at sample k
    quat: np.ndarray  # (T, 4)
    gyro: np.ndarray  # (T, 3)
    accel: np.ndarray  # (T, 3)
    ok: np.ndarray  # (T,) bool


@dataclass
class Windows:
    """W windows of L steps; sample -1 (index 0 of ``joints``/``quat``) is the start state."""

    source: list[tuple[str, int]]  # (bag name, first sample)
    history: np.ndarray  # (W, HISTORY, 8): commands at samples s-1, s-2, ...
    commands: np.ndarray  # (W, L, 8)
    start_joints: np.ndarray  # (W, 8)
    start_quat: np.ndarray  # (W, 4)
    gyro: np.ndarray  # (W, L, 3)
    gravity: np.ndarray  # (W, L, 3)
    accel: np.ndarray  # (W, L, 3)
    rested: np.ndarray  # (W,) bool: started from rest (see REST_COMMAND_TOL)

    @property
    def n(self) -> int:
        return len(self.source)


@dataclass
class LoadReport:
    used: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


# --- reading bags --------------------------------------------------------------------------------


def _decode_topic(items: list[tuple[int, bytes]], topic: str, decoder) -> tuple[np.ndarray, list, Counter]:
    """Decoded messages of one topic in time order, timed by their header stamps.

    The stamp is when the sample was taken; the bag's log time is when the recorder received
    it, which on a use_sim_time recorder may read one control step early or late (a tick's
    sensors and its /clock travel separately). A message without a stamp (0) keeps its log time.
    """
    times: list[int] = []
    values: list = []
    errors: Counter[str] = Counter()
    for log_time, raw in items:
        try:
            msg = deserialize(raw, TOPIC_TYPES[topic])
            values.append(decoder(msg))
        except Exception as exc:  # SerdeError, MessageError
            values.append(None)
            errors[str(exc).split(";")[0][:120]] += 1
            times.append(log_time)
            continue
        stamp = getattr(getattr(msg, "header", None), "stamp", None)
        ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec) if stamp is not None else 0
        times.append(ns if ns > 0 else log_time)
    order = np.argsort(np.array(times, dtype=np.int64), kind="stable")
    return np.array(times, dtype=np.int64)[order], [values[i] for i in order], errors


def read_series(path: str | Path) -> Series:
    """A bag -> ``Series``; BagImportError names the bag and what is wrong with it."""
    path = Path(path)
    reader = _open_reader(path)
    try:
        counts: Counter[str] = Counter()
        for conn in reader.connections:
            counts[conn.topic] += conn.msgcount
        missing = [t for t in (JOINT_COMMANDS_TOPIC, IMU_TOPIC) if counts[t] == 0]
        if missing:
            raise BagImportError(f"bag {path} has no messages on {missing}: nothing to identify from")
        wanted = {t for t in SYSID_TOPICS if counts[t]}
        items: dict[str, list] = {t: [] for t in SYSID_TOPICS}
        for topic, t_ns, raw in _messages_in_file_order(reader, wanted):
            items[topic].append((t_ns, raw))
    finally:
        reader.close()
    imu_t, imu_v, imu_err = _decode_topic(items[IMU_TOPIC], IMU_TOPIC, imu_from_msg)
    cmd_t, cmd_v, cmd_err = _decode_topic(
        items[JOINT_COMMANDS_TOPIC], JOINT_COMMANDS_TOPIC, joint_command_from_msg
    )
    js_t, js_v, _ = _decode_topic(items[JOINT_STATES_TOPIC], JOINT_STATES_TOPIC, joint_positions_from_msg)
    if all(v is None for v in cmd_v):
        reason = cmd_err.most_common(1)[0][0] if cmd_err else "unreadable"
        raise BagImportError(f"bag {path}: no usable /joint_commands ({reason}); another robot?")
    if all(v is None for v in imu_v):
        reason = imu_err.most_common(1)[0][0] if imu_err else "unreadable"
        raise BagImportError(f"bag {path}: no usable /imu/data ({reason})")

    # The IMU clock, resampled to the control rate (hw_node may publish the IMU faster).
    grid = np.arange(imu_t[0], imu_t[-1] + 1, int(round(CONTROL_DT * 1e9)), dtype=np.int64)
    nearest = np.clip(np.searchsorted(imu_t, grid), 0, len(imu_t) - 1)
    before = np.clip(nearest - 1, 0, len(imu_t) - 1)
    pick = np.where(np.abs(imu_t[before] - grid) < np.abs(imu_t[nearest] - grid), before, nearest)
    n = len(grid)
    quat, gyro, accel = np.full((n, 4), np.nan), np.full((n, 3), np.nan), np.full((n, 3), np.nan)
    ok = np.abs(imu_t[pick] - grid) <= CONTROL_DT * 0.5e9
    for k, j in enumerate(pick):
        if imu_v[j] is None:
            ok[k] = False
        else:
            quat[k], gyro[k], accel[k] = imu_v[j]

    def latest(times: np.ndarray, values: list, fill: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        out = np.full((n, N_JOINTS), np.nan)
        good = np.zeros(n, dtype=bool)
        idx = np.searchsorted(times, grid, side="right") - 1 if len(times) else np.full(n, -1)
        for k, j in enumerate(idx):
            if j >= 0 and values[j] is not None and (grid[k] - times[j]) <= MAX_GAP_S * 1e9:
                out[k], good[k] = values[j], True
        if fill is not None and not good.any():
            out[:], good[:] = fill, True
        return out, good

    commands, cmd_ok = latest(cmd_t, cmd_v, None)
    # Without /joint_states the commanded target stands in for the estimate (like hw_node's).
    joints, js_ok = latest(js_t, js_v, None)
    if not js_ok.any():
        joints, js_ok = commands.copy(), cmd_ok.copy()
    ok &= cmd_ok & js_ok & np.isfinite(gyro).all(1) & np.isfinite(accel).all(1)
    return Series(path.name, commands, joints, quat, gyro, accel, ok)


def _rested(s: Series, speed: np.ndarray) -> np.ndarray:
    """(T,) bool: the CALM_STEPS + 1 samples before k are valid, the commands did not move over
    them (``speed``, summed steps) and the recorded gyro stayed within REST_GYRO_PTP."""
    n, span = len(s.ok), CALM_STEPS + 1
    out = np.zeros(n, dtype=bool)
    if n <= span:
        return out
    gyro = np.lib.stride_tricks.sliding_window_view(np.nan_to_num(s.gyro, nan=np.inf), span, axis=0)
    ok = np.lib.stride_tricks.sliding_window_view(s.ok, span).all(axis=1)
    still = (gyro.max(axis=2) - gyro.min(axis=2)).max(axis=1) <= REST_GYRO_PTP  # window [k-span, k)
    out[span:] = (ok & still)[: n - span] & (speed[span:] <= REST_COMMAND_TOL)
    return out


def cut_windows(
    series: list[Series], window_steps: int, max_windows: int, min_motion_rad: float = 0.02
) -> Windows:
    """Non-overlapping windows with HISTORY valid samples before them and motion in them."""
    found: list[tuple[float, Series, int, bool]] = []
    for s in series:
        start = max(HISTORY, CALM_STEPS + 1)  # the calm before a window is judged on its full length
        # Command speed over the steps before each sample: a window starting where the targets
        # rested lets the joints catch up with the estimate the robot reports (no encoders).
        speed = np.zeros(len(s.ok))
        step = np.abs(np.diff(s.commands, axis=0)).max(axis=1)
        for lag in range(1, CALM_STEPS + 1):
            speed[lag + 1 :] += step[: len(step) - lag]
        rested_at = _rested(s, speed)
        while start + window_steps <= len(s.ok):
            search = np.arange(start, min(start + window_steps, len(s.ok) - window_steps + 1))
            # The first start from rest if there is one (after a burst the body rings on a little
            # after the commands stop), else where the commands moved least.
            calm = search[rested_at[search]]
            start = (
                int(calm[0])
                if calm.size
                else int(search[np.argmin(np.nan_to_num(speed[search], nan=np.inf))])
            )
            span = slice(start - HISTORY, start + window_steps)
            if s.ok[span].all():
                motion = float(np.ptp(s.commands[start : start + window_steps], axis=0).max())
                # A robot that tipped over (servos too slow for the trot, a bump) cannot be
                # re-synchronised standing: its windows are not fitted.
                tilt = tilt_from_quaternion(s.quat[start - 1 : start + window_steps])
                upright = float(np.max(tilt)) <= MAX_TILT_RAD
                if motion >= min_motion_rad and upright:
                    found.append((motion, s, start, bool(rested_at[start])))
                start += window_steps
            else:
                start += 1
    if not found:
        raise SysidError(
            f"no window of {window_steps * CONTROL_DT:.2f} s with motion and without gaps in the bags"
        )
    if len(found) > max_windows:  # spread over the recording(s): every k-th
        keep = np.linspace(0, len(found) - 1, max_windows).round().astype(int)
        found = [found[i] for i in keep]
    hist = np.arange(1, HISTORY + 1)
    return Windows(
        source=[(s.name, st) for _, s, st, _ in found],
        history=np.stack([s.commands[st - hist] for _, s, st, _ in found]),
        commands=np.stack([s.commands[st : st + window_steps] for _, s, st, _ in found]),
        start_joints=np.stack([s.joints[st - 1] for _, s, st, _ in found]),
        start_quat=np.stack([s.quat[st - 1] for _, s, st, _ in found]),
        gyro=np.stack([s.gyro[st : st + window_steps] for _, s, st, _ in found]),
        gravity=np.stack([gravity_from_quaternion(s.quat[st : st + window_steps]) for _, s, st, _ in found]),
        accel=np.stack([s.accel[st : st + window_steps] for _, s, st, _ in found]),
        rested=np.array([r for _, _, _, r in found], dtype=bool),
    )


def load_bags(paths: list[str | Path], min_seconds: float) -> tuple[list[Series], LoadReport]:
    report = LoadReport()
    series = []
    for p in paths:
        try:
            s = read_series(p)
        except BagImportError as exc:
            report.skipped[str(p)] = str(exc)
            continue
        if s.ok.sum() * CONTROL_DT < min_seconds:
            report.skipped[str(p)] = (
                f"too short: {s.ok.sum() * CONTROL_DT:.1f} s of usable data (< {min_seconds:g} s)"
            )
            continue
        moving = np.ptp(s.commands[s.ok], axis=0).max() if s.ok.any() else 0.0
        if not moving > 0.02:
            report.skipped[str(p)] = (
                "no motion: the commanded joints never move (run pidog-excite while recording)"
            )
            continue
        series.append(s)
        report.used.append(str(p))
    return series, report


# --- the batched objective -----------------------------------------------------------------------


class Objective:
    """Cost of candidate parameter sets; one ``BatchSim`` of population x windows robots."""

    def __init__(
        self, windows: Windows, population: int, threads: int | None = None, trim: float = TRIM_FRACTION
    ) -> None:
        from pidog_sim.batch import BatchSim

        self.w = windows
        self.pop = population
        self.trim = trim
        self.sim = BatchSim(
            population * windows.n,
            randomize=False,
            config={"randomization": {"latency_steps": (0, HISTORY - 1)}},
            threads=threads,
        )
        sim = self.sim
        self.default_friction = float(sim._nominal_friction[0, 0])
        self.stand_foot_z = self._stand_foot_height()
        rec = {"gyro": windows.gyro, "gravity": windows.gravity, "accel": windows.accel}
        self.scale = {k: max(float(np.std(v[:, SETTLE_STEPS:])), 1e-3) for k, v in rec.items()}

    def _stand_foot_height(self) -> float:
        """Lowest foot height of a robot that settled standing (where re-synchronised feet go)."""
        sim = self.sim
        sim.reset(np.arange(sim.n))
        for _ in range(25):
            sim.step(np.tile(STAND_POSE, (sim.n, 1)))
        return float(sim.foot_positions()[0, :, 2].min())

    def apply(self, values: dict[str, np.ndarray]) -> None:
        """Per-robot parameters (arrays of length n) written after a reset."""
        sim = self.sim
        sim.latency_steps[:] = values["latency_steps"].astype(np.int64)
        sim.servo_max_speed[:] = SERVO_MAX_SPEED * values["servo_speed"][:, None]
        sim.gyro_bias[:] = 0.0
        sim.set_physics(
            np.arange(sim.n),
            values["mass_scale"],
            values["servo_strength"][:, None],
            friction=values["friction"],
            contact_timeconst=values.get("contact_timeconst"),  # absent: the model's
        )

    def simulate(
        self, values: dict[str, np.ndarray], perturb: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Run every robot on its window; (pop, W, L, 3) gyro, gravity, accel, and unstable (pop, W)."""
        sim, w = self.sim, self.w
        n, nw = sim.n, w.n
        rows = np.arange(n)
        win = rows % nw
        sim.reset(rows, seeds=rows, initial_pose=w.start_joints[win])
        self.apply(values)
        # Attitude from the IMU's orientation (yaw irrelevant), feet on the floor, queue filled.
        sim.qpos[:, 3:7] = w.start_quat[win]
        for i in rows:
            sim.sync_data(int(i), sim._aux)
            feet_z = sim._aux.sensordata[sim._foot_pos_cols].reshape(4, 3)[:, 2]
            sim.qpos[i, 2] += self.stand_foot_z - feet_z.min()
        settle_unstable = np.zeros(n, dtype=bool)
        if PREROLL_STEPS:
            # Settle each candidate at its start pose first: a position servo sags under the
            # load by an amount that depends on strength and mass, which the joint estimate
            # (the servo's target) does not show; starting unsagged would add a
            # parameter-dependent transient that no recorded state matches.
            sim._history[:] = w.start_joints[win][:, None, :]
            for _ in range(PREROLL_STEPS):
                settle_unstable |= sim.step(w.start_joints[win])
        sim._history[:] = w.history[win]  # [:, j]: the command j steps before the first
        if perturb is not None:  # an unknowable start: body and joints already moving
            sim.qvel[perturb, 3:5] += PERTURB_BODY_RATE
            sim.state[np.ix_(perturb, sim.joint_qvel_cols)] += PERTURB_JOINT_RATE * np.resize(
                [1.0, -1.0], N_JOINTS
            )
        L = w.commands.shape[1]
        out = {k: np.zeros((n, L, 3)) for k in ("gyro", "gravity", "accel")}
        unstable = settle_unstable
        for k in range(L):
            unstable |= sim.step(w.commands[win, k])
            quat, gyro, accel = sim.imu()
            out["gyro"][:, k], out["accel"][:, k] = gyro, accel
            out["gravity"][:, k] = gravity_from_quaternion(quat)
        shape = (self.pop, nw, L, 3)
        res: dict[str, np.ndarray] = {k: v.reshape(shape) for k, v in out.items()}
        res["unstable"] = unstable.reshape(self.pop, nw)
        return res

    def costs(self, values: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(pop,) costs, (pop, 3) gyro biases and the simulated traces."""
        sim = self.simulate(values)
        w = self.w
        s = slice(SETTLE_STEPS, None)
        bias = (w.gyro[None, :, s] - sim["gyro"][:, :, s]).mean(axis=(1, 2))  # (pop, 3)
        sim["gyro"] = sim["gyro"] + bias[:, None, None, :]
        per_window = np.zeros((self.pop, w.n))
        for key, weight in WEIGHTS.items():
            rec = getattr(w, key)[None, :, s]
            err = (rec - sim[key][:, :, s]) / self.scale[key]
            per_window += weight * np.mean(err**2, axis=(2, 3))
        per_window /= sum(WEIGHTS.values())
        # Least trimmed squares: each candidate is scored on its best windows. A window whose
        # contacts switch chaotically (a foot lifts or slips on a hard burst) is far off even at
        # the true parameters and would otherwise pull the whole fit toward whatever fits it.
        keep = max(1, w.n - int(self.trim * w.n))
        cost = np.sort(per_window, axis=1)[:, :keep].mean(axis=1)
        cost[sim["unstable"].any(axis=1) | ~np.isfinite(cost)] = 1e6
        return cost, bias, sim

    def close(self) -> None:
        self.sim.close()


def _subset(w: Windows, keep: list[int]) -> Windows:
    arrays = [f.name for f in fields(Windows) if f.name != "source"]
    return Windows(source=[w.source[i] for i in keep], **{k: getattr(w, k)[keep] for k in arrays})


def _concat(a: Windows, b: Windows) -> Windows:
    arrays = [f.name for f in fields(Windows) if f.name != "source"]
    return Windows(
        source=a.source + b.source, **{k: np.concatenate([getattr(a, k), getattr(b, k)]) for k in arrays}
    )


def speed_binds_below_each(windows: Windows) -> np.ndarray:
    """(W,) per window: the servo-speed scale below which the speed limit acts in it.

    The servo model (``pidog_description.servo.rate_limit``) only moves a target slower than
    it was commanded when one control step asks for more than ``speed * SERVO_MAX_SPEED * dt``.
    A candidate speed at or above a window's scale produces exactly the same simulated traces
    as any faster one: that window cannot tell those speeds apart.
    """
    start = windows.start_joints[:, None, :]
    path = np.concatenate([start, windows.history[:, ::-1], windows.commands], axis=1)
    largest = np.abs(np.diff(path, axis=1)).max(axis=(1, 2)) if path.shape[1] > 1 else np.zeros(windows.n)
    # Any queued command may be the first one the servo sees from its start (latency).
    largest = np.maximum(largest, np.abs(windows.history - start).max(axis=(1, 2)))
    return largest / (SERVO_MAX_SPEED * CONTROL_DT)


def speed_binds_below(windows: Windows) -> float:
    """The servo-speed scale below which the speed limit acts anywhere in ``windows``."""
    return float(speed_binds_below_each(windows).max()) if windows.n else 0.0


def speed_cap_of_strength(strength: float) -> float:
    """The servo-speed scale above which a servo of this strength never meets its speed limit.

    The model's servos have a linear torque-speed curve (joint damping = stall torque / no-load
    speed, ``models/pidog.xml``): at ``strength`` x the stall torque a joint cannot turn faster
    than ``strength`` x its no-load speed, however far its target runs ahead. A speed limit above
    that never acts, so no excitation can tell such speeds apart (a weak servo's speed is
    unobservable in this model; it would take a servo whose firmware limits speed below what its
    torque allows).
    """
    from pidog_sim.model import load_model

    model = load_model(None)
    joint = int(model.actuator_trnid[0, 0])
    no_load = float(model.actuator_forcerange[0, 1]) / float(model.dof_damping[model.jnt_dofadr[joint]])
    return strength * no_load / SERVO_MAX_SPEED


def speed_not_determined(fitted: float, strength: float, speed_bound: float) -> dict[str, Any] | None:
    """``not_determined`` entry for a fitted servo speed the data cannot pin down, else None.

    A speed at or above ``speed_bound`` (the windows' largest command step never reaches its
    limit) or above the strength's torque-speed cap (``speed_cap_of_strength``: the joints never
    get that fast) leaves every trace unchanged, so any faster speed fits as well.
    """
    torque_cap = speed_cap_of_strength(strength)
    bound = min(speed_bound, torque_cap)
    if fitted < bound:
        return None
    if torque_cap < speed_bound:
        why = (
            f"at strength {strength:.2f} the servos' torque-speed curve caps the joints at "
            f"{torque_cap:.2f} x the model's speed, so the fitted speed limit {fitted:.2f} never acts"
        )
    else:
        why = f"the fitted speed {fitted:.2f} never reaches the limit in the windows"
    return {
        "at_least": round(bound, 3),
        "reason": f"{why}: every speed above {bound:.2f} x the model's fits as well",
    }


def speed_profile(
    windows: Windows, at: dict[str, float], threads: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Cost of every servo speed on a SPEED_GRID_STEP grid over the search box, the other
    parameters held ``at`` their fit: one batch, each grid speed on each window. Not trimmed:
    the snap windows are few, and each is what tells the speed."""
    lo, hi = SEARCH["servo_speed"]
    grid = np.round(np.arange(lo, hi + 1e-9, SPEED_GRID_STEP), 4)
    obj = Objective(windows, len(grid), threads, trim=0.0)
    try:
        values = {k: np.full(len(grid) * windows.n, float(at[k])) for k in SEARCH}
        values["servo_speed"] = np.repeat(grid, windows.n)
        cost, _, _ = obj.costs(values)
    finally:
        obj.close()
    return grid, cost


def speed_from_profile(
    grid: np.ndarray, cost: np.ndarray, strength: float
) -> tuple[dict[str, float] | None, dict[str, Any] | None]:
    """(parameter entry, None) where the profile has a minimum; (None, ``not_determined``
    entry) where it stays within NEAR_TOLERANCE of its best all the way to the top of the
    search: every faster speed fits as well (a weak servo's torque-speed curve, or no step
    fast enough, keeps the limit from acting)."""
    best = int(np.argmin(cost))
    near = grid[cost <= (1.0 + NEAR_TOLERANCE) * cost[best]]
    if near.max() >= grid[-1] - 1e-9:
        torque_cap = speed_cap_of_strength(strength)
        why = f"the speed profile is flat from {near.min():.2f} to the top of the search ({grid[-1]:.2f})"
        if torque_cap < grid[-1]:
            why += (
                f"; at strength {strength:.2f} the torque-speed curve caps the joints at {torque_cap:.2f} x"
            )
        return None, {
            "at_least": round(float(near.min()), 3),
            "reason": f"{why}: every speed above {near.min():.2f} x the model's fits as well",
        }
    value = float(grid[best])
    if 0 < best < len(grid) - 1:  # vertex of the parabola through the best point and its neighbours
        c0, c1, c2 = cost[best - 1 : best + 2]
        curvature = c0 - 2.0 * c1 + c2
        if curvature > 0:
            value += 0.5 * SPEED_GRID_STEP * float(c0 - c2) / float(curvature)
    return {
        "value": value,
        "uncertainty": round(float(max(SPEED_GRID_STEP / 2, np.abs(near - value).max())), 6),
    }, None


def screen_windows(
    windows: Windows, fixed: dict[str, float], max_windows: int, threads: int | None
) -> tuple[Windows, np.ndarray]:
    """Keep the windows (at most ``max_windows``, spread out) whose simulated traces forget an
    unknown start (see MAX_DIVERGENCE); SysidError if none does."""
    obj = Objective(windows, 2, threads)
    try:
        fixed = {**fixed, "friction": obj.default_friction}
        n = obj.sim.n
        values = {k: np.full(n, float(v)) for k, v in fixed.items()}
        perturb = np.arange(n) >= windows.n  # candidate 1: the same, started moving
        sim = obj.simulate(values, perturb)
    finally:
        obj.close()
    s = slice(SETTLE_STEPS, None)
    divergence = np.zeros(windows.n)
    for key in ("gyro", "gravity", "accel"):
        diff = (sim[key][0, :, s] - sim[key][1, :, s]) / obj.scale[key]
        divergence = np.maximum(divergence, np.sqrt(np.mean(diff**2, axis=(1, 2))))
    unstable = sim["unstable"].any(axis=0)
    divergence[unstable] = np.inf
    # A window that starts from rest has a known start (the robot stood still): it needs no
    # screen. The others must forget an unknown start within the first SETTLE_STEPS.
    good = np.flatnonzero((windows.rested & ~unstable) | (divergence <= MAX_DIVERGENCE))
    if windows.rested[good].sum() >= MIN_RESTED_WINDOWS:
        good = good[windows.rested[good]]
    if good.size == 0:
        raise SysidError(
            f"none of {windows.n} windows is predictable from the recorded start (divergence "
            f"min {divergence.min():.2f} > {MAX_DIVERGENCE}): record pidog-excite's squats and rocking"
        )
    if good.size > max_windows:
        good = good[np.linspace(0, good.size - 1, max_windows).round().astype(int)]
    return _subset(windows, good.tolist()), divergence


# --- CMA-ES --------------------------------------------------------------------------------------


def _to_values(x: np.ndarray, names: list[str], fixed: dict[str, float], n_rep: int) -> dict[str, np.ndarray]:
    """(pop, d) CMA coordinates -> per-robot parameter arrays (each candidate repeated n_rep times)."""
    x = np.atleast_2d(x)
    out: dict[str, np.ndarray] = {}
    for name in SEARCH:
        if name in names:
            lo, hi = SEARCH[name]
            v = lo + np.clip(x[:, names.index(name)], 0.0, SPAN) / SPAN * (hi - lo)
            if name == "latency_steps":
                v = np.round(v)
        else:
            v = np.full(len(x), fixed[name])
        out[name] = np.repeat(v, n_rep)
    return out


def _physical(x: np.ndarray, names: list[str]) -> np.ndarray:
    """CMA coordinates -> parameter values (latency left continuous, for statistics)."""
    x = np.atleast_2d(x)
    lo = np.array([SEARCH[n][0] for n in names])
    hi = np.array([SEARCH[n][1] for n in names])
    return lo + np.clip(x, 0.0, SPAN) / SPAN * (hi - lo)


@dataclass
class _Search:
    blocks: dict[int, Any]  # latency -> its CMA-ES
    best_cost: dict[int, float]  # latency -> best cost found
    tried: dict[int, list[tuple[np.ndarray, np.ndarray]]]  # latency -> [(candidates, costs)]
    history: list[float]


def _cma_search(
    windows: Windows,
    names: list[str],
    fixed: dict[str, float],
    latencies: list[int],
    x0: list[float],
    sigma0: float,
    population: int,
    generations: int,
    seed: int,
    threads: int | None,
    progress: bool,
    desc: str = "pidog-sysid",
) -> _Search:
    """One CMA-ES per latency over ``names`` (CMA coordinates, from ``x0``), all in one batch per
    generation; latencies far behind the best are dropped after PRUNE_AFTER generations."""
    import cma

    opts = {
        "popsize": population,
        "bounds": [0.0, SPAN],
        "verbose": -9,
        "maxiter": generations,
        "tolfun": 1e-4,
        "tolx": 2e-3,
    }
    blocks = {
        lat: cma.CMAEvolutionStrategy(x0, sigma0, {**opts, "seed": seed * 10 + lat + 1}) for lat in latencies
    }
    best_cost = dict.fromkeys(latencies, np.inf)
    active = list(latencies)
    obj: Objective | None = None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=generations, desc=desc, unit="gen")
    history = []
    tried: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {lat: [] for lat in latencies}
    try:
        for gen in range(generations):
            active = [lat for lat in active if not blocks[lat].stop()]
            if not active:
                break
            if obj is None or obj.pop != population * len(active):
                if obj is not None:
                    obj.close()
                obj = Objective(windows, population * len(active), threads)
            xs = {lat: blocks[lat].ask() for lat in active}
            values = _to_values(
                np.concatenate([np.array(xs[lat]) for lat in active]), names, fixed, windows.n
            )
            values["latency_steps"] = np.repeat(np.repeat(np.array(active, float), population), windows.n)
            cost, _, _ = obj.costs(values)
            for j, lat in enumerate(active):
                blocks[lat].tell(xs[lat], cost[j * population : (j + 1) * population].tolist())
                tried[lat].append(
                    (np.array(xs[lat])[:, : len(names)], cost[j * population : (j + 1) * population])
                )
                best_cost[lat] = float(blocks[lat].result.fbest)
            overall = min(best_cost.values())
            if gen + 1 >= PRUNE_AFTER:
                active = [lat for lat in active if best_cost[lat] <= PRUNE_RATIO * overall]
            history.append(overall)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(cost=f"{overall:.4f}", latencies=len(active))
    finally:
        if bar is not None:
            bar.close()
        if obj is not None:
            obj.close()
    return _Search(blocks, best_cost, tried, history)


@dataclass
class _SpeedFit:
    entry: dict[str, float] | None  # the parameter, where the profile has a minimum
    not_determined: dict[str, Any] | None  # else the bound and why
    profile: dict[float, float]  # speed -> cost

    @property
    def held(self) -> float:
        """The speed to simulate at: the fit, or the top of the search where only a lower
        bound is known (every speed above it gives the same traces)."""
        return self.entry["value"] if self.entry is not None else SEARCH["servo_speed"][1]


def _speed_stage(
    speed_windows: Windows,
    xbest: np.ndarray,
    names: list[str],
    fixed: dict[str, float],
    latency: int,
    threads: int | None,
) -> _SpeedFit:
    """The speed profile on the snap windows at the candidate ``xbest``."""
    at = {k: float(v[0]) for k, v in _to_values(xbest[None], names, fixed, 1).items()}
    at["latency_steps"] = float(latency)
    grid, profile = speed_profile(speed_windows, at, threads)
    costs = {float(g): round(float(c), 6) for g, c in zip(grid, profile, strict=True)}
    return _SpeedFit(*speed_from_profile(grid, profile, at["servo_strength"]), costs)


@dataclass
class FitResult:
    parameters: dict[str, dict[str, Any]]
    fit: dict[str, Any]
    converged: bool
    windows: Windows
    simulated: dict[str, np.ndarray]  # best candidate's traces (W, L, 3)
    # Every candidate CMA-ES evaluated at the best latency: parameter values and cost.
    candidates: dict[str, np.ndarray] = field(default_factory=dict)


def identify(
    bags: list[str | Path],
    fit: tuple[str, ...] = DEFAULT_FIT,
    population: int = 16,
    generations: int = 30,
    window_s: float = 1.0,
    max_windows: int = MAX_WINDOWS,
    seed: int = 0,
    threads: int | None = None,
    progress: bool = True,
    min_seconds: float = 2.0,
    known: dict[str, float] | None = None,
) -> FitResult:
    """Fit the parameters in ``fit`` to the bags; the rest stay at the simulator's defaults or
    at ``known`` values (measured otherwise: e.g. the mass from a kitchen scale)."""
    unknown = [n for n in fit if n not in SEARCH]
    if unknown or not fit:
        raise SysidError(f"parameters to fit must be among {list(SEARCH)}, got {list(fit)}")
    if population < 4:
        raise SysidError(f"--population must be at least 4, got {population}")
    if generations < 1:
        raise SysidError(f"--generations must be positive, got {generations}")
    series, report = load_bags(bags, min_seconds)
    for bag, why in report.skipped.items():
        print(f"pidog-sysid: skipped {bag}: {why}", file=sys.stderr)
    if not series:
        raise SysidError("no usable bag: " + "; ".join(f"{b}: {w}" for b, w in report.skipped.items()))
    window_steps = max(SETTLE_STEPS + 5, seconds_to_steps(window_s))
    candidates = cut_windows(series, window_steps, 8 * max_windows)
    fixed = {"servo_strength": 1.0, "servo_speed": 1.0, "latency_steps": 0.0, "mass_scale": 1.0}
    for name, value in (known or {}).items():
        if name not in SEARCH or name in fit:
            raise SysidError(f"--known {name}: must be one of {list(SEARCH)} and not also fitted")
        lo, hi = SEARCH[name]
        if not (np.isfinite(value) and lo <= value <= hi):
            raise SysidError(f"--known {name}={value}: outside [{lo}, {hi}]")
        fixed[name] = float(value)
    # Servo speed on its own windows (see SPEED_GRID_STEP), when the bags have enough of them.
    speed_windows: Windows | None = None
    if "servo_speed" not in (known or {}):
        each = speed_binds_below_each(candidates)
        binds = np.flatnonzero(candidates.rested & (each > SEARCH["servo_speed"][0]))
        if "servo_speed" in fit and binds.size >= MIN_SPEED_WINDOWS:
            if binds.size > MAX_SPEED_WINDOWS:
                binds = binds[np.linspace(0, binds.size - 1, MAX_SPEED_WINDOWS).round().astype(int)]
            speed_windows = _subset(candidates, binds.tolist())
            fit = tuple(n for n in fit if n != "servo_speed")
        no_speed = np.flatnonzero(each <= SEARCH["servo_speed"][0])
        if "servo_speed" not in fit and no_speed.size:
            # Where an unknown speed could act, a fit that holds it at a guess would be misled.
            candidates = _subset(candidates, no_speed.tolist())
    windows, divergence = screen_windows(candidates, fixed, max_windows, threads)
    screened_out = candidates.n - windows.n
    # Servo speed only shows where a step asks for more than the speed limit allows; if no
    # window does that for any speed in the search box, the data say nothing about it: it is
    # left out of the fit and reported as not determined (never as a confident value).
    speed_bound = speed_binds_below(windows)
    not_determined: dict[str, dict[str, Any]] = {}
    if "servo_speed" in fit and speed_bound < SEARCH["servo_speed"][0]:
        fit = tuple(n for n in fit if n != "servo_speed")
        not_determined["servo_speed"] = {
            "at_least": round(speed_bound, 3),
            "reason": (
                f"no command step in the {windows.n} windows reaches the servo speed limit for any speed "
                f"above {speed_bound:.2f} x the model's: speed leaves the traces unchanged; record "
                "faster motions (pidog-excite's stepping and trot) in predictable windows"
            ),
        }
        if not fit:
            raise SysidError(
                f"servo_speed cannot be determined from these bags: {not_determined['servo_speed']['reason']}"
            )
    from pidog_sim.model import contact_timeconst, floor_friction, load_model

    model = load_model(None)
    if "friction" not in (known or {}):
        fixed["friction"] = floor_friction(model)
    if "contact_timeconst" not in (known or {}):
        fixed["contact_timeconst"] = contact_timeconst(model)
    # Latency is a whole number of steps: one CMA-ES per latency value over the continuous
    # parameters, all of them in the same batch; latencies far behind are dropped on the way.
    names = [n for n in SEARCH if n in fit and n != "latency_steps"]
    if "latency_steps" in fit:
        latencies = list(range(int(SEARCH["latency_steps"][1]) + 1))
    else:  # held: --known, or the simulator's default
        latencies = [int(round(fixed["latency_steps"]))]
    dims = len(names) + max(0, 2 - len(names))  # CMA-ES needs two dimensions: pad with dummies
    x0 = [(fixed[n] - SEARCH[n][0]) / (SEARCH[n][1] - SEARCH[n][0]) * SPAN for n in names]
    x0 += [SPAN / 2] * (dims - len(names))
    search = _cma_search(
        windows, names, fixed, latencies, x0, 1.0, population, generations, seed, threads, progress
    )
    best_cost = search.best_cost
    best_lat = min(best_cost, key=best_cost.__getitem__)
    # The speed's stage, then a local refinement of the rest with the snaps in (see REFINE_*).
    speed: _SpeedFit | None = None
    if speed_windows is not None:
        xbest = np.asarray(search.blocks[best_lat].result.xbest)
        speed = _speed_stage(speed_windows, xbest, names, fixed, best_lat, threads)
        fixed["servo_speed"] = speed.held
        windows = _concat(windows, speed_windows)
    if speed is not None and names:
        assert speed_windows is not None  # speed was fitted on them
        refined = _cma_search(
            windows,
            names,
            fixed,
            [best_lat],
            list(xbest),
            REFINE_SIGMA,
            min(population, REFINE_POPULATION),
            REFINE_GENERATIONS,
            seed,
            threads,
            progress,
            desc="pidog-sysid refine",
        )
        # Uncertainties and correlations below come from this last search; the latency profile
        # stays the first one's.
        search = _Search(refined.blocks, search.best_cost, refined.tried, search.history + refined.history)
        xbest = np.asarray(search.blocks[best_lat].result.xbest)
        speed = _speed_stage(speed_windows, xbest, names, fixed, best_lat, threads)
        fixed["servo_speed"] = speed.held
    blocks, tried, history = search.blocks, search.tried, search.history
    es = blocks[best_lat]
    stop = dict(es.stop())
    xbest = np.asarray(es.result.xbest)
    obj = Objective(windows, 1, threads)
    values = _to_values(xbest[None], names, fixed, windows.n)
    values["latency_steps"] = np.full(windows.n, float(best_lat))
    cost, bias, sim = obj.costs(values)
    obj.close()
    best_sim = {k: sim[k][0] for k in ("gyro", "gravity", "accel")}

    # Uncertainty and correlations: CMA-ES's final distribution, in parameter units.
    d = len(names)
    cov_x = (es.sigma**2 * np.asarray(es.C))[:d, :d]
    lows = np.array([SEARCH[n][0] for n in names])
    highs = np.array([SEARCH[n][1] for n in names])
    scale = (highs - lows) / SPAN
    cov = cov_x * np.outer(scale, scale)
    std = np.sqrt(np.diag(cov))
    corr = cov / np.outer(std, std) if d else cov
    best = _physical(xbest[:d], names)[0] if d else np.zeros(0)
    # Every candidate (at the best latency) that fits nearly as well as the best one.
    tried_x = (
        np.concatenate([x for x, _ in tried[best_lat]]) if tried[best_lat] else xbest[None, : len(names)]
    )
    tried_cost = np.concatenate([c for _, c in tried[best_lat]]) if tried[best_lat] else np.array([cost[0]])
    tried_values = _physical(tried_x, names) if d else np.zeros((len(tried_cost), 0))
    near = tried_cost <= (1.0 + NEAR_TOLERANCE) * min(float(tried_cost.min()), float(cost[0]))
    near_values = np.vstack([tried_values[near], best[None]]) if d else tried_values[near]
    spread = np.abs(near_values - best).max(axis=0) if d else np.zeros(0)
    parameters: dict[str, dict[str, Any]] = {}
    for i, n in enumerate(names):
        parameters[n] = {
            "value": float(values[n][0]),
            "uncertainty": round(float(max(std[i], spread[i])), 6),
        }
    if "latency_steps" in fit:
        # Profile over the latencies: every one whose best fit is nearly as good is plausible.
        plausible = [
            lat for lat, c in best_cost.items() if c <= (1.0 + LATENCY_TOLERANCE) * best_cost[best_lat]
        ]
        parameters["latency_steps"] = {
            "value": int(best_lat),
            "uncertainty": float(max(0.5, max(abs(lat - best_lat) for lat in plausible))),
        }
    strength = (
        parameters["servo_strength"]["value"] if "servo_strength" in parameters else fixed["servo_strength"]
    )
    if "servo_speed" in parameters:
        bound_only = speed_not_determined(parameters["servo_speed"]["value"], strength, speed_bound)
        if bound_only is not None:  # fitted where the limit never acts: only a bound is known
            not_determined["servo_speed"] = bound_only
            del parameters["servo_speed"]
    if speed is not None:
        if speed.entry is not None:
            parameters["servo_speed"] = speed.entry
        else:
            assert speed.not_determined is not None  # speed_from_profile sets entry or not_determined
            not_determined["servo_speed"] = speed.not_determined
    parameters = {n: parameters[n] for n in SEARCH if n in parameters}
    parameters["imu_gyro_bias"] = {
        "value": [round(float(b), 6) for b in bias[0]],
        "uncertainty": round(
            float(
                np.std(windows.gyro[:, SETTLE_STEPS:] - best_sim["gyro"][:, SETTLE_STEPS:])
                / np.sqrt(windows.gyro[:, SETTLE_STEPS:].size / 3)
            ),
            6,
        ),
    }
    inseparable = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if abs(corr[i, j]) >= SEPARATION_CORRELATION:
                entry = {"parameters": [names[i], names[j]], "correlation": round(float(corr[i, j]), 3)}
                if corr[i, j] > 0 and best[j] > 0:  # they move together: the ratio is what is known
                    samples = np.random.default_rng(seed).multivariate_normal(best, cov, 2000)
                    ratio = samples[:, i] / np.maximum(samples[:, j], 1e-6)
                    near_ratio = near_values[:, i] / np.maximum(near_values[:, j], 1e-6)
                    entry["ratio"] = round(float(best[i] / best[j]), 4)
                    entry["ratio_uncertainty"] = round(
                        float(max(np.std(ratio), np.abs(near_ratio - best[i] / best[j]).max())), 4
                    )
                inseparable.append(entry)
    quality = {}
    s = slice(SETTLE_STEPS, None)
    for key in ("gyro", "gravity", "accel"):
        rec = getattr(windows, key)[:, s]
        err = rec - best_sim[key][:, s]
        sst = float(np.sum((rec - rec.mean(axis=(0, 1))) ** 2))
        quality[key] = {
            "rms": round(float(np.sqrt(np.mean(err**2))), 5),
            "r2": round(1.0 - float(np.sum(err**2)) / max(sst, 1e-12), 4),
        }
    converged = any(
        k in stop for k in ("tolfun", "tolx", "tolfunhist", "tolflatfitness", "tolstagnation")
    ) or bool(d and np.all(std / (highs - lows) < 0.03))
    fit_info = {
        "converged": bool(converged),
        "stop": {k: (v if isinstance(v, int | float | str) else str(v)) for k, v in stop.items()},
        "cost": round(float(cost[0]), 6),
        "generations": len(history),
        "evaluations": int(es.result.evaluations),
        "quality": quality,
        "correlation": {
            f"{names[i]}~{names[j]}": round(float(corr[i, j]), 3)
            for i in range(len(names))
            for j in range(i + 1, len(names))
        },
        "not_separable": inseparable,
        "fitted": [n for n in SEARCH if n in parameters],
        "not_determined": not_determined,
        "near_best": {
            "tolerance": NEAR_TOLERANCE,
            "candidates": int(near.sum()),
            "range": {
                n: [round(float(near_values[:, i].min()), 4), round(float(near_values[:, i].max()), 4)]
                for i, n in enumerate(names)
            },
        },
        "latency_profile": {int(lat): round(float(c), 6) for lat, c in best_cost.items()},
        "speed_profile": speed.profile if speed is not None else {},
        "speed_windows": 0 if speed_windows is None else speed_windows.n,
        "bags": report.used,
        "skipped": report.skipped,
        "windows": len(windows.source),
        "windows_from_rest": int(windows.rested.sum()),
        "windows_screened_out": int(screened_out),
        "window_s": round(windows.commands.shape[1] * CONTROL_DT, 3),
    }
    evaluated = {n: tried_values[:, i] for i, n in enumerate(names)}
    evaluated["cost"] = tried_cost
    return FitResult(parameters, fit_info, bool(converged), windows, best_sim, evaluated)


# --- plot ----------------------------------------------------------------------------------------


def plot_fit(result: FitResult, path: str | Path, max_windows: int = 6) -> Path:
    """Recorded vs simulated gyro, gravity direction and acceleration, windows side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .atomic import atomic_output

    w = result.windows
    k = min(max_windows, w.n)
    shown = np.linspace(0, w.n - 1, k).round().astype(int)  # spread: the speed's snaps come last
    L = w.commands.shape[1]
    t = np.arange(k * L) * CONTROL_DT
    fig, axes = plt.subplots(3, 3, figsize=(14, 8), sharex=True)
    for row, (key, unit) in enumerate((("gyro", "rad/s"), ("gravity", "unit"), ("accel", "m/s²"))):
        rec = getattr(w, key)[shown].reshape(-1, 3)
        sim = result.simulated[key][shown].reshape(-1, 3)
        for col, axis in enumerate("xyz"):
            ax = axes[row, col]
            ax.plot(t, rec[:, col], "k-", lw=1, label="recorded")
            ax.plot(t, sim[:, col], "r-", lw=1, alpha=0.8, label="simulated")
            for j in range(1, k):
                ax.axvline(j * L * CONTROL_DT, color="0.8", lw=0.5)
            ax.set_title(f"{key} {axis} ({unit})", fontsize=9)
    axes[0, 0].legend(fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("window time, concatenated (s)")
    q = result.fit["quality"]
    fig.suptitle(
        "pidog-sysid: "
        + ", ".join(f"{n}={v['value']:.3g}" for n, v in result.parameters.items() if n != "imu_gyro_bias")
        + " | R² "
        + ", ".join(f"{key} {q[key]['r2']:.2f}" for key in q),
        fontsize=9,
    )
    fig.tight_layout()
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=80, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


# --- CLI -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pidog-sysid", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "bags", nargs="+", metavar="BAG", help="rosbag2 recordings (pidog-excite + bag_recorder)"
    )
    parser.add_argument("--out", type=Path, required=True, help="robot parameters file to write (YAML)")
    parser.add_argument(
        "--plot", type=Path, default=None, help="recorded vs simulated plot (default: OUT.png)"
    )
    parser.add_argument(
        "--fit",
        nargs="+",
        default=list(DEFAULT_FIT),
        choices=list(SEARCH),
        help=f"parameters to fit (default: {' '.join(DEFAULT_FIT)})",
    )
    parser.add_argument(
        "--known",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="parameters measured otherwise, held fixed (e.g. mass_scale=1.1 from weighing the robot)",
    )
    parser.add_argument("--population", type=int, default=16, help="CMA-ES candidates per generation")
    parser.add_argument("--generations", type=int, default=30, help="at most this many generations")
    parser.add_argument("--window-s", type=float, default=1.0, help="re-synchronised window length, s")
    parser.add_argument(
        "--max-windows", type=int, default=MAX_WINDOWS, help="windows used (spread over the bags)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="physics threads (default: every core)")
    parser.add_argument(
        "--accept-unconverged", action="store_true", help="write the file even if CMA-ES did not converge"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    from pidog_sim import robot_params

    known = {}
    for item in args.known:
        name, _, text = item.partition("=")
        try:
            known[name.strip()] = float(text)
        except ValueError:
            parser.error(f"--known expects NAME=VALUE with a number, got {item!r}")
    args.fit = [n for n in args.fit if n not in known]
    try:
        result = identify(
            args.bags,
            known=known,
            fit=tuple(args.fit),
            population=args.population,
            generations=args.generations,
            window_s=args.window_s,
            max_windows=args.max_windows,
            seed=args.seed,
            threads=args.threads,
            progress=not args.no_progress,
        )
    except SysidError as exc:
        print(f"pidog-sysid: error: {exc}", file=sys.stderr)
        return 2
    fit = result.fit
    print(
        f"  fitted {fit['windows']} windows of {fit['window_s']:g} s, {fit['windows_from_rest']} of them "
        f"started from rest, {fit['speed_windows']} of them squat snaps for the servo speed "
        f"({fit['windows_screened_out']} more were cut but not used: unpredictable from their start, "
        "started mid-motion where enough started from rest, or beyond --max-windows)"
    )
    for name, entry in result.parameters.items():
        print(f"  {name:<15} {entry['value']}  ± {entry['uncertainty']}")
    for key, q in result.fit["quality"].items():
        print(f"  fit {key:<8} R² {q['r2']:.3f}  RMS {q['rms']:.4f}")
    for name, entry in result.fit["not_determined"].items():
        print(f"  {name:<15} not determined (at least {entry['at_least']} x the model's): {entry['reason']}")
    for entry in result.fit["not_separable"]:
        ratio = f"; their ratio {entry['ratio']} ± {entry['ratio_uncertainty']}" if "ratio" in entry else ""
        print(
            f"  not separable: {' and '.join(entry['parameters'])} (correlation {entry['correlation']}){ratio}"
        )
    plot = args.plot or args.out.with_suffix(".png")
    plot_fit(result, plot)
    print(f"wrote {plot}")
    if not result.converged and not args.accept_unconverged:
        print(
            f"pidog-sysid: the fit did not converge in {result.fit['generations']} generations "
            f"(stopped: {sorted(result.fit['stop'])}); nothing written to {args.out}. Record more motion, "
            "raise --generations, or pass --accept-unconverged",
            file=sys.stderr,
        )
        return 3
    robot_params.save(args.out, result.parameters, result.fit)
    print(f"wrote {args.out}{'' if result.converged else ' (NOT converged)'}")
    return 0


# --- simulated recordings (tests, benchmarks) ----------------------------------------------------


def simulate_bag(
    path: str | Path,
    targets: np.ndarray,
    sim_config: dict[str, Any] | None = None,
    seed: int = 0,
    storage: str = "mcap",
    topics: tuple[str, ...] = SYSID_TOPICS,
    joint_names: tuple[str, ...] = tuple(JOINT_NAMES),
) -> Path:
    """Drive ``sim_node``'s simulator (``PiDogSim``, nominal values from ``sim_config``) with
    ``targets`` and write what the recorder would: /joint_commands at each tick and, after the
    step, /joint_states and /imu/data (as sim_node publishes them), as a rosbag2 bag."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from pidog_control.bag_format import TYPESTORE as TS
    from pidog_sim.sim import PiDogSim

    sim = PiDogSim(randomize=False, config=sim_config)
    sim.reset(np.random.default_rng(seed))
    t0 = 1_700_000_000_000_000_000
    dt_ns = int(round(CONTROL_DT * 1e9))
    Header, Time = TS.types["std_msgs/msg/Header"], TS.types["builtin_interfaces/msg/Time"]
    JointState, Imu = TS.types["sensor_msgs/msg/JointState"], TS.types["sensor_msgs/msg/Imu"]
    Quaternion, Vector3 = TS.types["geometry_msgs/msg/Quaternion"], TS.types["geometry_msgs/msg/Vector3"]

    def header(t: int, frame: str = "") -> Any:
        return Header(stamp=Time(sec=t // 10**9, nanosec=t % 10**9), frame_id=frame)

    def joint_state(t: int, q: np.ndarray) -> Any:
        empty = np.zeros(0)
        return JointState(
            header=header(t),
            name=list(joint_names),
            position=np.asarray(q, float),
            velocity=empty,
            effort=empty,
        )

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    cov = np.zeros(9)
    with Writer(Path(path), version=Writer.VERSION_LATEST, storage_plugin=plugin) as writer:
        conns = {t: writer.add_connection(t, TOPIC_TYPES[t], typestore=TS) for t in topics}

        def write(topic: str, t: int, msg: Any) -> None:
            if topic in conns:
                writer.write(conns[topic], t, bytes(TS.serialize_cdr(msg, TOPIC_TYPES[topic])))

        for k, target in enumerate(np.asarray(targets, dtype=np.float64)):
            t = t0 + k * dt_ns
            write(JOINT_COMMANDS_TOPIC, t, joint_state(t, target))
            sim.step(target)
            q, gyro, accel = sim.imu()
            tp = t + 2_000_000  # published 2 ms after the command arrived
            write(JOINT_STATES_TOPIC, tp, joint_state(tp, sim.joint_estimate()))
            imu = Imu(
                header=header(tp, IMU_FRAME_ID),
                orientation=Quaternion(x=float(q[1]), y=float(q[2]), z=float(q[3]), w=float(q[0])),
                orientation_covariance=cov,
                angular_velocity=Vector3(x=float(gyro[0]), y=float(gyro[1]), z=float(gyro[2])),
                angular_velocity_covariance=cov,
                linear_acceleration=Vector3(x=float(accel[0]), y=float(accel[1]), z=float(accel[2])),
                linear_acceleration_covariance=cov,
            )
            write(IMU_TOPIC, tp, imu)
    sim.batch.close()
    return Path(path)


if __name__ == "__main__":
    sys.exit(main())
