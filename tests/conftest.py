"""Shared fixtures: tiny seeded models and a handful of images. Nothing here needs a GPU or the network."""

from __future__ import annotations

import pytest
import torch

import invkit.core.plugins


@pytest.fixture(autouse=True)
def _seed_and_isolate(tmp_path, monkeypatch):
    """Seed torch, keep caches in tmp, and give every test freshly loaded plugins."""
    torch.manual_seed(0)
    monkeypatch.setenv("INVKIT_CACHE", str(tmp_path / "cache"))
    invkit.core.plugins.reset()
    yield
    invkit.core.plugins.reset()


@pytest.fixture
def mnist_batch():
    """16 embedded MNIST test digits (2 per class for classes 0..7) as (images (16,1,28,28) in [0,1], labels)."""
    from invkit.data import load_dataset, take

    return take(load_dataset("default", "test"), 16, seed=0, per_class=True)


@pytest.fixture
def one_thread():
    """Run a test on one torch thread: tiny models are faster that way, and the test machine is shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
