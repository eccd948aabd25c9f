"""Issue 24, section 6: the rough edges an outside plugin author hit, each fixed in one place.

* A training run folder means its newest checkpoint for every command and library function
  (``invkit.io.checkpoint.checkpoint_folder``), and the output says which.
* Distributed training keeps the inverter API: ``wrap(inverter).invert(...)`` runs through DDP
  (``invkit.training.distributed.DistributedInverter``), checked with two gloo processes.
* Options are checked in one place (``invkit.check_options``) for factories, trainers and probes, before a probe
  runs and before ``invkit probe`` compares an output folder's settings.
* ``run_probe`` renders a probe's ``index.html`` from its ``ProbeResult``; ``invkit probe`` writes one page across
  the probes of ``--out``.
* ``invkit.testing.check_inverter`` takes factory ``options`` and ``trainer_options``.
* ``Inverter.trainable`` is the one declaration of a learned inverter; ``factory.trainable`` is deprecated.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import socket
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import invkit
import invkit.testing
from invkit import Inverter, InverterTrainer, ProbeContext, ProbeResult
from invkit.core.probe import run_probe
from invkit.data import load_dataset
from invkit.io.checkpoint import NewestCheckpointNote, checkpoint_folder
from invkit.io.figures import save_grid

sys.path.insert(0, str(Path(__file__).parent))
import _toy_inverter  # noqa: E402
from _cli import cli, one_line_error  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _toy_plugin():
    _toy_inverter.register()  # toyclf.base, toyinv.base (learned), toyfixed.base (no training step)


@pytest.fixture
def run_folder(tmp_path, one_thread):
    """A real `invkit train` run folder with checkpoints at steps 2 and 4 (the newest is step 4)."""
    out = tmp_path / "run"
    args = ["train", "--classifier", "toyclf.base", "--inverter", "toyinv.base", "--out", str(out)]
    result = cli([*args, "--steps", "4", "--batch-size", "4", "--save-every", "2", "--sample-every", "4"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == ["step_000002", "step_000004"]
    return out


# ------------------------------------------------------------------------------------- a run folder, everywhere
def test_library_functions_read_a_run_folder_as_its_newest_checkpoint(run_folder):
    clf = invkit.create_classifier("toyclf.base")
    newest = run_folder / "checkpoints" / "step_000004"
    with pytest.warns(NewestCheckpointNote, match=r"step_000004.*\(step 4\)"):
        from_run = invkit.load_inverter(run_folder)
    direct = invkit.load_inverter(newest)
    logits = clf.logits(torch.rand(2, 1, 28, 28))
    noise = torch.zeros(2, direct.noise_dim)
    assert torch.equal(from_run.invert(logits, noise=noise), direct.invert(logits, noise=noise))
    for call in (
        lambda: invkit.resolve_inverter(None, clf, checkpoint=str(run_folder)),
        lambda: invkit.resolve_inverter(str(run_folder), clf),
        lambda: invkit.create_inverter(classifier=clf, checkpoint=str(run_folder)),
    ):
        with pytest.warns(NewestCheckpointNote):
            assert call().registry_name == "toyinv.base"
    assert checkpoint_folder(str(run_folder), note=False) == str(newest)  # the one rule, as a string
    assert checkpoint_folder(newest) == newest and checkpoint_folder("toyinv.base") == "toyinv.base"
    # a run recorded by its newest checkpoint's weights: trained further, it counts as other settings
    assert invkit.io.spec_identity(str(run_folder)) == invkit.io.spec_identity(str(newest))


def test_a_run_folder_without_a_checkpoint_yet_is_one_clear_error(tmp_path):
    (tmp_path / "run" / "checkpoints" / ".tmp-step_000002-1").mkdir(parents=True)  # a checkpoint being written
    with pytest.raises(invkit.CheckpointError, match="run folder without a complete checkpoint yet"):
        invkit.load_inverter(tmp_path / "run")


@pytest.mark.parametrize("command", ["invert", "probe", "bench"])
def test_every_command_takes_a_run_folder_and_says_which_checkpoint(command, run_folder, tmp_path):
    out = tmp_path / f"out-{command}"
    clf = ["--classifier", "toyclf.base"]
    if command == "invert":
        image = tmp_path / "digit.png"
        save_grid(torch.rand(1, 1, 28, 28), image)
        args = ["invert", str(image), *clf, "--checkpoint", str(run_folder), "--out", str(out)]
    elif command == "probe":
        args = ["probe", "noise-resample", *clf, "--checkpoint", str(run_folder), "-n", "2", "--out", str(out)]
        args += ["--option", "rows=1", "--option", "samples=2"]
    else:
        args = ["bench", *clf, "--inverter", "toyinv.base", "--checkpoint", str(run_folder), "-n", "10"]
        args += ["--id-k", "2", "--out", str(out), "--device", "cpu"]
    result = cli(args)
    assert result.exit_code == 0, result.output
    assert "note: " in result.output and "step_000004" in result.output and "(step 4)" in result.output


def test_standing_stats_takes_a_run_folder(tmp_path, one_thread):
    """standing-stats (biggan_proj only) reads a run folder like every other command."""
    clf = invkit.create_classifier("toyclf.base")
    inv = invkit.create_inverter("biggan_proj.mnist32", classifier=clf, ch=4, cbn_hidden=8)
    inv.save(tmp_path / "run" / "checkpoints" / "step_000003", train_state={"step": torch.tensor(3)})
    out = tmp_path / "standing"
    args = ["standing-stats", str(tmp_path / "run"), "--classifier", "toyclf.base", "--batches", "1"]
    result = cli([*args, "--batch-size", "2", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "note: " in result.output and "step_000003" in result.output
    assert json.loads((out / "config.json").read_text())["config"]["bn_stats"] == "standing"


# ------------------------------------------------------------------------------------------------ distributed
class _ForwardIsNotInvert(Inverter):
    """A linear decoder whose ``forward`` is not ``invert``: a trainer that calls ``invert`` must reach DDP."""

    def __init__(self) -> None:
        super().__init__(_toy_inverter.ToyConfig(num_classes=3, channels=1, resolution=2, noise_dim=0))
        self.net = nn.Linear(3, 4)
        with torch.no_grad():
            self.net.weight.copy_(torch.arange(12.0).view(4, 3) / 10)
            self.net.bias.zero_()

    def forward(self, *args, **kwargs):
        raise RuntimeError("forward is not invert here")

    def invert(self, logits, noise=None, generator=None):
        return torch.sigmoid(self.net(self.check_logits(logits))).view(-1, 1, 2, 2)


class _InvertTrainer(InverterTrainer):
    """SGD on MSE, through ``invert`` of whatever ``distribute`` wrapped."""

    def __init__(self, inverter, classifier):
        super().__init__(inverter, classifier)
        self.g = inverter
        self.opt = torch.optim.SGD(inverter.parameters(), lr=0.5)

    def distribute(self, wrap):
        self.g = wrap(self.inverter)

    def train_step(self, next_batch, step):
        images, logits = next_batch()
        self.opt.zero_grad()
        loss = F.mse_loss(self.g.invert(logits), images)
        loss.backward()
        self.opt.step()
        return {"loss": loss.item()}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def _batch(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)  # each rank its own data: only averaging makes them agree
    return torch.rand(4, 1, 2, 2, generator=g), torch.randn(4, 3, generator=g)


def _ddp_rank(rank: int, port: int, queue) -> None:
    import os

    import torch.distributed as dist

    from invkit.training.distributed import ddp_wrap

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        trainer = _InvertTrainer(_ForwardIsNotInvert(), None)
        trainer.distribute(ddp_wrap(torch.device("cpu")))  # what the loop hands to distribute under torchrun
        batch = _batch(rank)
        trainer.train_step(lambda: batch, 0)
        info = (type(trainer.g).__name__, trainer.g.noise_dim, trainer.g.inverter is trainer.inverter)
        params = [p.detach().tolist() for p in trainer.inverter.parameters()]  # plain lists: no shared storage
        queue.put((rank, info, params))
    finally:
        dist.destroy_process_group()


def test_ddp_wraps_the_inverter_so_invert_averages_gradients():
    """Two gloo processes, each on its own batch, call ``wrap(inverter).invert``: both end with the weights of one
    SGD step on the mean gradient, so invert ran through DistributedDataParallel (the inverter's forward raises)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = multiprocessing.get_context("fork")  # the children share the imported modules: two processes in ~1 s
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_rank, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        got = dict((rank, (info, params)) for rank, info, params in (queue.get(timeout=60) for _ in procs))
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    expected = _ForwardIsNotInvert()
    grads = []
    for rank in range(2):
        images, logits = _batch(rank)
        model = _ForwardIsNotInvert()
        F.mse_loss(model.invert(logits), images).backward()
        grads.append([p.grad for p in model.parameters()])
    with torch.no_grad():
        for p, g0, g1 in zip(expected.parameters(), *grads):
            p -= 0.5 * (g0 + g1) / 2
    for rank in range(2):
        info, params = got[rank]
        assert info == ("DistributedInverter", 0, True)
        for p, want in zip(params, expected.parameters()):
            torch.testing.assert_close(torch.tensor(p), want.detach(), atol=1e-6, rtol=0)


def test_an_inverter_is_called_through_invert_unless_it_defines_forward():
    clf = invkit.testing.tiny_classifier()
    inv = invkit.testing.tiny_inverter(clf)
    logits = clf.logits(torch.rand(2, 1, 28, 28))
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(inv(logits, generator=gen()), inv.invert(logits, generator=gen()))


# ------------------------------------------------------------------------------------------------ option checks
@dataclass(frozen=True)
class GridOptions:
    grid: int = 21  # grid points
    factors: tuple[float, ...] = ()  # enhancement factors
    flag: bool = False


class GridProbe(invkit.Probe):
    """Records what ``run`` received: the types of its options."""

    description = "test probe"
    options = GridOptions()

    def run(self, ctx: ProbeContext) -> ProbeResult:
        o = self.options_for(ctx)
        types = {k: type(v).__name__ for k, v in ctx.options.items()}
        return ProbeResult(self.name, {"grid": o.grid, "factors": list(o.factors), "flag": o.flag, "types": types})


def _ctx(out: Path, **kw) -> ProbeContext:
    clf = invkit.testing.tiny_classifier()
    return ProbeContext(
        classifier=clf,
        inverter=invkit.testing.tiny_inverter(clf),
        data=load_dataset("default", "test"),
        out=out,
        generator=torch.Generator().manual_seed(0),
        num_images=4,
        **kw,
    )


def test_check_options_refuses_unknown_keys_with_close_matches_and_wrong_types():
    assert invkit.check_options(GridOptions, {"grid": 4.0, "factors": [1, 2], "flag": "yes"}, "p") == {
        "grid": 4,
        "factors": (1.0, 2.0),
        "flag": True,
    }
    assert invkit.check_options(GridOptions(), {"factors": 0.5}, "p") == {"factors": (0.5,)}  # one number
    with pytest.raises(invkit.InputError, match=r"^p has no option 'gird' \(did you mean 'grid'\?\); its options are"):
        invkit.check_options(GridOptions, {"gird": 3}, "p")
    with pytest.raises(invkit.InputError, match="'grid' must be a whole number, got 3.5"):
        invkit.check_options(GridOptions, {"grid": 3.5}, "p")
    with pytest.raises(invkit.InputError, match=r"'factors\[1\]' must be a finite number, got 'x'"):
        invkit.check_options(GridOptions, {"factors": [1, "x"]}, "p")
    assert invkit.check_options(None, {"anything": object}, "p").keys() == {"anything"}  # declares nothing


def test_probe_options_are_checked_before_run_and_reach_it_converted(tmp_path):
    probe = GridProbe()
    probe.name = "grid-probe"
    result = run_probe(probe, _ctx(tmp_path / "ok", options={"grid": 4.0, "factors": [2]}))
    assert result.numbers["grid"] == 4 and result.numbers["types"] == {"grid": "int", "factors": "tuple"}
    for bad, said in [({"grid": 3.5}, "'grid' must be a whole number"), ({"gird": 3}, "no option 'gird'")]:
        out = tmp_path / "bad"
        out.mkdir(exist_ok=True)
        with pytest.raises(invkit.InputError, match=said):
            run_probe(probe, _ctx(out, options=bad))
        assert not any(out.iterdir())  # refused before the probe ran or wrote anything
    with pytest.raises(invkit.InputError, match="'grid' must be a whole number, got 3.5"):
        GridProbe(grid=3.5)  # built with options (what create_probe passes): the same check


def test_builtin_factories_trainers_and_probes_share_the_one_check():
    clf = invkit.testing.tiny_classifier()
    with pytest.raises(invkit.InputError, match="brightness-fit: 'grid' must be a whole number, got 3.5"):
        invkit.create_probe("brightness-fit", grid=3.5)
    with pytest.raises(invkit.InputError, match="brightness-fit has no option 'gird' .did you mean 'grid'"):
        invkit.create_probe("brightness-fit", gird=3)
    with pytest.raises(invkit.InputError, match="biggan_proj.mnist32: 'ch' must be a whole number, got 'eight'"):
        invkit.create_inverter("biggan_proj.mnist32", classifier=clf, ch="eight")
    with pytest.raises(invkit.InputError, match="optim.mv15 has no option 'stpes' .did you mean 'steps'"):
        invkit.create_inverter("optim.mv15", classifier=clf, stpes=3)
    inv = invkit.create_inverter("dosovitskiy_brox.mnist", classifier=clf, resolution=8, fc_dim=8, start_channels=4)
    with pytest.raises(invkit.InputError, match="trainer: 'lr' must be a finite number, got 'fast'"):
        inv.make_trainer(clf, lr="fast")
    big = invkit.create_inverter("biggan_proj.mnist32", classifier=clf, ch=4, cbn_hidden=8)
    with pytest.raises(invkit.InputError, match="trainer: 'g_lr' must be above 0"):
        big.make_trainer(clf, g_lr=-1.0)
    trainer = big.make_trainer(clf, g_lr=1e-4, bf16=False, seed=3)
    assert trainer.options.g_lr == 1e-4 and trainer.opt_G.param_groups[0]["lr"] == 1e-4 and not trainer.bf16


def test_no_builtin_or_example_plugin_checks_option_names_itself():
    """The shared check replaced each plugin's own "unknown option" code: none is left to drift."""
    sources = [*(REPO / "plugins").rglob("*.py"), *(REPO / "docs" / "example_plugin" / "src").rglob("*.py")]
    for path in sources:
        text = path.read_text()
        for own in ("unknown option", "unknown trainer option", "resolve_options(", "check_fields(", "has no option"):
            assert own not in text, f"{path.relative_to(REPO)} still checks options itself ({own!r})"


def test_registering_options_that_are_not_a_dataclass_skips_the_plugin_with_a_warning():
    class Plugin:
        @invkit.hookimpl
        def register_inverters(self, register):
            register("badopts.x", lambda classifier=None, **kw: None, options={"ch": int})

    invkit.register_plugin(Plugin(), name="badopts")
    with pytest.warns(UserWarning, match="badopts"):
        assert "badopts.x" not in invkit.list_inverters()


def test_a_misspelt_probe_option_is_reported_before_the_output_folder_is_compared(tmp_path):
    args = ["probe", "noise-resample", "--classifier", "toyclf.base", "--inverter", "toyfixed.base", "-n", "2"]
    args += ["--out", str(tmp_path / "out"), "--option", "samples=2"]
    first = cli([*args, "--option", "rows=1"])
    assert first.exit_code == 0, first.output
    one_line_error(cli([*args, "--option", "gird=3"]), "noise-resample has no option 'gird'")
    one_line_error(cli([*args, "--option", "rows=1.5"]), "'rows' must be a whole number, got 1.5")
    error = one_line_error(cli([*args, "--option", "rows=2"]), "results of other settings")  # a real change
    assert "rows" in error


# ------------------------------------------------------------------------------------------------ probe pages
class PictureProbe(invkit.Probe):
    """Writes one PNG and returns numbers, a caption and a table: no HTML of its own."""

    description = "test probe"

    def run(self, ctx: ProbeContext) -> ProbeResult:
        save_grid(torch.rand(2, 1, 8, 8, generator=ctx.generator), ctx.out / "grid.png")
        return ProbeResult(
            self.name,
            {"score": 0.25, "nested": {"a": 1}},
            figures={"grid": "grid.png"},
            summary="a <b>summary</b>",
            captions={"grid": "two random tiles"},
            tables={"Per level": [{"level": 1, "score": 0.5}]},
        )


def test_run_probe_renders_the_page_from_the_result(tmp_path):
    probe = PictureProbe()
    probe.name = "picture"
    result = run_probe(probe, _ctx(tmp_path))
    page = (tmp_path / "index.html").read_text()
    assert result.figures == {"grid": "grid.png", "page": "index.html"}
    for part in ("a &lt;b&gt;summary&lt;/b&gt;", "nested.a", "Per level", "two random tiles", "data:image/png;base64,"):
        assert part in page
    assert "tiny.conformance" in page  # what it ran on
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["figures"]["page"] == "index.html" and saved["captions"] == {"grid": "two random tiles"}


def test_a_probe_that_wrote_its_own_page_keeps_it(tmp_path):
    class OwnPage(PictureProbe):
        def run(self, ctx):
            result = super().run(ctx)
            (ctx.out / "index.html").write_text("mine")
            result.figures["page"] = "index.html"
            return result

    run_probe(OwnPage(), _ctx(tmp_path))
    assert (tmp_path / "index.html").read_text() == "mine"


def test_probe_all_writes_one_page_across_the_probes(tmp_path):
    out = tmp_path / "out"
    args = ["probe", "noise-*", "--classifier", "toyclf.base", "--inverter", "toyfixed.base", "-n", "4"]
    for option in ("rows=1", "samples=2", "pairs=1", "steps=3"):
        args += ["--option", option]
    result = cli([*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    overview = (out / "index.html").read_text()
    for name in ("noise-resample", "noise-interpolate"):
        assert f"href='{name}/index.html'" in overview and (out / name / "index.html").is_file()
        assert json.loads((out / name / "results.json").read_text())["summary"] in overview.replace("&#x27;", "'")
    assert f"all probes in {out}" in result.output


def test_a_foreign_index_html_in_out_is_refused_before_any_probe_runs(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.html").write_text("the user's own page")
    args = ["probe", "noise-resample", "--classifier", "toyclf.base", "--inverter", "toyfixed.base", "-n", "2"]
    one_line_error(cli([*args, "--option", "rows=1", "--option", "samples=2", "--out", str(out)]), "index.html")
    assert (out / "index.html").read_text() == "the user's own page" and not (out / "noise-resample").exists()


# ------------------------------------------------------------------------------------------------ check_inverter
def test_check_inverter_takes_factory_and_trainer_options(tmp_path):
    clf = invkit.create_classifier("toyclf.base")
    inv = invkit.testing.check_inverter(
        "toyinv.base", tmp_path / "a", classifier=clf, options={"hidden": 8}, trainer_options={"draws": 1}
    )
    assert inv.config.hidden == 8
    with pytest.raises(invkit.TrainingError, match="toy trainer: unknown option"):  # they reach make_trainer
        invkit.testing.check_inverter("toyinv.base", tmp_path / "b", classifier=clf, trainer_options={"bogus": 1})
    with pytest.raises(invkit.testing.ConformanceError, match="not trainable"):
        invkit.testing.check_inverter("toyfixed.base", tmp_path / "c", classifier=clf, trainer_options={"lr": 1.0})


# ------------------------------------------------------------------------------------------------ trainability
def test_trainable_is_read_from_the_inverter_class_without_building_it(monkeypatch):
    from invkit_plugins.biggan_proj import BigGANInverter
    from invkit_plugins.dosovitskiy_brox import DosovitskiyBroxInverter
    from invkit_plugins.optim import OptimInverter

    from invkit.core import resolve

    registry = invkit.get_registry("inverter")
    for name, cls in [
        ("biggan_proj.paper", BigGANInverter),
        ("dosovitskiy_brox.paper", DosovitskiyBroxInverter),
        ("optim.mv15", OptimInverter),
    ]:
        factory = registry.resolve(name).factory
        assert not hasattr(factory, "trainable"), f"{name} still declares trainable on its factory"
        assert resolve._built_class(factory) is cls
    monkeypatch.setattr(invkit.core.factory, "create_inverter", lambda *a, **k: pytest.fail("built"))
    assert resolve.is_learned("biggan_proj.paper") and resolve.is_learned("dosovitskiy_brox.mnist")
    assert not resolve.is_learned("optim.robust")


def test_an_unannotated_factory_is_asked_on_the_meta_device_and_factory_trainable_is_deprecated():
    built = []

    def plain(classifier=None, **kw):  # no return annotation: the meta device answers
        built.append(torch.empty(1).device.type)
        return _toy_inverter._toy_factory(classifier, **kw)

    def old_style(classifier=None, **kw):
        return _toy_inverter._toy_factory(classifier, **kw)

    old_style.trainable = True  # how invkit 0.1 plugins declared it

    class Plugin:
        @invkit.hookimpl
        def register_inverters(self, register):
            register("plain.x", plain)
            register("oldstyle.x", old_style)

    invkit.register_plugin(Plugin(), name="trainability")
    clf = invkit.create_classifier("toyclf.base")
    with pytest.raises(invkit.InvkitError, match="plain.x is a learned inverter"):
        invkit.resolve_inverter("plain.x", clf)
    assert built == ["meta"]
    with pytest.warns(DeprecationWarning, match="Inverter.trainable on the inverter's class is the one declaration"):
        with pytest.raises(invkit.InvkitError, match="oldstyle.x is a learned inverter"):
            invkit.resolve_inverter("oldstyle.x", clf)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert invkit.resolve_inverter("toyfixed.base", clf).trainable is False  # untrainable: built, no warning


def test_docs_name_one_declaration_of_trainability():
    for page in ("plugins.md", "hooks.md"):
        text = (REPO / "docs" / page).read_text()
        assert "factory.trainable" not in text or "deprecated" in text.lower(), page


def test_options_dataclass_of_the_trainers_match_their_signatures():
    """The trainers declare every option they take: make_trainer(**asdict(options)) builds with the defaults."""
    clf = invkit.testing.tiny_classifier()
    for name, kw in [
        ("biggan_proj.mnist32", {"ch": 4, "cbn_hidden": 8}),
        ("dosovitskiy_brox.mnist", {"resolution": 8, "fc_dim": 8, "start_channels": 4}),
    ]:
        inv = invkit.create_inverter(name, classifier=clf, **kw)
        trainer_cls = type(inv.make_trainer(clf))
        defaults = dataclasses.asdict(trainer_cls.options)
        assert type(inv.make_trainer(clf, **defaults)).__name__ == trainer_cls.__name__
