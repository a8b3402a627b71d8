"""What users look at: the episode GIF, TensorBoard summaries and PNG training curves."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from worldmodels import figures, plots
from worldmodels.control import render, rendering
from worldmodels.control.generations import load_summaries
from worldmodels.images import image_grid, uint8_images, unit_frames


def event_tags(folder):
    tags = set()
    for path in folder.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_frames_scale_to_the_unit_interval_and_back_exactly():
    every_value = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    unit = unit_frames(every_value).numpy()
    assert unit.dtype == np.float32
    np.testing.assert_array_equal(unit, every_value.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(uint8_images(unit), every_value)
    np.testing.assert_array_equal(
        uint8_images(np.array([-0.2, 0.0019, 0.0021, 1.3])), [0, 0, 1, 255]
    )


def test_image_grid_places_images_row_by_row():
    images = np.stack([np.full((2, 3, 3), value, np.uint8) for value in (10, 20, 30)])
    grid = image_grid(images, columns=2)
    assert grid.shape == (4, 6, 3)
    assert grid[0, 0, 0] == 10 and grid[0, 3, 0] == 20 and grid[2, 0, 0] == 30
    assert (grid[2:, 3:] == 0).all()


def test_gif_frames_of_few_colours_come_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, size=(40, 3), dtype=np.uint8)
    frames = [colours[rng.integers(0, 40, size=(8, 12))] for _ in range(20)]
    rendering.write_gif(tmp_path / "a.gif", frames, fps=25)
    gif = Image.open(tmp_path / "a.gif")
    assert gif.n_frames == 20
    for index, frame in enumerate(frames):
        gif.seek(index)
        np.testing.assert_array_equal(np.asarray(gif.convert("RGB")), frame)


def test_render_writes_a_gif_of_the_episode(trained_controller_home, tmp_path, capsys):
    out = tmp_path / "agent.gif"
    render.main(
        [
            "--home",
            str(trained_controller_home),
            "--generation",
            "best",
            "--seed",
            "42",
            "--episode-length",
            "12",
            "--scale",
            "2",
            "--out",
            str(out),
        ]
    )
    gif = Image.open(out)
    assert gif.n_frames == 12
    assert gif.size == (3 * 64 * 2, 64 * 2 + rendering.HEADER_PIXELS)
    gif.seek(5)
    frame = np.asarray(gif.convert("RGB"))
    assert frame[rendering.HEADER_PIXELS :, :128].std() > 0  # the observation panel is not blank
    assert "12 steps" in capsys.readouterr().out


def test_every_stage_writes_tensorboard_summaries(trained_controller_home):
    home = trained_controller_home
    assert {
        "loss",
        "reconstruction_loss",
        "kl_loss",
        "kl",
        "reconstruction",
        "prior_samples",
    } <= event_tags(home / "vae-training" / "tensorboard")
    assert {"loss", "learning_rate"} <= event_tags(home / "memory-training" / "tensorboard")
    assert {
        "fitness/best",
        "fitness/mean",
        "fitness/worst",
        "sigma",
        "episodes_per_second",
        "evaluation/mean",
        "evaluation/laps_finished",
    } <= event_tags(home / "control" / "tensorboard")


def test_plots_of_losses_and_fitness(trained_controller_home, tmp_path, capsys):
    plots.main(["--home", str(trained_controller_home), "--out", str(tmp_path)])
    for name in ("vae-loss.png", "memory-loss.png", "controller-fitness.png"):
        image = Image.open(tmp_path / name)
        assert image.size == (700, 400)
    assert Image.open(tmp_path / "controller-learning-curve.png").size == (1100, 400)
    assert "controller-fitness.png" in capsys.readouterr().out


def test_plots_draw_no_run_curves_for_an_installed_agents_single_generation(tmp_path, capsys):
    from pathlib import Path

    from worldmodels.agent_archive import install_agent

    shipped = Path(__file__).resolve().parent.parent / "pretrained" / "agent.tar.gz"
    install_agent(str(shipped), tmp_path / "home")
    with pytest.raises(SystemExit, match="nothing to plot"):
        plots.main(["--home", str(tmp_path / "home"), "--out", str(tmp_path / "plots")])
    assert "not its run from generation 0" in capsys.readouterr().out
    assert not (tmp_path / "plots" / "controller-learning-curve.png").exists()


def test_core_hours_are_wall_seconds_times_workers(trained_controller_home):
    from worldmodels.control.generations import load_summary

    summaries = [load_summary(trained_controller_home, n) for n in (0, 1)]
    hours = figures.core_hours(trained_controller_home, summaries)
    # The fixture trained on 2 workers.
    np.testing.assert_allclose(
        hours[-1], (summaries[0]["seconds"] + summaries[1]["seconds"]) * 2 / 3600
    )


def test_core_hours_of_dream_generations_count_one_core(trained_controller_home):
    from worldmodels.control.generations import load_summary

    real, dreamed = (load_summary(trained_controller_home, n) for n in (0, 1))
    dreamed["dream"] = {"temperature": 1.0}
    hours = figures.core_hours(trained_controller_home, [real, dreamed])
    np.testing.assert_allclose(
        hours, np.array([2, 2]) * real["seconds"] / 3600 + [0, dreamed["seconds"] / 3600]
    )


def test_world_model_changes_are_where_v_and_m_were_retrained():
    summaries = [{}, {"world_model": "a"}, {"world_model": "a"}, {"world_model": "b"}, {}]
    assert figures.world_model_changes(summaries) == [3]
    assert figures.world_model_changes([{"world_model": "a"}] * 3) == []


def test_latent_changes_are_where_the_controller_reads_z_otherwise():
    summaries = [{"latent": latent} for latent in ("sample", "sample", "mode", "mode", "sample")]
    assert figures.latent_changes(summaries) == [2, 4]
    assert figures.latent_changes([{"latent": "sample"}] * 2) == []


def test_a_shipped_generation_s_plots_end_with_it(trained_controller_home, tmp_path):
    assert [s["generation"] for s in load_summaries(trained_controller_home)] == [0, 1]
    assert [s["generation"] for s in load_summaries(trained_controller_home, 0)] == [0]
    figures.plot_fitness(trained_controller_home, tmp_path / "fitness.png", until=0)
    assert Image.open(tmp_path / "fitness.png").size == (700, 400)
