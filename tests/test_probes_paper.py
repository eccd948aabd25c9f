"""Issue 12, points 6-8: the probes measure what the paper reports (brightness/sharpness fits in logit space,
fidelity of misclassified vs correctly classified images, the mirror probe, FGSM on two classifiers,
stability sampling). Tiny seeded models from test_probes."""

from __future__ import annotations

import pytest
import torch
from invkit_plugins.probes import _common as C
from invkit_plugins.probes.fit import logit_shift_and_scale
from test_probes import make_ctx, models  # noqa: F401 - the fixture

import invkit

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------- brightness/sharpness fit
def test_logit_shift_and_scale_are_the_supplements_two_separate_fits():
    z = torch.tensor([[1.0, 2.0, 6.0], [0.0, -3.0, 3.0]])
    shift, scale = logit_shift_and_scale(z, z - 2.0)  # original = adjusted + 2
    assert shift.tolist() == pytest.approx([2.0, 2.0])
    shift, scale = logit_shift_and_scale(z, z / 3.0)  # original = adjusted x 3
    assert scale.tolist() == pytest.approx([3.0, 3.0])
    # Least squares over the classes: original (1, 3), adjusted (1, 1) -> shift 1, scale (1 + 3) / 2 = 2.
    shift, scale = logit_shift_and_scale(torch.tensor([[1.0, 3.0]]), torch.tensor([[1.0, 1.0]]))
    assert (shift.item(), scale.item()) == pytest.approx((1.0, 2.0))


@pytest.mark.parametrize("name", ["brightness-fit", "sharpness-fit"])
def test_fit_probe_reports_logit_shift_and_scale_per_factor(name, models, tmp_path):  # noqa: F811
    options = {"factors": [0.5, 1.0, 1.5], "images": 6, "grid": 3}
    result = invkit.create_probe(name).run(make_ctx(models, tmp_path / "run", options=options))
    shift, scale = result.numbers["logit_shift"], result.numbers["logit_scale"]
    assert [r["factor"] for r in shift] == [0.5, 1.0, 1.5] == [r["factor"] for r in scale]
    assert (shift[1]["mean"], shift[1]["std"], scale[1]["mean"], scale[1]["std"]) == pytest.approx((0, 0, 1, 0))
    # The same numbers from the probe's own images, recomputed here (the probe draws its images first).
    ctx = make_ctx(models, tmp_path / "check", options=options)
    x, _ = C.load_images(ctx, 6)
    enhance = C.enhance_brightness if name == "brightness-fit" else C.enhance_sharpness
    s, c = logit_shift_and_scale(C.logits_of(ctx, x), C.logits_of(ctx, enhance(x, 0.5)))
    close = dict(rel=1e-4, abs=1e-6)  # results are written with 6 significant digits
    assert (shift[0]["mean"], shift[0]["std"]) == pytest.approx((float(s.mean()), float(s.std())), **close)
    assert (scale[0]["mean"], scale[0]["std"]) == pytest.approx((float(c.mean()), float(c.std())), **close)
    assert {"logit_shift.png", "logit_scale.png"} <= set(result.figures.values())
    assert result.numbers["per_factor"][0]["logit_shift_mean"] == shift[0]["mean"]


# ----------------------------------------------------------------------------------------------- misclassified
def test_misclassified_compares_fidelity_of_wrong_and_right_originals(models, tmp_path):  # noqa: F811
    from invkit.evaluation.metrics import psnr, ssim

    options = {"scan": 200, "compare": 20, "id_k": 3}
    result = invkit.create_probe("misclassified").run(make_ctx(models, tmp_path / "run", options=options))
    fid = result.numbers["fidelity"]
    assert set(fid) == {"misclassified", "correct"} and result.numbers["id_k"] == 3
    for group in fid.values():
        assert 0 < group["n"] <= 20 and 0 <= group["identification"] <= 1 and -1 <= group["ssim"] <= 1
    assert result.numbers["psnr_misclassified_minus_correct"] == pytest.approx(
        fid["misclassified"]["psnr"] - fid["correct"]["psnr"], abs=1e-4
    )
    # Recompute the misclassified group's PSNR/SSIM from the probe's own draw (draws: images, distractor seed, noise).
    ctx = make_ctx(models, tmp_path / "check", options=options)
    from invkit.data import take

    images, labels = take(ctx.data, 200, seed=C.seed_from(ctx.generator))
    images = C.to_inverter_shape(ctx, images)
    wrong = (C.predict(ctx, images) != labels).nonzero().flatten()[:20]
    C.seed_from(ctx.generator)  # the probe's distractor seed, drawn before its inversions
    recon = C.invert(ctx, C.logits_of(ctx, images[wrong]))
    assert fid["misclassified"]["n"] == len(wrong)
    assert fid["misclassified"]["psnr"] == pytest.approx(float(psnr(recon, images[wrong]).mean()), rel=1e-4)
    assert fid["misclassified"]["ssim"] == pytest.approx(float(ssim(recon, images[wrong]).mean()), rel=1e-4)


# ---------------------------------------------------------------------------------------------------- mirror
def _corner() -> torch.Tensor:
    x = torch.zeros(1, 1, 16, 16)
    x[..., :6, :3] = 1.0  # a block in the top-left corner: original, left/right and up/down mirrors all differ
    return x


def test_nearest_flip_on_constructed_reconstructions():
    from invkit_plugins.probes.mirror import nearest_flip

    x = _corner()
    recon = torch.cat([x, x.flip(-1), x.flip(-2), x.flip(-1) * 0.9])
    which, distinct = nearest_flip(recon, x)
    assert which.tolist() == [0, 1, 2, 1] and distinct > 0.1
    assert nearest_flip(recon, torch.ones(1, 1, 16, 16))[1] == 0.0  # symmetric: nothing to tell apart


def test_mirror_probe_counts_flipped_samples(models, tmp_path):  # noqa: F811
    clf, inv = models

    class Flipper(type(inv)):
        """Returns a fixed asymmetric image as the target, left/right flipped for every other noise sample."""

        def invert(self, logits, noise=None, generator=None):
            out = self.image(len(logits))
            out[1::2] = out[1::2].flip(-1)
            return out

        def target_images(self, images):
            return self.image(len(images))

        def image(self, n):
            return torch.nn.functional.interpolate(_corner(), size=32).expand(n, -1, -1, -1).clone()

    flipper = Flipper(inv.config)
    ctx = make_ctx((clf, flipper), tmp_path, options={"images": 3, "samples": 4})
    result = invkit.create_probe("mirror").run(ctx)
    n = result.numbers
    assert n["samples"] == 4 and n["images_counted"] == 3
    assert n["hflip_rate"] == pytest.approx(0.5) and n["vflip_rate"] == 0.0
    assert n["hflip_images_with_any"] == 1.0
    assert (tmp_path / "mirror.png").is_file()


def test_docs_name_the_papers_resnet152():
    from pathlib import Path

    from invkit_plugins.probes import class_spread

    text = (Path(__file__).resolve().parents[1] / "docs" / "probes.md").read_text() + class_spread.__doc__
    assert "ResNet-50" not in text and "ResNet-152" in text


# ------------------------------------------------------------------------------------------ iterative stability
def test_stability_can_draw_images_from_a_number_of_classes(models, tmp_path):  # noqa: F811
    options = {"images": 12, "classes": 3, "rounds": 1}
    result = invkit.create_probe("iterative-stability").run(make_ctx(models, tmp_path, options=options))
    assert result.numbers["images"] == 12 and result.numbers["classes_drawn"] == 3
    from invkit_plugins.probes.stability import load_from_classes

    x, y = load_from_classes(make_ctx(models, tmp_path / "x"), 12, 3)
    assert x.shape[0] == 12 and sorted(torch.bincount(y)[torch.bincount(y) > 0].tolist()) == [4, 4, 4]
    with pytest.raises(invkit.InputError, match="fewer than"):
        load_from_classes(make_ctx(models, tmp_path / "y"), 100000, 2)


# ------------------------------------------------------------------------------------------------------ fgsm
def test_fgsm_with_a_second_classifier_reports_images_attacked_on_both(models, tmp_path):  # noqa: F811
    from pathlib import Path

    demo = Path(__file__).resolve().parents[1] / "invkit" / "assets" / "demo"
    clf = invkit.load_classifier(demo / "classifier_robust")
    inv = models[1]
    options = {"eps": 0.3, "other_classifier": str(demo / "classifier_standard")}
    result = invkit.create_probe("fgsm").run(make_ctx((clf, inv), tmp_path, options=options))
    n = result.numbers
    assert n["other_classifier"] == "smallcnn.base" and 0 <= n["other_attack_success"] <= 1
    both = n["both_attacked"]
    assert 0 < both["images"] <= n["successful_attacks"]
    assert 0 <= both["recon_adv_classified_as_true"] <= 1
    with pytest.raises(invkit.InvkitError):
        invkit.create_probe("fgsm").run(make_ctx((clf, inv), tmp_path / "b", options={"other_classifier": "nope.x"}))
