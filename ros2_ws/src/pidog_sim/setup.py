"""ament_python package pidog_sim (built by colcon, or pip-installed into the project venv)."""

from setuptools import find_packages, setup

PACKAGE = "pidog_sim"

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
    description="MuJoCo simulation of the PiDog: model, gymnasium PiDogEnv, evaluation CLI and the sim_node publishing the robot's topics.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": ["sim_node = pidog_sim.sim_node:main"],
    },
)
