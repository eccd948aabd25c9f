"""Plumbing that every layer uses and that knows nothing of images, classifiers or inverters.

* ``config``: ``check_options`` (options by name: unknown keys with the closest names, then the values) and
  ``check_fields``, the one check of option and config values (types, finiteness, signs) against a dataclass's
  annotations.
* ``progress``: ``Progress`` events and the ``ProgressCallback`` type; the library reports through a callback and
  only ``invkit.cli`` draws bars.
* ``memory``: a lower bound on what a training configuration needs in memory, checked before the first step.
"""

from __future__ import annotations

from .config import check_fields, check_options
from .progress import Progress, ProgressCallback, no_progress

__all__ = ["Progress", "ProgressCallback", "check_fields", "check_options", "no_progress"]
