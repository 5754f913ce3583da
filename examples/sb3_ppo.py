"""Stable-Baselines3 PPO on a MAPO environment through the discrete-action wrapper (a non-LLM baseline).

The wrapper turns the text interface into ``Discrete(grid*grid + 4)`` actions (zoom into a cell of a
grid over the full image / answer option k) and fixed-size observations (view, latest crop, hashed
question and options). PPO with SB3's ``MultiInputPolicy`` learns from the environment's reward.

Usage::

    python examples/sb3_ppo.py                                   # MAPO-Tiles-v0, 30k steps, a few minutes
    python examples/sb3_ppo.py --env MAPO-VStar-v0 --grid 3 --timesteps 20000

Prints the mean episode return of the first and last 10% of training episodes and a held-out
evaluation of the trained policy against a uniformly random one.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.monitor import Monitor

import mapo_env  # noqa: F401  (registers the MAPO-* ids)
from mapo_env.wrappers import DiscreteZoomActions


def make_env(env_id: str, grid: int, split: str, seed: int) -> gym.Env:
    """The MAPO env (lexical alignment: no model to load), wrapped for SB3."""
    env = gym.make(env_id, split=split, alignment="lexical")
    env = DiscreteZoomActions(env, grid=grid, image_size=64)
    env.reset(seed=seed)
    return Monitor(env)


def evaluate(model: PPO | None, env: gym.Env, episodes: int, seed: int) -> float:
    """Mean return over ``episodes`` (``model=None``: uniformly random actions)."""
    rng = np.random.default_rng(seed)
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, total = False, 0.0
        while not done:
            if model is None:
                action = int(rng.integers(env.action_space.n))
            else:
                action = int(model.predict(obs, deterministic=True)[0])
            obs, reward, terminated, truncated, _ = env.step(action)
            total += reward
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="MAPO-Tiles-v0", help="a registered MAPO environment id")
    parser.add_argument("--grid", type=int, default=4, help="zoom cells per side")
    parser.add_argument("--timesteps", type=int, default=30_000, help="PPO environment steps")
    parser.add_argument("--eval-episodes", type=int, default=200, help="held-out episodes (split=test)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(1)
    train_env = make_env(args.env, args.grid, "train", args.seed)
    model = PPO(
        "MultiInputPolicy", train_env, n_steps=512, batch_size=128, learning_rate=3e-4, ent_coef=0.01,
        gamma=0.99, seed=args.seed, verbose=0,
    )  # fmt: skip
    model.learn(total_timesteps=args.timesteps)

    returns = train_env.get_episode_rewards()
    tenth = max(1, len(returns) // 10)
    print(f"{args.env}: {len(returns)} training episodes in {args.timesteps} steps")
    print(f"mean return, first 10% of episodes: {np.mean(returns[:tenth]):.3f}")
    print(f"mean return, last 10% of episodes:  {np.mean(returns[-tenth:]):.3f}")

    test_env = make_env(args.env, args.grid, "test", args.seed + 1)
    trained = evaluate(model, test_env, args.eval_episodes, seed=10_000)
    random = evaluate(None, test_env, args.eval_episodes, seed=10_000)
    print(f"held-out mean return: PPO {trained:.3f} vs random {random:.3f} ({args.eval_episodes} episodes)")


if __name__ == "__main__":
    main()
