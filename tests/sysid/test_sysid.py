"""pidog-sysid: identification from a bag recorded with known, non-default parameters, and the
bags it must refuse or skip (issue 14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pidog_control.excitation import excitation_trajectory
from pidog_description import JOINT_NAMES, STAND_POSE
from pidog_description.topics import IMU_TOPIC, JOINT_COMMANDS_TOPIC
from pidog_learning import sysid
from pidog_sim import robot_params

GYRO_BIAS = (0.01, -0.02, 0.005)
KNEES = [i for i, name in enumerate(JOINT_NAMES) if name.endswith("_knee")]
HIDDEN = {
    "nominal": {"servo_strength": 0.7, "latency_steps": 2, "mass_scale": 1.15, "imu_gyro_bias": GYRO_BIAS},
    "randomization": {"latency_steps": (0, 2)},
}


@pytest.fixture(scope="module")
def excitation_bag(tmp_path_factory) -> Path:
    """The excitation routine driving the simulator with hidden, non-default parameters."""
    targets, _ = excitation_trajectory(1.0)
    return sysid.simulate_bag(tmp_path_factory.mktemp("bags") / "excite", targets, HIDDEN)


@pytest.mark.slow
def test_cli_identifies_strength_latency_and_gyro_bias(excitation_bag: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "robot_params.yaml"
    code = sysid.main(
        [str(excitation_bag), "--out", str(out), "--fit", "servo_strength", "servo_speed", "latency_steps"]
        + ["--known", "mass_scale=1.15", "--population", "8", "--generations", "8", "--max-windows", "8"]
        + ["--threads", "2", "--no-progress", "--accept-unconverged"]
    )
    assert code == 0, capsys.readouterr().err
    doc = robot_params.load(out)  # what it wrote is a valid parameters file
    p, fit = doc["parameters"], doc["fit"]
    # Latency: exact here (target: within one control step), from the per-latency profile.
    assert abs(p["latency_steps"]["value"] - 2) <= 1
    assert fit["latency_profile"][2] == min(fit["latency_profile"].values())
    np.testing.assert_allclose(p["imu_gyro_bias"]["value"], GYRO_BIAS, atol=0.005)
    # Servo strength with the mass known (weighed): target within 15 % (measured: within 2 %
    # over seeds 0-2). Strength and mass together are not separable yet (docs/SYSID.md).
    assert p["servo_strength"]["value"] == pytest.approx(0.7, rel=0.15)
    # The hidden robot's servos are at the model's full speed, but at strength 0.7 their
    # torque-speed curve keeps the joints below any limit from ~0.7 up: the snaps' speed profile
    # is flat there, so the speed is a bound, never a confident value.
    assert "servo_speed" not in p and fit["speed_windows"] >= sysid.MIN_SPEED_WINDOWS
    bound = fit["not_determined"]["servo_speed"]
    assert 0.6 <= bound["at_least"] <= 1.0 and "torque-speed" in bound["reason"], bound
    assert fit["quality"]["gyro"]["r2"] > 0.8 and fit["quality"]["accel"]["r2"] > 0.8
    assert fit["windows"] >= 3 and fit["bags"] == [str(excitation_bag)]
    assert (tmp_path / "robot_params.png").stat().st_size > 10_000
    # The file drives the simulator: nominal latency 2, strength from the fit.
    override = robot_params.load_override(out)
    assert override["nominal"]["latency_steps"] == p["latency_steps"]["value"]


@pytest.mark.slow
def test_a_stiffer_floor_contact_is_identified_with_the_strength(tmp_path: Path) -> None:
    """--fit ... contact_timeconst: a robot on a grippier floor (contact time constant 8 ms, the
    model's 20) is told apart from a weaker or stronger one, and the file carries it to the
    simulator. Measured on 60 s bags: within 2 % at 8 and 35 ms (docs/SYSID.md); on this 31 s
    bag 8 x 15 finds 7.6 ms (8 x 8 stopped at the search's 4 ms floor)."""
    targets, _ = excitation_trajectory(1.0)
    hidden = {
        "nominal": {**HIDDEN["nominal"], "contact_timeconst": 0.008},
        "randomization": HIDDEN["randomization"],
    }
    bag = sysid.simulate_bag(tmp_path / "stiff", targets, hidden)
    out = tmp_path / "robot_params.yaml"
    code = sysid.main(
        [str(bag), "--out", str(out), "--fit", "servo_strength", "contact_timeconst"]
        + ["--known", "mass_scale=1.15", "latency_steps=2", "--population", "8", "--generations", "15"]
        + ["--max-windows", "8", "--threads", "2", "--no-progress", "--accept-unconverged"]
    )
    assert code == 0
    p = robot_params.load(out)["parameters"]
    assert p["contact_timeconst"]["value"] == pytest.approx(0.008, rel=0.15)
    assert p["servo_strength"]["value"] == pytest.approx(0.7, rel=0.15)
    nominal = robot_params.load_override(out)["nominal"]
    assert nominal["contact_timeconst"] == p["contact_timeconst"]["value"]


def test_unconverged_fit_writes_nothing(excitation_bag: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "robot_params.yaml"
    code = sysid.main(
        [str(excitation_bag), "--out", str(out), "--fit", "servo_strength", "mass_scale"]
        + ["--population", "4", "--generations", "1", "--max-windows", "2", "--threads", "2", "--no-progress"]
    )
    assert code == 3
    assert "did not converge" in capsys.readouterr().err
    assert not out.exists()


def test_bad_bags_are_skipped_or_refused_by_name(tmp_path: Path, capsys) -> None:
    moving, _ = excitation_trajectory(0.3)
    no_imu = sysid.simulate_bag(tmp_path / "no_imu", moving, topics=(JOINT_COMMANDS_TOPIC,))
    still = sysid.simulate_bag(tmp_path / "still", np.tile(STAND_POSE, (200, 1)))
    short = sysid.simulate_bag(tmp_path / "short", moving[:50])
    other = sysid.simulate_bag(
        tmp_path / "other_robot", moving[:200], joint_names=tuple(f"j{i}" for i in range(8))
    )
    series, report = sysid.load_bags([no_imu, still, short, other, tmp_path / "missing"], min_seconds=2.0)
    assert series == []
    assert f"{IMU_TOPIC}" in report.skipped[str(no_imu)]
    assert "no motion" in report.skipped[str(still)]
    assert "too short" in report.skipped[str(short)]
    assert "another robot" in report.skipped[str(other)]
    assert "not found" in report.skipped[str(tmp_path / "missing")]
    with pytest.raises(sysid.SysidError, match="no usable bag: .*no_imu"):
        sysid.identify([no_imu, still], progress=False)
    code = sysid.main([str(still), "--out", str(tmp_path / "p.yaml"), "--no-progress"])
    assert code == 2 and "no motion" in capsys.readouterr().err
    assert not (tmp_path / "p.yaml").exists()


def test_series_marks_non_finite_and_gaps(excitation_bag: Path) -> None:
    s = sysid.read_series(excitation_bag)
    assert s.ok.all() and len(s.ok) == len(excitation_trajectory(1.0)[0])
    np.testing.assert_allclose(s.commands, excitation_trajectory(1.0)[0])  # each sample's own step


def _fit_all_four(bag: Path) -> sysid.FitResult:
    """Strength, speed, latency and mass free (8 x 15, 8 windows). The same four from a bag
    recorded over DDS, on twice the generations: tests/sysid/test_sysid_dds.py."""
    return sysid.identify(
        [bag],
        fit=("servo_strength", "servo_speed", "latency_steps", "mass_scale"),
        population=8,
        generations=15,
        max_windows=8,
        threads=2,
        progress=False,
    )


def _series(commands: np.ndarray, gyro: np.ndarray) -> sysid.Series:
    n = len(commands)
    quat = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    accel = np.tile([0.0, 0.0, 9.81], (n, 1))
    return sysid.Series("synthetic", commands, commands.copy(), quat, gyro, accel, np.ones(n, dtype=bool))


def test_a_window_starts_from_rest_only_if_commands_and_gyro_were_still() -> None:
    n, burst = 120, 40  # the commands hold the stand pose, then one joint moves
    commands = np.tile(STAND_POSE, (n, 1))
    commands[burst:, KNEES[0]] += 0.1 * np.sin(np.linspace(0, 3 * np.pi, n - burst))
    still = _series(commands, np.zeros((n, 3)))
    windows = sysid.cut_windows([still], 50, 8)
    assert windows.rested[0] and burst - sysid.CALM_STEPS <= windows.source[0][1] <= burst
    swaying = _series(commands, np.zeros((n, 3)))
    swaying.gyro[:burst, 1] = 0.2 * np.sin(np.arange(burst))  # the robot still rocks: not at rest
    assert not sysid.cut_windows([swaying], 50, 8).rested[0]


def test_one_unpredictable_window_does_not_pull_the_fit(excitation_bag: Path) -> None:
    """Least trimmed squares: a window that no candidate near the truth explains (a foot slipped,
    the robot was knocked) is left out of each candidate's score instead of deciding the fit."""
    series, _ = sysid.load_bags([excitation_bag], 2.0)
    windows = sysid.cut_windows(series, 50, 64)
    stage_one = windows.rested & (sysid.speed_binds_below_each(windows) <= sysid.SEARCH["servo_speed"][0])
    windows = sysid._subset(windows, np.flatnonzero(stage_one).tolist())
    assert windows.n >= sysid.MIN_RESTED_WINDOWS
    candidates = [(0.7, 1.15), (0.85, 1.15)]  # the truth and a wrong one
    obj = sysid.Objective(windows, len(candidates), threads=2)
    try:
        values = {
            "servo_strength": np.repeat([c[0] for c in candidates], windows.n),
            "mass_scale": np.repeat([c[1] for c in candidates], windows.n),
            "servo_speed": np.ones(len(candidates) * windows.n),
            "latency_steps": np.full(len(candidates) * windows.n, 2.0),
            "friction": np.full(len(candidates) * windows.n, obj.default_friction),
        }
        traces = obj.simulate(values)
        # The window where the two differ most: recorded far off, on the wrong one's side.
        odd = int(np.argmax(np.abs(traces["gyro"][0] - traces["gyro"][1]).sum(axis=(1, 2))))
        for key in ("gyro", "gravity", "accel"):
            truth, wrong = traces[key][0, odd], traces[key][1, odd]
            getattr(windows, key)[odd] = truth + 25.0 * (wrong - truth)
        trimmed, _, _ = obj.costs(values)
        obj.trim = 0.0
        untrimmed, _, _ = obj.costs(values)
    finally:
        obj.close()
    assert np.argmin(trimmed) == 0, trimmed
    assert np.argmin(untrimmed) != 0, untrimmed  # every window scored: the odd one decides


def test_speed_binds_below_reads_the_largest_command_step(excitation_bag: Path) -> None:
    series, _ = sysid.load_bags([excitation_bag], 2.0)
    windows = sysid.cut_windows(series, 50, 64)
    # From rest, only the squat snaps reach the speed limit of a searched speed (they are what
    # the speed is fitted on); the smooth squats and rocks stay below the slowest one's.
    each = sysid.speed_binds_below_each(windows)
    _, labels = excitation_trajectory(1.0)
    snaps = [first for first, name in labels if name.startswith("snap_down")]
    has_snap = np.array([any(st <= f < st + 50 for f in snaps) for _, st in windows.source])
    rested = windows.rested
    assert has_snap[rested].sum() == len(snaps)
    assert np.all(each[rested & has_snap] > sysid.SEARCH["servo_speed"][0])
    assert np.all(each[rested & ~has_snap] < sysid.SEARCH["servo_speed"][0])
    assert sysid.speed_binds_below(windows) == each.max()
    one = sysid._subset(windows, [0])
    one.history[:] = STAND_POSE
    one.start_joints[:] = STAND_POSE
    one.commands[:] = STAND_POSE
    one.commands[0, 20:, 3] += 0.3  # one joint steps by 0.3 rad in one control period
    limit = sysid.SERVO_MAX_SPEED * sysid.CONTROL_DT
    assert sysid.speed_binds_below(one) == pytest.approx(0.3 / limit)


def _fast_squats(strength: float, speed: float) -> tuple[np.ndarray, np.ndarray]:
    """Joint angles and gyro while every knee steps 0.4 rad at once, five times (one robot)."""
    from pidog_sim.batch import BatchSim

    sim = BatchSim(
        1, randomize=False, config={"nominal": {"servo_strength": strength, "servo_speed": speed}}, threads=1
    )
    try:
        sim.reset(np.arange(1), seeds=np.arange(1))
        joints, gyro = [], []
        for k in range(100):
            target = STAND_POSE.copy()
            if k >= 50 and (k // 10) % 2 == 1:
                target[KNEES] += 0.4  # 0.4 rad in one 20 ms step: 2.7x the full-speed limit
            sim.step(target[None])
            joints.append(sim.joint_positions()[0].copy())
            gyro.append(sim.imu()[1][0].copy())
        return np.array(joints), np.array(gyro)
    finally:
        sim.close()


def test_a_weak_servos_speed_limit_never_acts_so_sysid_cannot_see_it() -> None:
    """Why a 0.7-strength robot's speed is reported as not determined whatever the excitation:
    its torque-speed curve already caps the joints below any speed limit above ~0.7."""
    cap = sysid.speed_cap_of_strength(0.7)
    assert cap == pytest.approx(0.7, rel=0.05)  # damping = stall torque / no-load speed
    free_q, free_g = _fast_squats(0.7, 2.0)
    for speed in (cap * 1.05, 0.9, 1.2):
        q, g = _fast_squats(0.7, speed)
        np.testing.assert_allclose(q, free_q, atol=1e-9, err_msg=f"speed {speed} changed the joints")
        np.testing.assert_allclose(g, free_g, atol=1e-9, err_msg=f"speed {speed} changed the gyro")
    slow_q, slow_g = _fast_squats(0.7, 0.5)  # below the cap the limit acts, and the IMU shows it
    assert np.abs(slow_q - free_q).max() > 0.05 and np.abs(slow_g - free_g).max() > 0.5


def test_a_fitted_speed_above_either_bound_is_reported_as_a_bound_not_a_value() -> None:
    cap = sysid.speed_cap_of_strength(0.7)
    assert sysid.speed_not_determined(0.6, 0.7, speed_bound=1.5) is None  # below both: a value
    torque = sysid.speed_not_determined(0.9, 0.7, speed_bound=1.5)  # the hidden robot
    assert torque["at_least"] == pytest.approx(cap, abs=1e-3) and "torque-speed" in torque["reason"]
    steps = sysid.speed_not_determined(0.9, 1.2, speed_bound=0.8)  # strong, but slow commands
    assert steps["at_least"] == 0.8 and "never reaches the limit" in steps["reason"]


def test_speed_profile_gives_a_value_at_a_minimum_and_a_bound_where_it_is_flat() -> None:
    lo, hi = sysid.SEARCH["servo_speed"]
    grid = np.round(np.arange(lo, hi + 1e-9, sysid.SPEED_GRID_STEP), 4)
    entry, unknown = sysid.speed_from_profile(grid, (grid - 0.62) ** 2 + 0.01, strength=1.0)
    assert unknown is None and entry["value"] == pytest.approx(0.62, abs=1e-6)  # between grid points
    assert sysid.SPEED_GRID_STEP / 2 <= entry["uncertainty"] <= 2 * sysid.SPEED_GRID_STEP
    # Flat from 0.8 up: any faster servo fits as well, so only a lower bound is known.
    flat = np.where(grid < 0.8, 0.01 + (0.8 - grid), 0.01)
    entry, unknown = sysid.speed_from_profile(grid, flat, strength=0.7)
    assert entry is None and unknown["at_least"] == pytest.approx(0.8)
    assert "torque-speed" in unknown["reason"]


def test_a_known_latency_is_the_one_simulated(excitation_bag: Path) -> None:
    """``--known latency_steps=N`` holds the latency at N (it was once silently replaced by 0):
    the hidden robot's 2 steps fit better than 0."""
    cost = {}
    for latency in (0, 2):
        result = sysid.identify(
            [excitation_bag],
            fit=("servo_strength",),
            known={"mass_scale": 1.15, "latency_steps": latency},
            population=6,
            generations=4,
            max_windows=4,
            threads=2,
            progress=False,
        )
        assert list(result.fit["latency_profile"]) == [latency]
        cost[latency] = result.fit["cost"]
    assert cost[2] < 0.5 * cost[0], cost


@pytest.mark.slow
def test_a_stronger_robots_strength_comes_from_the_snaps(tmp_path: Path) -> None:
    """A robot stronger than the model saturates its servos only in the squat snaps: the fit
    refines strength and mass with them in (without them strength 1.1 came out +50 %; measured
    with them: within 1.2 %, docs/SYSID.md). Its speed limit (1.2) is above what its torque lets
    the joints reach, so the speed is a bound."""
    targets, _ = excitation_trajectory(1.0)
    nominal = {"servo_strength": 1.1, "servo_speed": 1.2, "latency_steps": 3, "mass_scale": 1.05}
    config = {"nominal": {**nominal, "imu_gyro_bias": GYRO_BIAS}, "randomization": {"latency_steps": (0, 3)}}
    bag = sysid.simulate_bag(tmp_path / "strong", targets, config)
    result = _fit_all_four(bag)
    p, fit = result.parameters, result.fit
    assert abs(p["latency_steps"]["value"] - 3) <= 1
    for name in ("servo_strength", "mass_scale"):
        assert p[name]["value"] == pytest.approx(nominal[name], rel=0.15), f"{name}: {p[name]}"
    assert "servo_speed" not in p and fit["not_determined"]["servo_speed"]["at_least"] <= 1.2
