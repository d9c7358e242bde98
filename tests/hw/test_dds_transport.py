"""hw_node's DDS transport choice (pidog_hw.dds_transport): UDP only where Fast DDS honours it,
the user's choice kept, and a warning where it cannot be had."""

from __future__ import annotations

from pidog_hw.dds_transport import TRANSPORTS_VAR, UDP_ONLY, keep_off_shared_memory


def test_fast_dds_on_defaults_is_asked_for_udp_only() -> None:
    env = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
    choice = keep_off_shared_memory(env)
    assert env[TRANSPORTS_VAR] == UDP_ONLY
    assert choice.udp_only and not choice.warn
    # No range set (ROS's default) and rmw_fastrtps named explicitly are the same case.
    for env in ({}, {"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}):
        assert keep_off_shared_memory(env).udp_only and env[TRANSPORTS_VAR] == UDP_ONLY


def test_localhost_range_cannot_be_helped_and_says_so() -> None:
    env = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    choice = keep_off_shared_memory(env)
    assert TRANSPORTS_VAR not in env, "rmw_fastrtps ignores it there: setting it would claim a guard not had"
    assert choice.warn and not choice.udp_only
    assert "SUBNET" in choice.message and "LOCALHOST" in choice.message


def test_a_users_transport_choice_is_kept_and_shared_memory_is_warned_about() -> None:
    env = {TRANSPORTS_VAR: "SHM"}
    choice = keep_off_shared_memory(env)
    assert env[TRANSPORTS_VAR] == "SHM"
    assert choice.warn and "SHM" in choice.message
    env = {TRANSPORTS_VAR: UDP_ONLY}
    assert not keep_off_shared_memory(env).warn


def test_another_rmw_is_left_alone() -> None:
    env = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    choice = keep_off_shared_memory(env)
    assert env == {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    assert not choice.warn and "rmw_cyclonedds_cpp" in choice.message
