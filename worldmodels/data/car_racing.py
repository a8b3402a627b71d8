"""CarRacing with the paper's observation preprocessing, headless, and a faster twin.

gymnasium draws CarRacing's observation off-screen with pygame, so no display (and no xvfb)
is needed. `env.render()` is never called: the observation is all the agent sees.
`FastCarRacing` (registered as "worldmodels/FastCarRacing-v3") gives observations, rewards
and terminations identical to stock `CarRacing-v3` for a fraction of the cost per step.
"""

from __future__ import annotations

import os
import threading

# Set before pygame is first imported (by gymnasium's CarRacing): no banner, no display.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
import pygame  # noqa: E402
from gymnasium.envs.box2d import car_racing as stock  # noqa: E402
from PIL import Image  # noqa: E402
from pygame.math import Vector2  # noqa: E402

from worldmodels.data.polygons import draw_scene  # noqa: E402
from worldmodels.params import EnvParams  # noqa: E402

# The surfaces FastCarRacing draws on: every step repaints what it reads of them, so envs
# stepped in turn can share them, and a worker's 16 envs touch 3.2 MB of canvas a step instead
# of 51 MB. One set per thread, so as not to add a hazard of its own; CarRacing, stock or fast,
# draws wrong frames when stepped from two threads at once anyway (pygame's drawing is not
# thread-safe).
_surfaces = threading.local()

# The paper's preprocessing; the VAE's input shape follows from it, so it is not a setting.
CROP_ROWS = 84  # keep rows 0..83 of the 96x96 frame: drops the indicator bar
FRAME_SIZE = 64  # observations are 64 x 64 x 3 uint8
FAST_ENV_ID = "worldmodels/FastCarRacing-v3"
ENV_IDS = {"fast": FAST_ENV_ID, "stock": "CarRacing-v3"}


def preprocess_frame(
    frame: np.ndarray, crop_rows: int = CROP_ROWS, frame_size: int = FRAME_SIZE
) -> np.ndarray:
    """96x96x3 uint8 frame -> frame_size x frame_size x 3 uint8.

    Keeps rows 0..crop_rows-1 (drops the indicator bar) and resizes with PIL bilinear: the
    write-up's first agent was trained on blocky frames from a different filter.
    """
    cropped = Image.fromarray(np.ascontiguousarray(frame[:crop_rows]))
    return np.asarray(cropped.resize((frame_size, frame_size), Image.Resampling.BILINEAR))


class PreprocessObservation(gymnasium.ObservationWrapper):
    """Returns preprocessed uint8 observations; scaling to [0, 1] is left to the networks."""

    def __init__(
        self, env: gymnasium.Env, crop_rows: int = CROP_ROWS, frame_size: int = FRAME_SIZE
    ):
        super().__init__(env)
        self.crop_rows = crop_rows
        self.frame_size = frame_size
        self.observation_space = gymnasium.spaces.Box(
            low=0, high=255, shape=(frame_size, frame_size, 3), dtype=np.uint8
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return preprocess_frame(observation, self.crop_rows, self.frame_size)


def make_env(params: EnvParams = EnvParams()) -> gymnasium.Env:
    """CarRacing (`params.env`: "fast" or "stock") truncated at `params.episode_length` steps,
    with preprocessed observations."""
    if params.env not in ENV_IDS:
        raise ValueError(f"env must be one of {sorted(ENV_IDS)}, got {params.env!r}")
    env = gymnasium.make(ENV_IDS[params.env], max_episode_steps=params.episode_length)
    return PreprocessObservation(env)


def _static_polygons() -> np.ndarray:
    """The playfield and the 400 grass squares stock CarRacing draws, 401 x 4 x 2, in its
    drawing order and vertex order."""
    bound = stock.PLAYFIELD
    field = [[(bound, bound), (bound, -bound), (-bound, -bound), (-bound, bound)]]
    cells = np.arange(-20, 20, 2, dtype=np.float64)
    x, y = (a.ravel() for a in np.meshgrid(cells, cells, indexing="ij"))
    left, bottom = stock.GRASS_DIM * x, stock.GRASS_DIM * y
    right, top = left + stock.GRASS_DIM, bottom + stock.GRASS_DIM
    grass = np.stack(
        [
            np.stack([right, bottom], -1),
            np.stack([left, bottom], -1),
            np.stack([left, top], -1),
            np.stack([right, top], -1),
        ],
        axis=1,
    )
    return np.concatenate([np.array(field, np.float64), grass])


class FastCarRacing(stock.CarRacing):
    """gymnasium's CarRacing with the same physics and pixels, drawn for a fraction of the cost.

    Stock CarRacing rotates, scales and bounds-checks each of ~800 grass and road polygons one
    vertex at a time in Python every step, and draws ~75 of them, most entirely off screen.
    This class does that arithmetic for all vertices at once with numpy — the same
    floating-point operations in the same order, so every vertex lands on exactly the same
    coordinates — and draws the polygons that can be seen, in the same order, with a compiled
    port of pygame's own polygon code (`polygons.draw_scene`). It also reuses the canvas, the
    font and the rendered score.
    """

    _STATIC_POLYGONS = _static_polygons()
    _GRASS_COUNT = len(_STATIC_POLYGONS) - 1

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._scene = None
        self._car_radii = None
        self._font = None
        self._score = (None, None)

    def _render(self, mode: str):
        """Stock `_render` for observations; other render modes are left to the stock method.

        Stock draws the scene on a fresh 1000x800 surface, flips it upside down (a 3.2 MB copy),
        draws the indicator bar over its bottom 100 rows and smoothscales it to 96x96, reading
        the whole canvas back from memory. Smoothscale filters columns first, each row on its
        own, so here the scene is drawn and its columns filtered band by band while the band
        is in the CPU's cache (the car's band last, with the car), and only the 96-wide
        result is flipped: the same integers. The scene's rows under the bar are never drawn.
        """
        if mode != "state_pixels" or "t" not in self.__dict__:
            return super()._render(mode)
        if self._font is None:
            pygame.font.init()
            self._font = pygame.font.Font(pygame.font.get_default_font(), 42)
        surfaces = _thread_surfaces()
        canvas = surfaces.canvas
        self.surf = canvas
        angle = -self.car.hull.angle
        zoom = 0.1 * stock.SCALE * max(1 - self.t, 0) + stock.ZOOM * stock.SCALE * min(self.t, 1)
        scroll_x = -(self.car.hull.position[0]) * zoom
        scroll_y = -(self.car.hull.position[1]) * zoom
        translation = Vector2((scroll_x, scroll_y)).rotate_rad(angle)
        translation = (stock.WINDOW_W / 2 + translation[0], stock.WINDOW_H / 4 + translation[1])
        scene = self._visible_scene(zoom, translation, angle)
        size = (stock.STATE_W, stock.STATE_H)
        if not self._indicators_stay_in_bar():
            # Stock's steps as they are: the indicators reach up into the scene.
            _draw_band(canvas, scene, _SCENE.top, _SCENE.bottom)
            self.car.draw(canvas, zoom, translation, angle, False)
            self.surf = pygame.transform.flip(canvas, False, True)
            self._render_stats()
            image = _image_array(pygame.transform.smoothscale(self.surf, size))
            self.surf = canvas  # free the flipped copy now rather than keep one per env
            return image
        bands = _BANDS if self._car_fits_its_band(zoom) else [(_SCENE.top, _SCENE.bottom)]
        for first, end in bands:
            _draw_band(canvas, scene, first, end)
            if first == bands[-1][0]:
                self.car.draw(canvas, zoom, translation, angle, False)
            band = canvas.subsurface((0, first, stock.WINDOW_W, end - first))
            band = pygame.transform.smoothscale(band, (stock.STATE_W, end - first))
            surfaces.columns.blit(pygame.transform.flip(band, False, True), (0, _FLIPPED - end))
        # The scene is read: draw the bar where stock draws it, in rows of the canvas that
        # lie under the bar in the flipped frame, and filter its columns in turn.
        self._render_stats()
        pygame.transform.smoothscale(canvas.subsurface(_BAR), _BAR_COLUMNS, surfaces.bar)
        surfaces.columns.blit(surfaces.bar, (0, _BAR_TOP))
        return _image_array(pygame.transform.smoothscale(surfaces.columns, size))

    def _render_stats(self):
        """Stock's indicator bar and score on `self.surf`, in the flipped frame's coordinates."""
        self._render_indicators(stock.WINDOW_W, stock.WINDOW_H)
        score = f"{self.reward:04.0f}"
        if self._score[0] != score:
            self._score = (score, self._font.render(score, True, (255, 255, 255), (0, 0, 0)))
        text = self._score[1]
        text_rect = text.get_rect()
        text_rect.center = (60, stock.WINDOW_H - stock.WINDOW_H * 2.5 / 40.0)
        self.surf.blit(text, text_rect)

    def _indicators_stay_in_bar(self) -> bool:
        """Whether stock's vertical indicators stay inside the bar.

        Speed and the four wheels' spin are bars rising from row 780 of the frame by 20 px a
        unit (0.02 per speed unit, 0.01 per rad/s); past 4 units (a speed over 200 or a wheel
        spinning over 400 rad/s) they reach above the bar's top row into the scene. The
        horizontal indicators always lie inside the bar.
        """
        velocity = self.car.hull.linearVelocity
        speed = np.sqrt(np.square(velocity[0]) + np.square(velocity[1]))
        spin = max(wheel.omega for wheel in self.car.wheels)
        return max(0.02 * speed, 0.01 * spin) < _INDICATOR_UNITS_IN_BAR

    def reset(self, *args, **kwargs):
        self._scene = None  # a new track, maybe new colours
        self._car_radii = None  # a new car
        return super().reset(*args, **kwargs)

    def _visible_scene(self, zoom, translation, angle) -> tuple:
        """What stock's `_render_road` draws that can be seen, for `_draw_band`: the
        background pixel and the polygons' int64 x and y (polygon x vertex) and pixels."""
        # pygame's own rotation of the unit vector gives exactly the cos and sin it uses.
        cos_angle, sin_angle = Vector2(1.0, 0.0).rotate_rad(angle)
        scene_x, scene_y, colors = self._scene_polygons()
        screen_x, screen_y = _to_screen(scene_x, scene_y, zoom, translation, cos_angle, sin_angle)
        field = list(zip(screen_x[:, 0].tolist(), screen_y[:, 0].tolist()))
        drawn = _drawn_polygons(screen_x, screen_y)
        if _covers_screen(field):
            # The field polygon would paint every pixel: filling the screen is the same image.
            background = colors[0]
        else:
            background = 0  # black, then the field
            drawn = np.concatenate([[0], drawn])
        # Tiles take the road's colour once visited, so theirs are read at every step.
        road = drawn > self._GRASS_COUNT
        colors = colors[drawn]
        colors[road] = [
            _map_rgb(self.road_poly[index][1]) for index in drawn[road] - self._GRASS_COUNT - 1
        ]
        # pygame turns float coordinates into pixels by truncating them toward zero.
        xs = screen_x[:, drawn].T.astype(np.int64)
        ys = screen_y[:, drawn].T.astype(np.int64)
        return background, xs, ys, colors

    def _car_fits_its_band(self, zoom: float) -> bool:
        """Whether every shape the car draws lies inside the car's band: the hull's centre is
        drawn at row WINDOW_H / 4, the middle of the band, and the shapes reach from it at
        most as far as each body's centre plus its farthest vertex."""
        if self._car_radii is None:
            self._car_radii = [
                max(Vector2(v).length() for f in body.fixtures for v in f.shape.vertices)
                for body in self.car.drawlist
            ]
        hull = self.car.hull.position
        reach = max(
            (body.position - hull).length + radius
            for body, radius in zip(self.car.drawlist, self._car_radii)
        )
        return reach * zoom + 2 < _CAR_BAND_HALF_HEIGHT

    def _scene_polygons(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x and y (each 4 x N, vertex by polygon) of the field, the grass, then the road and
        curbs, in stock's drawing order, and the field's and grass's colours as canvas pixels
        (the road's are read when drawn); built once a track."""
        if self._scene is None:
            road = np.array([polygon for polygon, _ in self.road_poly], np.float64).reshape(
                -1, 4, 2
            )
            polygons = np.concatenate([self._STATIC_POLYGONS, road])
            colors = np.zeros(len(polygons), np.int64)
            colors[0] = _map_rgb(self.bg_color)
            colors[1 : self._GRASS_COUNT + 1] = _map_rgb(self.grass_color)
            self._scene = (
                np.ascontiguousarray(polygons[..., 0].T),
                np.ascontiguousarray(polygons[..., 1].T),
                colors,
            )
        return self._scene


# Stock's indicator bar covers the frame's bottom eighth (rows 700..799 after the flip): the
# canvas's rows 0..99 lie under it, so the scene there is never seen.
_BAR_TOP = stock.WINDOW_H - 5 * stock.WINDOW_H // 40
_SCENE = pygame.Rect(0, stock.WINDOW_H - _BAR_TOP, stock.WINDOW_W, _BAR_TOP)
_BAR = pygame.Rect(0, _BAR_TOP, stock.WINDOW_W, stock.WINDOW_H - _BAR_TOP)
_BAR_COLUMNS = (stock.STATE_W, stock.WINDOW_H - _BAR_TOP)
_FLIPPED = stock.WINDOW_H  # canvas row r is row _FLIPPED - 1 - r of the frame
# The scene is drawn and its columns filtered in bands of rows (of the unflipped canvas) of
# at most 1 MB, which stay in a core's 2 MB L2 cache between drawing and filtering. The car
# is drawn at row WINDOW_H / 4 = 200, in the middle of the last band.
_CAR_BAND_HALF_HEIGHT = 100
_CAR_ROW = stock.WINDOW_H // 4
_BANDS = [
    (300, 550),
    (550, 800),
    (_CAR_ROW - _CAR_BAND_HALF_HEIGHT, _CAR_ROW + _CAR_BAND_HALF_HEIGHT),
]
# The vertical indicators' height in units at which their top reaches the bar's top row
# (4.0), less a margin for rounding to pixels.
_INDICATOR_UNITS_IN_BAR = 3.9
# The canvas's pixel format (xRGB, 32 bits), which `draw_scene` writes and `_map_rgb` makes.
_CANVAS_MASKS = (0xFF0000, 0xFF00, 0xFF, 0)


def _thread_surfaces() -> threading.local:
    """This thread's surfaces, made at their first use: `canvas` (1000x800, the scene,
    unflipped), `columns` (96x800, the flipped frame with its columns filtered) and `bar`
    (96x100, the bar with its columns filtered)."""
    if not hasattr(_surfaces, "canvas"):
        canvas = pygame.Surface((stock.WINDOW_W, stock.WINDOW_H))
        if canvas.get_masks() != _CANVAS_MASKS:
            raise RuntimeError(
                f"FastCarRacing draws on 32-bit RGB surfaces with masks {_CANVAS_MASKS}; "
                f"pygame made one with {canvas.get_masks()}"
            )
        _surfaces.canvas = canvas
        _surfaces.columns = pygame.Surface((stock.STATE_W, stock.WINDOW_H))
        _surfaces.bar = pygame.Surface(_BAR_COLUMNS)
    return _surfaces


def _draw_band(canvas: pygame.Surface, scene: tuple, first: int, end: int):
    """Draws rows first..end-1 of the scene (`FastCarRacing._visible_scene`) on the canvas."""
    background, xs, ys, colors = scene
    pixels = pygame.surfarray.pixels2d(canvas).T
    draw_scene(pixels, xs, ys, colors, background, (first, end))
    del pixels  # unlocks the canvas


def _map_rgb(color) -> int:
    """An RGB colour (floats are truncated, as pygame does) as a canvas pixel."""
    red, green, blue = (int(c) for c in color)
    return (red << 16) | (green << 8) | blue


def _image_array(surface: pygame.Surface) -> np.ndarray:
    """Stock's image of a surface (height x width x 3 uint8), C-contiguous: stock returns a
    transposed view of a column-major copy, which the preprocessing's crop then copies once
    more, cache-unfriendly, every step."""
    width, height = surface.get_size()
    pixels = np.frombuffer(pygame.image.tobytes(surface, "RGB"), np.uint8)
    return pixels.reshape(height, width, 3).copy()  # writable, as stock's is


def _to_screen(x, y, zoom, translation, cos_angle, sin_angle) -> tuple[np.ndarray, np.ndarray]:
    """World coordinates -> screen pixels, the arithmetic of stock CarRacing's
    `_draw_colored_polygon` (rotate, scale, translate) operation for operation."""
    screen_x = (x * cos_angle - y * sin_angle) * zoom + translation[0]
    screen_y = (x * sin_angle + y * cos_angle) * zoom + translation[1]
    return screen_x, screen_y


def _drawn_polygons(screen_x: np.ndarray, screen_y: np.ndarray) -> np.ndarray:
    """Indices, after the field (index 0), of the polygons (4 x N screen coordinates) that
    stock CarRacing draws and that touch the visible scene.

    Stock draws a polygon when a vertex lies in the screen grown by MAX_SHAPE_DIM (~380 px on
    each side), so most polygons it draws are entirely off screen or under the indicator bar
    and change no pixel anyone sees; those are skipped here (a 2 px margin covers
    antialiasing and rounding to integer pixels).
    """
    margin = stock.MAX_SHAPE_DIM
    vertex_in_margin = (
        (screen_x >= -margin)
        & (screen_x <= stock.WINDOW_W + margin)
        & (screen_y >= -margin)
        & (screen_y <= stock.WINDOW_H + margin)
    )
    touches_screen = (
        (screen_x.max(axis=0) >= -2.0)
        & (screen_x.min(axis=0) <= stock.WINDOW_W + 2.0)
        & (screen_y.max(axis=0) >= _SCENE.top - 2.0)
        & (screen_y.min(axis=0) <= stock.WINDOW_H + 2.0)
    )
    visible = vertex_in_margin.any(axis=0) & touches_screen
    visible[0] = False
    return np.flatnonzero(visible)


def _covers_screen(quad: list, margin: float = 2.0) -> bool:
    """Whether a convex quadrilateral (4 screen points) contains the whole screen with a margin."""
    corners = [
        (-margin, -margin),
        (stock.WINDOW_W + margin, -margin),
        (stock.WINDOW_W + margin, stock.WINDOW_H + margin),
        (-margin, stock.WINDOW_H + margin),
    ]
    signs = set()
    for (x0, y0), (x1, y1) in zip(quad, quad[1:] + quad[:1]):
        for cx, cy in corners:
            cross = (x1 - x0) * (cy - y0) - (y1 - y0) * (cx - x0)
            signs.add(cross > 0 if cross != 0 else None)
    return signs == {True} or signs == {False}


if FAST_ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=FAST_ENV_ID,
        entry_point="worldmodels.data.car_racing:FastCarRacing",
        max_episode_steps=1000,
        reward_threshold=900,
    )
