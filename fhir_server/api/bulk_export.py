"""Bulk Data export (FHIR Bulk Data Access 2.0): ``$export`` to NDJSON files, asynchronously.

A regional platform pulls everything (``GET /$export``), the patient compartments' types
(``GET /Patient/$export``) or those of a cohort's patients (``GET /Group/[id]/$export``: the members'
compartments) with ``_type``, ``_since`` and ``_typeFilter`` (``Type?search``, OR-ed per
type), without paging through searches:

1. kick-off with ``Prefer: respond-async`` → 202 and ``Content-Location`` naming the job's
   status URL (``$export-poll-status?_jobId=…``);
2. polling that URL → 202 with ``X-Progress`` while the job runs, then 200 and the manifest
   (``transactionTime``, one ``output`` entry per NDJSON file); ``DELETE`` cancels a job and
   removes its files;
3. each file is fetched from ``$export-file?_jobId=…&file=…`` (``application/fhir+ndjson``).

A background thread writes the files under ``<data dir>/bulk-export/<job>/``, reading the store
one keyset page at a time, at most ``FILE_LINES`` resources per file; a finished job's files are
removed a day later. Every resource changed up to
``transactionTime`` is in the export, in its version current when its page was read (a resource
changed during the export may appear in its newer version, which the specification allows). Jobs are kept in memory:
after a restart their status URLs answer 404. With authentication on, only platform
administrators may export (an export reads past the consortium access policy).
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl

from starlette.responses import FileResponse, Response

from ..errors import FhirError, issue, operation_outcome
from ..formats import json as fjson
from ..resource_types import RESOURCE_TYPES
from ..search import bundle as search_bundle
from ..search.query import compartment_types
from ..search.registry import default_registry
from ..search.values import date_range
from .negotiation import base_url
from .operations import OperationContext, app_state, operation

log = logging.getLogger("fhir_server.bulk_export")

NDJSON = "application/fhir+ndjson"
_OUTPUT_FORMATS = (NDJSON, "application/ndjson", "ndjson")
FILE_LINES = 10000
#: how long a finished job's manifest and files stay (forgotten at the next kick-off after that)
RETENTION_SECONDS = 24 * 3600
_PAGE = 500
_RESULT_PARAMETERS = frozenset(("_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total",
                                "_cursor", "_contained", "_containedType"))


@dataclass
class Job:
    id: str
    request: str
    types: list[str]
    since: str | None
    #: type → the searches (parameter pairs) that select its resources; none: every resource of the type
    filters: dict[str, list[list[tuple[str, str]]]]
    directory: Path
    transaction_time: str
    status: str = "running"  # running, complete, failed, cancelled
    exported: int = 0
    output: list[dict] = field(default_factory=list)
    error: str = ""
    #: time.monotonic() when the job ended (0: still running)
    finished: float = 0.0


class ExportJobs:
    """The jobs of one app: one worker thread, files in the data directory."""

    def __init__(self, store, root: Path):
        self.store, self.root = store, root
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-export")

    def start(self, request_url: str, types: list[str], since: str | None,
              filters: dict[str, list[list[tuple[str, str]]]]) -> Job:
        self._forget_old()
        job_id = uuid.uuid4().hex
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        job = Job(job_id, request_url, types, since, filters, self.root / job_id, now)
        with self._lock:
            self.jobs[job_id] = job
        self._executor.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise FhirError(404, f"no bulk export job {job_id!r}", "not-found")
        return job

    def cancel(self, job_id: str) -> None:
        job = self.get(job_id)
        job.status = "cancelled"
        with self._lock:
            self.jobs.pop(job_id, None)
        shutil.rmtree(job.directory, ignore_errors=True)

    def _forget_old(self) -> None:
        """Jobs finished more than ``RETENTION_SECONDS`` ago go, with their files."""
        now = time.monotonic()
        with self._lock:
            old = [job for job in self.jobs.values() if job.finished and now - job.finished > RETENTION_SECONDS]
            for job in old:
                del self.jobs[job.id]
        for job in old:
            shutil.rmtree(job.directory, ignore_errors=True)

    def close(self) -> None:
        for job in list(self.jobs.values()):
            if job.status == "running":
                job.status = "cancelled"
        self._executor.shutdown(wait=True)

    def _run(self, job: Job) -> None:
        try:
            job.directory.mkdir(parents=True, exist_ok=True)
            for resource_type in job.types:
                if job.status != "running":
                    break
                self._export_type(job, resource_type)
            else:
                job.status = "complete"
        except Exception as exc:  # the job reports the failure; the server stays up
            if job.status == "running":
                log.exception("bulk export %s failed", job.id)
                job.error, job.status = f"the export failed: {type(exc).__name__}", "failed"
        finally:
            job.finished = time.monotonic()
            if job.status == "cancelled":
                shutil.rmtree(job.directory, ignore_errors=True)

    def _export_type(self, job: Job, resource_type: str) -> None:
        parser = search_bundle.parser_for("", _PAGE, _PAGE)
        base_pairs = [("_count", str(_PAGE)), ("_total", "none")]
        if job.since:
            base_pairs.append(("_lastUpdated", f"ge{job.since}"))
        searches = job.filters.get(resource_type, [[]])  # [] (a group without members): nothing
        seen: set[str] | None = set() if len(searches) > 1 else None  # a resource several filters match, once
        part, lines, handle = 0, 0, None
        try:
            for search in searches:
                cursor = None
                while job.status == "running":
                    pairs = base_pairs + search + ([("_cursor", cursor)] if cursor else [])
                    query = parser.parse([resource_type], pairs, strict=True)
                    with self.store.session() as session:
                        result = session.search(query)
                    for record in result.matches:
                        if seen is not None:
                            if record.id in seen:
                                continue
                            seen.add(record.id)
                        if handle is None or lines == FILE_LINES:
                            if handle is not None:
                                handle.close()
                                self._finish_file(job, resource_type, part, lines)
                            part, lines = part + 1, 0
                            handle = open(job.directory / f"{resource_type}-{part}.ndjson", "wb")
                        handle.write(record.body)
                        handle.write(b"\n")
                        lines += 1
                        job.exported += 1
                    cursor = result.next_cursor
                    if not cursor:
                        break
        finally:
            if handle is not None:
                handle.close()
                self._finish_file(job, resource_type, part, lines)

    @staticmethod
    def _finish_file(job: Job, resource_type: str, part: int, lines: int) -> None:
        job.output.append({"type": resource_type, "file": f"{resource_type}-{part}.ndjson", "count": lines})


def _jobs(context: OperationContext) -> ExportJobs:
    def make() -> ExportJobs:
        jobs = ExportJobs(context.request.app.state.store, context.settings.data_dir / "bulk-export")
        context.repository.add_close_hook(jobs.close)
        return jobs

    return app_state(context, "bulk_exports", make)


def _require_administrator() -> None:
    from ..security.context import current_caller

    caller = current_caller()
    if caller is not None and not caller.admin:
        raise FhirError(403, "bulk export is available to platform administrators only", "forbidden")


def _types(context: OperationContext, allowed: list[str]) -> list[str]:
    raw = search_bundle.named_types(context.values("_type"))
    for resource_type in raw:
        if resource_type not in allowed:
            raise FhirError(400, f"_type: {resource_type} is not exported at this level", "invalid", ["_type"])
    return sorted(set(raw)) if raw else allowed


_FILTER_START = re.compile(r",(?=[A-Z][A-Za-z]+\?)")


def _type_filters(context: OperationContext, types: list[str]) -> dict[str, list[list[tuple[str, str]]]]:
    """``_typeFilter=Type?query`` (repeated, or comma-separated): searches selecting what is exported of a type."""
    parser = search_bundle.parser_for("", _PAGE, _PAGE)
    filters: dict[str, list[list[tuple[str, str]]]] = {}
    for value in context.values("_typeFilter"):
        for text in _FILTER_START.split(value):
            resource_type, mark, query = text.strip().partition("?")
            if not mark or resource_type not in types:
                raise FhirError(400, f"_typeFilter {text!r} must be Type?query for a type being exported", "invalid",
                                ["_typeFilter"])
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(name in _RESULT_PARAMETERS for name, _ in pairs):
                raise FhirError(400, f"_typeFilter {text!r}: only search criteria, not result parameters", "invalid",
                                ["_typeFilter"])
            try:
                parser.parse([resource_type], pairs, strict=True)
            except FhirError as error:
                raise FhirError(400, f"_typeFilter {text!r}: {error.issues[0].get('diagnostics', '')}", "invalid",
                                ["_typeFilter"]) from None
            filters.setdefault(resource_type, []).append(pairs)
    return filters


_GROUP_CHUNK = 100  # patients per membership search (each is an OR of references)


def _group_members(context: OperationContext) -> list[str]:
    """The ids of the Patients a Group lists as (active) members."""
    group = fjson.loads(context.repository.read("Group", context.id).body)
    ids = []
    for member in group.get("member") or []:
        reference = str((member.get("entity") or {}).get("reference") or "")
        resource_type, _, id = reference.rpartition("/")
        if resource_type.rpartition("/")[2] == "Patient" and id and not member.get("inactive"):
            ids.append(id)
    return sorted(set(ids))


def _membership(patients: list[str], types: list[str]) -> dict[str, list[list[tuple[str, str]]]]:
    """Per type, searches selecting what is in the compartment of one of ``patients``."""
    registry = default_registry()
    chunks = [patients[i:i + _GROUP_CHUNK] for i in range(0, len(patients), _GROUP_CHUNK)]
    searches: dict[str, list[list[tuple[str, str]]]] = {}
    for resource_type in types:
        codes = [code for code in registry.compartments["Patient"].get(resource_type, [])
                 if (param := registry.get(resource_type, code)) is not None and param.type == "reference"]
        found = searches.setdefault(resource_type, [])
        for chunk in chunks:
            if resource_type == "Patient":
                found.append([("_id", ",".join(chunk))])
            found.extend([(code, ",".join(f"Patient/{id}" for id in chunk))] for code in codes)
    return searches


@operation("export", types=["Group"], levels=("instance",), methods=("GET", "POST"),
           definition={"url": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"})
@operation("export", types=["Patient"], levels=("system", "type"), methods=("GET", "POST"),
           definition={"url": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"})
def export(context: OperationContext):
    _require_administrator()
    if "respond-async" not in context.request.headers.get("prefer", ""):
        raise FhirError(400, "$export runs asynchronously: send 'Prefer: respond-async'", "invalid")
    output_format = context.text("_outputFormat")
    if output_format is not None and output_format not in _OUTPUT_FORMATS:
        raise FhirError(400, f"_outputFormat {output_format!r} is not supported (use {NDJSON})", "not-supported",
                        ["_outputFormat"])
    known = {"_type", "_since", "_outputFormat", "_typeFilter"}
    unknown = sorted({str(p.get("name")) for p in context.parameters.get("parameter") or []} - known)
    if unknown:
        raise FhirError(400, f"$export does not support {', '.join(unknown)}", "not-supported")
    since = context.text("_since")
    if since is not None and date_range(since) is None:
        raise FhirError(400, f"_since {since!r} is not a valid instant", "invalid", ["_since"])
    level = context.resource_type  # None (system), Patient, Group
    allowed = compartment_types(default_registry(), "Patient") if level else sorted(RESOURCE_TYPES)
    request, base = context.request, base_url(context.request)
    path = {None: "", "Patient": "Patient/", "Group": f"Group/{context.id}/"}[level]
    kick_off = f"{base}/{path}$export" + (f"?{request.url.query}" if request.url.query else "")
    types = _types(context, allowed)
    filters = _type_filters(context, types)
    if level == "Group":  # membership AND each filter of the type
        membership = _membership(_group_members(context), types)
        filters = {t: [m + f for m in membership[t] for f in filters.get(t, [[]])] for t in types}
    job = _jobs(context).start(kick_off, types, since, filters)
    status_url = f"{base}/$export-poll-status?_jobId={job.id}"
    return Response(status_code=202, headers={"Content-Location": status_url})


@operation("export-poll-status", levels=("system",), methods=("GET", "DELETE"), listed=False)
def export_status(context: OperationContext):
    _require_administrator()
    jobs, job_id = _jobs(context), context.text("_jobId") or ""
    if context.request.method == "DELETE":
        jobs.cancel(job_id)
        return Response(status_code=202)
    job = jobs.get(job_id)
    if job.status == "running":
        return Response(status_code=202, headers={"X-Progress": f"{job.exported} resources exported",
                                                  "Retry-After": "1"})
    if job.status == "failed":
        body = fjson.dumps(operation_outcome([issue("error", "exception", job.error)]))
        return Response(body, status_code=500, media_type="application/fhir+json")
    base = base_url(context.request)
    manifest = {
        "transactionTime": job.transaction_time,
        "request": job.request,
        "requiresAccessToken": context.settings.auth_enabled,
        "output": [{"type": o["type"], "url": f"{base}/$export-file?_jobId={job.id}&file={o['file']}",
                    "count": o["count"]} for o in job.output],
        "error": [],
    }
    return Response(fjson.dumps(manifest), status_code=200, media_type="application/json")


@operation("export-file", levels=("system",), methods=("GET",), listed=False)
def export_file(context: OperationContext):
    _require_administrator()
    job = _jobs(context).get(context.text("_jobId") or "")
    name = context.text("file") or ""
    if job.status != "complete" or name not in {o["file"] for o in job.output}:
        raise FhirError(404, f"no file {name!r} in bulk export job {job.id}", "not-found")
    return FileResponse(job.directory / name, media_type=NDJSON)
