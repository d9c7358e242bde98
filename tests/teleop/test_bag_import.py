"""Bag import: real rosbag2 bags (MCAP and sqlite3), serialised by rosbags or by rclpy -> demonstrations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic_bags import T0_NS, TS, TYPES, make_recording, rclpy_serialized, serialize, write_bag

from pidog_description.kinematics import STAND_POSE
from pidog_description.robot import JOINT_NAMES
from pidog_description.spec import (
    ACTION_SCALE,
    CONTROL_DT,
    FRAME_DIM,
    GAIT_PERIOD_S,
    OBS_DIM,
    OBS_SLICES,
    action_filter_alpha,
    filter_action,
    gravity_from_quaternion,
    observation_layout,
    target_to_action,
    with_history,
)
from pidog_description.topics import (
    CMD_VEL_TOPIC,
    GAIT_PHASE_TOPIC,
    IMU_FRAME_ID,
    IMU_TOPIC,
    JOINT_COMMANDS_TOPIC,
    JOINT_STATES_TOPIC,
)
from pidog_learning.bag_import import BagImportError, deserialize, import_bags
from pidog_learning.config import DEFAULT_CONFIG
from pidog_learning.demonstrations import DemonstrationError, Demonstrations

DT_NS = round(CONTROL_DT * 1e9)


def expected_samples(rec, cmd_timeout_s: float = 0.5) -> list[dict]:
    """The importer's contract, evaluated on the ground truth: one entry per grid step."""
    cmd_times = rec.streams[JOINT_COMMANDS_TOPIC].times_ns
    n = (cmd_times[-1] - cmd_times[0]) // DT_NS + 1
    out = []
    prev_action = np.zeros(8)
    for k in range(n):
        tau = cmd_times[0] + k * DT_NS
        target = rec.latest(JOINT_COMMANDS_TOPIC, tau + DT_NS // 2)
        js, imu = rec.latest(JOINT_STATES_TOPIC, tau), rec.latest(IMU_TOPIC, tau)
        phase = rec.latest(GAIT_PHASE_TOPIC, tau + DT_NS // 2)
        heard = [t for t in rec.streams[CMD_VEL_TOPIC].times_ns if t <= tau]
        fresh = heard and tau - heard[-1] <= cmd_timeout_s * 1e9
        command = (
            np.clip(rec.latest(CMD_VEL_TOPIC, tau)[:2], [-0.1, -1.0], [0.3, 1.0]) if fresh else np.zeros(2)
        )
        action = target_to_action(target)
        out.append(
            {
                "usable": js is not None and imu is not None,
                "tau": tau,
                "joints": js,
                "imu": imu,
                "phase": None if phase is None else float(phase[0]),
                "command": command,
                "action": action,
                "last_action": prev_action,
                "clipped": bool(np.any(np.abs((target - STAND_POSE) / ACTION_SCALE) > 1)),
            }
        )
        prev_action = action
    return out


def check_observations(demos: Demonstrations, expected: list[dict]) -> None:
    usable = [e for e in expected if e["usable"]]
    assert len(demos) == len(usable)
    obs = demos.observations
    for i, e in enumerate(usable):
        q, gyro = e["imu"][:4], e["imu"][4:7]
        np.testing.assert_allclose(obs[i, OBS_SLICES["gravity"]], gravity_from_quaternion(q), atol=1e-6)
        np.testing.assert_allclose(obs[i, OBS_SLICES["gyro"]], gyro, atol=1e-5)
        np.testing.assert_allclose(obs[i, OBS_SLICES["joint_pos"]], e["joints"] - STAND_POSE, atol=1e-6)
        np.testing.assert_allclose(obs[i, OBS_SLICES["last_action"]], e["last_action"], atol=1e-6)
        angle = 2 * np.pi * e["phase"]
        np.testing.assert_allclose(obs[i, OBS_SLICES["phase"]], [np.sin(angle), np.cos(angle)], atol=1e-6)
        np.testing.assert_allclose(obs[i, OBS_SLICES["command"]], e["command"], atol=1e-6)
        np.testing.assert_allclose(demos.actions[i], e["action"], atol=1e-6)


@pytest.mark.parametrize("serializer", ["rosbags", "rclpy"])
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_import_matches_ground_truth(tmp_path: Path, storage: str, serializer: str) -> None:
    rec = make_recording()
    bag = write_bag(tmp_path / "bag", rec, storage, serializer=serializer)
    demos, report = import_bags([bag], output=tmp_path / "demos.npz")

    expected = expected_samples(rec)
    check_observations(demos, expected)
    # The first grid step precedes the first joint state: dropped, and said so.
    assert report.dropped == {"before the first /joint_states message": 1}
    assert report.episodes == 1 and demos.episode_starts.sum() == 1
    bag_report = report.bags[0]
    assert bag_report.storage == storage
    assert bag_report.topics == TYPES
    assert bag_report.message_counts == {t: len(s.times_ns) for t, s in rec.streams.items()}
    assert bag_report.duration_s == pytest.approx(4.0, abs=0.05)
    assert GAIT_PHASE_TOPIC in bag_report.phase_source
    assert bag_report.clipped_actions == sum(e["clipped"] for e in expected if e["usable"])
    assert bag_report.held_actions == 0  # timer jitter does not make a step reuse a command
    # The commands the operator gave, clipped to the limits, then zero after the timeout.
    vx = demos.observations[:, OBS_SLICES["command"]][:, 0]
    assert vx.max() == pytest.approx(0.3) and np.all(vx[-20:] == 0.0)
    # What was saved is what was returned, readable without pickle.
    loaded = Demonstrations.load(tmp_path / "demos.npz")
    np.testing.assert_array_equal(loaded.observations, demos.observations)
    assert loaded.metadata["source"] == "rosbag2"


def test_several_bags_concatenate_as_episodes(tmp_path: Path) -> None:
    a = write_bag(tmp_path / "a", make_recording(duration_s=2.0, seed=1), "mcap")
    b = write_bag(tmp_path / "b", make_recording(duration_s=2.0, seed=2), "sqlite3")
    demos, report = import_bags([a, b])
    assert report.episodes == 2 and demos.n_episodes == 2
    assert len(demos) == report.bags[0].samples + report.bags[1].samples


def test_bare_storage_file_and_metadata_path_are_accepted(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "bag", make_recording(duration_s=1.0), "mcap")
    by_dir, _ = import_bags([bag])
    by_file, _ = import_bags([next(bag.glob("*.mcap"))])
    by_meta, _ = import_bags([bag / "metadata.yaml"])
    np.testing.assert_array_equal(by_dir.observations, by_file.observations)
    np.testing.assert_array_equal(by_dir.observations, by_meta.observations)


def test_missing_phase_is_reconstructed_with_a_warning(tmp_path: Path) -> None:
    rec = make_recording(duration_s=2.0)
    topics = tuple(t for t in TYPES if t != GAIT_PHASE_TOPIC)
    demos, report = import_bags([write_bag(tmp_path / "bag", rec, "mcap", topics=topics)])
    assert "reconstructed" in report.bags[0].phase_source
    assert any(GAIT_PHASE_TOPIC in w for w in report.warnings)
    # One sample per control period from the episode start: phase = k * dt / period.
    k = np.arange(len(demos))
    angle = 2 * np.pi * np.mod(k * CONTROL_DT / GAIT_PERIOD_S, 1.0)
    np.testing.assert_allclose(
        demos.observations[:, OBS_SLICES["phase"]], np.c_[np.sin(angle), np.cos(angle)], atol=1e-5
    )


# --- bad input ---------------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(BagImportError, match="bag not found: .*nope"):
        import_bags([tmp_path / "nope"])


def test_not_a_bag(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "notes.txt").write_text("hello")
    with pytest.raises(BagImportError, match="not a rosbag2 bag: no metadata.yaml"):
        import_bags([tmp_path / "dir"])
    with pytest.raises(BagImportError, match="not a rosbag2 bag"):
        import_bags([tmp_path / "dir" / "notes.txt"])
    fake = tmp_path / "fake.mcap"
    fake.write_bytes(b"this is not an MCAP file at all")
    with pytest.raises(BagImportError, match="cannot read bag .*fake.mcap"):
        import_bags([fake])


def test_unclosed_recording_is_explained(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "bag", make_recording(duration_s=1.0), "mcap")
    (bag / "metadata.yaml").unlink()  # what a killed recorder leaves
    with pytest.raises(BagImportError, match="no metadata.yaml.*not closed cleanly"):
        import_bags([bag])


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_truncated_file(tmp_path: Path, storage: str) -> None:
    bag = write_bag(tmp_path / "bag", make_recording(duration_s=2.0), storage)
    data_file = next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))
    data = data_file.read_bytes()
    data_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagImportError, match="truncated or corrupt"):
        import_bags([bag])


def test_corrupt_message_bytes_are_reported_and_skipped(tmp_path: Path) -> None:
    rec = make_recording(duration_s=2.0)

    def garble(topic, i, t, raw):
        return (t, raw[: len(raw) // 2]) if topic == JOINT_STATES_TOPIC and i == 50 else (t, raw)

    demos, report = import_bags([write_bag(tmp_path / "bag", rec, "mcap", mutate=garble)])
    assert report.bags[0].invalid_messages == {JOINT_STATES_TOPIC: 1}
    assert report.dropped["invalid /joint_states message (non-finite or malformed)"] == 1
    assert report.episodes == 2  # the bad sample ends one episode; the next starts after it


def test_required_topic_missing(tmp_path: Path) -> None:
    topics = tuple(t for t in TYPES if t != IMU_TOPIC)
    bag = write_bag(tmp_path / "bag", make_recording(duration_s=1.0), "mcap", topics=topics)
    with pytest.raises(BagImportError, match=r"lacks messages on required topics \['/imu/data'\]"):
        import_bags([bag])


def test_unexpected_message_type(tmp_path: Path) -> None:
    bag = write_bag(
        tmp_path / "bag",
        make_recording(duration_s=1.0),
        "sqlite3",
        types={IMU_TOPIC: "std_msgs/msg/Float64"},
    )
    with pytest.raises(
        BagImportError, match="/imu/data has message type .*Float64.*expected sensor_msgs/msg/Imu"
    ):
        import_bags([bag])


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_empty_bag(tmp_path: Path, storage: str) -> None:
    bag = write_bag(tmp_path / "bag", make_recording(duration_s=1.0), storage, mutate=lambda *a: None)
    with pytest.raises(BagImportError, match="is empty"):
        import_bags([bag])


def test_gap_splits_episodes(tmp_path: Path) -> None:
    rec = make_recording(duration_s=4.0)
    gap = (T0_NS + 1_500_000_000, T0_NS + 2_000_000_000)  # half a second without IMU

    def drop_imu(topic, i, t, raw):
        return None if topic == IMU_TOPIC and gap[0] <= t < gap[1] else (t, raw)

    demos, report = import_bags([write_bag(tmp_path / "bag", rec, "mcap", mutate=drop_imu)])
    dropped = report.dropped["gap over 0.1 s in /imu/data"]
    # IMU silent for 0.5 s; samples count as stale once the last one is 0.1 s old.
    assert 19 <= dropped <= 21
    assert report.episodes == 2 and demos.n_episodes == 2
    assert len(demos) == len(expected_samples(rec)) - 1 - dropped
    # For a run with env.obs_history, each episode's past frames start afresh, as in the sim.
    stacked, _ = import_bags([tmp_path / "bag"], obs_history=2)
    assert stacked.layout is observation_layout(2)
    np.testing.assert_array_equal(
        stacked.observations, with_history(demos.observations, demos.episode_starts, 2)
    )
    np.testing.assert_array_equal(stacked.actions, demos.actions)
    # And by the rows themselves: the step before within an episode, the first frame at its start.
    obs, starts = stacked.observations, stacked.episode_starts
    past_1 = slice(OBS_DIM, OBS_DIM + FRAME_DIM)
    later, first = np.flatnonzero(~starts), np.flatnonzero(starts)
    np.testing.assert_array_equal(obs[later, past_1], obs[later - 1, :FRAME_DIM])
    np.testing.assert_array_equal(obs[first, past_1], obs[first, :FRAME_DIM])


def test_backward_jump_splits_instead_of_interleaving(tmp_path: Path) -> None:
    # Two sessions in one bag; the clock restarted 1 s "earlier" for the second one (a sim
    # restart under use_sim_time). Sorting by time would interleave them.
    first = make_recording(duration_s=2.0, schedule=((0.0, 0.1, 0.0),), cmd_vel_until_s=2.0)
    second = make_recording(
        duration_s=2.0,
        schedule=((0.0, 0.2, 0.0),),
        cmd_vel_until_s=2.0,
        start_ns=T0_NS + 1_000_000_000,
        seed=3,
    )
    demos, report = import_bags([write_bag(tmp_path / "bag", [first, second], "sqlite3")])
    assert report.bags[0].backward_jumps == 1
    assert any("jumps back" in w for w in report.warnings)
    assert demos.n_episodes == 2
    vx = demos.observations[:, OBS_SLICES["command"]][:, 0]
    episode = np.cumsum(demos.episode_starts)
    np.testing.assert_allclose(vx[episode == 1], 0.1, atol=1e-6)
    np.testing.assert_allclose(vx[episode == 2], 0.2, atol=1e-6)


def test_slightly_late_messages_are_sorted_and_counted(tmp_path: Path) -> None:
    rec = make_recording(duration_s=2.0)
    in_order, _ = import_bags([write_bag(tmp_path / "a", rec, "mcap")])

    def late_imu(items):
        # A busy recorder writes some IMU messages after the next message (a few ms newer).
        items = list(items)
        swapped = 0
        for j in range(0, len(items) - 1, 25):
            if items[j][1] == IMU_TOPIC and items[j + 1][0] > items[j][0]:
                items[j], items[j + 1] = items[j + 1], items[j]
                swapped += 1
        assert swapped > 0
        return items

    demos, report = import_bags([write_bag(tmp_path / "b", rec, "mcap", reorder=late_imu)])
    assert report.bags[0].out_of_order > 0
    assert report.bags[0].backward_jumps == 0 and demos.n_episodes == 1
    np.testing.assert_array_equal(demos.observations, in_order.observations)


def test_nan_fields_skip_samples(tmp_path: Path) -> None:
    rec = make_recording(duration_s=3.0)
    nan_at = {30, 31, 32}
    for i in nan_at:
        rec.streams[IMU_TOPIC].values[i] = rec.streams[IMU_TOPIC].values[i].copy()
        rec.streams[IMU_TOPIC].values[i][5] = np.nan  # gyro y
    demos, report = import_bags([write_bag(tmp_path / "bag", rec, "mcap")])
    assert report.bags[0].invalid_messages == {IMU_TOPIC: 3}
    # IMU at 100 Hz, grid at 50 Hz: the three bad samples are "latest" for one or two grid steps.
    assert 1 <= report.dropped["invalid /imu/data message (non-finite or malformed)"] <= 2
    assert np.all(np.isfinite(demos.observations))


def test_clipped_targets_are_counted(tmp_path: Path) -> None:
    rec = make_recording(duration_s=2.0)
    wild = STAND_POSE + 2.0 * ACTION_SCALE  # twice the action range
    for i in range(40, 45):
        rec.streams[JOINT_COMMANDS_TOPIC].values[i] = wild
    demos, report = import_bags([write_bag(tmp_path / "bag", rec, "mcap")])
    assert report.bags[0].clipped_actions == 5
    assert np.all(np.abs(demos.actions) <= 1.0)


def test_slow_command_source_is_reported(tmp_path: Path) -> None:
    rec = make_recording(duration_s=2.0)

    def every_other_command(topic, i, t, raw):
        return None if topic == JOINT_COMMANDS_TOPIC and i % 2 else (t, raw)

    demos, report = import_bags([write_bag(tmp_path / "bag", rec, "mcap", mutate=every_other_command)])
    # 25 Hz commands on the 50 Hz grid: every other sample holds the previous target.
    assert report.bags[0].held_actions == pytest.approx(len(demos) / 2, abs=2)
    assert any("slower than 50 Hz" in w for w in report.warnings)


def test_cli_prints_report_and_writes_npz(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "bag", make_recording(duration_s=2.0), "mcap")
    out = tmp_path / "demos.npz"
    run = subprocess.run(
        [sys.executable, "-m", "pidog_learning.bag_import", str(bag), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    for text in (
        JOINT_STATES_TOPIC,
        IMU_TOPIC,
        JOINT_COMMANDS_TOPIC,
        CMD_VEL_TOPIC,
        GAIT_PHASE_TOPIC,
        "dropped",
        "samples",
    ):
        assert text in run.stdout
    assert len(Demonstrations.load(out)) > 90
    # By default the labels are for the action filter pidog-train acts behind, and it says so.
    default_hz = DEFAULT_CONFIG["env"]["action_filter_hz"]
    assert default_hz > 0 and f"behind a {default_hz:g} Hz action filter" in run.stdout
    expected, _ = import_bags([bag], action_filter_hz=default_hz)
    np.testing.assert_array_equal(Demonstrations.load(out).actions, expected.actions)
    plain = subprocess.run(
        [
            sys.executable,
            "-m",
            "pidog_learning.bag_import",
            str(bag),
            "-o",
            str(out),
            "--action-filter-hz",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plain.returncode == 0, plain.stderr
    assert "labels: the recorded targets" in plain.stdout
    np.testing.assert_array_equal(
        Demonstrations.load(out, action_filter_hz=0.0).actions, import_bags([bag])[0].actions
    )
    # A run behind the default filter refuses labels for none (as pidog-train reads a
    # demonstrations file it finds in its run folder), naming both and the way out.
    with pytest.raises(
        DemonstrationError,
        match=f"labelled for a 0 Hz action filter; this run acts behind {default_hz:g} Hz.*--action-filter-hz",
    ):
        Demonstrations.load(out, action_filter_hz=default_hz)

    bad = subprocess.run(
        [sys.executable, "-m", "pidog_learning.bag_import", str(tmp_path / "missing"), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "bag not found" in bad.stderr
    never = tmp_path / "never.npz"
    too_fast = subprocess.run(
        [
            sys.executable,
            "-m",
            "pidog_learning.bag_import",
            str(bag),
            "-o",
            str(never),
            "--action-filter-hz",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert too_fast.returncode == 2 and "action_filter_hz must be 0" in too_fast.stderr and not never.exists()

    history = subprocess.run(
        [sys.executable, "-m", "pidog_learning.bag_import", str(bag), "-o", str(out), "--obs-history", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert history.returncode == 0, history.stderr
    assert Demonstrations.load(out, observation_layout(2)).observations.shape[1] == observation_layout(2).dim
    with pytest.raises(
        DemonstrationError,
        match="recorded with observation layout 'pidog-obs-v1h2'; this run uses 'pidog-obs-v1'",
    ):
        Demonstrations.load(out)


def test_serialized_messages_are_what_ros_sends() -> None:
    # The synthetic bytes deserialise with rclpy itself: the bags hold real ROS 2 messages.
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Imu, JointState

    rec = make_recording(duration_s=0.2)
    js = deserialize_message(
        serialize(JOINT_STATES_TOPIC, 5, rec.streams[JOINT_STATES_TOPIC].values[0]), JointState
    )
    assert list(js.name)[0] == "lf_hip" and len(js.position) == 8
    imu = deserialize_message(serialize(IMU_TOPIC, 5, rec.streams[IMU_TOPIC].values[0]), Imu)
    assert imu.header.frame_id == IMU_FRAME_ID


def test_rclpy_serialised_joint_states_are_the_bytes_rosbags_alone_refuses() -> None:
    # What the "rclpy" bags above hold, so that test keeps covering the real problem: a JointState
    # with empty velocity/effort as rclpy serialises it carries alignment slack at its end, which
    # rosbags' own deserialize_cdr refuses and the importer reads like ROS 2 does.
    from rosbags.serde import SerdeError

    rec = make_recording(duration_s=0.2)
    value = rec.streams[JOINT_STATES_TOPIC].values[0]
    raw = rclpy_serialized(JOINT_STATES_TOPIC, serialize(JOINT_STATES_TOPIC, 5, value))
    with pytest.raises(SerdeError, match="size mismatch"):
        TS.deserialize_cdr(raw, TYPES[JOINT_STATES_TOPIC])
    msg = deserialize(raw, TYPES[JOINT_STATES_TOPIC])
    np.testing.assert_array_equal(msg.position, value)
    assert len(msg.velocity) == 0 and len(msg.effort) == 0 and list(msg.name) == list(JOINT_NAMES)


def test_labels_for_a_run_behind_an_action_filter_make_it_execute_the_recorded_targets(
    tmp_path: Path,
) -> None:
    """For a run behind a 6 Hz action filter the label of each sample is the action whose
    filtering, from the sample's previous target, executes its own target: BC's robot is told
    what the teleop gait's was. Labels the filter cannot reach that fast are clipped and counted."""
    rec = make_recording()
    bag = write_bag(tmp_path / "bag", rec, "mcap")
    plain, _ = import_bags([bag])
    filtered, report = import_bags([bag], action_filter_hz=6.0)
    np.testing.assert_array_equal(filtered.observations, plain.observations)
    alpha = action_filter_alpha(6.0)
    previous = plain.observations[:, OBS_SLICES["last_action"]]
    executed = filter_action(previous, filtered.actions.astype(np.float64), alpha)
    reached = np.all(np.abs(filtered.actions) < 1.0 - 1e-6, axis=1)
    assert reached.sum() > 0.5 * len(plain) and not np.allclose(filtered.actions, plain.actions)
    np.testing.assert_allclose(executed[reached], plain.actions[reached], atol=1e-5)
    assert report.unfiltered_clipped == int((~reached).sum())
    assert filtered.metadata["action_filter_hz"] == 6.0
    # With an observation history too (the two used to share one metadata dict, and the
    # stacked set was refused as the unstacked layout).
    stacked, _ = import_bags([bag], action_filter_hz=6.0, obs_history=2)
    assert stacked.layout == observation_layout(2) and stacked.metadata["action_filter_hz"] == 6.0
    np.testing.assert_array_equal(stacked.actions, filtered.actions)
    with pytest.raises(BagImportError, match="action_filter_hz must be 0"):
        import_bags([bag], action_filter_hz=30.0)
