"""The rosbags type store bag_recorder writes with and the bag importer (pidog_learning) reads with.

Kept apart from the recorder so the importer gets the same message definitions without rclpy.
"""

from __future__ import annotations

from rosbags.typesys import Stores, get_typestore

# Kilted is the stack's ROS 2; older rosbags releases stop at Jazzy (same definitions here).
TYPESTORE = get_typestore(getattr(Stores, "ROS2_KILTED", Stores.ROS2_JAZZY))
