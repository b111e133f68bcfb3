"""Settings of the test run that must come before the first import of jax (this file is loaded before any
other), and doctests collected once: ``lrpjax/rules.py`` is ``lrpjax.core.rules`` under its public path, and
pytest would refuse the second import of one file under two names."""

import os

# jax's default partitionable threefry makes XLA:CPU compile each random draw for seconds (jaxlib 0.10.2: a
# normal of one kernel shape 7 s against 0.5 s), which dominated the tests that randomise layers, train from
# scratch or add noise; the classic threefry draws other numbers but is as random. Set before jax is imported,
# so the CLI and script subprocesses the tests start inherit it.
os.environ.setdefault("JAX_THREEFRY_PARTITIONABLE", "false")

# The tests start many processes (the CLI, the grid, the study, conversion) that compile the same XLA programs
# again, and rebuild the same models in many tests: one compilation cache for this run (a fresh directory,
# removed at exit; every program that takes over 0.2 s to compile), inherited by those processes.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="lrpjax-tests-xla-")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)

# Each pytest-xdist worker gets its own share of the cores, one compute thread per core: XLA and torch each start
# a thread per core they may run on, so two workers that both see every core run four compute threads on two
# (suite 1058 s; pinned 920 s). XLA sizes its pool from the affinity mask; torch and OpenMP read OMP_NUM_THREADS.
# Set before either is imported; subprocesses inherit it.
_WORKER, _WORKERS = os.environ.get("PYTEST_XDIST_WORKER", ""), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 0))
if _WORKER.startswith("gw") and hasattr(os, "sched_setaffinity") and os.environ.get("LRPJAX_TEST_PINNING") != "0":
    _cores = sorted(os.sched_getaffinity(0))
    if len(_cores) >= _WORKERS > 1:
        _mine = _cores[int(_WORKER[2:]) % _WORKERS::_WORKERS]
        os.sched_setaffinity(0, _mine)
        os.environ.setdefault("OMP_NUM_THREADS", str(len(_mine)))

import pytest  # noqa: E402

from lrpjax import PUBLIC_PATHS  # noqa: E402

collect_ignore = [f"lrpjax/{name}.py" for name in PUBLIC_PATHS]


def pytest_configure(config):
    from jax import monitoring

    config._xla_cache_saved = [0.0, 0]

    def listen(event, seconds, **_):
        if event == "/jax/compilation_cache/compile_time_saved_sec":
            config._xla_cache_saved[0] += seconds
            config._xla_cache_saved[1] += 1

    monitoring.register_event_duration_secs_listener(listen)


# The files that take longest (seconds in one pinned worker), collected first: pytest-xdist hands whole files to
# its two workers in collection order (pyproject.toml), so the long ones start at once and the short ones fill
# the gaps, instead of one worker ending alone on the parity tests, which come last alphabetically.
LONGEST_FILES = {"test_zennit_parity.py": 310, "test_engine.py": 230, "test_resnet.py": 150, "test_rehearsal.py": 105,
                 "test_planted.py": 88, "test_resnet_downstream.py": 82, "test_study.py": 81, "test_train.py": 65,
                 "test_grid.py": 63, "test_readme.py": 60}


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: -LONGEST_FILES.get(item.path.name, 0))  # stable: each file keeps its order


def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):  # a pytest-xdist worker: its count goes to the controller
        session.config.workeroutput["xla_cache_saved"] = session.config._xla_cache_saved


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    seconds, hits = getattr(node, "workeroutput", {}).get("xla_cache_saved", (0.0, 0))
    node.config._xla_cache_saved[0] += seconds
    node.config._xla_cache_saved[1] += hits


def pytest_terminal_summary(terminalreporter, config):
    seconds, hits = config._xla_cache_saved
    terminalreporter.write_line(f"XLA compilation cache (the test processes): {hits} hits, "
                                f"{seconds:.0f} s of compilation saved")
