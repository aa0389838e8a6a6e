"""LaGO on CLEVR-Robot: PPO softly guided by a fine-tuned LLM action prior (Discrete actions).

    python collect_demos.py --env clevr
    python finetune_prior.py --demos demos/clevr.npz --llm smollm2-135m
    python lago_clevr_discrete.py --llm smollm2-135m --total-timesteps 200000

CleanRL's `ppo.py` with one more term in the loss:

    loss = pg_loss - ent_coef * entropy + vf_coef * v_loss + beta_t * KL(pi_theta(.|s) || p_prior(.|s, text))

The prior is the stage-1 checkpoint: a frozen LLM that reads the goal instruction and the raw ball positions and gives
40 logits. It is queried once per rollout batch (the task-text prefixes are KV-cached) and only while `beta_t > 0`, and
its logits are stored beside the batch, so PPO's update epochs never call the LLM. The policy is an ordinary MLP on the
ball positions and the goal encoding, exactly as in `ppo_clevr_discrete.py`: with `--guidance-coef 0` this file
reproduces that file's run for the same seed. `diff ppo_clevr_discrete.py lago_clevr_discrete.py` is LaGO and nothing
else; each block it adds carries a `# LaGO` comment.
"""

import os
import random
import time
from dataclasses import dataclass
from typing import Annotated, Literal, Optional  # LaGO: + Annotated, Literal, for the prior's and the guidance flags

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
import tyro
from torch.distributions.categorical import Categorical
from torch.distributions import kl_divergence  # LaGO: the guidance term

from envs.clevr_robot import ENV_ID  # importing envs registers CLEVRRobot-v0
from envs.clevr_robot import OBS_DIM  # LaGO: the prior sees the raw ball positions
from lago_utils.checks import check_ppo_args, fail
from lago_utils.guidance import PriorLog, adapt_guidance_coef, check_lago_args, default_prior_hint, load_frozen_prior  # LaGO
from lago_utils.run import Run, RunArgs


@dataclass
class Args(RunArgs):  # RunArgs (lago_utils/run.py): --seed, --cuda, --track, --capture-video, --save-model, ...
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""

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

    # LaGO: the prior and the guidance flags
    llm: Annotated[Optional[str], tyro.conf.arg(help_behavior_hint="(default: smollm2-135m)")] = None
    """the LLM of the prior: it picks the default --prior-path, and must match the checkpoint's"""
    prior_path: Annotated[Optional[str], default_prior_hint("clevr")] = None
    """the stage-1 checkpoint (finetune_prior.py --out)"""
    guidance_coef: float = 0.1
    """beta_0, the start value of the guidance coefficient (0 turns LaGO into PPO)"""
    guidance_schedule: Literal["constant", "linear", "exp", "adaptive", "advantage"] = "linear"
    """constant beta_0; linear decay to 0 at --guidance-decay-end; exp decay to 1% of beta_0 there (0 after); adaptive:
    beta_0 tuned per update to --guidance-target-kl; advantage: beta_0 where the critic does not back pi over the prior"""
    guidance_target_kl: float = 1.0
    """--guidance-schedule adaptive: the guidance KL it keeps beta near, epsilon (nats per queried state)"""
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
    """episodes per evaluation and goal split"""

    # to be filled in runtime
    batch_size: int = 0
    """the batch size (computed in runtime)"""
    minibatch_size: int = 0
    """the mini-batch size (computed in runtime)"""
    num_iterations: int = 0
    """the number of iterations (computed in runtime)"""


# LaGO: the guidance coefficient's schedule, beta_t (`progress`: the fraction of the training budget already used)
def guidance_coef(args: Args, progress: float) -> float:
    if args.guidance_schedule in ("constant", "adaptive", "advantage"):  # adaptive: the start value, beta_0
        return args.guidance_coef
    if progress >= args.guidance_decay_end:
        return 0.0
    if args.guidance_schedule == "linear":
        return args.guidance_coef * (1.0 - progress / args.guidance_decay_end)
    return args.guidance_coef * 0.01 ** (progress / args.guidance_decay_end)


def make_env(args: Args, goal_split: str = "train", render_mode: Optional[str] = None):
    def thunk():
        env = gym.make(args.env_id, goal_split=goal_split, goal_in_obs=True, max_episode_steps=args.max_episode_steps,
                       render_mode=render_mode)
        return gym.wrappers.RecordEpisodeStatistics(env)

    return thunk


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

    def get_greedy_action(self, x):  # evaluation: the most likely action
        return self.actor(x).argmax(-1)

    def get_action_and_value(self, x, action=None):
        probs = Categorical(logits=self.actor(x))
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.critic(x), probs  # LaGO: + the distribution


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
    check_lago_args(args, "clevr")  # LaGO: the guidance flags, the prior's checkpoint
    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    # LaGO: the frozen prior, on the raw ball positions, loaded before seeding: building an LLM may draw random numbers
    prior = load_frozen_prior(args, gym.make(args.env_id), gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,)))
    run = Run(args, run_name, make_env)  # the run directory (one writer), wandb, videos, TensorBoard: lago_utils/run.py
    writer = run.writer
    prior_log = PriorLog(args, writer)  # LaGO: the prior's seconds and agreement

    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    prior_rng = np.random.default_rng(args.seed + 1)  # LaGO: --prior-fraction's subsets, apart from PPO's RNG

    # env setup
    vector_env = gym.vector.AsyncVectorEnv if args.async_envs else gym.vector.SyncVectorEnv
    envs = vector_env([make_env(args) for _ in range(args.num_envs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    assert isinstance(envs.single_action_space, gym.spaces.Discrete), "only discrete action space is supported"
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    num_actions = int(envs.single_action_space.n)
    agent = Agent(obs_dim, num_actions, args.hidden_size).to(device)
    optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    # ALGO Logic: Storage setup
    obs = torch.zeros((args.num_steps, args.num_envs) + envs.single_observation_space.shape).to(device)
    actions = torch.zeros((args.num_steps, args.num_envs) + envs.single_action_space.shape).to(device)
    logprobs = torch.zeros((args.num_steps, args.num_envs)).to(device)
    rewards = torch.zeros((args.num_steps, args.num_envs)).to(device)
    dones = torch.zeros((args.num_steps, args.num_envs)).to(device)
    values = torch.zeros((args.num_steps, args.num_envs)).to(device)
    final_values = torch.zeros((args.num_steps, args.num_envs)).to(device)  # V(final obs) where a time limit hit
    texts = np.empty((args.num_steps, args.num_envs), dtype=object)  # LaGO: the goal instruction, for the prior

    # TRY NOT TO MODIFY: start the game
    global_step = 0
    start_time = time.time()
    next_obs, infos = envs.reset(seed=args.seed)  # LaGO: infos hold the goals' text
    next_texts = infos["goal_text"]  # LaGO
    next_obs = torch.Tensor(next_obs).to(device)
    next_done = torch.zeros(args.num_envs).to(device)
    episode_success = np.zeros(args.num_envs)  # whether each env's current episode has succeeded yet

    for iteration in range(1, args.num_iterations + 1):
        # Annealing the rate if instructed to do so.
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / args.num_iterations
            lrnow = frac * args.learning_rate
            optimizer.param_groups[0]["lr"] = lrnow
        if iteration == 1 or args.guidance_schedule != "adaptive":  # LaGO: beta_t (adaptive: as the last update left it)
            beta = guidance_coef(args, (iteration - 1.0) / args.num_iterations)

        for step in range(0, args.num_steps):
            global_step += args.num_envs
            obs[step] = next_obs
            dones[step] = next_done
            texts[step] = next_texts  # LaGO

            # ALGO LOGIC: action logic
            with torch.no_grad():
                action, logprob, _, value, _ = agent.get_action_and_value(next_obs)  # LaGO: + the distribution
                values[step] = value.flatten()
            actions[step] = action
            logprobs[step] = logprob

            # TRY NOT TO MODIFY: execute the game and log data.
            next_obs, reward, terminations, truncations, infos = envs.step(action.cpu().numpy())
            next_done = np.logical_or(terminations, truncations)
            rewards[step] = torch.tensor(reward).to(device).view(-1)
            next_obs, next_done = torch.Tensor(next_obs).to(device), torch.Tensor(next_done).to(device)
            next_texts = infos["goal_text"]  # LaGO: after an autoreset, the new episode's goal

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

        # LaGO: the frozen prior's logits, queried once per rollout batch (raw ball positions, goal text), kept for the epochs
        b_prior_logits = torch.zeros((args.batch_size, num_actions), device=device)
        b_has_prior = torch.zeros(args.batch_size, dtype=torch.bool, device=device)
        if beta > 0:
            queried = np.arange(args.batch_size)
            if args.prior_fraction < 1:
                queried = np.sort(prior_rng.choice(args.batch_size, max(1, round(args.prior_fraction * args.batch_size)), replace=False))
            raw_obs = obs.reshape(args.batch_size, -1)[:, :OBS_DIM]
            with prior_log.query(global_step):  # perf/prior_seconds; non-finite outputs end the run in one sentence
                b_prior_logits[queried] = prior(raw_obs[queried], texts.reshape(-1)[queried].tolist()).to(device)
            b_has_prior[queried] = True
            prior_log.agreement(global_step, agent.actor, obs.reshape(args.batch_size, -1)[b_has_prior],
                                prior_logits=b_prior_logits[b_has_prior])

        # flatten the batch
        b_obs = obs.reshape((-1,) + envs.single_observation_space.shape)
        b_logprobs = logprobs.reshape(-1)
        b_actions = actions.reshape((-1,) + envs.single_action_space.shape)
        b_advantages = advantages.reshape(-1)
        b_returns = returns.reshape(-1)
        b_values = values.reshape(-1)

        # Optimizing the policy and value network
        b_inds = np.arange(args.batch_size)
        if args.guidance_schedule == "advantage":  # LaGO: guide except where A > 0 and the prior pulls away
            b_has_prior &= (b_advantages <= 0) | (Categorical(logits=b_prior_logits).log_prob(b_actions) >= b_logprobs)
        clipfracs, guidance_kls = [], []  # LaGO: + each minibatch's guidance KL
        for epoch in range(args.update_epochs):
            np.random.shuffle(b_inds)
            for start in range(0, args.batch_size, args.minibatch_size):
                end = start + args.minibatch_size
                mb_inds = b_inds[start:end]

                _, newlogprob, entropy, newvalue, newprobs = agent.get_action_and_value(  # LaGO: + the distribution
                    b_obs[mb_inds], b_actions.long()[mb_inds])
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
                    prior_probs = Categorical(logits=b_prior_logits[mb_inds])
                    if args.guidance_kl == "reverse":
                        kl = kl_divergence(newprobs, prior_probs)
                    else:
                        kl = kl_divergence(prior_probs, newprobs)
                    mb_has_prior = b_has_prior[mb_inds]
                    guidance_kl = torch.where(mb_has_prior, kl, 0.0).sum() / mb_has_prior.sum().clamp(min=1)
                    loss = loss + beta * guidance_kl
                    guidance_kls.append(guidance_kl.detach())

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
        writer.add_scalar("charts/guidance_coef", beta, global_step)  # LaGO
        if args.guidance_schedule == "adaptive" and guidance_kls:  # LaGO: one dual-ascent step on log beta
            beta = adapt_guidance_coef(beta, torch.stack(guidance_kls).mean().item(), args.guidance_target_kl)
        writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
        writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
        writer.add_scalar("losses/entropy", entropy_loss.item(), global_step)
        writer.add_scalar("losses/old_approx_kl", old_approx_kl.item(), global_step)
        writer.add_scalar("losses/approx_kl", approx_kl.item(), global_step)
        writer.add_scalar("losses/clipfrac", np.mean(clipfracs), global_step)
        writer.add_scalar("losses/explained_variance", explained_var, global_step)
        if guidance_kls:  # LaGO: the update's mean guidance KL (what --guidance-schedule adaptive steers by)
            writer.add_scalar("losses/guidance_kl", torch.stack(guidance_kls).mean().item(), global_step)
        sps = int(global_step / (time.time() - start_time))
        writer.add_scalar("charts/SPS", sps, global_step)

        if global_step // args.eval_interval > (global_step - args.batch_size) // args.eval_interval or iteration == args.num_iterations:
            print(f"SPS: {sps}", flush=True)
            print(f"guidance_coef {beta:.4f}, prior {prior_log.seconds:.0f}s so far", flush=True)  # LaGO
            # the greedy action on --eval-episodes episodes (seeds EVAL_SEED + i) per goal split; success at any step
            run.evaluate(agent, global_step)

    run.save_model(__file__, agent, [obs_dim, num_actions, args.hidden_size])  # --save-model, for evaluate_policy.py
    eval_goals = {"train": "CLEVR-Robot training goals",
                  "test": "CLEVR-Robot held-out goals (colour/relation pairs never trained on)"}
    run.write_summary(args.env_id, global_step, start_time, eval_goals, **prior_log.summary(prior))  # LaGO
    envs.close()
    writer.close()
