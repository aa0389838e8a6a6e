"""save_prior cannot lose a checkpoint: a save killed at any line, and two saves at once, in subprocesses."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from lago_prior import PROMPT_TEMPLATE, LatentActionPrior
from lago_utils import prior_io
from lago_utils.llm import load_llm
from lago_utils.prior_io import load_prior, read_prior_config, save_prior
from tests.helpers import ROOT


def tiny_prior() -> tuple[LatentActionPrior, dict]:
    """A tiny-random discrete prior with LoRA adapters, as finetune_prior.py builds it, and its config."""
    from peft import LoraConfig, get_peft_model

    llm, tokenizer = load_llm("tiny-random", seed=1)
    llm = get_peft_model(llm, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    model = LatentActionPrior(llm, tokenizer, 10, {"type": "discrete", "n": 40}, 1, np.zeros(10), np.ones(10))
    config = {"format": prior_io.PRIOR_FORMAT, "llm": "tiny-random", "llm_init": "random", "seed": 1, "env": "clevr",
              "obs_dim": 10, "action_space": {"type": "discrete", "n": 40}, "state_tokens": 1,
              "prompt_template": PROMPT_TEMPLATE, "min_std": 0.05}
    return model, config


def save_killed_at_line(model, out, config, line: int, exchange: bool) -> bool:
    """Save in a forked child that SIGKILLs itself at the `line`-th line it runs in lago_utils/prior_io.py's functions; True if the
    save finished first. Without `exchange`, the save takes the path of systems without an atomic exchange."""
    pid = os.fork()
    if pid == 0:
        count = 0

        def trace(frame, event, arg):
            nonlocal count
            if frame.f_code.co_filename != prior_io.__file__ or frame.f_code.co_name.startswith("<"):
                return None  # the lines of prior_io.py's functions (not each turn of a comprehension)
            if event == "line":
                count += 1
                if count == line:
                    os.kill(os.getpid(), signal.SIGKILL)
            return trace

        if not exchange:
            prior_io._rename_exchange = lambda a, b: False
        sys.settrace(trace)
        save_prior(model, out, config)
        sys.settrace(None)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


@pytest.mark.parametrize("exchange", [True, False], ids=["atomic-exchange", "no-exchange"])
def test_a_save_killed_at_any_line_leaves_the_old_or_the_new_checkpoint(tmp_path, exchange):
    torch.set_num_threads(1)  # nothing threaded in the forked children
    model, config = tiny_prior()
    out = tmp_path / "prior"
    old, new = {**config, "version": "old"}, {**config, "version": "new"}
    seen = set()
    for line in range(1, 500):
        save_prior(model, out, old)  # also removes what the killed save before left behind
        assert not [p.name for p in tmp_path.iterdir() if p.name != "prior"], f"line {line - 1}: leftovers"
        finished = save_killed_at_line(model, out, new, line, exchange)
        version = read_prior_config(out)["version"]  # recovers a checkpoint moved aside, if the save had one so
        load_prior(out, dtype=torch.float32)  # every part is there and fits
        seen.add(version)
        if finished:
            break
    else:
        pytest.fail("the save never finished")
    assert version == "new" and seen == {"old", "new"} and line > 20  # killed at every line of it before


def test_two_saves_at_once_both_finish_and_one_checkpoint_stands(tmp_path):
    out = tmp_path / "prior"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from tests.test_checkpoints import tiny_prior; "
            "from lago_utils.prior_io import save_prior; model, config = tiny_prior()\n"
            "for i in range(5): save_prior(model, sys.argv[2], {**config, 'version': sys.argv[3]})")
    writers = [subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(out), name], stderr=subprocess.PIPE, text=True)
               for name in ("a", "b")]
    results = [(writer.wait(timeout=300), writer.stderr.read()) for writer in writers]
    assert all(code == 0 for code, _ in results), results
    assert read_prior_config(out)["version"] in {"a", "b"}
    load_prior(out, dtype=torch.float32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prior"]  # no temporary directory left


def test_a_stale_temporary_directory_is_removed_by_the_next_save_and_a_live_one_kept(tmp_path):
    model, config = tiny_prior()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".prior.tmp-{dead.pid}-abc").mkdir()  # a save killed long ago
    (tmp_path / f".prior.tmp-{os.getpid()}-xyz").mkdir()  # a save in progress (this process)
    save_prior(model, tmp_path / "prior", config)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".prior.tmp-{os.getpid()}-xyz", "prior"]


def test_a_checkpoint_left_aside_is_recovered_by_the_loader(tmp_path):
    model, config = tiny_prior()
    save_prior(model, tmp_path / "prior", {**config, "version": "old"})
    os.rename(tmp_path / "prior", tmp_path / ".prior.old")  # a save killed between its two renames
    assert read_prior_config(tmp_path / "prior")["version"] == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prior"]
    assert json.loads((tmp_path / "prior" / "config.json").read_text())["version"] == "old"
