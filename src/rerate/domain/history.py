"""Effective-dated assignment histories, looked up in bulk.

An assignment (which tariff an account, customer or vendor uses; which customer
an account belongs to) holds from its ``valid_from`` until the next one for the
same owner (shared/RATING.md 1.1: the latest ``from <= t``).

>>> h = History.build(owners=[7, 7], starts=[0, 1000], values=[1, 2])
>>> h.lookup(np.array([7, 7, 8]), np.array([999, 1000, 5])).tolist()
[1, 2, -1]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rerate.domain.prefix_index import Int64Array

_TIME_BITS = 33  # epoch seconds up to year 2242
_TIME_MASK = (1 << _TIME_BITS) - 1


@dataclass(frozen=True)
class History:
    """Sorted ``(owner, valid_from)`` keys with the value each one sets."""

    keys: Int64Array
    values: Int64Array

    @classmethod
    def build(cls, owners: Sequence[int], starts: Sequence[int], values: Sequence[int]) -> History:
        owner_arr = np.asarray(owners, dtype=np.int64)
        start_arr = np.clip(np.asarray(starts, dtype=np.int64), 0, _TIME_MASK)
        keys = (owner_arr << _TIME_BITS) | start_arr
        order = np.argsort(keys, kind="stable")
        return cls(keys[order], np.asarray(values, dtype=np.int64)[order])

    @classmethod
    def empty(cls) -> History:
        return cls(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))

    def lookup(self, owners: Int64Array, when: Int64Array) -> Int64Array:
        """Value in force for each ``(owner, when)``; ``-1`` if none or owner < 0."""
        if len(self.keys) == 0:
            return np.full(len(owners), -1, dtype=np.int64)
        probe = (np.maximum(owners, 0) << _TIME_BITS) | np.clip(when, 0, _TIME_MASK)
        slot = np.searchsorted(self.keys, probe, side="right") - 1
        safe = np.maximum(slot, 0)
        hit = (slot >= 0) & ((self.keys[safe] >> _TIME_BITS) == owners) & (owners >= 0)
        return np.where(hit, self.values[safe], -1)
