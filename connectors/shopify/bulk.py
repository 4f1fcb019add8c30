"""A large first push as Shopify's bulk mutation import (the reference's A6):
a JSONL file of productSet variables is staged, uploaded, run as one
operation without rate limits, polled, and its result file read back.

The result lines come in no set order; each carries the ``__lineNumber`` of
its input line, which is how a result finds its listing. An operation that
FAILED part-way still gives the lines it did through ``partialDataUrl``; the
lines it did not reach are reported as not sent (a passing failure), since
their upserts can simply be sent again. The staged upload goes to the
storage host Shopify names, never with the access token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.base import PermanentError, TransientError
from connectors.http import short

from . import documents
from .graphql import AdminApi, AnswerLost
from .inputs import words

log = logging.getLogger(__name__)

# The reference's limit is 100 MB a file; a larger push is split in several
# operations, one after the other.
MAX_FILE_BYTES = 95 * 1024 * 1024
RUNNING = frozenset({"CREATED", "RUNNING", "CANCELING"})
# Refusals of bulkOperationRunMutation that pass with time (another operation running).
BUSY = frozenset({"OPERATION_IN_PROGRESS", "LIMIT_REACHED"})


@dataclass(frozen=True)
class LineResult:
    """What became of one line: productSet's payload, or why there is none."""

    payload: Mapping[str, Any] | None
    error: str | None = None
    permanent: bool = False


def _files(lines: Sequence[Mapping[str, Any]]) -> Iterator[tuple[int, list[bytes]]]:
    """Encoded lines in files under the size limit: (first line's index, lines)."""
    start, size = 0, 0
    chunk: list[bytes] = []
    for n, line in enumerate(lines):
        encoded = json.dumps(line, separators=(",", ":")).encode() + b"\n"
        if chunk and size + len(encoded) > MAX_FILE_BYTES:
            yield start, chunk
            start, chunk, size = n, [], 0
        chunk.append(encoded)
        size += len(encoded)
    if chunk:
        yield start, chunk


def run_lines(
    api: AdminApi,
    lines: Sequence[Mapping[str, Any]],
    *,
    sleep: Callable[[float], None],
    poll_interval: float,
    max_wait: float,
) -> list[LineResult]:
    """Run productSet once per line of variables; one result per line, in order."""
    results: list[LineResult] = []
    for start, chunk in _files(lines):
        got = _operation(api, b"".join(chunk), sleep, poll_interval, max_wait)
        missing = got.pop(None, None) or LineResult(
            None, "Shopify returned no result for this product", permanent=False
        )
        results += [got.get(n, missing) for n in range(len(chunk))]
        log.info("shopify: bulk lines %d-%d done", start, start + len(chunk) - 1)
    return results


def _operation(
    api: AdminApi,
    body: bytes,
    sleep: Callable[[float], None],
    poll_interval: float,
    max_wait: float,
) -> dict[int | None, LineResult]:
    """One staged file, run and read back: results by line number (None: the
    result of a line that has none)."""
    path = _upload(api, body)
    operation = _start(api, path, poll_interval)
    status = _wait(api, operation, sleep, poll_interval, max_wait)
    state, code = status.get("status"), status.get("errorCode")
    if state == "COMPLETED":
        url = status.get("url")
        return _results(api, str(url)) if url else {}
    if state == "FAILED" and status.get("partialDataUrl"):
        got = _results(api, status["partialDataUrl"])
        got[None] = LineResult(
            None, f"not sent: Shopify's bulk operation failed ({code}) before it", permanent=False
        )
        return got
    raise TransientError(
        f"Shopify's bulk operation {operation} ended {state} ({code or 'no error code'})",
        hint="the hub will try again; products it saved are updated, not duplicated",
    )


def _upload(api: AdminApi, body: bytes) -> str:
    """Stage and upload the file; the path bulkOperationRunMutation takes."""
    target_input = {
        "resource": "BULK_MUTATION_VARIABLES",
        "filename": "products.jsonl",
        "mimeType": "text/jsonl",
        "httpMethod": "POST",
    }
    data = api.repeatable("stagedUploadsCreate", documents.STAGE, {"input": [target_input]})
    payload = data.get("stagedUploadsCreate") or {}
    targets = payload.get("stagedTargets") or []
    if payload.get("userErrors") or not targets or not targets[0].get("url"):
        said = words(payload.get("userErrors") or [])
        raise PermanentError(f"Shopify gave no upload target for the bulk file: {said}")
    target = targets[0]
    fields = {str(p["name"]): str(p["value"]) for p in target.get("parameters") or []}
    if "key" not in fields:
        raise PermanentError("Shopify's upload target for the bulk file has no key parameter")
    files = {"file": ("products.jsonl", body, "text/jsonl")}
    try:
        # Form fields first, in Shopify's order, then the file (the reference: file last).
        response = api.http.post(str(target["url"]), data=fields, files=files)
    except httpx.HTTPError as exc:
        raise TransientError(
            f"the upload of the bulk file failed: {short(str(exc)) or type(exc).__name__}",
            hint="the hub will try again",
        ) from None
    if response.status_code >= 500:
        raise TransientError(f"the upload of the bulk file failed (HTTP {response.status_code})")
    if response.status_code not in (200, 201, 204):
        raise PermanentError(
            f"the upload of the bulk file was refused (HTTP {response.status_code}:"
            f" {short(response.text, 160)})"
        )
    return fields["key"]


def _current(api: AdminApi) -> Mapping[str, Any] | None:
    found = api.run("currentBulkOperation", documents.CURRENT_BULK).get("currentBulkOperation")
    return found if isinstance(found, Mapping) else None


def _start(api: AdminApi, path: str, poll_interval: float) -> str:
    """Run the mutation over the staged file; the operation's id.

    An answer lost on the way is resolved by asking for the current bulk
    mutation: one created or running is taken as this one (whose upserts
    would be harmless even if it were not).
    """
    variables = {"mutation": documents.BULK_PRODUCT_SET, "path": path}
    try:
        data = api.run("bulkOperationRunMutation", documents.RUN_BULK, variables, mutation=True)
    except AnswerLost:
        current = _current(api)
        if current is not None and current.get("status") in RUNNING:
            return str(current["id"])
        raise
    payload = data.get("bulkOperationRunMutation") or {}
    errors = [e for e in payload.get("userErrors") or [] if isinstance(e, Mapping)]
    if errors and any(e.get("code") in BUSY for e in errors):
        raise TransientError(
            f"Shopify would not start the bulk import yet: {words(errors)}",
            hint="the hub will try again when the store's other bulk operation is done",
            retry_after=max(poll_interval, 30.0),
        )
    operation = payload.get("bulkOperation") or {}
    if errors or not operation.get("id"):
        raise PermanentError(f"Shopify refused the bulk import: {words(errors)}")
    return str(operation["id"])


def _wait(
    api: AdminApi,
    operation: str,
    sleep: Callable[[float], None],
    poll_interval: float,
    max_wait: float,
) -> Mapping[str, Any]:
    waited = 0.0
    while True:
        sleep(poll_interval)
        waited += poll_interval
        status = api.run("bulkOperation", documents.BULK_STATUS, {"id": operation}).get("node")
        if not isinstance(status, Mapping):
            raise TransientError(f"Shopify no longer knows the bulk operation {operation}")
        if status.get("status") not in RUNNING:
            return status
        if waited >= max_wait:
            raise TransientError(
                f"Shopify's bulk operation {operation} is still {status.get('status')}"
                f" after {waited:.0f} s",
                hint="the hub will try again; raise bulk_timeout for larger catalogues",
                retry_after=poll_interval,
            )


def _results(api: AdminApi, url: str) -> dict[int | None, LineResult]:
    """The result file, by input line number."""
    try:
        response = api.http.get(url)
    except httpx.HTTPError as exc:
        raise TransientError(
            f"the bulk results could not be read: {short(str(exc)) or type(exc).__name__}"
        ) from None
    if response.status_code != 200:
        raise TransientError(f"the bulk results could not be read (HTTP {response.status_code})")
    got: dict[int | None, LineResult] = {}
    for raw in response.text.splitlines():
        if not raw.strip():
            continue
        line = json.loads(raw)
        number = line.get("__lineNumber")
        if not isinstance(number, int):
            continue
        if line.get("errors"):
            said = "; ".join(str(e.get("message", e)) for e in line["errors"])
            got[number] = LineResult(None, f"Shopify could not run it: {said}", permanent=False)
            continue
        got[number] = LineResult((line.get("data") or {}).get("productSet") or {})
    return got
