"""Small helpers shared by the benchmark scripts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lago_utils.device import cpu_name  # noqa: E402,F401  (re-exported: the CPU of a timed run)


def write_json(path: str | Path, results: dict) -> None:
    """Write `results` to `path` (folders made as needed) through a temporary file, and say so."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")


# a run's recorded args that say where or how it ran or what it logged, or follow from the others, not what it
# computed (async_envs steps the same episodes; the tests check it)
NOT_SETTINGS = frozenset({"run_dir", "overwrite", "cuda", "prior_device", "device", "json",
                          "batch_size", "minibatch_size", "num_iterations", "async_envs",
                          "track", "wandb_project_name", "wandb_entity", "capture_video", "save_model"})
PER_RUN = frozenset({"seed", "env_id", "task", "tasks"})  # what tells apart the runs of one method


class SummaryError(ValueError):
    """A run's summary.json (or its archived copy) that is no run's summary: truncated, not JSON, the wrong shape."""


def read_summary(path: Path) -> dict:
    """A run's summary: a JSON object with its `args` and `final_eval`, or SummaryError naming the file."""
    try:
        summary = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SummaryError(f"{path} is not a readable run summary ({error})") from error
    if not (isinstance(summary, dict) and isinstance(summary.get("args"), dict)
            and isinstance(summary.get("final_eval"), dict)):
        raise SummaryError(f"{path} is not a run summary (no args and final_eval)")
    return summary


def training_revision(summary: dict, method: str) -> Optional[int]:
    """The revision of the training scripts (rundir.REVISION) that a PPO or LaGO run of the grid's `method` ran
    with, 1 where the summary predates the record; None for the prior alone, which no training script runs."""
    return None if method.startswith("prior-alone-") else summary.get("revision", 1)


# LaGO flags added after runs were recorded, with the value those runs ran with (what a missing one means)
ADDED_GUIDANCE_FLAGS = {"guidance_target_kl": 1.0}


def run_settings(args: dict) -> dict:
    """The settings of a run from its recorded args: those that change its result; the prior by its checkpoint's
    folder name and the demonstrations by their file name (absolute paths differ from machine to machine)."""
    settings = {name: value for name, value in args.items() if name not in NOT_SETTINGS}
    for name in ("prior_path", "demos"):
        if settings.get(name):
            settings[name] = Path(settings[name]).name
    return settings


def setting_differences(expected: dict, found: dict) -> list[str]:
    """`name found-value, not expected-value` for each setting of `expected` that `found` lacks or has otherwise."""
    missing = "(not recorded)"
    if "guidance_schedule" in found:  # a LaGO run recorded before a flag was added ran with its default
        found = {**ADDED_GUIDANCE_FLAGS, **found}
    return [f"{name} {found.get(name, missing)}, not {value}" for name, value in expected.items()
            if found.get(name, missing) != value]
