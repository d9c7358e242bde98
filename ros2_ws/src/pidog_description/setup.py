"""ament_python package pidog_description (built by colcon, or pip-installed into the project venv)."""

from setuptools import find_packages, setup

PACKAGE = "pidog_description"

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
    description="PiDog robot facts: joint order and limits, servo map, leg kinematics, observation/action spec and the scripted trot.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [],
    },
)
