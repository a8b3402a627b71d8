"""GIFs of the agent: one episode's observation, the VAE's reconstruction and the MDN-RNN's
prediction side by side, or a dream of M's (`worldmodels.control.render`, its command)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

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


def render_episode(
    home: Path,
    out: str,
    generation: str = "best",
    candidate: str = "mean",
    seed: int = 42,
    env_params: EnvParams = EnvParams(),
    temperature: float = 1.0,
    scale: int = 2,
    fps: int = 25,
    dream: bool = False,
) -> str:
    """Writes the GIF `out` of one episode of `candidate` of the home's `generation` on the
    track of `seed` (with `dream`, one dreamed by M from the first frame `seed` picks), each
    panel `scale` times 64 pixels wide; returns the summary line."""
    generation, controller, latent = load_agent_controller(home, generation, candidate)
    if dream:
        return render_dream(
            home, out, generation, candidate, controller, seed, env_params, temperature, scale, fps
        )
    spec = controller_spec(home)
    agent = WorldModel(home, with_memory=spec.uses_memory)
    env = make_env(env_params)

    noise = latent_noise(seed)
    observation, _ = env.reset(seed=seed)
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
            predicted = sample_next_latent(*mixture, temperature, seed=None)
            panels.append(uint8_images(agent.vae.decode(predicted))[0])
        frames.append(compose(panels, scale, f"step {step}   reward {total:7.1f}"))
        observation, reward, terminated, truncated, _ = env.step(action[0])
        total += float(reward)
        done = terminated or truncated
        step += 1

    write_gif(out, frames, fps)
    return (
        f"rendered generation {generation} ({candidate}) on track {seed}: "
        f"{step} steps, reward {total:.1f}; wrote {out}"
    )


def render_dream(
    home: Path,
    out: str,
    generation: int,
    candidate: str,
    controller: np.ndarray,
    seed: int,
    env_params: EnvParams,
    temperature: float,
    scale: int,
    fps: int,
) -> str:
    """The GIF of one dream episode of `controller` in `home`'s M: each z decoded by the VAE,
    under the step and the cumulative predicted reward."""
    try:
        dream = home_dream(home, controller_spec(home), temperature, env_params.episode_length)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: --dream: {error}")
    trajectories = {}
    (result,) = dream.run([EpisodeTask(0, controller, seed)], trajectories)
    trajectory = trajectories[0]
    decoded = uint8_images(dream.world_model.vae.decode(trajectory["z"][:-1]))
    totals = np.cumsum(np.concatenate([[0.0], trajectory["reward"][:-1]]))
    frames = [
        compose([frame], scale, f"step {step}   predicted reward {total:7.1f}", ("M's dream",))
        for step, (frame, total) in enumerate(zip(decoded, totals))
    ]
    write_gif(out, frames, fps)
    return (
        f"rendered a dream of generation {generation} ({candidate}) from first frame seed "
        f"{seed} at temperature {temperature}: {result.steps} steps, predicted "
        f"reward {result.total_reward:.1f}; wrote {out}"
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
