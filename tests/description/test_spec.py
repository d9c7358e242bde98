"""Observation/action spec, servo model and trot gait of pidog_description."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pidog_description import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER, STAND_POSE
from pidog_description.gait import TrotGait
from pidog_description.servo import ServoModel
from pidog_description.spec import (
    ACTION_SCALE,
    CONTROL_DT,
    FRAME_DIM,
    LIFT_ACCEL_MPS2,
    OBS_DIM,
    OBS_LAYOUT,
    OBS_SLICES,
    FrameHistory,
    action_to_target,
    build_observation,
    gravity_from_quaternion,
    layout_for_dim,
    layout_for_version,
    metadata_mismatches,
    mirror_action,
    mirror_observation,
    observation_layout,
    phase_features,
    picked_up,
    policy_metadata,
    roll_pitch_from_gravity,
    seconds_to_steps,
    target_to_action,
    with_history,
)

TESTS = Path(__file__).resolve().parents[1]


def test_joint_order_is_sunfounder_leg_order() -> None:
    assert JOINT_NAMES == ("lf_hip", "lf_knee", "rf_hip", "rf_knee", "lh_hip", "lh_knee", "rh_hip", "rh_knee")


def test_observation_layout_and_content() -> None:
    q = STAND_POSE + 0.1
    obs = build_observation(
        gravity_body=np.array([0.0, 0.0, -1.0]),
        gyro=np.array([0.1, 0.2, 0.3]),
        joint_pos=q,
        last_action=np.full(8, 0.5),
        phase=0.25,
        command=np.array([0.2, -0.3]),
    )
    assert obs.shape == (OBS_DIM,) and obs.dtype == np.float32
    np.testing.assert_allclose(obs[OBS_SLICES["joint_pos"]], 0.1, atol=1e-6)
    np.testing.assert_allclose(obs[OBS_SLICES["phase"]], [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(obs[OBS_SLICES["command"]], [0.2, -0.3], atol=1e-6)


def test_gravity_and_roll_pitch_from_orientation() -> None:
    np.testing.assert_allclose(gravity_from_quaternion([1, 0, 0, 0]), [0, 0, -1], atol=1e-12)
    pitch = 0.3  # nose down: rotation about +y
    q = [np.cos(pitch / 2), 0, np.sin(pitch / 2), 0]
    g = gravity_from_quaternion(q)
    roll_est, pitch_est = roll_pitch_from_gravity(g)
    assert abs(roll_est) < 1e-9 and abs(pitch_est - pitch) < 1e-9


def test_action_mapping_round_trip_and_limits() -> None:
    a = np.linspace(-0.4, 0.4, 8)  # inside the limits for every joint
    np.testing.assert_allclose(target_to_action(action_to_target(a)), a, atol=1e-9)
    np.testing.assert_allclose(action_to_target(np.zeros(8)), STAND_POSE)
    big = action_to_target(np.full(8, 50.0))  # clipped to [-1, 1] first
    np.testing.assert_allclose(big, np.minimum(STAND_POSE + ACTION_SCALE, JOINT_UPPER))
    nan = action_to_target(np.full(8, np.nan))
    np.testing.assert_allclose(nan, STAND_POSE)


def test_servo_model_rate_limits_and_holds_on_nan() -> None:
    servo = ServoModel(STAND_POSE)
    target = np.clip(STAND_POSE + 1.0, JOINT_LOWER, JOINT_UPPER)
    pos = servo.step(target, CONTROL_DT).copy()
    max_step = np.deg2rad(428.0) * CONTROL_DT
    np.testing.assert_allclose(np.abs(pos - STAND_POSE), np.minimum(max_step, np.abs(target - STAND_POSE)))
    held = servo.step(np.full(8, np.nan), CONTROL_DT)
    np.testing.assert_allclose(held, pos)


def test_trot_moves_diagonal_pairs_together_and_stays_reachable() -> None:
    gait = TrotGait()
    for phase in np.linspace(0, 1, 41):
        feet = gait.foot_targets(phase, vx=0.25, wz=0.0)
        np.testing.assert_allclose(feet[0, 0], feet[3, 0] - 0.02)  # LF strides with RH (stand offset)
        assert (feet[0, 1] < 0.095 - 1e-9) == (feet[3, 1] < 0.090 - 1e-9)  # and lifts with it
        q = gait.joint_targets(phase, vx=0.25, wz=0.0)
        assert np.all(np.abs(target_to_action(q)) < 1.0 + 1e-9)
    # Swing lifts a foot; its diagonal partner lifts with it, the other pair stays down.
    for vx in (0.3, -0.1):  # the largest commands keep every joint inside its limits
        for phase in np.linspace(0, 1, 41):
            q = gait.joint_targets(phase, vx=vx, wz=0.0)
            assert np.all((q >= JOINT_LOWER) & (q <= JOINT_UPPER))
    feet = gait.foot_targets(0.25, vx=0.2, wz=0.0)
    assert feet[0, 1] < 0.095 and feet[3, 1] < 0.090
    assert feet[1, 1] == 0.095 and feet[2, 1] == 0.090


def test_trot_turns_by_striding_further_on_the_outside() -> None:
    strides = TrotGait().step_lengths(vx=0.1, wz=0.5)  # turn left: right legs stride further
    assert strides[1] > strides[0] and strides[3] > strides[2]


def test_policy_metadata_mismatch_is_reported() -> None:
    meta = policy_metadata()
    assert metadata_mismatches(meta) == []
    bad = dict(meta, joint_names='["a"]', control_hz="30.0")
    problems = metadata_mismatches(bad)
    assert any("joint_names" in p for p in problems) and any("control_hz" in p for p in problems)
    del bad["stand_pose"]
    assert any("missing metadata 'stand_pose'" in p for p in metadata_mismatches(bad))


def test_the_left_right_mirror_reflects_every_signal_and_the_trot_commutes_with_it() -> None:
    """Reflecting the robot through its sagittal plane: left and right legs swap, y of gravity
    and x, z of the gyro flip, the diagonal pairs swap (half a gait cycle), a left turn becomes
    a right one. The scripted trot, built without the mirror, must commute with it: the same
    map is what PPO's symmetry loss asks of the policy."""
    rng = np.random.default_rng(0)
    legs = {"lf": "rf", "rf": "lf", "lh": "rh", "rh": "lh"}
    swap = [JOINT_NAMES.index(legs[name[:2]] + name[2:]) for name in JOINT_NAMES]
    gait = TrotGait()
    for _ in range(200):
        gravity, gyro = rng.normal(size=3), rng.normal(size=3)
        joints, last = rng.uniform(-1, 1, 8), rng.uniform(-1, 1, 8)
        phase, command = rng.uniform(), np.array([rng.uniform(-0.15, 0.3), rng.uniform(-1, 1)])
        obs = build_observation(gravity, gyro, STAND_POSE + joints, last, phase, command)
        reflected = build_observation(
            gravity * [1, -1, 1],
            gyro * [-1, 1, -1],
            STAND_POSE + joints[swap],
            last[swap],
            phase + 0.5,
            command * [1, -1],
        )
        np.testing.assert_allclose(mirror_observation(obs), reflected, atol=1e-6)
        np.testing.assert_array_equal(mirror_observation(mirror_observation(obs)), obs)

        action = target_to_action(gait.joint_targets(phase, *command))
        mirrored_situation = target_to_action(
            gait.joint_targets((phase + 0.5) % 1.0, command[0], -command[1])
        )
        np.testing.assert_allclose(mirrored_situation, mirror_action(action), atol=1e-6)
    np.testing.assert_allclose(phase_features(0.25 + 0.5), -phase_features(0.25), atol=1e-12)


def test_lift_test_reads_the_mean_and_numpys_lower_quartile_of_any_window() -> None:
    """picked_up computes the quartile itself (cheaper than np.percentile): same numbers, any
    window length hw_node's parameters can give, and the decision follows both."""
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4, 5, 29, 30, 31, 100):
        for _ in range(50):
            window = rng.normal(2.0, 3.0, n)
            _lifted, mean, quartile = picked_up(window)
            assert mean == float(np.mean(window))
            assert quartile == pytest.approx(float(np.percentile(window, 25)), abs=1e-12)
    smooth_lift = np.full(30, LIFT_ACCEL_MPS2 + 0.5)
    assert picked_up(smooth_lift)[0]
    footfalls = np.where(np.arange(30) % 3 == 0, 12.0, -1.0)  # mean 3.33 m/s^2, mostly down
    assert np.mean(footfalls) > LIFT_ACCEL_MPS2 and not picked_up(footfalls)[0]


def test_seconds_to_steps_counts_whole_control_periods_without_losing_one_to_rounding() -> None:
    assert seconds_to_steps(20.0) == 1000  # a default episode
    assert seconds_to_steps(0.4) == 20  # the gait cycle, the tracking window
    # 0.58 / 0.02 is 28.999999999999996 in floating point: truncating it loses a step.
    assert seconds_to_steps(0.58) == 29
    assert all(seconds_to_steps(k * CONTROL_DT) == k for k in range(1, 5000))


# --- observation history (sim config env.obs_history) ------------------------------------------


def test_a_history_layout_appends_past_frames_and_keeps_the_present_where_it_was() -> None:
    v1, h2 = observation_layout(0), observation_layout(2)
    assert (v1.version, v1.dim) == ("pidog-obs-v1", OBS_DIM) and v1.items == OBS_LAYOUT
    assert (h2.version, h2.dim, h2.history) == ("pidog-obs-v1h2", OBS_DIM + 2 * FRAME_DIM, 2)
    for name, _size in OBS_LAYOUT:  # every reader of the present values reads any layout
        assert h2.slices[name] == OBS_SLICES[name]
    assert h2.slices["gyro_1"] == slice(OBS_DIM + 3, OBS_DIM + 6)
    assert h2.slices["last_action_2"].stop == h2.dim and h2.past == slice(OBS_DIM, h2.dim)
    low, high = h2.bounds()
    v1_low, v1_high = v1.bounds()
    for k in (1, 2):  # a past frame is bounded as the present one
        frame = slice(OBS_DIM + (k - 1) * FRAME_DIM, OBS_DIM + k * FRAME_DIM)
        assert (low[frame] == v1_low[:FRAME_DIM]).all() and (high[frame] == v1_high[:FRAME_DIM]).all()
    assert layout_for_version("pidog-obs-v1h2") is h2 and layout_for_dim(h2.dim) is h2
    assert policy_metadata(h2)["obs_dim"] == "70" and metadata_mismatches(policy_metadata(h2)) == []
    with pytest.raises(ValueError, match="unknown observation layout 'pidog-obs-v2'"):
        layout_for_version("pidog-obs-v2")
    with pytest.raises(
        ValueError, match=r"observation history must be a whole number of steps in \[0, 10\], got 11"
    ):
        observation_layout(11)
    with pytest.raises(ValueError, match="plus 22 per past frame"):
        layout_for_dim(OBS_DIM + 5)
    # The layout a policy names must be that layout exactly.
    wrong = {**policy_metadata(h2), "obs_dim": str(OBS_DIM)}
    assert any("'obs_dim'" in p for p in metadata_mismatches(wrong))


def test_mirroring_a_history_observation_mirrors_every_frame_as_the_present_one() -> None:
    h2 = observation_layout(2)
    obs = np.random.default_rng(3).normal(size=(5, h2.dim)).astype(np.float32)
    mirrored = mirror_observation(obs)
    np.testing.assert_array_equal(mirror_observation(mirrored), obs)  # a reflection, twice, is nothing
    np.testing.assert_array_equal(mirrored[:, :OBS_DIM], mirror_observation(obs[:, :OBS_DIM]))
    for k in (1, 2):  # each past frame, mirrored as if it were the present one
        frame = slice(OBS_DIM + (k - 1) * FRAME_DIM, OBS_DIM + k * FRAME_DIM)
        as_present = np.concatenate([obs[:, frame], obs[:, FRAME_DIM:OBS_DIM]], axis=1)
        np.testing.assert_array_equal(mirrored[:, frame], mirror_observation(as_present)[:, :FRAME_DIM])


def test_frame_history_keeps_the_steps_before_and_a_restart_forgets_them() -> None:
    history = FrameHistory(2, n=3)
    frames = [np.full((3, FRAME_DIM), float(t)) + np.arange(3)[:, None] * 100 for t in range(4)]
    past = history.observe(frames[0])
    np.testing.assert_array_equal(past, np.repeat(frames[0][:, None], 2, axis=1))  # no past: the first frame
    history.shift()
    past = history.observe(frames[1])
    np.testing.assert_array_equal(past[:, 0], frames[0])
    np.testing.assert_array_equal(past[:, 1], frames[0])
    history.shift()
    history.reset(np.array([1]))  # robot 1 starts a new episode
    past = history.observe(frames[2])
    np.testing.assert_array_equal(past[[0, 2], 0], frames[1][[0, 2]])
    np.testing.assert_array_equal(past[[0, 2], 1], frames[0][[0, 2]])
    np.testing.assert_array_equal(past[1], np.repeat(frames[2][1:2], 2, axis=0))
    past = history.observe(frames[2][[2]], rows=np.array([2]))  # observing twice in a step changes nothing
    np.testing.assert_array_equal(past[0, 0], frames[1][2])


def test_a_recorded_sequence_gets_the_history_the_runtime_would_have_kept() -> None:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(7, OBS_DIM)).astype(np.float32)
    starts = np.array([True, False, False, True, False, False, False])
    stacked = with_history(obs, starts, 2)
    assert stacked.shape == (7, OBS_DIM + 2 * FRAME_DIM) and stacked.dtype == np.float32
    np.testing.assert_array_equal(stacked[:, :OBS_DIM], obs)
    past = stacked[:, OBS_DIM:].reshape(7, 2, FRAME_DIM)
    expected = {0: (0, 0), 1: (0, 0), 2: (1, 0), 3: (3, 3), 4: (3, 3), 5: (4, 3), 6: (5, 4)}
    for row, (one, two) in expected.items():
        np.testing.assert_array_equal(past[row, 0], obs[one, :FRAME_DIM])
        np.testing.assert_array_equal(past[row, 1], obs[two, :FRAME_DIM])
    np.testing.assert_array_equal(with_history(obs, starts, 0), obs)
