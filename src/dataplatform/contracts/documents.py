"""Semi-structured documents: claim notes, adjuster reports and customer profiles.

A document is an envelope the platform validates (`id`, `entity`, `timestamp`) around a
free-form JSON `body`. The body is kept as its exact JSON text (numbers as written: decimals are
never floats) and a few fields are extracted from it: the claim a note or report belongs to, the
customer a profile describes. Versions of one document (`entity`, `id`) are ordered by
`timestamp`, then by the ingest sequence the store assigned when it accepted them.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dataplatform.contracts.common import ID_PATTERN, RecordId, UtcDatetime

DocumentEntity = Literal["claim_note", "adjuster_report", "customer_profile"]

#: The body field each kind of document must carry and that is extracted next to the body.
LINK_FIELDS: dict[str, str] = {
    "claim_note": "claim_id",
    "adjuster_report": "claim_id",
    "customer_profile": "customer_id",
}

_ID = re.compile(ID_PATTERN)

#: Nesting levels a body may have (objects and arrays): deeper is refused, not recursed into.
MAX_BODY_DEPTH = 32


def _depth(value: Any) -> int:
    """Nesting levels of a decoded JSON value, counted without recursion."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level + 1)
        stack.extend((child, level + 1) for child in children)
    return deepest


class DocumentIn(BaseModel):
    """A semi-structured document as a client sends it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "NOTE-20240102-0001",
                    "entity": "claim_note",
                    "timestamp": "2024-01-02T09:30:00Z",
                    "body": {
                        "claim_id": "IC-20240101120000-1234",
                        "author": "adjuster-17",
                        "text": "Photos received; estimate pending.",
                        "estimate": "1830.40",
                    },
                }
            ]
        },
    )

    domain: ClassVar[str] = "documents"

    id: RecordId
    entity: DocumentEntity
    timestamp: UtcDatetime = Field(description="When the document (this version) was written")
    body: dict[str, Any] = Field(
        description="Free-form JSON object; claim notes and adjuster reports name their "
        "`claim_id`, customer profiles their `customer_id`"
    )

    @model_validator(mode="after")
    def _body_names_its_subject(self) -> DocumentIn:
        field = LINK_FIELDS[self.entity]
        value = self.body.get(field)
        if not isinstance(value, str) or not _ID.fullmatch(value):
            raise ValueError(
                f"a {self.entity} body needs `{field}`: an identifier of 1-64 letters, digits "
                "or ._:- (starting with a letter or digit)"
            )
        if _depth(self.body) > MAX_BODY_DEPTH:
            raise ValueError(f"body nests deeper than {MAX_BODY_DEPTH} levels")
        return self

    @property
    def links(self) -> dict[str, str | None]:
        """The extracted fields: `claim_id` and `customer_id` (None when not this kind's)."""
        return {
            name: self.body[name] if LINK_FIELDS[self.entity] == name else None
            for name in ("claim_id", "customer_id")
        }
