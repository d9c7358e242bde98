"""Import rosbag2 teleop recordings as demonstrations (issue 7; DESIGN.md §4-5).

``import_bags(paths)`` reads rosbag2 bags (MCAP or sqlite3, from ``ros2 bag record`` or our
``bag_recorder``) and turns them into the same observations and actions ``PiDogEnv`` produces:

- Time base: the bag's log (receive) time. Messages are read in the order the recorder wrote
  them, so a clock that jumps backward (a sim restart under ``use_sim_time``) is seen and splits
  the recording; slightly late messages are sorted into place and counted.
- Grid: one sample per control period (``CONTROL_DT``), anchored on the first
  ``/joint_commands`` message, so each grid time is a command tick.
- Per sample k at grid time t_k: the action is the ``/joint_commands`` target in effect (the
  latest one up to t_k + dt/2, which absorbs timer and delivery jitter) through
  ``spec.target_to_action``; the observation comes from ``spec.build_observation`` with the
  latest ``/imu/data`` and ``/joint_states`` up to t_k, the previous step's action, the phase
  (``/gait/phase`` of the same tick, or reconstructed from the time since the episode start),
  and the ``/cmd_vel`` command clipped like the teleop gait node does (zero once it is older
  than ``cmd_timeout_s``).
- A sample is dropped, and the drop counted by reason, when a sensor or the command stream
  has a gap longer than ``max_gap_s``, when a message it uses is non-finite or malformed, or
  when it falls before the first message of a topic. Every drop ends an episode; episodes
  shorter than ``min_episode_steps`` are dropped too.

Structural problems (missing path, not a bag, corrupt file, missing topics, wrong message
types, empty bag) raise ``BagImportError`` naming the bag and the problem.
"""

from __future__ import annotations

import argparse
import struct
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.storage_mcap import McapReader
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader
from rosbags.serde import SerdeError

from pidog_control.bag_format import TYPESTORE
from pidog_description.messages import (
    MessageError,
    command_from_twist,
    imu_from_msg,
    joint_command_from_msg,
    joint_positions_from_msg,
)
from pidog_description.robot import N_JOINTS
from pidog_description.spec import (
    CMD_TIMEOUT_S,
    CONTROL_DT,
    CONTROL_HZ,
    GAIT_PERIOD_S,
    OBS_DIM,
    action_filter_alpha,
    action_to_target,
    build_observation,
    gravity_from_quaternion,
    observation_layout,
    target_to_action,
    with_history,
)
from pidog_description.topics import (
    CMD_VEL_TOPIC,
    GAIT_PHASE_TOPIC,
    IMU_TOPIC,
    JOINT_COMMANDS_TOPIC,
    JOINT_STATES_TOPIC,
    TELEOP_RECORDED_TOPICS,
)

from .config import DEFAULT_CONFIG
from .demonstrations import LABELS_FILTER_KEY, Demonstrations, relabel_for_filter

# A teleop recording (bag_recorder's default topics) needs everything but the phase, which the
# importer can reconstruct from the time since the episode start.
OPTIONAL_TOPICS: dict[str, str] = {GAIT_PHASE_TOPIC: TELEOP_RECORDED_TOPICS[GAIT_PHASE_TOPIC]}
REQUIRED_TOPICS: dict[str, str] = {
    t: m for t, m in TELEOP_RECORDED_TOPICS.items() if t not in OPTIONAL_TOPICS
}

DT_NS: int = round(CONTROL_DT * 1e9)
DEFAULT_MAX_GAP_S: float = 0.1  # five control periods without a sensor sample: the data is stale
# pidog-import-bag labels for the filter pidog-train acts behind unless told otherwise, so its
# file teaches what a default run's robot executes.
TRAINING_ACTION_FILTER_HZ: float = float(DEFAULT_CONFIG["env"]["action_filter_hz"])


class BagImportError(ValueError):
    """A bag that cannot be turned into demonstrations; the message names the bag and the problem."""


# --- report ------------------------------------------------------------------------------------


@dataclass
class BagReport:
    path: str
    storage: str = ""
    duration_s: float = 0.0
    topics: dict[str, str] = field(default_factory=dict)  # topic used -> message type
    message_counts: dict[str, int] = field(default_factory=dict)
    invalid_messages: Counter[str] = field(default_factory=Counter)  # topic -> count
    samples: int = 0
    episodes: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # reason -> samples
    clipped_actions: int = 0  # samples whose target lay outside the action range
    held_actions: int = 0  # samples reusing the previous sample's /joint_commands message
    phase_source: str = ""
    backward_jumps: int = 0
    out_of_order: int = 0
    warnings: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = [f"bag {self.path} ({self.storage}, {self.duration_s:.2f} s)"]
        for topic, msgtype in self.topics.items():
            invalid = self.invalid_messages.get(topic, 0)
            bad = f", {invalid} invalid" if invalid else ""
            lines.append(f"  {topic:<16} {msgtype:<28} {self.message_counts.get(topic, 0):>7} messages{bad}")
        lines.append(f"  samples: {self.samples} in {self.episodes} episodes at {CONTROL_HZ:g} Hz")
        total_dropped = sum(self.dropped.values())
        lines.append(f"  dropped: {total_dropped} samples")
        for reason, count in self.dropped.most_common():
            lines.append(f"    {count:>7}  {reason}")
        lines.append(f"  actions clipped to [-1, 1]: {self.clipped_actions} samples")
        lines.append(
            f"  actions held from the previous step (no new /joint_commands): {self.held_actions} samples"
        )
        lines.append(f"  phase: {self.phase_source}")
        if self.backward_jumps or self.out_of_order:
            lines.append(
                f"  timestamps: {self.backward_jumps} backward jumps (split), "
                f"{self.out_of_order} messages out of order (sorted)"
            )
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


@dataclass
class ImportReport:
    bags: list[BagReport] = field(default_factory=list)
    output: str | None = None
    # Samples whose label, undoing the run's action filter, lay outside the action range (the
    # teleop gait moved faster than a policy behind that filter can follow): clipped.
    unfiltered_clipped: int = 0
    action_filter_hz: float = 0.0  # the filter the labels are for (0: the recorded targets)

    @property
    def samples(self) -> int:
        return sum(b.samples for b in self.bags)

    @property
    def episodes(self) -> int:
        return sum(b.episodes for b in self.bags)

    @property
    def dropped(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for bag in self.bags:
            total.update(bag.dropped)
        return total

    @property
    def warnings(self) -> list[str]:
        return [f"{b.path}: {w}" for b in self.bags for w in b.warnings]

    def format(self) -> str:
        parts = [b.format() for b in self.bags]
        where = f" -> {self.output}" if self.output else ""
        parts.append(
            f"total: {self.samples} samples in {self.episodes} episodes from {len(self.bags)} bags, "
            f"{sum(self.dropped.values())} dropped{where}"
        )
        if self.action_filter_hz:
            parts.append(
                f"labels for a run behind a {self.action_filter_hz:g} Hz action filter, "
                f"{self.unfiltered_clipped} clipped undoing it"
            )
        else:
            parts.append("labels: the recorded targets (for a run without an action filter)")
        return "\n".join(parts)


# --- opening and reading -----------------------------------------------------------------------


def _open_reader(path: Path) -> Reader:
    """Open a bag directory, its metadata.yaml, or a bare .mcap/.db3 file, with clear errors."""
    if not path.exists():
        raise BagImportError(f"bag not found: {path}")
    if path.is_file() and path.name == "metadata.yaml":
        path = path.parent
    if path.is_dir() and not (path / "metadata.yaml").exists():
        storage_files = sorted(p.name for p in path.iterdir() if p.suffix in (".mcap", ".db3"))
        if storage_files:
            raise BagImportError(
                f"{path} has no metadata.yaml, so the recording was not closed cleanly (recorder killed?); "
                f"pass the storage file itself ({storage_files[0]}) to read what it holds"
            )
        raise BagImportError(f"{path} is not a rosbag2 bag: no metadata.yaml")
    if path.is_file() and path.suffix not in (".mcap", ".db3"):
        raise BagImportError(
            f"{path} is not a rosbag2 bag: expected a bag directory, its metadata.yaml, or a .mcap/.db3 file"
        )
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises ReaderError, apsw, struct, zstd, YAML errors...
        raise BagImportError(f"cannot read bag {path}: {exc} (truncated or corrupt file?)") from exc
    return reader


def _check_topics(reader: Reader, path: Path) -> dict[str, str]:
    """Topic -> type of the topics to use; raises on an empty bag, missing topics or wrong types."""
    if reader.message_count == 0:
        raise BagImportError(f"bag {path} is empty: it holds no messages")
    available: dict[str, set[str]] = {}
    counts: Counter[str] = Counter()
    for conn in reader.connections:
        available.setdefault(conn.topic, set()).add(conn.msgtype)
        counts[conn.topic] += conn.msgcount
    missing = [t for t in REQUIRED_TOPICS if counts[t] == 0]
    if missing:
        have = ", ".join(f"{t} ({counts[t]})" for t in sorted(available)) or "none"
        raise BagImportError(f"bag {path} lacks messages on required topics {missing}; it has: {have}")
    used: dict[str, str] = {}
    for topic, expected in TELEOP_RECORDED_TOPICS.items():
        types = available.get(topic)
        if not types or counts[topic] == 0:
            continue
        if types != {expected}:
            raise BagImportError(
                f"bag {path}: topic {topic} has message type {sorted(types)}, expected {expected}"
            )
        used[topic] = expected
    return used


def _messages_in_file_order(reader: Reader, topics: set[str]) -> Iterator[tuple[str, int, bytes]]:
    """(topic, log time ns, raw CDR) in the order the recorder wrote them.

    ``Reader.messages`` sorts by timestamp, which would hide a clock that jumped backward, so
    the storage files are read directly (MCAP records in sequence, sqlite3 rows by id).
    """
    storage = reader.storage
    storages = list(getattr(storage, "storages", [storage]))  # a bag directory holds one per file
    if reader.compression_mode == "message" or not all(
        isinstance(s, McapReader | Sqlite3Reader) for s in storages
    ):
        # Per-message compression is undone only by Reader.messages: sorted order it is.
        wanted = [c for c in reader.connections if c.topic in topics]
        for conn, timestamp, data in reader.messages(connections=wanted):
            yield conn.topic, timestamp, data
        return
    for part in storages:
        conns = {c.id: c for c in part.connections if c.topic in topics}
        if isinstance(part, McapReader):
            for conn, timestamp, data in part.messages_scan(list(conns.values())):
                yield conn.topic, timestamp, bytes(data)
        else:
            rows = part.dbconn.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id")
            for topic_id, timestamp, data in rows:
                if topic_id in conns:
                    yield conns[topic_id].topic, int(timestamp), bytes(data)


# --- decoding ----------------------------------------------------------------------------------


def _phase_from_msg(msg) -> np.ndarray:
    phase = float(msg.data)
    if not (np.isfinite(phase) and 0.0 <= phase < 1.0):
        raise MessageError(f"gait phase must be in [0, 1) cycles, got {phase}")
    return np.array([phase])


def _imu_features(msg) -> np.ndarray:
    q, gyro, _accel = imu_from_msg(msg)
    return np.concatenate([gravity_from_quaternion(q), gyro])


# topic -> (width of the decoded vector, decoder); decoders raise MessageError on bad content.
DECODERS: dict[str, tuple[int, Callable[[object], np.ndarray]]] = {
    JOINT_STATES_TOPIC: (N_JOINTS, joint_positions_from_msg),
    IMU_TOPIC: (6, _imu_features),
    JOINT_COMMANDS_TOPIC: (N_JOINTS, joint_command_from_msg),
    CMD_VEL_TOPIC: (2, command_from_twist),
    GAIT_PHASE_TOPIC: (1, _phase_from_msg),
}


def deserialize(raw: bytes | memoryview, msgtype: str) -> object:
    """One CDR message, read the way ROS 2 itself reads it: field by field, ignoring bytes after it.

    rmw_fastrtps sizes a serialised message with alignment slack for empty sequences of 8-byte
    values and leaves the slack at the end: a JointState with empty velocity/effort (what every
    node of this stack publishes) serialised by ``rclpy.serialization.serialize_message`` ends in
    8 spare bytes. ``ros2 bag play`` reads such bags; rosbags' ``deserialize_cdr`` refuses them
    ("CDR message size mismatch"), so its size check is left out here. A message that is too
    short still fails (SerdeError), and the decoders check every value they use.
    """
    if len(raw) < 4 or bytes(raw[:2]) not in (b"\x00\x00", b"\x00\x01"):
        raise SerdeError(f"{msgtype}: invalid or unsupported CDR encapsulation")
    msgdef = TYPESTORE.get_msgdef(msgtype)
    read = msgdef.deserialize_cdr_le if raw[1] else msgdef.deserialize_cdr_be
    try:
        message, _end = read(raw[4:], 0, msgdef.cls, TYPESTORE)
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise SerdeError(f"could not deserialize {msgtype}: {exc}") from exc
    return message


@dataclass
class _Stream:
    """One topic's decoded messages, sorted by time; invalid ones kept (NaN) so they are seen."""

    times: np.ndarray  # int64 ns
    values: np.ndarray  # (N, width)
    valid: np.ndarray  # bool

    def latest(self, t_ns: np.ndarray) -> np.ndarray:
        """Index of the latest message at or before each time (-1: none yet)."""
        return np.searchsorted(self.times, t_ns, side="right") - 1


def _decode(topic: str, msgtype: str, items: list[tuple[int, bytes]], report: BagReport) -> _Stream:
    width, decoder = DECODERS[topic]
    items.sort(key=lambda item: item[0])  # stable: equal stamps keep the recorder's order
    times = np.array([t for t, _ in items], dtype=np.int64)
    values = np.full((len(items), width), np.nan)
    valid = np.zeros(len(items), dtype=bool)
    first_error = None
    lateral = 0
    for i, (_, raw) in enumerate(items):
        try:
            msg: Any = deserialize(raw, msgtype)
            values[i] = decoder(msg)
            valid[i] = True
        except Exception as exc:  # SerdeError for broken bytes, MessageError for bad values
            first_error = first_error or str(exc)
            continue
        lateral += topic == CMD_VEL_TOPIC and msg.linear.y != 0.0
    if lateral:
        report.warnings.append(
            f"{lateral} {CMD_VEL_TOPIC} messages ask for linear.y, ignored: PiDog cannot step sideways"
        )
    n_bad = int((~valid).sum())
    if n_bad:
        report.invalid_messages[topic] += n_bad
        report.warnings.append(f"{n_bad} invalid {topic} messages, e.g. {first_error}")
    return _Stream(times, values, valid)


# --- alignment ---------------------------------------------------------------------------------


@dataclass
class _Segment:
    """Demonstration arrays from one stretch of monotonic time."""

    observations: np.ndarray
    actions: np.ndarray
    episode_starts: np.ndarray


def _split_segments(
    messages: Iterator[tuple[str, int, bytes]], jump_ns: int, report: BagReport
) -> list[dict[str, list[tuple[int, bytes]]]]:
    """Cut the file-order stream where the clock jumps back by more than ``jump_ns``."""
    segments: list[dict[str, list[tuple[int, bytes]]]] = [{}]
    newest = None
    for n, (topic, t, raw) in enumerate(messages):
        if newest is not None and t < newest:
            if newest - t > jump_ns:
                report.backward_jumps += 1
                report.warnings.append(
                    f"log time jumps back {(newest - t) * 1e-9:.3f} s at message {n} ({topic}): "
                    "a new episode starts there"
                )
                segments.append({})
                newest = t
            else:
                report.out_of_order += 1
        newest = t if newest is None else max(newest, t)
        segments[-1].setdefault(topic, []).append((t, raw))
    return segments


def _align(
    streams: dict[str, _Stream],
    use_phase: bool,
    max_gap_s: float,
    cmd_timeout_s: float,
    min_episode_steps: int,
    report: BagReport,
) -> _Segment:
    """Samples on the control grid of one segment (see the module docstring).

    ``streams`` must hold every required topic (and the phase when ``use_phase``).
    """
    commands = streams[JOINT_COMMANDS_TOPIC]
    n_steps = int((commands.times[-1] - commands.times[0]) // DT_NS) + 1
    grid = commands.times[0] + DT_NS * np.arange(n_steps, dtype=np.int64)
    half = DT_NS // 2
    gap_ns = round(max_gap_s * 1e9)
    reasons = np.full(n_steps, "", dtype=object)

    def check(topic: str, at: np.ndarray) -> np.ndarray:
        """Latest message index per grid step; marks steps without a fresh, valid one."""
        stream = streams[topic]
        idx = stream.latest(at)
        has = idx >= 0
        stale = has & (grid - stream.times[np.maximum(idx, 0)] > gap_ns)
        invalid = has & ~stale & ~stream.valid[np.maximum(idx, 0)]
        for mask, reason in (
            (~has, f"before the first {topic} message"),
            (stale, f"gap over {max_gap_s:g} s in {topic}"),
            (invalid, f"invalid {topic} message (non-finite or malformed)"),
        ):
            reasons[mask & (reasons == "")] = reason
        return np.maximum(idx, 0)

    i_cmd = check(JOINT_COMMANDS_TOPIC, grid + half)
    i_js = check(JOINT_STATES_TOPIC, grid)
    i_imu = check(IMU_TOPIC, grid)
    i_phase = check(GAIT_PHASE_TOPIC, grid + half) if use_phase else None

    # /cmd_vel: silence means "stop" (like the teleop gait node), a bad message is a bad sample.
    cmd_vel = streams[CMD_VEL_TOPIC]
    i_cv = cmd_vel.latest(grid)
    fresh = (i_cv >= 0) & (grid - cmd_vel.times[np.maximum(i_cv, 0)] <= round(cmd_timeout_s * 1e9))
    bad_cv = fresh & ~cmd_vel.valid[np.maximum(i_cv, 0)]
    reasons[bad_cv & (reasons == "")] = f"invalid {CMD_VEL_TOPIC} message (non-finite or malformed)"
    command = np.where(fresh[:, None], np.nan_to_num(cmd_vel.values[np.maximum(i_cv, 0)]), 0.0)

    # Actions: the target in effect. The previous step's action is the latest *valid* target,
    # because the robot (sim_node, hw_node) ignores an invalid command and holds the last one.
    ok = reasons == ""
    targets = np.where(ok[:, None], commands.values[i_cmd], 0.0)  # dropped rows may hold NaN
    actions = np.array([target_to_action(t) for t in targets])
    # A target the action range cannot express does not survive the round trip.
    clipped = ok & np.array(
        [not np.allclose(action_to_target(a), t, atol=1e-9) for a, t in zip(actions, targets, strict=True)]
    )
    n_valid = int(commands.valid.sum())
    valid_cmd = _Stream(
        commands.times[commands.valid], commands.values[commands.valid], np.ones(n_valid, bool)
    )
    i_prev = valid_cmd.latest(grid - half)
    last_actions = np.zeros_like(actions)
    has_prev = i_prev >= 0
    previous = [target_to_action(t) for t in valid_cmd.values[i_prev[has_prev]]]
    last_actions[has_prev] = np.reshape(previous, (-1, N_JOINTS))

    starts, keep = _episodes(ok, min_episode_steps, reasons)
    if i_phase is not None:
        phase = streams[GAIT_PHASE_TOPIC].values[i_phase, 0]
    else:
        # Time since the episode start, the clock PiDogEnv and the gait node restart at 0.
        episode_start_time = np.maximum.accumulate(np.where(starts, grid, grid[0]))
        phase = np.mod((grid - episode_start_time) * 1e-9 / GAIT_PERIOD_S, 1.0)

    for reason, count in Counter(reasons[reasons != ""]).items():
        report.dropped[reason] += count
    report.clipped_actions += int((clipped & keep).sum())
    # The same command message two steps running: its source is slower than the control rate,
    # or was late. A few are jitter; many mean the demonstrations repeat actions.
    held = keep & np.r_[False, i_cmd[1:] == i_cmd[:-1]]
    report.held_actions += int(held.sum())
    if held.sum() > 0.1 * keep.sum():
        report.warnings.append(
            f"{int(held.sum())} of {int(keep.sum())} samples reuse the previous {JOINT_COMMANDS_TOPIC} message: "
            f"it was published slower than {CONTROL_HZ:g} Hz"
        )
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        return _Segment(np.zeros((0, OBS_DIM)), np.zeros((0, N_JOINTS)), np.zeros(0, bool))
    imu = streams[IMU_TOPIC].values[i_imu]
    joints = streams[JOINT_STATES_TOPIC].values[i_js]
    observations = np.stack(
        [
            build_observation(imu[k, :3], imu[k, 3:], joints[k], last_actions[k], float(phase[k]), command[k])
            for k in rows
        ]
    )
    return _Segment(observations, actions[rows], starts[rows])


def _episodes(ok: np.ndarray, min_steps: int, reasons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Episode starts and the samples kept: runs of good samples at least ``min_steps`` long."""
    starts = np.zeros(len(ok), dtype=bool)
    keep = np.zeros(len(ok), dtype=bool)
    k = 0
    while k < len(ok):
        if not ok[k]:
            k += 1
            continue
        end = k
        while end < len(ok) and ok[end]:
            end += 1
        if end - k >= min_steps:
            starts[k] = True
            keep[k:end] = True
        else:
            reasons[k:end] = f"episode shorter than {min_steps} steps"
        k = end
    return starts, keep


# --- public API --------------------------------------------------------------------------------


def import_bag(
    path: str | Path,
    *,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
    cmd_timeout_s: float = CMD_TIMEOUT_S,
    min_episode_steps: int = 10,
) -> tuple[Demonstrations | None, BagReport]:
    """One bag -> its demonstrations (None when no sample survived) and its report."""
    path = Path(path)
    report = BagReport(path=str(path))
    reader = _open_reader(path)
    try:
        used = _check_topics(reader, path)
        report.storage = _storage_name(reader)
        report.duration_s = reader.duration * 1e-9
        report.topics = dict(used)
        counts: Counter[str] = Counter()
        for conn in reader.connections:
            if conn.topic in used:
                counts[conn.topic] += conn.msgcount
        report.message_counts = dict(counts)
        try:
            segments = _split_segments(
                _messages_in_file_order(reader, set(used)), round(max_gap_s * 1e9), report
            )
        except BagImportError:
            raise
        except Exception as exc:
            raise BagImportError(
                f"cannot read messages of bag {path}: {exc} (truncated or corrupt file?)"
            ) from exc
    finally:
        reader.close()

    report.phase_source = (
        f"recorded on {GAIT_PHASE_TOPIC}"
        if GAIT_PHASE_TOPIC in used
        else f"reconstructed as time since episode start / {GAIT_PERIOD_S:g} s"
    )
    if GAIT_PHASE_TOPIC not in used:
        report.warnings.append(
            f"no {GAIT_PHASE_TOPIC} in the bag: the phase is reconstructed from the time since each episode "
            "started, which matches the gait only if it started walking then"
        )
    use_phase = GAIT_PHASE_TOPIC in used
    needed = [*REQUIRED_TOPICS, *([GAIT_PHASE_TOPIC] if use_phase else [])]
    parts: list[_Segment] = []
    for number, items in enumerate(segments):
        lacking = [t for t in needed if t not in items]
        if lacking:
            count = sum(len(m) for m in items.values())
            report.warnings.append(f"time segment {number} ({count} messages) has none on {lacking}: skipped")
            continue
        streams = {topic: _decode(topic, used[topic], msgs, report) for topic, msgs in items.items()}
        parts.append(_align(streams, use_phase, max_gap_s, cmd_timeout_s, min_episode_steps, report))
    kept = [p for p in parts if len(p.observations)]
    report.samples = sum(len(p.observations) for p in kept)
    report.episodes = sum(int(p.episode_starts.sum()) for p in kept)
    if not kept:
        report.warnings.append("no usable samples in this bag")
        return None, report
    demos = Demonstrations(
        np.concatenate([p.observations for p in kept]),
        np.concatenate([p.actions for p in kept]),
        np.concatenate([p.episode_starts for p in kept]),
    )
    return demos, report


def _storage_name(reader: Reader) -> str:
    storages = list(getattr(reader.storage, "storages", [reader.storage]))
    return "mcap" if storages and isinstance(storages[0], McapReader) else "sqlite3"


def import_bags(
    paths: Sequence[str | Path],
    *,
    output: str | Path | None = None,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
    cmd_timeout_s: float = CMD_TIMEOUT_S,
    min_episode_steps: int = 10,
    obs_history: int = 0,
    action_filter_hz: float = 0.0,
) -> tuple[Demonstrations, ImportReport]:
    """Bags -> one Demonstrations set (saved atomically to ``output`` if given) and the report.
    ``obs_history``: past frames per observation (the training run's sim config
    env.obs_history; 0 = ``pidog-obs-v1``), stacked from the recorded steps of each episode.
    ``action_filter_hz``: the action filter the run trains behind (env.action_filter_hz); the
    labels become the actions whose filtering gives the recorded targets (``spec.unfilter_action``
    from each sample's previous target), so BC's robot is told what the teleop gait's was.

    Raises ``BagImportError`` for a bag that cannot be used at all, or when no bag yields a
    sample; a bag without usable samples among good ones is reported, not fatal.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        raise BagImportError("no bags given")
    if not (np.isfinite(max_gap_s) and max_gap_s > 0):
        raise BagImportError(f"max_gap_s must be positive, got {max_gap_s}")
    if not (np.isfinite(cmd_timeout_s) and cmd_timeout_s > 0):
        raise BagImportError(f"cmd_timeout_s must be positive, got {cmd_timeout_s}")
    if int(min_episode_steps) < 1:
        raise BagImportError(f"min_episode_steps must be at least 1, got {min_episode_steps}")
    try:
        observation_layout(obs_history)
    except ValueError as exc:
        raise BagImportError(f"obs_history: {exc}") from None
    try:
        alpha = action_filter_alpha(action_filter_hz)
    except ValueError as exc:
        raise BagImportError(str(exc)) from None
    report = ImportReport(action_filter_hz=float(action_filter_hz))
    parts: list[Demonstrations] = []
    for path in paths:
        demos, bag_report = import_bag(
            path, max_gap_s=max_gap_s, cmd_timeout_s=cmd_timeout_s, min_episode_steps=int(min_episode_steps)
        )
        report.bags.append(bag_report)
        if demos is not None:
            parts.append(demos)
    if not parts:
        reasons = "; ".join(f"{r}: {n}" for r, n in report.dropped.most_common(3)) or "no samples"
        raise BagImportError(f"no usable samples in {[str(p) for p in paths]} ({reasons})")
    metadata = {
        "source": "rosbag2",
        "bags": [b.path for b in report.bags],
        "control_hz": CONTROL_HZ,
        "phase_source": {b.path: b.phase_source for b in report.bags},
        "samples_dropped": dict(report.dropped),
        LABELS_FILTER_KEY: float(action_filter_hz),
    }
    demos = Demonstrations.concatenate(parts, metadata=dict(metadata))
    if alpha:
        # The recorded targets were executed as they are (no filter on the teleop gait).
        labels, report.unfiltered_clipped = relabel_for_filter(demos.observations, demos.actions, 0.0, alpha)
        demos = Demonstrations(demos.observations, labels, demos.episode_starts, metadata)
    if obs_history:
        stacked = with_history(demos.observations, demos.episode_starts, obs_history)
        demos = Demonstrations(stacked, demos.actions, demos.episode_starts, metadata)
    if output is not None:
        report.output = str(demos.save(output))
    return demos, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pidog-import-bag", description="Turn rosbag2 teleop recordings into demonstrations.npz"
    )
    parser.add_argument("bags", nargs="+", type=Path, help="bag directories (or .mcap/.db3 files)")
    parser.add_argument("-o", "--output", type=Path, default=Path("demonstrations.npz"))
    parser.add_argument(
        "--max-gap-s", type=float, default=DEFAULT_MAX_GAP_S, help="sensor silence that ends an episode"
    )
    parser.add_argument(
        "--cmd-timeout-s", type=float, default=CMD_TIMEOUT_S, help="/cmd_vel age that means stop"
    )
    parser.add_argument("--min-episode-steps", type=int, default=10)
    parser.add_argument(
        "--obs-history",
        type=int,
        default=0,
        help="past frames per observation, as the training run's env.obs_history (0: pidog-obs-v1)",
    )
    parser.add_argument(
        "--action-filter-hz",
        type=float,
        default=TRAINING_ACTION_FILTER_HZ,
        help="the action filter the training run acts behind, as its env.action_filter_hz: labels "
        "are the actions whose filtering executes the recorded targets (0: no filter, the labels "
        "are the recorded targets; default: pidog-train's, %(default)s Hz)",
    )
    args = parser.parse_args(argv)
    try:
        _demos, report = import_bags(
            args.bags,
            output=args.output,
            max_gap_s=args.max_gap_s,
            cmd_timeout_s=args.cmd_timeout_s,
            obs_history=args.obs_history,
            action_filter_hz=args.action_filter_hz,
            min_episode_steps=args.min_episode_steps,
        )
    except BagImportError as exc:
        print(f"pidog-import-bag: error: {exc}", file=sys.stderr)
        return 2
    print(report.format())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
