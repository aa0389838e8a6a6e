"""A transformers wheel with only the model families that the GPU check loads, small enough to carry.

    python benchmarks/gpu/slim_wheel.py wheels/transformers-5.24.0-py3-none-any.whl

A GPU machine that can install nothing may have another transformers than the one pinned here
(whose API the scripts use); the full wheel (14 MB, 560 model families) does not fit beside the
other wheels in what such a machine is sent, so `make gpu-wheels` rewrites it in place with the
families in KEEP: llama (SmolLM2 and the random-weight LLMs), and what transformers and peft
import on the way (auto, bloom, encoder_decoder). The rest of the package is unchanged.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

KEEP = {"auto", "bloom", "encoder_decoder", "llama"}


def kept(name: str) -> bool:
    parts = name.split("/")
    return not (len(parts) > 3 and parts[:2] == ["transformers", "models"] and parts[2] not in KEEP)


def main(wheel: Path) -> None:
    slim = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        for item in source.infolist():
            if item.filename.endswith(".dist-info/RECORD"):  # the hashes of the dropped files: an empty record instead
                out.writestr(item.filename, "")
            elif kept(item.filename):
                out.writestr(item, source.read(item))
    before, after = wheel.stat().st_size, slim.stat().st_size
    slim.replace(wheel)
    print(f"{wheel}: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB (model families kept: {', '.join(sorted(KEEP))})")


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_file():
        raise SystemExit("usage: python benchmarks/gpu/slim_wheel.py TRANSFORMERS_WHEEL (an existing file)")
    main(Path(sys.argv[1]))
