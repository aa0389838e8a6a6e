"""The tests' script runner does what a new interpreter does: argv, cwd, env, output, exit status, timeout."""

import os
import subprocess
import sys

import pytest

from tests import script_runner

SCRIPT = """
import os, sys
print("out", sys.argv[1:], os.getcwd() == sys.argv[1], os.environ.get("RUNNER_TEST"), __name__)
print("torch already imported:", "torch" in sys.modules, file=sys.stderr)  # forked from the server: True
print("err", file=sys.stderr)
if sys.argv[2] == "exit-message":
    sys.exit("script.py: error: one sentence")
if sys.argv[2] == "raise":
    raise ValueError("boom")
if sys.argv[2] == "sleep":
    import time; time.sleep(60)
sys.exit(int(sys.argv[2]))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the runner forks on Linux only")
@pytest.mark.parametrize("how", ["0", "3", "exit-message", "raise"])
def test_a_forked_run_gives_what_a_new_interpreter_gives(tmp_path, how):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, **script_runner.SERVER_ENV, "RUNNER_TEST": "yes"}
    forked = script_runner.run(script, [str(tmp_path), how], tmp_path, env, timeout=60)
    fresh = subprocess.run([sys.executable, str(script), str(tmp_path), how], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert (forked.returncode, forked.stdout) == (fresh.returncode, fresh.stdout)
    assert forked.stdout.startswith(f"out ['{tmp_path}', '{how}'] True yes __main__")
    assert forked.stderr.startswith("torch already imported: True\nerr\n")
    assert fresh.stderr.startswith("torch already imported: False\nerr\n")
    if how == "raise":  # the traceback's frames differ: the runner's own are in it
        assert "\nTraceback" in forked.stderr and forked.stderr.endswith("ValueError: boom\n")
    else:
        assert forked.stderr.split("\n")[1:] == fresh.stderr.split("\n")[1:]


def test_a_variable_read_when_a_library_is_imported_gets_a_new_interpreter(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, **script_runner.SERVER_ENV, "MUJOCO_GL": "some-other-backend"}
    result = script_runner.run(script, [str(tmp_path), "0"], tmp_path, env, timeout=60)
    assert result.returncode == 0 and result.stderr.startswith("torch already imported: False")


def test_a_forked_run_past_its_timeout_is_killed(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    with pytest.raises(subprocess.TimeoutExpired):
        script_runner.run(script, [str(tmp_path), "sleep"], tmp_path, {**os.environ, **script_runner.SERVER_ENV}, timeout=2)
