"""Shared pieces of the typed input records: sourced figures and validation errors.

Every number in a hardware or stack profile is a :class:`Figure`: its value, whether it is a
datasheet value, a measurement, an estimate or a calibrated fit (``moebench calibrate``), and where
it comes from. Estimates and calibrated figures carry a low-high range, which the Monte Carlo
uncertainty mode samples.
"""

from __future__ import annotations

import math
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from moebench.errors import InputError

Kind = Literal["datasheet", "measured", "estimate", "calibrated"]
RANGED_KINDS = ("estimate", "calibrated")
Currency = Literal["USD", "CNY"]


class Record(BaseModel):
    """Base of every input record: frozen, unknown keys rejected, no type coercion from str."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _finite_positive(v: float | None, what: str = "value") -> float | None:
    if v is None:
        return v
    if isinstance(v, bool):
        raise ValueError(f"{what} must be a number, not a boolean")
    if not math.isfinite(v):
        raise ValueError(f"{what} must be a finite number, got {v}")
    if v <= 0:
        raise ValueError(f"{what} must be greater than zero, got {v}")
    return v


class Figure(Record):
    """A sourced number: ``{value, kind, source}``; estimates add ``low`` and ``high``."""

    value: float
    kind: Kind
    source: str = Field(min_length=3)
    low: float | None = None
    high: float | None = None
    note: str | None = None

    @field_validator("value", "low", "high", mode="before")
    @classmethod
    def _number(cls, v: Any) -> Any:
        if isinstance(v, str | bool):
            raise ValueError(f"expected a number, got {v!r}")
        return v

    @field_validator("value", "low", "high")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        return _finite_positive(v)

    @model_validator(mode="after")
    def _range(self) -> Figure:
        if self.kind in RANGED_KINDS and (self.low is None or self.high is None):
            raise ValueError(f"a figure of kind {self.kind} needs a range: add low and high")
        if (self.low is None) != (self.high is None):
            raise ValueError("give both low and high, or neither")
        if self.low is not None and self.high is not None and not (
            self.low <= self.value <= self.high
        ):
            raise ValueError(
                f"need low <= value <= high, got {self.low}, {self.value}, {self.high}"
            )
        return self


class FractionFigure(Figure):
    """A sourced fraction in (0, 1], such as an efficiency."""

    @model_validator(mode="after")
    def _fraction(self) -> FractionFigure:
        for v in (self.value, self.low, self.high):
            if v is not None and v > 1.0:
                raise ValueError(f"a fraction must be at most 1, got {v}")
        return self


class ShareFigure(Figure):
    """A sourced share in [0, 1) that may be zero (a loss, an overhead)."""

    @field_validator("value", "low", "high")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:  # overrides Figure's: zero allowed
        if v is not None and not math.isfinite(v):
            raise ValueError(f"value must be a finite number, got {v}")
        if v is not None and not 0.0 <= v < 1.0:
            raise ValueError(f"a share must be at least 0 and below 1, got {v}")
        return v


class NonNegFigure(Figure):
    """A sourced amount that may be zero (a host cost the ideal stack does not pay)."""

    @field_validator("value", "low", "high")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:  # overrides Figure's: zero allowed
        if v is not None and not math.isfinite(v):
            raise ValueError(f"value must be a finite number, got {v}")
        if v is not None and v < 0.0:
            raise ValueError(f"must be at least 0, got {v}")
        return v


def _whole(fig: Figure) -> None:
    for v in (fig.value, fig.low, fig.high):
        if v is not None and v != int(v):
            raise ValueError(f"expected a whole number, got {v}")


class CountFigure(Figure):
    """A sourced whole number above zero (a domain size, a link count)."""

    @model_validator(mode="after")
    def _whole(self) -> CountFigure:
        _whole(self)
        return self


class OpCountFigure(NonNegFigure):
    """A sourced whole number that may be zero (operations a stack dispatches)."""

    @model_validator(mode="after")
    def _whole(self) -> OpCountFigure:
        _whole(self)
        return self


class MoneyFigure(Figure):
    """A sourced price in a stated currency."""

    currency: Currency


R = TypeVar("R", bound=BaseModel)

_FRIENDLY = {
    "extra_forbidden": "unknown field (check the spelling against the documented fields)",
    "missing": "required field is missing",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected text",
    "model_type": "expected a mapping of fields",
    "dict_type": "expected a mapping of fields",
}


def _description(cls: type[BaseModel] | None, loc: tuple[Any, ...]) -> str | None:
    """The documented meaning of the field at ``loc`` in ``cls`` (None when not found)."""
    field = None
    for part in loc:
        if cls is None or not isinstance(part, str) or part not in cls.model_fields:
            return None
        field = cls.model_fields[part]
        ann = field.annotation
        cls = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return field.description if field is not None else None


def problems(exc: ValidationError, cls: type[BaseModel] | None = None) -> list[tuple[str, str]]:
    """(field path, message) for each problem pydantic found, in plain words; a missing field
    says what to add when ``cls`` documents it."""
    out = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        kind = err["type"]
        if kind in ("literal_error", "enum"):
            expected = err.get("ctx", {}).get("expected", "")
            msg = f"got {err.get('input')!r}; expected one of {expected}"
        elif kind == "value_error":
            msg = str(err.get("ctx", {}).get("error", err["msg"]))
        elif kind in _FRIENDLY:
            msg = _FRIENDLY[kind]
            if kind not in ("missing", "extra_forbidden"):
                msg += f", got {err.get('input')!r}"
            hint = _description(cls, tuple(err["loc"])) if kind == "missing" else None
            if hint:
                msg += f"; add it: {hint}"
        else:
            msg = err["msg"]
        out.append((loc or "(top level)", msg))
    return out


MAX_PROBLEMS = 8  # problems named in one error line; the rest are counted


def validate(cls: type[R], data: dict[str, Any], where: str) -> R:
    """``cls`` validated from ``data``, or one InputError naming the first bad field and, on
    the same line, every other one, so that a file is fixed in one pass."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        found = problems(exc, cls)
        field, msg = found[0]
        rest = [f"{f}: {m}" for f, m in found[1:MAX_PROBLEMS]]
        if len(found) > MAX_PROBLEMS:
            rest.append(f"and {len(found) - MAX_PROBLEMS} more")
        if rest:
            msg += f" (also {'; '.join(rest)})"
        raise InputError(where, field, msg) from None


def validation_problems(cls: type[BaseModel], data: dict[str, Any]) -> list[tuple[str, str]]:
    """Every problem with ``data`` as a ``cls``; empty when valid."""
    try:
        cls.model_validate(data)
    except ValidationError as exc:
        return problems(exc, cls)
    return []
