"""PPO initialised by behaviour cloning on one Meta-World MT10 task (Box actions): the baseline a user would pick
instead of LaGO, given the same demonstrations.

    python bcppo_metaworld_continuous.py --task door-open-v3 --demos demos/metaworld.npz

`ppo_metaworld_continuous.py` plus one step before it (`diff` the two; every added block is marked `# BC`): the
observation normaliser takes in the task's demonstrated observations, and the actor's mean is pre-trained on the
demonstrations that LaGO's prior is fine-tuned on (the task's episodes), by the squared error to the demonstrated
actions, for as many steps and as large batches as the prior's fine-tuning; its standard deviation stays PPO's
initial one, so PPO explores from the clone as it would from scratch. The critic starts untrained, as in PPO. With
`--bc-steps 0` it reproduces `ppo_metaworld_continuous.py`'s runs exactly.
"""

import os
import random
import time
from dataclasses import dataclass
from typing import Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
import tyro
from torch.distributions.normal import Normal

from envs.metaworld_tasks import make_metaworld_env
from lago_utils.bc import check_bc_args, load_bc_demos  # BC: the demonstrations
from lago_utils.checks import check_ppo_args, fail
from lago_utils.run import EVAL_SEED, Run, RunArgs
from lago_utils.running_norm import RunningNorm


@dataclass
class Args(RunArgs):  # RunArgs (lago_utils/run.py): --seed, --cuda, --track, --capture-video, --save-model, ...
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""

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

    # BC: behaviour cloning of the actor before PPO
    demos: str = "demos/metaworld.npz"
    """the demonstrations the actor is pre-trained on (collect_demos.py; those of LaGO's prior): the --task's episodes"""
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
    """evaluation episodes"""

    # to be filled in runtime
    batch_size: int = 0
    """the batch size (computed in runtime)"""
    minibatch_size: int = 0
    """the mini-batch size (computed in runtime)"""
    num_iterations: int = 0
    """the number of iterations (computed in runtime)"""


def make_env(args: Args, goal_split: str = "train", render_mode: Optional[str] = None):
    def thunk():
        seed = args.seed if goal_split == "train" else EVAL_SEED  # the env seed fixes the 50 goal positions
        env = make_metaworld_env(args.task, seed=seed, max_episode_steps=args.max_episode_steps, render_mode=render_mode)
        env = gym.wrappers.ClipAction(env)
        return gym.wrappers.RecordEpisodeStatistics(env)

    return thunk


def layer_init(layer, std=np.sqrt(2), bias_const=0.0):
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


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

    def get_greedy_action(self, raw_obs):  # evaluation: the mean action, from the env's observation
        return self.actor_mean(self.obs_norm(raw_obs))

    def get_action_and_value(self, x, action=None):
        action_mean = self.actor_mean(x)
        action_std = torch.exp(self.actor_logstd.expand_as(action_mean))
        probs = Normal(action_mean, action_std)
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action).sum(1), probs.entropy().sum(1), self.critic(x)


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


if __name__ == "__main__":
    args = check_ppo_args(tyro.cli(Args))  # one sentence per bad flag (lago_utils/checks.py); the derived sizes
    check_bc_args(args)  # BC: --bc-steps, --bc-batch-size, --bc-learning-rate
    run_name = f"{args.task}__{args.exp_name}__{args.seed}__{int(time.time())}"
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    # BC: the task's demonstrations, before the run directory
    demos, demo_meta = load_bc_demos(args, "metaworld")
    task_rows = demos["task_id"] == demo_meta["tasks"].index(args.task)
    demo_obs = torch.as_tensor(demos["obs"][task_rows], dtype=torch.float32, device=device)
    demo_actions = torch.as_tensor(demos["actions"][task_rows], dtype=torch.float32, device=device)
    run = Run(args, run_name, make_env)  # the run directory (one writer), wandb, videos, TensorBoard: lago_utils/run.py
    writer = run.writer

    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic

    # env setup
    vector_env = gym.vector.AsyncVectorEnv if args.async_envs else gym.vector.SyncVectorEnv
    envs = vector_env([make_env(args) for _ in range(args.num_envs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    assert isinstance(envs.single_action_space, gym.spaces.Box), "only continuous action space is supported"
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    action_dim = int(np.prod(envs.single_action_space.shape))
    agent = Agent(obs_dim, action_dim, args.hidden_size).to(device)
    envs = gym.wrappers.vector.NormalizeReward(envs, gamma=args.gamma)
    envs = gym.wrappers.vector.TransformReward(envs, lambda reward: np.clip(reward, -10, 10))
    optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    # BC: the normaliser takes in the demonstrated observations, and the actor's mean is pre-trained on the demonstrated
    # actions (squared error; the std stays PPO's initial one), then PPO as usual
    if args.bc_steps > 0:
        agent.obs_norm.update(demo_obs)
        bc_optimizer = optim.Adam(agent.actor_mean.parameters(), lr=args.bc_learning_rate)
        bc_generator = torch.Generator().manual_seed(args.seed)  # its batches draw nothing from PPO's random numbers
        for bc_step in range(1, args.bc_steps + 1):
            rows = torch.randint(len(demo_obs), (args.bc_batch_size,), generator=bc_generator).to(device)
            bc_loss = ((agent.actor_mean(agent.obs_norm(demo_obs[rows])) - demo_actions[rows]) ** 2).sum(-1).mean()
            bc_optimizer.zero_grad()
            bc_loss.backward()
            bc_optimizer.step()
            writer.add_scalar("bc/loss", bc_loss.item(), bc_step)
        print(f"behaviour cloning: {args.bc_steps} steps on {len(demo_obs)} demonstrated transitions of {args.task}, "
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

    for iteration in range(1, args.num_iterations + 1):
        # Annealing the rate if instructed to do so.
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / args.num_iterations
            lrnow = frac * args.learning_rate
            optimizer.param_groups[0]["lr"] = lrnow

        for step in range(0, args.num_steps):
            global_step += args.num_envs
            agent.obs_norm.update(next_obs)
            obs[step] = agent.obs_norm(next_obs)
            dones[step] = next_done

            # ALGO LOGIC: action logic
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(obs[step])
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

                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb_inds], b_actions[mb_inds])
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
                    fail(args, f"the loss is {loss.item()} in update {iteration} (epoch {epoch + 1}, global step "
                               f"{global_step}): training diverged, no summary written")

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
            # the mean action on --eval-episodes episodes (seeds EVAL_SEED + i) per goal split; success at any step
            run.evaluate(agent, global_step)

    run.save_model(__file__, agent, [obs_dim, action_dim, args.hidden_size])  # --save-model, for evaluate_policy.py
    eval_goals = {"train": "the 50 goal positions of the training env (env seed = --seed)",
                  "test": f"50 held-out goal positions (env seed {EVAL_SEED}, never trained on)"}
    run.write_summary(args.task, global_step, start_time, eval_goals)
    envs.close()
    writer.close()
