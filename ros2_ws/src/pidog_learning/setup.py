"""ament_python package pidog_learning (built by colcon, or pip-installed into the project venv)."""

from setuptools import find_packages, setup

PACKAGE = "pidog_learning"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    # More than one machine (pidog-sweep, --ray-address); same pin as requirements/ray.txt.
    extras_require={"ray": ["ray==2.60.0"]},
    zip_safe=True,
    maintainer="PiDog sim-to-real team",
    maintainer_email="dev@pidog-sim2real.invalid",
    description="Learning pipeline: demonstrations, behavioural cloning, PPO fine-tuning, ONNX export, evaluation, rosbag import and learning_node (training side).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "learning_node = pidog_learning.learning_node:main",
            "pidog-train = pidog_learning.train_cli:main",
            "pidog-export = pidog_learning.export:main",
            "pidog-eval = pidog_learning.eval_cli:main",
            "pidog-import-bag = pidog_learning.bag_import:main",
            "pidog-sysid = pidog_learning.sysid:main",
            "pidog-calibrate-commands = pidog_learning.command_calibration:main",
            "pidog-sweep = pidog_learning.sweep:main",
        ],
    },
)
