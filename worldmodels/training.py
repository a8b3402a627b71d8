"""What the training commands share: checkpointed runs that resume, and loss logs.

A run lives in one directory (`vae-training/`, `memory-training/`):

    run.json        the settings that identify the run, the full resolved config and the
                    episodes held out for validation
    checkpoints/    tf.train.CheckpointManager: weights, optimizer state, position in the data
    losses.csv      one row per training step
    validation.csv  the loss on the held-out episodes, after every epoch (and every N steps)
    tensorboard/    the same scalars (and images) for TensorBoard; validation/ beside train
    previous-runs/  earlier runs, moved aside by --load-model

The CheckpointManager writes its `checkpoint` index file after the checkpoint's data, so a
checkpoint counts only once it is complete; rerunning a command restores the latest one.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from worldmodels import layout
from worldmodels.data.tf_records import list_episodes
from worldmodels.files import atomic_path, atomic_write_text
from worldmodels.progress import progress
from worldmodels.records import read_run, stamped
from worldmodels.seeds import Model, Stream, derive_seed


def held_out_episodes(paths: list[Path], share: float, seed: int) -> list[Path]:
    """`share` of the episodes `paths`, whole, drawn by `seed`: at least one when share > 0
    and there are two or more episodes, never all of them."""
    if not 0 <= share < 1:
        raise ValueError(f"the validation share must be in [0, 1), got {share}")
    count = min(len(paths) - 1, max(1, round(share * len(paths)))) if share > 0 else 0
    chosen = np.random.default_rng(seed).choice(len(paths), size=max(count, 0), replace=False)
    return [paths[i] for i in sorted(chosen)]


def episode_key(path: Path) -> str:
    """How run.json names an episode: `<folder>/<file>`, since a run's datasets repeat file
    names. Runs recorded before runs could train on several datasets name the file alone."""
    return f"{path.parent.name}/{path.name}"


class NoEpisodesError(FileNotFoundError):
    """A dataset's folder holds no episode (`dataset`: its name)."""

    def __init__(self, dataset: str, folder: Path):
        super().__init__(f"no episodes in {folder}")
        self.dataset = dataset


def episodes_of(folders: dict[str, Path]) -> list[Path]:
    """Every episode in `folders` (dataset name: its folder), dataset by dataset in their
    order. Raises NoEpisodesError for the first folder without any."""
    paths = []
    for dataset, folder in folders.items():
        found = list_episodes(folder)
        if not found:
            raise NoEpisodesError(dataset, folder)
        paths += found
    return paths


def split_episodes(
    directory: Path, paths: list[Path], share: float, seed: int, new_run: bool
) -> tuple[list[Path], list[Path]]:
    """(training, validation) episodes of the run in `directory`.

    A run keeps the split recorded in its run.json (episodes added to the dataset since then
    train), so resuming never moves an episode between the two; a new run (no run.json, or
    `new_run`, as with --load-model) draws one with `held_out_episodes`.
    """
    recorded = None if new_run else layout.recorded_run(directory).get("validation_episodes")
    if recorded is None:
        validation = held_out_episodes(paths, share, seed)
    else:
        recorded = set(recorded)
        validation = [p for p in paths if episode_key(p) in recorded or p.name in recorded]
    held_out = set(validation)
    return [path for path in paths if path not in held_out], validation


def recorded_episodes(
    run_directory: Path, folder_of: Callable[[str], Path]
) -> tuple[list[Path], list[Path]]:
    """(all, held out): the episodes of the V or M run in `run_directory`, found in the folders
    `folder_of(dataset)` of its datasets in training's order, and those it holds out for
    validation. Raises NoEpisodesError for a folder without any."""
    paths = episodes_of({d: folder_of(d) for d in layout.trained_datasets(run_directory)})
    return paths, split_episodes(run_directory, paths, share=0, seed=0, new_run=False)[1]


def mean_losses(
    step: Callable[..., dict],
    batches: tf.data.Dataset,
    weight: Callable[..., float] = lambda first, *rest: len(first),
) -> dict[str, float]:
    """Each loss of `step(*batch)` averaged over `batches`, each batch weighted by
    `weight(*batch)`: by default its size, for a loss that is a mean over the batch. Empty
    when there is no batch (every held-out episode damaged and skipped)."""
    totals: dict[str, float] = {}
    count = 0.0
    for batch in batches:
        batch = batch if isinstance(batch, tuple) else (batch,)
        size = float(weight(*batch))
        for name, value in step(*batch).items():
            totals[name] = totals.get(name, 0.0) + float(value) * size
        count += size
    return {name: total / count for name, total in totals.items()} if count else {}


STRATEGIES = ("default", "mirrored")
LOADED_FROM = "loaded_from"  # in run.json: the checkpoint a --load-model run started from


def make_strategy(name: str) -> tf.distribute.Strategy:
    """`default`: TensorFlow's default strategy (one device, nothing distributed); `mirrored`:
    `tf.distribute.MirroredStrategy` over every visible GPU, or over the logical CPU devices
    when there is no GPU (one on a plain machine; tests configure two)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name != "mirrored":
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([device.name for device in devices])


def describe_strategy(strategy: tf.distribute.Strategy) -> str:
    """ "on one device", or "on N replicas (devices)", for a training command's first line."""
    if strategy.num_replicas_in_sync == 1:
        return "on one device"
    devices = ", ".join(strategy.extended.worker_devices)
    return f"on {strategy.num_replicas_in_sync} replicas ({devices})"


def distributed_train_step(
    strategy: tf.distribute.Strategy,
    losses_of_batch: Callable[..., tuple[dict, tf.Tensor]],
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
) -> Callable[..., dict]:
    """One optimizer step on a global batch whose parts sit on the strategy's replicas, equal
    (to float rounding) to the step on the whole batch on one device.

    `losses_of_batch(*batch)` gives a replica's losses as means over its part, with the part's
    weight (frames, or unmasked steps). Each replica's means count by its share of the global
    weight, so they add up to the global batch's means, however unevenly the batch was split;
    the gradients of those shares are summed over the replicas, then clipped and applied once,
    as on one device (Keras would clip each replica's share before summing them). Returns the
    global losses. With the default strategy, it is the plain step.
    """

    def replica_step(*batch):
        with tf.GradientTape() as tape:
            losses, weight = losses_of_batch(*batch)
            context = tf.distribute.get_replica_context()
            share = weight / context.all_reduce(tf.distribute.ReduceOp.SUM, weight)
            # A replica may get no part of a short last batch: its means are NaN, its share 0.
            shares = {name: tf.math.multiply_no_nan(value, share) for name, value in losses.items()}
        return shares, tape.gradient(shares["loss"], model.trainable_variables)

    def total(per_replica):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def step(*batch):
        shares, gradients = strategy.run(replica_step, args=batch)
        optimizer.apply_gradients(zip(map(total, gradients), model.trainable_variables))
        return {name: total(value) for name, value in shares.items()}

    return step


class RunMismatchError(RuntimeError):
    """The directory holds a run with different settings than the ones asked for."""


def changed_settings(saved: dict, requested: dict, added_later: dict | None = None) -> str:
    """ "key: old -> new, ..." for every setting that differs; empty when none does.

    `added_later`: settings that runs recorded before they existed had implicitly, with that
    value (e.g. {"reward_done_heads": False}), so that such runs still resume."""
    saved = {**(added_later or {}), **saved}
    differing = sorted(
        k for k in saved.keys() | requested.keys() if saved.get(k) != requested.get(k)
    )
    return ", ".join(f"{k}: {saved.get(k)!r} -> {requested.get(k)!r}" for k in differing)


def starts_new_run(
    directory: Path, load_model: bool, settings: dict, added_later: dict | None = None
) -> bool:
    """Whether a command with --load-model (`load_model`) and `settings` starts a new run in
    `directory` from the weights there. Not when the run there is one that --load-model
    started with these settings: the same command run again resumes it (its recorded
    validation split included; nothing to do once it is finished), so a script of the
    pipeline's commands can be rerun after an interruption."""
    recorded = read_run(directory)
    if not load_model or LOADED_FROM not in recorded:
        return load_model
    return bool(changed_settings(recorded["settings"], settings, added_later))


def open_run(
    directory: Path,
    all_paths: list[Path],
    settings: dict,
    build: Callable[[int], tuple[keras.Model, keras.optimizers.Optimizer]],
    *,
    model: Model,
    seed: int,
    validation_share: float,
    load_model: bool,
    strategy: str,
    config: dict,
    settings_added_later: dict | None = None,
) -> tuple[TrainingRun, tf.distribute.Strategy, list[Path], list[Path]]:
    """The prologue both trainers share: whether `load_model` starts a new run or the run in
    `directory` resumes (its settings checked), the episodes held out for validation (a
    `validation_share` of `all_paths`, kept when it resumes), the seeded initial weights of
    `build(training episodes)` -> (model, optimizer) in the `strategy`'s scope, and the
    `TrainingRun` restored from its latest checkpoint. Returns (run, strategy, training
    episodes, validation episodes); exits with a message when the run cannot go on."""
    new_run = starts_new_run(directory, load_model, settings, settings_added_later)
    paths, validation = split_episodes(
        directory,
        all_paths,
        validation_share,
        derive_seed(seed, Stream.VALIDATION, model),
        new_run=new_run,
    )
    keras.utils.set_random_seed(derive_seed(seed, Stream.MODEL_INIT, model, bits=32))
    distribution = make_strategy(strategy)
    with distribution.scope():
        network, optimizer = build(len(paths))
    try:
        run = TrainingRun(
            directory,
            network,
            optimizer,
            settings,
            config=config,
            load_model=new_run,
            validation_episodes=validation,
            settings_added_later=settings_added_later,
        )
    except (RunMismatchError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    print(f"{run.description}; {describe_strategy(distribution)}")
    return run, distribution, paths, validation


@contextlib.contextmanager
def interrupt_requests() -> Iterator[Callable[[], bool]]:
    """Within it, Ctrl-C (SIGINT) does not raise: the function it yields returns True once one
    came, for the caller to stop at a point where its state is whole. Outside the main thread,
    where no handler can be set, Ctrl-C raises as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    try:
        yield lambda: bool(received)
    finally:
        signal.signal(signal.SIGINT, previous)


class TrainingRun:
    """Model, optimizer and position in the data, checkpointed in `directory`.

    `settings` identify the run (dataset, batch size, ...; not the number of epochs, which may
    be raised to train longer). On construction the run is, in order:
    - with `load_model`: a new run starting from the weights of the latest checkpoint, the old
      run moved to `previous-runs/`; an error when there is no checkpoint (commands decide
      it with `starts_new_run`);
    - resumed from the latest checkpoint, when there is one with the same settings;
    - an error naming the differing settings, when there is one with other settings;
    - new.
    `description` says which. The model's and optimizer's variables must exist already.
    `validation_episodes` (see `split_episodes`) are recorded in run.json (`episode_key`).
    `settings_added_later` (see `changed_settings`) lets runs recorded before a setting existed
    resume.
    """

    def __init__(
        self,
        directory: Path,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        settings: dict,
        config: dict,
        load_model: bool = False,
        checkpoints_to_keep: int = 3,
        validation_episodes: list[Path] = (),
        settings_added_later: dict | None = None,
    ):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.model = model
        self.optimizer = optimizer
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)  # completed epochs
        self.batch_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.batches_per_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)  # 0: unknown
        self._checkpoint = tf.train.Checkpoint(
            model=model,
            optimizer=optimizer,
            epoch=self.epoch,
            batch_in_epoch=self.batch_in_epoch,
            batches_per_epoch=self.batches_per_epoch,
        )
        self._manager = self._make_manager(checkpoints_to_keep)
        latest = self._manager.latest_checkpoint
        loaded_from = layout.recorded_run(self.directory).get(LOADED_FROM)
        if load_model:
            if latest is None:
                raise FileNotFoundError(
                    f"--load-model: no checkpoint to load in {self.directory / 'checkpoints'}"
                )
            tf.train.Checkpoint(model=model).restore(latest).expect_partial()
            archived = self._archive_previous_run()
            self._manager = self._make_manager(checkpoints_to_keep)
            loaded_from = str(archived / layout.CHECKPOINTS / Path(latest).name)
            self.description = f"new run from the weights of {latest} (old run in {archived})"
        elif latest is None and loaded_from is not None:
            # --load-model started this run, and it was stopped before its first checkpoint:
            # it starts again from the same weights.
            tf.train.Checkpoint(model=model).restore(loaded_from).expect_partial()
            self.description = f"new run from the weights of {loaded_from} (started again)"
        elif latest is not None:
            self._check_settings(settings, settings_added_later)
            self._checkpoint.restore(latest).assert_existing_objects_matched()
            self.description = (
                f"resumed from {latest} at epoch {int(self.epoch) + 1}, "
                f"batch {int(self.batch_in_epoch)}"
            )
            if loaded_from is not None:
                self.description += f" (the run --load-model started from {loaded_from})"
        else:
            self.description = f"new run in {self.directory}"
        atomic_write_text(
            self.directory / layout.RUN_FILE,
            json.dumps(
                stamped(
                    {
                        "settings": settings,
                        "config": config,
                        "validation_episodes": [episode_key(Path(p)) for p in validation_episodes],
                        **({LOADED_FROM: loaded_from} if loaded_from is not None else {}),
                    }
                ),
                indent=2,
                sort_keys=True,
            ),
        )
        self.log = LossLog(self.directory, resume_after_step=self.step)
        self.validation_log = LossLog(
            self.directory, self.step, layout.VALIDATION, layout.TENSORBOARD + "/validation"
        )
        if load_model:  # at once: a run killed before its first checkpoint resumes from this one
            self.save()

    @property
    def step(self) -> int:
        """Training steps taken in this run."""
        return int(self.optimizer.iterations.numpy())

    def save(self) -> None:
        """Checkpoints weights, optimizer and position, after flushing the logs."""
        self.log.flush()
        self.validation_log.flush()
        self._manager.save(checkpoint_number=self.step)

    def fit(
        self,
        epochs: int,
        batches_for_epoch: Callable[[int], tf.data.Dataset],
        train_step: Callable[..., dict],
        checkpoint_every: int,
        after_epoch: Callable[[int], None] = lambda epoch: None,
        validate: Callable[[], dict] | None = None,
        validate_every: int = 0,
        before_epoch: Callable[[int], None] = lambda epoch: None,
        strategy: tf.distribute.Strategy | None = None,
    ) -> None:
        """Trains from where the run stands to the end of epoch `epochs`.

        `batches_for_epoch(epoch)` must give the same batches in the same order for the same
        epoch, so that a resumed epoch can skip the batches it already trained on.
        `train_step(*batch)` returns a dict of scalar losses, logged every step. `validate()`
        returns the losses on the held-out episodes, logged after every epoch and every
        `validate_every` steps (0: only after epochs). Checkpoints every `checkpoint_every`
        steps and after each epoch, then calls `after_epoch(epoch)` with the 1-based number of
        the epoch just completed. `before_epoch(epoch)` runs before an epoch's (or a resumed
        epoch's) first batch with its 0-based number, for settings that change per epoch.
        With a `strategy`, each batch reaches `train_step` split over its replicas (see
        `distributed_train_step`).
        """
        # Ctrl-C stops after the batch in progress, with a checkpoint of exactly that point.
        with interrupt_requests() as interrupted:
            for epoch in range(int(self.epoch), epochs):
                before_epoch(epoch)
                batches = batches_for_epoch(epoch).skip(int(self.batch_in_epoch))
                if strategy is not None:
                    batches = strategy.experimental_distribute_dataset(batches)
                bar = progress(
                    batches,
                    desc=f"epoch {epoch + 1}/{epochs}",
                    unit="batch",
                    initial=int(self.batch_in_epoch),
                    total=int(self.batches_per_epoch) or None,
                )
                validated_at = None
                for batch in bar:
                    losses = train_step(*batch) if isinstance(batch, tuple) else train_step(batch)
                    self.batch_in_epoch.assign_add(1)
                    self.log.write(self.step, epoch + 1, losses)
                    bar.set_postfix(loss=f"{float(losses['loss']):.4g}", refresh=False)
                    if validate is not None and validate_every and self.step % validate_every == 0:
                        self._log_validation(epoch, validate())
                        validated_at = self.step
                    if self.step % checkpoint_every == 0:
                        self.save()
                    if interrupted():  # between two batches, so that the checkpoint is exact
                        bar.close()
                        self.save()
                        checkpoints = self.directory / layout.CHECKPOINTS
                        raise SystemExit(
                            f"interrupted: epoch {epoch + 1}, batch {int(self.batch_in_epoch)} "
                            f"saved in {checkpoints}; rerun the same command to resume from it"
                        )
                if validate is not None and validated_at != self.step:
                    self._log_validation(epoch, validate())
                self.batches_per_epoch.assign(self.batch_in_epoch)
                self.epoch.assign_add(1)
                self.batch_in_epoch.assign(0)
                self.save()
                after_epoch(epoch + 1)
        self.log.close()
        self.validation_log.close()

    def _log_validation(self, epoch: int, losses: dict) -> None:
        if losses:  # nothing to log when no held-out episode could be read
            self.validation_log.write(self.step, epoch + 1, losses)

    def _make_manager(self, checkpoints_to_keep: int) -> tf.train.CheckpointManager:
        return tf.train.CheckpointManager(
            self._checkpoint, str(self.directory / layout.CHECKPOINTS), checkpoints_to_keep
        )

    def _check_settings(self, settings: dict, added_later: dict | None) -> None:
        saved = read_run(self.directory).get("settings", {})
        changes = changed_settings(saved, settings, added_later)
        if changes:
            raise RunMismatchError(
                f"{self.directory} holds a run with other settings ({changes}). Rerun with the "
                "same settings to resume it, pass --load-model to start a new run from its "
                "weights, or use another --home."
            )

    def _archive_previous_run(self) -> Path:
        previous = self.directory / layout.PREVIOUS_RUNS
        archive = previous / f"run-{len(list(previous.glob('run-*')))}"
        archive.mkdir(parents=True)
        for name in layout.RUN_FILES:
            if (self.directory / name).exists():
                shutil.move(str(self.directory / name), str(archive / name))
        return archive


class LossLog:
    """Per-step scalars to a CSV file (`losses.csv`) and TensorBoard (`tensorboard/`).

    Rows of steps after `resume_after_step` (logged after the last checkpoint by a run that was
    then interrupted) are dropped, so a resumed run logs each step once.
    """

    def __init__(
        self,
        directory: Path,
        resume_after_step: int,
        name: str = layout.LOSSES,
        tensorboard: str = layout.TENSORBOARD,
    ):
        self.path = Path(directory) / name
        self._drop_rows_after(resume_after_step)
        self._file = open(self.path, "a", newline="")
        self._writer = None
        self.summaries = tf.summary.create_file_writer(str(Path(directory) / tensorboard))

    def write(self, step: int, epoch: int, scalars: dict[str, float]) -> None:
        row = {"step": step, "epoch": epoch, **{k: float(v) for k, v in scalars.items()}}
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=list(row))
            if self._file.tell() == 0:
                self._writer.writeheader()
        self._writer.writerow(row)
        with self.summaries.as_default(step=step):
            for name, value in scalars.items():
                tf.summary.scalar(name, value)

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self.summaries.flush()

    def close(self) -> None:
        self.flush()
        self._file.close()
        self.summaries.close()

    def _drop_rows_after(self, step: int) -> None:
        if not self.path.exists():
            return
        with open(self.path, newline="") as existing:
            rows = list(csv.DictReader(existing))
        if all(int(row["step"]) <= step for row in rows):
            return
        with atomic_path(self.path) as temporary, open(temporary, "w", newline="") as kept:
            writer = csv.DictWriter(kept, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(row for row in rows if int(row["step"]) <= step)


def restore_latest_weights(directory: Path, model: keras.Model, command: str) -> str:
    """Loads the model weights of the latest checkpoint in `directory/checkpoints`.

    Returns the checkpoint's path; exits with an error saying to run `command` when there is
    none.
    """
    latest = tf.train.latest_checkpoint(str(Path(directory) / layout.CHECKPOINTS))
    if latest is None:
        raise SystemExit(
            f"error: no checkpoint in {Path(directory) / layout.CHECKPOINTS}; run {command} first"
        )
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    return latest


def completed_epochs(run: Path) -> int | None:
    """Epochs completed by the latest checkpoint of the training run in `run`; None for a
    weights-only checkpoint (a snapshot's or an export's), which holds no position."""
    reader = tf.train.load_checkpoint(str(run / layout.CHECKPOINTS))
    key = "epoch/.ATTRIBUTES/VARIABLE_VALUE"  # TrainingRun checkpoints its counter as `epoch`
    return int(reader.get_tensor(key)) if reader.has_tensor(key) else None


def require_checkpoint(run: Path, command: str) -> None:
    """Exits saying to run `python -m worldmodels.<command>` when the training run in `run`
    has no checkpoint."""
    if tf.train.latest_checkpoint(str(run / layout.CHECKPOINTS)) is None:
        raise SystemExit(
            f"error: no checkpoint in {run / layout.CHECKPOINTS}; "
            f"run python -m worldmodels.{command} first"
        )


def fingerprint(vae, memory: keras.Model | None = None) -> str:
    """A hash of the models' weights once restored, so it does not depend on how a checkpoint
    stores them: a weights-only export of the same checkpoints has the same fingerprint."""
    digest = hashlib.sha256()
    for weight in [*vae.weights, *(memory.weights if memory is not None else [])]:
        digest.update(np.asarray(weight).tobytes())
    return digest.hexdigest()[:16]
