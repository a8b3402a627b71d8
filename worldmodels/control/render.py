"""A GIF of one episode of the trained agent: what it sees, what V reconstructs, what M expects.

    python -m worldmodels.control.render --generation best --seed 42 --out agent.gif

Each frame shows side by side the observation x_t, the VAE's reconstruction of it (decoded
from the mode of q(z|x): mu, or each categorical's most likely class), and the MDN-RNN's
prediction of the next frame (a z_{t+1} drawn from its mixture at --temperature given z_t, a_t
and h_t, decoded; not for a V-only agent, which has no M), with the step and the cumulative
reward.
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image, ImageDraw

from worldmodels import layout
from worldmodels.cli import make_parser, non_negative_int, positive_int
from worldmodels.control.controller import controller_actions
from worldmodels.control.dream import home_dream
from worldmodels.control.generations import controller_spec, load_agent_controller
from worldmodels.control.rollouts import EpisodeTask
from worldmodels.data.car_racing import make_env
from worldmodels.files import atomic_path
from worldmodels.images import uint8_images, unit_frames
from worldmodels.memory.memory import sample_next_latent
from worldmodels.params import EnvParams
from worldmodels.seeds import latent_noise
from worldmodels.world_model import WorldModel

PANELS = ("observation", "VAE reconstruction", "MDN-RNN: next frame")
HEADER_PIXELS = 28


def parse_args(argv: list[str] | None = None):
    parser = make_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--generation", default="best", help="N, max or best")
    parser.add_argument(
        "--candidate",
        choices=("mean", "best"),
        default="mean",
        help="the generation's distribution mean, or its fittest candidate",
    )
    parser.add_argument("--seed", type=non_negative_int, default=42, help="the track")
    parser.add_argument("--out", default="agent.gif", help="GIF to write")
    parser.add_argument("--episode-length", type=positive_int, default=1000, help="steps at most")
    parser.add_argument(
        "--temperature", type=float, default=1.0, help="temperature of the MDN-RNN's prediction"
    )
    parser.add_argument(
        "--scale", type=positive_int, default=2, help="each 64x64 panel is drawn scale times larger"
    )
    parser.add_argument("--fps", type=positive_int, default=25, help="GIF frames per second")
    parser.add_argument(
        "--env",
        choices=("fast", "stock"),
        default="fast",
        help="fast: FastCarRacing (identical observations); stock: CarRacing-v3",
    )
    parser.add_argument(
        "--dream",
        action="store_true",
        help="an episode dreamed by M instead (needs its reward and done heads): each z "
        "decoded by the VAE, with the predicted reward; --seed picks the first frame and the "
        "dream's randomness, --temperature is M's",
    )
    return parser.parse_args(argv)


def compose(
    panels: list[np.ndarray], scale: int, caption: str, titles: tuple[str, ...] = PANELS
) -> np.ndarray:
    """64x64x3 uint8 panels side by side, enlarged, under their titles and a caption line."""
    row = np.concatenate([np.kron(p, np.ones((scale, scale, 1), np.uint8)) for p in panels], 1)
    image = Image.new("RGB", (row.shape[1], row.shape[0] + HEADER_PIXELS))
    image.paste(Image.fromarray(row), (0, HEADER_PIXELS))
    draw = ImageDraw.Draw(image)
    width = row.shape[1] // len(panels)
    for index, name in enumerate(titles[: len(panels)]):
        draw.text((index * width + 4, 2), name, fill=(200, 200, 200))
    draw.text((4, 14), caption, fill=(255, 255, 255))
    return np.asarray(image)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    home = layout.resolve_home(args.home)
    generation, controller, latent = load_agent_controller(home, args.generation, args.candidate)
    if args.dream:
        render_dream(args, home, generation, controller)
        return
    spec = controller_spec(home)
    agent = WorldModel(home, with_memory=spec.uses_memory)
    env = make_env(EnvParams(env=args.env, episode_length=args.episode_length))

    noise = latent_noise(args.seed)
    observation, _ = env.reset(seed=args.seed)
    state = agent.initial_state(1)
    total, frames, done, step = 0.0, [], False, 0
    while not done:
        z = agent.codes(observation[None], [noise], latent)
        action = controller_actions(controller, z, state["features"], spec.actions)
        state = agent.memory_step(z, action, state)
        panels = [
            observation,
            uint8_images(agent.vae.reconstruct(unit_frames(observation[None])))[0],
        ]
        if agent.memory is not None:  # M's prediction of the next frame
            mixture = agent.memory.mixture(state["features"])
            predicted = sample_next_latent(*mixture, args.temperature, seed=None)
            panels.append(uint8_images(agent.vae.decode(predicted))[0])
        frames.append(compose(panels, args.scale, f"step {step}   reward {total:7.1f}"))
        observation, reward, terminated, truncated, _ = env.step(action[0])
        total += float(reward)
        done = terminated or truncated
        step += 1

    write_gif(args.out, frames, args.fps)
    print(
        f"rendered generation {generation} ({args.candidate}) on track {args.seed}: "
        f"{step} steps, reward {total:.1f}; wrote {args.out}"
    )


def render_dream(args, home, generation: int, controller: np.ndarray) -> None:
    """The GIF of one dream episode of `controller` in `home`'s M: each z decoded by the VAE,
    under the step and the cumulative predicted reward."""
    try:
        dream = home_dream(home, controller_spec(home), args.temperature, args.episode_length)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: --dream: {error}")
    trajectories = {}
    (result,) = dream.run([EpisodeTask(0, controller, args.seed)], trajectories)
    trajectory = trajectories[0]
    decoded = uint8_images(dream.world_model.vae.decode(trajectory["z"][:-1]))
    totals = np.cumsum(np.concatenate([[0.0], trajectory["reward"][:-1]]))
    frames = [
        compose([frame], args.scale, f"step {step}   predicted reward {total:7.1f}", ("M's dream",))
        for step, (frame, total) in enumerate(zip(decoded, totals))
    ]
    write_gif(args.out, frames, args.fps)
    print(
        f"rendered a dream of generation {generation} ({args.candidate}) from first frame seed "
        f"{args.seed} at temperature {args.temperature}: {result.steps} steps, predicted "
        f"reward {result.total_reward:.1f}; wrote {args.out}"
    )


def write_gif(path, frames: list[np.ndarray], fps: int) -> None:
    """The frames as a looping GIF in one palette of 255 colours taken from a sample of them,
    without dithering: the panels are flat blocks of few colours, and a palette per frame with
    dithering (imageio's way) made a 300-step GIF of the shipped agent 1.7 times larger."""
    sample = Image.fromarray(np.concatenate(frames[:: max(1, len(frames) // 30)], axis=0))
    palette = sample.quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    images = [
        Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE)
        for frame in frames
    ]
    with atomic_path(path) as temporary:
        images[0].save(
            temporary,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=round(1000 / fps),
            loop=0,
        )


if __name__ == "__main__":
    main()
