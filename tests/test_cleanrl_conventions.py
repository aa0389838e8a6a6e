"""CleanRL's --track, --capture-video and --save-model in the stage-2 scripts, and evaluate_policy.py; the scripts'
shape: the training loop near the top, and LaGO (or BC) as a small marked diff of PPO."""

import dataclasses
import importlib
import json
import re
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
import torch

import lago_clevr_discrete
import lago_metaworld_continuous
import lago_utils.checks
import ppo_clevr_discrete
from benchmarks.readme_tables import BC_SCRIPT_PAIRS, SCRIPT_PAIRS, lago_hunks
from lago_utils.checks import check_ppo_args
from lago_utils.prior_io import read_prior_config
from tests.helpers import ROOT, assert_one_sentence_error, run_script

SCRIPTS = ["ppo_clevr_discrete.py", "ppo_metaworld_continuous.py", "lago_clevr_discrete.py", "lago_metaworld_continuous.py",
           "bcppo_clevr_discrete.py", "bcppo_metaworld_continuous.py"]
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
        "bcppo_clevr_discrete.py": [*CLEVR, "--demos", read_prior_config(clevr_prior)["demos"], "--bc-steps", "20"],
    }


@pytest.mark.parametrize("name", ["ppo_clevr_discrete.py", "ppo_metaworld_continuous.py", "lago_clevr_discrete.py",
                                  "lago_metaworld_continuous.py", "bcppo_clevr_discrete.py"])
def test_a_saved_policy_replays_its_final_evaluation_exactly(tmp_path, clevr_prior, metaworld_prior, name):
    script = name
    result = run_script(script, *runs(clevr_prior, metaworld_prior)[name], "--save-model", "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    model = tmp_path / "run" / f"{script.removesuffix('.py')}.cleanrl_model"
    assert f"model saved to {model}" in result.stdout
    replay = run_script("evaluate_policy.py", str(model), "--json", str(tmp_path / "new" / "replay.json"))
    assert replay.returncode == 0, replay.stderr[-3000:]
    final = json.loads((tmp_path / "run" / "summary.json").read_text())["final_eval"]
    assert json.loads((tmp_path / "new" / "replay.json").read_text())["results"] == final  # the same episodes and policy
    fewer = run_script("evaluate_policy.py", str(model), "--eval-episodes", "1")
    assert fewer.returncode == 0 and fewer.stdout.count("(1 episodes)") == 2


def test_evaluate_policy_takes_a_run_directory_with_one_saved_policy(tmp_path):
    result = run_script("ppo_clevr_discrete.py", *CLEVR, "--save-model", "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    replay = run_script("evaluate_policy.py", str(tmp_path / "run"), "--eval-episodes", "1")
    assert replay.returncode == 0 and replay.stdout.count("(1 episodes)") == 2, replay.stderr[-3000:]
    assert_one_sentence_error(run_script("evaluate_policy.py", str(tmp_path)), "evaluate_policy.py",
                              "is a directory with 0 saved policies (*.cleanrl_model); give the file")
    (tmp_path / "file").write_text("")
    result = run_script("evaluate_policy.py", str(tmp_path / "run"), "--json", str(tmp_path / "file" / "replay.json"))
    assert_one_sentence_error(result, "evaluate_policy.py", "its folder cannot be created")


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


def test_track_with_a_wandb_that_fails_on_import_is_one_sentence(tmp_path):
    (tmp_path / "site" / "wandb").mkdir(parents=True)
    (tmp_path / "site" / "wandb" / "__init__.py").write_text("raise ImportError('a broken install')")
    result = run_script("ppo_clevr_discrete.py", *CLEVR, "--track", "--run-dir", str(tmp_path / "run"),
                        env={"PYTHONPATH": f"{tmp_path / 'site'}:{ROOT}"})
    assert_one_sentence_error(result, "ppo_clevr_discrete.py", "--track: wandb did not start (a broken install)")


def test_ctrl_c_ends_a_run_with_one_line_that_says_what_was_kept(tmp_path):
    import os
    import signal
    import time

    run = subprocess.Popen([sys.executable, "ppo_clevr_discrete.py", "--total-timesteps", "10000000", "--run-dir",
                            str(tmp_path / "run")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not list((tmp_path / "run").glob("events.out.tfevents.*")) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(2)  # into the rollouts
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode != 0 and "Traceback" not in stderr, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == (f"interrupted: {tmp_path / 'run'} keeps the TensorBoard events logged so "
                                              "far and no summary.json; run the same command with --overwrite to start "
                                              "the run again")
    assert not (tmp_path / "run" / "summary.json").exists()


@pytest.mark.parametrize("module, flag", [(ppo_clevr_discrete, "track"), (lago_clevr_discrete, "capture_video"),
                                          (lago_metaworld_continuous, "track")])
def test_a_missing_optional_dependency_is_one_sentence(monkeypatch, module, flag):
    monkeypatch.setattr(lago_utils.checks.importlib.util, "find_spec", lambda name: None)
    dependency = {"track": "wandb", "capture_video": "moviepy"}[flag]
    with pytest.raises(SystemExit, match=f"--{flag.replace('_', '-')} needs {dependency}, which is not installed"):
        check_ppo_args(module.Args(**{flag: True}))


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


def test_capture_video_without_an_opengl_context_says_so_in_one_line(tmp_path):
    """MUJOCO_GL=glfw with no display: MuJoCo's renderer fails half-made. The run goes on without videos and says so,
    without glfw's warnings or the traceback of that renderer's `__del__` (lago_utils/run.py can_render)."""
    pytest.importorskip("moviepy")
    pytest.importorskip("glfw")
    result = run_script("ppo_clevr_discrete.py", *CLEVR, "--capture-video", "--run-dir", str(tmp_path / "run"),
                        env={"MUJOCO_GL": "glfw", "DISPLAY": "", "WAYLAND_DISPLAY": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    if (tmp_path / "run" / "videos").exists():
        pytest.skip("glfw made an OpenGL context here")
    assert "--capture-video: no offscreen OpenGL here" in result.stdout
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr[-3000:]
    assert "GLFWError" not in result.stderr, result.stderr[-3000:]


@pytest.mark.parametrize("name, ppo_script, lago_script", SCRIPT_PAIRS)
def test_a_lago_script_is_its_ppo_script_plus_marked_lago_blocks(name, ppo_script, lago_script):
    hunks = lago_hunks(ppo_script, lago_script)
    unmarked = [f"{lago_script}:{h['first']}-{h['last']}" for h in hunks if h["marker"] is None]
    assert not unmarked, f"blocks that differ from {ppo_script} without a `# LaGO` comment on their first line"
    kl_lines = [h for h in hunks if h["marker"] and h["marker"].startswith("+ beta_t * KL")]
    assert len(kl_lines) == 1  # the guidance term, in one place


@pytest.mark.parametrize("name, ppo_script, bc_script", BC_SCRIPT_PAIRS)
def test_a_bcppo_script_is_its_ppo_script_plus_marked_bc_blocks(name, ppo_script, bc_script):
    hunks = lago_hunks(ppo_script, bc_script, marker="BC")
    unmarked = [f"{bc_script}:{h['first']}-{h['last']}" for h in hunks if h["marker"] is None]
    assert not unmarked, f"blocks that differ from {ppo_script} without a `# BC` comment on their first line"
    assert sum(h["lines"] for h in hunks) < 60  # a small diff: the cloning step and its flags


@pytest.mark.parametrize("name, ppo_script, lago_script", SCRIPT_PAIRS)
def test_a_lago_script_adds_few_lines_to_its_ppo_script(name, ppo_script, lago_script):
    """The method, not its plumbing: finding, loading and timing the prior live in lago_utils/guidance.py."""
    lago_only = sum(h["lines"] for h in lago_hunks(ppo_script, lago_script))  # as the docs' table counts them
    assert lago_only < 90, f"{lago_script} adds {lago_only} lines to {ppo_script}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_stage_2_script_starts_its_training_loop_within_250_lines(script):
    """Read top to bottom, a script comes to the algorithm soon: checks, runs and evaluation live in lago_utils/."""
    lines = (ROOT / script).read_text().splitlines()
    loop = next(number for number, line in enumerate(lines, 1) if line.lstrip().startswith("for iteration in range("))
    assert loop <= 250, f"{script}'s training loop starts at line {loop}"


@pytest.mark.parametrize("script", SCRIPTS)
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
    assert not re.findall(r"\(default:? [^)]*\) \(default", text)  # one default a flag
    if script.startswith("lago_"):
        assert "must match the checkpoint's (default: smollm2-135m) --prior-path" in text


def guidance_block(script: str) -> str:
    """The lines of `script` that add the guidance term to the loss, as they stand in the update loop."""
    lines = (ROOT / script).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "# LaGO: + beta_t * KL" in line)
    end = next(i for i in range(start, len(lines)) if "loss = loss + beta * guidance_kl" in lines[i])
    return textwrap.dedent("\n".join(lines[start : end + 1]))


@pytest.mark.parametrize("direction", ["reverse", "forward"])
@pytest.mark.parametrize("script", ["lago_clevr_discrete.py", "lago_metaworld_continuous.py"])
def test_the_guidance_term_is_the_kl_in_its_direction_over_the_queried_states(script, direction):
    """The guidance block of the script itself, run on a minibatch with known distributions, against the KL by hand."""
    generator = torch.Generator().manual_seed(0)
    mb_inds = np.array([5, 0, 7, 2, 3, 1])  # a minibatch of a batch of 8 states, shuffled
    b_has_prior = torch.tensor([True, True, False, True, True, False, False, False])  # 0, 1, 3, 4 queried
    namespace = {"torch": torch, "kl_divergence": torch.distributions.kl_divergence, "mb_inds": mb_inds,
                 "b_has_prior": b_has_prior, "args": types.SimpleNamespace(guidance_kl=direction), "beta": 0.5,
                 "loss": torch.tensor(1.0), "Categorical": torch.distributions.Categorical,
                 "Normal": torch.distributions.Normal}
    if "clevr" in script:
        policy_logits, prior_logits = torch.randn(6, 40, generator=generator), torch.randn(8, 40, generator=generator) * 3
        policy_logits[2, 0] = -200.0  # an action the policy never takes, in a state the prior was not queried on
        namespace.update(newprobs=torch.distributions.Categorical(logits=policy_logits), b_prior_logits=prior_logits)
        p, q = torch.log_softmax(policy_logits, -1), torch.log_softmax(prior_logits[mb_inds], -1)
        reverse, forward = (p.exp() * (p - q)).sum(-1), (q.exp() * (q - p)).sum(-1)
    else:
        mean, std = torch.randn(6, 4, generator=generator), torch.rand(6, 4, generator=generator) + 0.1
        prior_mean, prior_std = torch.randn(8, 4, generator=generator), torch.rand(8, 4, generator=generator) + 0.1
        namespace.update(newprobs=torch.distributions.Normal(mean, std), b_prior_mean=prior_mean, b_prior_std=prior_std)
        q_mean, q_std = prior_mean[mb_inds], prior_std[mb_inds]
        reverse = (torch.log(q_std / std) + (std**2 + (mean - q_mean) ** 2) / (2 * q_std**2) - 0.5).sum(-1)
        forward = (torch.log(std / q_std) + (q_std**2 + (mean - q_mean) ** 2) / (2 * std**2) - 0.5).sum(-1)
    queried = b_has_prior[mb_inds]
    expected = (reverse if direction == "reverse" else forward)[queried].mean()
    exec(guidance_block(script), namespace)
    torch.testing.assert_close(namespace["guidance_kl"], expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(namespace["loss"], 1.0 + 0.5 * expected, rtol=1e-4, atol=1e-5)
    namespace.update(b_has_prior=torch.zeros(8, dtype=torch.bool), loss=torch.tensor(1.0))  # no state queried
    exec(guidance_block(script), namespace)
    assert namespace["guidance_kl"].item() == 0.0 and namespace["loss"].item() == 1.0
