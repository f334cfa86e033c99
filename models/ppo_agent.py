"""The PPO learner: its config, the actor-critic network and the training loop (torch).

:func:`train_policy`: ``n_envs`` copies of :class:`models.env.TradingEnv` over the fold's training
segment (random episode starts from each env's seeded ``np_random``), ``n_steps`` steps each per
iteration, actions sampled from a seeded generator, GAE(lambda) advantages, ``update_epochs`` passes
of clipped-surrogate updates in minibatches (Adam, value loss, entropy bonus, gradient clipping).
Every ``eval_every`` iterations ``valid_score`` (the greedy policy trading the validation segment
under the node's rules) is computed; the best weights are kept, and training stops after
``patience`` evaluations without a gain, at ``max_iterations``, or at the optional wall-clock
``max_seconds`` (the one knob that can make two runs differ: off by default).
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from cryptolake.logs import get_logger
from cryptolake.tables import FEATURE_COLUMNS
from models.env import ExecutionRules, TradingEnv

log = get_logger(__name__)

THRESHOLD = 0.5  # the greedy action: long iff P(long) >= P(flat)


class PpoConfig(BaseModel):
    """Everything that determines a trained PPO agent (hashed into the model version)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    feature_columns: tuple[str, ...] = FEATURE_COLUMNS
    window: int = Field(default=16, ge=1, le=512, description="Bars per observation window")
    hidden_size: int = Field(default=64, ge=1, le=1024)
    n_envs: int = Field(default=8, ge=1, description="Environments stepped per rollout")
    n_steps: int = Field(default=128, ge=1, description="Steps per environment per iteration")
    episode_bars: int = Field(default=256, ge=1, description="Steps per training episode")
    update_epochs: int = Field(default=4, ge=1)
    minibatch_size: int = Field(default=256, ge=1)
    learning_rate: float = Field(default=3e-4, gt=0)
    gamma: float = Field(default=0.95, gt=0, le=1)
    gae_lambda: float = Field(default=0.9, ge=0, le=1)
    clip: float = Field(default=0.2, gt=0)
    ent_coef: float = Field(default=0.01, ge=0)
    vf_coef: float = Field(default=0.5, ge=0)
    max_grad_norm: float = Field(default=0.5, gt=0)
    reward_scale: float = Field(default=100.0, gt=0, description="Reward = log equity change x this")
    max_iterations: int = Field(default=120, ge=1)
    eval_every: int = Field(default=5, ge=1, description="Iterations between validation evaluations")
    patience: int = Field(default=6, ge=1, description="Evaluations without validation gain before stopping")
    max_seconds: float | None = Field(default=None, gt=0, description="Wall-clock budget (None = off)")
    valid_fraction: float = Field(default=0.15, gt=0, lt=1)
    test_fraction: float = Field(default=0.15, gt=0, lt=1)
    embargo_bars: int = Field(default=0, ge=0)
    random_draws: int = Field(default=20, ge=1, description="Random-policy draws averaged in the reports")
    rules: ExecutionRules = ExecutionRules()
    seed: int = 7
    num_threads: int = Field(default=1, ge=1, description="torch intra-op threads (fixed for determinism)")

    @property
    def gap_bars(self) -> int:
        """Bars between segments: the window, or the one-bar label plus the embargo if longer."""
        return max(self.window, 1 + self.embargo_bars)

    def config_hash(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

class PolicyNet(torch.nn.Module):
    """Actor (two logits: flat, long) and critic (state value), separate tanh MLPs on the flat window."""

    def __init__(self, inputs: int, hidden: int) -> None:
        super().__init__()

        def mlp(out: int, gain: float) -> torch.nn.Sequential:
            layers = [torch.nn.Linear(inputs, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, hidden),
                      torch.nn.Tanh(), torch.nn.Linear(hidden, out)]
            for layer in layers:
                if isinstance(layer, torch.nn.Linear):
                    torch.nn.init.orthogonal_(layer.weight, gain if layer.out_features == out else 2**0.5)
                    torch.nn.init.zeros_(layer.bias)
            return torch.nn.Sequential(*layers)

        self.actor = mlp(2, 0.01)
        self.critic = mlp(1, 1.0)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(obs), self.critic(obs).squeeze(-1)


def long_probability(net: PolicyNet, obs: np.ndarray, step: int = 8192) -> np.ndarray:
    """P(long) of the policy for each observation row (eval, no gradients)."""
    out = np.empty(len(obs), dtype=np.float64)
    with torch.no_grad():
        for lo in range(0, len(obs), step):
            logits = net.actor(torch.from_numpy(np.ascontiguousarray(obs[lo : lo + step], dtype=np.float32)))
            out[lo : lo + step] = torch.softmax(logits, dim=-1)[:, 1].double().numpy()
    return out


def greedy(probability: np.ndarray) -> np.ndarray:
    return (np.asarray(probability) >= THRESHOLD).astype(np.int64)


def train_policy(net: PolicyNet, envs: Sequence[TradingEnv], valid_score: Callable[[PolicyNet], float],
                 cfg: PpoConfig, on_iteration: Callable[[dict[str, float]], None] | None = None
                 ) -> tuple[list[dict[str, float]], int, str]:
    """PPO on ``envs`` (see the module); returns the history, the restored iteration and why it stopped."""
    started = time.perf_counter()
    gen = torch.Generator().manual_seed(cfg.seed)
    optimiser = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, eps=1e-5)
    n_envs, n_steps = len(envs), cfg.n_steps
    obs = np.stack([env.reset(seed=cfg.seed + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
    size = obs.shape[1]
    best_score, best_iteration, best_state = -np.inf, 0, copy.deepcopy(net.state_dict())
    history: list[dict[str, float]] = []
    stale, reason = 0, f"max_iterations {cfg.max_iterations}"
    for iteration in range(1, cfg.max_iterations + 1):
        b_obs = np.empty((n_steps, n_envs, size), dtype=np.float32)
        b_act = np.empty((n_steps, n_envs), dtype=np.int64)
        b_logp = np.empty((n_steps, n_envs), dtype=np.float32)
        b_val = np.empty((n_steps, n_envs), dtype=np.float32)
        b_rew = np.empty((n_steps, n_envs), dtype=np.float32)
        b_done = np.empty((n_steps, n_envs), dtype=np.float32)
        net.eval()
        for t in range(n_steps):
            with torch.no_grad():
                logits, value = net(torch.from_numpy(obs))
                probs = torch.softmax(logits, dim=-1)
                action = torch.multinomial(probs, 1, generator=gen).squeeze(1)
                logp = torch.log_softmax(logits, dim=-1).gather(1, action[:, None]).squeeze(1)
            b_obs[t], b_act[t], b_logp[t], b_val[t] = obs, action.numpy(), logp.numpy(), value.numpy()
            for i, env in enumerate(envs):
                o, r, terminated, truncated, _ = env.step(int(action[i]))
                done = terminated or truncated
                if done:
                    o, _ = env.reset()
                obs[i], b_rew[t, i], b_done[t, i] = o, r, float(done)
        with torch.no_grad():
            next_value = net(torch.from_numpy(obs))[1].numpy()
        adv = np.zeros((n_steps, n_envs), dtype=np.float32)
        last = np.zeros(n_envs, dtype=np.float32)
        for t in reversed(range(n_steps)):
            nxt = next_value if t == n_steps - 1 else b_val[t + 1]
            live = 1.0 - b_done[t]
            delta = b_rew[t] + cfg.gamma * nxt * live - b_val[t]
            last = delta + cfg.gamma * cfg.gae_lambda * live * last
            adv[t] = last
        ret = adv + b_val
        f_obs = torch.from_numpy(b_obs.reshape(-1, size))
        f_act, f_logp = torch.from_numpy(b_act.reshape(-1)), torch.from_numpy(b_logp.reshape(-1))
        f_adv, f_ret = torch.from_numpy(adv.reshape(-1)), torch.from_numpy(ret.reshape(-1))
        n = len(f_act)
        net.train()
        losses = []
        for _ in range(cfg.update_epochs):
            order = torch.randperm(n, generator=gen)
            for lo in range(0, n, cfg.minibatch_size):
                mb = order[lo : lo + cfg.minibatch_size]
                logits, value = net(f_obs[mb])
                logp_all = torch.log_softmax(logits, dim=-1)
                new_logp = logp_all.gather(1, f_act[mb][:, None]).squeeze(1)
                entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
                a = f_adv[mb]
                a = (a - a.mean()) / (a.std() + 1e-8) if len(mb) > 1 else a
                ratio = (new_logp - f_logp[mb]).exp()
                policy_loss = torch.max(-a * ratio, -a * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean()
                value_loss = 0.5 * ((value - f_ret[mb]) ** 2).mean()
                loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
                optimiser.step()
                losses.append(float(loss.item()))
        net.eval()
        row: dict[str, float] = {"iteration": iteration, "reward_per_step": float(b_rew.mean()),
                                 "loss": float(np.mean(losses)), "long_share": float(b_act.mean())}
        if iteration % cfg.eval_every == 0 or iteration == cfg.max_iterations:
            score = valid_score(net)
            row["valid_log_return_per_bar"] = score
            if score > best_score + 1e-12:
                best_score, best_iteration, best_state, stale = score, iteration, copy.deepcopy(net.state_dict()), 0
            else:
                stale += 1
        history.append(row)
        log.debug("ppo.iteration", extra=row)
        if on_iteration is not None:
            on_iteration(row)
        if stale >= cfg.patience:
            reason = f"no validation gain in {cfg.patience} evaluations"
            break
        if cfg.max_seconds is not None and time.perf_counter() - started > cfg.max_seconds:
            reason = f"max_seconds {cfg.max_seconds}"
            if best_iteration == 0:  # evaluate once so the kept weights are chosen on validation
                best_score, best_iteration, best_state = valid_score(net), iteration, copy.deepcopy(net.state_dict())
            break
    net.load_state_dict(best_state)
    net.eval()
    return history, best_iteration, reason
