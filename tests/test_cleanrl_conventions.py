"""CleanRL's --track, --capture-video and --save-model in the three stage-2 scripts, and evaluate_policy.py."""

import json
import subprocess
import sys

import pytest

import lago_clevr_discrete
import lago_metaworld_continuous
import ppo_baseline
from tests.helpers import ROOT, assert_one_sentence_error, run_script

CLEVR = ["--total-timesteps", "256", "--num-envs", "2", "--num-steps", "64", "--num-minibatches", "2",
         "--update-epochs", "1", "--eval-interval", "256", "--eval-episodes", "3", "--seed", "4"]
METAWORLD = ["--total-timesteps", "128", "--num-envs", "2", "--num-steps", "64", "--num-minibatches", "2",
             "--update-epochs", "1", "--max-episode-steps", "40", "--eval-interval", "128", "--eval-episodes", "2",
             "--seed", "4"]


def runs(clevr_prior, metaworld_prior):
    return {
        "ppo_baseline.py": [*CLEVR],
        "ppo_baseline.py metaworld": ["--env-id", "reach-v3", *METAWORLD],
        "lago_clevr_discrete.py": [*CLEVR, "--prior-path", str(clevr_prior)],
        "lago_metaworld_continuous.py": [*METAWORLD, "--prior-path", str(metaworld_prior)],
    }


@pytest.mark.parametrize("name", ["ppo_baseline.py", "ppo_baseline.py metaworld", "lago_clevr_discrete.py",
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
    result = run_script("ppo_baseline.py", *CLEVR, "--track", "--wandb-project-name", "lago-test",
                        "--run-dir", str(tmp_path / "run"), cwd=tmp_path, env={"WANDB_MODE": "offline"})
    assert result.returncode == 0, result.stderr[-3000:]
    offline = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))  # the run's records, ready for `wandb sync`
    no_key = run_script("ppo_baseline.py", *CLEVR, "--track", "--run-dir", str(tmp_path / "no_key"), cwd=tmp_path,
                        env={"WANDB_MODE": "online", "WANDB_API_KEY": "", "HOME": str(tmp_path)})
    assert_one_sentence_error(no_key, "ppo_baseline.py", "--track: wandb did not start")


@pytest.mark.parametrize("module, flag", [(ppo_baseline, "track"), (lago_clevr_discrete, "capture_video"),
                                          (lago_metaworld_continuous, "track")])
def test_a_missing_optional_dependency_is_one_sentence(monkeypatch, module, flag):
    monkeypatch.setattr(module.importlib.util, "find_spec", lambda name: None)
    check = module.fill_defaults if module is ppo_baseline else module.check_args
    dependency = {"track": "wandb", "capture_video": "moviepy"}[flag]
    with pytest.raises(SystemExit, match=f"--{flag.replace('_', '-')} needs {dependency}, which is not installed"):
        check(module.Args(**{flag: True}))


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
