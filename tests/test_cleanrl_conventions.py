"""CleanRL's --track, --capture-video and --save-model in the four stage-2 scripts, and evaluate_policy.py."""

import dataclasses
import importlib
import json
import re
import subprocess
import sys

import pytest

import lago_clevr_discrete
import lago_metaworld_continuous
import ppo_clevr_discrete
from benchmarks.readme_tables import SCRIPT_PAIRS, lago_hunks
from tests.helpers import ROOT, assert_one_sentence_error, run_script

CLEVR = ["--total-timesteps", "256", "--num-envs", "2", "--num-steps", "64", "--num-minibatches", "2",
         "--update-epochs", "1", "--eval-interval", "256", "--eval-episodes", "3", "--seed", "4"]
METAWORLD = ["--total-timesteps", "128", "--num-envs", "2", "--num-steps", "64", "--num-minibatches", "2",
             "--update-epochs", "1", "--max-episode-steps", "40", "--eval-interval", "128", "--eval-episodes", "2",
             "--seed", "4"]


def runs(clevr_prior, metaworld_prior):
    return {
        "ppo_clevr_discrete.py": [*CLEVR],
        "ppo_metaworld_continuous.py": ["--task", "reach-v3", *METAWORLD],
        "lago_clevr_discrete.py": [*CLEVR, "--prior-path", str(clevr_prior)],
        "lago_metaworld_continuous.py": [*METAWORLD, "--prior-path", str(metaworld_prior)],
    }


@pytest.mark.parametrize("name", ["ppo_clevr_discrete.py", "ppo_metaworld_continuous.py", "lago_clevr_discrete.py",
                                  "lago_metaworld_continuous.py"])
def test_a_saved_policy_replays_its_final_evaluation_exactly(tmp_path, clevr_prior, metaworld_prior, name):
    script = name.split()[0]
    result = run_script(script, *runs(clevr_prior, metaworld_prior)[name], "--save-model", "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    model = tmp_path / "run" / f"{script.removesuffix('.py')}.cleanrl_model"
    assert f"model saved to {model}" in result.stdout
    replay = run_script("evaluate_policy.py", str(model), "--json", str(tmp_path / "replay.json"))
    assert replay.returncode == 0, replay.stderr[-3000:]
    final = json.loads((tmp_path / "run" / "summary.json").read_text())["final_eval"]
    assert json.loads((tmp_path / "replay.json").read_text())["results"] == final  # the same episodes, the same policy
    fewer = run_script("evaluate_policy.py", str(model), "--eval-episodes", "1")
    assert fewer.returncode == 0 and fewer.stdout.count("(1 episodes)") == 2


def test_evaluate_policy_refuses_what_is_not_a_saved_policy(tmp_path):
    assert_one_sentence_error(run_script("evaluate_policy.py", str(tmp_path / "none.cleanrl_model")),
                              "evaluate_policy.py", "does not exist; save a policy with --save-model")
    (tmp_path / "bad.cleanrl_model").write_text("not a model")
    assert_one_sentence_error(run_script("evaluate_policy.py", str(tmp_path / "bad.cleanrl_model")),
                              "evaluate_policy.py", "is not a saved policy")


def test_track_logs_to_weights_and_biases_offline(tmp_path):
    pytest.importorskip("wandb")
    result = run_script("ppo_clevr_discrete.py", *CLEVR, "--track", "--wandb-project-name", "lago-test",
                        "--run-dir", str(tmp_path / "run"), cwd=tmp_path, env={"WANDB_MODE": "offline"})
    assert result.returncode == 0, result.stderr[-3000:]
    offline = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))  # the run's records, ready for `wandb sync`
    no_key = run_script("ppo_clevr_discrete.py", *CLEVR, "--track", "--run-dir", str(tmp_path / "no_key"), cwd=tmp_path,
                        env={"WANDB_MODE": "online", "WANDB_API_KEY": "", "HOME": str(tmp_path)})
    assert_one_sentence_error(no_key, "ppo_clevr_discrete.py", "--track: wandb did not start")


@pytest.mark.parametrize("module, flag", [(ppo_clevr_discrete, "track"), (lago_clevr_discrete, "capture_video"),
                                          (lago_metaworld_continuous, "track")])
def test_a_missing_optional_dependency_is_one_sentence(monkeypatch, module, flag):
    monkeypatch.setattr(module.importlib.util, "find_spec", lambda name: None)
    dependency = {"track": "wandb", "capture_video": "moviepy"}[flag]
    with pytest.raises(SystemExit, match=f"--{flag.replace('_', '-')} needs {dependency}, which is not installed"):
        module.check_args(module.Args(**{flag: True}))


def gl_renders() -> bool:
    code = "import gymnasium as gym, envs; e = gym.make('CLEVRRobot-v0', render_mode='rgb_array'); e.reset(seed=0); print(e.render().shape)"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={"MUJOCO_GL": "egl", "PATH": ""}).returncode == 0


def test_capture_video_records_the_evaluation_episodes_or_says_why_not(tmp_path, clevr_prior):
    pytest.importorskip("moviepy")
    result = run_script("lago_clevr_discrete.py", *CLEVR, "--prior-path", str(clevr_prior), "--capture-video",
                        "--run-dir", str(tmp_path / "run"), env={"MUJOCO_GL": "egl"})
    assert result.returncode == 0, result.stderr[-3000:]
    if gl_renders():
        videos = sorted(p.relative_to(tmp_path / "run" / "videos").as_posix() for p in (tmp_path / "run" / "videos").rglob("*.mp4"))
        assert videos == ["test-step256/rl-video-episode-0.mp4", "train-step256/rl-video-episode-0.mp4"]
    else:
        assert "--capture-video: no offscreen OpenGL here" in result.stdout
        assert not (tmp_path / "run" / "videos").exists()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["global_step"] == 256


@pytest.mark.parametrize("name, ppo_script, lago_script", SCRIPT_PAIRS)
def test_a_lago_script_is_its_ppo_script_plus_marked_lago_blocks(name, ppo_script, lago_script):
    hunks = lago_hunks(ppo_script, lago_script)
    unmarked = [f"{lago_script}:{h['first']}-{h['last']}" for h in hunks if h["marker"] is None]
    assert not unmarked, f"lines that differ from {ppo_script} without a `# LaGO` comment"
    kl_lines = [h for h in hunks if h["marker"] and h["marker"].startswith("+ beta_t * KL")]
    assert len(kl_lines) == 1 and "kl_divergence" in (ROOT / lago_script).read_text()  # the guidance term, once


@pytest.mark.parametrize("script", ["ppo_clevr_discrete.py", "ppo_metaworld_continuous.py", "lago_clevr_discrete.py",
                                    "lago_metaworld_continuous.py"])
def test_help_shows_the_real_default_of_every_flag(script):
    module = importlib.import_module(script.removesuffix(".py"))
    # None means: off (target_kl, wandb_entity), or found at run time and said so (run_dir, llm, prior_path)
    unset = {field.name for field in dataclasses.fields(module.Args) if field.default is None}
    assert unset <= {"target_kl", "wandb_entity", "run_dir", "llm", "prior_path"}
    result = run_script(script, "--help")
    assert result.returncode == 0
    steps = "200000" if "clevr" in script else "1000000"
    text = re.sub(r"[│\s]+", " ", result.stdout)  # the help box, unwrapped
    assert f"--total-timesteps INT total timesteps of the experiments (default: {steps})" in text
