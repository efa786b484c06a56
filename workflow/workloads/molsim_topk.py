"""Vectorised top-K for molsim: one numpy pass per block of references, no Python per pair.

The order is molsim's ordering rule: similarity descending, then the reference's label rank
(its position in the (ref_id, library position) order, precomputed once per library).
Ties at the K-th similarity are resolved exactly: every candidate at or above that
similarity takes part in the final sort, so the result equals a full sort of all pairs.
"""

from __future__ import annotations

from collections.abc import Callable

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


def top_k_rows(sims: FloatRows, rank_of: Callable[[IntRows, IntRows], IntRows], k: int) -> IntRows:
    """Column indices of each row's first ``k`` under (similarity desc, rank asc), in order.

    ``sims`` is (rows, n) with n >= k; ``rank_of(rows, cols)`` gives the tie ranks of those
    cells, asked only for the few cells at or above each row's K-th similarity.
    """
    rows_n, n = sims.shape
    kth = np.partition(sims, n - k, axis=1)[:, n - k]
    mask = sims >= kth[:, None]
    rows, cols = np.nonzero(mask)
    order = np.lexsort((rank_of(rows, cols), -sims[rows, cols], rows))
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
    a position to its rank in the tie order, and its last entry (index ``-1``) ranks padding
    after every real reference.
    """
    k = top_sim.shape[1]
    sims = np.concatenate([top_sim, block_sim], axis=1)

    def refs_at(rows: IntRows, cols: IntRows) -> IntRows:
        in_top = cols < k
        picked: IntRows = np.where(
            in_top, top_ref[rows, np.minimum(cols, k - 1)], block_ref[np.maximum(cols - k, 0)]
        )
        return picked

    cols = top_k_rows(sims, lambda rows, cols: label_rank[refs_at(rows, cols)], k)
    rows = np.broadcast_to(np.arange(sims.shape[0])[:, None], cols.shape)
    return np.take_along_axis(sims, cols, 1), refs_at(rows, cols)
