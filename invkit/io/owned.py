"""What invkit may delete and overwrite in an output folder: only what it provably wrote itself.

Three things mark what is invkit's (docs/guide.md, "Existing output folders and resuming"):

* **Its temporary names.** An atomic write goes to ``.NAME.invkit-PID-XXXXXXXX.tmp`` beside ``NAME`` (``temp_prefix``,
  ``TEMP_SUFFIX``), a checkpoint being written to ``.checkpoint.invkit-PID-XXXXXXXX.tmp/`` (``invkit.io.staged``),
  an ``invkit train`` checkpoint folder to ``checkpoints/.tmp-step_NNNNNN-PID/`` (and ``.old-...`` while it
  replaces one). ``temp_owner`` reads the ``PID`` back from these names only; ``remove_stale_temps`` deletes
  only entries of that naming whose process ``PID`` is gone, in the folder a run holds, never inside a sub-folder
  that holds another run's lock (``LOCK_NAME``) and never through a symbolic link. A user's ``.backup.tmp`` does not
  have that naming, and a live run's temporary file has a live ``PID``: both are left alone.
* **Its list of the files it wrote.** While a command holds ``--out`` (``open_claim``, called by
  ``invkit.io.outputs.claim_output``), every file it writes there is first recorded in ``--out/.invkit-files``
  (``MANIFEST_NAME``: one JSON line per file, the command and the path inside the folder), and ``check_write``,
  called by every atomic write (``invkit.io.files``), the checkpoint writers and the training log, refuses to
  replace a file that is not on that list for the same command. A folder written before invkit kept the list is
  recognised by the command's own record file (``train_config.json``, ``results.json``, ...) and its files are
  adopted once.
* **The inputs of the run.** A file the command was given (an image, a weights file, the files of a classifier
  folder) is never written over, whoever wrote it.

Everything here is plain ``os`` calls; a refusal is one ``OutputError`` line naming the file.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OutputError

TEMP_SUFFIX = ".tmp"  # atomic writes go to .NAME.invkit-PID-XXXXXXXX.tmp beside NAME first
LOCK_NAME = ".invkit.lock"  # held (flock) by the run that writes into the folder
MANIFEST_NAME = ".invkit-files"  # the files invkit wrote into the folder, one JSON line each

# .NAME.invkit-PID-XXXXXXXX.tmp: tempfile's random part is letters, digits and "_"
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.invkit-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp$", re.DOTALL)
# invkit train's checkpoint folders in progress (invkit.training.checkpoints.write_checkpoint)
_CHECKPOINT_TEMP_RE = re.compile(r"^\.(?:tmp|old)-step_\d+-(?P<pid>\d+)$")


def temp_prefix(name: str) -> str:
    """The start of this process' temporary name for ``name`` (``tempfile`` adds 8 random characters and the
    suffix): ``.NAME.invkit-PID-``."""
    return f".{name}.invkit-{os.getpid()}-"


def temp_owner(name: str) -> int | None:
    """The process id in an invkit temporary name, or None when ``name`` is not one (a user's ``.notes.tmp``)."""
    m = _TEMP_RE.match(name) or _CHECKPOINT_TEMP_RE.match(name)
    return int(m.group("pid")) if m else None


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (this process counts as alive; in doubt, alive)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's live process
        return True
    return True


def is_stale_temp(name: str) -> bool:
    """Whether ``name`` is an invkit temporary file or folder whose writer is gone (safe to delete)."""
    pid = temp_owner(name)
    return pid is not None and not pid_alive(pid)


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete what killed invkit writers left in ``folder`` and below: only entries with invkit's temporary naming
    (``temp_owner``) whose process is gone.

    Sub-folders holding a ``LOCK_NAME`` (another run's output folder, live or not) are not entered, nor are
    symbolic links. Only call this on a folder the caller holds (``invkit.io.outputs.claim_output``).

    Returns:
        What was deleted.
    """
    removed: list[Path] = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for here, dirs, files in os.walk(root, followlinks=False):
        base = Path(here)
        keep = []
        for d in dirs:
            p = base / d
            if is_stale_temp(d) and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
                if not p.exists():
                    removed.append(p)
            elif not (p / LOCK_NAME).exists():  # another run's folder: its own run sweeps it
                keep.append(d)
        dirs[:] = keep
        for f in files:
            p = base / f
            if is_stale_temp(f):
                try:
                    p.unlink()
                except OSError:
                    continue
                removed.append(p)
    return removed


def output_error(path: str | os.PathLike, exc: BaseException) -> OutputError:
    """One line for a file that cannot be written, saying why (disk full, read-only, ...) and what to do."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code is None and ("StorageFull" in text or "No space left" in text or "os error 28" in text):
        code = errno.ENOSPC
    if code == errno.ENOSPC:
        why = "the disk is full; free some space or write to another folder"
    elif code == errno.EDQUOT:
        why = "the disk quota is used up; free some space or write to another folder"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "the folder is not writable; choose another output folder or fix its permissions"
    elif code in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        why = "a file stands where a folder should be (or the reverse); choose another output folder"
    else:
        why = f"{getattr(exc, 'strerror', None) or text or type(exc).__name__}; check the output folder"
    return OutputError(f"cannot write '{path}': {why} (files already written are kept).")


# ------------------------------------------------------------------------------------------- the claims
@dataclass
class Claim:
    """An output folder a command holds: what it owns there and which paths are its inputs.

    Attributes:
        folder: the folder, absolute (symbolic links resolved); None when the command writes no folder.
        command: the command (``invkit train``); files are owned per command.
        inputs: the run's input files and folders, absolute.
        input_dirs: those of them that are folders.
        owners: path inside the folder (POSIX form) -> the command that wrote it, from ``MANIFEST_NAME``.
    """

    folder: Path | None
    command: str
    inputs: frozenset[Path] = frozenset()
    input_dirs: tuple[Path, ...] = ()
    owners: dict[str, str] = field(default_factory=dict)

    def owns(self, rel: str) -> bool:
        """Whether this command wrote ``rel`` (or a folder above it, such as a checkpoint folder)."""
        parts = rel.split("/")
        return any(self.owners.get("/".join(parts[:i])) == self.command for i in range(len(parts), 0, -1))

    def record(self, rel: str) -> None:
        """Add ``rel`` to the folder's list before it is written (a kill after the write still finds it listed)."""
        if self.owners.get(rel) == self.command:
            return
        if self.folder is None:
            return
        line = json.dumps({"by": self.command, "path": rel}) + "\n"
        path = self.folder / MANIFEST_NAME
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o666)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise output_error(path, exc) from None
        self.owners[rel] = self.command


_claims: list[Claim] = []


def _absolute(path: str | os.PathLike) -> Path:
    """``path`` made absolute with its folder's symbolic links resolved (the last part is kept: replacing a link
    replaces the link, not what it points to)."""
    p = Path(path).expanduser()
    return p.parent.resolve() / p.name


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _read_manifest(folder: Path) -> dict[str, str] | None:
    path = folder / MANIFEST_NAME
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputError(f"cannot read '{path}': {exc.strerror or exc}; remove it or use another --out.") from None
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(
            f"'{path}' is not a file invkit wrote (it lists invkit's files); remove it or use another --out."
        )
    owners: dict[str, str] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise OutputError(f"cannot read '{path}': {exc.strerror or exc}; remove it or use another --out.") from None
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: a line nested thousands deep, not invkit's
            continue  # a line cut short by a kill: its file was not written yet either
        if isinstance(entry, dict) and isinstance(entry.get("by"), str) and isinstance(entry.get("path"), str):
            owners[entry["path"]] = entry["by"]
    return owners


def _existing_entries(folder: Path, inputs: frozenset[Path], input_dirs: tuple[Path, ...]) -> list[str]:
    """What ``folder`` holds, POSIX relative: its files, and its sub-folders whole where no input lies in them
    (never an input, a temporary entry, another run's locked folder or a symbolic link's target)."""
    found = []
    for here, dirs, files in os.walk(folder, followlinks=False):
        base = Path(here)
        descend = []
        for d in dirs:
            p = base / d
            if temp_owner(d) is not None or p.is_symlink() or (p / LOCK_NAME).exists():
                continue
            if p in inputs or any(_is_within(p, i) for i in input_dirs):
                continue  # an input folder, or inside one
            if any(_is_within(i, p) for i in inputs):
                descend.append(d)  # an input lies inside: adopt around it
            else:
                found.append(p.relative_to(folder).as_posix())  # the folder whole (a checkpoint folder, ...)
        dirs[:] = descend
        for f in files:
            p = base / f
            if f in (LOCK_NAME, MANIFEST_NAME) or temp_owner(f) is not None:
                continue
            if p in inputs or any(_is_within(p, i) for i in input_dirs):
                continue
            found.append(p.relative_to(folder).as_posix())
    return found


def open_claim(
    folder: str | os.PathLike | None,
    command: str,
    inputs: Iterable[str | os.PathLike] = (),
    records: Iterable[str] = (),
) -> Claim:
    """Start guarding the writes of ``command`` into ``folder`` (the caller holds its lock); ``close_claim`` ends it.

    Args:
        folder: the output folder (exists); None for a command that writes no folder (only its inputs are
            guarded, e.g. ``convert-weights SRC DST``).
        command: the command, as files are recorded and named in messages (``invkit train``).
        inputs: the run's input files and folders; none of them, and no file in them that this command did not
            write, is ever written over.
        records: glob patterns of the file(s) an earlier run of ``command`` leaves in its folder
            (``train_config.json``); a folder that has one but no ``MANIFEST_NAME`` (written by an invkit that kept
            no list) has its files adopted as this command's.

    Raises:
        OutputError: the folder's list cannot be read or written.
    """
    ins = frozenset(Path(i).expanduser().resolve() for i in inputs)
    dirs = tuple(i for i in ins if i.is_dir())
    if folder is None:
        claim = Claim(None, command, ins, dirs)
        _claims.append(claim)
        return claim
    root = Path(folder).expanduser().resolve()
    owners = _read_manifest(root)
    claim = Claim(root, command, ins, dirs, owners or {})
    if owners is None and any(any(root.glob(pattern)) for pattern in records):
        for rel in _existing_entries(root, ins, dirs):
            claim.record(rel)
    _claims.append(claim)
    return claim


def close_claim(claim: Claim) -> None:
    if claim in _claims:
        _claims.remove(claim)


def _verdict(path: str | os.PathLike) -> tuple[str | None, Claim | None, str]:
    """(why ``path`` may not be written, or None; the claim it falls under; its path inside that claim)."""
    p = _absolute(path)
    for claim in _claims:
        if p in claim.inputs:
            return f"'{p}' is an input of this {claim.command} run and invkit never writes over its inputs", claim, ""
    inner = [c for c in _claims if c.folder is not None and _is_within(p, c.folder) and p != c.folder]
    claim = max(inner, key=lambda c: len(c.folder.parts)) if inner else None  # type: ignore[union-attr]
    rel = ""
    if claim is not None and claim.folder is not None:
        parts = p.relative_to(claim.folder).parts
        if parts[0] in (LOCK_NAME, MANIFEST_NAME) or any(temp_owner(part) is not None for part in parts):
            return None, None, ""  # invkit's own temporary files and folders
        rel = "/".join(parts)
        if claim.owns(rel):
            return None, claim, rel
    if not os.path.lexists(p):
        return None, claim, rel
    for c in _claims:
        if any(_is_within(p, i) for i in c.input_dirs):
            why = "was not written by it and invkit writes over no file it did not create"
            return f"'{p}' is in an input folder of this {c.command} run, {why}", c, ""
    if claim is None:
        return None, None, ""
    by = claim.owners.get(rel)
    if by is not None:
        return f"'{p}' was written by {by}, not by {claim.command}, which writes over no other file", claim, rel
    return f"'{p}' was not written by {claim.command} and invkit writes over no file it did not create", claim, rel


def may_write(path: str | os.PathLike) -> bool:
    """Whether the running command may create or replace ``path`` (see ``check_write``); True outside any claim."""
    return _verdict(path)[0] is None


def check_write(path: str | os.PathLike) -> None:
    """Refuse to write ``path`` unless it is new or this command wrote it; record a new one as the command's.

    Called right before ``path`` (a file, or a folder about to be renamed into place) is created or replaced.
    Outside every claimed folder (library use) only the claims' inputs are protected.

    Raises:
        OutputError: ``path`` is an input of the run, lies in an input folder and was not written by the command,
            or is an existing file of the output folder the command did not write (one line saying what to do);
            nothing is written.
    """
    why, claim, rel = _verdict(path)
    if why is not None:
        raise OutputError(f"{why}; move that file away or write the output elsewhere (it was not changed).")
    if claim is not None and rel:
        claim.record(rel)
