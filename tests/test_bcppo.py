"""PPO initialised by behaviour cloning (bcppo_clevr_discrete.py, bcppo_metaworld_continuous.py) end to end: with no
cloning it is PPO exactly; cloning moves the policy towards the demonstrations; bad demonstration files are one
sentence, before anything is written."""

from lago_utils.prior_io import read_prior_config
from tests import test_stage2_continuous as metaworld
from tests import test_stage2_discrete as clevr
from tests.helpers import assert_one_sentence_error, run_script
from tests.test_stage2_continuous import ppo_run as metaworld_ppo_run  # noqa: F401  (fixtures)
from tests.test_stage2_discrete import ppo_run, scalars  # noqa: F401


def test_bcppo_on_clevr_is_ppo_without_cloning_and_clones_the_demonstrations(tmp_path, ppo_run, clevr_prior):
    demos = read_prior_config(clevr_prior)["demos"]
    clevr.run_ok("bcppo_clevr_discrete.py", tmp_path / "none", "--demos", demos, "--bc-steps", "0")
    for tag in ("charts/episodic_return", "losses/value_loss", "eval/success_rate"):
        assert scalars(tmp_path / "none", tag) == scalars(ppo_run, tag), tag
    summary = clevr.run_ok("bcppo_clevr_discrete.py", tmp_path / "bc", "--demos", demos, "--bc-steps", "200")
    assert summary["method"] == "bcppo_clevr_discrete" and summary["args"]["bc_steps"] == 200
    losses = [value for _, value in scalars(tmp_path / "bc", "bc/loss")]
    assert len(losses) == 200 and sum(losses[-20:]) < 0.5 * sum(losses[:20])  # the clone fits the demonstrations
    assert scalars(tmp_path / "bc", "charts/episodic_return") != scalars(ppo_run, "charts/episodic_return")


def test_bcppo_on_metaworld_is_ppo_without_cloning_and_clones_the_task(tmp_path, metaworld_ppo_run, metaworld_prior):
    demos = read_prior_config(metaworld_prior)["demos"]
    metaworld.run_ok("bcppo_metaworld_continuous.py", tmp_path / "none", "--demos", demos, "--bc-steps", "0")
    for tag in ("charts/episodic_return", "losses/value_loss", "eval/return"):
        assert scalars(tmp_path / "none", tag) == scalars(metaworld_ppo_run, tag), tag
    metaworld.run_ok("bcppo_metaworld_continuous.py", tmp_path / "bc", "--demos", demos, "--bc-steps", "100")
    losses = [value for _, value in scalars(tmp_path / "bc", "bc/loss")]
    assert len(losses) == 100 and sum(losses[-10:]) < sum(losses[:10])
    assert scalars(tmp_path / "bc", "eval/return") != scalars(metaworld_ppo_run, "eval/return")


def test_bcppo_refuses_demonstrations_of_another_benchmark_or_task_before_writing(tmp_path, clevr_prior, metaworld_prior):
    clevr_demos, metaworld_demos = (read_prior_config(p)["demos"] for p in (clevr_prior, metaworld_prior))
    result = run_script("bcppo_clevr_discrete.py", *clevr.SMALL, "--demos", metaworld_demos, "--run-dir", str(tmp_path / "a"))
    assert_one_sentence_error(result, "bcppo_clevr_discrete.py", "holds metaworld demonstrations, not CLEVR-Robot's")
    result = run_script("bcppo_metaworld_continuous.py", *metaworld.SMALL, "--task", "push-v3", "--demos", metaworld_demos,
                        "--run-dir", str(tmp_path / "b"))
    assert_one_sentence_error(result, "bcppo_metaworld_continuous.py", "holds no demonstrations of push-v3 (its tasks: reach-v3)")
    result = run_script("bcppo_clevr_discrete.py", *clevr.SMALL, "--demos", str(tmp_path / "missing.npz"),
                        "--run-dir", str(tmp_path / "c"))
    assert_one_sentence_error(result, "bcppo_clevr_discrete.py", "--demos: demonstration file")
    result = run_script("bcppo_clevr_discrete.py", *clevr.SMALL, "--demos", clevr_demos, "--bc-steps", "-1",
                        "--run-dir", str(tmp_path / "d"))
    assert_one_sentence_error(result, "bcppo_clevr_discrete.py", "--bc-steps must be a non-negative integer, got -1")
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_the_grid_runs_bcppo_on_the_priors_demonstrations(tmp_path):
    from benchmarks import grid

    run, = grid.plan(grid.Args(env="metaworld", tasks="door-open-v3", methods="bcppo", seeds="2",
                               out=str(tmp_path), results=str(tmp_path)))
    assert run.command[:5] == ["bcppo_metaworld_continuous.py", "--task", "door-open-v3", "--demos",
                               str(grid.ROOT / "demos" / "metaworld.npz")]
    assert run.settings["demos"] == "metaworld.npz"  # the file's name: its path differs from machine to machine
