"""Run a project script as `python script.py ARGS` does, in a process forked from a server that has already imported
the heavy libraries (torch, transformers, peft, gymnasium, MuJoCo, Meta-World, tyro, TensorBoard): a script's test
then starts in about a second instead of ten. Nothing of the project is imported before the fork, so each run
imports the project afresh, as a new interpreter would. This module imports nothing of the project either: the
server imports it to run the children."""

import atexit
import io
import multiprocessing
import multiprocessing.forkserver
import os
import runpy
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

PRELOAD = ["torch", "transformers", "peft", "gymnasium", "mujoco", "metaworld", "tyro", "torch.utils.tensorboard",
           "tests.script_runner"]
# the tests' runs are offline and in one thread (tests/helpers.py run_script), and so is the server; the variables of
# IMPORT_TIME_ENV are read once, when the libraries are imported: a run that sets them otherwise gets a new interpreter
SERVER_ENV = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
IMPORT_TIME_ENV = ("MUJOCO_GL", "PYOPENGL_PLATFORM", "HF_HUB_OFFLINE", "HF_HOME", "CUDA_VISIBLE_DEVICES", "PYTHONPATH")
_context, _server_env = None, {}


def _server_context():
    global _context, _server_env
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        saved = dict(os.environ)
        os.environ.update(SERVER_ENV)
        try:
            multiprocessing.forkserver.ensure_running()
            _server_env = dict(os.environ)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        _context = context
    return _context


def _exit_code(exit: SystemExit) -> int:
    if exit.code is None or isinstance(exit.code, int):
        return exit.code or 0
    print(exit.code, file=sys.stderr)  # sys.exit("message"), as the interpreter prints it
    return 1


def _child(script: str, argv: list[str], cwd: str, env: dict[str, str], out: str, err: str) -> None:
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    for fd, path in ((1, out), (2, err)):
        file = os.open(path, os.O_WRONLY)
        os.dup2(file, fd)
        os.close(file)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", write_through=True)
    if "OMP_NUM_THREADS" in env:
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    sys.argv = [script, *argv]
    sys.path.insert(0, str(Path(script).parent))
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exit:
        code = _exit_code(exit)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()  # what the interpreter does at exit (wandb finishes its run there)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run(script: Path, argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """`subprocess.run([python, script, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)`,
    forked from the server; in a new interpreter where `env` sets a variable that is read when a library is imported,
    and off Linux (macOS forbids some libraries to run in a forked child)."""
    command = [sys.executable, str(script), *argv]
    context = _server_context() if sys.platform == "linux" else None
    if context is None or any(env.get(name) != _server_env.get(name) for name in IMPORT_TIME_ENV):
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    with tempfile.TemporaryDirectory() as folder:
        out, err = Path(folder, "stdout"), Path(folder, "stderr")
        out.touch()
        err.touch()
        process = context.Process(target=_child, args=(str(script), list(argv), str(cwd), env, str(out), str(err)))
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired(command, timeout, out.read_text(), err.read_text())
        return subprocess.CompletedProcess(command, process.exitcode, out.read_text(), err.read_text())
