"""The contract check as Spark SQL expressions, generated from the pydantic contracts.

Landing judges every Kafka record against its contract. Running the pydantic model in a Python
UDF costs 0.45-0.85 s a micro-batch (docs/BENCHMARKS.md), most of it moving rows to Python and
back; these expressions let the JVM judge the ordinary records instead, and route only those it
cannot judge exactly as the contract would to the Python check (`transforms.check_record`).
Landing does not use them yet: they measured slower than the UDF (docs/BENCHMARKS.md, third and
fourth sittings). On landing's plan the generated code compiles, but each row costs about as
much as the UDF's: three regular expressions scan the whole payload, and the generated methods
are larger than the 8,000 bytes HotSpot compiles, so they run in the bytecode interpreter. (A
filter on the verdict, such as counting decided rows, lets the optimizer inline every step into
one expression whose code exceeds the JVM's 64 KB method limit; Spark then retries the compile
on every query.)

What the JVM judges: a UTF-8 payload that is one flat JSON object, in the grammar below (keys of
letters, digits and `_`; values a string without escapes or control characters, a number
without exponent, `true`, `false` or `null`), with no repeated key. Its fields are read from the
text (every key is unique and no string holds a quote, so a key is found by its text). Then,
field by field and in the contract's order, as pydantic reports them, then the extra keys in
the order they appear:

* identifiers (`RecordId`): a string, at most the contract's length, matching its pattern;
* money (`Money`): plain digits with at most the contract's digits before and after the point
  and at most 15 significant digits, as a number or a string; a negative amount is refused;
* currencies (`CurrencyCode`): three ASCII characters, upper-cased, in the ISO 4217 table;
* enumerations (`Literal`): one of the values;
* timestamps (`UtcDatetime`): `YYYY-MM-DDTHH:MM:SS[.ffffff][Z|+HH:MM]` with a real calendar
  date, years 0002-9998 (an offset cannot move it out of range in UTC);
* short texts (`ShortText`): a string whose first and last characters are printable ASCII
  (so stripping whitespace changes nothing), of the contract's length;
* required fields present, optional ones null or absent; the key field equal to the Kafka key.

Everything else is undecided and goes to Python: malformed or nested JSON, escapes, exponents,
more than 15 significant digits, leading zeros in an amount string, a repeated key, unusual
keys, timestamps of another shape or as numbers, a key that does not match the Kafka key (its
reason quotes both in Python's `repr`), a payload that is not UTF-8, and every field of a type
this module does not know. The JVM never rounds: amounts are only matched as text. Each reason
it gives is the text pydantic gives, built from the same contract metadata; the parity test
(tests/unit/test_contract_sql.py) compares both paths on a corpus of good and bad records.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from dataclasses import dataclass
from types import NoneType, UnionType
from typing import Any, Literal, Union

from pydantic import BaseModel, StringConstraints
from pydantic.fields import FieldInfo
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from dataplatform.contracts import Entity, common

#: JSON whitespace (`\s` in Java also matches vertical tab and form feed, which JSON refuses).
_WS = r"[ \t\n\r]*+"
#: A key the JVM reads: no quote or escape can hide in it, nor in the text between two keys.
_KEY = r'"[A-Za-z0-9_]*+"'
#: A string without escapes or control characters: its content is its text.
_STRING = r'"[^"\\\x00-\x1f]*+"'
#: A JSON number without exponent (Python reads exponents differently: they go to Python).
_NUMBER = r"-?+(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+"
_VALUE = rf"(?:{_STRING}|{_NUMBER}|true|false|null)"
_MEMBER = rf"{_KEY}{_WS}:{_WS}{_VALUE}"
#: One flat JSON object, nothing before or after it but whitespace.
FLAT_OBJECT = rf"\A{_WS}\{{{_WS}(?:{_MEMBER}(?:{_WS},{_WS}{_MEMBER})*+)?+{_WS}\}}{_WS}\z"

#: Significant digits an amount may have for the JVM to judge it (the rest go to Python).
MAX_JVM_SIGNIFICANT_DIGITS = 15
#: Years the JVM judges: no offset can move a timestamp in them outside years 1-9999 in UTC.
_JVM_YEARS = (2, 9998)
#: Where the year, month and day are in a timestamp of that shape (1-based, length).
_DATE_PARTS = ((1, 4), (6, 2), (9, 2))
_TIMESTAMP = (
    r"\A([0-9]{4})-([0-9]{2})-([0-9]{2})T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?\z"
)

_FIELD_REQUIRED = "Field required"
_NOT_STRING = "Input should be a valid string"
_NOT_DATETIME = "Input should be a valid datetime"
_NOT_DECIMAL = "Decimal input should be an integer, float, string or Decimal object"
_NEGATIVE = "Input should be greater than or equal to 0"
_EXTRA = "Extra inputs are not permitted"


class UnsupportedContractError(TypeError):
    """The contract has a field type or validator the JVM check does not know."""


#: A field verdict that means "the JVM cannot judge this": a text no reason can be (JSON
#: strings the JVM reads hold no control character). Verdicts are plain strings, not structs,
#: to keep Spark's generated code under the JVM's 64 KB method limit.
_UNDECIDED_MARK = "\u0000"


@dataclass(frozen=True)
class Verdict:
    """A field's judgement: its reason (null: valid) or `_UNDECIDED_MARK`."""

    value: Column


@dataclass(frozen=True)
class Token:
    """A field's JSON value as text: `raw` is '' when the key is absent."""

    raw: Column

    @property
    def absent(self) -> Column:
        """The key is not in the record."""
        return self.raw == ""

    @property
    def is_null(self) -> Column:
        """The value is JSON `null`."""
        return self.raw == "null"

    @property
    def is_string(self) -> Column:
        """The value is a JSON string."""
        return self.raw.startswith('"')

    @property
    def is_bool(self) -> Column:
        """The value is `true` or `false`."""
        return self.raw.isin("true", "false")

    @property
    def text(self) -> Column:
        """A string value's content (no escapes can be in it)."""
        return self.raw.substr(F.lit(2), F.length(self.raw) - F.lit(2))


def _decided(error: Column | str | None) -> Verdict:
    return Verdict(error if isinstance(error, Column) else F.lit(error).cast("string"))


def _undecided() -> Verdict:
    return Verdict(F.lit(_UNDECIDED_MARK))


def _cases(*branches: tuple[Column, Verdict], otherwise: Verdict | None = None) -> Column:
    """The verdict of the first branch whose condition holds (`otherwise`: undecided), in
    one `CASE`: each condition is evaluated once."""
    otherwise = otherwise or _undecided()
    cases: Any = F
    for condition, verdict in branches:
        cases = cases.when(condition, verdict.value)
    return cases.otherwise(otherwise.value)


def _presence(token: Token, required: bool, null_error: str | None) -> list[tuple[Column, Verdict]]:
    """The branches for an absent key and a null value."""
    return [
        (token.absent, _decided(_FIELD_REQUIRED if required else None)),
        (token.is_null, _decided(null_error if required else None)),
    ]


def _java_pattern(pattern: str) -> str:
    """A contract pattern (`^...$`, Rust regex) for Java: `$` there also matches before a
    final line terminator (U+2028 included), so the end is `\\z`."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        raise UnsupportedContractError(f"pattern {pattern!r} is not anchored at both ends")
    return rf"\A{pattern[1:-1]}\z"


def _constraints(annotation: Any) -> StringConstraints:
    found = [
        item for item in typing.get_args(annotation)[1:] if isinstance(item, StringConstraints)
    ]
    if len(found) != 1:
        raise UnsupportedContractError(f"{annotation} has no single StringConstraints")
    return found[0]


def _record_id(token: Token, required: bool) -> Column:
    rules = _constraints(common.RecordId)
    if rules.max_length is None or rules.pattern is None or rules.min_length is not None:
        raise UnsupportedContractError("RecordId is expected to have a max_length and a pattern")
    text = token.text
    return _cases(
        *_presence(token, required, _NOT_STRING),
        (~token.is_string, _decided(_NOT_STRING)),
        (
            F.char_length(text) > rules.max_length,
            _decided(f"String should have at most {rules.max_length} characters"),
        ),
        (
            ~text.rlike(_java_pattern(str(rules.pattern))),
            _decided(f"String should match pattern '{rules.pattern}'"),
        ),
        otherwise=_decided(None),
    )


def _short_text(token: Token, required: bool) -> Column:
    rules = _constraints(common.ShortText)
    if not rules.strip_whitespace or rules.min_length != 1 or rules.max_length is None:
        raise UnsupportedContractError("ShortText is expected to strip and hold 1..n characters")
    text = token.text
    return _cases(
        *_presence(token, required, _NOT_STRING),
        (~token.is_string, _decided(_NOT_STRING)),
        (text == "", _decided("String should have at least 1 character")),
        # A space or a non-ASCII character at an edge: Python's strip decides, not the JVM.
        (~(_printable(text) & _printable(F.substring(text, -1, 1))), _undecided()),
        (
            F.char_length(text) > rules.max_length,
            _decided(f"String should have at most {rules.max_length} characters"),
        ),
        otherwise=_decided(None),
    )


def _printable(text: Column) -> Column:
    """The first character is printable ASCII other than space: stripping leaves it."""
    return F.ascii(text).between(ord("!"), ord("~"))


def _max_digits(annotation: Any) -> int:
    """The `max_digits` of a decimal type (`Field(max_digits=...)` in its `Annotated`)."""
    for item in typing.get_args(annotation)[1:]:
        if isinstance(item, FieldInfo):
            for rule in item.metadata:
                if getattr(rule, "max_digits", None) is not None:
                    return int(rule.max_digits)
    raise UnsupportedContractError(f"{annotation} has no max_digits")


def _money(token: Token, required: bool) -> Column:
    places = common.MONEY_DECIMAL_PLACES
    whole = _max_digits(common.Money) - places
    digits = F.when(token.is_string, token.text).otherwise(token.raw)
    amount = rf"(?:0|[1-9][0-9]{{0,{whole - 1}}})(?:\.[0-9]{{1,{places}}})?"
    plain = rf"\A{amount}\z"
    # Below zero; a negative zero (`-0.0`) is not below zero, Python judges it.
    negative = rf"\A-(?!0+(?:\.0+)?\z){amount}\z"
    # All digits, leading zeros included: more than the significant ones, never fewer.
    significant = F.length(F.translate(digits, "-.", ""))
    return _cases(
        *_presence(token, required, _NOT_DECIMAL),
        (token.is_bool, _decided(_NOT_DECIMAL)),
        (significant > MAX_JVM_SIGNIFICANT_DIGITS, _undecided()),
        (digits.rlike(plain), _decided(None)),
        (digits.rlike(negative), _decided(_NEGATIVE)),
    )


def _currency_message() -> str:
    """The contract's own message for an unknown code, with `%s` where the code goes."""
    marker = "\x00code\x00"
    try:
        common._check_currency(marker)
    except ValueError as exc:
        return "Value error, " + str(exc).replace(marker, "%s")
    raise UnsupportedContractError("the currency check accepted a non-code")


def _currency(token: Token, required: bool) -> Column:
    codes = sorted(common.currency_minor_units())
    code = F.upper(token.text)
    return _cases(
        *_presence(token, required, _NOT_STRING),
        (~token.is_string, _decided(_NOT_STRING)),
        # Three ASCII characters: upper-casing them is the same in Python and in the JVM.
        (F.octet_length(token.text) != 3, _undecided()),
        (code.isin(*codes), _decided(None)),
        otherwise=_decided(F.format_string(_currency_message(), code)),
    )


def _timestamp(token: Token, required: bool) -> Column:
    text = token.text
    # Read only once the text has the shape of `_TIMESTAMP` (a `CASE` tests in order).
    year, month, day = (F.substring(text, at, size).cast("int") for at, size in _DATE_PARTS)
    low, high = _JVM_YEARS
    month_ok = month.between(1, 12)
    last_day = F.dayofmonth(F.last_day(F.make_date(year, F.when(month_ok, month), F.lit(1))))
    valid = year.between(low, high) & month_ok & day.between(F.lit(1), last_day)
    return _cases(
        *_presence(token, required, _NOT_DATETIME),
        (~token.is_string, _undecided()),
        (~text.rlike(_TIMESTAMP), _undecided()),
        (F.coalesce(valid, F.lit(False)), _decided(None)),
    )


def _literal(values: tuple[Any, ...]) -> Callable[[Token, bool], Column]:
    if not all(isinstance(value, str) and "'" not in value for value in values):
        raise UnsupportedContractError(f"Literal{list(values)} is not plain strings")
    quoted = [f"'{value}'" for value in values]
    message = "Input should be " + (
        quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    )

    def judge(token: Token, required: bool) -> Column:
        return _cases(
            (token.absent, _decided(_FIELD_REQUIRED if required else None)),
            (token.is_null & F.lit(not required), _decided(None)),
            (token.is_string & token.text.isin(*values), _decided(None)),
            otherwise=_decided(message),
        )

    return judge


_JUDGES: dict[Any, Callable[[Token, bool], Column]] = {
    common.RecordId: _record_id,
    common.ShortText: _short_text,
    common.Money: _money,
    common.CurrencyCode: _currency,
    common.UtcDatetime: _timestamp,
}


def _judge_of(annotation: Any) -> Callable[[Token, bool], Column]:
    """The judge of a field's declared type; `X | None` is judged as X (null allowed)."""
    origin = typing.get_origin(annotation)
    if origin in (Union, UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not NoneType]
        if len(members) != 1:
            raise UnsupportedContractError(f"{annotation} is a union of several types")
        return _judge_of(members[0])
    if origin is Literal:
        return _literal(typing.get_args(annotation))
    for known, judge in _JUDGES.items():
        if annotation == known:
            return judge
    raise UnsupportedContractError(f"no JVM check for fields of type {annotation}")


#: One member of a flat object: its key (group 1) and its value's text (group 2).
_MEMBER_PARTS = rf'"([A-Za-z0-9_]*+)"{_WS}:{_WS}({_STRING}|[-+.0-9a-z]++)'

#: Intermediate columns of `judge` (dropped before it returns).
_TEXT, _KEYS, _VALUES = "_cs_text", "_cs_keys", "_cs_values"
#: Columns `judge` adds.
DECIDED_COLUMN, CHECK_COLUMN = "_jvm_decided", "_jvm_check"


def _token_column(name: str) -> str:
    return f"_cs_token_{name}"


def _verdict_column(name: str) -> str:
    return f"_cs_verdict_{name}"


def _field_token(name: str) -> Column:
    """The JSON text of key `name`'s value ('' when absent), from the members read once."""
    position = F.array_position(F.col(_KEYS), name).cast("int")
    return F.coalesce(F.get(F.col(_VALUES), position - 1), F.lit(""))


def judge(df: DataFrame, entity: Entity) -> DataFrame:
    """Kafka rows (`key`, `value` binary) plus the JVM's judgement of each against `entity`.

    In steps, each a projection over the previous one's columns, so every expression is
    evaluated once per row and stays small: the payload is read by three regular
    expressions (the grammar, the keys, the values); each field's value is picked out; each
    field is judged on its value alone; then the verdicts are put together.

    Returns:
        `df` with `_jvm_decided` (whether the JVM judged the row) and `_jvm_check` (when it
        did, the result in `transforms.CHECK_SCHEMA`'s shape: `payload`, `record_key`,
        `normalized` (always null: landing keeps the payload as it is) and `error`, the same
        as `check_record` gives).

    Raises:
        UnsupportedContractError: The contract has a field type or validator this module does
            not know; the caller keeps the Python check for every record.
    """
    for step in _steps(entity):
        df = df.select("*", *step)
    return df.drop(*[name for name in df.columns if name.startswith("_cs_")])


@functools.cache
def _steps(entity: Entity) -> tuple[tuple[Column, ...], ...]:
    """The projections of `judge`, built once per entity: building them takes thousands of
    calls into the JVM, and a column refers to its inputs by name, so it fits any batch."""
    model = entity.model
    _check_supported(model)
    hints = typing.get_type_hints(model, include_extras=True)
    judges = {name: _judge_of(hints[name]) for name in model.model_fields}
    fields = list(model.model_fields)
    value = F.col("value")
    text = value.cast("string")
    read = (
        text.alias(_TEXT),
        F.regexp_extract_all(text, F.lit(_MEMBER_PARTS), 1).alias(_KEYS),
        F.regexp_extract_all(text, F.lit(_MEMBER_PARTS), 2).alias(_VALUES),
    )
    keys = F.col(_KEYS)
    # Spark's cast keeps invalid bytes; decoding replaces them, so the round trip differs.
    utf8 = F.encode(F.decode(value, "UTF-8"), "UTF-8") == value
    unique = F.size(keys) == F.size(F.array_distinct(keys))
    readable = F.coalesce(utf8 & F.col(_TEXT).rlike(FLAT_OBJECT) & unique, F.lit(False))
    # No lambda functions anywhere: they would turn Spark's code generation off for the
    # whole projection (measured: the check then cost more than the Python UDF).
    extra = F.array_except(keys, F.array(*[F.lit(name) for name in fields]))
    picked = (
        readable.alias("_cs_readable"),
        extra.alias("_cs_extra"),
        *[_field_token(name).alias(_token_column(name)) for name in fields],
    )
    judged = tuple(
        judges[name](Token(F.col(_token_column(name))), info.is_required()).alias(
            _verdict_column(name)
        )
        for name, info in model.model_fields.items()
    )
    verdicts = {name: F.col(_verdict_column(name)) for name in fields}
    errors = [
        F.when(verdict != _UNDECIDED_MARK, F.concat(F.lit(f"{name}: "), verdict))
        for name, verdict in verdicts.items()
    ]
    all_decided = F.lit(True)
    for verdict in verdicts.values():
        all_decided = all_decided & F.coalesce(verdict != _UNDECIDED_MARK, F.lit(True))
    errors_text = F.concat_ws(
        "; ",
        *errors,
        F.when(
            F.size("_cs_extra") > 0,
            F.concat(F.array_join("_cs_extra", f": {_EXTRA}; "), F.lit(f": {_EXTRA}")),
        ),
    )
    summed = (
        F.substring(F.when(errors_text != "", errors_text), 1, 2000).alias("_cs_error"),
        all_decided.alias("_cs_all_decided"),
    )
    error = F.col("_cs_error")
    record_key = Token(F.col(_token_column(entity.key_field))).text
    # Python checks the Kafka key only once the record is valid, and quotes both in `repr`.
    key_matches = (
        value.isNull() | F.col("key").isNull() | (F.col("key") == F.encode(record_key, "UTF-8"))
    )
    decided = value.isNull() | (
        F.col("_cs_readable") & F.col("_cs_all_decided") & (error.isNotNull() | key_matches)
    )
    check = F.struct(
        F.col(_TEXT).alias("payload"),
        F.when(error.isNull() & value.isNotNull(), record_key).alias("record_key"),
        F.lit(None).cast("string").alias("normalized"),
        F.when(value.isNull(), F.lit("empty message: no payload")).otherwise(error).alias("error"),
    )
    result = (
        F.coalesce(decided, F.lit(False)).alias(DECIDED_COLUMN),
        check.alias(CHECK_COLUMN),
    )
    return read, picked, judged, summed, result


def _check_supported(model: type[BaseModel]) -> None:
    decorators = model.__pydantic_decorators__
    if decorators.model_validators or decorators.field_validators or decorators.validators:
        raise UnsupportedContractError(f"{model.__name__} has validators of its own")
    if model.model_config.get("extra") != "forbid":
        raise UnsupportedContractError(f"{model.__name__} does not forbid extra fields")


__all__ = [
    "CHECK_COLUMN",
    "DECIDED_COLUMN",
    "FLAT_OBJECT",
    "MAX_JVM_SIGNIFICANT_DIGITS",
    "UnsupportedContractError",
    "judge",
]
