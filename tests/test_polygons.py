"""draw_scene against pygame.gfxdraw itself: every pixel, on random polygons."""

import numpy as np
import pygame
import pytest
from pygame import gfxdraw

from worldmodels.data.car_racing import _thread_surfaces  # noqa: F401  (sets up pygame headless)
from worldmodels.data.polygons import draw_scene

SIZE = (320, 240)


def random_polygons(rng, count, spread):
    """`count` quadrilaterals around points on and off a SIZE surface, `spread` px across."""
    centers = rng.uniform(-0.3, 1.3, (count, 1, 2)) * SIZE
    points = centers + rng.uniform(-spread, spread, (count, 4, 2))
    if rng.random() < 0.3:  # axis-aligned and diagonal edges: the lines' special cases
        points = np.round(points / 8) * 8
        points[:, 2] = points[:, 1] + (points[:, 1] - points[:, 0])[:, ::-1] * [1, -1]
    return points


def surfaces_with_random_pixels(rng):
    pixels = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    surfaces = []
    for _ in range(2):
        surface = pygame.Surface(SIZE)
        pygame.surfarray.blit_array(surface, pixels)
        surfaces.append(surface)
    return surfaces


@pytest.mark.parametrize("spread", [3, 40, 150, 900])
def test_equals_gfxdraw_aapolygon_then_filled_polygon_in_any_band_of_rows(spread):
    rng = np.random.default_rng(spread)
    for _ in range(40):
        expected, actual = surfaces_with_random_pixels(rng)
        before = pygame.surfarray.array3d(actual)
        points = random_polygons(rng, rng.integers(1, 6), spread)
        colors = rng.integers(0, 256, (len(points), 3))
        background = rng.integers(0, 256, 3)
        expected.fill(background.tolist())
        for polygon, color in zip(points, colors):
            gfxdraw.aapolygon(expected, polygon.tolist(), color.tolist())
            gfxdraw.filled_polygon(expected, polygon.tolist(), color.tolist())
        first, end = sorted(rng.integers(0, SIZE[1] + 1, 2))
        if rng.random() < 0.3:
            first, end = 0, SIZE[1]
        pixels = pygame.surfarray.pixels2d(actual).T
        xs, ys = (points[..., axis].astype(np.int64) for axis in (0, 1))
        mapped = np.array([actual.map_rgb(c.tolist()) for c in colors])
        draw_scene(pixels, xs, ys, mapped, actual.map_rgb(background.tolist()), (first, end))
        del pixels
        drawn = pygame.surfarray.array3d(actual)
        band = f"rows {first}..{end - 1} of polygons {points.tolist()}"
        assert np.array_equal(
            pygame.surfarray.array3d(expected)[:, first:end], drawn[:, first:end]
        ), band
        assert np.array_equal(before[:, :first], drawn[:, :first]), f"outside {band}"
        assert np.array_equal(before[:, end:], drawn[:, end:]), f"outside {band}"
