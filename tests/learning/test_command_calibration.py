"""pidog-calibrate-commands: the inverse of a policy's command response, baked into its ONNX graph."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.common import SHIPPED_POLICY
from pidog_control.policy_runtime import OnnxPolicy
from pidog_description.spec import OBS_DIM, OBS_SLICES
from pidog_learning import command_calibration as cc

CMD = OBS_SLICES["command"]


def lattice() -> np.ndarray:
    v, w = np.meshgrid(cc.LATTICE_VX, cc.LATTICE_WZ, indexing="ij")
    return np.stack([v, w], axis=2)


def biased_response() -> np.ndarray:
    """A policy that overshoots forward commands (x1.4 + 0.03 m/s) and turns right weakly."""
    c = lattice()
    vx = 1.4 * c[..., 0] + 0.03
    wz = np.where(c[..., 1] < 0, 0.6 * c[..., 1], 0.9 * c[..., 1])
    return np.stack([vx, wz], axis=2)


def test_the_table_inverts_a_biased_response_where_it_is_reachable() -> None:
    table = cc.fit_inverse(biased_response())
    wanted = np.array([[0.05, 0.0], [0.1, 0.3], [0.2, -0.4], [-0.1, 0.5], [0.0, -0.5]])
    told = cc.apply_table(table, wanted)
    # What the biased policy achieves when told the calibrated command:
    achieved = np.stack([1.4 * told[:, 0] + 0.03, np.where(told[:, 1] < 0, 0.6, 0.9) * told[:, 1]], axis=1)
    assert np.abs(achieved[:, 0] - wanted[:, 0]).max() < 0.01
    assert np.abs(achieved[:, 1] - wanted[:, 1]).max() < 0.05
    # Out of reach (the right turn tops out at 0.6 rad/s): the strongest command, not a wild one.
    assert cc.apply_table(table, np.array([[0.0, -1.0]]))[0, 1] == pytest.approx(-1.0, abs=0.02)


def test_a_chance_fall_does_not_bend_a_straight_command_and_no_response_is_never_chosen() -> None:
    response = biased_response()
    rate = np.zeros(response.shape[:2])
    straight = int(np.argmin(np.abs(cc.LATTICE_WZ)))
    rate[6, straight] = 0.25  # one episode of four fell at vx 0.15, wz 0
    table = cc.fit_inverse(response, rate)
    # Straight wanted commands stay (nearly) straight: the biased policy, told the calibrated
    # command, turns by less than a third of the wz target. Excluding every cell with a fall
    # once turned 0.3 m/s into a 0.25 rad/s arc; a strong fall penalty bent it by 0.1 rad/s.
    row = int(np.argmin(np.abs(cc.TABLE_WZ)))
    told_wz = table[:, row, 1]
    turns = np.where(told_wz < 0, 0.6, 0.9) * told_wz
    assert np.abs(turns).max() <= 0.05, turns
    # A lattice command whose every episode fell has no response: never chosen, nor next to it.
    response[8, straight] = np.nan  # vx 0.25, wz 0
    table = cc.fit_inverse(response, rate)
    lo_v, hi_v = cc.LATTICE_VX[7], cc.LATTICE_VX[9]
    lo_w, hi_w = cc.LATTICE_WZ[straight - 1], cc.LATTICE_WZ[straight + 1]
    inside = (table[..., 0] > lo_v) & (table[..., 0] < hi_v) & (table[..., 1] > lo_w) & (table[..., 1] < hi_w)
    assert not inside.any(), "a calibrated command lies next to a lattice command with no response"
    rate[:, :3] = 1.0
    with pytest.raises(cc.CalibrationError, match="fell in 34% of the lattice episodes"):
        cc.fit_inverse(response, rate)
    with pytest.raises(cc.CalibrationError, match="shape"):
        cc.fit_inverse(response[:5])


def test_the_calibrated_onnx_is_the_policy_behind_the_table(tmp_path: Path) -> None:
    # The shipped file is calibrated itself: the policy inside it is the one to calibrate.
    plain_bytes = cc.uncalibrated_model(SHIPPED_POLICY.read_bytes())
    assert plain_bytes != SHIPPED_POLICY.read_bytes() and cc.uncalibrated_model(plain_bytes) == plain_bytes
    (tmp_path / "plain.onnx").write_bytes(plain_bytes)
    table = cc.fit_inverse(biased_response())
    data = cc.calibrated_model(plain_bytes, table, {"source": "test"})
    path = tmp_path / "calibrated.onnx"
    path.write_bytes(data)
    calibrated, plain = OnnxPolicy(path), OnnxPolicy(tmp_path / "plain.onnx")  # validated like policy_node
    assert json.loads(calibrated.metadata[cc.CALIBRATION_KEY]) == {"source": "test"}
    assert calibrated.metadata["obs_layout_version"] == plain.metadata["obs_layout_version"]
    rng = np.random.default_rng(3)
    for _ in range(20):
        obs = rng.normal(0.0, 0.5, OBS_DIM).astype(np.float32)
        obs[CMD] = rng.uniform([-0.2, -1.2], [0.35, 1.2])  # past the limits too: the table clamps
        told = obs.copy()
        told[CMD] = cc.apply_table(table, obs[None, CMD])[0]
        np.testing.assert_allclose(calibrated.act(obs), plain.act(told), atol=1e-5)
    with pytest.raises(cc.CalibrationError, match="already command-calibrated"):
        cc.calibrated_model(data, table, {})
    # The policy inside can be taken out again (to calibrate on an identified robot's sim).
    raw = tmp_path / "raw.onnx"
    raw.write_bytes(cc.uncalibrated_model(data))
    stripped = OnnxPolicy(raw)
    assert cc.CALIBRATION_KEY not in stripped.metadata
    assert stripped.metadata == plain.metadata
    obs = rng.normal(0.0, 0.5, OBS_DIM).astype(np.float32)
    np.testing.assert_array_equal(stripped.act(obs), plain.act(obs))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pidog_learning.command_calibration", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_pidog_calibrate_measures_the_policy_in_sim_and_writes_a_policy_node_can_load(tmp_path: Path) -> None:
    out = tmp_path / "calibrated.onnx"
    # The shortest measurement that scores anything: 1 episode of 2.5 s per lattice command.
    result = run_cli(str(SHIPPED_POLICY), "--out", str(out), "--episodes", "1", "--seconds", "2.5")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wanted vx +0.05 m/s" in result.stdout
    info = json.loads(OnnxPolicy(out).metadata[cc.CALIBRATION_KEY])
    # Calibrating a calibrated policy starts again from the policy inside it, in place; here on
    # the nominal robot (--no-randomize) where the first measured randomised robots.
    before = out.read_bytes()
    result = run_cli(
        str(out), "--out", str(out), "--episodes", "1", "--seconds", "2.5", "--seed", "5", "--no-randomize"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    again = json.loads(OnnxPolicy(out).metadata[cc.CALIBRATION_KEY])
    assert again["seed"] == 5 and again["randomized"] is False and info["randomized"] is True
    assert cc.uncalibrated_model(out.read_bytes()) == cc.uncalibrated_model(before)
    achieved = np.array(info["achieved"])
    assert achieved.shape == (len(cc.LATTICE_VX), len(cc.LATTICE_WZ), 2)
    # The measured response follows the commands: faster forward when told faster.
    forward = np.nanmean(achieved[:, :, 0], axis=1)
    assert np.corrcoef(cc.LATTICE_VX, forward)[0, 1] > 0.8
    assert info["seed"] == cc.LATTICE_SEED and info["source"] == SHIPPED_POLICY.name


@pytest.mark.slow
def test_on_the_nominal_robot_every_episode_is_the_same_robot_and_one_is_run() -> None:
    """--no-randomize / calibration.randomize=false: one robot, whatever the seed; randomised robots
    answer the same commands differently from seed to seed."""
    act = OnnxPolicy(SHIPPED_POLICY).act_batch
    nominal = [cc.measure_response(act, seed, 3, 2.5, randomize=False) for seed in (1, 2)]
    assert nominal[0]["episodes"] == 1  # three asked for, all three would be this one
    np.testing.assert_array_equal(nominal[0]["achieved"], nominal[1]["achieved"])
    randomised = [cc.measure_response(act, seed, 1, 2.5)["achieved"] for seed in (1, 2)]
    assert np.nanmax(np.abs(randomised[0] - randomised[1])) > 0.05


def test_pidog_calibrate_refuses_bad_input_by_name(tmp_path: Path) -> None:
    result = run_cli(str(SHIPPED_POLICY), "--out", str(tmp_path / "x.onnx"), "--seconds", "1")
    assert result.returncode == 2 and "--seconds" in result.stderr
    result = run_cli(str(tmp_path / "missing.onnx"), "--out", str(tmp_path / "x.onnx"))
    assert result.returncode == 2 and "missing.onnx" in result.stderr
    bad = tmp_path / "robot.yaml"
    bad.write_text("servo: {strength: -3}\n")
    result = run_cli(str(SHIPPED_POLICY), "--out", str(tmp_path / "x.onnx"), "--robot-params", str(bad))
    assert result.returncode == 2 and "robot.yaml" in result.stderr
    # --set takes the simulator's options, each checked before any episode runs.
    for assignment, named in (
        ("env.randomization.servo_strength=[0.7]", "env.randomization.servo_strength"),
        ("env.randomization.bogus=1", "env.randomization.bogus"),
        ("ppo.n_steps=64", "env.KEY=VALUE"),
    ):
        result = run_cli(str(SHIPPED_POLICY), "--out", str(tmp_path / "x.onnx"), "--set", assignment)
        assert result.returncode == 2 and named in result.stderr, (assignment, result.stderr)
    assert not (tmp_path / "x.onnx").exists()
