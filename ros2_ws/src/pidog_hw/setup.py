"""ament_python package pidog_hw (built by colcon, or pip-installed into the project venv)."""

from setuptools import find_packages, setup

PACKAGE = "pidog_hw"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="PiDog sim-to-real team",
    maintainer_email="dev@pidog-sim2real.invalid",
    description="PiDog hardware drivers: Robot HAT I2C servos, SH3001 IMU, Pololu Maestro serial servos, calibration and hw_node.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": ["hw_node = pidog_hw.hw_node:main", "pidog-calibrate = pidog_hw.calibrate:main"],
    },
)
