"""One field's valid values, and the one-line error for a value outside them.

``Param`` says what a field accepts (a numeric range, open or closed at each end, or a set of choices; ``None``
where that means "off") and why. Losses use it for their hyperparameters, the config schemas for their fields, so
every bad value anywhere reads the same: ``train.learning_rate=-1 is out of range; valid: (0, inf) (why).``
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

_MISSING = object()


class ConfigError(ValueError):
    """A config value is missing, unknown, of the wrong type or out of range. The message is one line that names
    the field, the value and what is valid."""


@dataclass(frozen=True)
class Param:
    """What one field accepts, and why. ``default`` is for users' own plug-ins only: built-in parts take every
    value from the composed config."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: ``low`` itself is invalid
    high_open: bool = False
    choices: tuple | None = None
    nullable: bool = False  # None is allowed (meaning "off")
    integer: bool = False
    why: str = ""
    default: Any = _MISSING

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    def range_text(self) -> str:
        if self.choices is not None:
            text = " or ".join(repr(c) for c in self.choices)
        elif self.low is None and self.high is None:
            text = "an integer" if self.integer else "a number"
        else:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            left = "(" if self.low_open or self.low is None else "["
            right = ")" if self.high_open or self.high is None else "]"
            text = ("an integer in " if self.integer else "") + f"{left}{lo}, {hi}{right}"
        return text + (" or null" if self.nullable else "")

    def check(self, key: str, value: Any, where: str = "", error: type[Exception] = ConfigError) -> Any:
        """The value, normalized (numbers as float, or int for integer fields); raises ``error`` if invalid."""
        raw = value

        def fail(problem: str) -> Exception:
            why = f" ({self.why})" if self.why else ""
            return error(f"{where}{key}={raw!r} {problem}; valid: {self.range_text()}{why}.")

        if value is None:
            if self.nullable:
                return None
            raise fail("is not set")
        if self.choices is not None:
            if value not in self.choices:
                raise fail("is not a valid choice")
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise fail("is not a number")
        if self.integer and float(value) != int(value):
            raise fail("is not an integer")
        value = int(value) if self.integer else float(value)
        if not math.isfinite(value):
            raise fail("is out of range")
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise fail("is out of range")
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            raise fail("is out of range")
        return value


POSITIVE = Param(low=0.0, low_open=True)
NONNEGATIVE = Param(low=0.0)
PROBABILITY = Param(low=0.0, high=1.0)
COUNT = Param(low=1, integer=True)


def check_option_names(where: str, given, valid, values_in: str) -> None:
    """Every option given is known (``TypeError`` with a did-you-mean) and every known one is given (``ConfigError``
    saying where its value lives): for parts whose values all come from the composed config."""
    from bench.core.registry import did_you_mean

    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise TypeError(f"{where}: {did_you_mean('option', unknown[0], valid)}")
    missing = [k for k in valid if k not in given]
    if missing:
        raise ConfigError(f"{where}.{missing[0]} is not set; its value lives in {values_in}.")
