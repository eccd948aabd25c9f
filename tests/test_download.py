"""The opt-in download of published weights (invkit.io.download, `invkit download`, `--download`,
INVKIT_DOWNLOAD=1) against a file served from 127.0.0.1 by this test, and identification in other spaces than
pixels (`invkit bench --id-space`). Nothing here reaches the network: every URL is rewritten to the local server."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest
import torch
from _cli import cli, one_line_error
from test_bench import _one_thread, settings, tiny, tiny_classifier  # noqa: F401 - the tiny bench fixtures

from invkit.errors import DownloadError, InvkitError, WeightsNotFoundError
from invkit.evaluation import metrics
from invkit.evaluation.bench import Bench
from invkit.io import download


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no request lines in the test output
        pass


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path/served``; yields (base URL, folder, list of request paths)."""
    folder = tmp_path / "served"
    folder.mkdir()
    requests: list[str] = []

    class Handler(_QuietHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", folder, requests
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The torch hub cache in tmp; downloads off unless a test turns them on. Returns its checkpoints folder."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(download.DOWNLOAD_ENV, raising=False)
    return tmp_path / "hub" / "checkpoints"


def serve(monkeypatch, server, name: str, content: bytes, sha256: str | None = None, path: str | None = None):
    """Put ``content`` on the server and point KNOWN_FILES[name] at it (its published digest and size become
    ``content``'s, or ``sha256`` when given); the cache file name stays the real one."""
    base, folder, _ = server
    known = download.KNOWN_FILES[name]
    (folder / known.filename).write_bytes(content)
    fake = dataclasses.replace(
        known,
        url=f"{base}/{path or known.filename}",
        sha256=sha256 or hashlib.sha256(content).hexdigest(),
        size=len(content),
    )
    monkeypatch.setitem(download.KNOWN_FILES, name, fake)
    return fake


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------- library
def test_fetch_downloads_checks_and_places_the_file_where_lpips_looks(hub, server, monkeypatch):
    content = b"alexnet stand-in " * 1000
    known = serve(monkeypatch, server, "lpips-alex", content)
    assert metrics.lpips_status("alex")[0] is False
    path = download.fetch("lpips-alex", allowed=True, progress=False)
    assert path == hub / "alexnet-owt-7be5be79.pth" == metrics.lpips_backbone_file("alex") == known.path()
    assert path.read_bytes() == content
    assert sorted(p.name for p in hub.iterdir()) == ["alexnet-owt-7be5be79.pth"]  # no temporary file left
    ok, message = metrics.lpips_status("alex")
    assert ok and "alexnet-owt-7be5be79.pth" in message
    assert download.weights_status("lpips-alex") == (True, f"alexnet-owt-7be5be79.pth at {path}")
    # a second fetch keeps the file and asks the server for nothing
    requests = server[2]
    before = len(requests)
    assert download.fetch("lpips-alex", allowed=True, progress=False) == path and len(requests) == before


def test_inception_status_reports_present_after_download(hub, server, monkeypatch):
    serve(monkeypatch, server, "inception", b"inception stand-in")
    present, message = download.weights_status("inception")
    assert not present and "invkit download inception" in message and "INVKIT_DOWNLOAD=1" in message
    download.fetch("inception", allowed=True, progress=False)
    present, message = download.weights_status("inception")
    assert present and str(hub / "weights-inception-2015-12-05-6726825d.pth") in message


def test_hash_mismatch_leaves_nothing_and_says_so_in_one_line(hub, server, monkeypatch):
    serve(monkeypatch, server, "lpips-alex", b"a different file", sha256="0" * 64)
    with pytest.raises(DownloadError) as info:
        download.fetch("lpips-alex", allowed=True, progress=False)
    message = str(info.value)
    assert "SHA-256" in message and "deleted" in message and "\n" not in message
    assert list(hub.iterdir()) == []  # the temporary file is gone, nothing placed
    assert metrics.lpips_status("alex")[0] is False


def test_server_404_is_one_line_naming_the_url_and_the_path(hub, server, monkeypatch):
    known = serve(monkeypatch, server, "lpips-vgg", b"x", path="missing.pth")
    with pytest.raises(DownloadError) as info:
        download.fetch("lpips-vgg", allowed=True, progress=False)
    message = str(info.value)
    assert "404" in message and known.url in message and str(known.path()) in message and "\n" not in message
    assert list(hub.iterdir()) == []


def test_refused_connection_is_one_line_saying_what_to_do(hub, monkeypatch):
    known = download.KNOWN_FILES["inception"]
    url = f"http://127.0.0.1:{_free_port()}/{known.filename}"
    monkeypatch.setitem(download.KNOWN_FILES, "inception", dataclasses.replace(known, url=url))
    with pytest.raises(DownloadError) as info:
        download.fetch("inception", allowed=True, progress=False)
    message = str(info.value)
    assert "cannot reach the server" in message and "offline" in message and url in message
    assert str(known.path()) in message and "\n" not in message
    assert not hub.exists() or list(hub.iterdir()) == []


def test_nothing_is_downloaded_unless_allowed(hub, server, monkeypatch):
    serve(monkeypatch, server, "lpips-alex", b"alexnet stand-in")
    with pytest.raises(WeightsNotFoundError) as info:
        download.fetch("lpips-alex", progress=False)
    message = str(info.value)
    assert "--download" in message and "INVKIT_DOWNLOAD=1" in message and "\n" not in message
    assert metrics.lpips_status("alex")[0] is False  # looks, never fetches
    assert download.ensure_weights("lpips-alex")[0] is False
    assert server[2] == [] and not hub.exists()
    monkeypatch.setenv(download.DOWNLOAD_ENV, "0")
    assert not download.download_allowed()
    monkeypatch.setenv(download.DOWNLOAD_ENV, "1")  # the environment variable allows it
    assert metrics.lpips_status("alex")[0] is True and len(server[2]) == 1


def test_a_file_with_another_digest_in_the_cache_is_kept(hub, server, monkeypatch):
    serve(monkeypatch, server, "lpips-alex", b"the published file")
    hub.mkdir(parents=True)
    (hub / "alexnet-owt-7be5be79.pth").write_bytes(b"the user's own file")
    with pytest.raises(DownloadError, match="move it away"):
        download.fetch("lpips-alex", allowed=True, progress=False)
    assert (hub / "alexnet-owt-7be5be79.pth").read_bytes() == b"the user's own file"
    ok, message = metrics.lpips_status("alex")
    assert not ok and "published SHA-256" in message


def test_known_files_are_the_published_ones():
    """Each entry's file name is its URL's last part (where torch.hub caches it) and carries the first 8 hex digits
    of its full SHA-256, as the publishers name them."""
    for name, known in download.KNOWN_FILES.items():
        assert known.name == name and known.url.rsplit("/", 1)[1] == known.filename
        assert len(known.sha256) == 64 and known.filename.rsplit("-", 1)[1].split(".")[0] == known.sha256[:8]
        assert known.path() == Path(torch.hub.get_dir()) / "checkpoints" / known.filename


# -------------------------------------------------------------------------------------------------------- CLI
def test_cli_download_fetches_and_lists(hub, server, monkeypatch):
    serve(monkeypatch, server, "inception", b"inception stand-in")
    r = cli(["download"])
    assert r.exit_code == 0 and "inception" in r.output and "lpips-alex" in r.output, r.output
    assert not hub.exists()  # listing fetches nothing
    r = cli(["download", "inception", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "SHA-256 checked" in r.output and download.weights_status("inception")[0]


def test_cli_download_failure_is_one_line(hub, server, monkeypatch):
    serve(monkeypatch, server, "lpips-alex", b"x", sha256="f" * 64)
    one_line_error(cli(["download", "lpips-alex", "--quiet"]), "SHA-256", "deleted")
    assert list(hub.iterdir()) == []
    one_line_error(cli(["download", "lpips-alexx"]), "lpips-alexx")


# ------------------------------------------------------------------------------------- identification spaces
def alexnet_stand_in() -> bytes:
    """A seeded torchvision AlexNet state dict as bytes: LPIPS loads it like the real file (its classifier layers,
    unused by LPIPS, are stride-0 zeros to keep it small). The numbers it gives are not LPIPS's; the plumbing is."""
    import io

    import torchvision

    with torch.device("meta"):  # shapes only: initialising the 58M classifier weights would take seconds
        shapes = {k: v.shape for k, v in torchvision.models.alexnet().state_dict().items()}
    g = torch.Generator().manual_seed(0)
    state = {
        k: torch.zeros(1).expand(shape) if k.startswith("classifier.") else torch.randn(shape, generator=g) * 0.05
        for k, shape in shapes.items()
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def bench_args(tiny, out, *extra):  # noqa: F811 - the fixture
    return [
        "bench",
        "--classifier",
        tiny["std"][0],
        "--inverter",
        "tinydec",
        "--checkpoint",
        tiny["std"][1],
        "-n",
        "10",
        "--id-k",
        "5",
        "--out",
        str(out),
        "--device",
        "cpu",
        *extra,
    ]


def test_id_space_lpips_without_the_backbone_is_one_line_naming_download(tiny, hub, tmp_path):  # noqa: F811 - the fixture
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    error = one_line_error(cli(bench_args(tiny, out, "--id-space", "lpips")), "--download", "INVKIT_DOWNLOAD=1")
    assert "invkit download lpips-alex" in error
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize(
    "space, message",
    [
        ("pixels", "not one of pixel, lpips, evaluator"),
        ("lpips:alex", "not one of pixel, lpips, evaluator"),
        ("evaluator", "pass --evaluator SPEC"),
        ("evaluator:nobody", "pass --evaluator SPEC"),
    ],
)
def test_bad_id_space_is_one_line(tiny, hub, tmp_path, space, message):  # noqa: F811 - the fixture
    one_line_error(cli(bench_args(tiny, tmp_path / "o", "--id-space", space)), message)
    assert not (tmp_path / "o" / "results.json").exists()


def test_bench_download_then_identifies_in_lpips_space(tiny, hub, server, monkeypatch, tmp_path):  # noqa: F811 - the fixture
    """`--download` fetches the backbone from the (local) server, then every space is reported and the headline is
    the LPIPS one; without --id-space the same run headlines pixel identification."""
    serve(monkeypatch, server, "lpips-alex", alexnet_stand_in())
    s = settings(tiny, classifiers=[tiny["std"][0]], inverters=["tinydec"], checkpoints=[tiny["std"][1]])
    s.id_space, s.download = "lpips", True
    bench = Bench(s, tmp_path / "out")
    assert bench.lpips_ok and len(server[2]) == 1 and metrics.lpips_status("alex")[0]
    (result,) = list(bench.run())
    rec = result.record
    assert rec["id_space"] == "lpips" and rec["id_accuracy"] == rec["id_lpips"]
    assert 0 <= rec["id_lpips"] <= 1 and 0 <= rec["id_pixel"] <= 1 and rec["lpips"] is not None
    assert s.fingerprint()["id_space"] == "lpips"
    from invkit.io.weights import load_safetensors

    values = load_safetensors(tmp_path / "out" / "per_image" / f"{result.pair.slug}.safetensors")
    assert values["id_lpips"].dtype == torch.float32 and values["id_lpips"].shape == (10,)
    assert torch.equal(values["id_accuracy"], values["id_lpips"])
    assert set(values["id_lpips"].unique().tolist()) <= {0.0, 0.5, 1.0, 1 / 3, 0.25, 0.2}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "ID LPIPS" in report and "ID pixel" in report and "headline by LPIPS distance" in report

    s2 = settings(tiny, classifiers=[tiny["std"][0]], inverters=["tinydec"], checkpoints=[tiny["std"][1]])
    (pixel,) = list(Bench(s2, tmp_path / "out2").run())
    assert "id_space" not in s2.fingerprint()
    assert pixel.record["id_space"] == "pixel" and pixel.record["id_accuracy"] == pixel.record["id_pixel"]
    assert pixel.record["id_lpips"] == pytest.approx(rec["id_lpips"])  # the backbone is there now: shown anyway


def test_id_space_evaluator_takes_the_evaluators_identification(tiny, hub, server, monkeypatch, tmp_path):  # noqa: F811 - the fixture
    evaluator = tmp_path / "evaluator"
    tiny_classifier(seed=7).save(evaluator)
    s = settings(tiny, classifiers=[tiny["std"][0]], inverters=["tinydec"], checkpoints=[tiny["std"][1]])
    s.evaluators, s.id_space = [str(evaluator)], "evaluator"
    (result,) = list(Bench(s, tmp_path / "out").run())  # offline: no Inception weights, nothing fetched
    assert server[2] == [] and not download.weights_status("inception")[0]
    rec = result.record
    assert rec["id_space"] == "evaluator:evaluator"
    assert rec["id_accuracy"] == rec["evaluators"]["evaluator"]["id_accuracy"] and rec["id_pixel"] is not None
    s.id_space = "evaluator:other"
    with pytest.raises(InvkitError, match="no evaluator is labelled 'other'; use one of evaluator"):
        Bench(s, tmp_path / "out3")


def test_bench_download_with_evaluators_fetches_the_inception_weights(tiny, hub, server, monkeypatch, tmp_path):  # noqa: F811 - the fixture
    serve(monkeypatch, server, "lpips-alex", alexnet_stand_in())
    serve(monkeypatch, server, "inception", b"inception stand-in")
    evaluator = tmp_path / "evaluator"
    tiny_classifier(seed=7).save(evaluator)
    s = settings(tiny, classifiers=[tiny["std"][0]], inverters=["tinydec"], checkpoints=[tiny["std"][1]])
    s.evaluators, s.download = [str(evaluator)], True
    Bench(s, tmp_path / "out")  # checks and fetches; running would load the stand-in as Inception
    assert download.weights_status("inception")[0] and download.weights_status("lpips-alex")[0]
    assert sorted(server[2]) == ["/alexnet-owt-7be5be79.pth", "/weights-inception-2015-12-05-6726825d.pth"]


def test_cli_probe_download_failure_is_one_line_before_any_probe(hub, monkeypatch, tmp_path):
    known = download.KNOWN_FILES["lpips-alex"]
    url = f"http://127.0.0.1:{_free_port()}/{known.filename}"
    monkeypatch.setitem(download.KNOWN_FILES, "lpips-alex", dataclasses.replace(known, url=url))
    out = tmp_path / "probes"
    args = ["probe", "noise-resample", "--classifier", "smallcnn.base", "--inverter", "optim", "--out", str(out)]
    one_line_error(cli([*args, "--download", "--device", "cpu"]), "cannot reach the server", url)
    assert not (out / "noise-resample").exists()
