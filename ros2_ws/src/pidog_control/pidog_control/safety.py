"""The policy node's safety layer: what may reach ``/joint_commands`` and when (no ROS node in here).

One state per control tick, in priority order:

``estop``                /estop is true: command nothing (the driver decides hold or limp).
``waiting_for_sensors``  no joint state and IMU sample yet: we do not know the pose.
``stale_sensors``        a sensor fell silent for longer than ``sensor_timeout_s``: hold.
``fallen``               roll or pitch beyond ``max_tilt_rad``: stop the policy and hold.
``soft_start``           ramp from the measured pose to the stand pose over ``soft_start_s``.
``no_policy``            (only when following the learning node) stand until a policy arrives.
``standing``             (with ``stand_after_s`` > 0) the command has been zero that long: ramp to
                         the stand pose over ``soft_start_s`` and hold it instead of treading in
                         place; the next non-zero command hands back to the policy.
``running``              the policy commands the joints.

Whatever the state, commands pass through ``ServoModel`` (the same one the sim and the
hardware use): clamped to joint limits, rate-limited to the servo speed, NaN replaced by hold.
Leaving ``estop``, ``stale_sensors`` or ``fallen`` always goes through a new soft start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import cast

import numpy as np

from pidog_description.kinematics import STAND_POSE
from pidog_description.servo import ServoModel
from pidog_description.spec import CONTROL_DT, roll_pitch_from_gravity
from pidog_description.topics import ESTOP_TOPIC, IMU_TOPIC, JOINT_STATES_TOPIC


class SafetyState(StrEnum):
    WAITING = "waiting_for_sensors"
    SOFT_START = "soft_start"
    RUNNING = "running"
    STALE = "stale_sensors"
    FALLEN = "fallen"
    ESTOP = "estop"
    NO_POLICY = "no_policy"
    STANDING = "standing"


class SafetyConfigError(ValueError):
    """An invalid safety setting; the message names the parameter."""


@dataclass(frozen=True)
class SafetyConfig:
    dt: float = CONTROL_DT  # s, control period
    soft_start_s: float = 1.0
    sensor_timeout_s: float = 0.25  # s of wall time without a valid message
    max_tilt_rad: float = 0.8
    fall_recovery_s: float = 2.0  # upright this long ends a fall stop (with a soft start)
    # A zero command held this long stands the robot still (the policy treads in place at
    # (0, 0), as trained); 0 never does.
    stand_after_s: float = 0.0

    def __post_init__(self) -> None:
        _require(
            self.dt > 0 and math.isfinite(self.dt),
            "rate_hz",
            "must be positive",
            1.0 / self.dt if self.dt else math.inf,
        )
        _require(0 <= self.soft_start_s <= 30, "soft_start_s", "must be within [0, 30] s", self.soft_start_s)
        _require(
            0 < self.sensor_timeout_s <= 10,
            "sensor_timeout_s",
            "must be within (0, 10] s",
            self.sensor_timeout_s,
        )
        _require(
            0 < self.max_tilt_rad <= math.pi, "max_tilt_rad", "must be within (0, pi] rad", self.max_tilt_rad
        )
        _require(
            0 <= self.fall_recovery_s <= 600,
            "fall_recovery_s",
            "must be within [0, 600] s",
            self.fall_recovery_s,
        )
        _require(
            0 <= self.stand_after_s <= 3600, "stand_after_s", "must be within [0, 3600] s", self.stand_after_s
        )


def _require(ok: bool, name: str, rule: str, value: float) -> None:
    # `not ok` also catches NaN, for which every comparison is False.
    if not ok:
        raise SafetyConfigError(f"parameter '{name}' {rule}, got {value}")


@dataclass
class SensorTimes:
    """Wall-clock (monotonic, s) receive times of the last *valid* sensor messages."""

    joints: float | None = None
    imu: float | None = None

    def stale(self, now: float, timeout: float) -> list[str]:
        """Names of the sensors older than ``timeout`` (empty when all are fresh)."""
        out = []
        if self.joints is not None and now - self.joints > timeout:
            out.append(f"{JOINT_STATES_TOPIC} ({now - self.joints:.2f} s old)")
        if self.imu is not None and now - self.imu > timeout:
            out.append(f"{IMU_TOPIC} ({now - self.imu:.2f} s old)")
        return out

    def ever_received(self) -> bool:
        return self.joints is not None and self.imu is not None


class SafetyLayer:
    """Decides the state each tick and turns the policy's target into the commanded pose."""

    def __init__(self, config: SafetyConfig) -> None:
        self.config = config
        self.state = SafetyState.WAITING
        self.reason = "no /joint_states and /imu/data yet"
        self._servo: ServoModel | None = None
        self._ramp_from = STAND_POSE.copy()
        self._ticks_in_state = 0
        self._upright_ticks = 0
        self._idle_ticks = 0

    # --- state -------------------------------------------------------------------------------
    def update(
        self,
        now: float,
        times: SensorTimes,
        joint_pos: np.ndarray | None,
        gravity: np.ndarray | None,
        estop: bool,
        have_policy: bool,
        command_is_zero: bool = False,
    ) -> SafetyState:
        """Advance one control tick and return the state for it.

        ``command_is_zero``: the operator's velocity command is (0, 0) this tick.
        """
        self._ticks_in_state += 1
        self._idle_ticks = self._idle_ticks + 1 if command_is_zero else 0
        if estop:
            return self._enter(SafetyState.ESTOP, f"{ESTOP_TOPIC} is true")
        if not times.ever_received() or joint_pos is None or gravity is None:
            missing = [
                n for n, t in ((JOINT_STATES_TOPIC, times.joints), (IMU_TOPIC, times.imu)) if t is None
            ]
            return self._enter(SafetyState.WAITING, f"no valid {' and '.join(missing)} yet")
        stale = times.stale(now, self.config.sensor_timeout_s)
        if stale:
            return self._enter(SafetyState.STALE, "no valid " + ", ".join(stale))
        roll, pitch = cast(tuple[float, float], roll_pitch_from_gravity(gravity))  # one robot: floats
        tilt = max(abs(roll), abs(pitch))
        if self.state == SafetyState.FALLEN:
            self._upright_ticks = self._upright_ticks + 1 if tilt < 0.5 * self.config.max_tilt_rad else 0
            if self._upright_ticks * self.config.dt < self.config.fall_recovery_s:
                return self.state
        elif tilt > self.config.max_tilt_rad:
            self._upright_ticks = 0
            return self._enter(
                SafetyState.FALLEN, f"tilt {tilt:.2f} rad (roll {roll:.2f}, pitch {pitch:.2f}) > max_tilt_rad"
            )
        if self.state in (SafetyState.WAITING, SafetyState.ESTOP, SafetyState.STALE, SafetyState.FALLEN):
            self._begin_soft_start(joint_pos)
        # The ramp's last tick (fraction 1) is still soft start; the policy takes the next one.
        if (
            self.state == SafetyState.SOFT_START
            and self._ticks_in_state * self.config.dt < self.config.soft_start_s + 1e-9
        ):
            return self.state
        if have_policy and self._stand_still():
            if self.state != SafetyState.STANDING:
                assert self._servo is not None  # every state past WAITING began with _begin_soft_start
                self._ramp_from = self._servo.position.copy()
            return self._enter(
                SafetyState.STANDING, f"command zero for {self.config.stand_after_s:g} s: standing still"
            )
        if have_policy:
            return self._enter(SafetyState.RUNNING, "policy in control")
        return self._enter(SafetyState.NO_POLICY, "standing: waiting for a policy on /learning/policy")

    def _stand_still(self) -> bool:
        stand_after = self.config.stand_after_s
        return stand_after > 0 and self._idle_ticks * self.config.dt >= stand_after - 1e-9

    def stale_check(self, now: float, times: SensorTimes) -> SafetyState:
        """Between ticks (e.g. when sim time stopped): mark silent sensors without commanding."""
        if self.state not in (SafetyState.ESTOP, SafetyState.WAITING, SafetyState.STALE):
            stale = times.stale(now, self.config.sensor_timeout_s)
            if stale:
                self._enter(SafetyState.STALE, "no valid " + ", ".join(stale))
        return self.state

    def _enter(self, state: SafetyState, reason: str) -> SafetyState:
        if state != self.state:
            self.state = state
            self._ticks_in_state = 0
        self.reason = reason
        return state

    def _begin_soft_start(self, joint_pos: np.ndarray) -> None:
        self._ramp_from = np.asarray(joint_pos, dtype=np.float64).copy()
        self._servo = ServoModel(self._ramp_from)
        self._enter(SafetyState.SOFT_START, f"ramping to the stand pose over {self.config.soft_start_s:g} s")
        self._ticks_in_state = 1

    # --- commands ----------------------------------------------------------------------------
    def command(self, policy_target: np.ndarray | None = None) -> np.ndarray | None:
        """The pose to publish this tick, or None for 'publish nothing'.

        ``policy_target`` is only used while running; a missing or non-finite target holds.
        """
        if self._servo is None or self.state in (SafetyState.ESTOP, SafetyState.WAITING):
            return None
        if self.state in (SafetyState.STALE, SafetyState.FALLEN):
            return self._servo.position.copy()  # hold: no new motion
        if self.state in (SafetyState.SOFT_START, SafetyState.STANDING):
            frac = (
                1.0
                if self.config.soft_start_s == 0
                else min(1.0, self._ticks_in_state * self.config.dt / self.config.soft_start_s)
            )
            target = self._ramp_from + frac * (STAND_POSE - self._ramp_from)
        elif self.state == SafetyState.NO_POLICY or policy_target is None:
            target = STAND_POSE if self.state == SafetyState.NO_POLICY else self._servo.position
        else:
            target = policy_target
        return self._servo.step(target, self.config.dt).copy()
