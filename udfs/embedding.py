"""Item embeddings in the job: packed vectors and the user's embedding interest.

A catalog record may carry an item's embedding (``reco.ItemFeatures.embedding``) from a
model with a version (``model_version``); items of one model share one space. The job keeps
each embedding at unit length, packed in one of two precisions:

- ``int8``: each component rounded to an integer in [-127, 127] times one scale per vector
  (the largest component / 127): a quarter of float32's bytes;
- ``float32``.

A packed vector is plain data, ``(precision, bytes, scale)``, so state holding it does not
depend on a class. The user's embedding interest is the time-decayed, weighted sum of the
embeddings of the items they consumed, decayed exactly like the tag vector
(``udfs.signals.add_interest``), kept packed in the ranker's state with its model version.
"""

from __future__ import annotations

import math

import numpy as np

PRECISIONS = ("int8", "float32")


def unit(values) -> np.ndarray:
    """``values`` at unit L2 norm, as float32 (a zero vector stays zero). The norm is taken
    in float64, where no finite float32 component overflows or vanishes."""
    v = np.asarray(values, dtype=np.float64)
    norm = float(np.linalg.norm(v))
    return (v / norm if norm > 0 else v).astype(np.float32)


def pack(v: np.ndarray, precision: str, dither: int | None = None) -> tuple:
    """``(precision, bytes, scale)`` of vector ``v``: ``unpack`` gives it back, exactly for
    float32; for int8 within scale / 2 per component, rounded to nearest, or within one
    step with ``dither``.

    ``dither`` (a seed) rounds each component up or down at random, up with probability
    its fraction: the rounding is then unbiased. A sum that is unpacked, added to and packed
    again (the taste) needs it: rounded to nearest, an addition smaller than half a step is
    lost every time, and a heavy user's taste would stop following them. The seed makes it
    deterministic: the same state and request give the same bytes."""
    if precision == "float32":
        return ("float32", np.asarray(v, dtype=np.float32).tobytes(), 1.0)
    if precision != "int8":
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    peak = float(np.abs(v).max()) if len(v) else 0.0
    scale = peak / 127.0 if peak > 0 and math.isfinite(peak) else 1.0
    # in place: a taste is packed on every request, where each temporary array costs
    x = np.divide(v, scale, dtype=np.float64)
    if dither is None:
        np.rint(x, out=x)
    else:
        x += _uniform(dither, len(x))
        np.floor(x, out=x)
    np.minimum(x, 127, out=x)
    np.maximum(x, -127, out=x)
    return ("int8", x.astype(np.int8).tobytes(), scale)


# Dithering noise: U[0, 1) numbers read from a window of a fixed table at an offset hashed
# from the seed. Each number is uniform, which is all unbiased rounding needs; the offset
# moves with every request, so one component does not meet the same noise twice in a row.
# A numpy Generator made per call, as this was before, cost more than the rest of the
# request's embedding work.
_NOISE = np.random.default_rng(0x5EED).random(1 << 16)


def _uniform(seed: int, n: int) -> np.ndarray:
    """``n`` numbers in [0, 1), a function of ``seed``."""
    at = ((seed * 0x9E3779B97F4A7C15) & 0xFFFF_FFFF_FFFF_FFFF) % (len(_NOISE) - n + 1)
    return _NOISE[at:at + n]


def unpack(packed: tuple) -> np.ndarray:
    precision, data, scale = packed
    return np.frombuffer(data, dtype=np.int8 if precision == "int8" else np.float32).astype(np.float32) * scale


def add(u: np.ndarray | None, item_vec: np.ndarray | None, weight: float, t: int, as_of: int,
        half_life_ms: float) -> np.ndarray | None:
    """The user's embedding interest after one event at event time ``t``, where ``as_of`` is
    the interest vector's time before the event: a newer event first decays the sum to
    ``t``, a late one is added decayed to ``as_of`` (as ``add_interest`` does for tags)."""
    if t > as_of and u is not None:
        u = u * np.float32(0.5 ** ((t - as_of) / half_life_ms))
    if item_vec is None or weight <= 0:
        return u
    part = item_vec * np.float32(weight * 0.5 ** (max(as_of - t, 0) / half_life_ms))
    return part if u is None else u + part
