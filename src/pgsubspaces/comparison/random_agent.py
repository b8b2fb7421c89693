"""The random agent of a task: uniform actions from the action space, its episode returns unnormalised.

    python -m pgsubspaces.comparison.random_agent --task Hopper --env-id Hopper-v5 --episodes 100 --seed 0 --out r.json

The policy-path paper normalises its aggregate scores with a random agent (0) and the base algorithm (1).
The environment is built as for training and evaluation (``train.envs.make_env``); episode i is reset with seed
``seed + i`` and the action space is seeded with ``seed``, so the same arguments give the same returns.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from pgsubspaces.atomic import write_text

log = logging.getLogger("pgsubspaces.comparison.random_agent")


def random_returns(env_id: str, env_kwargs: dict[str, Any] | None, episodes: int, seed: int) -> tuple[list, list]:
    """(returns, lengths) of ``episodes`` episodes of uniform random actions."""
    from pgsubspaces.train.envs import make_env

    env = make_env(env_id, env_kwargs)
    env.action_space.seed(seed)
    returns, lengths = [], []
    try:
        for episode in range(episodes):
            env.reset(seed=seed + episode)
            total, length, done = 0.0, 0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                total, length, done = total + float(reward), length + 1, terminated or truncated
            returns.append(total)
            lengths.append(length)
    finally:
        env.close()
    return returns, lengths


def summary(task: str, env_id: str, returns: list[float], lengths: list[int], seed: int) -> dict[str, Any]:
    n = len(returns)
    std = float(np.std(returns, ddof=1)) if n > 1 else math.nan
    return {
        "task": task,
        "env_id": env_id,
        "episodes": n,
        "seed": seed,
        "mean_return": float(np.mean(returns)),
        "std_return": std,
        "stderr": std / math.sqrt(n),  # of the mean return: its accuracy as the normalisation's zero
        "mean_length": float(np.mean(lengths)),
        "returns": [float(r) for r in returns],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True)
    parser.add_argument("--env-id", required=True)
    parser.add_argument("--env-kwargs", default="{}", help="JSON")
    parser.add_argument("--episodes", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    returns, lengths = random_returns(args.env_id, json.loads(args.env_kwargs), args.episodes, args.seed)
    result = summary(args.task, args.env_id, returns, lengths, args.seed)
    write_text(args.out, json.dumps(result, indent=1))
    mean, stderr = result["mean_return"], result["stderr"]
    log.info("%s: random agent %.2f ± %.2f over %d episodes", args.task, mean, stderr, len(returns))


if __name__ == "__main__":
    main()
