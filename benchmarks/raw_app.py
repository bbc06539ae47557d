"""The ceiling for ``rest.py``: a bare FastAPI app answering with the FHIR server's own bytes.

It routes the same paths (``async`` handlers taking the request, as the FHIR routes do;
the request body read in full) and returns the status, headers and body the real server returned for
the same request, captured by ``rest.py`` into ``$BENCH_RAW_DIR/responses.json`` just
before the run. Whatever the real server spends beyond this app is the FHIR work:
parsing, validation, storage, versioning.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

_DIR = Path(os.environ.get("BENCH_RAW_DIR", "."))


def _canned(name: str) -> tuple[int, dict, bytes]:
    meta = json.loads((_DIR / "responses.json").read_text())[name]
    return meta["status"], meta["headers"], (_DIR / meta["body"]).read_bytes()


def _response(canned: tuple[int, dict, bytes]) -> Response:
    status, headers, body = canned
    return Response(body, status_code=status, headers=headers)


app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
_READ, _CREATE, _TRANSACTION = _canned("read"), _canned("create"), _canned("transaction")


@app.get("/{resource_type}/{id}")
async def read(request: Request) -> Response:
    return _response(_READ)


@app.post("/{resource_type}")
async def create(request: Request) -> Response:
    await request.body()
    return _response(_CREATE)


@app.post("/")
async def transaction(request: Request) -> Response:
    await request.body()
    return _response(_TRANSACTION)


@app.get("/metadata")
async def metadata() -> Response:
    return Response(b'{"resourceType":"CapabilityStatement"}', media_type="application/fhir+json")
