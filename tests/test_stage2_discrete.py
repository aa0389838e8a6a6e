"""Stage 2 on CLEVR-Robot: ppo_clevr_discrete.py and lago_clevr_discrete.py end to end, the guidance, errors."""

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lago_clevr_discrete import Args, guidance_coef
from lago_utils.guidance import check_lago_args
from rundir import REVISION
from tests.helpers import assert_one_sentence_error, run_script

SMALL = ["--total-timesteps", "1024", "--num-envs", "4", "--num-steps", "64", "--eval-interval", "512",
         "--eval-episodes", "5", "--seed", "3"]


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


def run_ok(script: str, run_dir: Path, *argv: str) -> dict:
    result = run_script(script, *SMALL, "--run-dir", str(run_dir), *argv)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("ppo") / "run"
    run_ok("ppo_clevr_discrete.py", run_dir)
    return run_dir


def test_ppo_end_to_end_writes_the_summary_and_cleanrl_tags(ppo_run):
    summary = json.loads((ppo_run / "summary.json").read_text())
    assert summary["global_step"] == 1024 and summary["method"] == "ppo_clevr_discrete" and summary["revision"] == REVISION
    assert set(summary["final_eval"]) == {"train", "test"}
    assert [e["global_step"] for e in summary["evaluations"]] == [512, 1024]
    for split in ("train", "test"):
        assert 0.0 <= summary["final_eval"][split]["success_rate"] <= 1.0
    for tag in ("charts/episodic_return", "charts/SPS", "losses/value_loss", "losses/approx_kl",
                "losses/explained_variance", "eval/success_rate", "eval/return", "eval_test/success_rate"):
        assert scalars(ppo_run, tag), tag


def test_lago_end_to_end_logs_the_guidance(tmp_path, clevr_prior, cpu_precision):
    summary = run_ok("lago_clevr_discrete.py", tmp_path / "run", "--prior-path", str(clevr_prior),
                     "--guidance-schedule", "linear", "--guidance-decay-end", "0.6")
    assert summary["global_step"] == 1024 and summary["llm"] == "tiny-random" and summary["prior_seconds"] > 0
    assert summary["prior_dtype"] == {"bf16": "bfloat16", "fp32": "float32"}[cpu_precision]
    coefs = [value for _, value in scalars(tmp_path / "run", "charts/guidance_coef")]
    assert coefs == pytest.approx([0.1, 0.1 * (1 - 0.25 / 0.6), 0.1 * (1 - 0.5 / 0.6), 0.0])
    assert len(scalars(tmp_path / "run", "losses/guidance_kl")) == 3  # the prior is not queried once beta is 0
    assert len(scalars(tmp_path / "run", "perf/prior_seconds")) == 3
    agreement = [value for _, value in scalars(tmp_path / "run", "charts/prior_agreement")]
    assert len(agreement) == 3 and all(0.0 <= a <= 1.0 for a in agreement)
    assert set(summary["final_eval"]) == {"train", "test"}


def test_guidance_coef_zero_reproduces_ppo_and_guidance_changes_it(tmp_path, ppo_run, clevr_prior):
    ppo_returns = scalars(ppo_run, "charts/episodic_return")
    assert len(ppo_returns) > 50
    run_ok("lago_clevr_discrete.py", tmp_path / "zero", "--prior-path", str(clevr_prior), "--guidance-coef", "0")
    assert scalars(tmp_path / "zero", "charts/episodic_return") == ppo_returns
    assert scalars(tmp_path / "zero", "losses/value_loss") == scalars(ppo_run, "losses/value_loss")
    assert scalars(tmp_path / "zero", "eval/return") == scalars(ppo_run, "eval/return")
    # the comparison can fail: a strong guidance term changes the updates and so the later episodes
    run_ok("lago_clevr_discrete.py", tmp_path / "guided", "--prior-path", str(clevr_prior), "--guidance-coef", "5",
           "--guidance-schedule", "constant")
    assert scalars(tmp_path / "guided", "losses/value_loss") != scalars(ppo_run, "losses/value_loss")


def test_prior_fraction_queries_a_subset(tmp_path, clevr_prior):
    summary = run_ok("lago_clevr_discrete.py", tmp_path / "run", "--prior-path", str(clevr_prior),
                     "--prior-fraction", "0.25", "--guidance-schedule", "constant", "--guidance-kl", "forward")
    assert summary["args"]["prior_fraction"] == 0.25 and len(scalars(tmp_path / "run", "losses/guidance_kl")) == 4


def test_schedules_give_the_expected_coefficients():
    constant = Args(guidance_coef=0.2, guidance_schedule="constant")
    linear = Args(guidance_coef=0.2, guidance_schedule="linear", guidance_decay_end=0.5)
    exp = Args(guidance_coef=0.2, guidance_schedule="exp", guidance_decay_end=0.5)
    assert [guidance_coef(constant, p) for p in (0.0, 0.7, 1.0)] == [0.2, 0.2, 0.2]
    assert [guidance_coef(linear, p) for p in (0.0, 0.25, 0.5, 0.9)] == pytest.approx([0.2, 0.1, 0.0, 0.0])
    assert [guidance_coef(exp, p) for p in (0.0, 0.25, 0.49999, 0.5)] == pytest.approx([0.2, 0.02, 0.002, 0.0], rel=1e-3)


def test_default_prior_path_follows_the_llm(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no checkpoints/ here, whatever has been fine-tuned in the repository
    args = Args(llm="gemma3-270m", prior_path=None)
    with pytest.raises(SystemExit, match=r"--prior-path: checkpoints/prior__clevr__gemma3-270m__1 is not a LaGO prior"):
        check_lago_args(args, "clevr")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--total-timesteps", "0"], "--total-timesteps must be a positive integer, got 0"),
        (["--guidance-coef", "-1"], "--guidance-coef must be finite and >= 0"),
        (["--prior-fraction", "0"], "--prior-fraction must be finite and in (0, 1]"),
        (["--llm", "gemma3-270m"], "--llm gemma3-270m does not match the prior"),
        (["--env-id", "reach-v3"], "--env-id must be CLEVRRobot-v0"),
    ],
)
def test_lago_bad_arguments_are_one_sentence(tmp_path, clevr_prior, argv, message):
    result = run_script("lago_clevr_discrete.py", "--prior-path", str(clevr_prior), "--run-dir", str(tmp_path / "r"), *argv)
    assert_one_sentence_error(result, "lago_clevr_discrete.py", message)
    assert not (tmp_path / "r").exists()


def test_lago_refuses_a_prior_that_does_not_fit(tmp_path, metaworld_prior):
    result = run_script("lago_clevr_discrete.py", "--prior-path", str(metaworld_prior), "--run-dir", str(tmp_path / "r"))
    assert_one_sentence_error(result, "lago_clevr_discrete.py", "trained for Box(4,) actions but the env has Discrete(40) actions")
    result = run_script("lago_clevr_discrete.py", "--prior-path", str(tmp_path / "nowhere"))
    assert_one_sentence_error(result, "lago_clevr_discrete.py", "is not a LaGO prior checkpoint")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--env-id", "CartPole-v1"], "--env-id must be CLEVRRobot-v0, got 'CartPole-v1' (Meta-World tasks: *_metaworld_continuous.py)"),
        (["--num-envs", "0"], "--num-envs must be a positive integer, got 0"),
        (["--total-timesteps", "100"], "--total-timesteps 100 must cover one batch of 1024 steps"),
        (["--seed", "-3"], "--seed must be a non-negative integer, got -3"),
        (["--num-envs", "2", "--num-steps", "2", "--num-minibatches", "4", "--total-timesteps", "8"],
         "--total-timesteps 8 must cover one batch of 4 steps, and --num-minibatches at most half that many"),
    ],
)
def test_ppo_bad_arguments_are_one_sentence(argv, message):
    assert_one_sentence_error(run_script("ppo_clevr_discrete.py", *argv), "ppo_clevr_discrete.py", message)


def test_a_run_dir_that_cannot_be_made_and_an_unknown_llm_are_one_sentence(tmp_path):
    (tmp_path / "file").write_text("")
    result = run_script("ppo_clevr_discrete.py", "--run-dir", str(tmp_path / "file" / "run"))
    assert_one_sentence_error(result, "ppo_clevr_discrete.py", f"--run-dir {tmp_path / 'file' / 'run'} cannot be created")
    result = run_script("lago_clevr_discrete.py", "--llm", "gpt-9", cwd=tmp_path)
    assert_one_sentence_error(result, "lago_clevr_discrete.py", "--llm 'gpt-9' is not an alias (smollm2-135m, gemma3-270m")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("module", ["ppo_clevr_discrete", "ppo_metaworld_continuous", "lago_clevr_discrete",
                                    "lago_metaworld_continuous"])
def test_a_time_limit_bootstraps_from_the_final_value(module):
    import importlib

    compute_advantages = importlib.import_module(module).compute_advantages
    # one env, four steps: step 1 hits the time limit (final observation worth 3.0), step 3 terminates
    rewards = torch.tensor([[1.0], [0.0], [2.0], [1.0]])
    values = torch.tensor([[0.5], [1.0], [1.5], [2.0]])
    dones = torch.tensor([[0.0], [0.0], [1.0], [0.0]])  # whether the step's observation starts a new episode
    final_values = torch.tensor([[0.0], [3.0], [0.0], [0.0]])
    next_value, next_done = torch.tensor([[10.0]]), torch.tensor([1.0])
    advantages = compute_advantages(rewards, values, dones, final_values, next_value, next_done, 0.9, 0.8)
    # by hand (gamma 0.9, lambda 0.8): delta_3 = 1 - 2 = -1; delta_2 = 2 + 0.9 * 2 - 1.5 = 2.3;
    # delta_1 = 0 + 0.9 * 3.0 - 1 = 1.7 (CleanRL's rule: 0 - 1 = -1); delta_0 = 1 + 0.9 * 1 - 0.5 = 1.4
    expected = torch.tensor([[1.4 + 0.72 * 1.7], [1.7], [2.3 - 0.72], [-1.0]])
    torch.testing.assert_close(advantages, expected)
    # treating the time limit as terminal (--no-bootstrap-truncation: no final values) gives other advantages
    terminal = compute_advantages(rewards, values, dones, torch.zeros_like(final_values), next_value, next_done, 0.9, 0.8)
    torch.testing.assert_close(terminal, torch.tensor([[1.4 - 0.72], [-1.0], [2.3 - 0.72], [-1.0]]))


def test_bootstrapping_at_time_limits_changes_the_value_targets(tmp_path, ppo_run):
    # CLEVR-Robot episodes end at the 10-push limit unless the goal is reached: the rule matters from the first update
    run_ok("ppo_clevr_discrete.py", tmp_path / "cleanrl", "--no-bootstrap-truncation")
    assert scalars(tmp_path / "cleanrl", "losses/value_loss") != scalars(ppo_run, "losses/value_loss")
    summary = json.loads((ppo_run / "summary.json").read_text())
    assert summary["args"]["bootstrap_truncation"] is True
    assert set(summary["eval_goals"]) == {"train", "test"} and "held-out" in summary["eval_goals"]["test"]
