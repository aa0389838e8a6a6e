"""LaGO on Meta-World: PPO softly guided by a fine-tuned LLM action prior (Box actions).

    python collect_demos.py --env metaworld
    python finetune_prior.py --demos demos/metaworld.npz --llm smollm2-135m
    python lago_metaworld_continuous.py --llm smollm2-135m --task drawer-close-v3

CleanRL's `ppo_continuous_action.py` with one more term in the loss:

    loss = pg_loss - ent_coef * entropy + vf_coef * v_loss + beta_t * KL(pi_theta(.|s) || p_prior(.|s, text))

Both distributions are diagonal Gaussians over the 4 action numbers, so the KL is exact and
analytic. The prior is the stage-1 checkpoint: a frozen LLM that reads the task prompt and the
raw 39-number observation and gives a mean and a standard deviation per action number. It is
queried once per rollout batch (the prompt is KV-cached) and only while `beta_t > 0`, and its
outputs are stored beside the batch, so PPO's update epochs never call the LLM. The policy sees
normalised observations, exactly as in `ppo_metaworld_continuous.py`: with `--guidance-coef 0`
this file reproduces that file's run for the same seed. `diff ppo_metaworld_continuous.py
lago_metaworld_continuous.py` is LaGO and nothing else; each block it adds carries a `# LaGO` comment.
"""

from __future__ import annotations

import importlib.util
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from typing import Annotated, Literal  # LaGO: the prior's and the guidance flags' help
from typing import Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
import tyro
from torch.distributions import kl_divergence  # LaGO: the guidance term
from torch.distributions.normal import Normal
from torch.utils.tensorboard import SummaryWriter

from envs.metaworld_tasks import MT10_TASKS, make_metaworld_env
from envs.metaworld_tasks import task_prompt  # LaGO: the task's instruction
from lago_utils.prior_io import PriorError, default_prior_path, load_prior, read_prior_config  # LaGO: the stage-1 prior
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
    """whether to save the policy and its observation statistics to <run-dir>/<exp-name>.cleanrl_model
    (evaluate_policy.py replays it)"""
    run_dir: Optional[str] = None
    """where the TensorBoard log and summary.json go; default runs/<run name>"""
    overwrite: bool = False
    """replace the run already in --run-dir (its summary and TensorBoard events) instead of refusing it"""

    # Algorithm specific arguments
    task: str = "reach-v3"
    """the MT10 task (`reach-v3`, `push-v3`, `pick-place-v3`, `door-open-v3`, `drawer-open-v3`, ...)"""
    total_timesteps: int = 1_000_000
    """total timesteps of the experiments"""
    learning_rate: float = 3e-4
    """the learning rate of the optimizer"""
    num_envs: int = 1
    """the number of parallel game environments"""
    async_envs: bool = False
    """step the environments in one subprocess each (gymnasium's AsyncVectorEnv), for many envs on many cores;
    the same episodes as in-process stepping"""
    num_steps: int = 2048
    """the number of steps to run in each environment per policy rollout"""
    anneal_lr: bool = True
    """Toggle learning rate annealing for policy and value networks"""
    gamma: float = 0.99
    """the discount factor gamma"""
    gae_lambda: float = 0.95
    """the lambda for the general advantage estimation"""
    bootstrap_truncation: bool = True
    """bootstrap the value target at time limits from V(final obs); off: treat them as terminal, as CleanRL does"""
    num_minibatches: int = 32
    """the number of mini-batches"""
    update_epochs: int = 10
    """the K epochs to update the policy"""
    norm_adv: bool = True
    """Toggles advantages normalization"""
    clip_coef: float = 0.2
    """the surrogate clipping coefficient"""
    clip_vloss: bool = True
    """Toggles whether or not to use a clipped loss for the value function, as per the paper."""
    ent_coef: float = 0.0
    """coefficient of the entropy"""
    vf_coef: float = 0.5
    """coefficient of the value function"""
    max_grad_norm: float = 0.5
    """the maximum norm for the gradient clipping"""
    target_kl: Optional[float] = None
    """the target KL divergence threshold"""
    hidden_size: int = 64
    """width of the two hidden layers of actor and critic"""
    max_episode_steps: int = 500
    """episode time limit"""

    # LaGO: the prior and the guidance flags
    llm: Annotated[Optional[str], tyro.conf.arg(help_behavior_hint="(default: smollm2-135m)")] = None
    """the LLM of the prior: it picks the default --prior-path, and must match the checkpoint's"""
    prior_path: Annotated[Optional[str], tyro.conf.arg(
        help_behavior_hint="(default: checkpoints/prior__metaworld__<llm>__1, else the shipped priors/metaworld__<llm>)")] = None
    """the stage-1 checkpoint (finetune_prior.py --out)"""
    guidance_coef: float = 0.1
    """beta_0, the start value of the guidance coefficient (0 turns LaGO into PPO)"""
    guidance_schedule: Literal["constant", "linear", "exp"] = "linear"
    """constant beta_0; linear decay to 0 at --guidance-decay-end; exp decay to 1% of beta_0 there (0 after)"""
    guidance_decay_end: float = 0.6
    """fraction of the training budget at which the decaying coefficient reaches 0"""
    guidance_kl: Literal["reverse", "forward"] = "reverse"
    """reverse KL(pi || prior) (KL-regularised RL) or forward KL(prior || pi) (kickstarting)"""
    prior_fraction: float = 1.0
    """fraction of each rollout batch the prior is queried on (random states; the KL is averaged over them)"""
    prior_device: str = "auto"
    """device of the prior: `auto` (CUDA where there is a GPU, whatever --cuda says), `cpu` or `cuda`"""

    # Evaluation
    eval_interval: int = 20_000
    """evaluate the greedy policy every this many env steps (and at the end)"""
    eval_episodes: int = 50
    """evaluation episodes"""

    # to be filled in runtime
    batch_size: int = 0
    """the batch size (computed in runtime)"""
    minibatch_size: int = 0
    """the mini-batch size (computed in runtime)"""
    num_iterations: int = 0
    """the number of iterations (computed in runtime)"""


EVAL_SEED = 1_000_000  # evaluation episodes are seeded apart from training; it also fixes the held-out goal positions
EVAL_GOALS = {"train": "the 50 goal positions of the training env (env seed = --seed)",
              "test": f"50 held-out goal positions (env seed {EVAL_SEED}, never trained on)"}
DEFAULT_LLM = "smollm2-135m"  # LaGO: the prior's LLM when neither --llm nor --prior-path names one


def check_args(args: Args) -> Args:
    """Check the flags, one sentence per bad flag; fill in the derived sizes."""

    def fail(message: str):
        sys.exit(f"{args.exp_name}.py: error: {message}")

    def require(flag: str, valid: bool, expected: str):
        if not valid or not math.isfinite(getattr(args, flag) or 0.0):
            fail(f"--{flag.replace('_', '-')} must be {expected}, got {getattr(args, flag)}")

    if args.task not in MT10_TASKS:
        fail(f"--task {args.task!r} is not an MT10 task ({', '.join(MT10_TASKS)})")
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
    for flag, module in (("track", "wandb"), ("capture_video", "moviepy")):  # optional dependencies
        if getattr(args, flag) and importlib.util.find_spec(module) is None:
            fail(f"--{flag.replace('_', '-')} needs {module}, which is not installed: pip install {module}")
    args.batch_size = int(args.num_envs * args.num_steps)
    args.minibatch_size = int(args.batch_size // args.num_minibatches)
    args.num_iterations = args.total_timesteps // args.batch_size
    if args.minibatch_size < 2 or args.num_iterations == 0:  # one state: no advantages to normalise
        fail(f"--total-timesteps {args.total_timesteps} must cover one batch of {args.batch_size} steps, "
             "and --num-minibatches at most half that many")

    # LaGO: check the guidance flags, and find the prior's checkpoint (its LLM must match --llm)
    require("guidance_coef", args.guidance_coef >= 0, "finite and >= 0")
    for flag in ("guidance_decay_end", "prior_fraction"):
        require(flag, 0 < getattr(args, flag) <= 1, "finite and in (0, 1]")
    try:
        if args.prior_path is None:  # an --llm that is no alias and has no checkpoint: PriorError
            args.prior_path, origin = default_prior_path("metaworld", args.llm or DEFAULT_LLM)
            print(f"prior: {args.prior_path} ({origin})", flush=True)
        config = read_prior_config(args.prior_path)
    except PriorError as error:
        fail(f"{'--prior-path: ' if args.prior_path else ''}{error}")
    if args.llm is not None and config["llm"] != args.llm:
        fail(f"--llm {args.llm} does not match the prior {args.prior_path}, which was fine-tuned from {config['llm']}")
    args.llm = config["llm"]
    if config.get("tasks") and args.task not in config["tasks"]:
        print(f"note: the prior {args.prior_path} saw no demonstrations of {args.task}; "
              "its guidance there is zero-shot", flush=True)
    return args


# LaGO: the guidance coefficient's schedule, beta_t
def guidance_coef(args: Args, progress: float) -> float:
    """beta_t at `progress` (fraction of the training budget already used)."""
    if args.guidance_schedule == "constant":
        return args.guidance_coef
    if progress >= args.guidance_decay_end:
        return 0.0
    if args.guidance_schedule == "linear":
        return args.guidance_coef * (1.0 - progress / args.guidance_decay_end)
    return args.guidance_coef * 0.01 ** (progress / args.guidance_decay_end)


def make_env(task: str, seed: int, max_episode_steps: int, render_mode: Optional[str] = None):
    def thunk():
        env = make_metaworld_env(task, seed=seed, max_episode_steps=max_episode_steps, render_mode=render_mode)
        env = gym.wrappers.ClipAction(env)
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


class RunningNorm(nn.Module):
    """Observation normalisation (gymnasium's NormalizeObservation) kept in the agent, clipped to +-10."""

    def __init__(self, shape: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    def update(self, x: torch.Tensor) -> None:
        x = x.double()
        batch_mean, batch_var, batch_count = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta, total = batch_mean - self.mean, self.count + batch_count
        self.mean += delta * batch_count / total
        self.var = (self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total) / total
        self.count = total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + 1e-8)).clamp(-10, 10).float()


class Agent(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, hidden: int):
        super().__init__()
        self.obs_norm = RunningNorm(obs_dim)
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, 1), std=1.0),
        )
        self.actor_mean = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, action_dim), std=0.01),
        )
        self.actor_logstd = nn.Parameter(torch.zeros(1, action_dim))

    def get_value(self, x):
        return self.critic(x)

    def get_action_and_value(self, x, action=None):
        action_mean = self.actor_mean(x)
        action_std = torch.exp(self.actor_logstd.expand_as(action_mean))
        probs = Normal(action_mean, action_std)
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action).sum(1), probs.entropy().sum(1), self.critic(x), probs  # LaGO: + the distribution


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
    """Mean action on `args.eval_episodes` fixed-seed episodes, each a success if it succeeds at any step (and
    stopped there); train: the training env's 50 goal positions, test: the 50 held-out ones of EVAL_SEED."""
    env = make_env(args.task, args.seed if goal_split == "train" else EVAL_SEED, args.max_episode_steps,
                   "rgb_array" if video_dir else None)()
    if video_dir is not None:  # the first episode
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda episode: episode == 0, disable_logger=True)
    successes, returns = [], []
    for episode in range(args.eval_episodes):
        obs, _ = env.reset(seed=EVAL_SEED + episode)
        success, episode_return = 0.0, 0.0
        while True:
            x = agent.obs_norm(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])
            obs, reward, terminated, truncated, info = env.step(agent.actor_mean(x)[0].cpu().numpy())
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
    run_name = f"{args.task}__{args.exp_name}__{args.seed}__{int(time.time())}"
    run_dir = args.run_dir or f"runs/{run_name}"

    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    # LaGO: load the frozen prior, before seeding (building an LLM may draw random numbers)
    probe = make_env(args.task, args.seed, args.max_episode_steps)()
    try:
        prior = load_prior(args.prior_path, env=probe, device=args.prior_device)
    except PriorError as error:
        sys.exit(f"{args.exp_name}.py: error: --prior-path: {error}")
    probe.close()
    prompt = task_prompt(args.task)

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
        if can_render(make_env(args.task, args.seed, args.max_episode_steps, render_mode="rgb_array")()):
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
    prior_rng = np.random.default_rng(args.seed + 1)  # LaGO: --prior-fraction's subsets, apart from PPO's RNG

    # env setup
    envs = (gym.vector.AsyncVectorEnv if args.async_envs else gym.vector.SyncVectorEnv)(
        [make_env(args.task, args.seed, args.max_episode_steps) for _ in range(args.num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    assert isinstance(envs.single_action_space, gym.spaces.Box), "only continuous action space is supported"
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    action_dim = int(np.prod(envs.single_action_space.shape))
    agent = Agent(obs_dim, action_dim, args.hidden_size).to(device)
    envs = gym.wrappers.vector.NormalizeReward(envs, gamma=args.gamma)
    envs = gym.wrappers.vector.TransformReward(envs, lambda reward: np.clip(reward, -10, 10))
    optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    # ALGO Logic: Storage setup
    obs = torch.zeros((args.num_steps, args.num_envs) + envs.single_observation_space.shape).to(device)
    raw_obs = torch.zeros((args.num_steps, args.num_envs) + envs.single_observation_space.shape).to(device)  # LaGO: for the prior
    actions = torch.zeros((args.num_steps, args.num_envs) + envs.single_action_space.shape).to(device)
    logprobs = torch.zeros((args.num_steps, args.num_envs)).to(device)
    rewards = torch.zeros((args.num_steps, args.num_envs)).to(device)
    dones = torch.zeros((args.num_steps, args.num_envs)).to(device)
    values = torch.zeros((args.num_steps, args.num_envs)).to(device)
    final_values = torch.zeros((args.num_steps, args.num_envs)).to(device)  # V(final obs) where a time limit hit

    # TRY NOT TO MODIFY: start the game
    global_step = 0
    start_time = time.time()
    prior_seconds_total = 0.0  # LaGO
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
        beta = guidance_coef(args, (iteration - 1.0) / args.num_iterations)  # LaGO

        for step in range(0, args.num_steps):
            global_step += args.num_envs
            raw_obs[step] = next_obs  # LaGO
            agent.obs_norm.update(next_obs)
            obs[step] = agent.obs_norm(next_obs)
            dones[step] = next_done

            # ALGO LOGIC: action logic
            with torch.no_grad():
                action, logprob, _, value, _ = agent.get_action_and_value(obs[step])  # LaGO: + the distribution
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
                    final_values[step, torch.from_numpy(time_limited)] = agent.get_value(agent.obs_norm(final_obs)).flatten()

            # success at any step of the episode, as Meta-World reports it
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

        # LaGO: query the frozen prior once per rollout batch (its mean and std from the raw observations and the
        # task prompt), kept beside the batch for the update epochs
        b_prior_mean = torch.zeros((args.batch_size, action_dim), device=device)
        b_prior_std = torch.ones((args.batch_size, action_dim), device=device)
        b_has_prior = torch.zeros(args.batch_size, dtype=torch.bool, device=device)
        if beta > 0:
            prior_start = time.time()
            queried = np.arange(args.batch_size)
            if args.prior_fraction < 1:
                queried = np.sort(prior_rng.choice(args.batch_size, max(1, round(args.prior_fraction * args.batch_size)), replace=False))
            try:
                prior_mean, prior_std = prior(raw_obs.reshape(args.batch_size, -1)[queried], [prompt] * len(queried))
            except PriorError as error:  # non-finite outputs
                sys.exit(f"{args.exp_name}.py: error: {error}; no summary written")
            b_prior_mean[queried], b_prior_std[queried] = prior_mean.to(device), prior_std.to(device)
            b_has_prior[queried] = True
            prior_seconds = time.time() - prior_start
            prior_seconds_total += prior_seconds
            writer.add_scalar("perf/prior_seconds", prior_seconds, global_step)
            with torch.no_grad():
                # continuous "agreement": how often the policy's mean action lies within one prior std of the
                # prior's mean, per action number; and the distance between the two (clipped) mean actions
                policy_mean = agent.actor_mean(obs.reshape(args.batch_size, -1)[b_has_prior]).clamp(-1, 1)
                gap = policy_mean - b_prior_mean[b_has_prior].clamp(-1, 1)
                prior_agreement = (gap.abs() <= b_prior_std[b_has_prior]).float().mean()
            writer.add_scalar("charts/prior_agreement", prior_agreement.item(), global_step)
            writer.add_scalar("charts/prior_action_distance", gap.norm(dim=-1).mean().item(), global_step)

        # bootstrap value if not done
        with torch.no_grad():
            next_value = agent.get_value(agent.obs_norm(next_obs)).reshape(1, -1)
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

                _, newlogprob, entropy, newvalue, newprobs = agent.get_action_and_value(  # LaGO: + the distribution
                    b_obs[mb_inds], b_actions[mb_inds])
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

                # LaGO: + beta_t * KL(pi || prior) (--guidance-kl forward: KL(prior || pi)), averaged over the
                # minibatch states the prior was queried on
                if beta > 0:
                    prior_probs = Normal(b_prior_mean[mb_inds], b_prior_std[mb_inds])
                    if args.guidance_kl == "reverse":
                        kl = kl_divergence(newprobs, prior_probs).sum(1)
                    else:
                        kl = kl_divergence(prior_probs, newprobs).sum(1)
                    mb_has_prior = b_has_prior[mb_inds]
                    guidance_kl = torch.where(mb_has_prior, kl, 0.0).sum() / mb_has_prior.sum().clamp(min=1)
                    loss = loss + beta * guidance_kl

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
        writer.add_scalar("charts/guidance_coef", beta, global_step)  # LaGO
        writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
        writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
        writer.add_scalar("losses/entropy", entropy_loss.item(), global_step)
        writer.add_scalar("losses/old_approx_kl", old_approx_kl.item(), global_step)
        writer.add_scalar("losses/approx_kl", approx_kl.item(), global_step)
        writer.add_scalar("losses/clipfrac", np.mean(clipfracs), global_step)
        writer.add_scalar("losses/explained_variance", explained_var, global_step)
        if beta > 0:  # LaGO
            writer.add_scalar("losses/guidance_kl", guidance_kl.item(), global_step)
        sps = int(global_step / (time.time() - start_time))
        writer.add_scalar("charts/SPS", sps, global_step)

        if global_step // args.eval_interval > (global_step - args.batch_size) // args.eval_interval or iteration == args.num_iterations:
            print(f"SPS: {sps}", flush=True)
            print(f"guidance_coef {beta:.4f}, prior {prior_seconds_total:.0f}s so far", flush=True)  # LaGO
            eval_start = time.time()
            final = run_evaluations(agent, args, device, writer, global_step, evaluations, video_dir)
            eval_seconds += time.time() - eval_start

    if args.save_model:
        model_path = os.path.join(run_dir, f"{args.exp_name}.cleanrl_model")
        torch.save({"script": os.path.basename(__file__), "args": asdict(args), "agent": type(agent).__name__,
                    "agent_args": [obs_dim, action_dim, args.hidden_size], "state_dict": agent.state_dict()}, model_path)
        print(f"model saved to {model_path}", flush=True)
    wall_seconds = time.time() - start_time
    summary = {
        "env_id": args.task, "method": args.exp_name, "seed": args.seed, "global_step": global_step,
        "wall_seconds": round(wall_seconds, 1), "sps": round(global_step / wall_seconds, 1),
        "eval_seconds": round(eval_seconds, 1), "eval_goals": EVAL_GOALS,
        "final_eval": final, "evaluations": evaluations, "args": asdict(args),
    }
    summary.update(llm=args.llm, prior_dtype=str(prior.dtype).removeprefix("torch."),  # LaGO
                   prior_seconds=round(prior_seconds_total, 1))
    summary_path = write_summary(run_dir, summary)
    print(f"wrote {summary_path}: " + ", ".join(f"{split} success {m['success_rate']:.2f}" for split, m in final.items()))
    envs.close()
    writer.close()
