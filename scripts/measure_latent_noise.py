"""How much of a trained controller's action is the noise of the z it samples each step.

    python scripts/measure_latent_noise.py --home HOME --generation 229 --episodes 4

A controller trained as in the paper reads z = mu + sigma * eps, a fresh draw from the VAE's
q(z|x) every step. Where the VAE leaves a latent dimension uninformative (sigma near 1, mu near 0),
that dimension is noise, and the controller's weights on it turn it into noise on the action.
This drives the generation's mean on the first `--episodes` tracks of `evaluate --seed 1`
with the rollout engine (the rewards need not equal an `evaluate` report's: a car's path
amplifies the rounding of other batch sizes and code versions), replays each step's inputs
(and exits unless they give the recorded actions again), and prints, per action output
(steer, gas, brake), the standard deviation of its pre-tanh input that the draw adds at a step,
sqrt(sum_i W_ia^2 sigma_i^2) (mean over steps), beside the spread over steps of the part the
draw does not change (W^T [mu, h] + b), and how many latent dimensions are mostly noise (mean
sigma over the steps above 0.5). `evaluate --latent mode` measures what the draw is worth to
the agent's score. A controller trained reading mu (`train_controller --latent mode`) drives
reading mu here too; the sd is then what a draw would add.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np

from worldmodels import layout
from worldmodels.control.controller import controller_actions, split_parameters
from worldmodels.control.generations import controller_spec, load_agent_controller
from worldmodels.control.rollouts import EpisodeTask, RolloutEngine, use_one_thread
from worldmodels.data.car_racing import make_env
from worldmodels.data.tf_records import load_episode, write_record_file
from worldmodels.params import EnvParams
from worldmodels.seeds import Stream, derive_seed, latent_noise
from worldmodels.world_model import WorldModel

OUTPUTS = ("steer", "gas", "brake")
NOISE_SIGMA = 0.5  # a dimension whose posterior sd is above this is mostly noise


def driven_episodes(agent, controller, latent, seeds, episode_length: int) -> list[dict]:
    """The controller's episodes on the tracks of `seeds`, reading z by `latent`, one engine
    stepping them all."""
    envs = [make_env(EnvParams(episode_length=episode_length)) for _ in seeds]
    tasks = [EpisodeTask(j, controller, seed, keep_record=True) for j, seed in enumerate(seeds)]
    episodes = []
    with tempfile.TemporaryDirectory() as directory:
        for result in sorted(RolloutEngine(agent, envs, latent).run(tasks), key=lambda r: r.key):
            path = Path(directory) / f"episode-{result.key}.tfrecord"
            write_record_file(path, result.record)
            episodes.append({**load_episode(path), "total_reward": result.total_reward})
    return episodes


def step_inputs(
    agent, controller, latent, episode: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu, sigma, h) of every step of `episode`, each T x width: the engine's z (draws
    replayed from the episode's own noise stream) and M stepped on them; exits unless they
    give the recorded actions again."""
    mu, logvar = agent.encode(episode["observation"])
    sigma = np.exp(logvar / 2)
    noise = latent_noise(int(episode["seed"]))
    state = agent.initial_state(1)
    features = []
    for t, action in enumerate(episode["action"]):
        features.append(state["features"][0])
        z = agent.codes(episode["observation"][t : t + 1], [noise], latent)
        replayed = controller_actions(controller, z, state["features"])[0]
        if not np.allclose(replayed, action, atol=1e-4):
            raise SystemExit(f"error: the replay of track {episode['seed']} left it at step {t}")
        state = agent.memory_step(z, action[None], state)
    return mu, sigma, np.stack(features)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True, help="an experiments home")
    parser.add_argument("--generation", default="best", help="N, max or best")
    parser.add_argument("--episodes", type=int, default=4, help="validation tracks to drive")
    parser.add_argument("--episode-length", type=int, default=1000, help="steps per episode")
    args = parser.parse_args()

    use_one_thread()  # as evaluate's workers run
    home = layout.resolve_home(args.home)
    spec = controller_spec(home)
    if spec.inputs != "zh" or spec.actions != 3:
        raise SystemExit("error: this measures the paper's controller (z and h, 3 actions)")
    generation, controller, latent = load_agent_controller(home, args.generation, "mean")
    agent = WorldModel(home, with_memory=spec.uses_memory)
    seeds = [derive_seed(1, Stream.EVALUATION_TRACKS, j) for j in range(args.episodes)]
    episodes = driven_episodes(agent, controller, latent, seeds, args.episode_length)

    weights, bias = split_parameters(controller, agent.code_width + agent.feature_dim)
    z_weights = weights[: agent.code_width]
    draw_sd, steady = [], []
    mean_sigma = []
    for episode in episodes:
        mu, sigma, h = step_inputs(agent, controller, latent, episode)
        draw_sd.append(np.sqrt((sigma**2) @ (z_weights**2)))  # T x 3
        steady.append(np.concatenate([mu, h], axis=1) @ weights + bias)
        mean_sigma.append(sigma.mean(axis=0))
    draw_sd, steady = np.concatenate(draw_sd), np.concatenate(steady)
    noisy = int((np.mean(mean_sigma, axis=0) > NOISE_SIGMA).sum())
    rewards = [episode["total_reward"] for episode in episodes]
    print(
        f"generation {generation} (reading z's {latent}) on {len(episodes)} validation tracks "
        f"({len(draw_sd)} steps, "
        f"rewards {', '.join(f'{reward:.0f}' for reward in rewards)}); "
        f"{noisy} of {agent.code_width} latent dimensions have mean sigma > {NOISE_SIGMA}"
    )
    print("| output | sd the z draw adds (pre-tanh) | sd over steps without it |")
    print("|---|---|---|")
    for index, name in enumerate(OUTPUTS):
        print(f"| {name} | {draw_sd[:, index].mean():.2f} | {steady[:, index].std():.2f} |")


if __name__ == "__main__":
    main()
