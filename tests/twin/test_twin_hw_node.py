"""Issue 17: hw_node's calibration and e-stop closed around the twin's physics (separate
processes over DDS, judged by the twin's ground truth on sim time).

Two hw_node runs on ``i2c_bus:=twin``, each: stand up, arm, command the stand pose, measure the
simulated joints, then /estop. Run A has no calibration offsets and ``estop_behavior: hold``;
run B has offsets written by ``pidog-calibrate set`` (as a user runs it) and ``estop_behavior:
limp``. The calibration test compares the joints of B with A; the e-stop test looks at how the
base height moves after the e-stop in each."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from nav_msgs.msg import Odometry
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool
from twin_graph import TWIN_HW_PARAMS

from pidog_description.kinematics import STAND_POSE
from pidog_description.messages import joint_positions_from_msg, joint_state_msg
from pidog_description.robot import JOINT_NAMES, SERVO_SIGNS, SERVO_STALL_TORQUE
from pidog_description.topics import (
    ESTOP_TOPIC,
    GROUND_TRUTH_JOINT_STATES_TOPIC,
    GROUND_TRUTH_ODOM_TOPIC,
    HW_ARM_SERVICE_NAME,
    HW_STATE_TOPIC_NAME,
    JOINT_COMMANDS_TOPIC,
    LATCHED_QOS,
    STREAM_QOS,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

# Servo degrees, as a user types them: one left and one right joint, so both mountings are seen.
OFFSETS_DEG = {"lf_knee": 8.0, "rh_hip": -6.0}
POSE_SETTLE_S = 1.0  # sim s after arming before the joints are measured
POSE_WINDOW_S = 0.5  # sim s of joint and height samples averaged
SERVO_KP = 10.0  # N m/rad, the twin's servo stiffness (models/pidog.xml, the nominal robot)
ESTOP_WINDOW_S = 2.0  # sim s after the e-stop; the height is judged over its last 0.5 s


@dataclass
class Run:
    joints: np.ndarray  # mean ground-truth joint positions (rad) while commanded to stand
    held: np.ndarray  # mean of position + effort / kp: where each servo holds its joint, unloaded
    saturated: np.ndarray  # per joint: its servo pushed at its torque limit (held is then a bound)
    stand_height: float  # mean ground-truth base height (m) over the same window
    estop_height: float  # mean base height over the last 0.5 s of the e-stop window
    estop_min_height: float  # lowest base height in the e-stop window

    def __str__(self) -> str:
        return (
            f"joints {np.round(self.joints, 4).tolist()}, servo-held {np.round(self.held, 4).tolist()}, "
            f"at torque limit {[n for n, s in zip(JOINT_NAMES, self.saturated, strict=True) if s]}, "
            f"height standing {self.stand_height:.3f} m, "
            f"after e-stop {self.estop_height:.3f} m (min {self.estop_min_height:.3f} m)"
        )


RUNS: dict[str, Run] = {}


class Truth:
    """Ground truth from the twin, on sim time: (t, base z) and (t, joint positions)."""

    def __init__(self, probe) -> None:
        self.height: list[tuple[float, float]] = []
        self.joints: list[tuple[float, np.ndarray]] = []
        self.held: list[tuple[float, np.ndarray]] = []
        self.effort: list[tuple[float, np.ndarray]] = []
        self.subscriptions = [
            probe.node.create_subscription(Odometry, GROUND_TRUTH_ODOM_TOPIC, self._on_odom, STREAM_QOS),
            probe.node.create_subscription(
                JointState, GROUND_TRUTH_JOINT_STATES_TOPIC, self._on_joints, STREAM_QOS
            ),
        ]

    @staticmethod
    def _t(msg) -> float:
        return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9

    def _on_odom(self, msg: Odometry) -> None:
        self.height.append((self._t(msg), msg.pose.pose.position.z))

    def _on_joints(self, msg: JointState) -> None:
        t, q = self._t(msg), joint_positions_from_msg(msg)
        self.joints.append((t, q))
        # The twin's servo is a position actuator (models/pidog.xml: kp 10 N m/rad): at rest its
        # torque is kp * (target - q), so q + effort / kp is the angle it holds its joint at
        # with the load taken off: what its pulse commands, independent of how the stance
        # loads it. (The ground truth's names are JOINT_NAMES, in order.)
        self.held.append((t, q + np.asarray(msg.effort) / SERVO_KP))
        self.effort.append((t, np.abs(np.asarray(msg.effort))))

    @property
    def now(self) -> float:
        return self.height[-1][0] if self.height else -1.0

    def heights(self, t0: float, t1: float) -> np.ndarray:
        return np.array([z for t, z in self.height if t0 <= t <= t1])

    def joint_mean(self, t0: float, t1: float, which: str = "joints") -> np.ndarray:
        samples = [q for t, q in getattr(self, which) if t0 <= t <= t1]
        assert len(samples) > 5, f"{len(samples)} ground-truth joint states in [{t0:.2f}, {t1:.2f}] s"
        return np.mean(samples, axis=0)


def run_hw_node(spawn_node, probe, tmp_path: Path, estop_behavior: str, calibration: Path | None) -> Run:
    params = {**TWIN_HW_PARAMS, "estop_behavior": estop_behavior}
    if calibration is not None:
        params["calibration_file"] = str(calibration)
    states: list[str] = []
    state_sub = probe.node.create_subscription(
        String, HW_STATE_TOPIC_NAME, lambda m: states.append(m.data), LATCHED_QOS
    )
    truth = Truth(probe)
    commands = probe.node.create_publisher(JointState, JOINT_COMMANDS_TOPIC, STREAM_QOS)
    estop = probe.node.create_publisher(Bool, ESTOP_TOPIC, LATCHED_QOS)
    sending = {"on": False}

    def send() -> None:
        if sending["on"]:
            commands.publish(joint_state_msg(probe.node.get_clock().now().to_msg(), STAND_POSE))

    timer = probe.node.create_timer(0.05, send)  # 20 Hz, like a teleop or policy stream
    hw = spawn_node("pidog_hw.hw_node", params)

    def spin_sim(seconds: float) -> float:
        """Spin until ``seconds`` of sim time passed (never wall time); the end time."""
        # Counted from the first ground truth, not from "-1 s" (none yet on a loaded machine).
        assert probe.spin_until(lambda: truth.height, 30), f"no ground truth\n{hw.log()}"
        t0 = truth.now
        assert probe.spin_until(lambda: truth.now >= t0 + seconds, 10 * seconds + 30), (
            f"sim time stalled at {truth.now:.2f} s\n{hw.log()}"
        )
        return truth.now

    assert probe.spin_until(lambda: states and states[-1] == "disarmed", 90), f"states {states}\n{hw.log()}"
    assert probe.spin_until(lambda: commands.get_subscription_count() > 0, 10), hw.log()
    arm = probe.node.create_client(SetBool, HW_ARM_SERVICE_NAME)
    assert arm.wait_for_service(timeout_sec=10), hw.log()
    sending["on"] = True
    future = arm.call_async(SetBool.Request(data=True))
    assert probe.spin_until(future.done, 10) and future.result().success, hw.log()
    t1 = spin_sim(POSE_SETTLE_S + POSE_WINDOW_S)
    joints = truth.joint_mean(t1 - POSE_WINDOW_S, t1)
    held = truth.joint_mean(t1 - POSE_WINDOW_S, t1, "held")
    saturated = truth.joint_mean(t1 - POSE_WINDOW_S, t1, "effort") > 0.97 * SERVO_STALL_TORQUE
    stand = float(truth.heights(t1 - POSE_WINDOW_S, t1).mean())
    sending["on"] = False
    estop.publish(Bool(data=True))
    assert probe.spin_until(lambda: states and states[-1] == "estop", 10), f"states {states}\n{hw.log()}"
    t_estop = truth.now
    t2 = spin_sim(ESTOP_WINDOW_S)
    after = truth.heights(t_estop, t2)
    run = Run(joints, held, saturated, stand, float(truth.heights(t2 - 0.5, t2).mean()), float(after.min()))
    hw.stop()
    # The latched /estop must not outlive this run: the next hw_node would start e-stopped.
    for sub in (state_sub, *truth.subscriptions):
        probe.node.destroy_subscription(sub)
    probe.node.destroy_publisher(estop)
    probe.node.destroy_publisher(commands)
    probe.node.destroy_timer(timer)
    return run


def reference(spawn_node, probe, tmp_path: Path) -> Run:
    """Run A: no offsets, e-stop holds."""
    if "hold" not in RUNS:
        RUNS["hold"] = run_hw_node(spawn_node, probe, tmp_path, "hold", None)
    return RUNS["hold"]


def calibrated(spawn_node, probe, tmp_path: Path) -> Run:
    """Run B: offsets from the calibration tool, e-stop goes limp."""
    if "limp" not in RUNS:
        path = tmp_path / "calibration.yaml"
        tool = subprocess.run(
            [sys.executable, "-m", "pidog_hw.calibrate", "--file", str(path), "set"]
            + [f"{joint}={deg:g}" for joint, deg in OFFSETS_DEG.items()],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert tool.returncode == 0, tool.stdout + tool.stderr
        RUNS["limp"] = run_hw_node(spawn_node, probe, tmp_path, "limp", path)
    return RUNS["limp"]


def test_calibration_offsets_shift_the_simulated_joints_by_the_offset(
    tmp_path: Path, spawn_node, ros_probe
) -> None:
    plain = reference(spawn_node, ros_probe, tmp_path)
    shifted = calibrated(spawn_node, ros_probe, tmp_path)
    report = f"no offsets: {plain}\noffsets {OFFSETS_DEG}: {shifted}"
    print(report)
    # Expected sign, from the hardware facts (pidog_description.servo): the driver sends
    # servo_deg = SERVO_SIGNS * deg(q) + offset, and a servo at servo_deg turns its joint to
    # mount_sign * servo_deg, where the mounting mirrors the right side exactly as SERVO_SIGNS
    # does. The twin's servos are assembled perfectly, so the offset (meant to cancel a
    # misplaced horn) moves the simulated joint by SERVO_SIGNS * rad(offset): + on the left,
    # - on the right (rh_hip's -6 deg shows as +6 deg of joint angle).
    expected = np.zeros(len(JOINT_NAMES))
    for joint, deg in OFFSETS_DEG.items():
        i = JOINT_NAMES.index(joint)
        expected[i] = SERVO_SIGNS[i] * np.deg2rad(deg)
    # A servo pushing at its torque limit no longer shows its target (q + effort / kp is then only
    # a bound): the shifted stance can overload one that carries more of the robot (seen: rh_knee
    # on a loaded machine, 3.5 deg of sag). The calibrated joints themselves must be judged.
    calibrated_joints = [JOINT_NAMES.index(joint) for joint in OFFSETS_DEG]
    judged = ~(plain.saturated | shifted.saturated)
    assert judged[calibrated_joints].all(), report
    # Without offsets the servos hold the commanded pose itself (within a tick; measured 0.15 deg).
    np.testing.assert_allclose(plain.held[judged], STAND_POSE[judged], atol=np.deg2rad(0.45), err_msg=report)
    # No more, no less: where the servos hold the joints moves by the offset on the calibrated
    # joints and not at all on the others, within one timer tick of pulse width (0.44 deg of
    # joint angle: each run's pulse is rounded to a tick on its own).
    np.testing.assert_allclose(
        (shifted.held - plain.held)[judged], expected[judged], atol=np.deg2rad(0.45), err_msg=report
    )
    # The calibrated joints themselves, loaded by a robot standing on them: the new stance moves
    # the load between the legs, and the servos (a stiff spring, not a rigid stop) give a little
    # (measured: off the expected shift by up to 1.4 deg, rh_hip), so this bound is 2.5 deg.
    np.testing.assert_allclose(
        (shifted.joints - plain.joints)[calibrated_joints],
        expected[calibrated_joints],
        atol=np.deg2rad(2.5),
        err_msg=report,
    )


def test_estop_limp_lets_the_robot_sag_and_hold_keeps_it_standing(
    tmp_path: Path, spawn_node, ros_probe
) -> None:
    hold = reference(spawn_node, ros_probe, tmp_path)
    limp = calibrated(spawn_node, ros_probe, tmp_path)
    report = f"hold: {hold}\nlimp: {limp}"
    print(report)
    for run in (hold, limp):
        assert run.stand_height > 0.08, f"not standing before the e-stop\n{report}"
    # hold: the servos keep their last pulses, the robot keeps standing.
    assert hold.estop_min_height > hold.stand_height - 0.01, report
    # limp: no pulses, no actuator stiffness: it sags to the ground.
    assert limp.estop_height < 0.6 * limp.stand_height, report
