"""Seconds per training step of the plain and the attentive MDN-RNN, side by side in one run.

    python scripts/benchmark_memory_training.py --batch-size 100 --length 999 --repeats 3

Both train on the same random batch of full-length sequences (the paper's 999 steps), with
the same optimizer as `train_memory`; the steps of the two models alternate, so both see the
same machine load. Prints the median seconds per step of each and their ratio.
"""

import argparse
import statistics
import time

import keras
import tensorflow as tf

from worldmodels.memory.memory import build_memory, mdn_loss


def timed_steps(kind: str, batch: int, length: int, window: int):
    """A function that runs one training step of a `kind` memory and returns its seconds."""
    memory = build_memory(kind, window)
    memory(tf.zeros((1, 2, 35)))
    optimizer = keras.optimizers.Adam(1e-3, clipvalue=1.0)
    optimizer.build(memory.trainable_variables)
    inputs = tf.random.normal((batch, length, 35))
    targets = tf.random.normal((batch, length, 32))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            (logit_pi, mu, log_sigma), _ = memory(inputs)
            loss = mdn_loss(logit_pi, mu, log_sigma, targets)
        gradients = tape.gradient(loss, memory.trainable_variables)
        optimizer.apply_gradients(zip(gradients, memory.trainable_variables))
        return loss

    step()  # trace

    def run() -> float:
        start = time.perf_counter()
        step().numpy()
        return time.perf_counter() - start

    return run, memory.count_params()


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=100, help="sequences per step")
    parser.add_argument("--length", type=int, default=999, help="steps per sequence")
    parser.add_argument("--window", type=int, default=32, help="the attentive memory's window")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps of each")
    args = parser.parse_args()

    runs = {
        kind: timed_steps(kind, args.batch_size, args.length, args.window)
        for kind in ("lstm", "attention")
    }
    seconds = {kind: [] for kind in runs}
    for _ in range(args.repeats):
        for kind, (run, _) in runs.items():
            seconds[kind].append(run())
    median = {kind: statistics.median(values) for kind, values in seconds.items()}
    print(f"batch {args.batch_size} x {args.length} steps, window {args.window}:")
    for kind, (_, parameters) in runs.items():
        print(f"{kind:>10}: {median[kind]:6.2f} s per training step ({parameters:,} parameters)")
    print(f"attention / lstm: {median['attention'] / median['lstm']:.2f}x")


if __name__ == "__main__":
    main()
