"""VAE training throughput with frames streamed from episode records vs held in memory.

    python scripts/benchmark_vae_input.py --home ~/world-models-experiments --episodes 20

Trains the same VAE on the same frames two ways, alternating rounds so both see the same
machine load, and prints frames/s of each and their ratio. A ratio near 1 means the record
pipeline (GZIP decoding, shuffling, batching) is not what limits training.
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from worldmodels import layout
from worldmodels.data.tf_records import frame_dataset, list_episodes, load_episode
from worldmodels.images import unit_frames
from worldmodels.vision.vae import FRAME_SHAPE, VAE


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--home", default=None, help="experiments home with sampled episodes")
    parser.add_argument("--dataset", default="random", help="read <home>/<dataset>-rollouts")
    parser.add_argument("--episodes", type=int, default=20, help="episodes to use")
    parser.add_argument("--batch-size", type=int, default=256, help="frames per step")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each")
    args = parser.parse_args()

    paths = list_episodes(layout.rollouts(layout.resolve_home(args.home), args.dataset))[
        : args.episodes
    ]
    if not paths:
        raise SystemExit(f"no episodes found under {args.home}; sample some first")
    in_memory = tf.constant(np.concatenate([load_episode(p)["observation"] for p in paths]))
    print(f"{len(paths)} episodes, {len(in_memory)} frames, batch {args.batch_size}")

    keras.utils.set_random_seed(0)
    vae = VAE()
    vae(tf.zeros((1, *FRAME_SHAPE)))
    optimizer = keras.optimizers.Adam(1e-4)

    @tf.function(input_signature=[tf.TensorSpec([None, *FRAME_SHAPE], tf.float32)])
    def train_step(frames):
        with tf.GradientTape() as tape:
            loss = vae.loss_terms(frames)["loss"]
        optimizer.apply_gradients(
            zip(tape.gradient(loss, vae.trainable_variables), vae.trainable_variables)
        )
        return loss

    @tf.function
    def memory_batch():
        picks = tf.random.uniform([args.batch_size], 0, len(in_memory), tf.int32)
        return unit_frames(tf.gather(in_memory, picks))

    records = iter(frame_dataset(paths, args.batch_size, seed=0).repeat())
    sources = {"records": lambda: next(records), "memory": memory_batch}
    for source in sources.values():  # trace and warm up both
        train_step(source()).numpy()

    seconds = {name: 0.0 for name in sources}
    for _ in range(args.rounds):
        for name, source in sources.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                loss = train_step(source())
            loss.numpy()
            seconds[name] += time.perf_counter() - start
    frames = args.rounds * args.steps * args.batch_size
    rates = {name: frames / s for name, s in seconds.items()}
    for name, rate in rates.items():
        print(f"{name:>8}: {rate:8.1f} frames/s")
    print(f"records / memory = {rates['records'] / rates['memory']:.3f}")


if __name__ == "__main__":
    main()
