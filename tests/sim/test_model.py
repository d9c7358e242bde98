"""The MJCF model and the URDF agree with pidog_description (names, order, limits, geometry)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np
import pytest

from pidog_description import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER
from pidog_description.robot import (
    HIP_POSITIONS,
    LOWER_LEG_LENGTH,
    NOMINAL_MASS,
    SERVO_MAX_SPEED,
    SERVO_STALL_TORQUE,
    UPPER_LEG_LENGTH,
)
from pidog_description.urdf import make_urdf
from pidog_sim.model import check_model, default_model_path, load_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return load_model()


def test_default_model_is_the_repository_model() -> None:
    assert default_model_path() == REPO / "models" / "pidog.xml"


def test_one_position_actuator_per_leg_joint_in_design_order(model: mujoco.MjModel) -> None:
    assert check_model(model) == []
    assert model.nu == len(JOINT_NAMES)
    assert [model.actuator(i).name for i in range(model.nu)] == list(JOINT_NAMES)
    for i, name in enumerate(JOINT_NAMES):
        assert model.joint(int(model.actuator_trnid[i, 0])).name == name
        lo, hi = model.jnt_range[model.joint(name).id]
        assert (lo, hi) == pytest.approx((JOINT_LOWER[i], JOINT_UPPER[i]))


def test_servo_model_matches_description(model: mujoco.MjModel) -> None:
    np.testing.assert_allclose(model.actuator_forcerange, [[-SERVO_STALL_TORQUE, SERVO_STALL_TORQUE]] * 8)
    # Joint damping = stall torque / no-load speed: the torque-speed line of a DC servo.
    dofs = [model.jnt_dofadr[model.joint(n).id] for n in JOINT_NAMES]
    np.testing.assert_allclose(model.dof_damping[dofs], SERVO_STALL_TORQUE / SERVO_MAX_SPEED, rtol=0.02)


def test_geometry_and_mass(model: mujoco.MjModel) -> None:
    base = model.body("base_link").id
    assert model.body_subtreemass[base] == pytest.approx(NOMINAL_MASS, abs=0.05)
    for leg, hip in zip(("lf", "rf", "lh", "rh"), HIP_POSITIONS, strict=True):
        np.testing.assert_allclose(model.body(f"{leg}_upper").pos, hip, atol=1e-9)
        np.testing.assert_allclose(model.body(f"{leg}_lower").pos, [0, 0, -UPPER_LEG_LENGTH], atol=1e-9)
        np.testing.assert_allclose(model.geom(f"{leg}_foot").pos, [LOWER_LEG_LENGTH, 0, 0], atol=1e-9)


def test_imu_sensors_and_head_camera_exist(model: mujoco.MjModel) -> None:
    for name in ("imu_quat", "imu_gyro", "imu_accel"):
        assert model.sensor(name).id >= 0
    assert model.camera("head_camera").id >= 0


def test_missing_or_malformed_model_path_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.xml"):
        load_model(tmp_path / "nope.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<mujoco><worldbody><body></mujoco>")
    with pytest.raises(ValueError, match="bad.xml"):
        load_model(bad)
    wrong = tmp_path / "wrong.xml"
    wrong.write_text(
        '<mujoco><worldbody><body><joint name="j" type="hinge"/><geom size="0.1"/></body></worldbody></mujoco>'
    )
    with pytest.raises(ValueError, match="does not match pidog_description"):
        load_model(wrong)


def test_urdf_is_generated_from_the_description() -> None:
    committed = (REPO / "models" / "pidog.urdf").read_text()
    assert committed == make_urdf(), (
        "models/pidog.urdf is stale: python -m pidog_description.urdf > models/pidog.urdf"
    )
    root = ET.fromstring(committed)
    revolute = [j for j in root.iter("joint") if j.get("type") == "revolute"]
    assert [j.get("name") for j in revolute] == list(JOINT_NAMES)
    for i, joint in enumerate(revolute):
        limit = joint.find("limit")
        assert float(limit.get("lower")) == pytest.approx(JOINT_LOWER[i], abs=1e-6)
        assert float(limit.get("upper")) == pytest.approx(JOINT_UPPER[i], abs=1e-6)
        assert joint.find("axis").get("xyz") == "0 1 0"
