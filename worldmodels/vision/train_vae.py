"""Stage 2: train the VAE on frames streamed from episode records.

    python -m worldmodels.vision.train_vae --dataset random --epochs 10

Reads `<home>/<dataset>-rollouts/` of each dataset named, writes `<home>/vae-training/`:
checkpoints, losses.csv, TensorBoard summaries and, each epoch,
images/epoch-NNN-reconstruction.png (originals above their reconstructions) and
images/epoch-NNN-samples.png (decoded draws from the prior). Rerunning the same command after
an interruption resumes from the last checkpoint.
"""

from __future__ import annotations

import dataclasses
import sys

import keras
import numpy as np
import tensorflow as tf

from worldmodels import layout
from worldmodels.cli import (
    add_datasets_argument,
    add_on_corrupt_argument,
    add_strategy_argument,
    add_validation_arguments,
    make_parser,
    non_negative_int,
    positive_int,
)
from worldmodels.data.tf_records import (
    CorruptEpisodeError,
    corrupt_episodes_raise,
    frame_dataset,
    load_first_episode,
)
from worldmodels.images import image_grid, save_png, unit_frames
from worldmodels.params import VAE_SCHEDULES, VAEParams
from worldmodels.seeds import SEED_SCHEME, Model, Stream, derive_seed
from worldmodels.training import (
    NoEpisodesError,
    RunMismatchError,
    TrainingRun,
    describe_strategy,
    distributed_train_step,
    episodes_of,
    make_strategy,
    mean_losses,
    split_episodes,
    starts_new_run,
)
from worldmodels.vision.vae import (
    ACTIVITY_THRESHOLD,
    FRAME_SHAPE,
    LATENTS,
    annealed,
    build_vae,
    latent_activity,
)

PREVIEW_FRAMES = 8


def parse_args(argv: list[str] | None = None):
    defaults = VAEParams()
    parser = make_parser(__doc__.split("\n\n")[0])
    add_datasets_argument(parser, "<home>/<dataset>-rollouts")
    parser.add_argument(
        "--latent",
        choices=LATENTS,
        default=defaults.latent,
        help="continuous: the paper's 32 Gaussians; discrete: 32 categorical variables of 32 "
        "classes, Gumbel-softmax relaxed in training, a hard one-hot sample in agents",
    )
    for name, what in (
        ("gumbel_temperature", "the discrete VAE's Gumbel-softmax temperature"),
        ("kl_weight", "the discrete VAE's weight of KL(q || uniform)"),
    ):
        flag = name.replace("_", "-")
        parser.add_argument(
            f"--{flag}-start",
            type=float,
            default=getattr(defaults, f"{name}_start"),
            help=f"{what} at epoch 0",
        )
        parser.add_argument(
            f"--{flag}-end",
            type=float,
            default=getattr(defaults, f"{name}_end"),
            help=f"{what} it anneals exponentially towards",
        )
        parser.add_argument(
            f"--{flag}-half-life",
            type=float,
            default=getattr(defaults, f"{name}_half_life"),
            help=f"epochs in which {what} halves its distance to the end value",
        )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=defaults.epochs,
        help="total epochs of the run; raise it and rerun to train longer",
    )
    parser.add_argument(
        "--batch-size",
        "--batch_size",
        type=positive_int,
        default=defaults.batch_size,
        help="frames per step (paper: 32 / 100)",
    )
    parser.add_argument(
        "--learning-rate", type=float, default=defaults.learning_rate, help="Adam learning rate"
    )
    parser.add_argument(
        "--kl-tolerance",
        type=float,
        default=defaults.kl_tolerance,
        help="free bits: KL is floored at kl_tolerance * 32 nats per frame",
    )
    parser.add_argument(
        "--shuffle-buffer",
        type=positive_int,
        default=10_000,
        help="frames in the shuffle buffer (~12 KB each)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=1000,
        help="steps between checkpoints (and at the end of every epoch)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seeds the initial weights and the order of the frames",
    )
    parser.add_argument(
        "--load-model",
        action="store_true",
        help="start a new run from the weights of the last checkpoint (e.g. on --dataset "
        "controller), the old run kept aside; the same command run again resumes that run",
    )
    add_validation_arguments(parser, defaults.validation_share)
    add_strategy_argument(parser)
    add_on_corrupt_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    home = layout.resolve_home(args.home)
    folders = {dataset: layout.rollouts(home, dataset) for dataset in args.dataset}
    try:
        all_paths = episodes_of(folders)
    except NoEpisodesError as error:
        sys.exit(
            f"error: {error}; sample some first, e.g. python -m worldmodels.data.sample_policy "
            f"--policy random --episodes 100 --dataset {error.dataset}"
        )
    params = dataclasses.replace(
        VAEParams(),
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        kl_tolerance=args.kl_tolerance,
        validation_share=args.validation_share,
        latent=args.latent,
        **{key: getattr(args, key) for key in VAE_SCHEDULES},
    )
    # The discrete VAE's schedules are settings of its run; the continuous VAE has none.
    schedules = (
        {key: getattr(params, key) for key in VAE_SCHEDULES} if params.latent == "discrete" else {}
    )
    settings = {
        "dataset": layout.dataset_setting(args.dataset),
        "latent": params.latent,
        **schedules,
        "batch_size": params.batch_size,
        "learning_rate": params.learning_rate,
        "kl_tolerance": params.kl_tolerance,
        "shuffle_buffer": args.shuffle_buffer,
        "validation_share": params.validation_share,
        "seed": args.seed,
        "seed_scheme": SEED_SCHEME,
    }
    directory = layout.vae_training(home)
    new_run = starts_new_run(directory, args.load_model, settings)
    paths, validation = split_episodes(
        directory,
        all_paths,
        params.validation_share,
        derive_seed(args.seed, Stream.VALIDATION, Model.VAE),
        new_run=new_run,
    )

    keras.utils.set_random_seed(derive_seed(args.seed, Stream.MODEL_INIT, Model.VAE, bits=32))
    strategy = make_strategy(args.strategy)
    with strategy.scope():
        vae = build_vae(params.latent, params.kl_tolerance)
        optimizer = keras.optimizers.Adam(params.learning_rate)
        optimizer.build(vae.trainable_variables)
    try:
        run = TrainingRun(
            directory,
            vae,
            optimizer,
            settings,
            config={"vae": dataclasses.asdict(params), "command": vars(args)},
            load_model=new_run,
            validation_episodes=validation,
        )
    except (RunMismatchError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    print(f"{run.description}; {describe_strategy(strategy)}")

    def losses_of_batch(frames):
        return vae.loss_terms(frames), tf.cast(tf.shape(frames)[0], tf.float32)

    train_step = tf.function(
        distributed_train_step(strategy, losses_of_batch, vae, optimizer), reduce_retracing=True
    )

    def frames_for_epoch(epoch: int) -> tf.data.Dataset:
        return frame_dataset(
            paths,
            params.batch_size,
            shuffle_buffer=args.shuffle_buffer,
            seed=derive_seed(args.seed, Stream.DATA_ORDER, Model.VAE, epoch),
            on_corrupt=args.on_corrupt,
        )

    @tf.function(input_signature=[tf.TensorSpec([None, *FRAME_SHAPE], tf.float32)])
    def validation_step(frames):
        """The losses on a batch, and its q(z|x)'s first parameters (mu, or the logits)."""
        return vae.loss_terms(frames), vae.posterior(frames)[0]

    def validation_losses() -> dict:
        """The losses on the held-out episodes' frames (z sampled as in training) and, for the
        continuous VAE, how many latent dimensions are active on them."""
        validation_frames = frame_dataset(
            validation,
            params.batch_size,
            shuffle_buffer=1,
            seed=derive_seed(args.seed, Stream.VALIDATION, Model.VAE),
            on_corrupt=args.on_corrupt,
        )
        mu_batches = []

        def losses_keeping_mu(frames):
            losses, first_parameters = validation_step(frames)
            if params.latent == "continuous":  # a discrete VAE's logits are not kept: 1024 a frame
                mu_batches.append(first_parameters.numpy())
            return losses

        # One pass over the held-out frames gives both the losses and the latent activity.
        losses = mean_losses(losses_keeping_mu, validation_frames)
        if losses and params.latent == "continuous":
            activity = latent_activity(mu_batches)
            losses["active_dimensions"] = int(np.sum(activity > ACTIVITY_THRESHOLD))
        return losses

    try:
        # Held-out frames first: reconstructions of frames the VAE never trained on.
        preview = preview_frames(load_first_episode(validation + paths, args.on_corrupt))
    except (CorruptEpisodeError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    prior_draws = vae.prior_codes(16, args.seed)

    def anneal(epoch: int) -> None:
        """The discrete VAE's temperature and KL weight for `epoch` (0-based)."""
        if params.latent == "discrete":
            vae.temperature.assign(
                annealed(
                    params.gumbel_temperature_start,
                    params.gumbel_temperature_end,
                    params.gumbel_temperature_half_life,
                    epoch,
                )
            )
            vae.kl_weight.assign(
                annealed(
                    params.kl_weight_start, params.kl_weight_end, params.kl_weight_half_life, epoch
                )
            )

    try:
        with corrupt_episodes_raise():
            run.fit(
                params.epochs,
                frames_for_epoch,
                train_step,
                args.checkpoint_every,
                after_epoch=lambda epoch: save_epoch_images(run, vae, preview, prior_draws, epoch),
                validate=validation_losses if validation else None,
                validate_every=args.validate_every,
                before_epoch=anneal,
                strategy=strategy,
            )
    except CorruptEpisodeError as error:
        sys.exit(f"error: {error}")
    print(
        f"trained the VAE for {params.epochs} epochs ({run.step} steps) on {len(paths)} "
        f"episodes of {', '.join(map(str, folders.values()))} ({len(validation)} held out); "
        f"checkpoints, losses.csv, validation.csv and images in {run.directory}"
    )


def preview_frames(episode: dict) -> tf.Tensor:
    """PREVIEW_FRAMES frames spread over one episode, float32 in [0, 1]."""
    observation = episode["observation"]
    picks = np.linspace(0, len(observation) - 1, PREVIEW_FRAMES).astype(int)
    return unit_frames(observation[picks])


def save_epoch_images(run: TrainingRun, vae, preview, prior_draws, epoch: int) -> None:
    """Reconstructions of the preview frames (from the mode of q(z|x)) and decoded prior
    draws, as PNG and TensorBoard."""
    reconstruction = image_grid(
        np.concatenate([preview, vae.reconstruct(preview).numpy()]), PREVIEW_FRAMES
    )
    samples = image_grid(vae.decode(prior_draws).numpy(), 8)
    images = run.directory / layout.IMAGES
    save_png(images / f"epoch-{epoch:03d}-reconstruction.png", reconstruction)
    save_png(images / f"epoch-{epoch:03d}-samples.png", samples)
    with run.log.summaries.as_default(step=run.step):
        tf.summary.image("reconstruction", reconstruction[None])
        tf.summary.image("prior_samples", samples[None])


if __name__ == "__main__":
    main()
