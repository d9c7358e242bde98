"""pidog_hw: the physical PiDog (docs/HARDWARE.md).

Modules: ``robot_hat`` (Robot HAT I2C servos), ``sh3001`` (IMU; its orientation filter is
pidog_description.orientation_filter, shared with the simulator),
``maestro`` (Pololu Maestro serial servos), ``servo_backend`` (the common interface, dry run),
``i2c`` (bus helpers that raise), ``calibration`` / ``calibrate`` (offsets file and CLI),
``sequences`` (safe stand-up / lie-down), ``parameters`` and ``hw_node``. ``emulation`` holds
the device emulators used by tests and demos only.
"""
