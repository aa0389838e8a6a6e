"""Guards: bad demonstrations, non-finite losses and prior outputs, bad float flags, broken checkpoints, and
one writer per run directory. Each stops with one sentence, a non-zero exit, and nothing written or lost."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import collect_demos
from collect_demos import DemoError, load_demos
from lago_utils.llm import PriorError
from lago_utils.prior_io import load_prior
from tests.helpers import ROOT, assert_one_sentence_error, hold_lock, run_script

CLEVR_SMALL = ["--total-timesteps", "512", "--num-envs", "4", "--num-steps", "64", "--eval-interval", "512",
               "--eval-episodes", "2", "--seed", "3"]


# --- demonstration files --------------------------------------------------------------------
def rewrite_demos(source: Path, target: Path, metadata=None, **arrays) -> Path:
    """A copy of the demonstration file `source` with some arrays (or the metadata) replaced."""
    with np.load(source) as data:
        contents = {key: data[key] for key in data.files}
    contents.update(arrays)
    if metadata is not None:
        contents["metadata"] = np.array(metadata if isinstance(metadata, str) else json.dumps(metadata))
    np.savez(target, **contents)
    return target


@pytest.fixture(scope="module")
def demo_files(clevr_prior, metaworld_prior):
    configs = {name: json.loads((path / "config.json").read_text()) for name, path in
               (("clevr", clevr_prior), ("metaworld", metaworld_prior))}
    return {name: Path(config["demos"]) for name, config in configs.items()}


def bad_demos(demo_files, tmp_path, case: str) -> tuple[Path, str]:
    """A demonstration file broken in one way, and the part of the sentence that says so."""
    clevr, metaworld, target = demo_files["clevr"], demo_files["metaworld"], tmp_path / "bad.npz"
    arrays, meta = load_demos(clevr)
    if case == "nan obs":
        obs = arrays["obs"].copy()
        obs[3, 1] = np.nan
        return rewrite_demos(clevr, target, obs=obs), "1 rows of `obs` are not finite"
    if case == "label out of range":
        actions = arrays["actions"].copy()
        actions[5] = 45
        return rewrite_demos(clevr, target, actions=actions), "1 actions are outside 0..39 (first: 45 in row 5)"
    if case == "no action space":
        return (rewrite_demos(clevr, target, metadata={k: v for k, v in meta.items() if k != "action_space"}),
                "has no valid metadata: `action_space` must be")
    if case == "no env":
        return rewrite_demos(clevr, target, metadata={**meta, "env": "atari"}), "`env` must be clevr or metaworld"
    if case == "metadata not json":
        return rewrite_demos(clevr, target, metadata="{not json"), "has unreadable metadata"
    mw_actions = load_demos(metaworld)[0]["actions"].copy()
    if case == "inf action":
        mw_actions[2, 0] = np.inf
        return rewrite_demos(metaworld, target, actions=mw_actions), "1 rows of `actions` are not finite"
    if case == "action shape":
        return (rewrite_demos(metaworld, target, actions=mw_actions[:, :3]),
                "Box `actions` must be floats of shape (N, 4)")
    raise ValueError(case)


CASES = ["nan obs", "label out of range", "inf action", "action shape", "no action space", "no env", "metadata not json"]


@pytest.mark.parametrize("case", CASES)
def test_bad_demonstration_files_are_refused_at_load(demo_files, tmp_path, case):
    path, message = bad_demos(demo_files, tmp_path, case)
    with pytest.raises(DemoError) as error:
        load_demos(path)
    assert message in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)


def test_fine_tuning_on_non_finite_demos_stops_before_writing(demo_files, tmp_path):
    path, message = bad_demos(demo_files, tmp_path, "nan obs")
    result = run_script("finetune_prior.py", "--demos", str(path), "--llm", "tiny-random", "--train-steps", "2",
                        "--out", str(tmp_path / "prior"), "--run-dir", str(tmp_path / "runs"))
    assert_one_sentence_error(result, "finetune_prior.py", message)
    assert not (tmp_path / "prior").exists() and not (tmp_path / "runs").exists()


# --- non-finite losses and prior outputs ------------------------------------------------------
def test_a_diverging_fine_tune_writes_no_checkpoint_and_keeps_the_old_one(demo_files, tmp_path, clevr_prior):
    out = tmp_path / "prior"
    shutil.copytree(clevr_prior, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    result = run_script("finetune_prior.py", "--demos", str(demo_files["clevr"]), "--llm", "tiny-random",
                        "--learning-rate", "1e30", "--train-steps", "30", "--eval-every", "30", "--batch-size", "8",
                        "--out", str(out), "--run-dir", str(tmp_path / "runs"))
    assert_one_sentence_error(result, "finetune_prior.py", "fine-tuning diverged: the training NLL is nan at step")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


@pytest.fixture(scope="module")
def nan_priors(tmp_path_factory, clevr_prior, metaworld_prior) -> dict[str, Path]:
    """Copies of the tiny priors whose action head is NaN: a complete checkpoint that gives NaN outputs."""
    folder = tmp_path_factory.mktemp("nan_priors")
    priors = {}
    for name, source in (("clevr", clevr_prior), ("metaworld", metaworld_prior)):
        target = folder / name
        shutil.copytree(source, target)
        heads = load_file(target / "heads.safetensors")
        heads["action_head.weight"] = torch.full_like(heads["action_head.weight"], float("nan"))
        save_file(heads, target / "heads.safetensors")
        priors[name] = target
    return priors


@pytest.mark.parametrize("script, bench, argv", [
    ("lago_clevr_discrete.py", "clevr", CLEVR_SMALL),
    ("lago_metaworld_continuous.py", "metaworld",
     ["--task", "reach-v3", "--total-timesteps", "128", "--num-steps", "64", "--num-minibatches", "2",
      "--max-episode-steps", "32", "--eval-episodes", "1"]),
])
def test_non_finite_prior_outputs_stop_stage_2(tmp_path, nan_priors, script, bench, argv):
    result = run_script(script, *argv, "--prior-path", str(nan_priors[bench]), "--run-dir", str(tmp_path / "run"))
    assert_one_sentence_error(result, script, f"the prior {nan_priors[bench]} gave non-finite outputs (NaN or inf)")
    assert "no summary written" in result.stderr and not (tmp_path / "run" / "summary.json").exists()


def test_non_finite_prior_outputs_stop_the_prior_alone_evaluation(tmp_path, nan_priors):
    result = run_script("evaluate_prior.py", "--prior-path", str(nan_priors["clevr"]), "--episodes", "2",
                        "--json", str(tmp_path / "alone.json"))
    assert_one_sentence_error(result, "evaluate_prior.py", "gave non-finite outputs (NaN or inf)")
    assert not (tmp_path / "alone.json").exists()


@pytest.mark.parametrize("script", ["ppo_clevr_discrete.py", "lago_clevr_discrete.py"])
def test_a_non_finite_ppo_loss_names_the_update(tmp_path, clevr_prior, script):
    extra = ["--prior-path", str(clevr_prior), "--guidance-coef", "0"] if script.startswith("lago") else []
    result = run_script(script, *CLEVR_SMALL, "--learning-rate", "1e30", *extra, "--run-dir", str(tmp_path / "run"))
    assert_one_sentence_error(result, script, "in update 1 (epoch ")
    assert "training diverged, no summary written" in result.stderr
    assert not (tmp_path / "run" / "summary.json").exists()


FLAGS = [
    ("--learning-rate", "0", "--learning-rate must be finite and > 0, got 0.0"),
    ("--learning-rate", "inf", "--learning-rate must be finite and > 0, got inf"),
    ("--gamma", "5", "--gamma must be finite and in (0, 1], got 5.0"),
    ("--gamma", "0", "--gamma must be finite and in (0, 1], got 0.0"),
    ("--gae-lambda", "1.5", "--gae-lambda must be finite and in [0, 1], got 1.5"),
    ("--clip-coef", "-1", "--clip-coef must be finite and > 0, got -1.0"),
    ("--max-grad-norm", "-1", "--max-grad-norm must be finite and > 0, got -1.0"),
    ("--ent-coef", "nan", "--ent-coef must be finite and >= 0, got nan"),
    ("--vf-coef", "-0.5", "--vf-coef must be finite and >= 0, got -0.5"),
    ("--target-kl", "0", "--target-kl must be finite and > 0, got 0.0"),
]
LAGO_FLAGS = [
    ("--guidance-coef", "nan", "--guidance-coef must be finite and >= 0, got nan"),
    ("--guidance-coef", "inf", "--guidance-coef must be finite and >= 0, got inf"),
    ("--guidance-decay-end", "nan", "--guidance-decay-end must be finite and in (0, 1], got nan"),
    ("--prior-fraction", "-0.1", "--prior-fraction must be finite and in (0, 1], got -0.1"),
]


@pytest.mark.parametrize("module, flag, value, message",
                         [(module, *flag) for module in ("ppo_clevr_discrete", "ppo_metaworld_continuous", "lago_clevr_discrete",
                                                             "lago_metaworld_continuous")
                          for flag in FLAGS] + [(module, *flag) for module in ("lago_clevr_discrete", "lago_metaworld_continuous")
                                                for flag in LAGO_FLAGS])
def test_float_flags_are_validated(module, flag, value, message):
    import importlib

    import tyro

    from lago_utils.checks import check_ppo_args
    from lago_utils.guidance import check_lago_args

    script = importlib.import_module(module)
    with pytest.raises(SystemExit) as error:
        args = check_ppo_args(tyro.cli(script.Args, args=[flag, value]))
        check_lago_args(args, module.split("_")[1])  # reached by the LaGO flags only
    assert str(error.value) == f"{module}.py: error: {message}"


@pytest.mark.parametrize("script, prior", [("ppo_clevr_discrete.py", None), ("ppo_metaworld_continuous.py", None),
                                           ("lago_clevr_discrete.py", "clevr_prior"),
                                           ("lago_metaworld_continuous.py", "metaworld_prior")])
def test_a_bad_float_flag_stops_the_script_before_it_writes(request, tmp_path, script, prior):
    extra = ["--prior-path", str(request.getfixturevalue(prior))] if prior else []
    result = run_script(script, *extra, "--max-grad-norm", "-1", "--run-dir", str(tmp_path / "run"))
    assert_one_sentence_error(result, script, "--max-grad-norm must be finite and > 0, got -1.0")
    assert not (tmp_path / "run").exists()


# --- checkpoints that do not fit or are broken ------------------------------------------------
def broken_copy(source: Path, target: Path, case: str) -> str:
    """Break a copy of a checkpoint in one way; the part of the sentence that says so."""
    shutil.copytree(source, target)
    heads = load_file(target / "heads.safetensors")
    if case == "missing tensor":
        save_file({k: v for k, v in heads.items() if not k.startswith("action_head.")}, target / "heads.safetensors")
        return "does not fit its config.json (missing action_head.bias, action_head.weight)"
    if case == "unexpected tensor":
        save_file({**heads, "value_head.weight": torch.zeros(2, 2)}, target / "heads.safetensors")
        return "does not fit its config.json (unexpected value_head.weight)"
    if case == "wrong shape":
        save_file({**heads, "action_head.bias": torch.zeros(3)}, target / "heads.safetensors")
        return "does not fit its config.json (wrong shape action_head.bias)"
    if case == "truncated heads":
        data = (target / "heads.safetensors").read_bytes()
        (target / "heads.safetensors").write_bytes(data[: len(data) // 2])
        return "heads.safetensors is not a readable safetensors file"
    if case == "missing adapter":
        shutil.rmtree(target / "adapter")
        return "lacks adapter; the checkpoint is incomplete"
    if case == "missing config key":
        config = json.loads((target / "config.json").read_text())
        del config["state_tokens"], config["obs_dim"]
        (target / "config.json").write_text(json.dumps(config))
        return "config.json lacks obs_dim, state_tokens; the checkpoint is incomplete"
    if case == "bad action space":
        config = json.loads((target / "config.json").read_text())
        config["action_space"] = {"type": "discrete"}
        (target / "config.json").write_text(json.dumps(config))
        return "has no valid action_space"
    raise ValueError(case)


BROKEN = ["missing tensor", "unexpected tensor", "wrong shape", "truncated heads", "missing adapter",
          "missing config key", "bad action space"]


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_checkpoint_is_one_sentence(tmp_path, clevr_prior, case):
    message = broken_copy(clevr_prior, tmp_path / "prior", case)
    with pytest.raises(PriorError) as error:
        load_prior(tmp_path / "prior", dtype=torch.float32)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_broken_checkpoint_stops_the_scripts_without_a_traceback(tmp_path, clevr_prior):
    message = broken_copy(clevr_prior, tmp_path / "prior", "missing tensor")
    result = run_script("evaluate_prior.py", "--prior-path", str(tmp_path / "prior"), "--episodes", "1")
    assert_one_sentence_error(result, "evaluate_prior.py", message)
    result = run_script("lago_clevr_discrete.py", *CLEVR_SMALL, "--prior-path", str(tmp_path / "prior"),
                        "--run-dir", str(tmp_path / "run"))
    assert_one_sentence_error(result, "lago_clevr_discrete.py", message)
    assert not (tmp_path / "run").exists()


# --- one writer per run directory -------------------------------------------------------------
def test_a_run_directory_holds_one_run(tmp_path):
    run = tmp_path / "run"
    first = run_script("ppo_clevr_discrete.py", *CLEVR_SMALL, "--run-dir", str(run))
    assert first.returncode == 0, first.stderr[-2000:]
    summary = (run / "summary.json").read_bytes()
    events = sorted(p.name for p in run.glob("events.out.tfevents.*"))
    again = run_script("ppo_clevr_discrete.py", *CLEVR_SMALL, "--seed", "4", "--run-dir", str(run))
    assert_one_sentence_error(again, "ppo_clevr_discrete.py", f"--run-dir {run} already holds a run (")
    assert (run / "summary.json").read_bytes() == summary and sorted(p.name for p in run.glob("events.*")) == events
    assert not (run / "running.lock").exists()
    replaced = run_script("ppo_clevr_discrete.py", *CLEVR_SMALL, "--seed", "4", "--run-dir", str(run), "--overwrite")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert json.loads((run / "summary.json").read_text())["seed"] == 4 and len(list(run.glob("events.*"))) == 1


@pytest.mark.parametrize("script, prior", [("ppo_clevr_discrete.py", None), ("lago_clevr_discrete.py", "clevr_prior")])
def test_a_run_directory_being_written_is_refused_even_with_overwrite(request, tmp_path, script, prior):
    run = tmp_path / "run"
    run.mkdir()
    writer = hold_lock(run)  # another run writes here
    try:
        extra = ["--prior-path", str(request.getfixturevalue(prior))] if prior else []
        result = run_script(script, *CLEVR_SMALL, *extra, "--run-dir", str(run), "--overwrite")
        assert_one_sentence_error(result, script, f"--run-dir {run} is being written by another run (")
        assert str(writer.pid) in result.stderr.splitlines()[-1]  # the lock names the writing process
        assert sorted(p.name for p in run.iterdir()) == ["running.lock"]
    finally:
        writer.kill()
        writer.wait()


def test_two_runs_started_together_in_one_directory_leave_one_run(tmp_path):
    import subprocess
    import sys

    from tests.helpers import ROOT

    run = tmp_path / "run"
    argv = [sys.executable, str(ROOT / "ppo_clevr_discrete.py"), *CLEVR_SMALL, "--run-dir", str(run)]
    processes = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    assert sorted(code == 0 for code, _ in results) == [False, True], results
    refused = next(stderr for code, stderr in results if code != 0)
    assert "is being written by another run" in refused or "already holds a run" in refused
    assert len(list(run.glob("events.out.tfevents.*"))) == 1 and (run / "summary.json").is_file()


def test_a_mujoco_gl_library_that_cannot_load_is_one_sentence():
    """MUJOCO_GL=osmesa where OSMesa is not installed: every script stops at import with one sentence naming
    MUJOCO_GL, not PyOpenGL's traceback."""
    result = subprocess.run([sys.executable, "ppo_clevr_discrete.py", "--help"], cwd=ROOT, capture_output=True,
                            text=True, env={**os.environ, "MUJOCO_GL": "osmesa"}, timeout=300)
    if result.returncode == 0:
        pytest.skip("OSMesa is installed here: MUJOCO_GL=osmesa loads")
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("MUJOCO_GL=osmesa: mujoco cannot load that OpenGL library"), result.stderr
    assert "Traceback" not in result.stderr
