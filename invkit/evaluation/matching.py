"""Which inverter checkpoint each (classifier, inverter) pair of a bench run uses, decided before anything runs.

``--checkpoint`` folders (an ``invkit train`` run folder stands for its newest checkpoint:
``invkit.io.checkpoint.checkpoint_folder``, the rule every command shares)
are matched to pairs by inverter name and logit size and, when several fit, by the classifier their ``config.json``
records (``invkit.core.provenance``); a learned inverter with no fitting checkpoint is trained by the run or
refused. ``CheckpointMatching`` holds these steps as methods of ``Bench`` (its base class): they read the run's
settings, classifiers and checkpoint documents and name classifiers by ``Bench.label``. A change to how
checkpoints are matched to pairs goes here.
"""

from __future__ import annotations

from typing import Any

from ..core.classifier import Classifier
from ..core.provenance import _identity_matches, recorded_classifier
from ..errors import CheckpointError, InvkitError
from .settings import BenchSettings, Pair


class CheckpointMatching:
    """The plan of a bench run: every pair with its checkpoint, or trained, or built fresh (a base of ``Bench``).

    Uses the ``Bench`` attributes declared here and its ``label`` and ``_options`` methods.
    """

    settings: BenchSettings
    classifiers: dict[str, Classifier]
    checkpoint_docs: dict[str, dict[str, Any]]  # --checkpoint folder -> its config.json

    def _plan(self) -> list[Pair]:
        """Every (classifier, inverter) pair with its checkpoint; raise before anything runs when one is missing."""
        from ..core.plugins import get_registry

        registry = get_registry("inverter")
        used: set[str] = set()
        pairs = []
        for spec, clf in self.classifiers.items():
            for inv_name in self.settings.inverters:
                base = registry.resolve(inv_name).base
                ckpt = self.settings.checkpoint_map.get(f"{spec}|{base}") or self._match(spec, clf, inv_name)
                train = False
                if ckpt is None and self._is_learned(inv_name, clf):
                    if self.settings.train_steps <= 0:
                        raise CheckpointError(
                            f"{inv_name} is a learned inverter and no checkpoint fits {self.label(spec)} "
                            f"({clf.num_classes} logits): pass --checkpoint DIR (trained with `invkit train "
                            f"--classifier {spec} --inverter {inv_name}`) or --train-steps N to train it here."
                        )
                    train = True
                if ckpt is not None:
                    used.add(ckpt)
                    if self._options(inv_name):  # a checkpoint keeps its own settings: the option would be ignored
                        raise InvkitError(
                            f"--option {inv_name.split('.')[0]}:{', '.join(sorted(self._options(inv_name)))} is for "
                            f"an inverter built fresh; checkpoint '{ckpt}' keeps the settings it was trained with."
                        )
                pairs.append(Pair(spec, self.label(spec), inv_name, ckpt, train))
        unused = [c for c in self.settings.checkpoints if c not in used]
        if unused:
            doc = self.checkpoint_docs[unused[0]]
            rec = recorded_classifier(doc)
            trained_for = f", trained for {rec.get('path') or rec.get('relpath') or rec.get('name')}" if rec else ""
            raise CheckpointError(
                f"checkpoint '{unused[0]}' ({doc['name']}, {doc.get('config', {}).get('num_classes')} logits"
                f"{trained_for}) fits none of the (classifier, inverter) pairs; check --classifier/--inverter or "
                "drop it."
            )
        return pairs

    def _match(self, spec: str, clf: Classifier, inv_name: str) -> str | None:
        """The --checkpoint folder for this pair: same inverter name and logit size; when several fit, the
        one whose config.json records this classifier (see ``recorded_classifier``)."""
        base = inv_name.split(".")[0]
        fits = []
        for path, doc in self.checkpoint_docs.items():
            if doc["name"].split(".")[0] != base or "." in inv_name and doc["name"] != inv_name:
                continue
            if int(doc.get("config", {}).get("num_classes", -1)) != _input_width(clf, doc.get("layer")):
                continue
            fits.append((path, recorded_classifier(doc)))
        if not fits:
            return None
        same = [p for p, rec in fits if rec and _identity_matches(rec, spec, clf)]
        unknown = [p for p, rec in fits if not rec]
        if len(same) == 1:
            return same[0]
        sharing = [c for c in self.classifiers.values() if c.num_classes == clf.num_classes]
        if not same and len(unknown) == 1 and len(sharing) == 1:
            return unknown[0]  # the only classifier it can be for
        if not same and not unknown:
            return None  # every fitting checkpoint records another classifier
        candidates = same or unknown
        raise CheckpointError(
            f"cannot tell which of {', '.join(candidates)} is the {inv_name} for {self.label(spec)}: their "
            "config.json does not record the classifier; bench one classifier at a time."
        )

    def _check_observations(self) -> None:
        """Refuse, before anything runs, a ``--channel``/``--layer`` other than what a pair's checkpoint was trained
        on (one line naming both), and a channel spec or layer a classifier cannot give (the same check that
        ``resolve_inverter`` makes when the pair runs: ``invkit.core.observation.choose_observation``)."""
        from ..core.channels import create_channel
        from ..core.observation import describe, layer_width
        from ..io.checkpoint import read_checkpoint_config

        s = self.settings
        if s.channel is not None and s.layer is not None:
            raise InvkitError(
                f"--channel {s.channel} and --layer {s.layer} are exclusive: an inverter sees a channel of the logits "
                "or one layer's activations, not both; give one."
            )
        for clf in self.classifiers.values():
            if s.channel is not None:
                create_channel(s.channel, num_classes=clf.num_classes)  # unknown name, K above the classes, ...
            if s.layer is not None:
                layer_width(clf, s.layer)  # a layer it does not have: the nearest names
        if s.channel is None and s.layer is None:
            return
        asked = (create_channel(s.channel).spec if s.channel is not None else "logits", s.layer)
        for pair in self.pairs:
            if pair.checkpoint is None:
                continue
            doc = self.checkpoint_docs.get(pair.checkpoint) or read_checkpoint_config(pair.checkpoint, kind="inverter")
            own = (doc.get("channel") or "logits", doc.get("layer") or None)
            if (create_channel(own[0]).spec, own[1]) != asked:
                raise InvkitError(
                    f"checkpoint '{pair.checkpoint}' was trained on {describe(*own)}, not {describe(*asked)}; drop "
                    f"--channel/--layer (each checkpoint's own is the default) or pass checkpoints trained on "
                    f"{describe(*asked)}."
                )

    def _is_learned(self, inv_name: str, clf: Classifier) -> bool:
        from ..core.resolve import is_learned

        return is_learned(inv_name, clf, self._options(inv_name))  # Inverter.trainable, read as resolve reads it


def _input_width(clf: Classifier, layer: str | None) -> int:
    """The input width of an inverter for ``clf``: its logits, or ``layer``'s pooled width (-2: no such layer, so
    that no checkpoint conditioned on it matches this classifier)."""
    if not layer:
        return clf.num_classes
    from ..core.observation import layer_width
    from ..errors import InputError

    try:
        return layer_width(clf, layer)
    except InputError:
        return -2
