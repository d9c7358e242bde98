"""Talking to an hw_node process over DDS from a test: topics, e-stop, arm/reset services, and
what its emulated Robot HAT was sent (the JSON-lines emulator log)."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from hw_facts import LEG_CHANNELS, read_jsonl
from sensor_msgs.msg import BatteryState, Imu, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool, Trigger

from pidog_description.robot import JOINT_NAMES
from pidog_description.topics import (
    BATTERY_TOPIC,
    DIAGNOSTICS_TOPIC,
    ESTOP_TOPIC,
    HW_ARM_SERVICE_NAME,
    HW_ARMED_TOPIC_NAME,
    HW_RESET_SERVICE_NAME,
    HW_STATE_TOPIC_NAME,
    IMU_TOPIC,
    JOINT_COMMANDS_TOPIC,
    JOINT_STATES_TOPIC,
    LATCHED_QOS,
    STREAM_QOS,
)


class Listener:
    """Records arrival times and the last message of the topics hw_node publishes."""

    def __init__(self, probe) -> None:
        self.probe = probe
        self.times: dict[str, list[float]] = defaultdict(list)
        self.stamps: dict[str, list[float]] = defaultdict(list)  # header stamps, s
        self.last: dict[str, object] = {}
        self.diagnostics: list[DiagnosticArray] = []
        self.states: list[str] = []
        self.last_publish = 0.0
        node = probe.node
        node.create_subscription(
            JointState, JOINT_STATES_TOPIC, lambda m: self._got(JOINT_STATES_TOPIC, m), 50
        )
        node.create_subscription(Imu, IMU_TOPIC, lambda m: self._got(IMU_TOPIC, m), 50)
        node.create_subscription(
            BatteryState, BATTERY_TOPIC, lambda m: self._got(BATTERY_TOPIC, m), STREAM_QOS
        )
        node.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self.diagnostics.append, STREAM_QOS)
        node.create_subscription(
            String, HW_STATE_TOPIC_NAME, lambda m: self.states.append(m.data), LATCHED_QOS
        )
        node.create_subscription(
            Bool, HW_ARMED_TOPIC_NAME, lambda m: self._got(HW_ARMED_TOPIC_NAME, m), LATCHED_QOS
        )
        self.commands = node.create_publisher(JointState, JOINT_COMMANDS_TOPIC, STREAM_QOS)
        self.estop = node.create_publisher(Bool, ESTOP_TOPIC, LATCHED_QOS)
        self.arm_client = node.create_client(SetBool, HW_ARM_SERVICE_NAME)
        self.reset_client = node.create_client(Trigger, HW_RESET_SERVICE_NAME)

    def _got(self, topic: str, msg) -> None:
        self.times[topic].append(time.monotonic())
        if hasattr(msg, "header"):
            self.stamps[topic].append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
        self.last[topic] = msg

    def wait_for(self, *topics: str, timeout: float = 30.0) -> None:
        assert self.probe.spin_until(lambda: all(self.times[t] for t in topics), timeout), (
            f"no {topics} from hw_node"
        )

    def armed(self, timeout: float = 5.0) -> bool:
        """hw_node's last ~/armed, once one has arrived: it is latched, but on a loaded machine
        it can land after the ~/state message a test waited for."""
        self.wait_for(HW_ARMED_TOPIC_NAME, timeout=timeout)
        return bool(self.last[HW_ARMED_TOPIC_NAME].data)

    def rates(self, *topics: str, seconds: float = 2.0) -> list[float]:
        """The rate each topic is published at over the window: 1 / the median interval between
        the node's own header stamps. The stamps are taken when the node publishes, so a test
        probe that is slow to receive on a loaded machine does not count, and the median
        ignores an occasional late tick; a node that runs slow all the time still shows."""
        start = time.monotonic()
        first = {topic: len(self.stamps[topic]) for topic in topics}
        self.probe.spin_for(seconds)
        rates = []
        for topic in topics:
            stamps = np.array(self.stamps[topic][first[topic] :])
            assert len(stamps) > 2, f"{topic}: {len(stamps)} messages in {time.monotonic() - start:.1f} s"
            rates.append(float(1.0 / np.median(np.diff(stamps))))
        return rates

    def command(
        self, joint_deg: list[float], seconds: float = 1.0, names: list[str] | None = None, publisher=None
    ) -> None:
        msg = JointState(name=list(names or JOINT_NAMES), position=[math.radians(d) for d in joint_deg])
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            (publisher or self.commands).publish(msg)
            self.last_publish = time.monotonic()
            self.probe.spin_for(0.02)

    def command_once(self, joint_deg: list[float], names: list[str] | None = None) -> None:
        """Publish exactly one command (the publisher is already matched), then let it arrive."""
        msg = JointState(name=list(names or JOINT_NAMES), position=[math.radians(d) for d in joint_deg])
        self.commands.publish(msg)
        self.probe.spin_for(0.3)

    def status(self, name: str, predicate, timeout: float = 4.0) -> DiagnosticStatus:
        """The first fresh /diagnostics status called ``name`` that satisfies ``predicate``."""
        found: list[DiagnosticStatus] = []

        def seen() -> bool:
            for array in self.diagnostics:
                for status in array.status:
                    if status.name == name and predicate(status):
                        found.append(status)
                        return True
            return False

        self.diagnostics.clear()
        assert self.probe.spin_until(seen, timeout), f"no matching '{name}' diagnostics"
        return found[0]

    def wait_state(self, state: str, timeout: float = 10.0) -> None:
        assert self.probe.spin_until(lambda: self.states and self.states[-1] == state, timeout), (
            f"hw_node state {self.states[-1:] or 'none'}, expected {state!r}"
        )

    def call(self, client, request, timeout: float = 10.0):
        assert client.wait_for_service(timeout_sec=timeout), f"{client.srv_name} not available"
        future = client.call_async(request)
        assert self.probe.spin_until(future.done, timeout), f"{client.srv_name} did not answer"
        return future.result()

    def arm(self, on: bool = True):
        return self.call(self.arm_client, SetBool.Request(data=on))

    def reset(self):
        return self.call(self.reset_client, Trigger.Request())


def channel_writes(log: Path) -> list[dict]:
    """Every pulse register write the emulated Robot HAT MCU received, in order."""
    return [e for e in read_jsonl(log) if "channel" in e]


def latest_pulses(log: Path) -> np.ndarray:
    last = {e["channel"]: e["pulse_us"] for e in channel_writes(log)}
    return np.array([last.get(ch, np.nan) for ch in LEG_CHANNELS])
