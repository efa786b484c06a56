"""Vectorised top-K for molsim: one numpy pass per block of references, no Python per pair.

The order is molsim's ``rank_key``: similarity descending, then the reference's label rank
(its position in the (ref_id, library position) order, precomputed once per library).
Ties at the K-th similarity are resolved exactly: every candidate at or above that
similarity takes part in the final sort, so the result equals a full sort of all pairs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatRows = npt.NDArray[np.float64]
IntRows = npt.NDArray[np.int64]

# Padding of a running top-K that has fewer than K real hits: ranks after every real hit.
NO_SIMILARITY = -np.inf
NO_REF = -1


def empty_tops(n_queries: int, k: int) -> tuple[FloatRows, IntRows]:
    """A running top-K with no hit yet: similarities ``-inf``, reference ``-1``."""
    return np.full((n_queries, k), NO_SIMILARITY), np.full((n_queries, k), NO_REF, np.int64)


def top_k_rows(sims: FloatRows, ranks: IntRows, k: int) -> IntRows:
    """Column indices of each row's first ``k`` under (similarity desc, rank asc), in order.

    ``sims`` and ``ranks`` are (rows, n) with n >= k. Rows keep exactly ``k`` columns.
    """
    rows_n, n = sims.shape
    if n == k:
        whole: IntRows = np.lexsort((ranks, -sims), axis=-1).astype(np.int64)
        return whole
    kth = np.partition(sims, n - k, axis=1)[:, n - k]
    mask = sims >= kth[:, None]
    rows, cols = np.nonzero(mask)
    order = np.lexsort((ranks[rows, cols], -sims[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    counts = np.count_nonzero(mask, axis=1)
    starts = np.cumsum(counts) - counts
    keep = (np.arange(rows.size) - starts[rows]) < k
    chosen: IntRows = cols[keep].reshape(rows_n, k).astype(np.int64)
    return chosen


def merge_block(
    top_sim: FloatRows,
    top_ref: IntRows,
    block_sim: FloatRows,
    block_ref: IntRows,
    label_rank: IntRows,
) -> tuple[FloatRows, IntRows]:
    """Fold a block (rows: queries, columns: references ``block_ref``) into the running top-K.

    ``top_ref``/``block_ref`` hold library positions (``-1`` = padding); ``label_rank`` maps
    a position to its rank in the tie order (padding maps past every real reference).
    """
    k = top_sim.shape[1]
    sims = np.concatenate([top_sim, block_sim], axis=1)
    refs = np.concatenate([top_ref, np.broadcast_to(block_ref, block_sim.shape)], axis=1)
    ranks = np.where(refs >= 0, label_rank[refs], label_rank.size)
    cols = top_k_rows(sims, ranks, k)
    return np.take_along_axis(sims, cols, 1), np.take_along_axis(refs, cols, 1)
