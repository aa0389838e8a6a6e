"""The GPU check's CPU dry run, and the random-weight SmolLM2 architecture it falls back to without the weights."""

import json
import os
import subprocess

from lago_utils.llm import load_llm
from tests.helpers import ROOT


def test_the_quick_gpu_check_writes_every_part(tmp_path):
    out = tmp_path / "check.json"
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "gpu_check.sh"), str(out)], capture_output=True, text=True,
                            timeout=900, env={**os.environ, "QUICK": "1", "OMP_NUM_THREADS": "1", "WHEELS": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["done"] and report["quick"] and report["llm"] == "tiny-random" and report["machine"]["cores"] >= 1
    assert report["finetune"]["steps"] == 4 and report["finetune"]["steps_per_second"] > 0
    assert [(p["batch"], p["max_batch"], p["states_per_row"]) for p in report["prior"]] == [(64, 512, 1), (64, 64, 1),
                                                                                           (64, 64, 64)]
    assert all(p["cached_states_per_second"] > 0 for p in report["prior"])
    parts = [report["finetune"], *report["prior"], *report["stage2"].values()]
    assert not [part["error"] for part in parts if "error" in part]
    assert all(part["gpu_utilisation_percent"] is None for part in parts)  # no GPU here
    assert list(report["stage2"]) == ["clevr, default devices", "metaworld, default devices"]  # no GPU: one placement
    for stage2 in report["stage2"].values():
        assert stage2["ppo_seconds"] > 0 and stage2["lago_settings"]["prior_fraction"] == 1.0  # every state queried
        assert stage2["ratio"] == stage2["lago_seconds"] / stage2["ppo_seconds"]
    assert report["targets"] == {"prior_states_per_second_at_16384": 100_000, "lago_over_ppo": 1.1}


def test_the_quick_defaults_check_writes_every_part(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "gpu_check_defaults.sh"), str(tmp_path)], capture_output=True,
                            text=True, timeout=900, env={**os.environ, "QUICK": "1", "OMP_NUM_THREADS": "1",
                                                         "WHEELS": str(tmp_path / "none")})
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("clevr", "metaworld_16envs"):
        stage2 = json.loads((tmp_path / f"stage2_{name}.json").read_text())
        assert stage2["ppo_seconds"] > 0 and stage2["lago_settings"]["prior_fraction"] == 1.0
        assert stage2["ppo_steps_per_second"] > 0 and stage2["lago_steps_per_second"] > 0
        rollout = stage2["lago_settings"]["num_envs"] * stage2["lago_settings"]["num_steps"]
        assert stage2["lago_prior_calls"] == stage2["total_timesteps"] // rollout >= 2  # one call per rollout
        first, median = stage2["lago_prior_first_call_seconds"], stage2["lago_prior_call_seconds_median"]
        assert first > 0 and median > 0 and first + median <= stage2["lago_prior_seconds"] + 0.06  # each is rounded
    assert json.loads((tmp_path / "stage2_metaworld_16envs.json").read_text())["lago_settings"]["num_envs"] == 2
    prior = json.loads((tmp_path / "prior.json").read_text())
    assert (prior["max_batch"], prior["states_per_row"]) == (512, 1)  # the CPU's defaults
    rollout = json.loads((tmp_path / "prior_rollout.json").read_text())
    assert (rollout["batch"], rollout["distinct_texts"]) == (1024, 16) and rollout["cached_states_per_second"] > 0
    assert json.loads((tmp_path / "prior_rollout_chunks.json").read_text())["max_batch"] == 512
    for batch_size in (32, 128):
        finetune = json.loads((tmp_path / f"finetune_{batch_size}.json").read_text())
        assert finetune["batch_size"] == batch_size and finetune["steps_per_second"] > 0


def test_the_quick_jobs_check_times_runs_alone_and_side_by_side(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "gpu_check_jobs.sh"), str(tmp_path)], capture_output=True,
                            text=True, timeout=900, env={**os.environ, "QUICK": "1", "OMP_NUM_THREADS": "1",
                                                         "WHEELS": str(tmp_path / "none")})
    assert result.returncode == 0, result.stderr[-3000:]
    for env, runs_alone in (("clevr", 1), ("metaworld", 1)):
        report = json.loads((tmp_path / f"jobs_{env}.json").read_text())
        assert report["env"] == env and report["steps_per_run"] == 2048 and list(report["jobs"]) == ["1", "2"]
        assert [report["jobs"][jobs]["runs"] for jobs in ("1", "2")] == [runs_alone, 2]
        for part in report["jobs"].values():
            assert len(part["run_seconds"]) == part["runs"] and 0 < part["run_seconds_median"] < part["wall_seconds"]
            assert part["prior_seconds_median"] > 0  # LaGO: the prior was queried
            assert part["env_steps_per_second"] == round(part["runs"] * 2048 / part["wall_seconds"], 1)


def test_the_smollm2_architecture_with_random_weights_has_smollm2s_decoder():
    arch, tokenizer = load_llm("smollm2-135m-arch")
    real, _ = load_llm("smollm2-135m")
    for name in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads"):
        assert getattr(arch.config, name) == getattr(real.config, name)

    def decoder_parameters(model):
        return sum(p.numel() for name, p in model.named_parameters() if "embed_tokens" not in name)

    assert decoder_parameters(arch) == decoder_parameters(real)  # the same work per token; only the vocabulary differs
    assert tokenizer("Task: reach")["input_ids"][0] == 256
