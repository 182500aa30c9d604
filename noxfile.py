"""Developer sessions: tests, slow end-to-end runs, the plugin compatibility matrix, benchmarks.

    nox -s tests      # the fast suite (what CI runs)
    nox -s slow       # end-to-end runs marked @pytest.mark.slow
    nox -s gpu        # on a CUDA machine: the tests marked @pytest.mark.gpu (step, AMP, NCCL DDP, two-stage grads)
    nox -s torch_range  # the fast suite on the lowest declared torch and on the newest below the cap
    nox -s matrix     # core alone, core + each plugin or library of registry.toml alone, all, third-party example
    nox -s bench      # pytest-benchmark suites, JSON in .benchmarks/
    nox -s compare    # side by side with torchjd (installs its cvxpy extras), JSON in .benchmarks/
    nox -s demo       # the README's demo run
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).parent
_REGISTRY = tomllib.loads((ROOT / "registry.toml").read_text())
#: plugins and libraries (which register nothing) by key: nox installs and tests both the same way
CATALOG = {**_REGISTRY["plugins"], **_REGISTRY.get("libraries", {})}
#: the test kit (mtlx_testing) that every test suite imports, the core's included
TEST_KIT = CATALOG["testing"]["dir"]
TORCH = "torch==2.13.0"  # pinned first so nothing pulls another torch build

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


def _install_all(session: nox.Session) -> None:
    session.install(TORCH)
    session.install("-r", "requirements-dev.txt")


@nox.session
def tests(session: nox.Session) -> None:
    """The fast suite over the core and every plugin."""
    _install_all(session)
    session.run("pytest", *session.posargs)


@nox.session
def slow(session: nox.Session) -> None:
    """End-to-end runs marked slow."""
    _install_all(session)
    session.run("pytest", "-m", "slow", *session.posargs)


#: the ends of the declared range ``torch>=2.4,<2.15``: its floor and the newest release below the cap
TORCH_RANGE = ["2.4.1", "2.14.1"]


@nox.session(name="torch_range")
@nox.parametrize("torch", TORCH_RANGE)
def torch_range(session: nox.Session, torch: str) -> None:
    """The fast suite on another torch from the declared range (PyPI builds: CUDA ones on Linux, GBs).

    Everything is installed in one resolve with torch pinned, so a dependency
    that needs a newer torch fails here. Not in CI (downloads); its last
    result is in benchmarks/README.md.
    """
    dirs = _plugin_dirs(list(CATALOG))
    session.install(f"torch=={torch}", "-e", ".[test]",
                    *[a for d in [*dirs, "examples/third-party-plugin"] for a in ("-e", d)])
    session.run("python", "-c", "import torch; print('torch', torch.__version__)")
    session.run("pytest", "-p", "no:randomly", *session.posargs)


@nox.session
def gpu(session: nox.Session) -> None:
    """The GPU tests (marker ``gpu``): one training step, AMP fp16/bf16, 2-process NCCL DDP, two-stage gradients.

    Needs a machine with CUDA (torch from PyPI is a CUDA build there); fails,
    not skips, without one. Two-process DDP needs two GPUs.
    """
    _install_all(session)
    session.run("python", "-c", "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'nox -s gpu needs CUDA')")
    session.run("pytest", "-m", "gpu", "tests/gpu", "-p", "no:randomly", *session.posargs)


def _required(key: str) -> list[str]:
    """``key`` after the first-party plugins it declares it needs (``requires``), recursively."""
    order: list[str] = []
    for dep in CATALOG[key].get("requires", []):
        order += [k for k in _required(dep) if k not in order]
    return [*order, key]


def _plugin_dirs(keys: list[str], *, with_tests: bool = True) -> list[str]:
    """Directories to install for catalogue entries: what they require, and what their tests need."""
    seen: list[str] = [TEST_KIT] if with_tests else []
    for key in keys:
        needed = [*CATALOG[key].get("test_requires", []), key] if with_tests else [key]
        for dep in [k for n in needed for k in _required(n)]:
            path = CATALOG[dep]["dir"]
            if path not in seen and (ROOT / path).is_dir():
                seen.append(path)
    return seen


MATRIX = ["core", *[k for k in CATALOG if (ROOT / CATALOG[k]["dir"]).is_dir()], "all", "third-party"]


@nox.session
@nox.parametrize("target", MATRIX)
def matrix(session: nox.Session, target: str) -> None:
    """One fresh venv per target: core alone, core + one plugin or library (+ its test deps), all, third-party.

    A plugin (or library) is first installed with only what it declares (``requires``) and
    checked alone (``.ci/plugin_alone.py``), so an undeclared dependency fails;
    then its test dependencies are added and its tests run. nox's closing
    summary is the plugin x pass/fail table.
    """
    session.install(TORCH)
    session.install("-e", ".[test]")
    if target == "core":
        session.install("-e", TEST_KIT)
        session.run("pytest", "tests")
    elif target == "all":
        session.install(*[a for d in _plugin_dirs(list(CATALOG)) for a in ("-e", d)])
        session.install("-e", "examples/third-party-plugin")
        session.run("pytest")
    elif target == "third-party":
        session.install("-e", TEST_KIT, "-e", "examples/third-party-plugin")
        session.run("pytest", "examples/third-party-plugin")
    else:
        session.install(*[a for d in _plugin_dirs([target], with_tests=False) for a in ("-e", d)])
        session.run("python", ".ci/plugin_alone.py", target)
        session.install(*[a for d in _plugin_dirs([target]) for a in ("-e", d)])
        session.run("pytest", CATALOG[target]["dir"])


@nox.session
def bench(session: nox.Session) -> None:
    """pytest-benchmark suites; JSON results in .benchmarks/."""
    _install_all(session)
    Path(".benchmarks").mkdir(exist_ok=True)
    session.run(
        "pytest", "benchmarks", "--benchmark-enable", "-p", "no:randomly", "-m", "not slow or slow",
        "--benchmark-json=.benchmarks/bench.json", *session.posargs,
    )


@nox.session
def compare(session: nox.Session) -> None:
    """Side by side with torchjd (same model, data, aggregator); JSON in .benchmarks/compare.json."""
    session.install(TORCH)
    session.install("-e", ".[test]")
    session.install(*[a for d in _plugin_dirs(["baselines", "archs", "digits"]) for a in ("-e", d)])
    # cvxpy + ECOS: torchjd's own CAGrad and Nash-MTL need them (mtlx does not), so only this session has them
    session.install("torchjd[cagrad,nash-mtl]>=0.18,<0.19")
    Path(".benchmarks").mkdir(exist_ok=True)
    session.run(
        "pytest", "benchmarks/test_compare_torchjd.py", "--benchmark-enable", "-s", "-p", "no:randomly",
        "--benchmark-json=.benchmarks/compare.json", *session.posargs,
    )


@nox.session
def demo(session: nox.Session) -> None:
    """The README's demo: EW on the embedded digits dataset."""
    session.install(TORCH)
    session.install("-r", "requirements.txt")
    session.run("mtlx", "run", "--dataset", "digits", *session.posargs)
