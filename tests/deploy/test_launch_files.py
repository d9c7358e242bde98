"""The launch files in launch/ describe graphs that really start: executables exist, parameters are declared.

``ros2 launch`` is not installable here, so each file is parsed (pidog_learning.launch_files)
and its nodes are started as processes exactly as the launch file says (node name and
parameters); a probe then asks every node for its declared parameters over DDS.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
from onnx_policies import linear_policy
from rcl_interfaces.srv import ListParameters

from pidog_learning.launch_files import LaunchFileError, console_script_module, parse_launch

pytestmark = pytest.mark.ros

LAUNCH_DIR = Path(__file__).resolve().parents[2] / "launch"
# Test values: a real policy file, outputs under tmp_path, the hardware node on the
# register-level I2C emulator (no bus here), the smallest training preset.
CASES = [
    ("sim_policy.launch.xml", {"policy_path": "POLICY"}),
    ("sim_train.launch.xml", {"config": "tiny", "output_dir": "TMP"}),
    ("robot.launch.xml", {"policy_path": "POLICY", "i2c_bus": "emulated"}),
    ("teleop_record.launch.xml", {"bag_output": "TMP"}),
    ("teleop_record.launch.xml", {"use_sim": "false", "bag_output": "TMP", "i2c_bus": "emulated"}),
    ("twin.launch.xml", {"policy_path": "POLICY"}),
    ("sysid_record.launch.xml", {"bag_output": "TMP"}),
]


def test_every_launch_file_is_covered() -> None:
    assert {p.name for p in LAUNCH_DIR.glob("*.launch.xml")} == {name for name, _ in CASES}


def declared_parameters(probe, node_name: str, timeout: float = 40.0) -> set[str] | None:
    client = probe.node.create_client(ListParameters, f"/{node_name}/list_parameters")
    try:
        deadline = time.monotonic() + timeout
        if not probe.spin_until(client.service_is_ready, timeout):
            return None
        # A request can reach the node before the node has discovered our reply reader; Fast DDS
        # then drops the reply ("failed to send response (timeout)", seen under load). Ask again
        # until the deadline: the question is whether the node declares its parameters.
        while time.monotonic() < deadline:
            future = client.call_async(ListParameters.Request(depth=ListParameters.Request.DEPTH_RECURSIVE))
            if probe.spin_until(future.done, 5.0):
                return set(future.result().result.names)
            client.remove_pending_request(future)
        return None
    finally:
        probe.node.destroy_client(client)


@pytest.mark.parametrize(
    ("launch_file", "overrides"), CASES, ids=lambda v: str(v) if isinstance(v, dict) else v
)
def test_launch_graph_starts_with_declared_parameters(
    launch_file: str, overrides: dict[str, str], tmp_path: Path, spawn_node, ros_probe
) -> None:
    if "policy_path" in overrides:
        overrides = {**overrides, "policy_path": str(linear_policy(tmp_path / "policy.onnx"))}
    # Never write into the working directory.
    overrides = {key: str(tmp_path / key) if value == "TMP" else value for key, value in overrides.items()}
    graph = parse_launch(LAUNCH_DIR / launch_file, overrides)
    assert graph.nodes, f"{launch_file} starts no nodes"
    # Every (pkg, exec) is a console script of our packages, i.e. `ros2 run pkg exec` works.
    modules = {node.name: console_script_module(node.pkg, node.executable) for node in graph.nodes}
    missing = sorted(m for m in modules.values() if importlib.util.find_spec(m) is None)
    present = [node for node in graph.nodes if modules[node.name] not in missing]
    processes = {node.name: spawn_node(modules[node.name], None, node.ros_args()) for node in present}
    for node in present:
        declared = declared_parameters(ros_probe, node.name)
        process = processes[node.name]
        assert declared is not None, f"{node.name} never offered its parameters:\n{process.log()}"
        undeclared = sorted(set(node.params) - declared)
        assert not undeclared, (
            f"{launch_file}: {node.name} does not declare {undeclared}; it has {sorted(declared)}"
        )
        assert process.alive(), f"{node.name} refused the launch file's parameters:\n{process.log()}"
    assert not missing, f"{launch_file} names executables whose modules do not exist: {missing}"


def test_launch_parser_refuses_what_it_cannot_check(tmp_path: Path) -> None:
    bad = tmp_path / "bad.launch.xml"
    bad.write_text('<launch><group><node pkg="pidog_sim" exec="sim_node" name="s"/></group></launch>')
    with pytest.raises(LaunchFileError, match="unsupported element <group>"):
        parse_launch(bad)
    with pytest.raises(LaunchFileError, match="argument 'policy_path' is required"):
        parse_launch(LAUNCH_DIR / "sim_policy.launch.xml")
    with pytest.raises(LaunchFileError, match="unknown launch arguments \\['polcy_path'\\]"):
        parse_launch(LAUNCH_DIR / "sim_policy.launch.xml", {"policy_path": "/p.onnx", "polcy_path": "x"})
    with pytest.raises(LaunchFileError, match="no executable 'nonexistent_node'"):
        console_script_module("pidog_sim", "nonexistent_node")
