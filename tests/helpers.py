"""Helpers shared by the test modules."""

import os
import subprocess
import sys
from pathlib import Path

import collect_demos
import finetune_prior
from tests import script_runner

ROOT = Path(__file__).resolve().parents[1]

# torch.testing tolerances for outputs of order 1 computed two ways (batched, cached, compiled, shared): in fp32 the
# two differ by float rounding; in bf16, with 8 significant bits, by up to about one rounding, 2^-8 = 0.0039, a hundred
# times less than a wrong formula moves them (the logits' spread is about 0.7)
CLOSE = {"fp32": dict(rtol=1e-4, atol=1e-5), "bf16": dict(rtol=0.0, atol=2**-8)}


def finetune(tmp_path_factory, name: str, demo_args: collect_demos.Args, **overrides) -> Path:
    """A tiny-random prior fine-tuned for a few steps on a small demonstration file."""
    folder = tmp_path_factory.mktemp(name)
    demo_args.out = str(folder / "demos.npz")
    collect_demos.main(demo_args)
    settings = dict(demos=demo_args.out, llm="tiny-random", train_steps=4, batch_size=8, eval_every=2,
                    out=str(folder / "prior"), run_dir=str(folder / "runs"))
    return finetune_prior.main(finetune_prior.Args(**{**settings, **overrides}))


def run_script(script: str, *argv: str, timeout: int = 600, cwd: Path = ROOT,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run one of the project's scripts as `python script ARGV` does, offline, one thread (`env`: more variables), in a
    process forked from one that has imported the heavy libraries (tests/script_runner.py)."""
    env = {**os.environ, **script_runner.SERVER_ENV, **(env or {})}  # offline, one thread: what its server runs with
    return script_runner.run(ROOT / script, list(argv), cwd, env, timeout)


def assert_one_sentence_error(result: subprocess.CompletedProcess, script: str, message: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0
    assert lines and lines[-1].startswith(f"{script}: error: ") and message in lines[-1], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def hold_lock(directory: Path, name: str = "running.lock") -> subprocess.Popen:
    """Another process that holds a run folder's lock until it is killed (it prints `held` once it has it)."""
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); import rundir; "
            "lock = rundir.acquire(sys.argv[2], sys.argv[3]); print('held' if lock else 'busy', flush=True); time.sleep(600)")
    process = subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(directory), name], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


FUNCTION_WORDS = frozenset({"a", "an", "the", "of", "to", "in", "on", "at", "by", "it", "its", "so", "that", "than",
                            "and", "from", "up", "s"})


def content_words(*texts: str) -> set[str]:
    """The lower-case words of `texts` other than articles, prepositions, pronouns and conjunctions."""
    import re

    return {word for text in texts for word in re.findall(r"[a-z]+", text.lower())} - FUNCTION_WORDS
