"""Spec resolution as library API: a registry name or a checkpoint folder, the same for every caller."""

from __future__ import annotations

from pathlib import Path

import pytest

import invkit
import invkit.testing

DEMO = Path(invkit.__file__).parent / "assets" / "demo"


def test_classifier_from_a_name_and_from_a_folder(tmp_path):
    by_name = invkit.resolve_classifier("smallcnn.base", pretrained=False)
    assert by_name.registry_name == "smallcnn.base"
    by_name.save(tmp_path / "clf")
    by_folder = invkit.resolve_classifier(str(tmp_path / "clf"))
    assert by_folder.registry_name == "smallcnn.base" and by_folder.num_classes == by_name.num_classes


@pytest.mark.parametrize(
    "spec,error,message",
    [
        ("./no/such/folder", invkit.CheckpointError, "does not exist"),  # looks like a path: not "unknown name"
        ("smallcnm.base", invkit.UnknownNameError, "smallcnn"),  # a typo: the closest names
    ],
)
def test_classifier_spec_errors_say_what_is_wrong(spec, error, message):
    with pytest.raises(error, match=message):
        invkit.resolve_classifier(spec)


def test_weights_file_with_a_checkpoint_folder_is_refused():
    with pytest.raises(invkit.InvkitError, match="already holds its weights"):
        invkit.resolve_classifier(str(DEMO / "classifier_standard"), weights="w.safetensors")


def test_inverter_from_a_name_a_folder_or_a_checkpoint(tmp_path):
    clf = invkit.resolve_classifier(str(DEMO / "classifier_standard"))
    fresh = invkit.resolve_inverter("optim.mv15", clf, steps=2)
    assert fresh.registry_name == "optim.mv15" and fresh.config.steps == 2
    folder = str(DEMO / "dbrox_standard")
    as_spec = invkit.resolve_inverter(folder, clf)
    as_checkpoint = invkit.resolve_inverter("dosovitskiy_brox", clf, checkpoint=folder)
    assert as_spec.registry_name == as_checkpoint.registry_name
    assert as_spec.registry_name.startswith("dosovitskiy_brox.")


def test_inverter_checkpoint_mismatches_are_refused(tmp_path):
    clf = invkit.resolve_classifier(str(DEMO / "classifier_standard"))
    folder = str(DEMO / "dbrox_standard")
    with pytest.raises(invkit.CheckpointError, match="holds a dosovitskiy_brox"):
        invkit.resolve_inverter("biggan_proj", clf, checkpoint=folder)
    other = invkit.testing.tiny_classifier(num_classes=7)
    with pytest.raises(invkit.CheckpointError, match="inverts 10 logits but tiny.conformance gives 7"):
        invkit.resolve_inverter(None, other, checkpoint=folder)
    with pytest.raises(invkit.InvkitError, match="give an inverter name"):
        invkit.resolve_inverter(None, clf)
