"""Metrics on inputs whose answers are known."""

from __future__ import annotations

import math

import pytest
import torch

from invkit.errors import InputError
from invkit.evaluation import metrics


def test_psnr_known_values():
    x = torch.zeros(2, 1, 8, 8)
    y = torch.full((2, 1, 8, 8), 0.1)  # MSE 0.01 -> 20 dB
    assert torch.allclose(metrics.psnr(x, y), torch.tensor([20.0, 20.0]), atol=1e-4)
    assert torch.allclose(metrics.psnr(x, x), torch.tensor([metrics.PSNR_CAP_DB] * 2))


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_identical_is_one(channels):
    x = torch.rand(3, channels, 28, 28)
    assert torch.allclose(metrics.ssim(x, x), torch.ones(3), atol=1e-6)


def test_ssim_constant_images_formula():
    # With no variance SSIM reduces to the luminance term (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 0.2, 0.7
    x, y = torch.full((1, 1, 16, 16), a), torch.full((1, 1, 16, 16), b)
    c1 = metrics.SSIM_K1**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert metrics.ssim(x, y).item() == pytest.approx(expected, rel=1e-5)


def test_ssim_three_channels_is_mean_of_channels_and_symmetric():
    x, y = torch.rand(2, 3, 20, 20), torch.rand(2, 3, 20, 20)
    per_channel = torch.stack([metrics.ssim(x[:, c : c + 1], y[:, c : c + 1]) for c in range(3)], 1).mean(1)
    assert torch.allclose(metrics.ssim(x, y), per_channel, atol=1e-6)
    assert torch.allclose(metrics.ssim(x, y), metrics.ssim(y, x), atol=1e-6)
    assert (metrics.ssim(x, y) < 0.2).all()  # independent noise is structurally unrelated


def test_ssim_window_is_normalised_gaussian():
    w = metrics.gaussian_window()
    assert w.shape == (11, 11) and w.sum().item() == pytest.approx(1.0)
    assert w[5, 5] == w.max() and w[5, 4].item() / w[5, 5].item() == pytest.approx(math.exp(-1 / (2 * 1.5**2)))


def test_metrics_reject_mismatched_shapes():
    with pytest.raises(InputError, match="differ in shape"):
        metrics.psnr(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 16, 16))


def test_classifier_agreement_split_by_correctness():
    orig = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 1.0]])
    recon = torch.tensor([[6.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1, 1, 0])  # originals 0, 1 correct; 2, 3 wrong
    out = metrics.classifier_agreement(recon, orig, labels)
    assert out["top1_agreement"] == pytest.approx(0.75)
    assert out["top1_agreement_correct"] == pytest.approx(0.5)
    assert out["top1_agreement_incorrect"] == pytest.approx(1.0)
    assert out["logit_cosine_correct"] == pytest.approx(0.5)  # cos 1 and cos 0
    assert out["logit_cosine"] == pytest.approx(0.75)
    assert (out["n_correct"], out["n_incorrect"], out["accuracy"]) == (2, 2, 0.5)
    none_wrong = metrics.classifier_agreement(recon[:2], orig[:2], labels[:2])
    assert none_wrong["top1_agreement_incorrect"] is None and none_wrong["n_incorrect"] == 0


def test_identification_identical_is_one():
    g = torch.Generator().manual_seed(0)
    originals = torch.rand(20, 1, 10, 10, generator=g)
    distractors = torch.rand(20, 9, 1, 10, 10, generator=g)
    assert metrics.identification_hits(originals, originals, distractors).mean().item() == 1.0


def test_identification_shuffled_is_chance():
    # A reconstruction unrelated to its original: the original and the k-1 distractors are exchangeable,
    # so the hit rate is 1/k. 4000 trials: the standard error is sqrt(0.2 * 0.8 / 4000) = 0.0063.
    g = torch.Generator().manual_seed(1)
    n, k = 4000, 5
    originals = torch.rand(n, 1, 6, 6, generator=g)
    distractors = torch.rand(n, k - 1, 1, 6, 6, generator=g)
    shuffled = originals[torch.randperm(n, generator=g)]
    acc = metrics.identification_hits(shuffled, originals, distractors).mean().item()
    assert abs(acc - 1 / k) < 4 * math.sqrt(0.2 * 0.8 / n)


def test_identification_ties_are_shared():
    x = torch.zeros(1, 1, 4, 4)
    distractors = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])[None]  # one tie, one far
    assert metrics.identification_hits(x, x, distractors).item() == pytest.approx(0.5)


def test_draw_distractors_same_class_not_self_and_seeded():
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 0, 0])
    idx = torch.tensor([0, 1])
    d = metrics.draw_distractors(labels, idx, k=4, seed=3)
    assert d.shape == (2, 3)
    assert (labels[d[0]] == 0).all() and (labels[d[1]] == 1).all()
    assert 0 not in d[0].tolist() and 1 not in d[1].tolist()
    assert len(set(d[0].tolist())) == 3
    assert torch.equal(d, metrics.draw_distractors(labels, idx, k=4, seed=3))
    with pytest.raises(InputError, match="--id-k"):
        metrics.draw_distractors(labels, idx, k=6)


def test_lpips_unavailable_says_which_file_where(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    ok, message = metrics.lpips_status("alex")
    assert not ok
    assert str(tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth") in message
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in message
    with pytest.raises(InputError, match="unavailable"):
        metrics.LPIPS("alex")


def test_lpips_refuses_a_file_with_the_wrong_hash(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    path = metrics.lpips_backbone_file("alex")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not alexnet")
    ok, message = metrics.lpips_status("alex")
    assert not ok and "SHA-256" in message


def test_lpips_runs_with_a_backbone_file_in_the_cache(tmp_path, monkeypatch):
    # The real file cannot ship with tests: a seeded AlexNet state dict stands in for it and the hash check is
    # bypassed. This checks the plumbing (file found, loaded, distance 0 for identical images), not the values.
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(metrics, "_sha256_matches", lambda path: True)
    path = metrics.lpips_backbone_file("alex")
    path.parent.mkdir(parents=True)
    state = torchvision.models.alexnet().state_dict()
    for k, v in state.items():  # LPIPS uses only the conv features; stride-0 zeros keep the file small
        if k.startswith("classifier."):
            state[k] = torch.zeros(1).expand(v.shape)
    torch.save(state, path)
    lp = metrics.LPIPS("alex")
    x = torch.rand(2, 1, 28, 28)
    assert torch.allclose(lp(x, x), torch.zeros(2), atol=1e-6)
    assert (lp(x, torch.rand(2, 1, 28, 28)) > 0).all()


def test_measure_cpu_memory_and_time():
    warm = torch.ones(64, 1024, 1024)  # allocated and freed before: a reused block still counts
    del warm
    with metrics.measure("cpu") as m:
        t = torch.ones(64, 1024, 1024)  # 256 MiB
        t.add_(1)
        del t
    assert m.seconds > 0 and m.method
    if m.method.startswith("peak malloc"):
        assert 250 * 2**20 <= m.peak_bytes < 400 * 2**20
        assert m.peak_total_bytes >= m.peak_bytes
