"""pygame.gfxdraw's `aapolygon` and `filled_polygon` for many polygons in one compiled call.

CarRacing draws each visible grass square and road tile with `gfxdraw.aapolygon` then
`gfxdraw.filled_polygon` (SDL_gfx 2.0, bundled with pygame-ce); per polygon, that is two
Python calls, two surface locks and per-pixel function calls. `draw_scene` is a numba
port of the same integer algorithms, operation for operation — Cohen-Sutherland clipping in
single-precision floats, Wu's antialiased lines with their 32-bit error accumulator, the
scanline fill with its 16.16 fixed-point intersections — for opaque colours on a 32-bit
surface without per-pixel alpha, writing the same pixels in the same order. The tests check
it pixel for pixel against pygame on random polygons.
"""

from __future__ import annotations

import numba
import numpy as np

_LEFT, _RIGHT, _BOTTOM, _TOP = 1, 2, 4, 8
_U32 = 0xFFFFFFFF


@numba.njit(cache=True)
def _clip_code(x, y, right, bottom):
    code = 0
    if x < 0:
        code |= _LEFT
    elif x > right:
        code |= _RIGHT
    if y < 0:
        code |= _TOP
    elif y > bottom:
        code |= _BOTTOM
    return code


@numba.njit(cache=True)
def _clip_line(x1, y1, x2, y2, right, bottom):
    """SDL_gfx's `_clipLine` on the surface (0, 0)..(right, bottom): (draw?, x1, y1, x2, y2)."""
    while True:
        code1 = _clip_code(x1, y1, right, bottom)
        code2 = _clip_code(x2, y2, right, bottom)
        if not (code1 | code2):
            return True, x1, y1, x2, y2
        if code1 & code2:
            return False, x1, y1, x2, y2
        if not code1:
            x1, y1, x2, y2 = x2, y2, x1, y1
            code1 = code2
        if x2 != x1:
            slope = np.float32(y2 - y1) / np.float32(x2 - x1)
        else:
            slope = np.float32(1.0)
        if code1 & _LEFT:
            y1 += int(np.float32(0 - x1) * slope)
            x1 = 0
        elif code1 & _RIGHT:
            y1 += int(np.float32(right - x1) * slope)
            x1 = right
        elif code1 & _BOTTOM:
            if x2 != x1:
                x1 += int(np.float32(bottom - y1) / slope)
            y1 = bottom
        elif code1 & _TOP:
            if x2 != x1:
                x1 += int(np.float32(0 - y1) / slope)
            y1 = 0


@numba.njit(cache=True)
def _blend_channel(old, new, mask, shift, alpha):
    """One channel of SDL_gfx's `_putPixelAlpha` on 32 bits, unsigned wrap-around included."""
    difference = (((new & mask) - (old & mask)) & _U32) >> shift
    return ((old & mask) + ((((difference * alpha) & _U32) >> 8) << shift)) & mask


@numba.njit(cache=True)
def _put_pixel(pixels, x, y, color, alpha, rows):
    width = pixels.shape[1]
    if 0 <= x < width and rows[0] <= y < rows[1]:
        if alpha == 255:
            pixels[y, x] = color
        else:
            old = np.int64(pixels[y, x])
            pixels[y, x] = (
                _blend_channel(old, color, 0xFF0000, 16, alpha)
                | _blend_channel(old, color, 0xFF00, 8, alpha)
                | _blend_channel(old, color, 0xFF, 0, alpha)
            )


@numba.njit(cache=True)
def _put_weighted(pixels, x, y, color, weight, rows):
    _put_pixel(pixels, x, y, color, (255 * weight) >> 8, rows)


@numba.njit(cache=True)
def _hline(pixels, x1, x2, y, color, rows):
    width = pixels.shape[1]
    if x1 > x2:
        x1, x2 = x2, x1
    if x2 < 0 or x1 > width - 1 or y < rows[0] or y >= rows[1]:
        return
    pixels[y, max(x1, 0) : min(x2, width - 1) + 1] = color


@numba.njit(cache=True)
def _vline(pixels, x, y1, y2, color, rows):
    width = pixels.shape[1]
    if y1 > y2:
        y1, y2 = y2, y1
    if x < 0 or x > width - 1:
        return
    pixels[max(y1, rows[0]) : max(min(y2 + 1, rows[1]), rows[0]), x] = color


@numba.njit(cache=True)
def _aaline(pixels, x1, y1, x2, y2, color, rows):
    """SDL_gfx's `_aalineColor` without its endpoint, for an opaque colour."""
    height, width = pixels.shape
    inside, x1, y1, x2, y2 = _clip_line(x1, y1, x2, y2, width - 1, height - 1)
    if not inside:
        return
    xx0, yy0, xx1, yy1 = x1, y1, x2, y2
    if yy0 > yy1:
        xx0, yy0, xx1, yy1 = xx1, yy1, xx0, yy0
    dx = xx1 - xx0
    dy = yy1 - yy0
    if dx == 0:
        if dy > 0:
            _vline(pixels, x1, yy0, yy0 + dy, color, rows)
        else:
            _put_pixel(pixels, x1, y1, color, 255, rows)
        return
    if dy == 0:
        _hline(pixels, xx0, xx0 + dx, y1, color, rows)
        return
    xdir = 1
    if dx < 0:
        xdir = -1
        dx = -dx
    accumulator = 0
    _put_pixel(pixels, x1, y1, color, 255, rows)
    if dy > dx:
        step = ((dx << 16) // dy) << 16  # < 2**32: the minor step is below 1
        x_next = xx0 + xdir
        for _ in range(dy - 1):
            previous = accumulator
            accumulator = (accumulator + step) & _U32
            if accumulator <= previous:
                xx0 = x_next
                x_next += xdir
            yy0 += 1
            weight = (accumulator >> 24) & 255
            _put_weighted(pixels, xx0, yy0, color, 255 - weight, rows)
            _put_weighted(pixels, x_next, yy0, color, weight, rows)
    else:
        step = ((dy << 16) // dx) << 16
        y_next = yy0 + 1
        for _ in range(dx - 1):
            previous = accumulator
            accumulator = (accumulator + step) & _U32
            if accumulator <= previous:
                yy0 = y_next
                y_next += 1
            xx0 += xdir
            weight = (accumulator >> 24) & 255
            _put_weighted(pixels, xx0, yy0, color, 255 - weight, rows)
            _put_weighted(pixels, xx0, y_next, color, weight, rows)


@numba.njit(cache=True)
def _filled_polygon(pixels, xs, ys, color, crossings, rows):
    """SDL_gfx's `filledPolygonColorMT` for an opaque colour."""
    n = len(xs)
    top = ys.min()
    bottom = ys.max()
    # Rows outside `rows` draw nothing (hline rejects them).
    for y in range(max(top, rows[0]), min(bottom + 1, rows[1])):
        count = 0
        for i in range(n):
            previous = n - 1 if i == 0 else i - 1
            y1, y2 = ys[previous], ys[i]
            if y1 < y2:
                x1, x2 = xs[previous], xs[i]
            elif y1 > y2:
                y1, y2 = y2, y1
                x1, x2 = xs[i], xs[previous]
            else:
                continue
            if (y1 <= y < y2) or (y == bottom and y1 < y <= y2):
                crossings[count] = ((65536 * (y - y1)) // (y2 - y1)) * (x2 - x1) + 65536 * x1
                count += 1
        for i in range(1, count):  # insertion sort: at most a handful of crossings
            value = crossings[i]
            j = i - 1
            while j >= 0 and crossings[j] > value:
                crossings[j + 1] = crossings[j]
                j -= 1
            crossings[j + 1] = value
        for i in range(0, count - 1, 2):
            xa = crossings[i] + 1
            xa = (xa >> 16) + ((xa & 32768) >> 15)
            xb = crossings[i + 1] - 1
            xb = (xb >> 16) + ((xb & 32768) >> 15)
            _hline(pixels, xa, xb, y, color, rows)


@numba.njit(cache=True)
def _draw_scene(pixels, xs, ys, colors, background, rows):
    pixels[rows[0] : rows[1]] = background
    n = xs.shape[1]
    crossings = np.empty(n, np.int64)
    for k in range(xs.shape[0]):
        for i in range(n):
            j = i + 1 if i + 1 < n else 0
            _aaline(pixels, xs[k, i], ys[k, i], xs[k, j], ys[k, j], colors[k], rows)
        _filled_polygon(pixels, xs[k], ys[k], colors[k], crossings, rows)


def draw_scene(
    pixels: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    colors: np.ndarray,
    background: int,
    rows: tuple[int, int],
):
    """Fills `rows` (first, end) of `pixels` with `background`, then draws each polygon k
    there as `gfxdraw.aapolygon` then `gfxdraw.filled_polygon` would on the whole surface,
    in order. Rows outside `rows` are left as they are, so a surface can be drawn in bands.

    pixels: rows x columns uint32 view of a 32-bit surface with red, green and blue masks
    0xFF0000, 0xFF00, 0xFF and no alpha mask (`pygame.surfarray.pixels2d(surface).T`).
    xs, ys: polygons x vertices int64 screen coordinates, as pygame gets them from floats
    (truncated toward zero). colors, background: pixel values (`surface.map_rgb`).
    """
    _draw_scene(pixels, xs, ys, colors.astype(np.int64), background, rows)
