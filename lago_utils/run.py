"""What a stage-2 run writes, apart from the algorithm (CleanRL keeps such helpers in cleanrl_utils/):

    class Args(RunArgs): ...                # the run's flags (--seed, --track, --run-dir, ...), then the script's
    run = Run(args, run_name, make_env)     # the run directory (one writer), wandb, the video folder, TensorBoard
    run.evaluate(agent, global_step)        # both goal splits: eval/* and eval_test/*, kept for the summary
    run.save_model(__file__, agent, [...])  # --save-model: <run-dir>/<exp-name>.cleanrl_model
    run.write_summary(env_id, global_step, start_time, eval_goals)  # summary.json

and `evaluate`, the evaluation episodes of one goal split, which evaluate_policy.py replays.
"""

from __future__ import annotations

import gc
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

import gymnasium as gym
import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from lago_utils.checks import fail
from rundir import RunDirError, open_run_dir, write_summary

EVAL_SEED = 1_000_000  # evaluation episodes are seeded apart from training (Meta-World: it fixes the held-out goals too)


@dataclass
class RunArgs:
    """The first flags of every stage-2 script: the run's, not the algorithm's (a script sets its own --exp-name)."""

    exp_name: str = "run"
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = False
    """the policy and PPO's update on CUDA (the prior uses a GPU whenever there is one; these small networks gain
    nothing from it)"""
    track: bool = False
    """if toggled, this experiment will be tracked with Weights and Biases"""
    wandb_project_name: str = "lago"
    """the wandb's project name"""
    wandb_entity: Optional[str] = None
    """the entity (team) of wandb's project"""
    capture_video: bool = False
    """whether to capture videos of the agent performances: the first episode of each evaluation and goal split, in
    <run-dir>/videos (needs offscreen OpenGL: MUJOCO_GL=egl or osmesa; skipped with a note where there is none)"""
    save_model: bool = False
    """whether to save the policy to <run-dir>/<exp-name>.cleanrl_model
    (evaluate_policy.py replays it)"""
    run_dir: Optional[str] = None
    """where the TensorBoard log and summary.json go; default runs/<run name>"""
    overwrite: bool = False
    """replace the run already in --run-dir (its summary and TensorBoard events) instead of refusing it"""


def can_render(env: gym.Env) -> bool:
    """Whether `env` renders here: MuJoCo needs an offscreen OpenGL context (MUJOCO_GL=egl or osmesa). Quietly: where
    there is none, the GL bindings' warnings and the traceback of the half-made renderer's `__del__` (mujoco's
    Renderer, when it is collected) are left out; the caller says in one line that there are no videos."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None if _is_failed_renderer(unraisable) else hook(unraisable)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. glfw's "The DISPLAY environment variable is missing"
            try:
                env.reset(seed=0)
                return env.render() is not None
            except Exception:  # no OpenGL: the error comes from deep inside mujoco's GL bindings
                return False
            finally:
                env.close()
    finally:
        gc.collect()  # the half-made renderer goes now, while its complaint is left out
        sys.unraisablehook = hook


def _is_failed_renderer(unraisable: Any) -> bool:
    """An exception in the `__del__` of a MuJoCo renderer whose OpenGL context was never made."""
    return getattr(unraisable.object, "__qualname__", "").endswith("Renderer.__del__") and \
        isinstance(unraisable.exc_value, AttributeError)


def start_wandb(args: Any, run_name: str) -> None:
    """--track: a wandb run that syncs the TensorBoard logs, or one sentence on why it did not start."""
    try:
        import wandb

        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, sync_tensorboard=True, config=vars(args),
                   name=run_name, save_code=True)
    except Exception as error:  # a broken install, no API key, no network: WANDB_MODE=offline logs locally
        why = (str(error) or type(error).__name__).splitlines()[0]
        fail(args, f"--track: wandb did not start ({why}); "
                   "check its install, run `wandb login`, or set WANDB_MODE=offline")


@torch.no_grad()
def evaluate(agent: torch.nn.Module, make_env: Callable, args: Any, goal_split: str,
             video_dir: Optional[str] = None) -> dict[str, float]:
    """`agent.get_greedy_action` on --eval-episodes episodes of `make_env(args, goal_split)` seeded EVAL_SEED + i, each
    a success if it succeeds at any step (and stopped there): the success rate and the mean return. With `video_dir`,
    the first episode is recorded there."""
    env = make_env(args, goal_split, "rgb_array" if video_dir else None)()
    if video_dir is not None:
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda episode: episode == 0, disable_logger=True)
    device = next(agent.parameters()).device
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    successes, returns = [], []
    for episode in range(args.eval_episodes):
        obs, _ = env.reset(seed=EVAL_SEED + episode)
        success, episode_return = 0.0, 0.0
        while True:
            action = agent.get_greedy_action(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])
            obs, reward, terminated, truncated, info = env.step(action.item() if discrete else action[0].cpu().numpy())
            episode_return += float(reward)
            success = max(success, float(info["success"]))
            if success or terminated or truncated:
                break
        successes.append(success)
        returns.append(episode_return)
    env.close()
    return {"success_rate": float(np.mean(successes)), "return": float(np.mean(returns))}


class Run:
    """A run's directory and logs. Locks the run directory (rundir.py: one writer, Ctrl-C ends the run in one
    line), starts wandb with --track, checks with --capture-video that the script's `make_env(args, goal_split,
    render_mode)` renders (else says so), and opens TensorBoard with the hyperparameters; each stops with one sentence
    where it cannot."""

    def __init__(self, args: Any, run_name: str, make_env: Callable):
        self.args, self.make_env = args, make_env
        self.dir = args.run_dir or f"runs/{run_name}"
        try:
            open_run_dir(self.dir, args.overwrite)  # one writer per run directory
        except RunDirError as error:
            fail(args, str(error))
        if args.track:
            start_wandb(args, run_name)
        self.video_dir = None
        if args.capture_video:
            if can_render(make_env(args, "train", "rgb_array")()):
                self.video_dir = os.path.join(self.dir, "videos")
            else:
                print("--capture-video: no offscreen OpenGL here (MUJOCO_GL=egl or osmesa, and its libraries): no videos",
                      flush=True)
        self.writer = SummaryWriter(self.dir)
        self.writer.add_text(
            "hyperparameters",
            "|param|value|\n|-|-|\n%s" % ("\n".join([f"|{key}|{value}|" for key, value in vars(args).items()])),
        )
        self.evaluations: list[dict] = []
        self.final_eval: dict = {}
        self.eval_seconds = 0.0

    def evaluate(self, agent: torch.nn.Module, global_step: int) -> dict:
        """`evaluate` on the train and the test goals, logged (eval/*, eval_test/*), printed and kept for the
        summary; with --capture-video, the first episode of each in videos/<split>-step<N>."""
        start = time.time()
        result = {split: evaluate(agent, self.make_env, self.args, split,
                                  self.video_dir and os.path.join(self.video_dir, f"{split}-step{global_step}"))
                  for split in ("train", "test")}
        for split, metrics in result.items():
            prefix = "eval" if split == "train" else f"eval_{split}"
            for name, value in metrics.items():
                self.writer.add_scalar(f"{prefix}/{name}", value, global_step)
        self.evaluations.append({"global_step": global_step, **result})
        print(f"global_step={global_step}, eval " + ", ".join(
            f"{split} success {m['success_rate']:.2f} return {m['return']:.2f}" for split, m in result.items()), flush=True)
        self.final_eval = result
        self.eval_seconds += time.time() - start
        return result

    def save_model(self, script: str, agent: torch.nn.Module, agent_args: list) -> None:
        """With --save-model: the policy (rebuilt as `script`'s `type(agent)(*agent_args)`), its weights and buffers,
        and the run's flags, in <run-dir>/<exp-name>.cleanrl_model, for evaluate_policy.py."""
        if not self.args.save_model:
            return
        model_path = os.path.join(self.dir, f"{self.args.exp_name}.cleanrl_model")
        torch.save({"script": os.path.basename(script), "args": asdict(self.args), "agent": type(agent).__name__,
                    "agent_args": agent_args, "state_dict": agent.state_dict()}, model_path)
        print(f"model saved to {model_path}", flush=True)

    def write_summary(self, env_id: str, global_step: int, start_time: float, eval_goals: dict[str, str],
                      **extra: Any) -> None:
        """summary.json: the final and every evaluation, the speed and the flags (and `extra`)."""
        wall_seconds = time.time() - start_time
        summary = {
            "env_id": env_id, "method": self.args.exp_name, "seed": self.args.seed, "global_step": global_step,
            "wall_seconds": round(wall_seconds, 1), "sps": round(global_step / wall_seconds, 1),
            "eval_seconds": round(self.eval_seconds, 1), "eval_goals": eval_goals,
            "final_eval": self.final_eval, "evaluations": self.evaluations, "args": asdict(self.args), **extra,
        }
        summary_path = write_summary(self.dir, summary)
        print(f"wrote {summary_path}: " + ", ".join(
            f"{split} success {m['success_rate']:.2f}" for split, m in self.final_eval.items()))
