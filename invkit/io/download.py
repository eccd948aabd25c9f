"""Opt-in download of the published weights invkit's metrics use, into the cache where their library looks.

invkit is offline-first: a metric whose network is not on disk is reported as unavailable, with the file to fetch
and where to put it; it is never computed with random weights. This module adds one way to fetch those files, and
only when asked: ``invkit download NAME``, ``--download`` on ``invkit bench`` / ``invkit probe``, or the
environment variable ``INVKIT_DOWNLOAD=1`` (``download_allowed``). Each file of ``KNOWN_FILES`` is fetched from
its published URL with ``torch.hub.download_url_to_file`` into a temporary file beside its place in the cache,
its SHA-256 checked against the published digest, then renamed into place; a file with another digest is deleted
and nothing is left behind.

The files (docs/bench.md, "Published weights"):

* ``lpips-alex``, ``lpips-vgg``: torchvision's ImageNet AlexNet and VGG-16, the backbones of LPIPS (Zhang et al.
  2018), which the ``lpips`` package loads through torchvision and ``torch.hub.load_state_dict_from_url``.
* ``inception``: the FID Inception-V3 (the TensorFlow ``inception-2015-12-05`` graph ported to PyTorch), which
  torchmetrics' ``FrechetInceptionDistance`` loads through torch-fidelity's ``FeatureExtractorInceptionV3``
  (``URL_INCEPTION_V3`` in ``torch_fidelity/feature_extractor_inceptionv3.py``), again through torch.hub.

All three live in ``<torch.hub.get_dir()>/checkpoints/<file name>`` (``$TORCH_HOME/hub/checkpoints``, by default
``~/.cache/torch/hub/checkpoints``): the file name is the URL's last part, as ``load_state_dict_from_url`` names
it. The publishers put the first 8 hex digits of each file's SHA-256 in its name (what torch.hub's ``check_hash``
verifies); the full digests and sizes below are those that many independent public projects pinning these files
record, and agree with those prefixes.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import tempfile
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DownloadError, InputError, WeightsNotFoundError, short_message
from .files import fsync_dir, make_dirs
from .owned import TEMP_SUFFIX, check_write, output_error, temp_prefix

DOWNLOAD_ENV = "INVKIT_DOWNLOAD"  # set to 1 (or true/yes/on) to let every command fetch the files it needs
_ON = ("1", "true", "yes", "on")
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)  # the cache cannot be written


@dataclass(frozen=True)
class KnownFile:
    """A published weights file invkit can fetch: where from, what it must hash to and where its library looks."""

    name: str  # invkit's name for it (`invkit download NAME`)
    filename: str  # the URL's last part: the name torch.hub caches it under
    url: str  # the published URL
    sha256: str  # the full SHA-256 (lower-case hex); its first 8 digits are the prefix in ``filename``
    size: int  # bytes
    used_by: str  # what loads it, from the cache path below

    def path(self) -> Path:
        """Where the consumer looks for it: ``<torch.hub.get_dir()>/checkpoints/<filename>``."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.filename


KNOWN_FILES: dict[str, KnownFile] = {
    f.name: f
    for f in (
        KnownFile(
            "lpips-alex",
            "alexnet-owt-7be5be79.pth",
            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
            244_408_911,
            "LPIPS net='alex' (lpips -> torchvision AlexNet_Weights.IMAGENET1K_V1)",
        ),
        KnownFile(
            "lpips-vgg",
            "vgg16-397923af.pth",
            "https://download.pytorch.org/models/vgg16-397923af.pth",
            "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
            553_433_881,
            "LPIPS net='vgg' (lpips -> torchvision VGG16_Weights.IMAGENET1K_V1)",
        ),
        KnownFile(
            "inception",
            "weights-inception-2015-12-05-6726825d.pth",
            "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
            "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
            95_628_359,
            "standard FID/KID (torchmetrics -> torch-fidelity FeatureExtractorInceptionV3)",
        ),
    )
}

_digests: dict[str, str] = {}  # "path:size:mtime" -> SHA-256, so a file is hashed once per process


def known_file(name: str) -> KnownFile:
    """The entry of ``KNOWN_FILES`` called ``name``.

    Raises:
        InputError: no such entry (the message lists the known names).
    """
    if name not in KNOWN_FILES:
        raise InputError(f"unknown weights file '{name}'; invkit knows {', '.join(KNOWN_FILES)}.")
    return KNOWN_FILES[name]


def download_allowed(flag: bool = False) -> bool:
    """Whether a download may happen: ``flag`` (a command's ``--download``) or ``INVKIT_DOWNLOAD`` set to 1, true,
    yes or on (any case). Anything else, or unset, means offline."""
    return bool(flag) or os.environ.get(DOWNLOAD_ENV, "").strip().lower() in _ON


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file (hex), computed once per process for a given path, size and modification time.

    Raises:
        OSError: the file cannot be read.
    """
    st = os.stat(path)
    key = f"{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}"
    if key not in _digests:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _digests[key] = h.hexdigest()
    return _digests[key]


def file_matches(path: str | os.PathLike, known: KnownFile) -> bool:
    """Whether ``path`` is ``known``'s file: its size and full SHA-256 are the published ones."""
    try:
        return os.stat(path).st_size == known.size and sha256_of(path) == known.sha256
    except OSError:
        return False


def _by_hand(known: KnownFile) -> str:
    return f"download {known.url} and place it at {known.path()}"


def weights_status(name: str) -> tuple[bool, str]:
    """Whether a known weights file is in its cache with its published SHA-256, and one line saying so or what to do.

    Looks at the local file system only; never touches the network.

    Args:
        name: a key of ``KNOWN_FILES`` (``lpips-alex``, ``lpips-vgg``, ``inception``).

    Returns:
        ``(True, "<file> at <path>")`` when present and whole; else ``(False, reason)``, the reason naming
        ``invkit download NAME``, ``--download`` / ``INVKIT_DOWNLOAD=1``, the URL and the path to place it at.

    Raises:
        InputError: ``name`` is not a known file.
    """
    known = known_file(name)
    path = known.path()
    if not path.exists():
        return False, (
            f"{known.filename} is not in the torch hub cache; run `invkit download {name}` (or pass --download, or "
            f"set {DOWNLOAD_ENV}=1), or {_by_hand(known)}"
        )
    if not file_matches(path, known):
        return False, (
            f"{path} does not have the published SHA-256 (corrupt, truncated or a different file); move it away and "
            f"run `invkit download {name}`, or replace it with {known.url}"
        )
    return True, f"{known.filename} at {path}"


def fetch(name: str, allowed: bool = False, progress: bool = True) -> Path:
    """Download a known weights file into its cache path, checked; a file already there and whole is kept as is.

    The file is fetched by ``torch.hub.download_url_to_file`` into a temporary file beside its place
    (``.NAME.invkit-PID-XXXXXXXX.tmp``, ``invkit.io.owned``), its size and SHA-256 compared with the published
    ones, then renamed into place; on any failure the temporary file is deleted and the cache is as before.

    Args:
        name: a key of ``KNOWN_FILES``.
        allowed: the caller's permission (``--download``; ``invkit download`` passes True). Without it the
            download happens only when ``INVKIT_DOWNLOAD=1`` is set (``download_allowed``).
        progress: show torch.hub's progress bar on stderr.

    Returns:
        The file's path, ``KNOWN_FILES[name].path()``.

    Raises:
        InputError: ``name`` is not a known file.
        WeightsNotFoundError: the file is missing and downloading is not allowed.
        DownloadError: the server cannot be reached or answers with an error, the file downloaded does not have the
            published SHA-256 (it is deleted), or a file with another digest already stands at the path (it is kept).
        OutputError: the cache folder cannot be written (disk full, read-only).
    """
    known = known_file(name)
    path = known.path()
    if path.exists():
        if file_matches(path, known):
            return path
        raise DownloadError(
            f"{path} exists but does not have the published SHA-256 of {name}; move it away (invkit does not "
            f"overwrite it) and run again, or replace it with {known.url}."
        )
    if not download_allowed(allowed):
        raise WeightsNotFoundError(
            f"{known.filename} ({name}) is not in the torch hub cache and downloading is off; pass --download, set "
            f"{DOWNLOAD_ENV}=1 or run `invkit download {name}`, or {_by_hand(known)}."
        )
    make_dirs(path.parent)
    check_write(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(known.filename), suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    os.close(fd)
    try:
        _download(known, tmp, progress)
        digest = sha256_of(tmp)
        if digest != known.sha256:
            raise DownloadError(
                f"the file downloaded from {known.url} has SHA-256 {digest[:16]}..., not the published "
                f"{known.sha256[:16]}...; it was deleted. Try again later, or {_by_hand(known)}."
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def _download(known: KnownFile, tmp: str, progress: bool) -> None:
    """``torch.hub.download_url_to_file`` into ``tmp``, its failures as one line (DownloadError or OutputError)."""
    try:
        torch.hub.download_url_to_file(known.url, tmp, hash_prefix=None, progress=progress)
    except urllib.error.HTTPError as exc:
        reason = f"the server answered {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        reason = f"cannot reach the server: {short_message(str(exc.reason))}"
    except (http.client.HTTPException, ConnectionError, TimeoutError) as exc:
        reason = f"the connection failed: {short_message(exc)}"
    except OSError as exc:
        if getattr(exc, "errno", None) in _WRITE_ERRNOS:
            raise output_error(known.path(), exc) from None
        reason = short_message(exc)
    else:
        return
    raise DownloadError(
        f"cannot download {known.name} from {known.url} ({reason}); if this machine is offline, {_by_hand(known)}."
    )


def ensure_weights(name: str, allowed: bool = False, progress: bool = True) -> tuple[bool, str]:
    """``weights_status``, after fetching the file first when it is missing and a download is allowed.

    What a metric calls before it needs a file: offline (the default) it only looks; with ``allowed`` (a command's
    ``--download``) or ``INVKIT_DOWNLOAD=1`` a missing file is downloaded (``fetch``).

    Args:
        name: a key of ``KNOWN_FILES``.
        allowed: the caller's permission to download (``--download``).
        progress: show torch.hub's progress bar on stderr while downloading.

    Returns:
        ``(present, message)`` as ``weights_status``.

    Raises:
        InputError: ``name`` is not a known file.
        DownloadError: a download was allowed and failed (see ``fetch``), or a file with another digest stands at
            the path.
        OutputError: the cache folder cannot be written.
    """
    known = known_file(name)
    if download_allowed(allowed) and not file_matches(known.path(), known):
        fetch(name, allowed=True, progress=progress)
    return weights_status(name)
