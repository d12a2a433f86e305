"""An independent SigV4 check of Amazon MSK IAM tokens, for the tests of both signers.

An MSK IAM token (OAUTHBEARER) is a presigned `GET https://kafka.<region>.amazonaws.com/
?Action=kafka-cluster:Connect&X-Amz-...` URL, base64url-encoded without padding. The broker
recomputes the signature from the URL and the caller's secret key; this module does the same
from the published SigV4 algorithm (hashlib/hmac only, no AWS library), so a token that passes
was really signed with that secret for that region and service.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

#: Query parameters that are not part of the signed request.
_UNSIGNED = {"X-Amz-Signature", "User-Agent"}
#: The payload hash of a GET without a body: SHA-256 of nothing.
_EMPTY_PAYLOAD = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class MskToken:
    """A decoded MSK IAM token: the presigned URL's parts."""

    host: str
    path: str
    params: dict[str, str]


def decode_token(token: str) -> MskToken:
    """Decode the base64url (unpadded) token into the presigned URL's parts."""
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("utf-8")
    parts = urlsplit(url)
    assert parts.scheme == "https", url
    return MskToken(
        host=parts.netloc,
        path=parts.path or "/",
        params=dict(parse_qsl(parts.query, keep_blank_values=True)),
    )


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def expected_signature(token: MskToken, secret_key: str) -> str:
    """The SigV4 signature of the token's request under `secret_key` (AWS's published steps)."""
    params = token.params
    date_time = params["X-Amz-Date"]
    _, scope_date, region, service, terminator = params["X-Amz-Credential"].split("/")
    assert terminator == "aws4_request"
    assert params["X-Amz-SignedHeaders"] == "host"
    query = "&".join(
        f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}"
        for name, value in sorted(params.items())
        if name not in _UNSIGNED
    )
    canonical_request = "\n".join(
        ["GET", token.path, query, f"host:{token.host}", "", "host", _EMPTY_PAYLOAD]
    )
    scope = f"{scope_date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            date_time,
            scope,
            hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
        ]
    )
    key = _hmac(("AWS4" + secret_key).encode("utf-8"), scope_date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def signature_is_valid(token: MskToken, secret_key: str) -> bool:
    """Whether the token's signature is the one `secret_key` gives."""
    return hmac.compare_digest(
        token.params["X-Amz-Signature"], expected_signature(token, secret_key)
    )
