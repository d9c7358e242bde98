"""The robot parameters file: round trip, refusals by name, and the sim config it produces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from pidog_description.robot import SERVO_MAX_SPEED
from pidog_sim import robot_params
from pidog_sim.batch import BatchSim
from pidog_sim.config import merge_config
from pidog_sim.robot_params import RobotParamsError

PARAMS = {
    "servo_strength": {"value": 0.7, "uncertainty": 0.05},
    "servo_speed": {"value": 0.9, "uncertainty": 0.04},
    "latency_steps": {"value": 2, "uncertainty": 0.5},
    "mass_scale": {"value": 1.15, "uncertainty": 0.05},
    "friction": {"value": 0.8, "uncertainty": 0.1},
    "contact_timeconst": {"value": 0.01, "uncertainty": 0.002},
    "imu_gyro_bias": {"value": [0.01, -0.02, 0.005], "uncertainty": 0.002},
}


def write(path: Path, doc) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def doc(**parameters):
    return {"format": robot_params.FORMAT, "version": 1, "parameters": parameters}


def test_round_trip_is_exact_and_atomic(tmp_path: Path) -> None:
    path = robot_params.save(
        tmp_path / "robot.yaml", PARAMS, {"cost": np.float64(0.01), "quality": {"r2": 0.9}}
    )
    loaded = robot_params.load(path)
    assert loaded["parameters"] == PARAMS
    assert loaded["fit"] == {"cost": 0.01, "quality": {"r2": 0.9}}
    assert [p.name for p in tmp_path.iterdir()] == ["robot.yaml"]  # no temp file left behind
    assert "!!python" not in path.read_text()


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"servo_strenght": {"value": 1.0}}, "unknown parameter 'servo_strenght'"),
        ({"servo_strength": {"value": float("nan")}}, "'servo_strength.value' must be finite"),
        ({"servo_strength": {"value": float("inf")}}, "'servo_strength.value' must be finite"),
        ({"servo_strength": {"value": 7.0}}, "'servo_strength.value' = 7.0 is outside"),
        ({"mass_scale": {"value": "heavy"}}, "'mass_scale.value' must be a number"),
        ({"latency_steps": {"value": 1.5}}, "'latency_steps.value' must be a whole number"),
        ({"friction": {"value": 0.8, "uncertainty": -1}}, "'friction.uncertainty' must be >= 0"),
        ({"friction": {"value": 0.8, "sigma": 1}}, "'friction' has unknown keys ['sigma']"),
        ({"imu_gyro_bias": {"value": [0.0, 0.0]}}, "'imu_gyro_bias.value' must be a list of 3"),
        ({"friction": 0.8}, "'friction' must be a mapping"),
        ({"contact_timeconst": {"value": 0.001}}, "'contact_timeconst.value' = 0.001 is outside"),
    ],
)
def test_bad_values_are_refused_by_file_and_key(tmp_path: Path, parameters, message: str) -> None:
    path = write(tmp_path / "bad.yaml", doc(**parameters))
    with pytest.raises(RobotParamsError) as info:
        robot_params.load(path)
    assert message in str(info.value) and str(path) in str(info.value)
    with pytest.raises(RobotParamsError):  # and save refuses to write it
        robot_params.save(tmp_path / "out.yaml", parameters)
    assert not (tmp_path / "out.yaml").exists()


def test_bad_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RobotParamsError, match="cannot read robot parameters file"):
        robot_params.load(tmp_path / "missing.yaml")
    (tmp_path / "junk.yaml").write_text("a: [")
    with pytest.raises(RobotParamsError, match="not valid YAML"):
        robot_params.load(tmp_path / "junk.yaml")
    with pytest.raises(RobotParamsError, match="'format' must be"):
        robot_params.load(write(tmp_path / "f.yaml", {"parameters": {}}))
    with pytest.raises(RobotParamsError, match=r"unknown keys \['extra'\]"):
        robot_params.load(write(tmp_path / "k.yaml", {**doc(), "extra": 1}))


def test_override_centres_randomisation_on_the_file(tmp_path: Path) -> None:
    override = robot_params.load_override(robot_params.save(tmp_path / "r.yaml", PARAMS))
    config = merge_config(override)  # a valid sim config: no unknown keys
    nominal, ranges = config["nominal"], config["randomization"]
    assert nominal["servo_strength"] == 0.7 and nominal["latency_steps"] == 2
    assert nominal["imu_gyro_bias"] == (0.01, -0.02, 0.005)
    lo, hi = ranges["servo_strength"]
    assert lo == pytest.approx(0.6) and hi == pytest.approx(0.8)  # value +- 2 sigma
    assert ranges["latency_steps"] == (1, 3)
    assert ranges["imu_gyro_bias"] == pytest.approx(0.004)
    assert ranges["friction"] == pytest.approx((0.6, 1.0))
    assert nominal["contact_timeconst"] == 0.01
    assert ranges["contact_timeconst"] == pytest.approx((0.006, 0.014))
    # Untouched options keep their defaults.
    assert ranges["push_force_n"] == merge_config(None)["randomization"]["push_force_n"]


def test_batch_uses_nominal_values_and_centred_ranges(tmp_path: Path) -> None:
    override = robot_params.sim_config_override(PARAMS)
    nominal = BatchSim(2, randomize=False, config=override, threads=1)
    np.testing.assert_allclose(nominal.servo_strength, 0.7)
    np.testing.assert_allclose(nominal.servo_max_speed, 0.9 * SERVO_MAX_SPEED)
    np.testing.assert_array_equal(nominal.latency_steps, 2)
    np.testing.assert_allclose(nominal.mass_scale, 1.15)
    np.testing.assert_allclose(nominal.gyro_bias, [[0.01, -0.02, 0.005]] * 2)
    m = nominal.models[0]
    assert m.geom_friction[0, 0] == pytest.approx(0.8)
    np.testing.assert_allclose(m.geom_solref[:, 0], 0.01)  # every geom: each foot-floor contact
    assert m.body_mass[nominal.base_id] == pytest.approx(1.15 * nominal._nominal_mass[nominal.base_id])
    nominal.close()

    rand = BatchSim(64, randomize=True, config=override, threads=1)
    assert np.all((rand.servo_strength >= 0.6) & (rand.servo_strength <= 0.8))
    assert np.all((rand.latency_steps >= 1) & (rand.latency_steps <= 3))
    assert np.all(np.abs(rand.gyro_bias - [0.01, -0.02, 0.005]) <= 0.004 + 1e-12)
    assert abs(rand.servo_strength.mean() - 0.7) < 0.02
    assert np.all((rand.contact_timeconst >= 0.006) & (rand.contact_timeconst <= 0.014))
    rand.close()
    # Without a file, nothing changed: defaults are the model's.
    plain = BatchSim(1, randomize=False, threads=1)
    np.testing.assert_allclose(plain.servo_strength, 1.0)
    assert plain.latency_steps[0] == 0 and np.all(plain.gyro_bias == 0)
    plain.close()


def test_clis_accept_the_file_and_refuse_bad_ones(tmp_path: Path) -> None:
    from pidog_learning import eval_cli, train_cli
    from pidog_learning.config import ConfigError, resolve_config

    good = robot_params.save(tmp_path / "r.yaml", PARAMS)
    args = train_cli.build_parser().parse_args(["--robot-params", str(good)])
    preset, overrides = train_cli.config_layers(args)
    config = resolve_config(preset, overrides)
    assert config["env"]["nominal"]["servo_strength"] == 0.7
    assert config["env"]["randomization"]["latency_steps"] == (1, 3)
    bad = write(tmp_path / "bad.yaml", doc(servo_strength={"value": -1}))
    with pytest.raises(ConfigError, match="--robot-params: .*servo_strength"):
        train_cli.config_layers(train_cli.build_parser().parse_args(["--robot-params", str(bad)]))
    assert eval_cli.main(["--robot-params", str(bad), "--episodes", "1", "--seconds", "0.2"]) == 2


@pytest.mark.ros
def test_sim_node_refuses_a_bad_file_by_name(spawn_node, tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.yaml", doc(mass_scale={"value": float("nan")}))
    node = spawn_node("pidog_sim.sim_node", {"robot_params": str(bad)})
    node.proc.wait(timeout=30)
    assert node.proc.returncode != 0
    assert "robot_params" in node.log() and "mass_scale.value" in node.log()
