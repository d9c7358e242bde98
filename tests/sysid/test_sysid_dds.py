"""pidog-sysid on a bag recorded over DDS: sim_node (hidden, non-default robot parameters),
pidog-excite and bag_recorder as separate processes, then the fit of strength, speed, mass and
latency together (issue 14's test target), the speed from its profile over the squat snaps."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from pidog_control.excitation import EXIT_TIPPED
from pidog_description.topics import IMU_TOPIC, JOINT_COMMANDS_TOPIC, JOINT_STATES_TOPIC
from pidog_learning import sysid
from pidog_sim import robot_params

TOPICS = str([JOINT_COMMANDS_TOPIC, IMU_TOPIC, JOINT_STATES_TOPIC])  # the recorder's list parameter
HIDDEN = {
    "servo_strength": {"value": 0.7, "uncertainty": 0.0},
    "servo_speed": {"value": 0.65, "uncertainty": 0.0},
    "latency_steps": {"value": 2, "uncertainty": 0.0},
    "mass_scale": {"value": 1.15, "uncertainty": 0.0},
}


@pytest.mark.slow
def test_identifies_latency_strength_speed_and_mass_from_a_dds_recording(
    spawn_node, ros_probe, tmp_path: Path, capsys
) -> None:
    hidden = robot_params.save(tmp_path / "hidden.yaml", HIDDEN)
    bag = tmp_path / "dds_bag"
    # Lockstep, as launch/sysid_record.launch.xml runs it: free-running beside other tests, the
    # sim applied one command in six a tick late and the fit came out wrong (docs/SYSID.md).
    sim = spawn_node(
        "pidog_sim.sim_node", {"randomize": False, "seed": 0, "robot_params": str(hidden), "lockstep": True}
    )
    recorder = spawn_node(
        "pidog_control.bag_recorder", {"output": str(bag), "topics": TOPICS, "use_sim_time": True}
    )
    started = [sim, recorder]
    logs = lambda: "\n".join(f"--- {p.module}\n{p.log()}" for p in started)  # noqa: E731
    # /joint_commands has no publisher until pidog-excite starts: the recorder subscribes then.
    assert ros_probe.spin_until(lambda: recorder.log().count("subscribed to") >= 2, 60), logs()
    excite = spawn_node("pidog_control.excitation", {"use_sim_time": True, "duration_scale": 1.0})
    started.append(excite)
    deadline = time.monotonic() + 120
    while excite.alive():
        assert time.monotonic() < deadline, f"excitation did not finish\n{logs()}"
        ros_probe.spin_for(0.2)
    # Done, or stopped where the body tipped over: servos this slow may stumble in the final
    # trot (0.6 x does in the simulator), after every window the fit uses.
    assert excite.proc.returncode in (0, EXIT_TIPPED), logs()
    ros_probe.spin_for(0.5)  # the last samples reach the recorder
    recorder.proc.send_signal(signal.SIGINT)
    assert recorder.proc.wait(timeout=30) == 0, logs()

    out = tmp_path / "robot_params.yaml"
    # 30 generations: at 15 the search had not converged and mass came out anywhere in
    # 1.07-1.48 by seed; at 30 it converges (pidog-sysid refuses to write otherwise).
    code = sysid.main(
        [str(bag), "--out", str(out), "--fit", "servo_strength", "servo_speed", "mass_scale", "latency_steps"]
        + ["--population", "8", "--generations", "30", "--max-windows", "8"]
        + ["--threads", "2", "--no-progress"]
    )
    assert code == 0, capsys.readouterr().err + logs()
    p = robot_params.load(out)["parameters"]
    print({k: v["value"] for k, v in p.items()})
    # The DDS hop adds a step on top of the hidden 2 (3 in every run on our machines).
    assert abs(p["latency_steps"]["value"] - 2) <= 1
    assert p["servo_strength"]["value"] == pytest.approx(0.7, rel=0.15)
    assert p["mass_scale"]["value"] == pytest.approx(1.15, rel=0.15)
    assert p["servo_speed"]["value"] == pytest.approx(0.65, rel=0.15)
    ratio = p["servo_strength"]["value"] / p["mass_scale"]["value"]
    assert ratio == pytest.approx(0.7 / 1.15, rel=0.10)
    fit = robot_params.load(out)["fit"]
    # The rests survive the DDS hop, and enough of them to fit on.
    assert fit["windows_from_rest"] == fit["windows"] >= sysid.MIN_RESTED_WINDOWS
    # The speed comes from the squat snaps' profile: its lowest cost is next to the truth, and
    # speeds far off either way fit clearly worse (a minimum, not a bound).
    assert fit["speed_windows"] >= sysid.MIN_SPEED_WINDOWS and "servo_speed" not in fit["not_determined"]
    profile = {float(speed): cost for speed, cost in fit["speed_profile"].items()}
    best = min(profile.values())
    assert abs(min(profile, key=profile.get) - 0.65) <= 0.1, profile
    assert profile[1.0] > 1.5 * best and profile[0.5] > 1.5 * best, profile
    lo, hi = fit["near_best"]["range"]["mass_scale"]
    assert lo - 1e-3 <= p["mass_scale"]["value"] <= hi + 1e-3  # the range is rounded to 4 places
