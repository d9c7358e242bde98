"""The ROS 2 interface of the stack (DESIGN.md §2): topic names, message types, frame ids, QoS.

The one home for them: sim_node, hw_node, policy_node, the teleop gait node, the recorder, the
bag importer and the tests import these names instead of re-typing strings, so a renamed topic
or a changed QoS cannot leave one side talking to nobody. Needs rclpy (for the QoS profiles),
like ``messages.py``; ``pidog_description`` itself still imports with numpy alone.
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

# --- topics ------------------------------------------------------------------------------------
JOINT_STATES_TOPIC = "/joint_states"
IMU_TOPIC = "/imu/data"
JOINT_COMMANDS_TOPIC = "/joint_commands"
CMD_VEL_TOPIC = "/cmd_vel"
ESTOP_TOPIC = "/estop"
CLOCK_TOPIC = "/clock"
DIAGNOSTICS_TOPIC = "/diagnostics"
GAIT_PHASE_TOPIC = "/gait/phase"
"""The teleop gait's phase clock, recorded so the bag importer need not reconstruct it."""
GROUND_TRUTH_ODOM_TOPIC = "/sim/ground_truth/odom"
"""Sim only: world-frame pose and velocity for evaluation, never for a policy."""
GROUND_TRUTH_JOINT_STATES_TOPIC = "/sim/ground_truth/joint_states"
SIM_RESET_SERVICE = "/sim/reset"
LEARNING_STATUS_TOPIC = "/learning/status"
LEARNING_POLICY_TOPIC = "/learning/policy"


def outside(node: str, private: str) -> str:
    """A node's private name (``~/x``) as other nodes name it: ``/node/x`` (no namespace)."""
    if not private.startswith("~/"):
        raise ValueError(f"{private!r} is not a private name (~/...)")
    return f"/{node}/{private[2:]}"


NODE_STATE_TOPIC = "~/state"
"""Private: a node's state machine (e.g. ``/policy_node/state``), latched."""
POLICY_STATE_TOPIC_NAME = outside("policy_node", NODE_STATE_TOPIC)
"""``NODE_STATE_TOPIC`` of policy_node as a subscriber outside it names it."""
HW_STATE_TOPIC_NAME = outside("hw_node", NODE_STATE_TOPIC)
"""``NODE_STATE_TOPIC`` of hw_node as a subscriber outside it names it."""
OPERATOR_HEARTBEAT_TOPIC = "/operator/heartbeat"
"""std_msgs/Empty at >= 2 Hz from the operator's tool (keyboard_teleop sends it at 10 Hz): the
deadman. With hw_node's ``deadman_timeout_s`` > 0, its loss disarms the robot."""
BATTERY_TOPIC = "/battery_state"
"""hw_node: the pack voltage from the Robot HAT ADC (sensor_msgs/BatteryState)."""
HW_ARMED_TOPIC = "~/armed"
"""hw_node (``/hw_node/armed``): whether /joint_commands are executed, latched."""
HW_ARMED_TOPIC_NAME = outside("hw_node", HW_ARMED_TOPIC)
"""``HW_ARMED_TOPIC`` as a subscriber outside hw_node names it."""
HW_ARM_SERVICE = "~/arm"
"""hw_node: std_srvs/SetBool, true arms, false disarms (``/hw_node/arm``)."""
HW_ARM_SERVICE_NAME = outside("hw_node", HW_ARM_SERVICE)
"""``HW_ARM_SERVICE`` as a client outside hw_node names it."""
HW_RESET_SERVICE = "~/reset"
"""hw_node: std_srvs/Trigger, clears a latched e-stop or fault (``/hw_node/reset``)."""
HW_RESET_SERVICE_NAME = outside("hw_node", HW_RESET_SERVICE)
"""``HW_RESET_SERVICE`` as a client outside hw_node names it."""

TOPIC_TYPES: dict[str, str] = {
    JOINT_STATES_TOPIC: "sensor_msgs/msg/JointState",
    IMU_TOPIC: "sensor_msgs/msg/Imu",
    JOINT_COMMANDS_TOPIC: "sensor_msgs/msg/JointState",
    CMD_VEL_TOPIC: "geometry_msgs/msg/Twist",
    ESTOP_TOPIC: "std_msgs/msg/Bool",
    CLOCK_TOPIC: "rosgraph_msgs/msg/Clock",
    DIAGNOSTICS_TOPIC: "diagnostic_msgs/msg/DiagnosticArray",
    GAIT_PHASE_TOPIC: "std_msgs/msg/Float32",
    GROUND_TRUTH_ODOM_TOPIC: "nav_msgs/msg/Odometry",
    GROUND_TRUTH_JOINT_STATES_TOPIC: "sensor_msgs/msg/JointState",
    LEARNING_STATUS_TOPIC: "std_msgs/msg/String",
    LEARNING_POLICY_TOPIC: "std_msgs/msg/String",
    BATTERY_TOPIC: "sensor_msgs/msg/BatteryState",
    OPERATOR_HEARTBEAT_TOPIC: "std_msgs/msg/Empty",
}
"""Topic -> ROS 2 message type, in the ``pkg/msg/Name`` form rosbag2 files store."""

TELEOP_RECORDED_TOPICS: dict[str, str] = {
    t: TOPIC_TYPES[t]
    for t in (JOINT_STATES_TOPIC, IMU_TOPIC, JOINT_COMMANDS_TOPIC, CMD_VEL_TOPIC, GAIT_PHASE_TOPIC)
}
"""What bag_recorder records by default and the bag importer reads: topic -> message type."""

# --- frames ------------------------------------------------------------------------------------
BASE_FRAME_ID = "base_link"
IMU_FRAME_ID = "imu_link"
WORLD_FRAME_ID = "world"
"""The sim's fixed frame (ground-truth odometry)."""

# --- QoS ---------------------------------------------------------------------------------------
STREAM_QOS = QoSProfile(depth=10)
"""Reliable, volatile, keep last 10: every stream's publisher, and command subscribers (a
dropped command is a missed step; reliable publishers also serve best-effort subscribers)."""

SENSOR_QOS = qos_profile_sensor_data
"""Best effort, keep last 5: subscribers of /joint_states and /imu/data that want the newest
sample, not every sample (a late one is stale anyway)."""

LATCHED_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
"""/estop, /learning/policy, node states: a late subscriber still gets the last value."""
