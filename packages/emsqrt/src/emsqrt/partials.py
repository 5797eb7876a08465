"""Partial states of the statistical aggregates: computed per row, merged exactly, finished.

Every function works on flat numpy arrays with a group id per element (``gid``, values in
``range(groups)``), so the same code merges per-row states (a batch's partial states) and
per-chunk partial states (spilled partitions, or elytra's chunks). The states, one row per
group and chunk (see the README's table):

- ``stddev_*``/``var_*``: ``(n, mean, m2)``: the count of non-NULL values, their mean and
  the sum of squared deviations from it. Merged with Chan et al.'s parallel formula in its
  k-way form: ``n = Σ nᵢ``, ``mean = Σ nᵢ·meanᵢ / n``, ``m2 = Σ m2ᵢ + Σ nᵢ·(meanᵢ - mean)²``
  (pairwise: ``δ = mean_b - mean_a``, ``m2 = m2_a + m2_b + δ²·n_a·n_b/n``; see
  ``merge_moments_pair``). No sum of squares is ever formed, so there is no catastrophic
  cancellation when the mean is large against the spread.
- ``corr(y, x)``: ``(n, mean_x, mean_y, m2_x, m2_y, c_xy)`` over the rows where both are
  non-NULL; ``c_xy`` (the co-moment) merges as ``Σ c_xyᵢ + Σ nᵢ·(mean_xᵢ - mean_x)·(mean_yᵢ -
  mean_y)``.
- ``arg_min``/``arg_max``: ``(val, arg, seq)``: the winning row's value, argument and input
  ordinal (ties go to the earliest row, as DuckDB's single-threaded scan); rows where ``arg``
  or ``val`` is NULL are skipped (DuckDB 2.0).
- ``median``/``quantile_*``: the values themselves (exact; not decomposable).

Values are DOUBLE (DuckDB casts them); NaN and infinities propagate as in DuckDB.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "extreme_winners",
    "finish_corr",
    "finish_moments",
    "lerp",
    "merge_comoments",
    "merge_moments",
    "merge_moments_pair",
    "quantile_positions",
    "sorted_groups",
]

F64 = np.float64


def _sum(gid: np.ndarray, weights: np.ndarray, groups: int) -> np.ndarray:
    # astype: bincount of no elements is int64 even with float weights
    return np.bincount(gid, weights=weights, minlength=groups)[:groups].astype(F64)


def merge_moments(
    gid: np.ndarray, groups: int, n: np.ndarray, mean: np.ndarray, m2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge ``(n, mean, m2)`` states per group (k-way Chan). Elements with ``n == 0`` may
    hold anything in ``mean``/``m2``; a group with ``n == 0`` gets mean 0 and m2 0."""
    w = n.astype(F64)
    live = n > 0
    mean = np.where(live, mean, 0.0)
    m2 = np.where(live, m2, 0.0)
    total = _sum(gid, w, groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        merged = np.where(total > 0, _sum(gid, w * mean, groups) / np.maximum(total, 1), 0.0)
        d = np.where(live, mean - merged[gid], 0.0)
        out_m2 = _sum(gid, m2, groups) + _sum(gid, w * d * d, groups)
    return total.astype(np.int64), merged, out_m2


def merge_moments_pair(
    a: tuple[int, float, float], b: tuple[int, float, float]
) -> tuple[int, float, float]:
    """Chan et al.'s pairwise merge of two ``(n, mean, m2)`` states."""
    na, ma, qa = a
    nb, mb, qb = b
    n = na + nb
    if n == 0:
        return 0, 0.0, 0.0
    if na == 0 or nb == 0:
        return b if na == 0 else a
    delta = mb - ma
    return n, ma + delta * nb / n, qa + qb + delta * delta * na * nb / n


def merge_comoments(
    gid: np.ndarray,
    groups: int,
    n: np.ndarray,
    mx: np.ndarray,
    my: np.ndarray,
    qx: np.ndarray,
    qy: np.ndarray,
    cxy: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Merge ``(n, mean_x, mean_y, m2_x, m2_y, c_xy)`` states per group."""
    total, mean_x, m2x = merge_moments(gid, groups, n, mx, qx)
    _, mean_y, m2y = merge_moments(gid, groups, n, my, qy)
    live = n > 0
    w = n.astype(F64)
    with np.errstate(invalid="ignore"):
        dx = np.where(live, np.where(live, mx, 0.0) - mean_x[gid], 0.0)
        dy = np.where(live, np.where(live, my, 0.0) - mean_y[gid], 0.0)
        c = _sum(gid, np.where(live, cxy, 0.0), groups) + _sum(gid, w * dx * dy, groups)
    return total, mean_x, mean_y, m2x, m2y, c


def finish_moments(name: str, n: np.ndarray, m2: np.ndarray) -> pa.Array:
    """DuckDB's finalizers: var_pop is m2/n (0 for one value, even NaN), var_samp m2/(n-1)
    (NULL below two values), stddev their square roots; NULL for no values."""
    nf = n.astype(F64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if name in ("var_pop", "stddev_pop"):
            value = np.where(n > 1, m2 / nf, 0.0)
            null = n == 0
        else:
            value = m2 / (nf - 1)
            null = n < 2
        if name.startswith("stddev"):
            value = np.sqrt(value)
    return pa.array(value, type=pa.float64(), mask=null)


def finish_corr(n: np.ndarray, m2x: np.ndarray, m2y: np.ndarray, cxy: np.ndarray) -> pa.Array:
    """DuckDB's corr: cov_pop / (stddev_pop(x)·stddev_pop(y)); NaN when that product is 0
    (one row, or a constant column); NULL for no rows."""
    nf = np.maximum(n, 1).astype(F64)
    with np.errstate(invalid="ignore", divide="ignore"):
        sx = np.where(n > 1, np.sqrt(m2x / nf), 0.0)
        sy = np.where(n > 1, np.sqrt(m2y / nf), 0.0)
        product = sx * sy
        value = np.where(product == 0, math.nan, (cxy / nf) / product)
    return pa.array(value, type=pa.float64(), mask=n == 0)


def _ranks(values: pa.Array) -> np.ndarray:
    """Order-preserving integer ranks of non-NULL values (equal values, -0.0 and 0.0, every
    NaN: one rank; NaN above every number, as DuckDB orders it)."""
    if pa.types.is_floating(values.type):
        values = pc.if_else(pc.is_nan(values), pa.scalar(math.nan, values.type), values)
        values = pc.add(values, pa.scalar(0.0, values.type))  # -0.0 -> 0.0
    ranks = pc.rank(values, sort_keys="ascending", tiebreaker="dense")
    return np.asarray(ranks.to_numpy(zero_copy_only=False), dtype=np.int64)


def extreme_winners(
    gid: np.ndarray, groups: int, val: pa.Array, seq: np.ndarray, *, largest: bool
) -> np.ndarray:
    """Per group, the index of the element with the smallest (``largest``: greatest) ``val``,
    the earliest ``seq`` among equals; -1 where the group has no non-NULL ``val``."""
    out = np.full(groups, -1, dtype=np.int64)
    valid = np.flatnonzero(np.asarray(pc.is_valid(val).to_numpy(zero_copy_only=False)))
    if not len(valid):
        return out
    rank = _ranks(pc.take(val, pa.array(valid)))
    key = -rank if largest else rank
    order = np.lexsort((seq[valid], key, gid[valid]))
    g = gid[valid][order]
    first = np.r_[True, g[1:] != g[:-1]]
    out[g[first]] = valid[order][first]
    return out


def sorted_groups(gid: np.ndarray, groups: int, values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The non-NULL elements' indices sorted by (group, value) (NaN last), and each group's
    count: group g's values are ``order[start[g]:start[g] + counts[g]]``."""
    valid = np.flatnonzero(np.asarray(pc.is_valid(values).to_numpy(zero_copy_only=False)))
    counts = np.bincount(gid[valid], minlength=groups)[:groups].astype(np.int64)
    if not len(valid):
        return valid, counts
    rank = _ranks(pc.take(values, pa.array(valid)))
    order = valid[np.lexsort((rank, gid[valid]))]
    return order, counts


def quantile_positions(
    counts: np.ndarray, q: float, *, discrete: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group of ``counts`` values (sorted), DuckDB's positions for quantile ``q``:
    ``(lo, hi, fraction)``; the value is ``lerp(v[lo], v[hi], fraction)``.

    quantile_disc: index ``max(1, n - floor(n - n·q)) - 1`` (DuckDB's, in doubles);
    quantile_cont: ``rn = (n - 1)·q`` between ``floor(rn)`` and ``ceil(rn)``."""
    nf = counts.astype(F64)
    if discrete:
        floored = np.floor(nf - nf * q).astype(np.int64)
        index = np.maximum(1, counts - floored) - 1
        return index, index, np.zeros(len(counts))
    rn = (nf - 1) * q
    lo = np.floor(rn)
    return lo.astype(np.int64), np.ceil(rn).astype(np.int64), rn - lo


def lerp(lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
    """C++ ``std::lerp`` (exact at the ends, no overflow between values of opposite signs);
    DuckDB's interpolation agrees with it to the last bit or two."""
    with np.errstate(invalid="ignore", over="ignore"):
        opposite = ((lo <= 0) & (hi >= 0)) | ((lo >= 0) & (hi <= 0))
        inner = lo + t * (hi - lo)
        inner = np.where(hi > lo, np.minimum(hi, inner), np.maximum(hi, inner))
        return np.where(t == 0, lo, np.where(opposite, t * hi + (1 - t) * lo, inner))
