"""PPO initialised by behaviour cloning on CLEVR-Robot (Discrete actions): the baseline a user would pick instead of
LaGO, given the same demonstrations.

    python bcppo_clevr_discrete.py --demos demos/clevr.npz --total-timesteps 200000

`ppo_clevr_discrete.py` plus one step before it (`diff` the two; every added block is marked `# BC`): the actor is
pre-trained on the demonstrations that LaGO's prior is fine-tuned on, with the cross-entropy of the demonstrated
actions, for as many steps and as large batches as the prior's fine-tuning (--bc-steps, --bc-batch-size); then
ordinary PPO, whose clipped updates and entropy bonus may move the policy away from the clone. The critic starts
untrained, as in PPO. With `--bc-steps 0` it reproduces `ppo_clevr_discrete.py`'s runs exactly.
"""

from __future__ import annotations

import importlib.util
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from typing import Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
import tyro
from torch.distributions.categorical import Categorical
from torch.utils.tensorboard import SummaryWriter

from collect_demos import DemoError, load_demos  # BC: the demonstrations
from envs.clevr_robot import ENV_ID  # importing envs registers CLEVRRobot-v0
from envs.clevr_robot import goal_vector  # BC: the goal encoding in the policy's observation
from rundir import RunDirError, open_run_dir, write_summary


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
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

    # Algorithm specific arguments
    env_id: str = ENV_ID
    """the id of the environment (CLEVR-Robot only; Meta-World tasks: *_metaworld_continuous.py)"""
    total_timesteps: int = 200_000
    """total timesteps of the experiments"""
    learning_rate: float = 2.5e-4
    """the learning rate of the optimizer"""
    num_envs: int = 8
    """the number of parallel game environments"""
    async_envs: bool = False
    """step the environments in one subprocess each (gymnasium's AsyncVectorEnv), for many envs on many cores;
    the same episodes as in-process stepping"""
    num_steps: int = 128
    """the number of steps to run in each environment per policy rollout"""
    anneal_lr: bool = True
    """Toggle learning rate annealing for policy and value networks"""
    gamma: float = 0.99
    """the discount factor gamma"""
    gae_lambda: float = 0.95
    """the lambda for the general advantage estimation"""
    bootstrap_truncation: bool = True
    """bootstrap the value target at time limits from V(final obs); off: treat them as terminal, as CleanRL does"""
    num_minibatches: int = 4
    """the number of mini-batches"""
    update_epochs: int = 4
    """the K epochs to update the policy"""
    norm_adv: bool = True
    """Toggles advantages normalization"""
    clip_coef: float = 0.2
    """the surrogate clipping coefficient"""
    clip_vloss: bool = True
    """Toggles whether or not to use a clipped loss for the value function, as per the paper."""
    ent_coef: float = 0.01
    """coefficient of the entropy"""
    vf_coef: float = 0.5
    """coefficient of the value function"""
    max_grad_norm: float = 0.5
    """the maximum norm for the gradient clipping"""
    target_kl: Optional[float] = None
    """the target KL divergence threshold"""
    hidden_size: int = 128
    """width of the two hidden layers of actor and critic"""
    max_episode_steps: int = 10
    """episode time limit (pushes)"""

    # BC: behaviour cloning of the actor before PPO
    demos: str = "demos/clevr.npz"
    """the demonstrations the actor is pre-trained on (collect_demos.py; those of LaGO's prior)"""
    bc_steps: int = 400
    """gradient steps of behaviour cloning (as the prior's fine-tuning); 0: none, plain PPO"""
    bc_batch_size: int = 32
    """demonstrated transitions per behaviour-cloning step (as the prior's fine-tuning)"""
    bc_learning_rate: float = 1e-3
    """Adam learning rate of behaviour cloning (as the prior's fine-tuning)"""

    # Evaluation
    eval_interval: int = 20_000
    """evaluate the greedy policy every this many env steps (and at the end)"""
    eval_episodes: int = 50
    """episodes per evaluation and goal split"""

    # to be filled in runtime
    batch_size: int = 0
    """the batch size (computed in runtime)"""
    minibatch_size: int = 0
    """the mini-batch size (computed in runtime)"""
    num_iterations: int = 0
    """the number of iterations (computed in runtime)"""


EVAL_SEED = 1_000_000  # evaluation episodes are seeded apart from training
EVAL_GOALS = {"train": "CLEVR-Robot training goals",
              "test": "CLEVR-Robot held-out goals (colour/relation pairs never trained on)"}


def check_args(args: Args) -> Args:
    """Check the flags, one sentence per bad flag; fill in the derived sizes."""

    def fail(message: str):
        sys.exit(f"{args.exp_name}.py: error: {message}")

    def require(flag: str, valid: bool, expected: str):
        if not valid or not math.isfinite(getattr(args, flag) or 0.0):
            fail(f"--{flag.replace('_', '-')} must be {expected}, got {getattr(args, flag)}")

    if args.env_id != ENV_ID:
        fail(f"--env-id must be {ENV_ID}, got {args.env_id!r} (Meta-World tasks: *_metaworld_continuous.py)")
    for flag in ("total_timesteps", "num_envs", "num_steps", "num_minibatches", "update_epochs", "hidden_size",
                 "max_episode_steps", "eval_interval", "eval_episodes"):
        require(flag, getattr(args, flag) > 0, "a positive integer")
    for flag in ("learning_rate", "clip_coef", "max_grad_norm"):
        require(flag, getattr(args, flag) > 0, "finite and > 0")
    for flag in ("ent_coef", "vf_coef"):
        require(flag, getattr(args, flag) >= 0, "finite and >= 0")
    require("seed", args.seed >= 0, "a non-negative integer")
    require("gamma", 0 < args.gamma <= 1, "finite and in (0, 1]")
    require("gae_lambda", 0 <= args.gae_lambda <= 1, "finite and in [0, 1]")
    require("target_kl", args.target_kl is None or args.target_kl > 0, "finite and > 0")
    require("bc_steps", args.bc_steps >= 0, "a non-negative integer")  # BC
    require("bc_batch_size", args.bc_batch_size > 0, "a positive integer")  # BC
    require("bc_learning_rate", args.bc_learning_rate > 0, "finite and > 0")  # BC
    for flag, module in (("track", "wandb"), ("capture_video", "moviepy")):  # optional dependencies
        if getattr(args, flag) and importlib.util.find_spec(module) is None:
            fail(f"--{flag.replace('_', '-')} needs {module}, which is not installed: pip install {module}")
    args.batch_size = int(args.num_envs * args.num_steps)
    args.minibatch_size = int(args.batch_size // args.num_minibatches)
    args.num_iterations = args.total_timesteps // args.batch_size
    if args.minibatch_size < 2 or args.num_iterations == 0:  # one state: no advantages to normalise
        fail(f"--total-timesteps {args.total_timesteps} must cover one batch of {args.batch_size} steps, "
             "and --num-minibatches at most half that many")

    return args


def make_env(env_id: str, max_episode_steps: int, goal_split: str = "train", render_mode: Optional[str] = None):
    def thunk():
        env = gym.make(env_id, goal_split=goal_split, goal_in_obs=True, max_episode_steps=max_episode_steps,
                       render_mode=render_mode)
        return gym.wrappers.RecordEpisodeStatistics(env)

    return thunk


def can_render(env: gym.Env) -> bool:
    """Whether `env` renders here: MuJoCo needs an offscreen OpenGL context (MUJOCO_GL=egl or osmesa)."""
    try:
        env.reset(seed=0)
        return env.render() is not None
    except Exception:  # no OpenGL: the error comes from deep inside mujoco's GL bindings
        return False
    finally:
        env.close()


def layer_init(layer, std=np.sqrt(2), bias_const=0.0):
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    def __init__(self, obs_dim: int, num_actions: int, hidden: int):
        super().__init__()
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, 1), std=1.0),
        )
        self.actor = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, num_actions), std=0.01),
        )

    def get_value(self, x):
        return self.critic(x)

    def get_action_and_value(self, x, action=None):
        probs = Categorical(logits=self.actor(x))
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.critic(x)


def compute_advantages(rewards, values, dones, final_values, next_value, next_done, gamma: float, gae_lambda: float):
    """GAE over one rollout (CleanRL's loop). A step that ends its episode at the time limit is not terminal: its
    target bootstraps from `final_values[t]`, the value of the episode's final observation (0 at other steps)."""
    advantages = torch.zeros_like(rewards)
    lastgaelam = 0
    num_steps = len(rewards)
    for t in reversed(range(num_steps)):
        if t == num_steps - 1:
            nextnonterminal = 1.0 - next_done
            nextvalues = next_value
        else:
            nextnonterminal = 1.0 - dones[t + 1]
            nextvalues = values[t + 1]
        delta = rewards[t] + gamma * (nextvalues * nextnonterminal + final_values[t]) - values[t]
        advantages[t] = lastgaelam = delta + gamma * gae_lambda * nextnonterminal * lastgaelam
    return advantages


@torch.no_grad()
def evaluate(agent: Agent, args: Args, goal_split: str, device: torch.device,
             video_dir: Optional[str] = None) -> dict[str, float]:
    """Greedy policy on `args.eval_episodes` fixed-seed episodes of `goal_split`; success (at any step) and return."""
    env = make_env(args.env_id, args.max_episode_steps, goal_split, "rgb_array" if video_dir else None)()
    if video_dir is not None:  # the first episode
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda episode: episode == 0, disable_logger=True)
    successes, returns = [], []
    for episode in range(args.eval_episodes):
        obs, _ = env.reset(seed=EVAL_SEED + episode)
        success, episode_return = 0.0, 0.0
        while True:
            action = agent.actor(torch.as_tensor(obs, dtype=torch.float32, device=device)[None]).argmax(-1)
            obs, reward, terminated, truncated, info = env.step(action.item())
            episode_return += float(reward)
            success = max(success, float(info["success"]))
            if success or terminated or truncated:
                break
        successes.append(success)
        returns.append(episode_return)
    env.close()
    return {"success_rate": float(np.mean(successes)), "return": float(np.mean(returns))}


def run_evaluations(agent, args, device, writer, global_step, history, video_dir=None) -> dict:
    result = {split: evaluate(agent, args, split, device, video_dir and os.path.join(video_dir, f"{split}-step{global_step}"))
              for split in ("train", "test")}
    for split, metrics in result.items():
        prefix = "eval" if split == "train" else f"eval_{split}"
        for name, value in metrics.items():
            writer.add_scalar(f"{prefix}/{name}", value, global_step)
    history.append({"global_step": global_step, **result})
    print(f"global_step={global_step}, eval " + ", ".join(
        f"{split} success {m['success_rate']:.2f} return {m['return']:.2f}" for split, m in result.items()), flush=True)
    return result


if __name__ == "__main__":
    args = check_args(tyro.cli(Args))
    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    run_dir = args.run_dir or f"runs/{run_name}"

    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    # BC: the demonstrations as the policy sees them: ball positions + the goal's encoding, before the run directory
    try:
        demos, demo_meta = load_demos(args.demos)
        if demo_meta["env"] != "clevr":
            raise DemoError(f"{args.demos} holds {demo_meta['env']} demonstrations, not CLEVR-Robot's")
    except DemoError as error:
        sys.exit(f"{args.exp_name}.py: error: --demos: {error}")
    demo_obs = torch.as_tensor(np.concatenate([demos["obs"], np.stack([goal_vector(g) for g in demos["task_id"]])], 1),
                               dtype=torch.float32, device=device)
    demo_actions = torch.as_tensor(demos["actions"], device=device)
    try:
        open_run_dir(run_dir, args.overwrite)  # one writer per run directory
    except RunDirError as error:
        sys.exit(f"{args.exp_name}.py: error: {error}")
    if args.track:
        try:
            import wandb

            wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, sync_tensorboard=True, config=vars(args),
                       name=run_name, save_code=True)
        except Exception as error:  # a broken install, no API key, no network: WANDB_MODE=offline logs locally
            why = (str(error) or type(error).__name__).splitlines()[0]
            sys.exit(f"{args.exp_name}.py: error: --track: wandb did not start ({why}); "
                     "check its install, run `wandb login`, or set WANDB_MODE=offline")
    video_dir = None
    if args.capture_video:
        if can_render(make_env(args.env_id, args.max_episode_steps, render_mode="rgb_array")()):
            video_dir = os.path.join(run_dir, "videos")
        else:
            print("--capture-video: no offscreen OpenGL here (MUJOCO_GL=egl or osmesa, and its libraries): no videos", flush=True)
    writer = SummaryWriter(run_dir)
    writer.add_text(
        "hyperparameters",
        "|param|value|\n|-|-|\n%s" % ("\n".join([f"|{key}|{value}|" for key, value in vars(args).items()])),
    )

    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic

    # env setup
    envs = (gym.vector.AsyncVectorEnv if args.async_envs else gym.vector.SyncVectorEnv)(
        [make_env(args.env_id, args.max_episode_steps) for _ in range(args.num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    assert isinstance(envs.single_action_space, gym.spaces.Discrete), "only discrete action space is supported"
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    num_actions = int(envs.single_action_space.n)
    agent = Agent(obs_dim, num_actions, args.hidden_size).to(device)
    optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    # BC: pre-train the actor on the demonstrations (cross-entropy of the demonstrated actions), then PPO as usual
    if args.bc_steps > 0:
        bc_optimizer = optim.Adam(agent.actor.parameters(), lr=args.bc_learning_rate)
        bc_generator = torch.Generator().manual_seed(args.seed)  # its batches draw nothing from PPO's random numbers
        for bc_step in range(1, args.bc_steps + 1):
            rows = torch.randint(len(demo_obs), (args.bc_batch_size,), generator=bc_generator).to(device)
            bc_loss = nn.functional.cross_entropy(agent.actor(demo_obs[rows]), demo_actions[rows])
            bc_optimizer.zero_grad()
            bc_loss.backward()
            bc_optimizer.step()
            writer.add_scalar("bc/loss", bc_loss.item(), bc_step)
        print(f"behaviour cloning: {args.bc_steps} steps on {len(demo_obs)} demonstrated transitions, "
              f"final loss {bc_loss.item():.3f}", flush=True)

    # ALGO Logic: Storage setup
    obs = torch.zeros((args.num_steps, args.num_envs) + envs.single_observation_space.shape).to(device)
    actions = torch.zeros((args.num_steps, args.num_envs) + envs.single_action_space.shape).to(device)
    logprobs = torch.zeros((args.num_steps, args.num_envs)).to(device)
    rewards = torch.zeros((args.num_steps, args.num_envs)).to(device)
    dones = torch.zeros((args.num_steps, args.num_envs)).to(device)
    values = torch.zeros((args.num_steps, args.num_envs)).to(device)
    final_values = torch.zeros((args.num_steps, args.num_envs)).to(device)  # V(final obs) where a time limit hit

    # TRY NOT TO MODIFY: start the game
    global_step = 0
    start_time = time.time()
    next_obs, _ = envs.reset(seed=args.seed)
    next_obs = torch.Tensor(next_obs).to(device)
    next_done = torch.zeros(args.num_envs).to(device)
    episode_success = np.zeros(args.num_envs)  # whether each env's current episode has succeeded yet
    evaluations: list[dict] = []
    eval_seconds = 0.0

    for iteration in range(1, args.num_iterations + 1):
        # Annealing the rate if instructed to do so.
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / args.num_iterations
            lrnow = frac * args.learning_rate
            optimizer.param_groups[0]["lr"] = lrnow

        for step in range(0, args.num_steps):
            global_step += args.num_envs
            obs[step] = next_obs
            dones[step] = next_done

            # ALGO LOGIC: action logic
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
                values[step] = value.flatten()
            actions[step] = action
            logprobs[step] = logprob

            # TRY NOT TO MODIFY: execute the game and log data.
            next_obs, reward, terminations, truncations, infos = envs.step(action.cpu().numpy())
            next_done = np.logical_or(terminations, truncations)
            rewards[step] = torch.tensor(reward).to(device).view(-1)
            next_obs, next_done = torch.Tensor(next_obs).to(device), torch.Tensor(next_done).to(device)

            # a time limit is not a terminal state: bootstrap from the value of the episode's final observation
            final_values[step] = 0.0
            time_limited = truncations & ~terminations
            if args.bootstrap_truncation and time_limited.any():
                final_obs = torch.Tensor(np.stack(infos["final_obs"][time_limited])).to(device)
                with torch.no_grad():
                    final_values[step, torch.from_numpy(time_limited)] = agent.get_value(final_obs).flatten()

            # success at any step of the episode (a CLEVR-Robot episode ends on success)
            step_success = infos["success"] if "success" in infos else np.zeros(args.num_envs)
            if "final_info" in infos:  # an env that just ended reports its new episode in `infos`, its last step here
                step_success = np.where(infos["_final_info"], infos["final_info"]["success"], step_success)
            episode_success = np.maximum(episode_success, step_success)
            if "final_info" in infos and "episode" in infos["final_info"]:
                episode, ended = infos["final_info"]["episode"], infos["final_info"]["_episode"]
                for i in np.flatnonzero(ended):
                    writer.add_scalar("charts/episodic_return", episode["r"][i], global_step)
                    writer.add_scalar("charts/episodic_length", episode["l"][i], global_step)
                    writer.add_scalar("charts/episodic_success", episode_success[i], global_step)
                episode_success[ended] = 0.0

        # bootstrap value if not done
        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = compute_advantages(rewards, values, dones, final_values, next_value, next_done,
                                            args.gamma, args.gae_lambda)
            returns = advantages + values

        # flatten the batch
        b_obs = obs.reshape((-1,) + envs.single_observation_space.shape)
        b_logprobs = logprobs.reshape(-1)
        b_actions = actions.reshape((-1,) + envs.single_action_space.shape)
        b_advantages = advantages.reshape(-1)
        b_returns = returns.reshape(-1)
        b_values = values.reshape(-1)

        # Optimizing the policy and value network
        b_inds = np.arange(args.batch_size)
        clipfracs = []
        for epoch in range(args.update_epochs):
            np.random.shuffle(b_inds)
            for start in range(0, args.batch_size, args.minibatch_size):
                end = start + args.minibatch_size
                mb_inds = b_inds[start:end]

                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb_inds], b_actions.long()[mb_inds])
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()

                with torch.no_grad():
                    # calculate approx_kl http://joschu.net/blog/kl-approx.html
                    old_approx_kl = (-logratio).mean()
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs += [((ratio - 1.0).abs() > args.clip_coef).float().mean().item()]

                mb_advantages = b_advantages[mb_inds]
                if args.norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)

                # Policy loss
                pg_loss1 = -mb_advantages * ratio
                pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)
                pg_loss = torch.max(pg_loss1, pg_loss2).mean()

                # Value loss
                newvalue = newvalue.view(-1)
                if args.clip_vloss:
                    v_loss_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                    v_clipped = b_values[mb_inds] + torch.clamp(
                        newvalue - b_values[mb_inds],
                        -args.clip_coef,
                        args.clip_coef,
                    )
                    v_loss_clipped = (v_clipped - b_returns[mb_inds]) ** 2
                    v_loss_max = torch.max(v_loss_unclipped, v_loss_clipped)
                    v_loss = 0.5 * v_loss_max.mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()

                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef

                if not torch.isfinite(loss):
                    sys.exit(f"{args.exp_name}.py: error: the loss is {loss.item()} in update {iteration} (epoch {epoch + 1}, "
                             f"global step {global_step}): training diverged, no summary written")

                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

            if args.target_kl is not None and approx_kl > args.target_kl:
                break

        y_pred, y_true = b_values.cpu().numpy(), b_returns.cpu().numpy()
        var_y = np.var(y_true)
        explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y

        # TRY NOT TO MODIFY: record rewards for plotting purposes
        writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
        writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
        writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
        writer.add_scalar("losses/entropy", entropy_loss.item(), global_step)
        writer.add_scalar("losses/old_approx_kl", old_approx_kl.item(), global_step)
        writer.add_scalar("losses/approx_kl", approx_kl.item(), global_step)
        writer.add_scalar("losses/clipfrac", np.mean(clipfracs), global_step)
        writer.add_scalar("losses/explained_variance", explained_var, global_step)
        sps = int(global_step / (time.time() - start_time))
        writer.add_scalar("charts/SPS", sps, global_step)

        if global_step // args.eval_interval > (global_step - args.batch_size) // args.eval_interval or iteration == args.num_iterations:
            print(f"SPS: {sps}", flush=True)
            eval_start = time.time()
            final = run_evaluations(agent, args, device, writer, global_step, evaluations, video_dir)
            eval_seconds += time.time() - eval_start

    if args.save_model:
        model_path = os.path.join(run_dir, f"{args.exp_name}.cleanrl_model")
        torch.save({"script": os.path.basename(__file__), "args": asdict(args), "agent": type(agent).__name__,
                    "agent_args": [obs_dim, num_actions, args.hidden_size], "state_dict": agent.state_dict()}, model_path)
        print(f"model saved to {model_path}", flush=True)
    wall_seconds = time.time() - start_time
    summary = {
        "env_id": args.env_id, "method": args.exp_name, "seed": args.seed, "global_step": global_step,
        "wall_seconds": round(wall_seconds, 1), "sps": round(global_step / wall_seconds, 1),
        "eval_seconds": round(eval_seconds, 1), "eval_goals": EVAL_GOALS,
        "final_eval": final, "evaluations": evaluations, "args": asdict(args),
    }
    summary_path = write_summary(run_dir, summary)
    print(f"wrote {summary_path}: " + ", ".join(f"{split} success {m['success_rate']:.2f}" for split, m in final.items()))
    envs.close()
    writer.close()
