"""bag_recorder: record topics into a real rosbag2 (MCAP or sqlite3), for machines without ros2bag.

``python -m pidog_control.bag_recorder --ros-args -p output:=my_bag -p storage:=mcap``

Like ``ros2 bag record``: each topic is subscribed once a publisher shows up, with the
publisher's reliability and durability, and its raw CDR bytes are written unchanged (raw
subscriptions), stamped with the receive time of the node clock (``use_sim_time`` honoured).
Message definitions and type hashes come from the rosbags typestore of our ROS 2 distribution,
so ``ros2 bag info`` / ``ros2 bag play`` and ``pidog-import-bag`` read the result. The bag is
closed (index, metadata.yaml) on Ctrl-C, SIGTERM or shutdown.

Parameters: ``output`` (bag directory; default ``rosbag2_<date>-<time>``; an existing path is
refused), ``topics`` (default: the teleop demonstration topics), ``storage`` (``mcap`` or
``sqlite3``).
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import (
    Connection,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer

from pidog_description.node_runner import refuse_start, spin_node
from pidog_description.topics import TELEOP_RECORDED_TOPICS

from .bag_format import TYPESTORE

STORAGES: dict[str, StoragePlugin] = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
DISCOVERY_PERIOD_S = 0.2
RECORD_DEPTH = 100  # deep queue: a slow disk write must not drop messages


class ParameterError(ValueError):
    """An invalid recorder parameter; the message names it."""


def default_output() -> str:
    """``ros2 bag record``'s naming: rosbag2_YYYY_MM_DD-HH_MM_SS in the current directory."""
    return time.strftime("rosbag2_%Y_%m_%d-%H_%M_%S")


def message_class(msgtype: str) -> type:
    """``sensor_msgs/msg/Imu`` -> the rclpy message class (its package must be installed)."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def subscription_qos(publishers: list) -> QoSProfile:
    """QoS that matches every current publisher (what ``ros2 bag record`` adapts to)."""
    best_effort = any(p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for p in publishers)
    latched = bool(publishers) and all(
        p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publishers
    )
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=RECORD_DEPTH,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def bag_qos(profile) -> Qos:
    """An rclpy QoS profile in rosbags' terms, for the bag's offered_qos_profiles."""
    zero = QosTime(0, 0)  # rmw default: no deadline, no lifespan, no lease
    return Qos(
        history=QosHistory.KEEP_ALL if profile.history == HistoryPolicy.KEEP_ALL else QosHistory.KEEP_LAST,
        depth=int(profile.depth),
        reliability=(
            QosReliability.BEST_EFFORT
            if profile.reliability == ReliabilityPolicy.BEST_EFFORT
            else QosReliability.RELIABLE
        ),
        durability=(
            QosDurability.TRANSIENT_LOCAL
            if profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
            else QosDurability.VOLATILE
        ),
        deadline=zero,
        lifespan=zero,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=zero,
        avoid_ros_namespace_conventions=False,
    )


class BagRecorder(Node):
    def __init__(self) -> None:
        super().__init__("bag_recorder")
        self.declare_parameter("output", "")
        self.declare_parameter("topics", list(TELEOP_RECORDED_TOPICS))
        self.declare_parameter("storage", "mcap")
        output = self.get_parameter("output").value or default_output()
        topics = list(self.get_parameter("topics").value or [])
        storage = self.get_parameter("storage").value
        if storage not in STORAGES:
            raise ParameterError(f"parameter 'storage' must be one of {sorted(STORAGES)}, got {storage!r}")
        if not topics or not all(isinstance(t, str) and t.startswith("/") for t in topics):
            raise ParameterError(f"parameter 'topics' must list absolute topic names, got {topics!r}")
        if Path(output).exists():
            raise ParameterError(f"parameter 'output': {output} exists already; not overwriting a recording")

        self.path = Path(output)
        self.wanted = list(dict.fromkeys(topics))
        self.writer: Writer | None = Writer(
            self.path, version=Writer.VERSION_LATEST, storage_plugin=STORAGES[storage]
        )
        self.writer.open()
        self.connections: dict[str, Connection] = {}
        self.counts: dict[str, int] = {}
        self._warned: set[str] = set()
        self.create_timer(DISCOVERY_PERIOD_S, self._discover)
        self.get_logger().info(f"recording {self.wanted} to {self.path} ({storage})")

    def _discover(self) -> None:
        """Subscribe to each wanted topic once it has a publisher whose type we can record."""
        if self.writer is None:
            return
        known = dict(self.get_topic_names_and_types())
        for topic in self.wanted:
            if topic in self.connections or topic not in known:
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:  # only subscribers so far: wait, to match the publishers' QoS
                continue
            types = known[topic]
            msgtype = types[0]
            if len(types) > 1:
                self._warn_once(
                    topic, f"{topic} is published with several types {types}; recording {msgtype}"
                )
            try:
                cls = message_class(msgtype)
                TYPESTORE.get_msgdef(msgtype)
            except (ImportError, AttributeError, KeyError, ValueError) as exc:
                self._warn_once(topic, f"cannot record {topic}: type {msgtype} is unknown here ({exc})")
                continue
            qos = subscription_qos(publishers)
            self.connections[topic] = self.writer.add_connection(
                topic,
                msgtype,
                typestore=TYPESTORE,
                offered_qos_profiles=[bag_qos(p.qos_profile) for p in publishers],
            )
            self.counts[topic] = 0
            self.create_subscription(
                cls, topic, lambda raw, topic=topic: self._write(topic, raw), qos, raw=True
            )
            self.get_logger().info(f"subscribed to {topic} ({msgtype})")

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.get_logger().warning(text)

    def _write(self, topic: str, raw: bytes) -> None:
        if self.writer is None:
            return
        self.writer.write(self.connections[topic], self.get_clock().now().nanoseconds, raw)
        self.counts[topic] += 1

    def close(self) -> None:
        """Finish the bag: storage index and metadata.yaml, so ros2 bag tools can open it."""
        writer, self.writer = self.writer, None
        if writer is None:
            return
        writer.close()
        missing = [t for t in self.wanted if not self.counts.get(t)]
        summary = ", ".join(f"{t}: {n}" for t, n in self.counts.items()) or "no messages"
        print(f"bag_recorder: closed {self.path} ({summary})", flush=True)
        if missing:
            print(f"bag_recorder: warning: nothing recorded on {missing}", flush=True)


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    try:
        node = BagRecorder()
    except ParameterError as exc:
        refuse_start(f"bag_recorder: {exc}")
    spin_node(node, on_shutdown=node.close)


if __name__ == "__main__":
    main()
