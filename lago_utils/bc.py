"""What the BC-PPO scripts add to PPO around behaviour cloning, and is not the method: their flags' checks and the
demonstrations, refused in one sentence where they are not of the script's benchmark (or, on Meta-World, of its
--task).

    check_bc_args(args)                            # --bc-steps, --bc-batch-size, --bc-learning-rate
    demos, metadata = load_bc_demos(args, "clevr")  # --demos, before the run directory
"""

from __future__ import annotations

from typing import Any

import numpy as np

from collect_demos import DemoError, load_demos
from lago_utils.checks import fail, require


def check_bc_args(args: Any) -> None:
    require(args, "bc_steps", args.bc_steps >= 0, "a non-negative integer")
    require(args, "bc_batch_size", args.bc_batch_size > 0, "a positive integer")
    require(args, "bc_learning_rate", args.bc_learning_rate > 0, "finite and > 0")


def load_bc_demos(args: Any, env: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The demonstrations in --demos (collect_demos.py) and their metadata, or one sentence where the file is bad or
    holds none of `env` (Meta-World: none of --task)."""
    try:
        demos, metadata = load_demos(args.demos)
        if env == "clevr" and metadata["env"] != "clevr":
            raise DemoError(f"{args.demos} holds {metadata['env']} demonstrations, not CLEVR-Robot's")
        if env == "metaworld" and (metadata["env"] != "metaworld" or args.task not in metadata["tasks"]):
            raise DemoError(f"{args.demos} holds no demonstrations of {args.task} "
                            f"(its tasks: {', '.join(metadata.get('tasks') or [metadata['env']])})")
    except DemoError as error:
        fail(args, f"--demos: {error}")
    return demos, metadata
