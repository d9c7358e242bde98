"""Locating and loading the PiDog MJCF, with errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path

import mujoco
import numpy as np

from pidog_description import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER
from pidog_description.robot import LEG_NAMES

MODEL_FILENAME = "pidog.xml"


def default_model_path() -> Path:
    """The PiDog MJCF: $PIDOG_MODEL, else the repository's models/, else the ament share dir."""
    env = os.environ.get("PIDOG_MODEL")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:  # source checkout / editable install: <repo>/models/pidog.xml
        candidate = parent / "models" / MODEL_FILENAME
        if candidate.is_file():
            return candidate
    try:  # colcon install: share/pidog_sim/models/pidog.xml
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("pidog_sim")) / "models" / MODEL_FILENAME
    except Exception:  # noqa: BLE001 - ament index absent or package not installed
        return here.parent / "models" / MODEL_FILENAME


def load_model(path: str | os.PathLike[str] | None = None) -> mujoco.MjModel:
    """Load and validate the MJCF; a missing or malformed file raises a clear error naming it."""
    model_path = Path(path) if path else default_model_path()
    if not model_path.is_file():
        raise FileNotFoundError(f"PiDog model file not found: {model_path}")
    try:
        model = mujoco.MjModel.from_xml_path(str(model_path))
    except ValueError as exc:  # mujoco raises ValueError for XML/compile errors
        raise ValueError(f"cannot load PiDog model {model_path}: {exc}") from exc
    problems = check_model(model)
    if problems:
        raise ValueError(f"PiDog model {model_path} does not match pidog_description: " + "; ".join(problems))
    return model


def floor_friction(model: mujoco.MjModel) -> float:
    """The sliding friction the model gives every geom (what ``nominal.friction: None`` keeps)."""
    return float(model.geom_friction[0, 0])


def contact_timeconst(model: mujoco.MjModel) -> float:
    """The contact time constant, s, the model gives every geom (solref[0]; what
    ``nominal.contact_timeconst: None`` keeps)."""
    return float(model.geom_solref[0, 0])


def foot_radii(model: mujoco.MjModel) -> np.ndarray:
    """(4,) radius of each foot sphere (LF, RF, LH, RH), m: the foot sites sit at the spheres'
    centres, so a sole's height above the floor is the site's height minus this."""
    return np.array([model.geom_size[model.geom(f"{leg}_foot").id, 0] for leg in LEG_NAMES])


def check_model(model: mujoco.MjModel) -> list[str]:
    """Differences between the model's leg joints/actuators and pidog_description."""
    problems: list[str] = []
    hinge_names = [
        model.joint(i).name for i in range(model.njnt) if model.jnt_type[i] == mujoco.mjtJoint.mjJNT_HINGE
    ]
    if tuple(hinge_names[: len(JOINT_NAMES)]) != JOINT_NAMES:
        problems.append(f"joint order {hinge_names} != {list(JOINT_NAMES)}")
    actuated = [model.joint(int(model.actuator_trnid[i, 0])).name for i in range(model.nu)]
    if tuple(actuated) != JOINT_NAMES:
        problems.append(f"actuated joints {actuated} != {list(JOINT_NAMES)}")
    for i, name in enumerate(JOINT_NAMES):
        try:
            jnt = model.joint(name)
        except KeyError:
            continue
        lo, hi = model.jnt_range[jnt.id]
        if abs(lo - JOINT_LOWER[i]) > 1e-6 or abs(hi - JOINT_UPPER[i]) > 1e-6:
            problems.append(
                f"{name} range [{lo:.4f}, {hi:.4f}] != [{JOINT_LOWER[i]:.4f}, {JOINT_UPPER[i]:.4f}]"
            )
        if list(model.jnt_axis[jnt.id]) != [0.0, 1.0, 0.0]:
            problems.append(f"{name} axis {list(model.jnt_axis[jnt.id])} != [0, 1, 0]")
    return problems
