"""Small helpers shared by the benchmark scripts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from finetune_prior import cpu_name  # noqa: E402,F401  (re-exported: the CPU of a timed run)


def write_json(path: str | Path, results: dict) -> None:
    """Write `results` to `path` (folders made as needed) through a temporary file, and say so."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")
