# PiDog sim-to-real stack: set-up, tests, lint, type checks, the demo pipeline and benchmarks.
# `make demo` runs the main job, `make test` the test suite; both set up .venv first.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
PACKAGES := $(wildcard ros2_ws/src/pidog_*)
# DDS stays on this machine; each make invocation picks its own domain unless one is given.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export MUJOCO_GL ?= osmesa
export PYOPENGL_PLATFORM ?= osmesa

.PHONY: setup test test-stress lint type demo bench colcon clean

setup: $(STAMP)

# Re-runs only when a requirements file or a package manifest changed (idempotent, fast).
$(STAMP): requirements/dev.txt requirements/ros.txt requirements/ray.txt $(foreach p,$(PACKAGES),$(p)/setup.py $(p)/package.xml)
	@bash scripts/install_system_deps.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	$(PY) -m pip install --quiet -r requirements/ray.txt  # optional for users; tests/cluster needs it
	@if [ -n "$$ROS_DISTRO" ] && $(PYTHON) -c 'import rclpy' 2>/dev/null; then \
		echo "Using the sourced ROS 2 $$ROS_DISTRO install for rclpy"; \
	else \
		$(PY) -m pip install --quiet -r requirements/ros.txt; \
	fi
	$(PY) -m pip install --quiet --no-deps --no-build-isolation $(foreach p,$(PACKAGES),-e $(p))
	env -u MUJOCO_GL -u PYOPENGL_PLATFORM $(PY) -c "import rclpy; from sensor_msgs.msg import JointState, Imu; import mujoco, stable_baselines3, pidog_description"
	@touch $(STAMP)

# Three phases: the in-process tests on TEST_WORKERS pytest-xdist workers (--dist loadgroup:
# the tests marked with one xdist_group share a worker, so their module fixture is built once);
# the tests that start processes (DDS nodes, the Ray cluster; marked in tests/conftest.py) on as many workers, one
# test file per worker at a time (--dist loadfile: a file's module fixtures, such as the Ray
# cluster, stay on one worker; each worker has a DDS domain of its own), whose real-time tests
# hold with the other worker's load beside them as `make test-stress` checks; then the tests
# marked `alone` (the twin, whose physics slows under load), one at a time. The first two list
# their 15 slowest tests (where CI time goes). Exit 5 = nothing selected.
TEST_WORKERS ?= 2
test: setup
	@$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not processes" --durations=15 $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ] || exit $$rc; \
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "processes and not alone" --durations=15 $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ] || exit $$rc; \
	$(PY) -m pytest -m alone $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ] || exit $$rc

# The suite STRESS_RUNS times in a row while a CPU burner keeps one core busy (timing tests
# must hold on a loaded machine). PYTEST_ARGS narrows it, e.g. PYTEST_ARGS="tests/deploy".
STRESS_RUNS ?= 3
test-stress: setup
	$(PY) scripts/test_stress.py --runs $(STRESS_RUNS) -- $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy over the five packages (configured in pyproject.toml, [tool.mypy]).
type: setup
	$(VENV)/bin/mypy

colcon: setup
	cd ros2_ws && ../$(VENV)/bin/colcon build --symlink-install

demo: setup
	$(VENV)/bin/pidog-train --config demo $(DEMO_ARGS)

bench: setup
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) ros2_ws/build ros2_ws/install ros2_ws/log .pytest_cache
