"""Simulation defaults in one plain dict (mujoco_playground style). Override by passing a
partial dict; unknown keys are refused so a typo never silently does nothing."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pidog_description.orientation_filter import DEFAULT_GAIN

CONTACT_TIMECONST_BOUNDS = (0.004, 0.1)
"""Contact time constant (s), plausible and stable: MuJoCo needs at least two physics steps
(2 x 2 ms) for a stable soft contact; 0.1 s is a foot sinking into a cushion."""

DEFAULT_SIM_CONFIG: dict[str, Any] = {
    "physics_substeps": 10,  # 10 x 2 ms = one 20 ms control step (50 Hz)
    "episode_seconds": 20.0,
    # Velocity command, (vx m/s, wz rad/s). "fixed": forward_speed, no turn. "sample": drawn from
    # command_ranges at reset and again every command_resample_s, with some draws forced to the
    # cases a user drives most: standing still, turning in place, walking straight.
    "command_mode": "fixed",
    "forward_speed": 0.2,
    "command_ranges": {"vx": (-0.15, 0.3), "wz": (-1.0, 1.0)},
    "command_resample_s": (4.0, 8.0),
    "command_special": {"stand": 0.1, "turn_in_place": 0.2, "straight": 0.2},
    # The IMU orientation the policy observes. "noisy_truth": the simulator's orientation,
    # tilted by randomization.imu_gravity_noise (white, per step). "filter": what hw_node
    # publishes, its complementary filter (pidog_description.orientation_filter, gain
    # imu_filter_gain) run at IMU_READ_HZ over the simulated gyro (with its bias) and
    # accelerometer; in a turning trot it reads 3-7 deg off, in slow drifts the white noise
    # does not have (docs/ABLATIONS.md, eleventh session).
    "imu_orientation": "noisy_truth",
    "imu_filter_gain": DEFAULT_GAIN,  # 1/s, as hw_node's imu_filter_gain
    # Past control steps' frames (gravity, gyro, joint estimate, last action) appended to the
    # observation, most recent first: layout pidog-obs-v1h<k> (pidog_description.spec), which
    # the exported policy names and the policy node then keeps. 0: pidog-obs-v1, the shipped
    # policy's. Two measured better than none at 3M steps (docs/ABLATIONS.md, thirty-third
    # session); the defaults stay at 0 until a default-length run says so.
    "obs_history": 0,
    # Cutoff (Hz) of a first-order low-pass between the policy's action and the servo targets
    # (pidog_description.spec.filter_action; its state is the observed last action), which the
    # exported policy names and the policy node then runs. 0: none, the shipped policy's.
    "action_filter_hz": 0.0,
    # Termination.
    "max_tilt_rad": 0.9,  # roll or pitch beyond this is a fall
    # Reward weights (per control step); the reward may use privileged sim state. Velocity
    # tracking scores the average over the last track_window_s (one gait cycle): within a
    # cycle the yaw rate swings by far more than the error worth correcting.
    "reward": {
        "track_window_s": 0.4,
        "track_vx": 1.5,
        "track_vx_sigma": 0.08,
        "track_wz": 0.5,
        "track_wz_sigma": 0.3,
        "upright": 0.5,
        "lateral_velocity": 0.5,
        "action_rate": 0.02,
        "energy": 0.002,
        "alive": 0.2,
        # Paid once, on the step a robot falls (a diverged robot is not charged). Without it a
        # fall costs only the reward still to come, ~100 steps' worth at gamma 0.99. At 100 over
        # nine seeds no run fell at a keyboard command on the nominal robot (3 of 9 without),
        # but the grid and the robustness cells saw more falls (22 / 37 against 14 / 24), so it
        # is off (docs/ABLATIONS.md, twenty-sixth session).
        "termination": 0.0,
        "foot_slip": 0.0,  # stance feet sliding, (m/s)^foot_slip_exponent summed over the feet
        # 2: squared speed, which prices a landing's slide (0.17-0.20 m/s for the policies) 12-16x
        # a loaded stance foot's (0.05); 1: the speed itself, the mean the gait meter reads. At 1
        # (foot_slip 1, gate 0.5) five seeds slid 0.002-0.007 m/s less, wz worse at three
        # (docs/ABLATIONS.md, thirty-eighth session).
        "foot_slip_exponent": 2.0,
        # rad/s; > 0: foot_slip costs (1 - |commanded wz| / gate), none from a commanded turn of
        # `gate` on. Without hip abduction a turn is feet skidding: the policies turn in place
        # 2.5x as fast as the scripted gait at its slip, and slide more where it walks straight.
        # foot_slip 10 with a 0.5 gate slid 0.054-0.060 m/s against 0.064-0.066 at three seeds,
        # fell more on the grid (5 in 264 against 2); 25 lost the vx tracking (docs/ABLATIONS.md,
        # thirty-seventh session).
        "foot_slip_turn_gate": 0.0,
        # Per foot landing this step, its horizontal speed squared ((m/s)^2): the landings, where
        # a trained policy's feet move 0.195 m/s against the gait's 0.128, carry half its stance
        # slip (docs/ABLATIONS.md, seventh session); foot_slip taxes the whole stance.
        "touchdown_slip": 0.0,
        "foot_clearance": 0.0,  # swing feet below clearance_height while moving
        "clearance_height": 0.02,  # m
        "pose": 0.0,  # squared distance of the joints from the stand pose (rad^2)
        # Squared vertical body speed ((m/s)^2): a bouncing gait throws the body into low g,
        # near what the robot's hw_node takes for a drop (docs/ABLATIONS.md).
        "vertical_velocity": 0.0,
        # Squared roll and pitch rates of the body ((rad/s)^2; yaw is free): a stance foot cannot
        # follow a rocking body without sliding, and the shipped policy rocks more than the
        # scripted gait (rms pitch rate 0.87-1.34 rad/s against 0.54-1.12). At 0.1 two seeds
        # rocked less and slid less walking straight, but not over the grid (0.065 / 0.062 m/s
        # against 0.066 / 0.064) and turned left in place slower (docs/ABLATIONS.md, thirty-ninth
        # session).
        "roll_pitch_rate": 0.0,
        # Share of the control period the accelerometer spends below hw_node's free-fall
        # threshold (FREEFALL_ACCEL_MPS2), from every physics step: the bounce itself, where
        # vertical_velocity also taxes the gait's ordinary heave.
        "low_g": 0.0,
        # At each touchdown, the foot's time in the air minus air_time_range[0], the air time
        # counted up to air_time_range[1], while the command asks to move: steps shorter than
        # the low end (a foot chattering on the floor, a bounce) cost, full swings pay. Each
        # touchdown is one more chance to slide (docs/ABLATIONS.md).
        "feet_air_time": 0.0,
        "air_time_range": (0.1, 0.2),  # s; the gait clock's swing lasts 0.2 s
        # Per foot landing after a flight shorter than task.MIN_SWING_S (one control period), at
        # any command: a trained policy's feet hop off the floor and land sliding 2-2.5x as often
        # as the gait's, part of its stance slip. At 5 PPO hopped no more than the gait, slid
        # 0.073 m/s (the gait 0.050) and lost the tracking (docs/ABLATIONS.md, twenty-second session).
        "chatter": 0.0,
        # At each touchdown while the command asks to move, per foot, the squared shortfall of
        # the swing's highest sole height below swing_height_target, as a share of it: the
        # quantity the gait meter's median swing clearance reads (issue 12 asks >= 10 mm), paid
        # where a swing ends, so a foot that skims or chatters costs and a full lift costs nothing.
        "swing_height": 0.0,
        "swing_height_target": 0.015,  # m
        # At a zero command (the user's "stop"), the summed speed of the four feet (m/s): a
        # robot told to stand should stand, not tread in place on sliding feet. PPO did not learn
        # to stand from it: at 2 two seeds still trod (sliding 0.034-0.039 m/s there against the
        # shipped policy's 0.046, 2 of 88 grid falls each); at 10 PPO shuffled or lost to BC; from
        # demonstrations that stand, BC stood and PPO trod again (docs/ABLATIONS.md, forty-fifth
        # session). On the robot, policy_node's stand_after_s stands an idle robot.
        "stand_still": 0.0,
    },
    # The robot's physical parameters without randomisation (randomize=False), and the centre
    # the IMU gyro bias is randomised around; a robot parameters file (pidog_sim.robot_params,
    # identified by pidog-sysid) sets these and centres the ranges below on them.
    "nominal": {
        "servo_strength": 1.0,  # stall torque multiplier
        "servo_speed": 1.0,  # max speed multiplier
        "latency_steps": 0,
        "mass_scale": 1.0,
        "friction": None,  # None: the model's
        # How soft the feet's contact with the floor is: the time constant (s) of MuJoCo's
        # contact spring-damper (geom solref[0], critically damped). None: the model's, MuJoCo's
        # default 0.02. Turning in place without hip abduction is feet skidding, so this and the
        # friction decide the turn rate and the stance slip: at 5 ms the shipped policy's turn
        # in place is 0.51 rad/s, at 40 ms 0.89 (docs/ABLATIONS.md, twenty-second session).
        # Unlike the others it holds on randomised robots too while randomization's is None.
        "contact_timeconst": None,
        "imu_gyro_bias": (0.0, 0.0, 0.0),  # rad/s
    },
    # Domain randomisation (applied per episode when randomize=True).
    "randomization": {
        # Torso mass multiplier: the torso is 0.64 of the model's 0.97 kg, so the total is
        # 0.87-1.10 kg (issue 14's robustness target reaches 1.15 kg; a wider range kept more
        # of its cells at one seed of four, fewer at three: docs/ABLATIONS.md, twenty-eighth and
        # thirty-seventh sessions).
        "mass_scale": (0.85, 1.2),
        "friction": (0.6, 1.2),
        "servo_strength": (0.8, 1.2),  # stall torque multiplier
        # How servo_strength is drawn. "joint": each of the eight servos on its own, so a robot's
        # servos average out near nominal (the mean of eight such draws spans 0.93-1.07 for nine
        # robots in ten, measured over 2,000) and a robot weak all round, as one batch of servos
        # or a sagging battery would make it, hardly ever trains. "robot": one draw from the range for the whole robot,
        # each servo then within +-servo_strength_joint_spread of it. Over the wide ranges
        # (0.7-1.3x, torso 0.8-1.3x) it tracked wz worse on average in every set of seeds; the cells
        # of issue 14 moved with the seed: the plain policy before the action filter +4 per draw
        # over four seeds, on today's plain policy -1.1 over five (55.5 against 56.6, one seed at
        # 60), the residual one 57.0 against 55.6 over six (docs/ABLATIONS.md, thirtieth,
        # thirty-first, forty-second to forty-fourth sessions). `pidog-train` trains on it by
        # default, for the robots it covers (its config's env.randomization); the simulator's
        # default, which pidog-eval and the benchmarks measure on, stays "joint".
        "servo_strength_draw": "joint",
        "servo_strength_joint_spread": 0.05,  # share, "robot" draws only
        "servo_speed": (0.85, 1.1),  # max speed multiplier
        "imu_gyro_noise": 0.02,  # rad/s, std
        "imu_gravity_noise": 0.02,  # unit-vector components, std
        "imu_gyro_bias": 0.03,  # rad/s, uniform +-
        # Control latency, whole steps, inclusive. Up to 3 (past issue 14's 0-2) over four seeds:
        # 3-10 more of its 60 robustness cells per draw on average, the strong-servo falls at latency 2
        # mostly gone, but wz tracking worse at all four and vx at three (0.032-0.035 m/s;
        # docs/ABLATIONS.md, thirty-second session).
        "latency_steps": (0, 2),
        "push_interval_s": (2.0, 4.0),
        "push_force_n": (1.0, 3.0),
        "push_duration_s": 0.1,
        # (low, high) contact time constant, s, drawn per episode; None: not randomised (the
        # nominal's). Not part of the privileged critic's input (task.PRIVILEGED_LAYOUT): adding
        # it would change the critic's input size, and earlier runs could no longer be resumed
        # (pidog-train refuses them by name: pipeline.check_resumable).
        "contact_timeconst": None,
    },
}


def merge_config(
    overrides: Mapping[str, Any] | None, base: Mapping[str, Any] = DEFAULT_SIM_CONFIG, where: str = ""
) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``base``; unknown keys raise ValueError naming their
    full dotted path (``where`` is the path of ``base`` itself, for the recursion)."""
    merged = copy.deepcopy(dict(base))
    for key, value in (overrides or {}).items():
        name = f"{where}{key}"
        if key not in merged:
            raise ValueError(f"unknown sim config option '{name}'; valid options: {sorted(merged)}")
        if isinstance(merged[key], dict):
            if not isinstance(value, Mapping):
                raise ValueError(f"sim config option '{name}' must be a mapping, got {type(value).__name__}")
            merged[key] = merge_config(value, merged[key], where=f"{name}.")
        else:
            merged[key] = value
    return merged
