"""Adaptive guidance in both LaGO scripts: --guidance-schedule adaptive (beta tuned by dual ascent towards a target
guidance KL) on a hand-computed case, a coefficient that stays finite and positive, --guidance-schedule advantage
(guidance only where the critic does not back the policy's own action against the prior), tiny runs of both scripts,
and coefficient 0 = PPO."""

import math

import pytest

from lago_utils.guidance import GUIDANCE_DUAL_STEP, adapt_guidance_coef
from tests.helpers import assert_one_sentence_error, run_script
from tests.test_stage2_continuous import run_ok as run_metaworld
from tests.test_stage2_discrete import SMALL, scalars
from tests.test_stage2_discrete import run_ok as run_clevr


def test_the_dual_step_on_a_hand_computed_case():
    assert GUIDANCE_DUAL_STEP == 0.1
    # KL 1.5 against a target of 1.0: relative error +0.5, log beta grows by 0.1 * 0.5
    assert adapt_guidance_coef(0.5, 1.5, 1.0) == pytest.approx(0.5 * math.exp(0.05))
    # KL 0.25 against 0.5: relative error -0.5, log beta shrinks by 0.05
    assert adapt_guidance_coef(2.0, 0.25, 0.5) == pytest.approx(2.0 * math.exp(-0.05))
    # on target: unchanged; far above or below: the step is clipped to +-0.1
    assert adapt_guidance_coef(0.3, 1.0, 1.0) == 0.3
    assert adapt_guidance_coef(0.3, 1e6, 1.0) == pytest.approx(0.3 * math.exp(0.1))
    assert adapt_guidance_coef(0.3, 0.0, 1.0) == pytest.approx(0.3 * math.exp(-0.1))
    assert adapt_guidance_coef(0.0, 5.0, 1.0) == 0.0  # beta_0 = 0 stays 0: PPO


def test_beta_stays_finite_and_positive_over_a_whole_training():
    import random

    rng = random.Random(0)
    for kls in ([1e30] * 1000, [0.0] * 1000, [rng.choice([0.0, 1e-9, 0.7, 3.0, 1e12]) for _ in range(1000)]):
        beta = 0.3
        for kl in kls:  # 1,000 updates: more than a 1M-step run has (CLEVR-Robot 976, Meta-World 489)
            beta = adapt_guidance_coef(beta, kl, 0.5)
            assert math.isfinite(beta) and beta > 0


def test_clevr_adaptive_tunes_beta_after_each_update_by_the_updates_mean_kl(tmp_path, clevr_prior):
    summary = run_clevr("lago_clevr_discrete.py", tmp_path / "run", "--prior-path", str(clevr_prior),
                        "--guidance-coef", "0.5", "--guidance-schedule", "adaptive", "--guidance-target-kl", "0.01")
    assert summary["args"]["guidance_target_kl"] == 0.01
    betas = [value for _, value in scalars(tmp_path / "run", "charts/guidance_coef")]
    kls = [value for _, value in scalars(tmp_path / "run", "losses/guidance_kl")]
    assert len(betas) == len(kls) == 4 and betas[0] == pytest.approx(0.5)
    for beta, kl, following in zip(betas, kls, betas[1:]):  # each update's beta is the last one's, one step on
        assert following == pytest.approx(adapt_guidance_coef(beta, kl, 0.01), rel=1e-5)
    assert betas[-1] != pytest.approx(betas[0])


def test_clevr_advantage_guides_fewer_states_than_constant_guidance(tmp_path, clevr_prior):
    """The same seed and beta_0: the first rollout is the same, so the first update's guidance differs only where the
    filter drops states."""
    runs = {}
    for schedule in ("constant", "advantage"):
        run_clevr("lago_clevr_discrete.py", tmp_path / schedule, "--prior-path", str(clevr_prior), "--guidance-coef",
                  "0.5", "--guidance-schedule", schedule)
        runs[schedule] = tmp_path / schedule
    assert [v for _, v in scalars(runs["advantage"], "charts/guidance_coef")] == pytest.approx([0.5] * 4)
    first = {name: scalars(run, "losses/guidance_kl")[0][1] for name, run in runs.items()}
    assert first["advantage"] != first["constant"]  # the filter dropped states of the first batch
    assert scalars(runs["advantage"], "charts/prior_agreement")[0] == scalars(runs["constant"], "charts/prior_agreement")[0]


@pytest.mark.parametrize("schedule", ["adaptive", "advantage"])
def test_metaworld_adaptive_schedules_run(tmp_path, metaworld_prior, schedule):
    summary = run_metaworld("lago_metaworld_continuous.py", tmp_path / "run", "--prior-path", str(metaworld_prior),
                            "--guidance-schedule", schedule, "--guidance-target-kl", "2")
    assert summary["global_step"] == 256 and summary["args"]["guidance_schedule"] == schedule
    betas = [value for _, value in scalars(tmp_path / "run", "charts/guidance_coef")]
    kls = [value for _, value in scalars(tmp_path / "run", "losses/guidance_kl")]
    assert len(betas) == len(kls) == 2 and all(math.isfinite(b) and b > 0 for b in betas)
    expected = adapt_guidance_coef(betas[0], kls[0], 2.0) if schedule == "adaptive" else betas[0]
    assert betas[1] == pytest.approx(expected, rel=1e-5)


def test_adaptive_guidance_with_coefficient_zero_is_ppo(tmp_path, clevr_prior):
    ppo = tmp_path / "ppo"
    result = run_script("ppo_clevr_discrete.py", *SMALL, "--run-dir", str(ppo))
    assert result.returncode == 0, result.stderr[-2000:]
    for schedule in ("adaptive", "advantage"):
        run_clevr("lago_clevr_discrete.py", tmp_path / schedule, "--prior-path", str(clevr_prior), "--guidance-coef", "0",
                  "--guidance-schedule", schedule)
        assert scalars(tmp_path / schedule, "losses/value_loss") == scalars(ppo, "losses/value_loss")
        assert scalars(tmp_path / schedule, "eval/return") == scalars(ppo, "eval/return")


def test_a_non_positive_target_kl_is_one_sentence(tmp_path, clevr_prior):
    result = run_script("lago_clevr_discrete.py", "--prior-path", str(clevr_prior), "--guidance-schedule", "adaptive",
                        "--guidance-target-kl", "0", "--run-dir", str(tmp_path / "r"))
    assert_one_sentence_error(result, "lago_clevr_discrete.py", "--guidance-target-kl must be finite and > 0, got 0.0")


def test_one_adaptive_setting_is_chosen_for_both_benchmarks_relative_to_their_tuned_settings():
    from benchmarks.tune_adaptive import choose_setting, parse_settings

    assert parse_settings("adaptive:1:0.3,advantage:0.3", "clevr") == [
        ("f0.25-coef1-adaptive-kl0.3", "--prior-fraction 0.25 --guidance-coef 1 --guidance-schedule adaptive "
                                       "--guidance-target-kl 0.3"),
        ("f0.25-coef0.3-advantage", "--prior-fraction 0.25 --guidance-coef 0.3 --guidance-schedule advantage")]
    assert parse_settings("advantage:1", "metaworld")[0][0] == "f0.1-coef1-advantage"
    for bad in ("adaptive:1", "advantage:-1", "advantage:x", "kl:1:1", ""):
        with pytest.raises(SystemExit, match="--settings"):
            parse_settings(bad, "clevr")
    # CLEVR-Robot's tuned setting scored 0.6, Meta-World's 0.9: each benchmark counts relative to its own
    scores = {"clevr": {"f0.25-coef1-adaptive-kl0.3": 0.6, "f0.25-coef1-advantage": 0.3},
              "metaworld": {"f0.1-coef1-adaptive-kl0.3": 0.45, "f0.1-coef1-advantage": 0.9}}
    best, relative = choose_setting(["adaptive:1:0.3", "advantage:1"], scores, {"clevr": 0.6, "metaworld": 0.9})
    assert relative == pytest.approx({"adaptive:1:0.3": 0.75, "advantage:1": 0.75}) and best == "adaptive:1:0.3"  # a tie
    scores["metaworld"]["f0.1-coef1-advantage"] = 0.99
    assert choose_setting(["adaptive:1:0.3", "advantage:1"], scores, {"clevr": 0.6, "metaworld": 0.9})[0] == "advantage:1"
