"""Packaging as a research library's users and contributors meet it (issue 24, points 1, 5 and 8).

- The installed metadata states the torch/torchvision range invkit supports, never an exact pin; the exact versions
  CI tests live in constraints/ci.txt, inside that range.
- .ci/run installs and tests the way the README says: its pip install lines are the README's, and it runs the
  README's test and docs commands.
- The API reference site builds with ``mkdocs build --strict`` with the network cut off, and holds every public name
  (the ``__all__`` of ``invkit`` and its public subpackages, every ``ProbeResult``/``ProbeContext`` field, the
  signatures of ``save_train_state``/``load_train_state``).
"""

from __future__ import annotations

import dataclasses
import html
import importlib
import importlib.metadata
import inspect
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"
CONSTRAINTS = ROOT / "constraints" / "ci.txt"
TORCH_PACKAGES = ("torch", "torchvision")
PUBLIC_PACKAGES = ("invkit.io", "invkit.data", "invkit.training", "invkit.evaluation", "invkit.utils", "invkit.testing")


def _requirements(lines: list[str]) -> dict[str, Requirement]:
    reqs = [Requirement(line) for line in lines]
    return {r.name.lower(): r for r in reqs if r.marker is None}  # extras' requirements carry a marker


def _pyproject_requirements() -> dict[str, Requirement]:
    return _requirements(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


def _bash_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", markdown, re.S | re.M)


def _commands(text: str) -> list[str]:
    """The command lines of a script or code block: comments (also trailing ones) and blank lines dropped."""
    lines = (re.sub(r"\s+#.*$", "", line).strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


# ------------------------------------------------------------------------------------------ 1. the torch range
@pytest.mark.parametrize("name", TORCH_PACKAGES)
def test_installed_metadata_states_a_range_not_a_pin(name):
    """What ``pip install invkit`` sees: a lower and an upper bound below the next major, no ``==``."""
    installed = _requirements(importlib.metadata.requires("invkit") or [])
    assert name in installed, f"invkit's metadata does not require {name}"
    spec = installed[name].specifier
    assert not any(s.operator in ("==", "===", "~=") for s in spec), f"{name} is pinned in invkit's metadata: {spec}"
    lower = [Version(s.version) for s in spec if s.operator == ">="]
    upper = [Version(s.version) for s in spec if s.operator == "<"]
    assert lower and upper, f"{name}: the metadata must give a lower and an upper bound, not {spec}"
    assert upper[0].release[1:] in ((), (0,), (0, 0)) and upper[0] > lower[0], f"{name}: upper bound {upper[0]}"
    assert str(spec) == str(_pyproject_requirements()[name].specifier), (
        f"the installed metadata ({spec}) is not pyproject.toml's: reinstall with the README's command"
    )


@pytest.mark.parametrize("name", TORCH_PACKAGES)
def test_ci_constraints_pin_exact_versions_inside_the_supported_range(name):
    pins = _requirements(_commands(CONSTRAINTS.read_text()))
    assert name in pins, f"constraints/ci.txt does not pin {name}"
    (pin,) = pins[name].specifier
    assert pin.operator == "==", f"constraints/ci.txt: {name} {pin} is not an exact version"
    supported = _pyproject_requirements()[name].specifier
    assert supported.contains(pin.version), f"CI tests {name} {pin.version}, outside the supported {supported}"


def test_pip_keeps_an_installed_torch_in_the_range(tmp_path):
    """The README's promise: installing invkit into an environment whose torch is in the range leaves it alone.

    pip's own resolver, asked what ``pip install .`` would do in this environment (offline: ``--no-index``,
    with the setuptools already installed), plans to install invkit and nothing else.
    """
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--no-build-isolation", "--no-cache-dir"]
    r = subprocess.run([*cmd, "--quiet", "--report", str(report), str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    planned = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert planned == {"invkit"}, f"pip would also install {sorted(planned - {'invkit'})}"


def test_readme_states_the_supported_range_and_the_cpu_wheels():
    text = README.read_text()
    for name in TORCH_PACKAGES:
        spec = _pyproject_requirements()[name].specifier
        lower = next(s.version for s in spec if s.operator == ">=")
        upper = next(s.version for s in spec if s.operator == "<")
        assert f"{name} ≥ {lower}, < {upper}" in " ".join(text.split()), f"README does not state {name}'s range"
        pinned = next(s.version for s in _requirements(_commands(CONSTRAINTS.read_text()))[name].specifier)
        assert f"{name} {pinned}" in text, f"README does not say CI tests {name} {pinned}"
    commands = [c for block in _bash_blocks(text) for c in _commands(block)]
    assert "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu" in commands


# ------------------------------------------------------------------------------ .ci/run does what the README says
def test_ci_installs_the_way_the_readme_says():
    readme_commands = {c for block in _bash_blocks(README.read_text()) for c in _commands(block)}
    installs = [c for c in _commands(CI_RUN.read_text()) if re.match(r"(python -m )?pip install", c)]
    installs = [c for c in installs if not c.endswith("--upgrade --quiet pip")]  # the venv's own pip
    assert installs, ".ci/run installs nothing with pip"
    for command in installs:
        assert command in readme_commands, f".ci/run runs `{command}`, which the README does not say"
    assert any("-c constraints/ci.txt" in c and " -e " in c for c in installs), (
        ".ci/run must install invkit through constraints/ci.txt"
    )


def test_ci_runs_the_readme_test_commands():
    """Each command of the README's "Tests" section runs in .ci/run (the slow tests and the docs build included)."""
    section = README.read_text().split("## Tests\n", 1)[1].split("\n## ", 1)[0]
    wanted = [c for block in _bash_blocks(section) for c in _commands(block)]
    assert {"pytest", "pytest -m slow", "mkdocs build --strict"} <= set(wanted)
    ci = _commands(CI_RUN.read_text())
    for command in wanted:  # CI may prefix a clean environment and add an output folder
        assert any(line.endswith(command) or f"{command} --" in line for line in ci), f".ci/run lacks `{command}`"


def test_default_run_leaves_out_the_slow_tests():
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    assert "not slow" in addopts


# --------------------------------------------------------------------------------------- 5. the API reference
# Runs mkdocs in a child process with every socket connection refused: a theme or plugin that fetches anything
# (fonts, inventories, icons) at build time fails the build instead of needing the network.
_OFFLINE_BUILD = """
import socket, sys

def refuse(*args, **kwargs):
    raise OSError("the docs build must not use the network")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from mkdocs.__main__ import cli
sys.argv = ["mkdocs", "build", "--strict", "--config-file", sys.argv[1], "--site-dir", sys.argv[2]]
cli()
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocstrings", reason='the docs extra is not installed: pip install -e ".[docs]"')
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run(
        [sys.executable, "-c", _OFFLINE_BUILD, str(ROOT / "mkdocs.yml"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # that banner is about mkdocs' future, not this site
    )
    warnings = [line for line in r.stderr.splitlines() if re.match(r"(WARNING|ERROR|Aborted)", line)]
    assert r.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(warnings or r.stderr.splitlines()[-20:])
    return out


def _anchors(site: Path) -> set[str]:
    found: set[str] = set()
    for page in site.rglob("*.html"):
        found.update(re.findall(r'id="(invkit[\w.]*)"', page.read_text()))
    return found


def test_api_site_documents_every_public_name(site):
    anchors = _anchors(site)
    missing = []
    import invkit

    for name in invkit.__all__:  # invkit.X, or where it is defined (the errors' page documents invkit.errors)
        obj = getattr(invkit, name)
        where = {f"invkit.{name}", f"{getattr(obj, '__module__', '')}.{name}"}
        if not where & anchors:
            missing.append(f"invkit.{name}")
    for package in PUBLIC_PACKAGES:
        module = importlib.import_module(package)
        missing += [f"{package}.{n}" for n in module.__all__ if f"{package}.{n}" not in anchors]
    for name in ("invkit.errors", "invkit.demo"):  # no __all__: the public classes and functions defined there
        module = importlib.import_module(name)
        missing += [
            f"{name}.{n}"
            for n, obj in vars(module).items()
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == name
            if not n.startswith("_") and f"{name}.{n}" not in anchors
        ]
    missing += [] if "invkit.core.run_probe" in anchors else ["invkit.core.run_probe"]
    assert not missing, f"the API reference (docs/api/) lacks {missing}"


@pytest.mark.parametrize("cls", ["ProbeResult", "ProbeContext", "ClassifierConfig"])
def test_api_site_lists_every_dataclass_field(site, cls):
    import invkit

    anchors = _anchors(site)
    fields = [f.name for f in dataclasses.fields(getattr(invkit, cls))]
    assert fields and not [f for f in fields if f"invkit.{cls}.{f}" not in anchors]


@pytest.mark.parametrize("name", ["save_train_state", "load_train_state"])
def test_api_site_shows_the_train_state_signatures(site, name):
    """The signature an outside author needs (they guessed the argument order wrong): parameters in order."""
    import invkit.io

    page = (site / "api" / "io" / "index.html").read_text()
    start = page.index(f'id="invkit.io.{name}"')
    text = html.unescape(re.sub(r"<[^>]+>", "", page[start : start + 4000]))
    shown = re.search(rf"{name}\((.*?)\)\s*->", text, re.S)
    assert shown, f"no signature of {name} on the io page"
    params = [p for p in inspect.signature(getattr(invkit.io, name)).parameters]
    assert re.findall(r"(\w+):", shown.group(1)) == params


def test_api_site_loads_nothing_from_the_web(site):
    """No web fonts, scripts or styles from another host: the pages work offline as the build did."""
    external = set()
    for page in site.rglob("*.html"):
        external.update(re.findall(r'<(?:link|script|img)\b[^>]*\b(?:href|src)="(https?://[^"]+)"', page.read_text()))
    assert not external


def test_every_docs_page_is_in_the_site(site):
    """Every page of docs/ is built (mkdocs.yml's nav lists them all; strict mode fails on one left out)."""
    for page in (ROOT / "docs").glob("*.md"):
        built = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert built.is_file(), f"docs/{page.name} is not in the site: add it to mkdocs.yml's nav"
