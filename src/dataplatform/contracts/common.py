"""Field types shared by every contract: identifiers, money, currencies and timestamps."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

#: Identifiers: 1-64 characters, starting with a letter or digit; no spaces or control characters.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$"

RecordId = Annotated[
    str,
    StringConstraints(pattern=ID_PATTERN, max_length=64),
    Field(examples=["FT-20240101120000-1234"]),
]


@cache
def currency_minor_units() -> dict[str, int]:
    """Return the active ISO 4217 codes mapped to their number of minor-unit digits."""
    text = resources.files(__package__).joinpath("iso4217.json").read_text(encoding="utf-8")
    table: dict[str, int] = {k: v for k, v in json.loads(text).items() if not k.startswith("_")}
    return table


def _check_currency(code: str) -> str:
    if code not in currency_minor_units():
        raise ValueError(f"'{code}' is not an active ISO 4217 currency code (e.g. USD, EUR, JPY)")
    return code


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


CurrencyCode = Annotated[
    str,
    BeforeValidator(_upper),
    StringConstraints(min_length=3, max_length=3),
    AfterValidator(_check_currency),
    Field(examples=["USD"], description="ISO 4217 alphabetic code"),
]


def _as_utc(value: datetime) -> datetime:
    """Naive timestamps (as the seed's clients send them) are read as UTC; all become UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_as_utc),
    Field(description="ISO 8601; a timestamp without offset is read as UTC"),
]

#: Money: non-negative, at most 18 digits of which at most 6 after the point.
Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=18, decimal_places=6, examples=["125.50"]),
]

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
