"""mkdocs hook (mkdocs.yml, ``hooks:``): links from docs pages to repository files that the site does not hold.

The pages in docs/ are read in the repository too, where they link to source files, tests and benchmark results
outside docs/, and to the example plugin, which the site leaves out (``tests/test_docs.py`` checks that every
such target exists). The site has no copy of them, so such a link would be dead there. This hook replaces each one
with the file's path in the repository, as code, before mkdocs validates the page's links: a link to a missing
file, or to a missing page inside the site, is left alone and still fails ``mkdocs build --strict``.
"""

from __future__ import annotations

import os
import re
from typing import Any

# [text](target) or [text](target#anchor), with no scheme (http:, mailto:) and no spaces: the links
# tests/test_docs.py checks.
_LINK = re.compile(r"\[(?P<text>[^\]]*)\]\((?P<target>[^)#:\s]+)(?P<anchor>#[^)\s]*)?\)")


def _repo_path(target: str, page_src: str, docs_dir: str, repo_dir: str, files: Any) -> str | None:
    """The target's path relative to the repository if it exists there but is not a file of the site, else None."""
    path = os.path.normpath(os.path.join(docs_dir, os.path.dirname(page_src), target))
    if not os.path.exists(path):
        return None  # a broken link: mkdocs reports it
    in_docs = os.path.relpath(path, docs_dir).replace(os.sep, "/")
    site_file = None if in_docs.startswith("..") else files.get_file_from_path(in_docs)
    if site_file is not None and not site_file.inclusion.is_excluded():
        return None  # a page or file of the site: mkdocs resolves the link
    rel = os.path.relpath(path, repo_dir).replace(os.sep, "/")
    return rel + ("/" if os.path.isdir(path) else "")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace links to repository files the site does not hold by ``text (`path` in the repository)``."""
    docs_dir = os.path.abspath(config["docs_dir"])
    repo_dir = os.path.dirname(os.path.abspath(config["config_file_path"]))

    def replace(match: re.Match[str]) -> str:
        rel = _repo_path(match["target"], page.file.src_uri, docs_dir, repo_dir, files)
        if rel is None:
            return match[0]
        text = match["text"]
        return f"`{rel}`" if text.strip("`") == rel.rstrip("/") else f"{text} (`{rel}` in the repository)"

    return _LINK.sub(replace, markdown)
