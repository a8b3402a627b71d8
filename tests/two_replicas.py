"""Run by test_mirrored.py in a fresh process whose CPU is split into two logical devices, so
that MirroredStrategy has two replicas (TensorFlow fixes its devices at start-up).

    python two_replicas.py train_vae|train_memory FLAGS...   the command, in this process
    python two_replicas.py vae_step                          prints JSON, see vae_step()
"""

import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def vae_step() -> dict:
    """One training step of the continuous VAE on 5 frames (split 3 + 2 over the replicas),
    mirrored and on one device from the same weights, with z = mu (no sampling noise, which
    each replica would draw differently): losses, how far the step moved the weights, and
    how far apart the two steps left them."""
    import keras
    import numpy as np

    from worldmodels.training import distributed_train_step, make_strategy
    from worldmodels.vision import vae as vae_module

    vae_module.sample_latent = lambda mu, logvar: mu
    frames = np.random.default_rng(0).uniform(size=(5, 64, 64, 3)).astype(np.float32)
    results = {"replicas": make_strategy("mirrored").num_replicas_in_sync}
    weights = {}
    for name in ("default", "mirrored"):
        strategy = make_strategy(name)
        keras.utils.set_random_seed(0)
        with strategy.scope():
            vae = vae_module.build_vae("continuous", 0.5)
            optimizer = keras.optimizers.Adam(1e-3)
            optimizer.build(vae.trainable_variables)
        initial = [variable.numpy() for variable in vae.trainable_variables]

        def losses_of_batch(x):
            return vae.loss_terms(x), tf.cast(tf.shape(x)[0], tf.float32)  # noqa: B023, traced at once

        step = tf.function(distributed_train_step(strategy, losses_of_batch, vae, optimizer))
        batch = tf.data.Dataset.from_tensor_slices(frames).batch(5)
        losses = step(next(iter(strategy.experimental_distribute_dataset(batch))))
        results[name] = {key: float(value) for key, value in losses.items()}
        weights[name] = [variable.numpy() for variable in vae.trainable_variables]
        results[f"{name}_step_size"] = max(
            float(np.abs(after - before).max()) for after, before in zip(weights[name], initial)
        )
    results["largest_weight_difference"] = max(
        float(np.abs(a - b).max()) for a, b in zip(weights["default"], weights["mirrored"])
    )
    return results


if __name__ == "__main__":
    command, flags = sys.argv[1], sys.argv[2:]
    if command == "vae_step":
        print(json.dumps(vae_step()))
    elif command == "train_vae":
        from worldmodels.vision import train_vae

        train_vae.main(flags)
    else:
        from worldmodels.memory import train_memory

        train_memory.main(flags)
