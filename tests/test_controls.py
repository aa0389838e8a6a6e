"""The control priors (benchmarks/control_priors.py, finetune_prior.py --llm none): their checkpoints load through the
LaGO scripts' own loader, give what they are defined to give, and guide a LaGO run of both scripts."""

import numpy as np
import pytest
import torch

import collect_demos
import finetune_prior
from benchmarks import control_priors, grid
from benchmarks.control_priors import Args
from envs.clevr_robot import CLEVRRobotEnv
from envs.metaworld_tasks import make_metaworld_env
from lago_utils.device import cpu_has_native_bf16
from lago_utils.llm import PriorError
from lago_utils.prior_io import load_prior, read_prior_config
from tests.helpers import assert_one_sentence_error, finetune, run_script
from tests.test_stage2_continuous import run_ok as run_metaworld
from tests.test_stage2_discrete import run_ok as run_clevr


def clevr_states(count: int = 6) -> tuple[np.ndarray, list[str]]:
    env = CLEVRRobotEnv()
    resets = [env.reset(seed=seed) for seed in range(count)]
    return np.stack([obs for obs, _ in resets]), [info["goal_text"] for _, info in resets]


def demos_of(prior_path) -> tuple[dict, np.ndarray]:
    config = read_prior_config(prior_path)
    arrays, _ = collect_demos.load_demos(config["demos"])
    train_rows, _ = finetune_prior.split_episodes(arrays["episode"], 0.1, np.random.default_rng(1))
    return config, arrays["actions"][train_rows]


def test_the_uniform_and_marginal_priors_ignore_state_and_goal(tmp_path, clevr_prior):
    config, actions = demos_of(clevr_prior)
    obs, texts = clevr_states()
    for control in ("uniform", "marginal"):
        path = control_priors.main(Args(control=control, demos=config["demos"], out=str(tmp_path / control)))
        prior = load_prior(path, CLEVRRobotEnv())
        assert prior.dtype == torch.float32 and read_prior_config(path)["llm"] == control
        probabilities = torch.softmax(prior(obs, texts), -1)
        assert probabilities.shape == (6, 40) and torch.allclose(probabilities, probabilities[:1].expand(6, -1))
        frequencies = np.bincount(actions, minlength=40) / len(actions) if control == "marginal" else np.full(40, 1 / 40)
        expected = 0.95 * frequencies + 0.05 / 40  # smoothed as the LLM prior's targets: the support stays full
        np.testing.assert_allclose(probabilities[0].numpy(), expected, rtol=1e-5)
    uniform = read_prior_config(tmp_path / "uniform")["val_metrics"]
    assert uniform["nll"] == pytest.approx(np.log(40), rel=1e-5)  # ln 40: the NLL a learned prior is to beat


def test_the_marginal_gaussian_fits_the_demonstrated_actions(tmp_path, metaworld_prior):
    config, actions = demos_of(metaworld_prior)
    path = control_priors.main(Args(control="marginal", demos=config["demos"], out=str(tmp_path / "marginal")))
    env = make_metaworld_env("reach-v3", seed=0)
    prior = load_prior(path, env)
    mean, std = prior(np.stack([env.reset(seed=s)[0] for s in range(3)]), ["anything"] * 3)
    np.testing.assert_allclose(mean[0].numpy(), actions.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std[0].numpy(), np.maximum(actions.std(0, ddof=1), 0.05), rtol=1e-5, atol=1e-6)
    assert torch.equal(mean[0], mean[2]) and torch.all(std >= 0.05)
    with pytest.raises(PriorError, match="--control uniform needs Discrete actions"):
        control_priors.main(Args(control="uniform", demos=config["demos"], out=str(tmp_path / "uniform")))


def test_the_no_goal_prior_reads_one_sentence_for_every_goal(tmp_path, clevr_prior):
    path = control_priors.main(Args(control="no-goal", prior_path=str(clevr_prior), out=str(tmp_path / "nogoal")))
    assert sorted(p.name for p in path.iterdir()) == sorted(p.name for p in clevr_prior.iterdir())
    obs, texts = clevr_states()
    no_goal, source = load_prior(path, dtype=torch.float32), load_prior(clevr_prior, dtype=torch.float32)
    expected = source(obs, ["Complete the task."] * 6)
    torch.testing.assert_close(no_goal(obs, texts), expected, rtol=0, atol=0)
    torch.testing.assert_close(no_goal(obs, ["Push the red ball to the left of the blue ball."] * 6), expected,
                               rtol=0, atol=0)
    assert not torch.equal(source(obs, texts), expected)  # the goal's words do move the source prior
    with pytest.raises(PriorError, match="is a control prior already"):
        control_priors.main(Args(control="no-goal", prior_path=str(path), out=str(tmp_path / "twice")))


@pytest.mark.parametrize("env_name", ["clevr", "metaworld"])
def test_the_prior_without_a_language_model_round_trips(tmp_path_factory, env_name, clevr_prior, metaworld_prior):
    demos = read_prior_config(clevr_prior if env_name == "clevr" else metaworld_prior)["demos"]
    path = finetune_prior.main(finetune_prior.Args(demos=demos, llm="none", tokenizer="tiny-random", train_steps=4,
                                                   batch_size=8, eval_every=2, out=str(tmp_path_factory.mktemp("none") / "p"),
                                                   run_dir=str(tmp_path_factory.mktemp("none_runs"))))
    config = read_prior_config(path)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "heads.safetensors"]
    assert config["llm"] == "none" and config["tokenizer"] == "tiny-random" and config["machine"]["precision"] == "fp32"
    arrays, _ = collect_demos.load_demos(demos)
    _, val_rows = finetune_prior.split_episodes(arrays["episode"], 0.1, np.random.default_rng(1))
    prior = load_prior(path)
    metrics = finetune_prior.evaluate_nll(prior.model, torch.as_tensor(arrays["obs"][val_rows]),
                                          arrays["task_text"][val_rows].tolist(), torch.as_tensor(arrays["actions"][val_rows]),
                                          64, env_name == "clevr")
    for name, value in config["val_metrics"].items():
        assert metrics[name] == pytest.approx(value, rel=1e-5)
    if env_name == "clevr":  # the instruction's words reach the output
        obs, texts = clevr_states(2)
        assert not torch.equal(prior(obs[:1], texts[:1]), prior(obs[:1], texts[1:2]))


def test_the_prior_without_a_language_model_refuses_llm_flags():
    for flags in (dict(compile=True), dict(gradient_checkpointing=True), dict(llm_init="random")):
        with pytest.raises(PriorError, match="--llm none has no LLM"):
            finetune_prior.validate_args(finetune_prior.Args(llm="none", **flags))
    result = run_script("benchmarks/control_priors.py", "--control", "no-goal")
    assert_one_sentence_error(result, "control_priors.py", "--control no-goal needs --prior-path")


@pytest.fixture(scope="module")
def clevr_controls(tmp_path_factory, clevr_prior) -> dict:
    folder, demos = tmp_path_factory.mktemp("controls"), read_prior_config(clevr_prior)["demos"]
    paths = {control: control_priors.main(Args(control=control, demos=demos, out=str(folder / control)))
             for control in ("uniform", "marginal")}
    paths["nogoal"] = control_priors.main(Args(control="no-goal", prior_path=str(clevr_prior), out=str(folder / "nogoal")))
    paths["none"] = finetune(tmp_path_factory, "none", collect_demos.Args(env="clevr", episodes=15, seed=2), llm="none",
                             tokenizer="tiny-random")
    return paths


@pytest.mark.parametrize("control", ["uniform", "marginal", "nogoal", "none"])
def test_each_control_guides_a_lago_run(tmp_path, clevr_controls, control):
    summary = run_clevr("lago_clevr_discrete.py", tmp_path / "run", "--prior-path", str(clevr_controls[control]),
                        "--guidance-coef", "1")
    assert summary["global_step"] == 1024 and set(summary["final_eval"]) == {"train", "test"}
    assert summary["llm"] == {"nogoal": "tiny-random"}.get(control, control)
    assert summary["prior_dtype"] == "float32" or control == "nogoal"  # the controls without an LLM: fp32 everywhere


def test_a_metaworld_lago_run_takes_the_marginal_gaussian(tmp_path, metaworld_prior):
    path = control_priors.main(Args(control="marginal", demos=read_prior_config(metaworld_prior)["demos"],
                                    out=str(tmp_path / "marginal")))
    summary = run_metaworld("lago_metaworld_continuous.py", tmp_path / "run", "--prior-path", str(path))
    assert summary["llm"] == "marginal" and summary["prior_dtype"] == "float32"


def test_the_grid_plans_control_runs_in_fp32_and_bc_alone(tmp_path):
    args = grid.Args(methods="lago-uniform,lago-none,lago-smollm2-135m-nogoal,prior-alone-none", seeds="1",
                     out=str(tmp_path / "runs"), results=str(tmp_path))
    runs = {run.method: run for run in grid.plan(args)}
    assert runs["lago-uniform"].prior_dtype == runs["lago-none"].prior_dtype == "float32"
    here = "bfloat16" if cpu_has_native_bf16() else "float32"
    assert runs["lago-smollm2-135m-nogoal"].prior_dtype == here  # the LLM prior's precision on this machine
    command = runs["prior-alone-none"].command  # behaviour cloning alone: the no-LLM prior, greedy
    assert command[:2] == ["evaluate_prior.py", "--prior-path"] and command[2].endswith("prior__clevr__none__1")


@pytest.mark.parametrize("control", ["uniform", "none"])
def test_each_control_plays_alone_and_writes_its_record(tmp_path, clevr_controls, control):
    """The prior alone of a control (behaviour cloning alone, for the no-LLM prior): greedy episodes and the JSON
    record the grid archives, with no language model to count."""
    import json

    import evaluate_prior

    path = tmp_path / "alone.json"
    results = evaluate_prior.main(evaluate_prior.Args(prior_path=str(clevr_controls[control]), episodes=4,
                                                      max_episode_steps=5, json=str(path)))
    record = json.loads(path.read_text())
    assert record["llm_parameters"] == 0 and record["prior"]["llm"] == control
    assert set(results) == {"clevr/train", "clevr/test"} and record["results"]["clevr/train"]["episodes"] == 4


def test_a_priors_name_is_its_llms_alias_and_how_it_differs():
    from lago_utils.llm import base_llm
    from lago_utils.prior_io import default_prior_path

    assert base_llm("smollm2-135m-nogoal") == base_llm("smollm2-135m-random") == "smollm2-135m"
    assert base_llm("qwen2.5-coder-0.5b-random") == "qwen2.5-coder-0.5b" and base_llm("none") == "none"
    assert default_prior_path("clevr", "qwen2.5-coder-0.5b-random")[0] == "checkpoints/prior__clevr__qwen2.5-coder-0.5b-random__1"
    with pytest.raises(PriorError, match="'gpt-2-random' is not an alias"):
        default_prior_path("clevr", "gpt-2-random")
