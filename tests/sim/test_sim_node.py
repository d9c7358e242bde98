"""sim_node in its own process: topics, rates, sim-time stamps, commands by name, estop, reset, bad input."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from nav_msgs.msg import Odometry
from rclpy.duration import Duration
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from pidog_description import JOINT_NAMES, STAND_POSE
from pidog_description.messages import joint_state_msg
from pidog_description.spec import CONTROL_DT
from pidog_description.topics import (
    CLOCK_TOPIC,
    ESTOP_TOPIC,
    GROUND_TRUTH_ODOM_TOPIC,
    IMU_FRAME_ID,
    IMU_TOPIC,
    JOINT_COMMANDS_TOPIC,
    JOINT_STATES_TOPIC,
    LATCHED_QOS,
    SIM_RESET_SERVICE,
    STREAM_QOS,
)

pytestmark = pytest.mark.ros


class Topics:
    def __init__(self, probe) -> None:
        self.joint_states: list[tuple[float, JointState]] = []
        self.imu: list[tuple[float, Imu]] = []
        self.odom: list[Odometry] = []
        self.clock: list[Clock] = []
        node = probe.node
        node.create_subscription(
            JointState, JOINT_STATES_TOPIC, lambda m: self.joint_states.append((time.monotonic(), m)), 50
        )
        node.create_subscription(Imu, IMU_TOPIC, lambda m: self.imu.append((time.monotonic(), m)), 50)
        node.create_subscription(Odometry, GROUND_TRUTH_ODOM_TOPIC, self.odom.append, 50)
        node.create_subscription(Clock, CLOCK_TOPIC, self.clock.append, 50)


def reset_sim(probe) -> None:
    """Call /sim/reset and wait for its success."""
    client = probe.node.create_client(Trigger, SIM_RESET_SERVICE)
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    assert probe.spin_until(future.done, 10) and future.result().success


def stamp_s(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def per_sim_second(samples: list[tuple[float, object]]) -> float:
    """Messages per second of sim time (their stamps), over all but the first and last second.

    Counted on the sim's own time line, so a loaded machine that runs the sim slower than real
    time still sees one message per control step; a dropped or doubled message shows.
    """
    stamps = np.array([stamp_s(m) for _, m in samples])
    lo, hi = stamps[0] + 1.0, stamps[-1] - 1.0
    assert hi - lo >= 1.0, f"only {stamps[-1] - stamps[0]:.2f} s of sim time"
    return float(np.count_nonzero((stamps >= lo) & (stamps < hi)) / (hi - lo))


def test_sim_node_publishes_robot_topics_and_obeys_commands(spawn_node, ros_probe) -> None:
    node = spawn_node("pidog_sim.sim_node", {"randomize": False})
    topics = Topics(ros_probe)
    assert ros_probe.spin_until(lambda: len(topics.imu) > 20, 30), node.log()
    assert ros_probe.spin_until(lambda: stamp_s(topics.imu[-1][1]) - stamp_s(topics.imu[0][1]) > 4.0, 60)
    assert per_sim_second(topics.joint_states) == pytest.approx(1 / CONTROL_DT, abs=1.0)
    assert per_sim_second(topics.imu) == pytest.approx(1 / CONTROL_DT, abs=1.0)
    js = topics.joint_states[-1][1]
    assert list(js.name) == list(JOINT_NAMES)
    imu = topics.imu[-1][1]
    assert imu.header.frame_id == IMU_FRAME_ID
    assert imu.linear_acceleration.z == pytest.approx(9.81, abs=0.3)  # level robot, REP-103 z up
    assert imu.orientation_covariance[0] > 0 and len(topics.clock) > 10

    # Another process (this test) commands the knees down: the joints move by name.
    pub = ros_probe.node.create_publisher(JointState, JOINT_COMMANDS_TOPIC, STREAM_QOS)
    assert ros_probe.spin_until(lambda: pub.get_subscription_count() > 0, 10)  # discovered
    target = STAND_POSE.copy()
    target[1::2] -= 0.4
    shuffled = [7, 6, 5, 4, 3, 2, 1, 0]  # order must not matter, names do
    msg = joint_state_msg(
        ros_probe.node.get_clock().now().to_msg(), target[shuffled], names=[JOINT_NAMES[i] for i in shuffled]
    )
    for _ in range(25):
        pub.publish(msg)
        ros_probe.spin_for(0.02)
    ros_probe.spin_for(0.5)
    moved = np.array(topics.joint_states[-1][1].position)
    np.testing.assert_allclose(moved, target, atol=1e-6)  # servo-model estimate reached the target

    # Bad commands are rejected and the last valid target is held. A new target goes out once,
    # right before the bad ones: were a NaN target accepted, the servo model would freeze the
    # joints where they are (it holds on NaN) and the new target would never be reached.
    second = STAND_POSE.copy()
    second[0::2] += 0.3
    stamp = ros_probe.node.get_clock().now().to_msg()
    bad = joint_state_msg(stamp, [np.nan] * 8)
    half_bad = joint_state_msg(stamp, [*second[:7], np.inf])
    unknown = joint_state_msg(stamp, [0.0] * 8, names=[f"j{i}" for i in range(8)])
    short = JointState(name=list(JOINT_NAMES[:4]), position=[0.0] * 4)
    # Five messages, well inside both sides' keep-last-10 queues: none is dropped under load.
    for m in (joint_state_msg(stamp, second), bad, half_bad, unknown, short):
        pub.publish(m)
    assert pub.wait_for_all_acked(Duration(seconds=10)), "sim_node did not receive the commands"
    ros_probe.spin_for(1.0)
    np.testing.assert_allclose(np.array(topics.joint_states[-1][1].position), second, atol=1e-6)
    assert "rejected /joint_commands" in node.log()

    # The reset service puts the robot back at the stand pose.
    reset_sim(ros_probe)
    ros_probe.spin_for(0.3)
    np.testing.assert_allclose(np.array(topics.joint_states[-1][1].position), STAND_POSE, atol=1e-6)


def test_estop_makes_sim_ignore_commands(spawn_node, ros_probe) -> None:
    node = spawn_node("pidog_sim.sim_node", {"randomize": False})
    topics = Topics(ros_probe)
    assert ros_probe.spin_until(lambda: len(topics.joint_states) > 5, 30), node.log()
    latched = LATCHED_QOS
    ros_probe.node.create_publisher(Bool, ESTOP_TOPIC, latched).publish(Bool(data=True))
    assert ros_probe.spin_until(lambda: "/estop: commands ignored" in node.log(), 30), node.log()
    pub = ros_probe.node.create_publisher(JointState, JOINT_COMMANDS_TOPIC, STREAM_QOS)
    assert ros_probe.spin_until(lambda: pub.get_subscription_count() > 0, 10)  # so the test can fail
    for _ in range(20):
        pub.publish(joint_state_msg(ros_probe.node.get_clock().now().to_msg(), STAND_POSE + 0.3))
        ros_probe.spin_for(0.02)
    ros_probe.spin_for(0.3)
    np.testing.assert_allclose(np.array(topics.joint_states[-1][1].position), STAND_POSE, atol=1e-3)
    assert ESTOP_TOPIC in node.log()

    # A reset does not release the latched e-stop: commands are still ignored afterwards.
    reset_sim(ros_probe)
    for _ in range(20):
        pub.publish(joint_state_msg(ros_probe.node.get_clock().now().to_msg(), STAND_POSE + 0.3))
        ros_probe.spin_for(0.02)
    ros_probe.spin_for(0.3)
    np.testing.assert_allclose(np.array(topics.joint_states[-1][1].position), STAND_POSE, atol=1e-3)


def test_stamps_are_sim_time_and_agree_with_clock_for_a_use_sim_time_subscriber(
    spawn_node, ros_probe
) -> None:
    import rclpy
    from rclpy.parameter import Parameter

    # A consumer as policy_node runs in sim: its clock follows /clock.
    consumer = rclpy.create_node(
        "sim_time_consumer",
        context=ros_probe.context,
        parameter_overrides=[Parameter("use_sim_time", Parameter.Type.BOOL, True)],
    )
    ros_probe.executor.add_node(consumer)
    clock_values: set[int] = set()
    seen: list[tuple[str, int, int]] = []  # (topic, stamp ns, consumer's clock ns on receipt)

    def on_message(topic: str):
        def record(msg) -> None:
            seen.append(
                (topic, Time.from_msg(msg.header.stamp).nanoseconds, consumer.get_clock().now().nanoseconds)
            )

        return record

    consumer.create_subscription(
        Clock, CLOCK_TOPIC, lambda m: clock_values.add(Time.from_msg(m.clock).nanoseconds), STREAM_QOS
    )
    for topic, kind in (
        (JOINT_STATES_TOPIC, JointState),
        (IMU_TOPIC, Imu),
        (GROUND_TRUTH_ODOM_TOPIC, Odometry),
    ):
        consumer.create_subscription(kind, topic, on_message(topic), STREAM_QOS)
    # Slower than real time, as on a loaded machine: sim time and wall time part at once.
    node = spawn_node("pidog_sim.sim_node", {"randomize": False, "real_time_factor": 0.5})
    assert ros_probe.spin_until(lambda: len(seen) > 300, 60), node.log()

    assert consumer.get_clock().ros_time_is_active
    dt_ns = round(CONTROL_DT * 1e9)
    for topic in (JOINT_STATES_TOPIC, IMU_TOPIC, GROUND_TRUTH_ODOM_TOPIC):
        stamps = [s for t, s, _ in seen if t == topic]
        assert len(stamps) > 50, topic
        # A tick's sensors precede its /clock: the newest stamps' clock may still be on its way.
        stamps = [v for v in stamps if v <= max(clock_values)]
        assert set(stamps) <= clock_values, f"{topic} stamps that /clock never carried"
        assert all(s % dt_ns == 0 for s in stamps), f"{topic} stamps are not sim control steps"
        # Stamp and the consumer's sim clock agree to a few control steps (messages of a tick
        # and its /clock arrive together); a wall-clock stamp would be ~1.7e9 s off.
        lag = [(now - s) * 1e-9 for t, s, now in seen if t == topic and now > 0]
        assert lag and max(abs(v) for v in lag) < 10 * CONTROL_DT, f"{topic}: stamp vs clock {max(lag):.3f} s"
    consumer.destroy_node()


def test_a_sim_time_controller_reads_the_sensors_of_the_tick_its_timer_fires_on(
    spawn_node, ros_probe
) -> None:
    """policy_node runs on a sim-time timer: when /clock reaches a control step, that step's
    /joint_states and /imu/data must already be there. Training applies an action computed from
    the current step's observation; a controller handed the previous step's sensors runs with one
    step of extra latency (measured: the shipped policy then walked ~17 % slower through sim_node
    than through hw_node + twin)."""
    import rclpy
    from rclpy.parameter import Parameter

    controller = rclpy.create_node(
        "sim_time_controller",
        context=ros_probe.context,
        parameter_overrides=[Parameter("use_sim_time", Parameter.Type.BOOL, True)],
    )
    ros_probe.executor.add_node(controller)
    latest = {"joint_states": -1, "imu": -1}
    ticks: list[tuple[int, int, int]] = []  # (clock ns at the timer, newest joint_states, imu stamp)
    controller.create_subscription(
        JointState,
        JOINT_STATES_TOPIC,
        lambda m: latest.__setitem__("joint_states", Time.from_msg(m.header.stamp).nanoseconds),
        STREAM_QOS,
    )
    controller.create_subscription(
        Imu,
        IMU_TOPIC,
        lambda m: latest.__setitem__("imu", Time.from_msg(m.header.stamp).nanoseconds),
        STREAM_QOS,
    )

    def tick() -> None:
        if latest["joint_states"] >= 0 and latest["imu"] >= 0:
            ticks.append((controller.get_clock().now().nanoseconds, latest["joint_states"], latest["imu"]))

    controller.create_timer(CONTROL_DT, tick)
    node = spawn_node("pidog_sim.sim_node", {"randomize": False})
    assert ros_probe.spin_until(lambda: len(ticks) > 200, 60), node.log()
    controller.destroy_node()
    now = np.array([t[0] for t in ticks[20:]])
    for column, topic in ((1, JOINT_STATES_TOPIC), (2, IMU_TOPIC)):
        age = now - np.array([t[column] for t in ticks[20:]])
        fresh = float(np.mean(age <= 0))
        # Over DDS between processes a message can still be overtaken now and then; the old
        # order (clock first) gave ~0 % fresh.
        assert fresh >= 0.8, f"{topic}: only {fresh:.0%} of timer ticks saw their own step's sensors"


def answer_late(ros_probe, node, answers: int, late_s: float = 0.06) -> tuple[list[int], list[int]]:
    """A slow controller: answers each /clock tick ``late_s`` after it came (the stand pose,
    stamped with the tick), ``answers`` times. Returns the /clock values seen and those answered."""
    pub = ros_probe.node.create_publisher(JointState, JOINT_COMMANDS_TOPIC, STREAM_QOS)
    clocks: list[int] = []
    newest: dict[str, object] = {}  # the latest tick, and since when one is unanswered

    def on_clock(msg: Clock) -> None:
        clocks.append(Time.from_msg(msg.clock).nanoseconds)
        newest.update(stamp=msg.clock, ns=clocks[-1])
        newest.setdefault("since", time.monotonic())

    ros_probe.node.create_subscription(Clock, CLOCK_TOPIC, on_clock, STREAM_QOS)
    answered: list[int] = []
    deadline = time.monotonic() + 60
    while len(answered) < answers:
        assert time.monotonic() < deadline, f"{len(answered)} answers in 60 s\n{node.log()}"
        ros_probe.executor.spin_once(timeout_sec=0.005)
        if "since" in newest and time.monotonic() - newest["since"] >= late_s:
            del newest["since"]
            pub.publish(joint_state_msg(newest["stamp"], STAND_POSE))
            answered.append(newest["ns"])
    return clocks, answered


def late_steps_reported(node) -> tuple[int, int]:
    """sim_node's count at shutdown: (steps that ran before their command, steps under a controller)."""
    node.stop()
    found = re.search(r"(\d+) of (\d+) steps under a sim-time controller", node.log_path.read_text())
    assert found, node.log_path.read_text()
    return int(found.group(1)), int(found.group(2))


def test_lockstep_applies_every_answer_of_a_slow_controller_and_runs_on_when_it_stops(
    spawn_node, ros_probe
) -> None:
    """lockstep: a controller that answers each /clock tick 60 ms late (three control periods)
    gets every answer applied: the sim publishes no newer tick before the answer to the last one
    came. When it stops answering, the sim steps on after lockstep_timeout_s and says so; at
    shutdown it counts no step that ran ahead of its command."""
    node = spawn_node("pidog_sim.sim_node", {"randomize": False, "lockstep": True, "lockstep_timeout_s": 1.0})
    clocks, answered = answer_late(ros_probe, node, 40)
    # Before the first answer the sim runs free (no controller yet); from then on, none skipped.
    window = [t for t in clocks if answered[0] <= t <= answered[-1]]
    skipped = sorted(set(window) - set(answered))
    assert not skipped, f"{len(skipped)} of {len(window)} ticks passed unanswered\n{node.log()}"
    assert np.all(np.diff(answered[1:]) == round(CONTROL_DT * 1e9)), "a tick was skipped or repeated"

    # The controller stops: one timeout, then the sim runs on by itself.
    last = clocks[-1]
    assert ros_probe.spin_until(lambda: clocks[-1] >= last + round(1.0e9), 30), node.log()
    assert "lockstep: no /joint_commands" in node.log()
    late, steps = late_steps_reported(node)
    assert late == 0 and steps >= 39, f"lockstep: {late} of {steps} steps ran ahead of their command"


def test_free_running_counts_the_steps_that_ran_before_their_command(spawn_node, ros_probe) -> None:
    """Free-running, the same slow controller's answers mostly come after the sim has stepped on
    (107 of 147 ticks passed unanswered in a trial run); sim_node says at shutdown how many
    steps ran on a command a tick or more old, which is what bench_ros_tracking reports."""
    node = spawn_node("pidog_sim.sim_node", {"randomize": False})
    answer_late(ros_probe, node, 30)
    late, steps = late_steps_reported(node)
    assert steps >= 30 and late > steps / 2, f"free-running: {late} of {steps} steps counted late"


def test_invalid_parameter_is_refused_with_its_name(spawn_node) -> None:
    node = spawn_node("pidog_sim.sim_node", {"rate_hz": 33.0})
    node.proc.wait(timeout=30)
    assert node.proc.returncode != 0
    assert "rate_hz" in node.log()
    node = spawn_node("pidog_sim.sim_node", {"lockstep": True, "publish_clock": False})
    node.proc.wait(timeout=30)
    assert node.proc.returncode != 0 and "lockstep" in node.log()
    node = spawn_node("pidog_sim.sim_node", {"imu_orientation": "kalman"})
    node.proc.wait(timeout=30)
    assert node.proc.returncode != 0 and "imu_orientation" in node.log()
    node = spawn_node("pidog_sim.sim_node", {"model_path": "/nonexistent/pidog.xml"})
    node.proc.wait(timeout=30)
    assert node.proc.returncode != 0 and "/nonexistent/pidog.xml" in node.log()
