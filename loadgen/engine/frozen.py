"""Frozen dataclasses built in one step, for the objects made once per request or attempt.

A frozen dataclass's generated `__init__` sets each field through `object.__setattr__`
(~0.2 us a field); the runner makes an Attempt (37 fields), a Request, its Sizes and a
cache Prediction per simulated request. `built(cls, fields)` gives the same object
(equal, hashable, still frozen) with `fields` as its `__dict__`. The caller passes every
field, in declaration order, in a dict it keeps no reference to; the tests of each
caller check the result equals the dataclass's own (test_metrics, test_workload,
test_simulate_hot_path).
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")

_new = object.__new__
_set = object.__setattr__


def built(cls: type[T], fields: dict[str, Any]) -> T:
    """`cls(**fields)` for a frozen dataclass given all its fields, without its `__init__`."""
    obj = _new(cls)
    _set(obj, "__dict__", fields)
    return obj
