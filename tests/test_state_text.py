"""The prior that reads the state as words (finetune_prior.py --state-encoding text), and early stopping on the
validation NLL (--patience)."""

import csv
import json

import numpy as np
import pytest
import torch

import collect_demos
import finetune_prior
from envs.clevr_robot import STATE_FIELDS as CLEVR_FIELDS
from envs.metaworld_tasks import OBS_DIM as METAWORLD_OBS_DIM
from envs.metaworld_tasks import STATE_FIELDS as METAWORLD_FIELDS
from lago_prior import StateText
from lago_utils.llm import load_tokenizer
from lago_utils.prior_io import load_prior, read_prior_config
from tests.helpers import CLOSE, assert_one_sentence_error, finetune, run_script


@pytest.mark.parametrize("llm", ["smollm2-135m", "tiny-random"])
def test_the_state_text_is_the_observation_rounded_with_one_length_for_every_state(llm):
    tokenizer = load_tokenizer(llm)
    text = StateText(tokenizer, CLEVR_FIELDS, 10)
    obs = torch.tensor([[0.123, -0.30, -0.004, 0.5, 12.3, -0.0951, 0.6, -0.6, 0.015, 0.025]])
    written = " red (+0.12, -0.30), blue (+0.00, +0.50), green (+9.99, -0.10), purple (+0.60, -0.60), cyan (+0.02, +0.02)"
    assert text.text(obs[0].numpy()) == written  # two decimals, half to even, clipped to +-9.99
    states = torch.cat([obs, torch.as_tensor(np.random.default_rng(0).uniform(-0.6, 0.6, (20, 10)), dtype=torch.float32)])
    ids = text.ids(states)
    assert ids.shape == (21, text.length)  # one length: no padding
    for row, state in zip(ids, states):
        assert tokenizer.decode(row.tolist()) == text.text(state.numpy())
    assert tokenizer.decode(ids[0].tolist()) == written


def test_meta_world_writes_hand_gripper_object_and_goal():
    text = StateText(load_tokenizer("smollm2-135m"), METAWORLD_FIELDS, METAWORLD_OBS_DIM)
    obs = np.zeros(METAWORLD_OBS_DIM, dtype=np.float32)
    obs[:7], obs[36:] = [0.1, 0.6, 0.2, 1.0, -0.05, 0.7, 0.02], [0.0, 0.8, 0.1]
    assert text.text(obs) == (" hand (+0.10, +0.60, +0.20), gripper +1.00, object (-0.05, +0.70, +0.02), "
                              "goal (+0.00, +0.80, +0.10)")
    with pytest.raises(ValueError, match="not within 0..9"):
        StateText(load_tokenizer("smollm2-135m"), [("hand", (0, 10))], 10)


@pytest.fixture(scope="module")
def text_prior(tmp_path_factory):
    return finetune(tmp_path_factory, "clevr-text", collect_demos.Args(env="clevr", episodes=15, seed=2),
                    state_encoding="text")


def test_a_text_state_prior_reads_its_prompt_then_its_state_and_round_trips(text_prior):
    config = read_prior_config(text_prior)
    assert config["state_encoding"] == "text" and config["state_fields"] == [[n, list(i)] for n, i in CLEVR_FIELDS]
    prior = load_prior(text_prior, dtype=torch.float32)
    model = prior.model
    assert config["state_tokens"] == model.state_tokens == model.state_text.length
    assert "state_projection.0.weight" not in dict(model.named_parameters())  # the words replace the projection
    # what the LLM reads: the task prompt, then the state's words
    arrays, _ = collect_demos.load_demos(config["demos"])
    obs, task = arrays["obs"][0], arrays["task_text"][0]
    read = model.prompt_ids(task)[1:] + model.state_text.ids(torch.as_tensor(obs)[None])[0].tolist()
    assert model.tokenizer.decode(read) == f"Task: {task}\nState:{model.state_text.text(obs)}"
    assert " red (" in model.tokenizer.decode(read)
    # the checkpoint gives back the validation metrics it was saved with
    _, val_rows = finetune_prior.split_episodes(arrays["episode"], config["args"]["val_fraction"],
                                                np.random.default_rng(config["seed"]))
    metrics = finetune_prior.evaluate_nll(model, torch.as_tensor(arrays["obs"][val_rows]),
                                          arrays["task_text"][val_rows].tolist(),
                                          torch.as_tensor(arrays["actions"][val_rows]), 64, True)
    assert metrics["nll"] == pytest.approx(config["val_metrics"]["nll"], rel=1e-4, abs=1e-5)
    # the task prefix stays cached: only the state's words go through the LLM, with the uncached forward's result
    rows = slice(0, 12)
    texts = arrays["task_text"][rows].tolist()
    cached, uncached = prior(arrays["obs"][rows], texts, use_cache=True), prior(arrays["obs"][rows], texts, use_cache=False)
    torch.testing.assert_close(cached, uncached, **CLOSE["fp32"])
    assert set(prior._bank_index) == set(texts)


def test_a_text_state_prior_with_states_sharing_llm_rows(text_prior):
    prior = load_prior(text_prior, dtype=torch.float32)
    config = read_prior_config(text_prior)
    arrays, _ = collect_demos.load_demos(config["demos"])
    obs, texts = arrays["obs"][:16], arrays["task_text"][:16].tolist()
    one_row_each = prior(obs, texts)
    prior.states_per_row = 8
    torch.testing.assert_close(prior(obs, texts), one_row_each, **CLOSE["fp32"])


def test_lago_runs_guided_by_a_text_state_prior(text_prior, tmp_path):
    import json

    from tests.test_stage2_discrete import SMALL

    result = run_script("lago_clevr_discrete.py", *SMALL, "--prior-path", str(text_prior), "--run-dir", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["global_step"] == 1024 and 0 <= summary["final_eval"]["train"]["success_rate"] <= 1


def test_early_stopping_keeps_the_checkpoint_of_the_lowest_validation_nll(tmp_path_factory, monkeypatch):
    """Validation NLLs scripted 3.0, 2.0, 2.5, 2.6, 1.0 (steps 1 to 5), --patience 2: training stops at step 4 and keeps
    the prior of step 2, which is the prior that 2 steps of the same training give."""
    demos = collect_demos.Args(env="clevr", episodes=15, seed=2)
    scripted = iter([3.0, 2.0, 2.5, 2.6, 1.0])

    def scripted_nll(*args, **kwargs):
        return {"nll": next(scripted), "accuracy": 0.5}

    monkeypatch.setattr(finetune_prior, "evaluate_nll", scripted_nll)
    stopped = read_prior_config(finetune(tmp_path_factory, "patience", demos, train_steps=50, eval_every=1, patience=2))
    assert [h["nll"] for h in stopped["val_history"]] == [3.0, 2.0, 2.5, 2.6]
    assert stopped["best_step"] == 2 and stopped["steps_trained"] == 4 and stopped["val_metrics"]["nll"] == 2.0
    monkeypatch.undo()
    two_steps = finetune(tmp_path_factory, "two-steps", collect_demos.Args(env="clevr", episodes=15, seed=2), train_steps=2)
    kept, trained = (load_prior(path, dtype=torch.float32).model.state_dict() for path in
                     (tmp_path_factory.getbasetemp() / "patience0" / "prior", two_steps))
    assert kept.keys() == trained.keys()
    for name in kept:
        torch.testing.assert_close(kept[name], trained[name], rtol=0, atol=0)


@pytest.mark.parametrize("argv, message", [
    (["--patience", "-1"], "--patience must be 0 (off) or a positive integer, got -1"),
    (["--patience", "2", "--val-fraction", "0"], "--patience stops on the validation NLL: give --val-fraction above 0"),
    (["--llm", "none", "--state-encoding", "text"], "--state-encoding text needs an LLM"),
])
def test_bad_flags_are_one_sentence(argv, message):
    assert_one_sentence_error(run_script("finetune_prior.py", *argv), "finetune_prior.py", message)


def test_the_convergence_study_fine_tunes_evaluates_and_reports_each_cell(tmp_path, capsys):
    """The state as words, a small demonstration file, pretrained (here: the tiny LLM's own init) and random weights,
    one seed, a few steps: each cell fine-tuned with early stopping, evaluated alone, plotted and compared."""
    from benchmarks import convergence_study

    args = convergence_study.Args(llm="tiny-random", encodings="text", episodes="15", seeds="1", max_steps=6,
                                  eval_every=2, patience=1, eval_episodes=4, demos=str(tmp_path / "demos"),
                                  checkpoints=str(tmp_path / "checkpoints"), results=str(tmp_path / "results"),
                                  bootstrap_reps=200)
    convergence_study.main(args)
    records = sorted(path.name for path in (tmp_path / "results" / "clevr").glob("*.json"))
    assert len(records) == 2 * 3  # 2 priors: the fine-tune, and the prior alone with 2 instruction sets
    config = json.loads((tmp_path / "results" / "clevr" / "tiny-random-text15-s1-random__finetune.json").read_text())
    assert config["state_encoding"] == "text" and config["llm_init"] == "random" and config["val_history"]
    assert (tmp_path / "results" / "convergence.png").stat().st_size > 10_000
    with open(tmp_path / "results" / "answers.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2  # instruction sets x goal splits
    for row in rows:
        assert float(row["low"]) <= float(row["difference"]) <= float(row["high"])
    convergence_study.main(args)  # everything is there: nothing runs again
    assert "2 fine-tunes, 2 done, 0 to go" in capsys.readouterr().out
