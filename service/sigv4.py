"""AWS Signature Version 4, checked on the server side: the canonical request is rebuilt from what
arrived (method, path, query, the signed headers, the body's SHA-256), signed with the secret of
the access key the client names, and compared in constant time with the signature it sent.

Failures carry the error code AWS answers with, so that SDKs raise what they raise against AWS:
`MissingAuthenticationTokenException` (no signature), `IncompleteSignatureException` (a malformed
one), `UnrecognizedClientException` (unknown access key, or session credentials, which this
service does not issue), `InvalidSignatureException` (wrong secret, altered request, or a
timestamp more than 15 minutes off).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_AUTH_FIELD = re.compile(r"(Credential|SignedHeaders|Signature)=([^,\s]+)")


class SigV4Error(Exception):
    """A request whose signature does not verify; `code` is AWS's error code for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Verified:
    access_key: str
    region: str
    service: str


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 dot-segment removal, also collapsing repeated slashes (as botocore does)."""
    if not path:
        return "/"
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and kept else ""
    return first + "/".join(kept) + last


def canonical_uri(raw_path: str) -> str:
    """The path as botocore signs it for services other than S3: the path as sent (already
    percent-encoded), normalised, then URI-encoded once more."""
    return quote(_remove_dot_segments(raw_path), safe="/~")


def canonical_query(query_string: str) -> str:
    """The query as sent, its `key=value` pairs sorted (botocore signs the encoded pairs)."""
    if not query_string:
        return ""
    pairs = []
    for pair in query_string.split("&"):
        key, _, value = pair.partition("=")
        pairs.append((key, value))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _header_values(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [" ".join(v.split()) for k, v in headers if k.lower() == name]
    return ",".join(values) if values else None


def verify(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    secrets: Mapping[str, str],
    *,
    service: str,
    now: datetime | None = None,
) -> Verified:
    """Check the `Authorization` header of a request against `secrets` (access key id -> secret
    access key); raises `SigV4Error` with AWS's code when it does not verify."""
    authorization = _header_values(headers, "authorization")
    if not authorization:
        if "X-Amz-Signature=" in query_string:
            raise SigV4Error(
                "MissingAuthenticationTokenException",
                "Presigned (query string) requests are not supported; sign the Authorization "
                "header",
            )
        raise SigV4Error("MissingAuthenticationTokenException", "Missing Authentication Token")
    algorithm, _, rest = authorization.partition(" ")
    fields = dict(_AUTH_FIELD.findall(rest))
    if algorithm != ALGORITHM or set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        raise SigV4Error(
            "IncompleteSignatureException",
            f"Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
            f"parameters with the {ALGORITHM} algorithm.",
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise SigV4Error(
            "IncompleteSignatureException",
            "Credential should be scoped to a valid region, service and aws4_request terminator.",
        )
    access_key, date, region, scope_service, _ = scope
    if _header_values(headers, "x-amz-security-token") is not None:
        raise SigV4Error(
            "UnrecognizedClientException",
            "The security token included in the request is invalid: this service accepts "
            "long-term access keys only (CXNLP_AWS_KEYS), not session credentials.",
        )
    secret = secrets.get(access_key)
    if secret is None:
        raise SigV4Error(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    if scope_service != service:
        raise SigV4Error(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}'.",
        )
    amz_date = _header_values(headers, "x-amz-date")
    try:
        when = datetime.strptime(amz_date or "", "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SigV4Error(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
            "header in the ISO 8601 basic format.",
        ) from None
    if date != amz_date[:8]:
        raise SigV4Error(
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{date}' != '{amz_date[:8]}', from '{amz_date}'.",
        )
    now = now or datetime.now(UTC)
    if abs(now - when) > MAX_SKEW:
        stamp = "%Y%m%dT%H%M%SZ"
        raise SigV4Error(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than "
            f"{(now - MAX_SKEW).strftime(stamp)} ({now.strftime(stamp)} - 15 min.)"
            if when < now
            else f"Signature not yet current: {amz_date} is still later than "
            f"{(now + MAX_SKEW).strftime(stamp)} ({now.strftime(stamp)} + 15 min.)",
        )
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed:
        raise SigV4Error("InvalidSignatureException", "'Host' must be a signed header.")
    canonical_headers = ""
    for name in signed:
        value = _header_values(headers, name)
        if value is None:
            raise SigV4Error(
                "InvalidSignatureException", f"The signed header {name!r} is not in the request."
            )
        canonical_headers += f"{name}:{value}\n"
    declared_hash = _header_values(headers, "x-amz-content-sha256")
    body_hash = hashlib.sha256(body).hexdigest()
    if declared_hash not in (None, UNSIGNED_PAYLOAD, body_hash):
        raise SigV4Error(
            "InvalidSignatureException",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    payload_hash = declared_hash if declared_hash == UNSIGNED_PAYLOAD else body_hash
    canonical_request = "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(query_string),
            canonical_headers,
            fields["SignedHeaders"],
            payload_hash,
        ]
    )
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            amz_date,
            f"{date}/{region}/{scope_service}/aws4_request",
            hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
        ]
    )
    expected = hmac.new(
        signing_key(secret, date, region, scope_service),
        string_to_sign.encode("utf-8"),
        hashlib.sha256,
    ).hexdigest()
    if not hmac.compare_digest(expected, fields["Signature"].lower()):
        raise SigV4Error(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.",
        )
    return Verified(access_key, region, scope_service)
