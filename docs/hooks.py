"""mkdocs hook: links from the pages to files of the repository outside docs/.

The pages link to the scripts they describe, e.g. `[L121–L139](../lago_clevr_discrete.py#L121-L139)` in method.md:
such a link works on GitHub and in site/ opened from the checkout (site/method.html, ../lago_clevr_discrete.py), but
mkdocs, which copies only docs/, reports it as a broken link and `mkdocs build --strict` fails. This hook lowers that
report to DEBUG where the link's file exists in the repository; a link to a file that exists nowhere still fails.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOT_FOUND = re.compile(r"Doc file '(?P<page>[^']+)' contains a link '(?P<path>[^'#?]*)[^']*', "
                       r"but the target '[^']*' is not found among documentation files")


class RepositoryLinks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        match = NOT_FOUND.match(record.getMessage())
        if match and record.levelno > logging.INFO:
            target = ((DOCS / match["page"]).parent / match["path"]).resolve()
            if target.is_relative_to(ROOT) and not target.is_relative_to(DOCS) and target.is_file():
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def on_startup(command: str, dirty: bool) -> None:
    logging.getLogger("mkdocs.structure.pages").addFilter(RepositoryLinks())
