"""What users look at: the episode GIF, TensorBoard summaries and PNG training curves."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from worldmodels import figures, layout, plots
from worldmodels.control import render, rendering
from worldmodels.control.generations import MARKER, load_summaries
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


def test_core_hours_are_each_generation_s_cpu_seconds(trained_controller_home):
    from worldmodels.control.generations import load_summary

    summaries = [load_summary(trained_controller_home, n) for n in (0, 1)]
    assert all(0 < s["cpu_seconds"] and 0 < s["evaluation"]["cpu_seconds"] for s in summaries)
    hours = figures.core_hours(trained_controller_home, summaries)
    np.testing.assert_allclose(hours * 3600, np.cumsum([s["cpu_seconds"] for s in summaries]))


def test_core_hours_without_cpu_seconds_are_wall_seconds_times_workers(trained_controller_home):
    from worldmodels.control.generations import load_summary

    summaries = [load_summary(trained_controller_home, n) for n in (0, 1)]
    for summary in summaries:  # as generations recorded before 2026-12-07
        del summary["cpu_seconds"]
    hours = figures.core_hours(trained_controller_home, summaries)
    # The fixture trained on 2 workers.
    np.testing.assert_allclose(
        hours[-1], (summaries[0]["seconds"] + summaries[1]["seconds"]) * 2 / 3600
    )


def test_core_hours_of_dream_generations_without_cpu_seconds_count_one_core(
    trained_controller_home,
):
    from worldmodels.control.generations import load_summary

    real, dreamed = (load_summary(trained_controller_home, n) for n in (0, 1))
    del real["cpu_seconds"], dreamed["cpu_seconds"]
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


def fake_run(home, seconds, recipe_steps, interrupted=(), workers=2):
    """A home with complete generations of the given wall `seconds` (summaries only), a
    control/run.json on `workers` workers and, when given, a recipe.json of `recipe_steps`."""
    for number, wall in enumerate(seconds):
        folder = layout.generation(home, number)
        folder.mkdir(parents=True)
        summary = {"generation": number, "seconds": wall, "episodes": 8}
        (folder / "summary.json").write_text(json.dumps(summary))
        (folder / MARKER).write_text("")
    layout.control_run_file(home).write_text(json.dumps({"command": {"num_process": workers}}))
    if recipe_steps is not None:
        recipe = {"steps": recipe_steps, "interrupted": list(interrupted)}
        layout.recipe_record(home).write_text(json.dumps(recipe))


def test_a_pipeline_run_s_core_hours_count_every_step_before_each_generation(tmp_path):
    def step(cpu):
        return {"seconds": 1.0, "cores": 2, "cpu_seconds": cpu}

    steps = {
        "iteration 1: sample episodes with policy agent-random": {"seconds": 50.0, "cores": 2},
        "iteration 1: train the VAE on agent-random": step(200.0),
        "iteration 1: CMA-ES through generation 1": step(60.0),
        "iteration 1: CMA-ES through generation 3": step(40.0),
    }
    # The chunk through generation 3 was interrupted once (10 s) before it finished; the
    # chunk through generation 5 is running: its generation 4 counts wall x 2 workers.
    interrupted = [{"step": "iteration 1: CMA-ES through generation 3", **step(10.0)}]
    fake_run(tmp_path, [1.0, 2.0, 3.0, 1.0, 5.0], steps, interrupted)
    summaries = load_summaries(tmp_path)
    hours, counted = figures.run_core_hours(tmp_path, summaries)
    before = 50 * 2 + 200  # sampling measured no CPU time: wall x cores
    expected = [before + 20, before + 60, before + 60 + 37.5, before + 110, before + 120]
    np.testing.assert_allclose(hours * 3600, expected)
    assert counted == "the whole run"
    # Cut at generation 2, it still gets its share of the chunk it trained in, not all of it.
    np.testing.assert_allclose(figures.run_core_hours(tmp_path, summaries[:3])[0][-1] * 3600, 397.5)


def test_a_chunk_that_never_finished_counts_for_its_own_generations(tmp_path):
    """Interrupted as its last generation completed, the chunk through generation 1 never
    finished: the resumed run went on with the chunk through 3. Its try still counts, for
    generations 0 and 1, before the chunks and steps that ran after it."""
    steps = {
        "iteration 1: train the VAE on agent-random": {
            "seconds": 1.0,
            "cores": 2,
            "cpu_seconds": 200.0,
        },
        "iteration 1: CMA-ES through generation 3": {
            "seconds": 1.0,
            "cores": 2,
            "cpu_seconds": 40.0,
        },
        "iteration 2: train the VAE on agent-random, controller-2": {
            "seconds": 1.0,
            "cores": 2,
            "cpu_seconds": 100.0,
        },
        "iteration 2: CMA-ES through generation 5": {
            "seconds": 1.0,
            "cores": 2,
            "cpu_seconds": 20.0,
        },
    }
    interrupted = [
        {
            "step": "iteration 1: CMA-ES through generation 1",
            "seconds": 1.0,
            "cores": 2,
            "cpu_seconds": 30.0,
        },
        {
            "step": "iteration 2: CMA-ES through generation 5",
            "seconds": 1.0,
            "cores": 2,
            "cpu_seconds": 10.0,
        },
    ]
    fake_run(tmp_path, [1.0, 2.0, 3.0, 1.0, 1.0, 1.0], steps, interrupted)
    hours, _ = figures.run_core_hours(tmp_path, load_summaries(tmp_path))
    expected = [210, 230, 260, 270, 385, 400]  # VAE, then 30 over 1:2, 40 over 3:1; VAE, 30
    np.testing.assert_allclose(hours * 3600, expected)


def test_a_run_no_pipeline_made_counts_controller_training(tmp_path):
    fake_run(tmp_path, [1.0, 2.0], None)
    hours, counted = figures.run_core_hours(tmp_path, load_summaries(tmp_path))
    np.testing.assert_allclose(hours * 3600, [2.0, 6.0])
    assert counted == "controller training"


def test_runs_are_drawn_side_by_side(tmp_path):
    fake_run(tmp_path / "a", [1.0, 2.0], None)
    fake_run(tmp_path / "b", [1.0, 2.0], None)
    evaluation = {"mean": 100.0, "std": 10.0, "rewards": [90.0, 110.0]}
    summary_path = layout.generation(tmp_path / "a", 1) / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary_path.write_text(json.dumps({**summary, "evaluation": evaluation}))
    runs = {"a": (tmp_path / "a", None), "b": (tmp_path / "b", None)}
    assert figures.plot_learning_curves(runs, tmp_path / "runs.png")
    assert Image.open(tmp_path / "runs.png").size[0] == 1100
    assert not figures.plot_learning_curves({"b": (tmp_path / "b", None)}, tmp_path / "no.png")
