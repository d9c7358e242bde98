"""pidog_control: what the PiDog runs above the drivers (policy_node, safety, teleop gait, recorder)."""
