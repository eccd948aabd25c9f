"""Issue 12 point 2: one definition of the image an inverter reconstructs, everywhere: the data image at the
inverter's resolution (``Inverter.target_images``). The classifier's logits come from that image and
reconstructions are scored against it, here with data (28x28) at another size than the inverter's (16x16)."""

from __future__ import annotations

import pytest
import torch
from test_bench import TinyOptimConfig, settings, tiny  # noqa: F401 - the fixture

import invkit
from invkit.data import resize
from invkit.evaluation.bench import Bench

pytestmark = pytest.mark.usefixtures("one_thread")


class Oracle(invkit.Inverter):
    """Returns, for each logit vector, the bank image whose logits equal it exactly (else a black image)."""

    def __init__(self, config, classifier, bank: torch.Tensor):
        super().__init__(config)
        self.bank = bank
        self.bank_logits = classifier.logits(bank)

    def invert(self, logits, noise=None, generator=None):
        d = torch.cdist(logits.double(), self.bank_logits.double())
        best = d.argmin(1)
        exact = d.gather(1, best[:, None]).squeeze(1) < 1e-5
        return self.bank[best] * exact[:, None, None, None]


def test_target_images_is_the_data_image_at_the_inverter_resolution():
    clf = invkit.Classifier(torch.nn.Flatten(), _cfg())
    inv = Oracle(TinyOptimConfig(resolution=16), clf, torch.rand(1, 1, 16, 16))
    x = torch.rand(3, 3, 28, 28)
    out = inv.target_images(x)
    assert out.shape == (3, 1, 16, 16)
    assert torch.equal(out, resize(x, 16, channels=1))


def _cfg():
    return invkit.ClassifierConfig(name="flat.test", num_classes=10, input_size=(1, 16, 16), mean=(0.0,), std=(1.0,))


def test_bench_computes_logits_from_and_scores_against_the_target_image(tiny, tmp_path, monkeypatch):  # noqa: F811
    bench = Bench(settings(tiny, classifiers=[tiny["std"][0]], inverters=["tinyopt"], checkpoints=[]))
    assert bench.originals.shape[-1] == 28
    clf = bench.classifiers[tiny["std"][0]]
    config = TinyOptimConfig(resolution=16)
    targets = resize(bench.originals, 16, channels=1)
    oracle = Oracle(config, clf, targets)
    from invkit.evaluation import bench as bench_mod

    monkeypatch.setattr(bench_mod.Bench, "_inverter", lambda self, pair, c: (oracle, {}))
    bench.settings.batch_size = 100
    (result,) = list(bench.run())
    rec = result.record
    # The oracle finds every image only if the bench's logits are those of the 16x16 target images, and the
    # scores are perfect only if they compare with those targets (not with the 28x28 originals).
    assert rec["logit_cosine"] == pytest.approx(1.0) and rec["id_accuracy"] == 1.0
    assert rec["psnr"] == pytest.approx(100.0) and rec["ssim"] == pytest.approx(1.0)
    assert rec["target_shape"] == [1, 16, 16] and rec["recon_shape"] == [1, 16, 16]


def test_probes_load_the_target_images(tmp_path):
    from invkit_plugins.probes import _common as C

    from invkit import ProbeContext
    from invkit.data import load_dataset

    data = load_dataset("default", "test")
    clf = invkit.Classifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 10)), _cfg())
    inv = Oracle(TinyOptimConfig(resolution=16), clf, torch.rand(1, 1, 16, 16))
    ctx = ProbeContext(
        classifier=clf, inverter=inv, data=data, out=tmp_path, generator=torch.Generator().manual_seed(0), num_images=4
    )
    x, _ = C.load_images(ctx)
    assert data[0][0].shape[-1] == 28 and x.shape == (4, 1, 16, 16)
    assert torch.equal(C.to_inverter_shape(ctx, x), x)


def test_bench_only_correct_draws_images_every_classifier_gets_right(tiny, tmp_path):  # noqa: F811
    bench = Bench(settings(tiny, inverters=["tinyopt"], checkpoints=[], n=4, only_correct=True))
    labels = torch.tensor(bench.dataset.labels())[bench.indices]
    assert len(bench.indices) == 4  # random tiny classifiers: 5 test images are right for both
    for clf in bench.classifiers.values():
        assert torch.equal(clf.logits(bench.originals).argmax(1), labels)
    assert bench.settings.fingerprint()["only_correct"] is True
    assert "only_correct" not in settings(tiny).fingerprint()  # older results folders still match when off
    with pytest.raises(invkit.InvkitError, match="drop --only-correct"):  # 500 of 1000, but few are right
        Bench(settings(tiny, inverters=["tinyopt"], checkpoints=[], n=500, only_correct=True))
