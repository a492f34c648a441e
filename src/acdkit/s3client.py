"""A bounded S3 client: boto3 loaded only here, timeouts and retries capped, errors sorted.

Every S3 call of acdkit goes through `call`, which turns botocore's exceptions into one
`S3Failure` that says whose fault it is: the network or the server (``transient``: a
refused connection, a timeout, a 5xx answer), the caller's configuration (``setup``:
credentials missing or not taken), the caller's rights (``denied``), an object or version
that is not there (``missing``), or anything else the server refused (``refused``).
Credentials come from boto3's own chain (environment, shared files, instance roles) and
never pass through acdkit: no message here quotes a request, a header or a credential.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from acdkit.errors import AcdkitError, InputIOError, UsageError

__all__ = ["S3Failure", "S3Settings", "call", "client", "endpoint_problem", "shown_endpoint"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 20.0
DEFAULT_ATTEMPTS = 3  # botocore's count: the first try and two retries
_MISSING = {"NoSuchKey", "NoSuchVersion", "NotFound", "404", "NoSuchBucket"}
_DENIED = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled"}
# credentials S3 does not take: the configuration's fault, as missing ones are
_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
_SETUP_HINT = (
    "configure S3 access as for the AWS CLI: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
    "AWS_PROFILE, or an instance role; and a region"
)
_SLOW = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}


@dataclass(frozen=True)
class S3Settings:
    """Where S3 is and how long to wait for it; ``endpoint`` None is AWS (or the
    endpoint boto3 reads from $AWS_ENDPOINT_URL)."""

    endpoint: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    attempts: int = DEFAULT_ATTEMPTS

    @property
    def where(self) -> str:
        return shown_endpoint(self.endpoint) if self.endpoint else "the default S3 endpoint"


class S3Failure(Exception):
    """An S3 call that did not succeed, sorted by whose fault it is."""

    def __init__(self, kind: str, operation: str, code: str, status: int | None) -> None:
        super().__init__(f"{operation}: {code}")
        self.kind = kind  # transient | denied | missing | refused | setup
        self.operation = operation
        self.code = code
        self.status = status
        self.delete_marker = False

    @property
    def text(self) -> str:
        status = f" (HTTP {self.status})" if self.status else ""
        return f"S3 {self.operation} failed: {self.code}{status}"

    def as_error(self, what: str) -> AcdkitError:
        """The failure as the error of a command that needed the call (not a verifier)."""
        if self.kind == "setup":
            return UsageError(f"{what}: {self.text}", hint=_SETUP_HINT)
        if self.kind == "denied":
            return InputIOError(
                f"{what}: {self.text}", hint="the credentials lack the rights this step needs"
            )
        if self.kind == "missing" and self.code == "NoSuchBucket":
            return UsageError(f"{what}: {self.text}", hint="check --bucket and --endpoint")
        return InputIOError(f"{what}: {self.text}")


def endpoint_problem(url: str) -> str | None:
    """Why ``url`` is not an S3 endpoint acdkit takes: http(s), a host, no user, no query."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        # credentials in a URL end up in logs and reports: boto3's chain carries them
        return "must not carry a user or password (credentials come from the AWS chain)"
    if parts.query or parts.fragment:
        return "must not carry a query or a fragment"
    return None


def shown_endpoint(url: str) -> str:
    """The endpoint as a report may show it: scheme, host and port only."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def client(settings: S3Settings) -> Any:
    """A boto3 S3 client with capped timeouts and retries."""
    if settings.endpoint is not None:
        problem = endpoint_problem(settings.endpoint)
        if problem:
            raise UsageError(f"--endpoint {problem}")
    import boto3
    from botocore import exceptions as bx
    from botocore.config import Config

    # NOTE: botocore's debug log prints request headers (the access key ID in the signed
    # Authorization header); `acdkit -vv` must not turn it on for them
    for name in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(name).setLevel(logging.WARNING)
    config = Config(
        connect_timeout=settings.timeout_s,
        read_timeout=settings.timeout_s,
        retries={"max_attempts": settings.attempts, "mode": "standard"},
        # acdkit sends and checks SHA-256 itself; botocore's own CRC32 adds nothing
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"} if settings.endpoint else None,
    )
    try:
        return boto3.session.Session().client("s3", endpoint_url=settings.endpoint, config=config)
    except bx.BotoCoreError as exc:
        # the AWS configuration itself: a named profile that is not there, a config file
        # that does not parse, a region name that is not one
        raise UsageError(
            f"the AWS configuration cannot be used: {type(exc).__name__}", hint=_SETUP_HINT
        ) from None


# the slowest transfer a call may take over and above its time-outs: 64 KiB/s
SLOWEST_BYTES_PER_S = 64 * 1024


def call(s3: Any, operation: str, **kwargs: Any) -> Any:
    """``s3.<operation>(**kwargs)``, its failure raised as an `S3Failure`.

    Each call ends within its time-outs (connect and read, per attempt) plus its body at
    SLOWEST_BYTES_PER_S: botocore's read time-out bounds each socket read, so a server that
    answers a byte at a time would hold the call, and a cron run, for ever.  The call runs
    in a daemon thread that is abandoned at that deadline.
    """
    from botocore import exceptions as bx

    method = getattr(s3, operation)
    name = "".join(part.title() for part in operation.split("_"))
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, method(**kwargs)))
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name=f"s3-{operation}", daemon=True)
    worker.start()
    worker.join(_deadline_s(s3, kwargs))
    if not outcome:
        raise S3Failure("transient", name, "no complete answer within the deadline", None)
    done, value = outcome[0]
    try:
        if done:
            return value
        raise value
    except bx.ClientError as exc:
        raise _client_failure(exc, name) from None
    except (bx.NoCredentialsError, bx.PartialCredentialsError, bx.NoRegionError) as exc:
        raise S3Failure("setup", name, type(exc).__name__, None) from None
    except (bx.ConnectionError, bx.HTTPClientError) as exc:
        # refused, reset, timed out (connect or read), DNS: the network's or server's
        raise S3Failure("transient", name, type(exc).__name__, None) from None
    except bx.BotoCoreError as exc:
        raise S3Failure("refused", name, type(exc).__name__, None) from None


def _deadline_s(s3: Any, kwargs: dict[str, Any]) -> float:
    config = s3.meta.config
    per_attempt = float(config.connect_timeout or 60) + float(config.read_timeout or 60)
    attempts = int((config.retries or {}).get("max_attempts") or 3)
    body: Any = kwargs.get("Body")
    size = len(body) if isinstance(body, bytes | bytearray) else 0
    if body is not None and size == 0 and hasattr(body, "fileno"):
        with contextlib.suppress(OSError, ValueError):
            size = os.fstat(body.fileno()).st_size
    return per_attempt * attempts + size / SLOWEST_BYTES_PER_S


def _client_failure(exc: Any, operation: str) -> S3Failure:
    error = exc.response.get("Error", {})
    meta = exc.response.get("ResponseMetadata", {})
    code = str(error.get("Code") or "unknown")
    status = meta.get("HTTPStatusCode")
    if (isinstance(status, int) and status >= 500) or code in _SLOW:
        kind = "transient"
    elif code in _CREDENTIALS:
        kind = "setup"
    elif code in _DENIED:
        kind = "denied"
    elif code in _MISSING or status == 404:
        kind = "missing"
    else:
        kind = "refused"
    failure = S3Failure(kind, operation, code, status if isinstance(status, int) else None)
    headers = meta.get("HTTPHeaders", {})
    failure.delete_marker = str(headers.get("x-amz-delete-marker", "")).lower() == "true"
    return failure
