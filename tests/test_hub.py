"""Checkpoints by name: ``demo:NAME`` and ``hf-hub:OWNER/NAME[@REVISION]`` (``invkit.io.locate``, ``invkit.io.hub``),
and sharing checkpoints with ``invkit export`` / ``invkit push`` (``invkit.evaluation.export``, ``invkit.cli.export``).

No test reaches the network. The download side runs against a Hugging Face cache each test builds in
huggingface_hub's on-disk layout (``models--OWNER--NAME/{blobs,snapshots/COMMIT,refs/REF}``) under a tmp
``HF_HUB_CACHE`` with ``HF_HUB_OFFLINE=1`` (and ``HF_ENDPOINT`` at a closed local port, so a slip would fail rather
than go online), and, for the online path (a download, an unknown repository or revision), against a small Hub API
served on 127.0.0.1. ``invkit push`` is tested up to the call into huggingface_hub: its refusals, and the arguments
it hands to ``HfApi.upload_folder``; a real upload needs the network and a Hub login (docs/checkpoints.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import yaml
from _cli import cli, one_line_error

import invkit
from invkit.core.provenance import classifier_identity, network_digest
from invkit.errors import CheckpointError
from invkit.io.checkpoint import weights_digest
from invkit.io.hub import EXPORT_FILES, hub_checkpoint, parse_hub_spec, read_model_card
from invkit.io.locate import demo_dir, demo_names, local_checkpoint

DEMO = Path(invkit.__file__).parent / "assets" / "demo"
FILES = ("config.json", "model.safetensors")
COMMIT_A, COMMIT_B, COMMIT_C = "a" * 40, "b" * 40, "c" * 40


# ------------------------------------------------------------------------------------------------- helpers
def _files(folder: Path) -> dict[str, bytes]:
    return {f: (folder / f).read_bytes() for f in FILES}


def hub_cache(root: Path, repo_id: str, commits: dict[str, dict[str, bytes]], refs: dict[str, str]) -> Path:
    """Build ``root/models--OWNER--NAME`` as huggingface_hub lays out its cache: each file's content once in
    ``blobs/`` (named by its SHA-256, as LFS files are), ``snapshots/COMMIT/FILE`` a relative symbolic link to it,
    ``refs/REF`` holding a commit (a branch or a tag)."""
    owner, name = repo_id.split("/")
    repo = root / f"models--{owner}--{name}"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for commit, files in commits.items():
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        for fname, data in files.items():
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            (snap / fname).symlink_to(os.path.relpath(blob, snap))
    for ref, commit in refs.items():
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)  # huggingface_hub writes the commit without a newline
    return repo


@pytest.fixture
def digit(tmp_path) -> str:
    """One embedded MNIST test digit as a PNG file."""
    from PIL import Image

    from invkit.data import load_dataset, take

    images, _ = take(load_dataset("default", "test"), 1, seed=0)
    Image.fromarray((images[0, 0] * 255).byte().numpy()).save(tmp_path / "d.png")
    return str(tmp_path / "d.png")


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """A Hub cache in tmp, offline: ``me/mnist-clf`` (main: the robust demo classifier; tag v1 and commit A: the
    standard one) and ``me/mnist-biggan`` (main: the biggan inverter trained for the robust classifier, saved with the
    record of that classifier's weights that ``invkit train`` writes, so the bench matches it by digest)."""
    robust = invkit.load_classifier(DEMO / "classifier_robust")
    extra = {
        "classifier": robust.name,
        "classifier_identity": classifier_identity(str(DEMO / "classifier_robust"), robust),
    }
    invkit.load_inverter(DEMO / "biggan_robust").save(tmp_path / "bg", extra=extra | {"step": 3500})
    root = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: never a Hub
    hub_cache(
        root,
        "me/mnist-clf",
        {COMMIT_A: _files(DEMO / "classifier_standard"), COMMIT_B: _files(DEMO / "classifier_robust")},
        {"main": COMMIT_B, "v1": COMMIT_A},
    )
    hub_cache(root, "me/mnist-biggan", {COMMIT_C: _files(tmp_path / "bg")}, {"main": COMMIT_C})
    return root


def _digest(clf) -> str:
    return network_digest(clf.network)


# ------------------------------------------------------------------------------------------- hf-hub: offline
def test_hf_hub_spec_loads_from_the_cache_offline_everywhere_a_folder_does(offline_hub):
    robust, standard = (
        invkit.load_classifier(DEMO / "classifier_robust"),
        invkit.load_classifier(DEMO / "classifier_standard"),
    )
    folder = hub_checkpoint("hf-hub:me/mnist-clf")
    assert folder == offline_hub / "models--me--mnist-clf" / "snapshots" / COMMIT_B
    for clf in (
        invkit.load_classifier("hf-hub:me/mnist-clf"),
        invkit.resolve_classifier("hf-hub:me/mnist-clf"),
        invkit.create_classifier(checkpoint="hf-hub:me/mnist-clf"),
    ):
        assert _digest(clf) == _digest(robust) != _digest(standard)
    inv = invkit.load_inverter("hf-hub:me/mnist-biggan", classifier=robust)
    inv2 = invkit.resolve_inverter(None, robust, checkpoint="hf-hub:me/mnist-biggan")
    inv3 = invkit.resolve_inverter("hf-hub:me/mnist-biggan", robust)  # a spec where a folder is accepted
    ref = invkit.load_inverter(DEMO / "biggan_robust")
    for got in (inv, inv2, inv3):
        assert got.registry_name == "biggan_proj.mnist32"
        assert all(torch.equal(a, b) for a, b in zip(got.state_dict().values(), ref.state_dict().values()))


def test_hf_hub_revision_is_a_branch_a_tag_or_a_commit(offline_hub):
    standard = _digest(invkit.load_classifier(DEMO / "classifier_standard"))
    robust = _digest(invkit.load_classifier(DEMO / "classifier_robust"))
    assert _digest(invkit.load_classifier("hf-hub:me/mnist-clf@main")) == robust
    assert _digest(invkit.load_classifier("hf-hub:me/mnist-clf@v1")) == standard  # a tag (refs/v1)
    assert _digest(invkit.load_classifier(f"hf-hub:me/mnist-clf@{COMMIT_A}")) == standard  # a commit: no ref needed
    assert Path(local_checkpoint(f"hf-hub:me/mnist-clf@{COMMIT_A}")).name == COMMIT_A
    with pytest.raises(CheckpointError, match=r"revision v2\) is not in the Hugging Face cache .* HF_HUB_OFFLINE=1"):
        invkit.load_classifier("hf-hub:me/mnist-clf@v2")


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("hf-hub:me/not-cached", "is not in the Hugging Face cache"),
        ("hf-hub:me/mnist-clf@v2", "(revision v2) is not in the Hugging Face cache"),
        ("hf-hub:mnist-clf", "is not hf-hub:OWNER/NAME"),
        ("hf-hub:me/", "is not hf-hub:OWNER/NAME"),
        ("hf-hub:me/a--b", "is not hf-hub:OWNER/NAME"),
        ("hf-hub:me/mnist-clf@", "empty or blank revision"),
        ("hf-hub:me/x/y", "is not hf-hub:OWNER/NAME"),
    ],
)
def test_hf_hub_spec_that_cannot_be_had_is_one_line_saying_what_to_do(offline_hub, digit, spec, expected):
    r = cli(["invert", "--classifier", spec, "--inverter", "optim", digit, "--out", str(offline_hub / "o")])
    one_line_error(r, expected)
    assert not (offline_hub / "o").exists()


def test_hf_hub_offline_error_says_how_to_get_it(offline_hub):
    with pytest.raises(CheckpointError) as e:
        hub_checkpoint("hf-hub:me/not-cached")
    msg = str(e.value)
    assert "\n" not in msg and "HF_HUB_OFFLINE" in msg and str(offline_hub) in msg and "HF_HUB_CACHE" in msg


def test_hf_hub_snapshot_that_is_not_an_invkit_checkpoint_is_refused(offline_hub):
    hub_cache(offline_hub, "me/just-weights", {COMMIT_A: {"model.safetensors": b"x"}}, {"main": COMMIT_A})
    with pytest.raises(CheckpointError, match="holds no config.json, so it is not an invkit checkpoint"):
        invkit.load_classifier("hf-hub:me/just-weights")


def test_parse_hub_spec():
    assert parse_hub_spec("hf-hub:me/x") == ("me/x", None)
    assert parse_hub_spec("hf-hub:me/x@refs/pr/1") == ("me/x", "refs/pr/1")
    assert parse_hub_spec(f"hf-hub:me.org/x_y-1@{COMMIT_A}") == ("me.org/x_y-1", COMMIT_A)


def test_cli_bench_with_hf_hub_classifier_and_checkpoint_offline(offline_hub, tmp_path, one_thread):
    """The issue's check: `invkit bench --checkpoint hf-hub:...` resolves from a local Hub cache offline."""
    out = tmp_path / "bench"
    args = ["bench", "--classifier", "hf-hub:me/mnist-clf", "--inverter", "biggan_proj"]
    r = cli([*args, "--checkpoint", "hf-hub:me/mnist-biggan", "-n", "4", "--id-k", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert f"hf-hub:me/mnist-clf: commit {COMMIT_B}" in r.output  # which commit, said on stderr
    doc = json.loads((out / "results.json").read_text())
    (record,) = doc["results"]
    assert record["classifier"] == "mnist-clf"  # labelled by the repository, not by the commit folder
    snapshot = offline_hub / "models--me--mnist-biggan" / "snapshots" / COMMIT_C
    assert Path(record["checkpoint"]) == snapshot
    assert record["key"].endswith(f"@{weights_digest(snapshot)}")  # recorded by its weights, like any folder


def test_cli_invert_with_an_hf_hub_commit(offline_hub, tmp_path, digit, one_thread):
    args = ["invert", "--classifier", f"hf-hub:me/mnist-clf@{COMMIT_B}", "--checkpoint", "hf-hub:me/mnist-biggan"]
    r = cli([*args, digit, "--out", str(tmp_path / "inv")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "inv" / "d_recon.png").is_file()
    recorded = json.loads((tmp_path / "inv" / "invert.json").read_text())
    assert COMMIT_B in json.dumps(recorded)  # the commit folder it used, recorded with its digest


# --------------------------------------------------------------------------------- hf-hub: a Hub on 127.0.0.1
class LocalHub:
    """The few Hub API routes ``snapshot_download`` uses, served on 127.0.0.1 from ``repos``:
    ``{repo_id: {"refs": {ref: commit}, "commits": {commit: {file: bytes}}}}``; unknown repositories and revisions
    answer as the Hub does (404 with ``X-Error-Code``)."""

    def __init__(self, repos: dict):
        self.repos, self.requests = repos, []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer(head=True)

            def do_GET(self):
                self._answer(head=False)

            def _send(self, code, body=b"", headers=None, head=False):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _answer(self, head):
                path = self.path.split("?")[0]
                hub.requests.append(path)
                if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/(.+)", path):
                    repo = hub.repos.get(m[1])
                    if repo is None:
                        return self._send(404, b"{}", {"X-Error-Code": "RepoNotFound"}, head)
                    commit = repo["refs"].get(m[2], m[2] if m[2] in repo["commits"] else None)
                    if commit is None:
                        return self._send(404, b"{}", {"X-Error-Code": "RevisionNotFound"}, head)
                    files = [{"rfilename": f} for f in repo["commits"][commit]]
                    return self._send(200, json.dumps({"id": m[1], "sha": commit, "siblings": files}).encode())
                if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([0-9a-f]{40})", path):
                    files = hub.repos[m[1]]["commits"][m[2]]
                    tree = [
                        {"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                        for f, b in files.items()
                    ]
                    return self._send(200, json.dumps(tree).encode())
                if m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([0-9a-f]{40})/(.+)", path):
                    data = hub.repos[m[1]]["commits"][m[2]][m[3]]
                    headers = {"ETag": f'"{hashlib.sha1(data).hexdigest()}"', "X-Repo-Commit": m[2]}
                    return self._send(200, data, headers, head)
                return self._send(404, b"", {}, head)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_hf_hub_download_into_huggingface_hubs_cache_then_offline(tmp_path, monkeypatch):
    """Online (a Hub on 127.0.0.1 through $HF_ENDPOINT): only config.json and model.safetensors are downloaded, into
    huggingface_hub's cache; a tag resolves to its commit; then, offline with the server gone, the cache serves."""
    files = _files(DEMO / "classifier_robust") | {"train_state.safetensors": b"not needed", "README.md": b"card"}
    hub = LocalHub(
        {"me/clf": {"refs": {"main": COMMIT_A, "v1": COMMIT_B}, "commits": {COMMIT_A: files, COMMIT_B: files}}}
    )
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import huggingface_hub.constants

    # huggingface_hub reads HF_HUB_OFFLINE once, at import; an earlier test in this process may have imported it
    # offline. invkit reads the variable when it resolves a spec (invkit.io.hub.hub_offline), so only the library's
    # own HTTP layer needs telling here.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    try:
        folder = hub_checkpoint("hf-hub:me/clf")
        assert folder == tmp_path / "hub" / "models--me--clf" / "snapshots" / COMMIT_A
        assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)  # no training state, no card
        assert (tmp_path / "hub" / "models--me--clf" / "refs" / "main").read_text() == COMMIT_A
        assert hub_checkpoint("hf-hub:me/clf@v1").name == COMMIT_B
        with pytest.raises(CheckpointError, match="there is no Hugging Face repository me/nobody .* check OWNER/NAME"):
            hub_checkpoint("hf-hub:me/nobody")
        with pytest.raises(CheckpointError, match="me/clf has no revision 'v9'; give one of its branches"):
            hub_checkpoint("hf-hub:me/clf@v9")
        assert any("/resolve/" in p for p in hub.requests)
    finally:
        hub.close()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clf = invkit.load_classifier("hf-hub:me/clf")
    assert _digest(clf) == _digest(invkit.load_classifier(DEMO / "classifier_robust"))


# ------------------------------------------------------------------------------------------------- demo:
def test_demo_names_load_anywhere(tmp_path, monkeypatch, digit):
    monkeypatch.chdir(tmp_path)  # not the checkout: the prefix does not depend on the working folder
    assert demo_names() == sorted(invkit.demo.names())
    assert invkit.demo.spec("biggan_robust") == "demo:biggan_robust"
    assert Path(local_checkpoint("demo:classifier_robust")) == DEMO / "classifier_robust"
    clf = invkit.resolve_classifier("demo:classifier_robust")
    assert _digest(clf) == _digest(invkit.load_classifier(DEMO / "classifier_robust"))
    for name in ("biggan_standard", "dbrox_robust"):
        assert invkit.load_inverter(f"demo:{name}").num_classes == 10
    with pytest.raises(CheckpointError, match="unknown demo checkpoint 'demo:biggan'; the demo checkpoints are demo:"):
        invkit.load_inverter("demo:biggan")
    r = cli(["invert", "--classifier", "demo:nope", "--inverter", "optim", digit, "--out", str(tmp_path / "o")])
    one_line_error(r, "unknown demo checkpoint 'demo:nope'", "demo:classifier_robust")


def test_demo_prefix_follows_invkit_demo_dir(tmp_path, monkeypatch):
    shutil.copytree(DEMO / "classifier_standard", tmp_path / "mine")
    monkeypatch.setenv("INVKIT_DEMO_DIR", str(tmp_path))
    assert demo_dir() == tmp_path and demo_names() == ["mine"]
    assert Path(local_checkpoint("demo:mine")) == tmp_path / "mine"
    with pytest.raises(CheckpointError, match="demo checkpoints are demo:mine"):
        local_checkpoint("demo:classifier_robust")


def test_an_inverter_trained_against_a_demo_spec_records_the_folder_and_its_digest():
    clf = invkit.resolve_classifier("demo:classifier_standard")
    ident = classifier_identity("demo:classifier_standard", clf)
    assert ident["path"] == str(DEMO / "classifier_standard")
    assert ident["weights_sha256"] == weights_digest(DEMO / "classifier_standard")


# ------------------------------------------------------------------------------------------------- export
def _front_matter(path: Path) -> tuple[dict, str]:
    """The YAML front matter of a model card parsed with PyYAML itself (not invkit's reader), and the body."""
    text = path.read_text()
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def test_export_inverter_checkpoint_field_by_field(tmp_path):
    out = tmp_path / "export"
    r = cli(["export", "demo:biggan_robust", str(out), "--classifier", "demo:classifier_robust", "--repo", "me/bg"])
    assert r.exit_code == 0, r.output
    assert "exported inverter biggan_proj.mnist32" in r.output and "invkit push" in r.output
    assert sorted(p.name for p in out.iterdir()) == sorted([*EXPORT_FILES, ".invkit-files"])
    for f in FILES:  # the checkpoint's own files, byte for byte
        assert (out / f).read_bytes() == (DEMO / "biggan_robust" / f).read_bytes()
    owners = [json.loads(line) for line in (out / ".invkit-files").read_text().splitlines()]
    assert {o["path"] for o in owners if o["by"] == "invkit export"} == set(EXPORT_FILES)

    meta, body = _front_matter(out / "README.md")
    assert meta["library_name"] == "invkit"
    assert meta["license"] == "other"
    assert meta["tags"] == ["invkit", "model-inversion", "classifier-inversion", "biggan_proj", "logits"]
    inv = meta["invkit"]
    assert inv["kind"] == "inverter" and inv["name"] == "biggan_proj.mnist32"
    assert inv["weights_sha256"] == weights_digest(DEMO / "biggan_robust")
    assert inv["channel"] == "logits"
    robust = invkit.load_classifier(DEMO / "classifier_robust")
    assert inv["inverts"] == {
        "name": "smallcnn.base",
        "spec": "demo:classifier_robust",
        "weights_sha256": weights_digest(DEMO / "classifier_robust"),
        "network_sha256": _digest(robust),
    }
    config = json.loads((DEMO / "biggan_robust" / "config.json").read_text())
    assert inv["data"] == "mnist"  # the run's data, a path shown by its last part
    assert inv["steps"] == config["step"] == 3500
    assert inv["num_classes"] == 10 and inv["resolution"] == 32
    assert inv["invkit_version"] == invkit.__version__
    assert "bench" not in inv
    assert "invkit invert --classifier demo:classifier_robust --checkpoint hf-hub:me/bg" in body
    assert read_model_card(out / "README.md")[0] == meta  # huggingface_hub's reader agrees with PyYAML


def test_export_run_folder_means_its_newest_checkpoint_and_says_which(tmp_path):
    from invkit.training.checkpoints import write_checkpoint

    clf = invkit.resolve_classifier("demo:classifier_standard")
    inv = invkit.load_inverter(DEMO / "biggan_standard")
    run = tmp_path / "run"
    for step in (10, 20):
        with torch.no_grad():
            next(inv.parameters()).add_(0.01)  # other weights at each step
        extra = {
            "step": step,
            "classifier": clf.name,
            "classifier_identity": classifier_identity("demo:classifier_standard", clf),
            "train_config": {"classifier": "demo:classifier_standard", "data": "default", "steps": 20},
        }
        write_checkpoint(run, step, inv, {"step": step}, extra)
    newest = run / "checkpoints" / "step_000020"
    r = cli(["export", str(run), str(tmp_path / "x")])
    assert r.exit_code == 0, r.output
    assert f"training run folder: exporting its newest checkpoint '{newest}'" in r.output
    meta, _ = _front_matter(tmp_path / "x" / "README.md")
    assert meta["invkit"]["steps"] == 20 and meta["invkit"]["data"] == "default"
    assert meta["invkit"]["weights_sha256"] == weights_digest(newest)
    assert meta["invkit"]["inverts"]["spec"] == "demo:classifier_standard"  # recorded by the run: no --classifier
    assert meta["invkit"]["inverts"]["weights_sha256"] == weights_digest(DEMO / "classifier_standard")
    assert (tmp_path / "x" / "model.safetensors").read_bytes() == (newest / "model.safetensors").read_bytes()
    assert not (tmp_path / "x" / "train_state.safetensors").exists()  # a training state is not published


def test_export_with_bench_numbers_from_results_json(tmp_path, one_thread):
    bench = tmp_path / "bench"
    args = ["bench", "--classifier", "demo:classifier_robust", "--inverter", "biggan_proj", "--checkpoint"]
    r = cli([*args, "demo:biggan_robust", "-n", "4", "--id-k", "2", "--out", str(bench)])
    assert r.exit_code == 0, r.output
    r = cli(["export", "demo:biggan_robust", str(tmp_path / "x"), "--bench", str(bench), "--classifier"])
    one_line_error(r, "--classifier")  # an option without its value
    args = ["export", "demo:biggan_robust", str(tmp_path / "x"), "--bench", str(bench)]
    r = cli([*args, "--classifier", "demo:classifier_robust", "--license", "apache-2.0"])
    assert r.exit_code == 0, r.output
    meta, body = _front_matter(tmp_path / "x" / "README.md")
    assert meta["license"] == "apache-2.0"
    (record,) = json.loads((bench / "results.json").read_text())["results"]
    (numbers,) = meta["invkit"]["bench"]
    assert numbers["classifier"] == "smallcnn.base" and numbers["inverter"] == "biggan_proj"
    assert numbers["data"] == "default" and numbers["seed"] == 0 and numbers["n"] == 4 and numbers["id_k"] == 2
    for key in ("psnr", "ssim", "accuracy", "top1_agreement", "logit_cosine", "id_accuracy"):
        assert numbers[key] == pytest.approx(record[key]), key
    assert "time_per_image_s" not in numbers  # the bench machine's timing is not a property of the checkpoint
    assert "## Bench" in body and f"{record['psnr']:.4g}" in body


def test_export_classifier_checkpoint(tmp_path):
    r = cli(["export", "demo:classifier_robust", str(tmp_path / "x")])
    assert r.exit_code == 0, r.output
    meta, body = _front_matter(tmp_path / "x" / "README.md")
    config = json.loads((DEMO / "classifier_robust" / "config.json").read_text())
    inv = meta["invkit"]
    assert meta["tags"] == ["invkit", "image-classification", "smallcnn"]
    assert inv["kind"] == "classifier" and inv["name"] == "smallcnn.base" and "channel" not in inv
    assert inv["weights_sha256"] == weights_digest(DEMO / "classifier_robust")
    assert inv["num_classes"] == 10 and inv["input_size"] == [1, 28, 28] and inv["robust"] is True
    assert inv["steps"] == config["train"]["step"] and inv["accuracy"] == config["metrics"]["clean_accuracy"]
    assert 'invkit.load_classifier("hf-hub:OWNER/NAME")' in body


def test_export_refusals_are_one_line_and_write_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    out = tmp_path / "x"
    cases = [
        (["export", str(tmp_path / "missing"), str(out)], "does not exist"),
        (["export", str(tmp_path / "file"), str(out)], "is a file"),
        (["export", str(tmp_path / "empty"), str(out)], "neither a checkpoint folder"),
        (["export", str(tmp_path / "run"), str(out)], "without a complete checkpoint yet"),
        (["export", "demo:biggan_robust", str(out)], "pass --classifier SPEC"),  # records no classifier digest
        (["export", "demo:biggan_robust", str(out), "--classifier", "demo:classifier_standard"], "trained for"),
        (["export", "demo:classifier_robust", str(out), "--bench", str(tmp_path / "empty")], "holds no results.json"),
        (["export", "demo:classifier_robust", str(out), "--repo", "nobody"], "is not hf-hub:OWNER/NAME"),
        (["export", "demo:classifier_robust", str(DEMO / "classifier_robust" / "sub")], "inside it"),
    ]
    for args, expected in cases:
        one_line_error(cli(args), expected)
        assert not out.exists(), args


def test_export_bench_folder_without_this_checkpoint(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    other = {"key": "a@1|biggan_proj|/x@0000000000000000", "slug": "s", "classifier": "c", "inverter": "biggan_proj"}
    (bench / "results.json").write_text(json.dumps({"settings": {"fingerprint": {}}, "results": [other]}))
    r = cli(
        [
            "export",
            "demo:biggan_robust",
            str(tmp_path / "x"),
            "--bench",
            str(bench),
            "--classifier",
            "demo:classifier_robust",
        ]
    )
    one_line_error(r, "has no results of this checkpoint", weights_digest(DEMO / "biggan_robust"))


def test_export_never_replaces_a_file_it_did_not_write(tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    (out / "README.md").write_text("my own notes")
    r = cli(["export", "demo:classifier_robust", str(out)])
    one_line_error(r, "README.md", "was not written by invkit export")
    assert (out / "README.md").read_text() == "my own notes" and not (out / "model.safetensors").exists()
    r = cli(["export", "demo:classifier_robust", str(tmp_path / "y")])
    assert r.exit_code == 0 and cli(["export", "demo:classifier_standard", str(tmp_path / "y")]).exit_code == 0
    assert (tmp_path / "y" / "model.safetensors").read_bytes() == (
        DEMO / "classifier_standard" / "model.safetensors"
    ).read_bytes()


def test_export_library_function_result(tmp_path):
    from invkit.evaluation.export import export_checkpoint

    res = export_checkpoint("demo:dbrox_standard", tmp_path / "x", classifier="demo:classifier_standard")
    assert res.checkpoint == DEMO / "dbrox_standard" and res.run is None and res.folder == tmp_path / "x"
    assert res.metadata == _front_matter(tmp_path / "x" / "README.md")[0]


# ------------------------------------------------------------------------------------------------- push
@pytest.fixture
def no_hub_calls(monkeypatch):
    """huggingface_hub's client must not even be built: every refusal happens before any network access."""
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise AssertionError("invkit push reached huggingface_hub")

    monkeypatch.setattr(huggingface_hub, "HfApi", refuse)


def test_push_refuses_what_export_did_not_write_without_any_hub_call(tmp_path, monkeypatch, no_hub_calls):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    hand = tmp_path / "hand"
    shutil.copytree(DEMO / "classifier_robust", hand)  # a checkpoint, but not made by export
    (hand / "README.md").write_text("---\nlibrary_name: invkit\n---\n")
    one_line_error(cli(["push", str(hand), "me/clf"]), "not written by invkit export", "invkit export")
    one_line_error(cli(["push", str(tmp_path / "missing"), "me/clf"]), "is not a folder")
    assert cli(["export", "demo:classifier_robust", str(tmp_path / "x")]).exit_code == 0
    one_line_error(cli(["push", str(tmp_path / "x"), "no-owner"]), "is not hf-hub:OWNER/NAME")
    one_line_error(cli(["push", str(tmp_path / "x")]), "Missing argument")
    with open(tmp_path / "x" / "model.safetensors", "r+b") as f:  # the weights changed after export
        f.seek(-1, 2)
        f.write(b"\x00")
    one_line_error(
        cli(["push", str(tmp_path / "x"), "me/clf"]), "changed since invkit export", "export the checkpoint again"
    )
    (tmp_path / "x" / "README.md").unlink()
    one_line_error(cli(["push", str(tmp_path / "x"), "me/clf"]), "lacks README.md")


def test_push_refuses_to_run_offline(tmp_path, monkeypatch, no_hub_calls):
    assert cli(["export", "demo:classifier_robust", str(tmp_path / "x")]).exit_code == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    one_line_error(cli(["push", str(tmp_path / "x"), "me/clf"]), "HF_HUB_OFFLINE is set", "hf upload me/clf")


def test_push_hands_the_export_files_to_huggingface_hubs_upload(tmp_path, monkeypatch):
    """What push passes to ``HfApi.create_repo`` and ``HfApi.upload_folder`` (recorded, not sent: the upload itself
    needs the network and a login, see docs/checkpoints.md)."""
    import huggingface_hub

    calls = []

    class Recorder:
        def __init__(self, **kwargs):
            calls.append(("HfApi", kwargs))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs))
            return type("Info", (), {"commit_url": "https://hub.invalid/me/clf/commit/1"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", Recorder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert cli(["export", "demo:classifier_robust", str(tmp_path / "x")]).exit_code == 0
    r = cli(["push", str(tmp_path / "x"), "me/clf", "--revision", "dev", "--private", "--message", "first"])
    assert r.exit_code == 0, r.output
    assert "https://hub.invalid/me/clf/commit/1" in r.output and "hf-hub:me/clf" in r.output
    (_, api), (_, create), (_, upload) = calls
    assert api["library_name"] == "invkit" and api["endpoint"] == "http://127.0.0.1:9"
    assert create == {"repo_id": "me/clf", "private": True, "exist_ok": True}
    assert upload["repo_id"] == "me/clf" and Path(upload["folder_path"]) == tmp_path / "x"
    assert upload["revision"] == "dev" and upload["commit_message"] == "first"
    assert sorted(upload["allow_patterns"]) == sorted(EXPORT_FILES)  # never .invkit-files or the lock


def test_bench_settings_take_prefixed_specs(tmp_path, one_thread):
    """The library's Bench resolves ``demo:`` specs itself (``BenchSettings`` as a script writes them)."""
    from invkit.evaluation import Bench, BenchSettings

    settings = BenchSettings(
        classifiers=["demo:classifier_robust"],
        inverters=["biggan_proj"],
        checkpoints=["demo:biggan_robust"],
        n=4,
        id_k=2,
    )
    bench = Bench(settings)
    assert settings.classifiers == [str(DEMO / "classifier_robust")]
    assert settings.checkpoints == [str(DEMO / "biggan_robust")]
    (result,) = list(bench.run())
    assert result.pair.classifier_label == "classifier_robust"
    assert result.pair.checkpoint == str(DEMO / "biggan_robust")
