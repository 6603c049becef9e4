"""A window's predictions counted into the reference's bins and categories, a batch at a time:
memory holds the counts and one batch, whatever the window's size. numpy is imported lazily."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any

from bot.domain.monitoring.reference import (
    PREDICTION,
    CategoricalProfile,
    NumericProfile,
    Profile,
    Reference,
    category,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

NUMBER_TYPES = frozenset({int, float, type(None)})


def columns(profile: Profile) -> list[str]:
    """The labels of a profile's count columns, in the order counts are kept."""
    if isinstance(profile, NumericProfile):
        bins = [f"<= {e:.4g}" for e in profile.edges] + [
            f"> {profile.edges[-1]:.4g}" if profile.edges else "all"
        ]
        return [*bins, "missing"]
    return [*profile.counts, "other", "missing"]


def reference_counts(profile: Profile) -> list[int]:
    """The reference's counts in the column order of ``columns``."""
    if isinstance(profile, NumericProfile):
        return [*profile.counts, profile.missing]
    return [*profile.counts.values(), profile.other, profile.missing]


class Tally:
    """One profile's window counts; ``invalid`` counts values of the wrong type (also missing)."""

    def __init__(self, profile: Profile) -> None:
        import numpy as np

        self.profile = profile
        self.counts: npt.NDArray[np.int64] = np.zeros(len(reference_counts(profile)), np.int64)
        self.invalid = 0
        if isinstance(profile, CategoricalProfile):
            self.index = {name: i for i, name in enumerate(profile.counts)}

    def add(self, values: Sequence[Any]) -> None:
        if isinstance(self.profile, NumericProfile):
            self._numbers(values, self.profile.edges)
        else:
            self._categories(values)

    def _numbers(self, values: Sequence[Any], edges: tuple[float, ...]) -> None:
        import numpy as np

        if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
            array = values.astype(np.float64, copy=False)
        elif set(map(type, values)) <= NUMBER_TYPES:
            array = np.array(values, dtype=np.float64)  # None -> nan
        else:
            array = np.array([_number(v) for v in values], dtype=np.float64)
            self.invalid += sum(1 for v in values if v is not None and math.isnan(_number(v)))
        present = array[~np.isnan(array)]
        self.counts[-1] += array.size - present.size
        bins = np.searchsorted(np.asarray(edges, dtype=np.float64), present, side="left")
        self.counts[:-1] += np.bincount(bins, minlength=len(edges) + 1)

    def _categories(self, values: Sequence[Any]) -> None:
        try:
            counted = Counter(values)
        except TypeError:  # lists or objects where a category was expected
            counted = Counter(v if _hashable(v) else _Invalid for v in values)
        other, missing = len(self.counts) - 2, len(self.counts) - 1
        for value, n in counted.items():
            if value is _Invalid:
                self.invalid += n
                self.counts[missing] += n
                continue
            key = category(value)
            self.counts[missing if key is None else self.index.get(key, other)] += n


class _Invalid:
    """Marks a value that cannot be a category."""


def _hashable(value: object) -> bool:
    return not isinstance(value, list | dict)


def _number(value: object) -> float:
    if type(value) in (int, float):
        return float(value)  # type: ignore[arg-type]
    return math.nan


class WindowCounts:
    """Every profile's tally for one window, fed batch by batch."""

    def __init__(self, reference: Reference) -> None:
        self.reference = reference
        self.rows = 0
        self.tallies = {name: Tally(p) for name, p in reference.profiles().items()}

    def add_columns(self, rows: int, values: Mapping[str, Sequence[Any]]) -> None:
        """Column-wise (a data frame's columns, numpy arrays); absent columns count as missing."""
        self.rows += rows
        for name, tally in self.tallies.items():
            tally.add(values[name] if name in values else [None] * rows)

    def add(self, features: Sequence[dict[str, Any]], predictions: Sequence[Any]) -> None:
        self.rows += len(features)
        for name, tally in self.tallies.items():
            if name == PREDICTION:
                tally.add(predictions)
            else:
                tally.add(list(map(dict.get, features, repeat(name))))

    def merge(self, other: WindowCounts) -> None:
        """Adds another window's counts (one object's, read on its own) to these."""
        self.rows += other.rows
        for name, tally in self.tallies.items():
            tally.counts += other.tallies[name].counts
            tally.invalid += other.tallies[name].invalid

    def invalid(self) -> dict[str, int]:
        return {name: t.invalid for name, t in self.tallies.items() if t.invalid}
