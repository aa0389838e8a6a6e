"""The comparison grid (resumable) and its report, on a tiny budget with a tiny-random prior."""

import csv
import dataclasses
import json
import re
import shutil

import numpy as np
import pytest

from benchmarks import grid, report
from rundir import REVISION
from tests.helpers import hold_lock, run_script


@pytest.fixture(scope="module")
def small_grid(tmp_path_factory, clevr_prior):
    priors = tmp_path_factory.mktemp("priors")
    shutil.copytree(clevr_prior, priors / "prior__clevr__tiny-random__1")
    out = tmp_path_factory.mktemp("grid")
    args = grid.Args(methods="ppo,lago-tiny-random,prior-alone-tiny-random", seeds="1,2", total_timesteps=2048,
                     eval_episodes=5, eval_interval=1024, out=str(out), priors=str(priors),
                     results=str(tmp_path_factory.mktemp("results")), lago_args="--num-envs 4 --num-steps 128", jobs=2)
    grid.main(args)
    return args, out


def test_grid_runs_every_method_and_seed_once(small_grid, capsys):
    args, out = small_grid
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("*/seed*/summary.json")) == [
        "lago-tiny-random/seed1/summary.json", "lago-tiny-random/seed2/summary.json",
        "ppo/seed1/summary.json", "ppo/seed2/summary.json", "prior-alone-tiny-random/seed1/summary.json",
    ]
    lago = json.loads((out / "lago-tiny-random" / "seed2" / "summary.json").read_text())
    assert lago["seed"] == 2 and lago["args"]["num_envs"] == 4 and lago["global_step"] == 2048
    before = (out / "ppo" / "seed1" / "summary.json").stat().st_mtime_ns
    grid.main(args)  # resumed: everything is finished, nothing runs again
    assert "5 runs, 5 finished, 0 to go" in capsys.readouterr().out
    assert (out / "ppo" / "seed1" / "summary.json").stat().st_mtime_ns == before


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path, capsys):
    grid.main(grid.Args(seeds="1,2,3,4,5", out=str(tmp_path / "runs"), results=str(tmp_path / "results"), dry_run=True))
    printed = capsys.readouterr().out
    assert "11 runs, 0 finished, 11 to go, about" in printed and "CPU hours" in printed
    assert "lago_clevr_discrete.py" in printed and not list(tmp_path.iterdir())


def test_paper_scale_has_its_own_budgets_and_folder():
    cpu = grid.plan(grid.Args(env="metaworld", tasks="reach-v3", methods="ppo", seeds="1"))
    paper = grid.plan(grid.Args(env="metaworld", tasks="reach-v3", methods="ppo", seeds="1", scale="paper"))
    assert cpu[0].command[cpu[0].command.index("--total-timesteps") + 1] == "100352"
    assert paper[0].command[paper[0].command.index("--total-timesteps") + 1] == "1001472"  # 489 rollouts of 2048
    assert paper[0].command[paper[0].command.index("--eval-episodes") + 1] == "50"
    assert "grid-paper" in paper[0].directory.parts and "grid-paper" not in cpu[0].directory.parts  # never mixed up
    explicit = grid.plan(grid.Args(methods="ppo", seeds="1", scale="paper", total_timesteps=2048))
    assert explicit[0].command[explicit[0].command.index("--total-timesteps") + 1] == "2048"  # a flag beats the preset


def test_a_failed_run_is_named_and_stops_the_grid(tmp_path):
    args = grid.Args(methods="lago-no-such-prior,ppo", seeds="1", total_timesteps=1024, eval_episodes=2, eval_interval=1024,
                     out=str(tmp_path / "runs"), results=str(tmp_path / "results"))
    with pytest.raises(SystemExit, match="lago-no-such-prior seed 1 failed; see its log.txt"):
        grid.main(args)
    assert "prior__clevr__no-such-prior__1" in (tmp_path / "runs" / "lago-no-such-prior" / "seed1" / "log.txt").read_text()
    assert not (tmp_path / "runs" / "ppo").exists()  # nothing new started after the failure


def test_a_run_in_progress_elsewhere_is_skipped_and_a_dead_writers_lock_is_free(tmp_path, capsys):
    args = grid.Args(methods="ppo", seeds="1", total_timesteps=1024, eval_episodes=2, eval_interval=1024,
                     out=str(tmp_path / "runs"), results=str(tmp_path / "results"))
    run = tmp_path / "runs" / "ppo" / "seed1"
    run.mkdir(parents=True)
    writer = hold_lock(run)  # another process writes this run
    try:
        grid.main(args)
        assert "running in another invocation (" in capsys.readouterr().out and not (run / "summary.json").exists()
    finally:
        writer.kill()
        writer.wait()
    assert (run / "running.lock").exists()  # left behind by a killed process: its lock is free all the same
    grid.main(args)
    assert (run / "summary.json").is_file() and not (run / "running.lock").exists()


def test_unknown_method_is_one_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="unknown method 'sac'"):
        grid.main(grid.Args(methods="ppo,sac", out=str(tmp_path), results=str(tmp_path), dry_run=True))


def test_report_aggregates_the_runs(small_grid, tmp_path):
    _, out = small_grid
    report.main(report.Args(env="clevr", runs=out, results=tmp_path, bootstrap_reps=200))
    assert {p.name for p in tmp_path.iterdir()} == {"runs.csv", "curves.csv", "aggregate.csv", "settings.json", "curves.png",
                                                  "prior-alone-tiny-random.json", "summaries"}
    runs = list(csv.DictReader(open(tmp_path / "runs.csv")))
    aggregate = {(r["method"], r["split"]): r for r in csv.DictReader(open(tmp_path / "aggregate.csv"))}
    for method in ("ppo", "lago-tiny-random"):
        for split in ("train", "test"):
            finals = [float(r["success_rate"]) for r in runs if r["method"] == method and r["split"] == split]
            row = aggregate[(method, split)]
            assert int(row["seeds"]) == 2 and float(row["mean"]) == pytest.approx(sum(finals) / 2, abs=1e-4)
            assert float(row["mean_low"]) <= float(row["mean"]) <= float(row["mean_high"])
    assert int(aggregate[("prior-alone-tiny-random", "train")]["seeds"]) == 1
    curves = list(csv.DictReader(open(tmp_path / "curves.csv")))
    assert {int(r["global_step"]) for r in curves} == {1024, 2048}


def test_report_regenerates_from_its_summaries_and_the_grid_resumes_from_them(small_grid, tmp_path, capsys):
    args, out = small_grid
    report.main(report.Args(env="clevr", runs=out, results=tmp_path, bootstrap_reps=200))
    assert sorted(p.relative_to(tmp_path / "summaries").as_posix() for p in (tmp_path / "summaries").rglob("*.json")) == [
        "lago-tiny-random/seed1.json", "lago-tiny-random/seed2.json", "ppo/seed1.json", "ppo/seed2.json",
        "prior-alone-tiny-random/seed1.json"]
    before = {name: (tmp_path / name).read_text() for name in ("runs.csv", "aggregate.csv", "prior-alone-tiny-random.json")}
    report.main(report.Args(env="clevr", runs=tmp_path / "no-runs-here", results=tmp_path, bootstrap_reps=200))
    assert {name: (tmp_path / name).read_text() for name in before} == before  # the committed files are enough
    fresh = dataclasses.replace(args, out=str(tmp_path / "fresh-runs"), results=str(tmp_path), dry_run=True)
    capsys.readouterr()
    grid.main(fresh)  # a new machine: nothing under --out, every run archived
    assert "5 runs, 5 finished, 0 to go" in capsys.readouterr().out


def test_report_compares_methods_with_bootstrap_cis(small_grid, tmp_path):
    _, out = small_grid
    report.main(report.Args(env="clevr", runs=out, results=tmp_path, bootstrap_reps=500, compare="lago-tiny-random:ppo"))
    runs = list(csv.DictReader(open(tmp_path / "runs.csv")))
    rows = {r["split"]: r for r in csv.DictReader(open(tmp_path / "comparisons.csv"))}
    assert set(rows) == {"train", "test"}
    for split, row in rows.items():
        mean = {m: sum(float(r["success_rate"]) for r in runs if r["method"] == m and r["split"] == split) / 2
                for m in ("lago-tiny-random", "ppo")}
        assert float(row["difference"]) == pytest.approx(mean["lago-tiny-random"] - mean["ppo"], abs=1e-4)
        low, high = float(row["difference_low"]), float(row["difference_high"])
        assert low <= float(row["difference"]) <= high
        assert row["verdict"] == ("better" if low > 0 else "worse" if high < 0 else "no clear difference")
        assert 0 <= float(row["p_improvement_low"]) <= float(row["p_improvement"]) <= float(row["p_improvement_high"]) <= 1
    with pytest.raises(SystemExit, match="--compare: 'ppo:sac' is not a pair"):
        report.main(report.Args(env="clevr", runs=out, results=tmp_path, bootstrap_reps=50, compare="ppo:sac"))
    report.main(report.Args(env="clevr", runs=out, results=tmp_path, bootstrap_reps=50))  # no --compare
    assert not (tmp_path / "comparisons.csv").exists()  # no stale comparisons left behind
    # --compare-if-run: a pair whose methods have not both run is skipped; a malformed pair is still refused
    report.main(report.Args(env="clevr", runs=out, results=tmp_path, bootstrap_reps=50, compare="lago-tiny-random:ppo",
                            compare_if_run="ppo:lago-tiny-random,lago-none:ppo,bcppo:ppo"))
    pairs = [(r["method"], r["baseline"]) for r in csv.DictReader(open(tmp_path / "comparisons.csv")) if r["split"] == "train"]
    assert pairs == [("lago-tiny-random", "ppo"), ("ppo", "lago-tiny-random")]
    with pytest.raises(SystemExit, match="--compare-if-run: 'ppo' is not a pair"):
        report.main(report.Args(env="clevr", runs=out, results=tmp_path, bootstrap_reps=50, compare_if_run="ppo"))


def test_a_methods_ci_does_not_depend_on_the_other_methods():
    rng = np.random.default_rng(3)
    a, b = rng.random((5, 1)), rng.random((5, 1))
    _, alone = report.interval_estimates({"a": a}, 500)
    _, beside = report.interval_estimates({"b": b, "a": a}, 500)
    assert np.array_equal(alone["a"], beside["a"])


def test_a_summary_with_other_settings_is_never_taken_for_the_planned_run(small_grid, tmp_path):
    args, out = small_grid
    report.main(report.Args(env="clevr", runs=out, results=tmp_path, bootstrap_reps=50))  # archived with 2048 steps
    for changed, message in ((dict(total_timesteps=1024), "total_timesteps 2048, not 1024"),
                             (dict(eval_episodes=3), "eval_episodes 5, not 3"),
                             (dict(lago_args="--num-envs 4 --num-steps 128 --guidance-coef 0.5"), "guidance_coef 0.1, not 0.5")):
        for where in (dict(out=str(out)), dict(out=str(tmp_path / "fresh"), results=str(tmp_path))):  # present / archived
            with pytest.raises(SystemExit, match=f"holds a run with {re.escape(message)}"):
                grid.main(dataclasses.replace(args, dry_run=True, **where, **changed))
    assert not (tmp_path / "fresh").exists()


def test_a_run_of_an_older_revision_of_the_training_scripts_is_never_mixed_in(small_grid, tmp_path):
    args, out = small_grid
    report.main(report.Args(env="clevr", runs=out, results=tmp_path, bootstrap_reps=50))
    archived = tmp_path / "summaries" / "lago-tiny-random" / "seed2.json"
    summary = json.loads(archived.read_text())
    assert summary["revision"] == REVISION
    del summary["revision"]  # as the summaries written before the training scripts recorded their revision
    archived.write_text(json.dumps(summary))
    with pytest.raises(SystemExit, match=re.escape(f"seed2.json holds a run with the training scripts' revision 1 "
                                                   f"(not recorded), not {REVISION}")):
        grid.main(dataclasses.replace(args, dry_run=True, out=str(tmp_path / "fresh"), results=str(tmp_path)))
    with pytest.raises(SystemExit, match="runs of different revisions of the training scripts"):
        report.main(report.Args(env="clevr", runs=tmp_path / "no-runs-here", results=tmp_path, bootstrap_reps=50))


def test_lago_runs_are_never_added_to_finished_runs_of_another_prior_precision(small_grid, tmp_path):
    args, out = small_grid
    report.main(report.Args(env="clevr", runs=out, results=tmp_path, bootstrap_reps=50))
    archived = tmp_path / "summaries" / "lago-tiny-random" / "seed1.json"
    summary = json.loads(archived.read_text())
    here = summary["prior_dtype"]  # the precision of this machine
    summary["prior_dtype"] = "float16"  # which no CPU runs the prior in
    archived.write_text(json.dumps(summary))
    fresh = dict(out=str(tmp_path / "fresh"), results=str(tmp_path), dry_run=True)
    grid.main(dataclasses.replace(args, **fresh))  # every run is finished: nothing would mix
    with pytest.raises(SystemExit, match=re.escape(f"seed1.json ran its prior in float16, and lago-tiny-random seed 3 "
                                                   f"would run it in {here} on this machine, so their results would mix")):
        grid.main(dataclasses.replace(args, seeds="1,2,3", **fresh))
    grid.main(dataclasses.replace(args, seeds="1,2,3", label="here", **fresh))  # a variant of its own mixes nothing
    with pytest.raises(SystemExit, match=f"the runs of lago-tiny-random differ in their settings: .*has prior_dtype {here}"):
        report.main(report.Args(env="clevr", runs=tmp_path / "no-runs-here", results=tmp_path, bootstrap_reps=50))


def test_the_report_refuses_to_mix_settings_and_records_those_of_the_runs(small_grid, tmp_path):
    _, out = small_grid
    report.main(report.Args(env="clevr", runs=out, results=tmp_path, bootstrap_reps=50))
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["ppo"]["total_timesteps"] == 2048 and settings["ppo"]["bootstrap_truncation"] is True
    assert settings["lago-tiny-random"]["guidance_coef"] == 0.1 and settings["lago-tiny-random"]["num_envs"] == 4
    assert settings["lago-tiny-random"]["prior_path"] == "prior__clevr__tiny-random__1"
    archived = tmp_path / "summaries" / "ppo" / "seed2.json"
    summary = json.loads(archived.read_text())
    summary["args"]["total_timesteps"] = 150_000
    archived.write_text(json.dumps(summary))
    with pytest.raises(SystemExit, match="the runs of ppo differ in their settings: .*seed2.json has total_timesteps"):
        report.main(report.Args(env="clevr", runs=tmp_path / "no-runs-here", results=tmp_path, bootstrap_reps=50))


def test_killing_a_grid_ends_its_runs(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from rundir import holder
    from tests.helpers import ROOT

    argv = [sys.executable, str(ROOT / "benchmarks" / "grid.py"), "--methods", "ppo", "--seeds", "1",
            "--total-timesteps", "10000000", "--out", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]
    grid_process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = tmp_path / "runs" / "ppo" / "seed1"
    deadline = time.time() + 120
    while not holder(run) and time.time() < deadline:  # the run has started and holds its folder
        time.sleep(0.2)
    writer = holder(run)
    assert writer, "the run never started"
    pid = int(writer.split()[1])
    os.kill(grid_process.pid, signal.SIGKILL)
    grid_process.wait()
    deadline = time.time() + 30
    while holder(run) and time.time() < deadline:
        time.sleep(0.2)
    assert holder(run) is None and not (run / "summary.json").exists()  # the run ended with its grid

    def gone() -> bool:  # reaped, or a zombie waiting to be
        try:
            return open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1][0] == "Z"
        except FileNotFoundError:
            return True

    deadline = time.time() + 10
    while not gone() and time.time() < deadline:
        time.sleep(0.1)
    assert gone()


def test_a_lock_has_exactly_one_owner_when_processes_race_for_it(tmp_path):
    import subprocess
    import sys
    import time

    from tests.helpers import ROOT

    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); import rundir\n"
            "while time.time() < float(sys.argv[3]): pass\n"
            "lock = rundir.acquire(sys.argv[2]); print('owner' if lock else 'refused', flush=True); time.sleep(0.5)")
    for trial in range(10):
        folder = tmp_path / str(trial)
        folder.mkdir()
        (folder / "running.lock").write_text("somehost 999999\n")  # left by a process long gone
        start = time.time() + 0.7
        racers = [subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(folder), str(start)],
                                   stdout=subprocess.PIPE, text=True) for _ in range(4)]
        answers = sorted(racer.communicate(timeout=60)[0].strip() for racer in racers)
        assert answers == ["owner", "refused", "refused", "refused"], (trial, answers)


def test_bootstrap_cis_are_reproducible_and_leave_numpy_alone():
    scores = {"a": np.random.default_rng(1).random((5, 3)), "b": np.random.default_rng(2).random((5, 3))}
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    first = report.interval_estimates(scores, 500)
    assert np.random.random() == expected_next  # the global generator is where it was
    second = report.interval_estimates(scores, 500)
    for method in scores:
        assert np.array_equal(first[1][method], second[1][method])  # the same CIs on every run of the report


def test_probability_of_improvement_counts_ties_half():
    x = np.array([[1.0, 0.0], [0.5, 0.0]])  # runs x tasks
    y = np.array([[0.5, 1.0], [0.0, 1.0]])
    # task 0: x beats y in 3 of 4 pairs, ties in 1 -> 0.875; task 1: x never wins -> 0
    assert report.probability_of_improvement(x, y) == pytest.approx(0.4375)


@pytest.fixture(scope="module")
def metaworld_grid(tmp_path_factory, metaworld_prior):
    priors = tmp_path_factory.mktemp("mw_priors")
    shutil.copytree(metaworld_prior, priors / "prior__metaworld__tiny-random__1")
    out = tmp_path_factory.mktemp("mw_grid")
    args = grid.Args(env="metaworld", tasks="reach-v3,drawer-close-v3", methods="ppo,lago-tiny-random,prior-alone-tiny-random",
                     seeds="1", total_timesteps=2048, eval_episodes=2, eval_interval=2048, out=str(out),
                     priors=str(priors), results=str(tmp_path_factory.mktemp("mw_results")), lago_args="--prior-fraction 0.1")
    grid.main(args)
    return args, out


def test_metaworld_grid_runs_every_method_task_and_seed(metaworld_grid, capsys):
    args, out = metaworld_grid
    found = sorted(p.relative_to(out).as_posix() for p in out.glob("*/*/seed*/summary.json"))
    assert len(found) == 2 * 3 and "lago-tiny-random/drawer-close-v3/seed1/summary.json" in found
    assert "prior-alone-tiny-random/reach-v3/seed1/summary.json" in found
    lago = json.loads((out / "lago-tiny-random" / "drawer-close-v3" / "seed1" / "summary.json").read_text())
    assert lago["env_id"] == "drawer-close-v3" and lago["args"]["prior_fraction"] == 0.1 and lago["global_step"] == 2048
    alone = json.loads((out / "prior-alone-tiny-random" / "reach-v3" / "seed1" / "summary.json").read_text())
    assert alone["env_id"] == "reach-v3" and set(alone["final_eval"]) == {"train", "test"}
    grid.main(args)
    assert "6 runs, 6 finished, 0 to go" in capsys.readouterr().out


def test_metaworld_report_aggregates_over_tasks_and_seeds(metaworld_grid, tmp_path):
    _, out = metaworld_grid
    report.main(report.Args(env="metaworld", runs=out, results=tmp_path, bootstrap_reps=200))
    assert {"runs.csv", "curves.csv", "aggregate.csv", "per_task.csv", "curves.png"} <= {p.name for p in tmp_path.iterdir()}
    runs = list(csv.DictReader(open(tmp_path / "runs.csv")))
    aggregate = {(r["method"], r["split"]): r for r in csv.DictReader(open(tmp_path / "aggregate.csv"))}
    assert all(r["return"] == "" for r in runs if r["method"].startswith("prior-alone"))  # success is all it measures
    for split in ("train", "test"):  # the training env's goal positions, and held-out ones
        finals = [float(r["success_rate"]) for r in runs if r["method"] == "ppo" and r["split"] == split]
        assert len(finals) == 2 and aggregate[("ppo", split)]["tasks"] == "2" and aggregate[("ppo", split)]["seeds"] == "1"
        assert float(aggregate[("ppo", split)]["mean"]) == pytest.approx(sum(finals) / 2, abs=1e-4)
    per_task = {(r["method"], r["task"], r["split"]): r for r in csv.DictReader(open(tmp_path / "per_task.csv"))}
    assert set(per_task) == {(m, t, split) for m in ("ppo", "lago-tiny-random", "prior-alone-tiny-random")
                             for t in ("reach-v3", "drawer-close-v3") for split in ("train", "test")}
    record = json.loads((tmp_path / "prior-alone-tiny-random.json").read_text())
    assert set(record["results"]) == {f"metaworld/{task}/{split}" for task in ("reach-v3", "drawer-close-v3")
                                      for split in ("train", "test")}
    # a method that ran a subset of the tasks: left out of `all`, aggregated with every method on its subset
    shutil.rmtree(tmp_path / "summaries" / "lago-tiny-random" / "drawer-close-v3")
    report.main(report.Args(env="metaworld", runs=tmp_path / "no-runs-here", results=tmp_path, bootstrap_reps=200))
    sets = {(r["task_set"], r["method"], r["split"]): r for r in csv.DictReader(open(tmp_path / "aggregate.csv"))}
    assert ("all", "lago-tiny-random", "test") not in sets and sets[("all", "ppo", "test")]["tasks"] == "2"
    assert {m for t, m, _ in sets if t == "reach-v3"} == {"ppo", "lago-tiny-random", "prior-alone-tiny-random"}
    assert sets[("reach-v3", "ppo", "test")]["mean"] == per_task[("ppo", "reach-v3", "test")]["mean"]


def test_stage2_speed_reports_medians_and_the_ratio(tmp_path, clevr_prior):
    from benchmarks.speed import stage2_speed

    out = tmp_path / "speed.json"
    result = stage2_speed.main(stage2_speed.Args(env="clevr", prior_path=str(clevr_prior), total_timesteps=1024,
                                                 eval_episodes=2, repeats=2, threads=1, json=str(out),
                                                 lago_args="--prior-fraction 0.5"))
    saved = json.loads(out.read_text())
    assert saved == result and len(saved["ppo_seconds_all"]) == len(saved["lago_seconds_all"]) == 2
    assert saved["ppo_seconds"] == pytest.approx(sum(saved["ppo_seconds_all"]) / 2, abs=0.1)
    assert saved["ratio"] == pytest.approx(saved["lago_seconds"] / saved["ppo_seconds"])
    assert saved["lago_settings"]["prior_fraction"] == 0.5 and saved["llm"] == "tiny-random"
    assert saved["prior_dtype"] in ("float32", "bfloat16") and saved["state_tokens"] == 4


def test_finetune_speed_times_each_variant_and_checkpointing_changes_no_result(tmp_path):
    import collect_demos
    from benchmarks.speed import finetune_speed
    from lago_utils.device import cpu_has_native_bf16

    collect_demos.main(collect_demos.Args(env="clevr", episodes=10, seed=3, out=str(tmp_path / "demos.npz")))
    out = tmp_path / "speed.json"
    record = finetune_speed.main(finetune_speed.Args(
        llm="tiny-random", demos=str(tmp_path / "demos.npz"), steps=3, json=str(out),
        variants="default; checkpointing=--gradient-checkpointing --precision fp32; fp32=--precision fp32"))
    assert json.loads(out.read_text()) == record and list(record["variants"]) == ["default", "checkpointing", "fp32"]
    default, checkpointing, fp32 = (record["variants"][name] for name in ("default", "checkpointing", "fp32"))
    assert default["seconds_per_step"] > 0 and default["minutes_for_400_steps"] == round(default["seconds_per_step"] * 400 / 60, 1)
    assert default["seconds_per_step_median"] > 0
    # the same fine-tune, recomputed activations; up to rounding, since without checkpointing the samples of a
    # prompt share its forward on a CPU
    assert checkpointing["val_metrics"] == pytest.approx(fp32["val_metrics"], rel=1e-4)
    assert fp32["precision"] == "fp32"
    assert default["precision"] == ("bf16 autocast" if cpu_has_native_bf16() else "fp32")  # auto: both, test_prior
    with pytest.raises(SystemExit, match="variant 'bad' failed: .*--state-tokens must be a positive integer"):
        finetune_speed.main(finetune_speed.Args(llm="tiny-random", demos=str(tmp_path / "demos.npz"), steps=1,
                                                variants="bad=--state-tokens 0"))


def test_the_guidance_setting_is_chosen_by_train_goal_success_ties_to_the_first(tmp_path):
    from benchmarks import tune_guidance

    sweep = tune_guidance.settings(tune_guidance.Args(env="clevr", coefs="0.1,1", schedules="linear,constant",
                                                      bracket="none"))
    assert [label for label, _ in sweep] == ["f0.25-coef0.1-linear", "f0.25-coef0.1-constant",
                                             "f0.25-coef1-linear", "f0.25-coef1-constant"]
    bracketed = tune_guidance.settings(tune_guidance.Args(env="clevr", coefs="0.1,1", schedules="linear,constant"))
    assert [label for label, _ in bracketed][4:] == ["f0.25-coef3-constant", "f0.25-coef10-constant"]
    assert len(tune_guidance.settings(tune_guidance.Args(env="metaworld"))) == 6
    assert dict(sweep)["f0.25-coef1-constant"] == "--prior-fraction 0.25 --guidance-coef 1 --guidance-schedule constant"
    assert dict(sweep)["f0.25-coef0.1-linear"].endswith("--guidance-schedule linear --guidance-decay-end 0.6")
    rows = [("all", "ppo", "train", 0.9), ("all", "lago-p+f0.25-coef0.1-linear", "train", 0.4),
            ("all", "lago-p+f0.25-coef0.1-constant", "train", 0.6), ("all", "lago-p+f0.25-coef1-linear", "train", 0.6),
            ("all", "lago-p+f0.25-coef1-constant", "train", 0.5), ("all", "lago-p+f0.25-coef1-constant", "test", 0.99),
            ("reach-v3", "lago-p+f0.25-coef1-linear", "train", 1.0)]
    path = tmp_path / "aggregate.csv"
    path.write_text("task_set,method,split,mean\n" + "".join(f"{t},{m},{s},{v}\n" for t, m, s, v in rows))
    labels = [label for label, _ in sweep]
    best, scores = tune_guidance.choose(path, "lago-p", labels)
    assert best == "f0.25-coef0.1-constant" and scores["f0.25-coef1-linear"] == 0.6  # a tie: the setting listed first
    with pytest.raises(SystemExit, match="has no score for f0.25-coef3-linear; the sweep is not finished"):
        tune_guidance.choose(path, "lago-p", labels + ["f0.25-coef3-linear"])


def test_the_grid_runs_the_chosen_setting(tmp_path):
    chosen = tmp_path / "chosen.json"
    chosen.write_text(json.dumps({"label": "f0.25-coef1-constant",
                                  "lago_args": "--prior-fraction 0.25 --guidance-coef 1 --guidance-schedule constant"}))
    runs = grid.plan(grid.Args(methods="lago-smollm2-135m", seeds="1", guidance_from=str(chosen)))
    assert runs[0].method == "lago-smollm2-135m+f0.25-coef1-constant"
    assert runs[0].command[-6:] == ["--prior-fraction", "0.25", "--guidance-coef", "1", "--guidance-schedule", "constant"]
    with pytest.raises(SystemExit, match="--guidance-from sets --lago-args and --label; give it alone"):
        grid.plan(grid.Args(methods="lago-smollm2-135m", guidance_from=str(chosen), label="x"))
    with pytest.raises(SystemExit, match="is not a chosen.json of benchmarks/tune_guidance.py"):
        grid.plan(grid.Args(methods="lago-smollm2-135m", guidance_from=str(tmp_path / "missing.json")))


def test_llm_study_evaluates_each_prior_and_language_once_and_answers_with_cis(tmp_path, clevr_prior, capsys):
    from benchmarks import llm_study

    priors = tmp_path / "priors"
    for name in ("smollm2-135m", "smollm2-135m-random"):  # the same tiny prior twice: every difference must be 0
        shutil.copytree(clevr_prior, priors / f"prior__clevr__{name}__1")
    grid_results = tmp_path / "grid"  # LaGO's runs at the chosen guidance setting, as the grid's report writes them
    (grid_results / "clevr-tuning").mkdir(parents=True)
    (grid_results / "clevr-tuning" / "chosen.json").write_text(json.dumps({"label": "g1"}))
    (grid_results / "clevr").mkdir()
    runs = [{"method": f"lago-{prior}+{label}", "task": "CLEVRRobot-v0", "seed": seed, "split": split,
             "success_rate": success + 0.1 * (split == "train")}
            for prior, label, success in (("smollm2-135m", "g1", 0.5), ("smollm2-135m-random", "g1", 0.3),
                                          ("smollm2-135m", "other", 0.9))
            for seed in (1, 2, 3) for split in ("train", "test")]
    report.write_csv(grid_results / "clevr" / "runs.csv", runs)
    args = llm_study.Args(env="clevr", priors="smollm2-135m,smollm2-135m-random,qwen2.5-coder-0.5b", episodes=4,
                          checkpoints=str(priors), grid_results=str(grid_results), results=str(tmp_path / "llm"),
                          bootstrap_reps=500)
    llm_study.main(args)
    out = capsys.readouterr().out
    assert "skipped qwen2.5-coder-0.5b: no checkpoint" in out and "8 to evaluate" in out
    records = {p.name for p in (tmp_path / "llm" / "clevr").iterdir()}
    assert records == {f"{p}__{i}.json" for p in ("smollm2-135m", "smollm2-135m-random")
                       for i in ("paraphrase", "train", "unseen", "none")}
    record = json.loads((tmp_path / "llm" / "clevr" / "smollm2-135m__unseen.json").read_text())
    assert record["args"]["instructions"] == "unseen" and record["args"]["max_episode_steps"] == 10
    assert record["llm_parameters"] > 0 and len(record["results"]["clevr/test"]["successes"]) == 4
    llm_study.main(args)  # resumed: nothing is evaluated again
    assert "8 records there, 0 to evaluate" in capsys.readouterr().out
    with open(tmp_path / "llm" / "answers.csv") as f:
        answers = list(csv.DictReader(f))
    lago = [r for r in answers if r["kind"] == "LaGO"]
    assert [(r["split"], float(r["difference"])) for r in lago] == [("train", 0.2), ("test", 0.2)]
    assert all(r["size"] == "3 seeds" and r["verdict"] == "yes" for r in lago)  # the other label is left out
    alone = [r for r in answers if r["kind"].startswith("prior alone")]
    # per split: pretrained - random with 3 instruction sets, unseen - none for each of the two priors
    assert len(alone) == 2 * (3 + 2)
    same = [r for r in alone if r["comparison"].endswith("pretrained - random weights")]
    assert len(same) == 6 and all(float(r["difference"]) == 0 and r["verdict"] == "no clear difference" for r in same)
    assert (tmp_path / "llm" / "llm_size.png").stat().st_size > 10_000


def test_llm_study_compares_each_llm_with_the_smallest_and_qwen_with_its_smaller_size():
    from benchmarks import llm_study

    boot = np.random.default_rng(0).normal(0, 0.01, 1000)
    samples = {("LaGO", prior): (mean, mean + boot, "5 seeds")
               for prior, mean in (("smollm2-135m", 0.6), ("qwen2.5-coder-0.5b", 0.5), ("qwen2.5-coder-1.5b", 0.7))}
    rows = llm_study.answer_rows("clevr", "train", samples)
    assert [(r["comparison"], r["difference"], r["verdict"]) for r in rows] == [
        ("Qwen2.5-Coder 0.5B - SmolLM2-135M", -0.1, "no, the opposite"),
        ("Qwen2.5-Coder 1.5B - SmolLM2-135M", 0.1, "yes"),
        ("Qwen2.5-Coder 1.5B - Qwen2.5-Coder 0.5B", 0.2, "yes")]
    del samples[("LaGO", "qwen2.5-coder-0.5b")]  # a pair is compared only where both were measured
    assert [r["comparison"] for r in llm_study.answer_rows("clevr", "train", samples)] == [
        "Qwen2.5-Coder 1.5B - SmolLM2-135M"]


@pytest.mark.parametrize("env, argv", [
    ("clevr", ["--seeds", "1,2,3,4,5", "--guidance-from", "results/clevr-tuning/chosen.json"]),
    ("metaworld", ["--tasks", "mt10", "--seeds", "1,2,3", "--guidance-from", "results/metaworld-tuning/chosen.json"]),
])
def test_the_committed_runs_are_those_the_current_scripts_plan(tmp_path, env, argv):
    """A flag that only logs or steps the same episodes otherwise (--track, --save-model, --async-envs, ...) must not
    make the grid take the committed runs for runs of other settings."""
    result = run_script("benchmarks/grid.py", "--dry-run", "--env", env, "--methods", "ppo,lago-smollm2-135m", *argv,
                        "--out", str(tmp_path / "no-runs-here"))
    assert result.returncode == 0, result.stderr[-2000:]
    runs = 10 if env == "clevr" else 60
    assert f"{runs} runs, {runs} finished, 0 to go" in result.stdout


def test_llm_study_resamples_metaworld_tasks_paired_between_priors():
    from benchmarks import llm_study

    solves = np.array([[1.0] * 10, [0.0] * 10, [1.0] * 10])  # all-or-nothing per task, as a greedy prior plays
    other = np.array([[1.0] * 10, [0.0] * 10, [0.0] * 10])  # one task fewer
    a = llm_study.resample_episodes(solves, 2000, np.random.default_rng(1), llm_study.rng_for("metaworld", "train", "tasks"))
    b = llm_study.resample_episodes(other, 2000, np.random.default_rng(2), llm_study.rng_for("metaworld", "train", "tasks"))
    low, high = np.percentile(a - b, [2.5, 97.5])
    assert low == 0 and high == 1 and (a - b >= 0).all()  # paired: never below 0; one task of three: not certain
    episodes_only = llm_study.resample_episodes(solves, 2000, np.random.default_rng(1))
    assert np.all(episodes_only == solves.mean())  # what episodes alone would claim: no uncertainty at all
    one_task = solves[:1]
    assert np.array_equal(llm_study.resample_episodes(one_task, 50, np.random.default_rng(3), np.random.default_rng(4)),
                          llm_study.resample_episodes(one_task, 50, np.random.default_rng(3)))  # CLEVR-Robot: unchanged


def test_a_damaged_summary_is_named_the_grid_redoes_its_run_and_the_report_copies_nothing(small_grid, tmp_path, capsys):
    args, out = small_grid
    shutil.copytree(out, tmp_path / "grid")
    damaged = tmp_path / "grid" / "ppo" / "seed2" / "summary.json"
    damaged.write_text(damaged.read_text()[:100])  # truncated, as by a full disk
    plan = dataclasses.replace(args, out=str(tmp_path / "grid"), results=str(tmp_path / "results"), dry_run=True)
    grid.main(plan)
    printed = capsys.readouterr().out
    assert f"grid.py: {damaged} is not a readable run summary" in printed and "1 to go" in printed
    assert printed.count(str(damaged)) == 1  # named once, however often the plan looks at it
    (tmp_path / "results" / "summaries").mkdir(parents=True)
    with pytest.raises(SystemExit, match=re.escape(f"{damaged} is not a readable run summary")):
        report.main(report.Args(env="clevr", runs=tmp_path / "grid", results=tmp_path / "results", bootstrap_reps=50))
    assert not list((tmp_path / "results" / "summaries").iterdir())  # nothing copied: no half-filled archive
    damaged.write_text("[1, 2]")  # valid JSON of the wrong shape
    with pytest.raises(SystemExit, match=re.escape(f"{damaged} is not a run summary (no args and final_eval); delete")):
        report.main(report.Args(env="clevr", runs=tmp_path / "grid", results=tmp_path / "results", bootstrap_reps=50))
    archived = tmp_path / "archive"
    report.main(report.Args(env="clevr", runs=out, results=archived, bootstrap_reps=50))
    (archived / "summaries" / "ppo" / "seed1.json").write_text("{")
    with pytest.raises(SystemExit, match=re.escape(f"{archived / 'summaries' / 'ppo' / 'seed1.json'} is not a readable")):
        report.main(report.Args(env="clevr", runs=tmp_path / "no-runs", results=archived, bootstrap_reps=50))


def _budget_summaries(folder, steps, successes):
    """results/<x>/summaries/ of two methods with the final train success of each seed set by hand (the
    committed PPO summary's format, its budget changed to `steps`)."""
    template = json.loads((report.ROOT / "results" / "clevr" / "summaries" / "ppo" / "seed1.json").read_text())
    for method, values in successes.items():
        for seed, value in enumerate(values, start=1):
            summary = json.loads(json.dumps(template))
            summary.update(seed=seed, global_step=steps)
            summary["args"].update(seed=seed, total_timesteps=steps)
            summary["final_eval"] = {"train": {"success_rate": value, "return": value},
                                     "test": {"success_rate": 0.1, "return": 0.1}}
            summary["evaluations"] = [{"global_step": s, **summary["final_eval"]} for s in (steps // 2, steps)]
            (folder / "summaries" / method).mkdir(parents=True, exist_ok=True)
            (folder / "summaries" / method / f"seed{seed}.json").write_text(json.dumps(summary))


def test_budget_report_compares_each_pair_at_both_budgets_and_the_change(tmp_path, capsys):
    from benchmarks import budget_report

    short, long = tmp_path / "short", tmp_path / "long"
    _budget_summaries(short, 2048, {"ppo": [0.2, 0.4], "lago": [0.6, 0.6]})  # lago - ppo = +0.3
    _budget_summaries(long, 8192, {"ppo": [0.9, 0.9], "lago": [0.7, 0.7], "lago-linear": [0.8, 1.0]})
    budget_report.main(budget_report.Args(env="clevr", short=short, long=long, bootstrap_reps=500,
                                          pairs="lago:ppo,lago-linear:ppo"))  # lago-linear ran at one budget: skipped
    with open(long / "budgets.csv", newline="") as f:
        rows = {(r["method"], r["split"], r["budget"]): r for r in csv.DictReader(f)}
    assert {key[0] for key in rows} == {"lago"}
    assert float(rows[("lago", "train", "short")]["difference"]) == pytest.approx(0.3)
    assert rows[("lago", "train", "short")]["env_steps"] == "2048"
    assert float(rows[("lago", "train", "long")]["difference"]) == pytest.approx(-0.2)
    assert rows[("lago", "train", "long")]["verdict"] == "worse"
    change = rows[("lago", "train", "change")]
    assert float(change["difference"]) == pytest.approx(-0.5) and change["verdict"] == "shrank"
    # the long runs never vary: the change's CI is the short difference's, mirrored (+0.2 to +0.4 -> -0.6 to -0.4)
    assert -0.6 - 1e-9 <= float(change["difference_low"]) <= float(change["difference_high"]) <= -0.4 + 1e-9
    assert rows[("lago", "test", "change")]["verdict"] == "no clear change"
    assert (long / "budgets.png").stat().st_size > 10_000
    assert "lago - ppo (train, 1 task(s)), change, long - short: -0.500" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="not longer than"):
        budget_report.main(budget_report.Args(env="clevr", short=long, long=short, bootstrap_reps=50, pairs="lago:ppo"))
    with pytest.raises(SystemExit, match="--long .*no finished runs"):
        budget_report.main(budget_report.Args(env="clevr", short=short, long=tmp_path / "none", bootstrap_reps=50))


def test_the_grid_as_cluster_jobs_resumes_after_a_job_dies(tmp_path, clevr_prior):
    """--executor slurm through submitit's local executor (the same code path, no cluster), as a user runs it: 2
    methods x 2 seeds, one job's run killed mid-way; the grid submitted again submits only that run, and completes.
    grid.py runs in its own process, as the jobs' controllers keep its output open after it ends."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pytest.importorskip("submitit")
    from rundir import holder

    priors = tmp_path / "priors"
    shutil.copytree(clevr_prior, priors / "prior__clevr__tiny-random__1")
    out = tmp_path / "grid"
    command = [sys.executable, str(grid.ROOT / "benchmarks" / "grid.py"), "--methods", "ppo,lago-tiny-random",
               "--seeds", "1,2", "--total-timesteps", "4096", "--eval-episodes", "5", "--eval-interval", "2048",
               "--out", str(out), "--priors", str(priors), "--results", str(tmp_path / "results"),
               "--lago-args=--num-envs 4 --num-steps 128", "--executor", "slurm", "--cluster", "local",
               "--slurm-time", "10", "--slurm-wait"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def grid_run(*extra: str, log: str) -> subprocess.CompletedProcess:
        with open(tmp_path / log, "w") as file:
            return subprocess.run([*command, *extra], stdout=file, stderr=subprocess.STDOUT, env=env, timeout=600)

    assert grid_run("--dry-run", log="dry.txt").returncode == 0
    assert "4 runs, 0 finished, 0 queued or running as jobs, 4 to submit as local jobs" in (tmp_path / "dry.txt").read_text()
    assert not list(out.rglob("submitted.json"))  # a dry run submits nothing
    with open(tmp_path / "first.txt", "w") as file:
        first = subprocess.Popen(command, stdout=file, stderr=subprocess.STDOUT, env=env)
    killed, deadline = None, time.time() + 300
    while killed is None and time.time() < deadline and first.poll() is None:
        for folder in sorted(out.glob("*/seed*")):
            writer = holder(folder)  # `host pid` of a run that is writing its folder
            if writer:
                os.kill(int(writer.split()[-1]), signal.SIGKILL)  # the job dies mid-run, as on a failed node
                killed = folder
                break
        time.sleep(0.2)
    assert first.wait(timeout=600) != 0 and killed is not None
    printed = (tmp_path / "first.txt").read_text()
    assert "did not finish; submit the same command again" in printed, printed[-3000:]
    assert not (killed / "summary.json").exists()
    assert sum((folder / "summary.json").is_file() for folder in out.glob("*/seed*")) == 3
    assert all((folder / "submitted.json").is_file() for folder in out.glob("*/seed*"))
    assert grid_run(log="second.txt").returncode == 0  # submitted again: only the killed run
    printed = (tmp_path / "second.txt").read_text()
    assert "4 runs, 3 finished, 0 queued or running as jobs, 1 to submit" in printed, printed[-3000:]
    assert f"done: {killed}" in printed
    summaries = sorted(p.relative_to(out).as_posix() for p in out.glob("*/seed*/summary.json"))
    assert summaries == ["lago-tiny-random/seed1/summary.json", "lago-tiny-random/seed2/summary.json",
                         "ppo/seed1/summary.json", "ppo/seed2/summary.json"]
    assert grid_run(log="third.txt").returncode == 0  # nothing left
    assert "4 runs, 4 finished, 0 queued or running as jobs, 0 to submit" in (tmp_path / "third.txt").read_text()


def test_a_run_queued_as_a_cluster_job_is_not_run_or_submitted_twice(small_grid, tmp_path, capsys):
    import os

    args, out = small_grid
    folder = tmp_path / "grid" / "ppo" / "seed9"
    folder.mkdir(parents=True)
    (folder / "submitted.json").write_text(json.dumps({"job_id": str(os.getpid()), "cluster": "local"}))
    assert grid.live_submission(folder) == str(os.getpid())  # this process: alive
    (folder / "submitted.json").write_text(json.dumps({"job_id": "999999999", "cluster": "local"}))
    assert grid.live_submission(folder) is None  # no such process: the job has ended
    (folder / "submitted.json").write_text(json.dumps({"job_id": "12345", "cluster": "slurm"}))
    assert grid.live_submission(folder) is None  # no squeue on this machine: nothing known to be queued
    queued = dataclasses.replace(args, seeds="9", methods="ppo", out=str(tmp_path / "grid"),
                                 results=str(tmp_path / "results"))
    (folder / "submitted.json").write_text(json.dumps({"job_id": str(os.getpid()), "cluster": "local"}))
    grid.main(dataclasses.replace(queued, dry_run=True))
    assert "1 runs are queued or running as cluster jobs" in capsys.readouterr().out
    grid.main(dataclasses.replace(queued, dry_run=True, executor="slurm"))
    assert "1 runs, 0 finished, 1 queued or running as jobs, 0 to submit" in capsys.readouterr().out


def test_the_slurm_executor_without_submitit_is_one_sentence(small_grid, tmp_path, monkeypatch):
    import builtins

    args, _ = small_grid
    real_import = builtins.__import__

    def no_submitit(name, *rest, **kwargs):
        if name == "submitit":
            raise ImportError("No module named 'submitit'")
        return real_import(name, *rest, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_submitit)
    with pytest.raises(SystemExit, match=r"--executor slurm needs submitit, which is not installed: pip install submitit"):
        grid.main(dataclasses.replace(args, seeds="7", methods="ppo", out=str(tmp_path / "g"),
                                      results=str(tmp_path / "r"), executor="slurm"))
