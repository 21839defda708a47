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
    #: When every owner has exactly one entry (the common case), the dense tables
    #: ``owner -> start`` and ``owner -> value`` answer with one gather.
    single_start: Int64Array | None = None
    single_value: Int64Array | None = None

    @classmethod
    def build(cls, owners: Sequence[int], starts: Sequence[int], values: Sequence[int]) -> History:
        owner_arr = np.asarray(owners, dtype=np.int64)
        start_arr = np.clip(np.asarray(starts, dtype=np.int64), 0, _TIME_MASK)
        keys = (owner_arr << _TIME_BITS) | start_arr
        order = np.argsort(keys, kind="stable")
        value_arr = np.asarray(values, dtype=np.int64)
        single_start = single_value = None
        one_each = len(owner_arr) > 0 and len(np.unique(owner_arr)) == len(owner_arr)
        if one_each and owner_arr.min() >= 0 and owner_arr.max() < 1 << 24:  # dense tables stay small
            single_start = np.full(int(owner_arr.max()) + 1, np.iinfo(np.int64).max, dtype=np.int64)
            single_value = np.full(int(owner_arr.max()) + 1, -1, dtype=np.int64)
            single_start[owner_arr] = start_arr
            single_value[owner_arr] = value_arr
        return cls(keys[order], value_arr[order], single_start, single_value)

    @classmethod
    def empty(cls) -> History:
        return cls(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))

    def lookup(self, owners: Int64Array, when: Int64Array) -> Int64Array:
        """Value in force for each ``(owner, when)``; ``-1`` if none or owner < 0."""
        if len(self.keys) == 0:
            return np.full(len(owners), -1, dtype=np.int64)
        if self.single_start is not None and self.single_value is not None:
            known = (owners >= 0) & (owners < len(self.single_start))
            slot = np.where(known, owners, 0)
            hit = known & (np.clip(when, 0, _TIME_MASK) >= self.single_start[slot])
            found: Int64Array = np.where(hit, self.single_value[slot], -1)
            return found
        probe = (np.maximum(owners, 0) << _TIME_BITS) | np.clip(when, 0, _TIME_MASK)
        slot = np.searchsorted(self.keys, probe, side="right") - 1
        safe = np.maximum(slot, 0)
        hit = (slot >= 0) & ((self.keys[safe] >> _TIME_BITS) == owners) & (owners >= 0)
        return np.where(hit, self.values[safe], -1)
