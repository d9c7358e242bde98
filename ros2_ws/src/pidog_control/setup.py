"""ament_python package pidog_control (built by colcon, or pip-installed into the project venv)."""

from setuptools import find_packages, setup

PACKAGE = "pidog_control"

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
    description="What the PiDog runs above the drivers: policy runtime, safety layer, policy_node, teleop gait node, keyboard teleop and bag recorder.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "policy_node = pidog_control.policy_node:main",
            "teleop_gait_node = pidog_control.teleop_gait_node:main",
            "keyboard_teleop = pidog_control.keyboard_teleop:main",
            "bag_recorder = pidog_control.bag_recorder:main",
            "excitation = pidog_control.excitation:main",
            "pidog-excite = pidog_control.excitation:main",
        ],
    },
)
