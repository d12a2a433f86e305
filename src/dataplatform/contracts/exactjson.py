"""Exact JSON: the one decoder every stage uses for records (edge, landing, curation).

JSON numbers are read from their text as `Decimal` (a float would turn `123456789012.123456`
into `123456789012.12346`), a repeated key is an error instead of "last wins", and `NaN` /
`Infinity` are refused. Records are then validated in pydantic's Python mode: its JSON mode
reads numbers through floats (checked with pydantic 2.14).

`dumps` writes a decoded record back with the same digits (a `Decimal` is emitted as the number
text it was read from) and sorted keys, the canonical form forwarded to the sink.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel

__all__ = ["ExactJsonError", "dumps", "loads", "loads_array", "validate"]

M = TypeVar("M", bound=BaseModel)


class ExactJsonError(ValueError):
    """The text is not JSON a record may be: malformed, a repeated key, NaN or Infinity.

    Attributes:
        kind: `json_invalid` or `duplicate_key`.
        key: The repeated key, for `duplicate_key`.
    """

    def __init__(self, message: str, *, kind: str = "json_invalid", key: str | None = None):
        """Describe the problem; `kind` is the error type reported to clients."""
        super().__init__(message)
        self.kind = kind
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ExactJsonError(
                    f"the key {key!r} appears more than once in one object",
                    kind="duplicate_key",
                    key=key,
                )
            seen.add(key)
    return obj


def _constant(name: str) -> Any:
    raise ExactJsonError(f"{name} is not a JSON number")


#: Integers outside what orjson writes back (64 bits) are kept as `Decimal`, with their digits.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _integer(text: str) -> int | Decimal:
    if len(text) < 19:
        return int(text)
    value = Decimal(text)
    return int(value) if _INT_MIN <= value <= _INT_MAX else value


def _decode(data: bytes | str, objects: Callable[[list[tuple[str, Any]]], Any]) -> Any:
    try:
        return json.loads(
            data,
            parse_float=Decimal,
            parse_int=_integer,
            parse_constant=_constant,
            object_pairs_hook=objects,
        )
    except ExactJsonError:
        raise
    except UnicodeDecodeError as exc:
        raise ExactJsonError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:
        raise ExactJsonError(str(exc)) from None


def loads(data: bytes | str) -> Any:
    """Decode JSON with every non-integer number as an exact `Decimal`.

    Raises:
        ExactJsonError: Malformed JSON or not UTF-8, a key repeated within one object, `NaN`
            or `Infinity`.
    """
    return _decode(data, _object)


class _Repeated(dict[str, Any]):
    """An object with a repeated key, kept in place so one bad record spoils only itself."""

    key: str


def _repeated_key(pairs: list[tuple[str, Any]]) -> str:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return key
        seen.add(key)
    raise AssertionError("no repeated key")


def _first_repeated(value: Any) -> _Repeated | None:
    if isinstance(value, _Repeated):
        return value
    if isinstance(value, dict):
        children: Any = value.values()
    else:
        children = value if isinstance(value, list) else ()
    for child in children:
        found = _first_repeated(child)
        if found is not None:
            return found
    return None


def loads_array(data: bytes | str) -> list[Any]:
    """Decode a JSON array of records like `loads`, judging each element on its own.

    An element holding an object with a repeated key is replaced by the `ExactJsonError` that
    names the key, so a batch refuses that record only.

    Raises:
        ExactJsonError: The text is not valid JSON, NaN or Infinity appear.
        TypeError: The JSON is valid but not an array.
    """
    repeated = False

    def objects(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        repeated = True
        marked = _Repeated(obj)
        marked.key = _repeated_key(pairs)
        return marked

    value = _decode(data, objects)
    if not isinstance(value, list):
        raise TypeError(f"a JSON {type(value).__name__}, not an array")
    if repeated:
        for index, item in enumerate(value):
            found = _first_repeated(item)
            if found is not None:
                value[index] = ExactJsonError(
                    f"the key {found.key!r} appears more than once in one object",
                    kind="duplicate_key",
                    key=found.key,
                )
    return value


def _fragment(value: object) -> orjson.Fragment:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(value: Any) -> bytes:
    """Encode a value decoded by `loads`: compact, sorted keys, decimals with their digits.

    Raises:
        ExactJsonError: A string holds a lone surrogate (from a `\\ud800`-style escape).
    """
    try:
        return orjson.dumps(value, default=_fragment, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:
        raise ExactJsonError(f"cannot be written back as UTF-8 JSON: {exc}") from None


def validate(model: type[M], data: bytes | str) -> M:
    """Decode `data` with `loads` and validate it against `model` in Python mode.

    Raises:
        ExactJsonError: See `loads`.
        pydantic.ValidationError: The record breaks its contract.
    """
    return model.model_validate(loads(data))
