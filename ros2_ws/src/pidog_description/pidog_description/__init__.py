"""pidog_description: the PiDog's robot facts, kinematics and observation/action spec.

Imports with numpy alone, so it runs on the Raspberry Pi deploy path.
"""

from .kinematics import (
    LIE_POSE,
    MAX_REACH,
    MIN_REACH,
    STAND_FEET,
    STAND_POSE,
    UnreachableFootError,
    feet_to_joints,
    joints_to_feet,
    leg_fk,
    leg_ik,
)
from .robot import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER, LEG_SERVO_CHANNELS, N_JOINTS, SERVO_SIGNS
from .spec import (
    ACTION_DIM,
    ACTION_SCALE,
    CONTROL_DT,
    CONTROL_HZ,
    OBS_DIM,
    OBS_LAYOUT,
    OBS_LAYOUT_VERSION,
    action_to_target,
    build_observation,
    gravity_from_quaternion,
)

__all__ = [
    "ACTION_DIM",
    "ACTION_SCALE",
    "CONTROL_DT",
    "CONTROL_HZ",
    "JOINT_LOWER",
    "JOINT_NAMES",
    "JOINT_UPPER",
    "LEG_SERVO_CHANNELS",
    "LIE_POSE",
    "MAX_REACH",
    "MIN_REACH",
    "N_JOINTS",
    "OBS_DIM",
    "OBS_LAYOUT",
    "OBS_LAYOUT_VERSION",
    "SERVO_SIGNS",
    "STAND_FEET",
    "STAND_POSE",
    "UnreachableFootError",
    "action_to_target",
    "build_observation",
    "feet_to_joints",
    "gravity_from_quaternion",
    "joints_to_feet",
    "leg_fk",
    "leg_ik",
]
