"""Reading back the files invkit wrote, with their shape checked at the point of reading.

A file in an output or checkpoint folder may have been edited, truncated, replaced by another program's file or
by something that is not a file at all. Every reader of such a file goes through here, so that each of those
ends in one line naming the file (and the field) instead of a traceback where the value is first used:

* ``check_file`` — the path is a regular file (not missing, not a folder, FIFO, device or socket: reading a
  FIFO or ``/dev/zero`` would wait or read forever).
* ``read_json`` — ``check_file``, then UTF-8, then JSON (``json``, the standard library's parser), nested no
  deeper than ``MAX_DEPTH`` (a document nested 100,000 deep would end in a ``RecursionError``), then
  ``check_shape``.
* ``parse_json`` — the same for JSON text stored inside another file (safetensors metadata).
* ``check_shape`` — the types of the fields a caller uses, against a small schema:

  - a type or a tuple of types: ``str``, ``int`` (a whole number, never ``true``/``false``), ``float`` (any
    number), ``bool``, ``dict`` (a JSON object), ``list`` (an array), ``None`` (``null``), or ``ANY``;
  - a dict ``{"key": schema, ...}``: a JSON object whose listed keys, where present, match their schema (wrap a
    schema in ``Required`` for a key that must be there); other keys are not checked;
  - a list ``[schema]``: an array whose every item matches ``schema``.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvkitError

MAX_DEPTH = 100  # invkit's own files nest at most ~20 deep (an optimizer state in a training state's tree)
ANY = object()  # a schema that accepts any value
_TOO_DEEP = object()


@dataclass(frozen=True)
class Required:
    """A key of a ``dict`` schema that must be present, with the schema its value must match."""

    schema: Any


def _kind(mode: int) -> str | None:
    """What a file that is not a regular file is, in words (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def check_file(path: str | os.PathLike, what: str, error: type[InvkitError] = InvkitError, remedy: str = "") -> Path:
    """Make sure ``path`` is a regular file (symlinks followed) before anything opens it.

    Args:
        path: the file.
        what: what it is, starting the message (``"weights file"``, ``"results file"``).
        error: the ``InvkitError`` subclass to raise.
        remedy: what to do, ending the message (``"pass the weights file itself"``).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        error: ``path`` does not exist or cannot be looked at, or is a folder, FIFO, socket or device; one line.
    """
    path = Path(path)
    tail = f"; {remedy}" if remedy else ""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise error(f"{what} '{path}' does not exist{tail}.") from None
    except OSError as exc:  # a symlink loop, a name too long, no permission to look
        raise error(f"cannot read {what} '{path}' ({exc.strerror or exc}){tail}.") from None
    kind = _kind(mode)
    if kind is not None:
        raise error(f"{what} '{path}' is {kind}, not a file{tail}.")
    return path


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value[:30]!r})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_TYPE_WORDS = {
    str: "a string",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    dict: "a JSON object",
    list: "an array",
    type(None): "null",
}


def _matches_type(value: Any, kind: Any) -> bool:
    if kind is None or kind is type(None):
        return value is None
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, kind)


def _expected(schema: Any) -> str:
    if isinstance(schema, Required):
        return _expected(schema.schema)
    if isinstance(schema, Mapping):
        return "a JSON object"
    if isinstance(schema, list):
        return "an array"
    kinds = schema if isinstance(schema, tuple) else (schema,)
    words = [_TYPE_WORDS.get(k if k is not None else type(None), getattr(k, "__name__", str(k))) for k in kinds]
    return " or ".join(words)


class _Mismatch(Exception):
    def __init__(self, at: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.at, self.message = at, message

    def __str__(self) -> str:
        """The field and what is wrong: ``'num_classes' must be ... (at config.num_classes)``."""
        if not self.at:
            return f"the document {self.message}"
        *parents, last = self.at
        name = f"'{last}'" if isinstance(last, str) else f"item {last} of '{parents[-1] if parents else ''}'"
        if isinstance(last, int):
            parents = parents[:-1]
        if not parents:
            return f"{name} {self.message}"
        dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.at).lstrip(".")
        return f"{name} {self.message} (at {dotted})"


def _check(value: Any, schema: Any, at: tuple[str | int, ...]) -> None:
    if schema is ANY:
        return
    if isinstance(schema, Required):
        schema = schema.schema
    if isinstance(schema, Mapping):
        if not isinstance(value, dict):
            raise _Mismatch(at, f"must be a JSON object, not {_json_type(value)}")
        for key, sub in schema.items():
            if key in value:
                _check(value[key], sub, (*at, key))
            elif isinstance(sub, Required):
                raise _Mismatch(at, f"lacks '{key}'")
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise _Mismatch(at, f"must be an array, not {_json_type(value)}")
        for i, item in enumerate(value):
            _check(item, schema[0], (*at, i))
        return
    kinds = schema if isinstance(schema, tuple) else (schema,)
    if not any(_matches_type(value, k) for k in kinds):
        raise _Mismatch(at, f"must be {_expected(schema)}, not {_json_type(value)}")


def check_shape(
    doc: Any, schema: Any, where: str | os.PathLike, error: type[InvkitError] = InvkitError, remedy: str = ""
) -> Any:
    """Check the types of the fields of a parsed JSON document against ``schema`` (see the module docstring).

    Args:
        doc: the parsed document.
        schema: what it must look like.
        where: the file (or the place in a file) it came from, starting the message.
        error: the ``InvkitError`` subclass to raise.
        remedy: what to do, ending the message.

    Returns:
        ``doc``, unchanged.

    Raises:
        error: the first field that does not match, named with where it is (``'key' must be a string, not a
            number (1) (at results[0].key)``); one line.
    """
    try:
        _check(doc, schema, ())
    except _Mismatch as m:
        tail = f"; {remedy}" if remedy else ""
        raise error(f"'{where}': {m}{tail}.") from None
    return doc


def _depth(doc: Any) -> int:
    """How deeply ``doc`` nests (0 for a scalar), found without recursion."""
    deepest, stack = 0, [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return deepest


def parse_json(
    text: str | bytes,
    schema: Any,
    where: str | os.PathLike,
    error: type[InvkitError] = InvkitError,
    remedy: str = "",
) -> Any:
    """Parse JSON text (UTF-8 when bytes) and check its shape; the errors of ``read_json`` without the file checks.

    Raises:
        error: the text is not UTF-8, not JSON, nested deeper than ``MAX_DEPTH``, or of another shape; one line.
    """
    tail = f"; {remedy}" if remedy else ""
    try:
        doc = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except UnicodeDecodeError:
        raise error(f"'{where}' is not UTF-8 text, so not JSON invkit wrote{tail}.") from None
    except json.JSONDecodeError as exc:
        raise error(f"'{where}' is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}){tail}.") from None
    except RecursionError:  # the parser's own recursion: a document nested thousands deep
        doc = _TOO_DEEP
    if doc is _TOO_DEEP or _depth(doc) > MAX_DEPTH:
        raise error(f"'{where}' is JSON nested deeper than invkit ever writes (over {MAX_DEPTH} levels){tail}.")
    return check_shape(doc, schema, where, error, remedy)


def read_json(
    path: str | os.PathLike, schema: Any, what: str, error: type[InvkitError] = InvkitError, remedy: str = ""
) -> Any:
    """Read a JSON file invkit wrote, checked: a regular file, UTF-8, JSON, not too deep, of the expected shape.

    Args:
        path: the file.
        schema: the fields the caller uses and their types (see the module docstring); ``ANY`` checks nothing.
        what: what the file is, for the message (``"results file"``).
        error: the ``InvkitError`` subclass to raise.
        remedy: what to do, ending each message (``"move it away or use another --out"``).

    Returns:
        The parsed document.

    Raises:
        error: ``path`` is missing, not a regular file (``check_file``) or unreadable, or its text is not UTF-8,
            not JSON, nested deeper than ``MAX_DEPTH`` or of another shape (``check_shape``); one line naming
            the file and, for a shape, the field.
    """
    path = check_file(path, what, error, remedy)
    try:
        data = path.read_bytes()
    except OSError as exc:
        tail = f"; {remedy}" if remedy else ""
        raise error(f"cannot read {what} '{path}' ({exc.strerror or exc}){tail}.") from None
    return parse_json(data, schema, path, error, remedy)


def try_read_json(path: str | os.PathLike, schema: Any = ANY) -> Any | None:
    """``read_json`` for files that are only shown (reports): the document, or None when it cannot be used."""
    try:
        return read_json(path, schema, "file")
    except InvkitError:
        return None
