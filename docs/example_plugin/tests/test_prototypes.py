"""The example plugin's own tests: invkit's conformance checks, called with this plugin's names.

Run them with the plugin installed (``pip install -e docs/example_plugin``, then ``pytest docs/example_plugin``);
invkit's ``tests/test_plugins.py`` runs them too, with the plugin exposed through a ``.dist-info`` folder.
"""

from __future__ import annotations

import invkit
import invkit.testing


def test_classifier_conforms(tmp_path):
    invkit.testing.check_classifier("prototype.mnist", tmp_path)


def test_inverter_conforms(tmp_path):
    clf = invkit.create_classifier("prototype.mnist")
    invkit.testing.check_inverter("prototype_mix.softmax", tmp_path, classifier=clf)


def test_probe_conforms(tmp_path):
    clf = invkit.create_classifier("prototype.mnist")
    inv = invkit.create_inverter("prototype_mix.softmax", classifier=clf)
    result = invkit.testing.check_probe("logit-norm", tmp_path, classifier=clf, inverter=inv, options={"p": 1.0})
    assert result.numbers["p"] == 1.0


def test_options_are_checked_by_invkit(tmp_path):
    """The plugin declares its options (a dataclass each); invkit refuses unknown keys and wrong types for it."""
    import pytest

    clf = invkit.create_classifier("prototype.mnist")
    with pytest.raises(invkit.InputError, match="has no option 'temprature' .did you mean 'temperature'"):
        invkit.create_inverter("prototype_mix.softmax", classifier=clf, temprature=2.0)
    with pytest.raises(invkit.InputError, match="'temperature' must be a finite number"):
        invkit.create_inverter("prototype_mix.softmax", classifier=clf, temperature="hot")
    with pytest.raises(invkit.InputError, match="'p' must be a finite number"):
        invkit.create_probe("logit-norm", p="two")


def test_reconstructions_keep_the_class(tmp_path):
    """What the conformance checks cannot know: this inverter's reconstructions are classified as their source."""
    from invkit.data import load_dataset, take

    images, _ = take(load_dataset("default", "test"), 40, seed=0)
    clf = invkit.create_classifier("prototype.mnist")
    inv = invkit.create_inverter("prototype_mix.softmax", classifier=clf)
    recon = inv.invert(clf.logits(images))
    agreement = (clf.predict(recon) == clf.predict(images)).float().mean()
    assert agreement > 0.8, f"only {agreement:.0%} of reconstructions keep their class"
