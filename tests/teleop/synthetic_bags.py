"""Physically consistent teleop recordings, written as real rosbag2 bags with rosbags' Writer.

A ``Recording`` is what the topics of a teleop session carry, in SI units and radians:
- /cmd_vel at 10 Hz from a piecewise-constant command schedule, then silence;
- /joint_commands and /gait/phase at 50 Hz from the teleop gait law (``TeleopGait``);
- /joint_states at 50 Hz, 7 ms after each command tick: the servo model following the targets;
- /imu/data at 100 Hz: a body rocking in roll and pitch, with the exact body rates as gyro and
  the gravity reaction as accelerometer.
Tests compare what the importer produces with these ground-truth streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from pidog_control.teleop_gait_node import RampLimits, TeleopGait
from pidog_description.kinematics import STAND_POSE
from pidog_description.robot import JOINT_NAMES
from pidog_description.servo import ServoModel
from pidog_description.spec import CMD_TIMEOUT_S, CONTROL_DT, STANDARD_GRAVITY, clip_command
from pidog_description.topics import (
    CMD_VEL_TOPIC,
    GAIT_PHASE_TOPIC,
    IMU_FRAME_ID,
    IMU_TOPIC,
    JOINT_COMMANDS_TOPIC,
    JOINT_STATES_TOPIC,
    TELEOP_RECORDED_TOPICS,
)

TS = get_typestore(Stores.ROS2_KILTED)
T0_NS = 1_700_000_000_000_000_000  # a wall-clock-like start time
TYPES = TELEOP_RECORDED_TOPICS  # topic -> message type: what a teleop recording holds


@dataclass
class Stream:
    times_ns: list[int] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)


@dataclass
class Recording:
    streams: dict[str, Stream]

    def latest(self, topic: str, t_ns: int) -> np.ndarray | None:
        """Ground truth: the value of the latest message at or before t (None: none yet)."""
        stream = self.streams[topic]
        best = None
        for t, v in zip(stream.times_ns, stream.values, strict=True):
            if t <= t_ns:
                best = v
        return best


def quaternion_from_roll_pitch(roll: float, pitch: float) -> np.ndarray:
    """Body->world quaternion (w, x, y, z) for R = Ry(pitch) Rx(roll)."""
    cr, sr = np.cos(roll / 2), np.sin(roll / 2)
    cp, sp = np.cos(pitch / 2), np.sin(pitch / 2)
    return np.array([cp * cr, cp * sr, sp * cr, -sp * sr])


def rocking(t: float) -> tuple[float, float, float, float]:
    """Roll, pitch (rad) and their rates (rad/s) of a trotting body, a 2.5 Hz rocking motion."""
    w = 2 * np.pi * 2.5
    roll, pitch = 0.05 * np.sin(w * t), 0.03 * np.cos(w * t)
    return roll, pitch, 0.05 * w * np.cos(w * t), -0.03 * w * np.sin(w * t)


def make_recording(
    duration_s: float = 4.0,
    schedule: tuple[tuple[float, float, float], ...] = ((0.0, 0.1, 0.0), (1.0, 0.2, 0.5), (2.0, 0.4, -0.2)),
    cmd_vel_until_s: float = 3.0,
    start_ns: int = T0_NS,
    jitter_ns: int = 2_000_000,
    seed: int = 0,
) -> Recording:
    """Ground-truth streams; ``schedule`` is (start s, vx m/s, wz rad/s), unclipped on purpose."""
    rng = np.random.default_rng(seed)
    streams = {topic: Stream() for topic in TYPES}

    def command_at(t: float) -> np.ndarray:
        return [np.array([vx, wz]) for start, vx, wz in schedule if start <= t][-1]

    for k in range(int(cmd_vel_until_s * 10)):
        t = k * 0.1
        streams[CMD_VEL_TOPIC].times_ns.append(start_ns + round(t * 1e9))
        streams[CMD_VEL_TOPIC].values.append(command_at(t))

    gait = TeleopGait(0.02, RampLimits())
    servo = ServoModel(STAND_POSE)
    n_ticks = int(duration_s / CONTROL_DT)
    for k in range(n_ticks):
        t = k * CONTROL_DT
        tick_ns = start_ns + round(t * 1e9)
        heard = [i for i, tt in enumerate(streams[CMD_VEL_TOPIC].times_ns) if tt <= tick_ns]
        fresh = bool(heard) and tick_ns - streams[CMD_VEL_TOPIC].times_ns[heard[-1]] <= CMD_TIMEOUT_S * 1e9
        requested = clip_command(streams[CMD_VEL_TOPIC].values[heard[-1]]) if fresh else np.zeros(2)
        targets, phase = gait.tick(requested)
        jitter = int(rng.integers(-jitter_ns, jitter_ns + 1))
        streams[GAIT_PHASE_TOPIC].times_ns.append(tick_ns + jitter)
        streams[GAIT_PHASE_TOPIC].values.append(np.array([phase]))
        streams[JOINT_COMMANDS_TOPIC].times_ns.append(tick_ns + jitter + 300_000)
        streams[JOINT_COMMANDS_TOPIC].values.append(targets)
        # The servos move toward the new target during the next period; the estimate is
        # published by the robot's own 50 Hz loop, 7 ms after our tick.
        streams[JOINT_STATES_TOPIC].times_ns.append(tick_ns + 7_000_000)
        streams[JOINT_STATES_TOPIC].values.append(servo.step(targets, CONTROL_DT).copy())
    for k in range(int(duration_s * 100)):
        t = k * 0.01
        roll, pitch, droll, dpitch = rocking(t)
        q = quaternion_from_roll_pitch(roll, pitch)
        # Body rates for R = Ry(pitch) Rx(roll): w_body = (droll, dpitch cos roll, -dpitch sin roll).
        gyro = np.array([droll, dpitch * np.cos(roll), -dpitch * np.sin(roll)])
        up_body = np.array([-np.sin(pitch), np.cos(pitch) * np.sin(roll), np.cos(pitch) * np.cos(roll)])
        streams[IMU_TOPIC].times_ns.append(start_ns + 3_000_000 + round(t * 1e9))
        streams[IMU_TOPIC].values.append(np.concatenate([q, gyro, STANDARD_GRAVITY * up_body]))
    return Recording(streams)


# --- serialisation ------------------------------------------------------------------------------


def _stamp(t_ns: int):
    Time = TS.types["builtin_interfaces/msg/Time"]
    return Time(sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000)


def _header(t_ns: int, frame: str = ""):
    return TS.types["std_msgs/msg/Header"](stamp=_stamp(t_ns), frame_id=frame)


def serialize(topic: str, t_ns: int, value: np.ndarray, names: tuple[str, ...] = JOINT_NAMES) -> bytes:
    """A ground-truth value as the CDR bytes its topic would carry."""
    msgtype = TYPES[topic]
    T = TS.types
    if topic in (JOINT_STATES_TOPIC, JOINT_COMMANDS_TOPIC):
        msg = T[msgtype](
            header=_header(t_ns),
            name=list(names),
            position=np.asarray(value, dtype=np.float64),
            velocity=np.zeros(0),
            effort=np.zeros(0),
        )
    elif topic == IMU_TOPIC:
        Quaternion, Vector3 = T["geometry_msgs/msg/Quaternion"], T["geometry_msgs/msg/Vector3"]
        w, x, y, z = (float(v) for v in value[:4])
        cov = np.diag([1e-4, 1e-4, 1e-4]).ravel()
        msg = T[msgtype](
            header=_header(t_ns, IMU_FRAME_ID),
            orientation=Quaternion(x=x, y=y, z=z, w=w),
            orientation_covariance=cov,
            angular_velocity=Vector3(*(float(v) for v in value[4:7])),
            angular_velocity_covariance=cov,
            linear_acceleration=Vector3(*(float(v) for v in value[7:10])),
            linear_acceleration_covariance=cov,
        )
    elif topic == CMD_VEL_TOPIC:
        Vector3 = T["geometry_msgs/msg/Vector3"]
        lateral = float(value[2]) if len(value) > 2 else 0.0
        msg = T[msgtype](
            linear=Vector3(float(value[0]), lateral, 0.0), angular=Vector3(0.0, 0.0, float(value[1]))
        )
    else:
        msg = T[msgtype](data=float(value[0]))
    return bytes(TS.serialize_cdr(msg, msgtype))


def rclpy_serialized(topic: str, raw: bytes) -> bytes:
    """The same message as rclpy serialises it (``rclpy.serialization.serialize_message``, as the
    ROS 2 tutorials write bags from Python): rmw_fastrtps' bytes, alignment slack included."""
    import importlib

    from rclpy.serialization import deserialize_message, serialize_message

    package, _, name = TYPES[topic].split("/")
    cls = getattr(importlib.import_module(f"{package}.msg"), name)
    return serialize_message(deserialize_message(raw, cls))


def write_bag(
    path: Path,
    recording: Recording | list[Recording],
    storage: str = "mcap",
    topics: tuple[str, ...] | None = None,
    types: dict[str, str] | None = None,
    mutate=None,
    reorder=None,
    serializer: str = "rosbags",
) -> Path:
    """Write recordings (one after the other, in file order) to a rosbag2 bag.

    Messages of one recording are written in time order across topics, like a recorder would.
    ``serializer`` is "rosbags" (its CDR writer) or "rclpy" (ROS 2's own serialisation).
    ``mutate(topic, index, t_ns, raw) -> (t_ns, raw) | None`` edits or drops single messages;
    ``reorder(items) -> items`` changes the write order of the (t_ns, topic, raw) list.
    """
    recordings = recording if isinstance(recording, list) else [recording]
    topics = topics or tuple(TYPES)
    types = {**TYPES, **(types or {})}
    items: list[tuple[int, str, bytes]] = []
    for rec in recordings:
        session = []
        for topic in topics:
            stream = rec.streams[topic]
            for i, (t, v) in enumerate(zip(stream.times_ns, stream.values, strict=True)):
                raw = serialize(topic, t, v) if types[topic] == TYPES[topic] else _foreign(types[topic])
                if serializer == "rclpy" and types[topic] == TYPES[topic]:
                    raw = rclpy_serialized(topic, raw)
                edited = (t, raw) if mutate is None else mutate(topic, i, t, raw)
                if edited is not None:
                    session.append((edited[0], topic, edited[1]))
        items += sorted(session, key=lambda item: item[0])
    if reorder is not None:
        items = reorder(items)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=Writer.VERSION_LATEST, storage_plugin=plugin) as writer:
        conns = {topic: writer.add_connection(topic, types[topic], typestore=TS) for topic in topics}
        for t, topic, raw in items:
            writer.write(conns[topic], t, raw)
    return path


def _foreign(msgtype: str) -> bytes:
    """A valid message of a type the importer does not expect on that topic."""
    return bytes(TS.serialize_cdr(TS.types[msgtype](data=1.0), msgtype))
