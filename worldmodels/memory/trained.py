"""The home's trained MDN-RNN: built as its run recorded, with its latest checkpoint's weights."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from worldmodels import layout
from worldmodels.data.tf_records import ACTION_DIM, LATENT_DIM
from worldmodels.memory.memory import MDNRNN, build_memory
from worldmodels.records import memory_settings
from worldmodels.training import restore_latest_weights


def load_memory(home: Path | None) -> MDNRNN:
    """The MDN-RNN of `home` (its kind and sizes, its latest weights; exits saying what to run
    when it has none), or without a home the paper's, freshly initialised."""
    memory = build_memory(latent_dim=LATENT_DIM, action_dim=ACTION_DIM, **memory_settings(home))
    memory(tf.zeros((1, 1, LATENT_DIM + ACTION_DIM)))
    if home is not None:
        restore_latest_weights(layout.memory_training(home), memory, "train_memory")
    return memory
