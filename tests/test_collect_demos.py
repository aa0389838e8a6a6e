"""collect_demos.py: the file format round trip, atomic writes, and clear errors on bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from collect_demos import (
    DEMO_KEYS, Args, DemoError, atomic_write, load_demos, main, save_demos,
)
from envs.clevr_robot import NUM_ACTIONS, TEST_GOAL_IDS, TRAIN_GOAL_IDS
from envs.metaworld_tasks import MT10_TASKS, task_prompt

ROOT = Path(__file__).resolve().parents[1]


def test_clevr_round_trip(tmp_path):
    path = main(Args(env="clevr", episodes=12, noise=0.3, seed=5, out=str(tmp_path / "clevr")))
    assert path == tmp_path / "clevr.npz" and path.with_suffix(".json").is_file()
    arrays, metadata = load_demos(path)
    assert set(arrays) == set(DEMO_KEYS)
    n = len(arrays["obs"])
    assert arrays["obs"].shape == (n, 10) and arrays["obs"].dtype == np.float32
    assert arrays["actions"].dtype == np.int64 and arrays["actions"].min() >= 0
    assert arrays["actions"].max() < NUM_ACTIONS
    assert set(np.unique(arrays["episode"])) == set(range(12))
    assert set(arrays["task_id"]) <= set(TRAIN_GOAL_IDS) and not set(arrays["task_id"]) & set(TEST_GOAL_IDS)
    assert all(text.startswith(("Push", "Move", "Put", "Can")) for text in arrays["task_text"])
    # an episode succeeded exactly when its last reward is 1
    for episode in range(12):
        rows = arrays["episode"] == episode
        assert arrays["episode_success"][rows].all() == (arrays["rewards"][rows][-1] == 1.0)
    assert metadata["env"] == "clevr" and metadata["transitions"] == n and metadata["episodes"] == 12
    assert metadata["noise"] == 0.3 and metadata["action_space"] == {"type": "discrete", "n": NUM_ACTIONS}
    assert json.loads(path.with_suffix(".json").read_text()) == metadata
    # the same seed gives the same file contents
    again, _ = load_demos(main(Args(env="clevr", episodes=12, noise=0.3, seed=5, out=str(tmp_path / "b.npz"))))
    for key in DEMO_KEYS:
        np.testing.assert_array_equal(arrays[key], again[key])


def test_metaworld_round_trip(tmp_path):
    out = tmp_path / "mw.npz"
    main(Args(env="metaworld", task="reach-v3,drawer-close-v3", episodes=2, noise=0.1,
              max_episode_steps=60, out=str(out)))
    arrays, metadata = load_demos(out)
    assert arrays["obs"].shape[1] == 39 and arrays["actions"].shape[1] == 4
    assert arrays["actions"].dtype == np.float32 and np.abs(arrays["actions"]).max() <= 1.0
    assert set(arrays["task_id"]) == {MT10_TASKS.index("reach-v3"), MT10_TASKS.index("drawer-close-v3")}
    assert set(arrays["task_text"]) == {task_prompt("reach-v3"), task_prompt("drawer-close-v3")}
    assert set(np.unique(arrays["episode"])) == {0, 1, 2, 3}
    assert metadata["tasks"] == ["reach-v3", "drawer-close-v3"]
    assert set(metadata["per_task"]) == {"reach-v3", "drawer-close-v3"}
    assert metadata["action_space"]["type"] == "box"


def small_arrays(n=3):
    return {
        "obs": np.zeros((n, 10), np.float32), "actions": np.arange(n), "rewards": np.zeros(n, np.float32),
        "task_text": np.array(["go"] * n), "task_id": np.zeros(n, np.int64),
        "episode": np.zeros(n, np.int64), "episode_success": np.zeros(n, bool),
    }


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "demos.npz"
    save_demos(path, small_arrays(), {"env": "clevr"})
    before = path.read_bytes()

    def broken(file):
        file.write(b"half a file")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demos.json", "demos.npz"]


def test_empty_demonstrations_are_refused(tmp_path):
    with pytest.raises(DemoError, match="no transitions"):
        save_demos(tmp_path / "x.npz", small_arrays(0), {})
    assert not list(tmp_path.iterdir())


def test_bad_demo_files_are_clear_errors(tmp_path):
    with pytest.raises(DemoError, match="does not exist"):
        load_demos(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(DemoError, match="not a readable .npz"):
        load_demos(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", obs=np.zeros(3))
    with pytest.raises(DemoError, match="not a LaGO demonstration file: it lacks actions"):
        load_demos(tmp_path / "other.npz")
    arrays = small_arrays()
    arrays["actions"] = np.arange(2)
    np.savez(tmp_path / "ragged.npz", metadata=np.array("{}"), **arrays)
    with pytest.raises(DemoError, match="corrupt"):
        load_demos(tmp_path / "ragged.npz")


def run_cli(*argv, cwd=ROOT):
    return subprocess.run(
        [sys.executable, str(ROOT / "collect_demos.py"), *argv], cwd=cwd, capture_output=True,
        text=True, timeout=300,
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--episodes", "0"], "--episodes must be a positive integer, got 0"),
        (["--episodes", "-3"], "--episodes must be a positive integer, got -3"),
        (["--noise", "1.5"], "--noise is a probability for clevr"),
        (["--env", "metaworld", "--noise", "-1"], "--noise is a standard deviation"),
        (["--max-episode-steps", "0"], "--max-episode-steps must be a positive integer"),
        (["--env", "metaworld", "--task", "reach"], "--task: unknown Meta-World task 'reach'"),
        (["--env", "metaworld", "--task", ","], "--task is empty"),
        (["--task", "reach-v3"], "--task applies only to --env metaworld"),
    ],
)
def test_bad_arguments_are_one_clear_sentence(tmp_path, argv, message):
    result = run_cli(*argv, "--out", str(tmp_path / "d.npz"))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("collect_demos.py: error: ") and message in lines[0]
    assert not list(tmp_path.iterdir())


def test_bad_output_paths_are_clear_errors_and_keep_existing_files(tmp_path):
    (tmp_path / "a_file").write_text("keep me")
    result = run_cli("--episodes", "2", "--out", str(tmp_path / "a_file" / "demos.npz"))
    assert result.returncode != 0 and "is not a writable folder" in result.stderr
    assert "Traceback" not in result.stderr and (tmp_path / "a_file").read_text() == "keep me"
    result = run_cli("--episodes", "2", "--out", str(tmp_path))
    assert result.returncode != 0 and "is a directory" in result.stderr
    result = run_cli("--episodes", "2", "--out", f"{tmp_path / 'new'}/")  # a folder to be, not new.npz
    assert result.returncode != 0 and "is a directory; give a file name such as" in result.stderr
    assert not (tmp_path / "new.npz").exists() and not (tmp_path / "new").exists()


def test_unknown_env_is_refused_by_the_cli(tmp_path):
    result = run_cli("--env", "atari", "--out", str(tmp_path / "d.npz"))
    assert result.returncode != 0 and "atari" in result.stderr and "Traceback" not in result.stderr


def test_cli_writes_and_a_later_bad_run_does_not_touch_the_file(tmp_path):
    out = tmp_path / "demos" / "clevr.npz"
    result = run_cli("--episodes", "5", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "CLEVR-Robot demonstrations (scripted expert, epsilon 0.2): success" in result.stdout and f"to {out}" in result.stdout
    before = out.read_bytes(), out.with_suffix(".json").read_bytes()
    result = run_cli("--episodes", "0", "--out", str(out))
    assert result.returncode != 0
    assert (out.read_bytes(), out.with_suffix(".json").read_bytes()) == before
    assert sorted(os.listdir(out.parent)) == ["clevr.json", "clevr.npz"]
