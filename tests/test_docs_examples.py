"""Every shell example of the docs runs after ``pip install``, outside the repository; and every command warns about
a classifier without trained weights.

The slow test (``pytest -m slow``) builds invkit's wheel from a copy of the sources (``pip wheel --no-deps
--no-build-isolation``), installs it with ``--no-deps`` into a fresh venv (``--system-site-packages``, plus a
``.pth`` naming this environment's site-packages when this environment is itself a venv, so torch is not installed
again), and runs every example of README.md and docs/*.md (a line of a ```bash block that starts with ``invkit `` or
``python -c``, ``\\`` continuations joined) with ``bash -c`` in one tmp working folder, in page order, with HOME and
INVKIT_CACHE in tmp and HF_HUB_OFFLINE=1. Examples need nothing of the checkout: they name the shipped checkpoints
``demo:NAME``. What runs differs from the page only by ``TINY`` (lengths of training runs and image counts, so the
run stays short; the command line is what is tested) and the input images ``INPUTS`` stands in for the reader's.
Examples that need what invkit cannot have here (ImageNet or Tiny ImageNet files, full MNIST or published weights
that are downloads, a GPU, a plugin installed from a checkout) are skipped by ``SKIP``, each with its reason; every
other example must exit 0. Examples of a page may use what an earlier one made (``runs/clf_robust``), so run the
test whole.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest
from _cli import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RANDOM_WARNING = "warning: smallcnn.base has no trained weights here: it runs on random weights"


@dataclass(frozen=True)
class Example:
    page: str  # path relative to the repository
    line: int  # 1-based line of the command's first line
    command: str  # continuation lines joined

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def shell_examples(pages: list[Path] = PAGES, root: Path = ROOT) -> list[Example]:
    """The commands of the ```bash blocks of ``pages`` (named relative to ``root``): lines starting with ``invkit ``
    or ``python -c``."""
    found = []
    for page in pages:
        lines = page.read_text().splitlines()
        in_bash = False
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("```"):
                in_bash = not in_bash and line.strip() in ("```bash", "```sh", "```shell")
                i += 1
                continue
            start = i
            command = line
            while command.endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command[:-1].rstrip() + " " + lines[i].strip()
            if in_bash and command.startswith(("invkit ", "python -c")):
                found.append(Example(page.relative_to(root).as_posix(), start + 1, command))
            i += 1
    return found


# (page, text in the command, why it cannot run here): every other example must exit 0.
SKIP: list[tuple[str, str, str]] = [
    ("docs/baselines.md", "--data ~/.cache/invkit-data/mnist", "full MNIST in ImageFolder layout, a download"),
    ("docs/bench.md", "robust_resnet152", "the published robust ResNet-152 weights (a download) and Tiny ImageNet"),
    ("docs/classifiers.md", "robust_resnet152", "the published robust ResNet-152 weights file (a download)"),
    ("docs/data.md", "~/.cache/invkit-data/mnist", "full MNIST unpacked from a checkout's shared/ data (a download)"),
    ("docs/data.md", "tinyimagenet64.tar.gz", "the Tiny ImageNet tarball of a checkout's shared/ data"),
    ("docs/imagenet64.md", "imagenet64", "Downsampled ImageNet (a download of 10+ GB)"),
    (
        "docs/plugins.md",
        "invkit ",
        "the example plugin installed from a checkout (pip install -e docs/example_plugin); its own tests and "
        "tests/test_plugins.py run these",
    ),
    ("docs/study.md", "~/.cache/invkit-data/tinyimagenet64", "Tiny ImageNet unpacked from a checkout's shared/ data"),
    ("docs/study.md", "make bench-tin", "the Tiny ImageNet bench of the line before"),
    ("docs/study.md", "answers-*.json", "answers that people saved from the study page"),
    ("docs/train-classifier.md", "~/.cache/invkit-data/mnist", "full MNIST in ImageFolder layout, a download"),
    ("docs/train-classifier.md", "tinyimagenet64.tar.gz", "the Tiny ImageNet tarball of a checkout's shared/ data"),
    ("docs/training.md", "biggan_proj.paper", "the Tiny ImageNet files, and a GPU (bf16, the paper's 64x64 model)"),
    ("docs/training.md", "--out runs/bg-tin --resume", "the Tiny ImageNet run of the line before, which it resumes"),
]

# How a runnable example is shortened (the options that set how long it runs; everything else is as the page says).
TINY: list[tuple[str, object, str]] = [
    (r"--steps (\d+)", lambda m: f"--steps {math.ceil(int(m[1]) / 1000)}", "training steps / 1000: 5000 -> 5"),
    (r"--train-steps (\d+)", lambda m: f"--train-steps {math.ceil(int(m[1]) / 1000)}", "bench's training, / 1000"),
    (r"--epochs [\d.]+", lambda m: "--steps 2", "train-classifier: 2 steps instead of whole epochs"),
    (r"(?<= )-n (\d+)", lambda m: f"-n {min(int(m[1]), 8)}", "at most 8 images (bench, probe) or samples (invert)"),
    (r"\bsteps=(\d+)", lambda m: f"steps={min(int(m[1]), 10)}", "optim: at most 10 optimisation steps"),
]

# The reader's own images the examples invert: a few of the MNIST test digits shipped with invkit.
INPUTS = {"photos": 3, "my_digits": 3, "digit.png": 1}


def skip_reason(example: Example) -> str | None:
    for page, text, reason in SKIP:
        if example.page == page and text in example.command:
            return reason
    return None


def tiny(command: str) -> str:
    for pattern, replace, _ in TINY:
        command = re.sub(pattern, replace, command)
    return command


# ------------------------------------------------------------------------------------------------- fast checks
def test_examples_are_found_and_every_skip_names_a_reason_and_an_example():
    examples = shell_examples()
    assert len(examples) >= 25
    assert all(e.command.startswith(("invkit ", "python -c")) and not e.command.endswith("\\") for e in examples)
    for page, text, reason in SKIP:
        assert len(reason) > 20 and (ROOT / page).is_file()
        assert any(e.page == page and text in e.command for e in examples), f"SKIP entry {page!r} {text!r} is stale"
    runnable = [e for e in examples if skip_reason(e) is None]
    assert len(runnable) >= 20
    for pattern, _, _ in TINY:  # every shortening rule still applies to some example
        assert any(re.search(pattern, e.command) for e in runnable), pattern
    assert tiny("invkit train --steps 5000 -n 500 --option optim:steps=300 --epochs 3") == (
        "invkit train --steps 5 -n 8 --option optim:steps=10 --steps 2"
    )


def test_shell_examples_extraction_joins_continuations(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "text\n```bash\n# comment\ninvkit a \\\n    --b c\npip install x\n```\n```text\ninvkit synopsis\n```\n"
        "```python\ninvkit = 1\n```\n```bash\npython -c 'print(1)'\n```\n"
    )
    assert shell_examples([page], root=tmp_path) == [
        Example("p.md", 4, "invkit a --b c"),
        Example("p.md", 15, "python -c 'print(1)'"),
    ]


def test_no_example_depends_on_a_checkout_path():
    """The shipped checkpoints are named ``demo:NAME`` in every code block: ``invkit/assets/demo/...`` exists only
    in a checkout."""
    for page in PAGES:
        for block in re.findall(r"^```[a-z]*\n(.*?)^```", page.read_text(), re.S | re.M):
            assert "invkit/assets/demo" not in block, f"{page.name}: {block.strip()[:120]}"


# --------------------------------------------------------------------------- the warning for untrained weights
def test_random_weights_warning_reaches_every_command(tmp_path, one_thread):
    """A registry classifier without trained weights (``smallcnn.base``) is named in one warning line by every
    command that takes a classifier, before any work."""
    from PIL import Image

    from invkit.data import load_dataset, take

    images, _ = take(load_dataset("default", "test"), 1, seed=0)
    Image.fromarray((images[0, 0] * 255).byte().numpy()).save(tmp_path / "d.png")
    clf = ["--classifier", "smallcnn.base"]
    runs = {
        "invert": cli(
            ["invert", *clf, "--inverter", "optim", "--option", "steps=1", str(tmp_path / "d.png")]
            + ["--out", str(tmp_path / "inv")]
        ),
        "bench": cli(
            ["bench", *clf, "--inverter", "optim", "--option", "optim:steps=1", "-n", "2", "--id-k", "2"]
            + ["--out", str(tmp_path / "bench")]
        ),
        "probe": cli(
            ["probe", "class-spread", *clf, "--inverter", "optim", "--inverter-option", "steps=1", "-n", "4"]
            + ["--out", str(tmp_path / "probe")]
        ),
        "standing-stats": cli(
            ["standing-stats", "demo:biggan_standard", *clf, "--batches", "1", "--batch-size", "2"]
            + ["--out", str(tmp_path / "ss")]
        ),
        # train stops before the first step (optim cannot be trained): the warning came first
        "train": cli(["train", *clf, "--inverter", "optim", "--out", str(tmp_path / "train")]),
        "export": cli(["export", "demo:biggan_standard", str(tmp_path / "x"), *clf]),
    }
    for name, r in runs.items():
        assert r.output.count(RANDOM_WARNING) == 1, (name, r.output)
        assert name in ("train", "export") or r.exit_code == 0, (name, r.output)
    trained = cli(
        ["invert", "--classifier", "demo:classifier_standard", "--inverter", "optim", "--option", "steps=1"]
        + [str(tmp_path / "d.png"), "--out", str(tmp_path / "inv2")]
    )
    assert trained.exit_code == 0 and "no trained weights" not in trained.output


def test_random_weights_warning_from_the_library_resolve_functions():
    import warnings

    import invkit
    from invkit.core.resolve import RandomWeightsWarning

    with pytest.warns(RandomWeightsWarning, match="smallcnn.base has no trained weights"):
        clf = invkit.resolve_classifier("smallcnn.base")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RandomWeightsWarning)
        invkit.resolve_inverter("optim", clf)  # already warned about this classifier: not twice
        invkit.resolve_inverter("optim", invkit.resolve_classifier("demo:classifier_standard"))
    built = invkit.create_classifier("smallcnn.base")  # built, not resolved: resolve_inverter is where it is used
    with pytest.warns(RandomWeightsWarning, match="demo:classifier_standard"):
        invkit.resolve_inverter("optim", built)


# ------------------------------------------------------------------------------- the examples, from the wheel
def _run(args: list, **kwargs) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert r.returncode == 0, f"{' '.join(map(str, args))}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """invkit installed from its wheel into a fresh venv outside the repository; (env, working folder)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"  # a copy: building in the checkout would write build/ and *.egg-info there
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("invkit", "plugins"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", base / "dist", src],
        cwd=base,
    )
    (wheel,) = (base / "dist").glob("invkit-*.whl")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel], cwd=base)
    if sys.prefix != sys.base_prefix:
        # This environment is a venv, which --system-site-packages does not reach: name its site-packages after the
        # new venv's own, so torch & co. are found without installing them again (the wheel's invkit comes first;
        # the .pth files there, such as an editable invkit's, are not run).
        site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
        paths = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
        (Path(site) / "_invkit_test_parent_env.pth").write_text("\n".join(paths) + "\n")
    home, work = base / "home", base / "work"
    home.mkdir()
    work.mkdir()
    env = {k: os.environ[k] for k in ("TMPDIR", "LANG", "LC_ALL", "SYSTEMROOT") if k in os.environ}
    env |= {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "VIRTUAL_ENV": str(venv),
        "HOME": str(home),
        "INVKIT_CACHE": str(base / "invkit-cache"),
        "HF_HUB_OFFLINE": "1",  # no network in tests
        "MPLBACKEND": "Agg",
    }
    where = _run(
        ["bash", "-c", "python -c 'import invkit, invkit_plugins; print(invkit.__file__, invkit_plugins.__file__)'"],
        cwd=work,
        env=env,
    ).stdout
    assert str(ROOT) not in where and where.count(str(venv)) == 2, where  # the wheel's, not the checkout's
    _write_inputs(work)
    return env, work


def _write_inputs(work: Path) -> None:
    from PIL import Image

    from invkit.data import load_dataset, take

    images, _ = take(load_dataset("default", "test"), 8, seed=0)
    k = 0
    for name, count in INPUTS.items():
        for i in range(count):
            target = work / name if name.endswith(".png") else work / name / f"digit{i}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((images[k, 0] * 255).byte().numpy()).save(target)
            k += 1


@pytest.mark.slow
@pytest.mark.parametrize("example", shell_examples(), ids=[e.id for e in shell_examples()])
def test_docs_example_runs_from_the_installed_wheel(installed, example):
    reason = skip_reason(example)
    if reason is not None:
        pytest.skip(f"needs {reason}")
    env, work = installed
    command = tiny(example.command)
    r = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{example.id}: {command}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    assert "Traceback" not in r.stderr, r.stderr[-4000:]
