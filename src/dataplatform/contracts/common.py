"""Field types shared by every contract: identifiers, money, currencies and timestamps."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, WithJsonSchema

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
    Field(
        examples=["USD"],
        description="ISO 4217 alphabetic code (an active one; lower case is accepted)",
        json_schema_extra={"enum": sorted(currency_minor_units())},
    ),
]


def _as_utc(value: datetime) -> datetime:
    """Naive timestamps (as the seed's clients send them) are read as UTC; all become UTC.

    An offset that moves the instant outside years 1-9999 in UTC (`9999-12-31T23:59:59-01:00`)
    is refused: no engine of the lake can hold it.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            "timestamp is outside 0001-01-01T00:00:00Z..9999-12-31T23:59:59Z once converted to UTC"
        ) from None


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_as_utc),
    Field(description="ISO 8601; a timestamp without offset is read as UTC"),
]

#: Decimal places of money: silver stores it as `DECIMAL(18,6)`.
MONEY_DECIMAL_PLACES = 6


def _check_money_places(value: Decimal) -> Decimal:
    """Count decimals as written: `1.1000000` has 7 (pydantic's own check strips the zeros)."""
    exponent = value.as_tuple().exponent
    places = max(0, -exponent) if isinstance(exponent, int) else 0
    if places > MONEY_DECIMAL_PLACES:
        raise ValueError(
            f"has {places} decimal places; at most {MONEY_DECIMAL_PLACES} are kept exactly"
        )
    return value


#: Money written as a string, as the OpenAPI schema states it: plain digits, at most 12 before
#: the point and 6 after.
MONEY_TEXT_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,6})?$"
_PLAIN_DIGITS = re.compile(r"[0-9]+(\.[0-9]+)?")


def _check_money_text(value: object) -> object:
    """A string amount is plain digits: no sign, exponent, spaces, `NaN` or `Infinity`.

    How many digits is checked after this, with its own message.
    """
    if isinstance(value, str) and not _PLAIN_DIGITS.fullmatch(value):
        raise ValueError(
            "as a string, an amount is plain digits with an optional decimal point (e.g. '125.50')"
        )
    return value


#: Money: non-negative, at most 12 digits before the point and 6 after (as written). The
#: OpenAPI schema states the same rules, so generated clients and fuzzers send what is accepted.
Money = Annotated[
    Decimal,
    BeforeValidator(_check_money_text),
    Field(ge=0, max_digits=18, decimal_places=6),
    AfterValidator(_check_money_places),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "exclusiveMaximum": 1_000_000_000_000},
                {"type": "string", "pattern": MONEY_TEXT_PATTERN},
            ],
            "description": (
                "exact decimal, as a JSON number or a string: at most 12 digits before the "
                f"point and {MONEY_DECIMAL_PLACES} after it, as written"
            ),
            "examples": ["125.50"],
        },
        mode="validation",
    ),
]

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
