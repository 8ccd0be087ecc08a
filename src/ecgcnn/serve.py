"""The REST service of ``ecgcnn serve``: a trained model behind FastAPI on uvicorn.

::

    GET  /                   the web page (static/index.html): an ECG, its prediction, saliency
    POST /v1/predict         one ECG: a JSON body, or a multipart upload of its files
    POST /v1/predict/batch   several: {"records": [...]} or the files of several records
    GET  /v1/model           classes, thresholds, rate, window, version, validation metrics
    GET  /v1/examples[/NAME] bundled synthetic ECGs, as request bodies for /v1/predict
    GET  /healthz /readyz    liveness; readiness (the model is loaded)
    GET  /docs /openapi.json the OpenAPI schema

Every error is JSON, ``{"error": {"status", "code", "field", "message"}}``, and never a traceback.
Request bodies are bounded (413 beyond ``max_body_bytes``) and must arrive within
``body_timeout_s`` (408); inference runs in a small thread pool, off the event loop, with one
torch thread each so that concurrent requests do not oversubscribe the cores.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import tempfile
import time
from collections import deque
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import anyio
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecgcnn import __version__
from ecgcnn.errors import EcgcnnError, RecordError
from ecgcnn.predict import Prediction, Predictor
from ecgcnn.recording import BASELINES, canonical_lead, conform, remove_baseline, resample

log = logging.getLogger(__name__)

MiB = 1024 * 1024
DEFAULT_MAX_BODY_BYTES = 8 * MiB
DEFAULT_MAX_DURATION_S = 120.0
DEFAULT_MAX_BATCH = 64
UPLOAD_SUFFIXES = (
    ".hea", ".dat", ".mat", ".csv", ".npy", ".edf", ".dcm", ".dicom", ".xml", ".scp",
    ".mwf", ".mfer", ".mfr", ".ecg", ".ishne",
)  # fmt: skip
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
EXAMPLES = {  # name -> (SCP statements, description, seed)
    "normal": (["NORM", "SR"], "normal ECG, sinus rhythm", 1),
    "inferior-mi": (["IMI", "SR"], "inferior myocardial infarction", 2),
    "anteroseptal-mi": (["ASMI", "SR"], "anteroseptal myocardial infarction", 3),
    "lvh": (["LVH", "SR"], "left ventricular hypertrophy", 4),
    "complete-lbbb": (["CLBBB", "SR"], "complete left bundle branch block", 5),
    "atrial-fibrillation": (["AFIB", "NDT"], "atrial fibrillation, non-specific T changes", 6),
}
EXAMPLE_FS = 100
MAX_ABS_VALUE = 1e9  # any unit: beyond it a value is no ECG (and float32 would overflow)
# A body over the limit is still read (and dropped) up to this many bytes, so that the client, which
# may still be sending, receives the 413 rather than a connection reset.
DRAIN_FACTOR = 4
DRAIN_IDLE_S = 0.5
# Request bodies held at once, by default, in largest bodies (--max-inflight-mb).
DEFAULT_INFLIGHT_BODIES = 8


class ApiError(Exception):
    """A client error: HTTP status, a short code, the field at fault and what was expected."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_body(status: int, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "field": field, "message": message}}


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(error_body(exc.status, exc.code, exc.message, exc.field), exc.status)


# --- request and response schemas (what /docs shows) ---------------------------------------------


class EcgIn(BaseModel):
    """One ECG as numbers."""

    model_config = ConfigDict(extra="forbid")

    signal: list[list[float]] = Field(
        description="The ECG in the given units. Lead-major (default): one list of samples per "
        "lead, in the order of `leads`. Sample-major: one list of lead values per sample."
    )
    fs: float = Field(gt=0, le=20000, description="Sampling rate in Hz (resampled to the model's).")
    leads: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Lead names of the channels, e.g. I, II, III, aVR, aVL, aVF, V1-V6 (aliases "
        "such as AVR, DI, C1 are understood). Default: the model's 12 leads in its order.",
    )
    layout: Literal["lead-major", "sample-major"] = "lead-major"
    units: Literal["mV", "uV", "V"] = "mV"
    allow_missing_leads: bool = Field(
        default=False, description="Fill leads the model needs but the ECG lacks with zeros."
    )
    baseline: Literal["keep", "median", "highpass"] | None = Field(
        default=None,
        description="Each lead's baseline: filtered out below 0.5 Hz (offset and drift), its "
        "median subtracted (an offset), or kept as recorded. Default: as the model learnt its "
        "records, and highpass for a model that learnt them as recorded (PTB-XL's centred leads).",
    )
    name: str | None = Field(default=None, max_length=128, description="A name for the record.")


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[EcgIn] = Field(min_length=1)


class Explanation(BaseModel):
    target: str = Field(description="The class explained (the most probable one).")
    method: str
    fs: float
    leads: list[str]
    signal: list[list[float]] = Field(description="The ECG as the model saw it (mV, lead-major).")
    saliency: list[list[float]] = Field(description="Per-sample saliency, lead-major, 0 to 1.")


class PredictionOut(BaseModel):
    record: str
    probabilities: dict[str, float]
    labels: list[str] = Field(description="Classes at or above their decision threshold.")
    thresholds: dict[str, float]
    warnings: list[str]
    filled_leads: list[str]
    duration_s: float
    windows: int
    model_id: str
    explanation: Explanation | None = None


class BatchItemOut(BaseModel):
    record: str
    prediction: PredictionOut | None = None
    error: dict[str, Any] | None = None


class BatchOut(BaseModel):
    model_id: str
    results: list[BatchItemOut]


class ErrorOut(BaseModel):
    error: dict[str, Any] = Field(
        description="status, code, field (the part of the request at fault) and message"
    )


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut}
    for code in (400, 404, 408, 413, 415, 422, 503)  # fmt: skip
}
PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/EcgIn"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "A record's files: WFDB .hea with its .dat/.mat, "
                            "or one .csv / .npy (with fs), .edf, DICOM waveform .dcm, "
                            "HL7 aECG / GE MUSE / Philips / Mortara .xml, SCP-ECG .scp, "
                            "MFER .mwf or ISHNE Holter .ecg",
                        },
                        "fs": {"type": "number", "description": "Rate of a .csv/.npy file"},
                        "units": {"type": "string", "enum": ["mV", "uV", "V"]},
                        "allow_missing_leads": {"type": "boolean"},
                        "baseline": {"type": "string", "enum": list(BASELINES)},
                    },
                    "required": ["files"],
                }
            },
        },
    }
}


# --- the service ---------------------------------------------------------------------------------


@dataclass
class Settings:
    """What ``ecgcnn serve`` configures."""

    checkpoint: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    max_batch: int = DEFAULT_MAX_BATCH
    inference_threads: int = 2
    body_timeout_s: float = 30.0
    max_inflight_bytes: int | None = None  # request bodies held at once (None: 8 largest bodies)

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from ECGCNN_* variables (how uvicorn workers receive them)."""
        env = os.environ
        return cls(
            checkpoint=env.get("ECGCNN_CHECKPOINT") or None,
            max_body_bytes=int(float(env.get("ECGCNN_MAX_BODY_MB", 8)) * MiB),
            max_duration_s=float(env.get("ECGCNN_MAX_DURATION_S", DEFAULT_MAX_DURATION_S)),
            max_batch=int(env.get("ECGCNN_MAX_BATCH", DEFAULT_MAX_BATCH)),
            inference_threads=int(env.get("ECGCNN_INFERENCE_THREADS", 2)),
            body_timeout_s=float(env.get("ECGCNN_BODY_TIMEOUT_S", 30.0)),
            max_inflight_bytes=int(float(env["ECGCNN_MAX_INFLIGHT_MB"]) * MiB)
            if env.get("ECGCNN_MAX_INFLIGHT_MB")
            else None,
        )


@dataclass
class State:
    predictor: Predictor | None = None
    model_id: str = ""
    load_error: str | None = None
    limiter: anyio.CapacityLimiter | None = None
    started: float = field(default_factory=time.time)


def model_id(predictor: Predictor, path: str | None) -> str:
    """``name-task-<12 hex of the file's SHA-256>``: changes whenever the weights do."""
    digest = "unsaved"
    if path:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = h.hexdigest()[:12]
    name = (predictor.meta.get("model") or {}).get("name") or "model"
    return f"{name}-{predictor.meta.get('task') or 'task'}-{digest}"


def check_inflight(max_inflight_bytes: int, max_body_bytes: int) -> None:
    """The in-flight budget must hold the largest body, or such a body could never be answered."""
    if max_inflight_bytes < max_body_bytes:
        raise EcgcnnError(f"the in-flight budget ({max_inflight_bytes:,} bytes) must hold the "
                          f"largest body ({max_body_bytes:,})")  # fmt: skip


def create_app(settings: Settings | None = None, predictor: Predictor | None = None) -> FastAPI:
    """The ASGI app: serves ``predictor``, or loads ``settings.checkpoint`` in the background."""
    settings = settings or Settings()
    if settings.max_inflight_bytes is not None:
        check_inflight(settings.max_inflight_bytes, settings.max_body_bytes)
    if predictor is None and not settings.checkpoint:
        raise EcgcnnError("serve: give a checkpoint (or an exported .onnx model) to serve")
    state = State()

    async def load() -> None:
        try:
            # onnxruntime on one intra-op thread, as PyTorch is (_single_torch_thread)
            loaded = predictor or await anyio.to_thread.run_sync(
                partial(Predictor.load, settings.checkpoint, threads=1)
            )
            state.model_id = await anyio.to_thread.run_sync(model_id, loaded, settings.checkpoint)
            state.predictor = loaded
            log.info("serving %s", state.model_id)
        except Exception as exc:  # reported by /readyz and /healthz (nothing will load it now)
            state.load_error = f"{type(exc).__name__}: {exc}"
            log.error("could not load the model: %s", state.load_error)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        state.limiter = anyio.CapacityLimiter(max(1, settings.inference_threads))
        async with anyio.create_task_group() as tg:
            tg.start_soon(load)
            yield
            tg.cancel_scope.cancel()

    app = FastAPI(
        title="ecgcnn",
        version=__version__,
        summary="12-lead ECG classification with CNNs trained on PTB-XL (a research tool, "
        "not a medical device).",
        lifespan=lifespan,
        docs_url=None,  # served below from this package's dependencies, not from a CDN
        redoc_url=None,
    )
    app.state.ecgcnn = state
    app.state.settings = settings
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s,
        max_inflight_bytes=settings.max_inflight_bytes,
    )  # fmt: skip
    _error_handlers(app)

    def ready() -> Predictor:
        if state.predictor is None:
            if state.load_error:
                raise ApiError(
                    503, "load_failed", f"the model could not be loaded: {state.load_error}"
                )
            raise ApiError(503, "not_ready", "the model is still loading")
        return state.predictor

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(partial(fn, *args), limiter=state.limiter)

    static = resources.files("ecgcnn").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    _api_docs(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_static("index.html"))

    @app.get("/healthz", tags=["operations"], responses={503: {"model": ErrorOut}})
    async def healthz() -> dict[str, Any]:
        """Liveness: the process answers, and its model is loaded or still loading (503 once
        loading has failed: a restart is the only way on)."""
        if state.load_error:
            ready()
        return {"status": "ok", "uptime_s": round(time.time() - state.started, 1)}

    @app.get("/readyz", tags=["operations"], responses={503: {"model": ErrorOut}})
    async def readyz() -> dict[str, Any]:
        """Readiness: the model is loaded and can predict."""
        ready()
        return {"status": "ready", "model_id": state.model_id}

    @app.get("/v1/model", tags=["model"], responses={503: {"model": ErrorOut}})
    async def model_info() -> dict[str, Any]:
        """The served model: classes, thresholds, input rate and window, version, metrics."""
        p = ready()
        meta = p.meta
        return {
            "id": state.model_id,
            "name": (meta.get("model") or {}).get("name"),
            "members": int((meta.get("model") or {}).get("members", 1)),
            "task": meta.get("task"),
            "backend": p.backend,
            "classes": p.classes,
            "thresholds": dict(zip(p.classes, map(float, p.thresholds), strict=True)),
            "leads": list(p.leads),
            "fs": p.fs,
            "input_length": meta.get("input_length"),
            "window": p.window,
            "stride": p.stride,
            "aggregate": p.aggregate,
            # the baseline of the records it learnt from, and the one a request gets by default
            "trained_baseline": p.trained_baseline,
            "default_baseline": p.default_baseline,
            "version": meta.get("version"),
            "epoch": meta.get("epoch"),
            "metrics": meta.get("metrics"),
            "limits": {
                "max_body_bytes": settings.max_body_bytes,
                "max_duration_s": settings.max_duration_s,
                "max_batch": settings.max_batch,
            },
        }

    @app.get("/v1/examples", tags=["examples"])
    async def examples() -> list[dict[str, str]]:
        """Bundled synthetic ECGs (not patient data) to try the service with."""
        return [{"name": k, "description": v[1]} for k, v in EXAMPLES.items()]

    @app.get("/v1/examples/{name}", tags=["examples"], response_model=EcgIn, responses=ERRORS)
    async def example(name: str) -> dict[str, Any]:
        """One example as a request body for /v1/predict (lead-major, mV, 100 Hz)."""
        if name not in EXAMPLES:
            raise ApiError(404, "not_found", f"no example {name!r}; expected one of "
                           f"{', '.join(EXAMPLES)}", "name")  # fmt: skip
        return example_body(name)

    @app.post("/v1/predict", tags=["predict"], response_model=PredictionOut,
              response_model_exclude_none=True, responses=ERRORS, openapi_extra=PREDICT_BODY)  # fmt: skip
    async def predict(request: Request, explain: bool = False) -> dict[str, Any]:
        """Probabilities and labels for one ECG (JSON or uploaded files); ``?explain=true`` adds
        the saliency of the most probable class."""
        p = ready()
        if explain and p.model is None:
            raise ApiError(422, "not_supported", "explanations need a PyTorch checkpoint; this "
                           "server runs an ONNX model", "explain")  # fmt: skip
        kind = _content_kind(request)
        if kind == "json":
            raw = await request.body()
            return await run(_predict_raw, p, raw, settings, state.model_id, explain)
        groups = await _uploads(request, settings)
        if len(groups) != 1:
            for upload in groups.values():
                upload.cleanup()
            raise ApiError(422, "one_record", "expected the files of one record, got records "
                           f"{', '.join(groups)}; use /v1/predict/batch for several", "files")  # fmt: skip
        ((name, upload),) = groups.items()
        try:
            return await run(_predict_upload, p, name, upload, settings, state.model_id, explain)
        finally:
            upload.cleanup()

    @app.post("/v1/predict/batch", tags=["predict"], response_model=BatchOut,
              response_model_exclude_none=True, responses=ERRORS, openapi_extra={"requestBody": {
                  "required": True, "content": {
                      "application/json": {"schema": {"$ref": "#/components/schemas/BatchIn"}},
                      "multipart/form-data": PREDICT_BODY["requestBody"]["content"]["multipart/form-data"]}}})  # fmt: skip
    async def predict_batch(request: Request) -> dict[str, Any]:
        """Several ECGs at once; a bad record gets an error of its own, the others their results."""
        p = ready()
        kind = _content_kind(request)
        results: list[dict[str, Any]] = []
        if kind == "json":
            raw = await run(parse_json, await request.body())
            records = raw.get("records") if isinstance(raw, dict) else None
            if not isinstance(records, list) or not records:
                raise ApiError(422, "invalid_field", "expected a non-empty list of records like "
                               "/v1/predict's body", "records")  # fmt: skip
            extra = sorted(set(raw) - set(BatchIn.model_fields))
            if extra:  # as /v1/predict does: a misspelt field is not silently dropped
                raise ApiError(422, "invalid_field", f"{extra[0]}: unknown field; expected only "
                               "records", extra[0])  # fmt: skip
            _check_batch(len(records), settings)
            for i, item in enumerate(records):
                label = item.get("name") if isinstance(item, dict) else None
                record = str(label or f"record-{i}")
                try:
                    body = _validate(EcgIn, item, prefix=f"records[{i}]")
                    body.name = record  # the prediction names the record as the batch does
                    out = await run(_predict_json, p, body, settings, state.model_id, False)
                    results.append({"record": record, "prediction": out})
                except ApiError as exc:
                    field = exc.field
                    if field is not None and not field.startswith("records["):
                        field = f"records[{i}].{field}"  # as the schema's errors name it
                    results.append({"record": record, "error": error_body(
                        exc.status, exc.code, exc.message, field)["error"]})  # fmt: skip
        else:
            groups = await _uploads(request, settings)
            _check_batch(len(groups), settings)
            for name, upload in groups.items():
                try:
                    out = await run(
                        _predict_upload, p, name, upload, settings, state.model_id, False
                    )
                    results.append({"record": name, "prediction": out})
                except ApiError as exc:
                    results.append({"record": name, "error": error_body(
                        exc.status, exc.code, exc.message, exc.field)["error"]})  # fmt: skip
                finally:
                    upload.cleanup()
        return {"model_id": state.model_id, "results": results}

    return app


def _api_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc with their scripts from the fastapi-offline package: FastAPI's
    own pages load them from cdn.jsdelivr.net and stay blank on a network without the internet."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html

    assets = resources.files("fastapi_offline").joinpath("static")
    app.mount("/docs-assets", StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} API",
            swagger_js_url=f"{root}/docs-assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs-assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs-assets/favicon.png",
        )  # fmt: skip

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} API",
            redoc_js_url=f"{root}/docs-assets/redoc.standalone.js",
            redoc_favicon_url=f"{root}/docs-assets/favicon.png", with_google_fonts=False,
        )  # fmt: skip


def app_from_env() -> FastAPI:
    """The app factory uvicorn's workers call (``ecgcnn serve`` sets the ECGCNN_* variables)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    _single_torch_thread()
    return create_app(Settings.from_env())


def _single_torch_thread() -> None:
    """One intra-op thread per inference thread: parallelism comes from concurrent requests."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


# --- errors ---------------------------------------------------------------------------------------


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        return JSONResponse(error_body(exc.status_code, code, message), exc.status_code,
                            headers=getattr(exc, "headers", None))  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(_from_validation(exc.errors()))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(500, "internal_error", "internal error; see the server "
                                       "log"), 500)  # fmt: skip


def _from_validation(errors: Any, prefix: str = "") -> ApiError:
    first = list(errors)[0]
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error") or first.get("msg")
        return ApiError(400, "malformed_json", f"body is not valid JSON ({detail})", "body")
    loc = [str(x) for x in first.get("loc", ()) if x not in ("body",)]
    path = prefix
    for part in loc:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    expected = first.get("msg", "invalid value")
    return ApiError(422, "invalid_field", f"{path or 'body'}: {expected}", path or "body")


def _validate(schema: type[BaseModel], raw: Any, prefix: str = "") -> Any:
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        raise _from_validation(exc.errors(include_url=False), prefix) from None


# --- request bodies -------------------------------------------------------------------------------


def _content_kind(request: Request) -> str:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        return "json"
    if ctype == "multipart/form-data":
        return "multipart"
    raise ApiError(415, "unsupported_media_type", f"content type {ctype or '(none)'!r}: expected "
                   "application/json or multipart/form-data", "content-type")  # fmt: skip


def parse_json(body: bytes) -> Any:
    """The parsed body, or a 400 naming what is wrong with it."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "malformed_json", f"body is not valid JSON ({exc})", "body") from None
    except RecursionError:
        raise ApiError(400, "malformed_json", "body is nested too deeply", "body") from None


def _check_batch(n: int, settings: Settings) -> None:
    if n > settings.max_batch:
        raise ApiError(413, "batch_too_large", f"{n} records in one batch; at most "
                       f"{settings.max_batch}", "records")  # fmt: skip


@dataclass
class Upload:
    """The files of one uploaded record, in a temporary folder of their own."""

    folder: tempfile.TemporaryDirectory[str]
    files: list[Path]
    fs: float | None
    units: str
    allow_missing_leads: bool
    baseline: str | None

    def cleanup(self) -> None:
        self.folder.cleanup()

    def record_path(self) -> Path:
        hea = [f for f in self.files if f.suffix.lower() == ".hea"]
        return hea[0] if hea else self.files[0]


def _starts_like_dicom(upload: Any) -> bool:
    """Whether an uploaded file begins with the DICOM preamble (128 bytes, then 'DICM')."""
    from ecgcnn.waveforms import has_dicom_preamble

    head = upload.file.read(132)
    upload.file.seek(0)
    return has_dicom_preamble(head)


async def _uploads(request: Request, settings: Settings) -> dict[str, Upload]:
    """Uploaded files grouped by record (a WFDB record by its file stem, other files one each),
    each group written to a temporary folder."""
    try:
        form = await request.form(max_files=4 * settings.max_batch, max_fields=16)
    except Exception as exc:  # python-multipart's and starlette's parse errors
        raise ApiError(400, "malformed_multipart", f"could not parse the upload ({exc})",
                       "body") from None  # fmt: skip
    fs_raw = form.get("fs")
    fs: float | None = None
    if fs_raw not in (None, ""):
        try:
            fs = float(str(fs_raw))
        except ValueError:
            fs = math.nan
        if not (math.isfinite(fs) and 0 < fs <= 20000):
            raise ApiError(422, "invalid_field", f"fs: expected a rate in Hz, got {fs_raw!r}", "fs")
    units = str(form.get("units") or "mV")
    if units not in ("mV", "uV", "V"):
        raise ApiError(422, "invalid_field", f"units: expected mV, uV or V, got {units!r}", "units")
    allow = str(form.get("allow_missing_leads") or "false").lower() in ("1", "true", "yes", "on")
    baseline = str(form.get("baseline") or "") or None  # None: the model's default
    if baseline is not None and baseline not in BASELINES:
        raise ApiError(422, "invalid_field", f"baseline: expected one of {', '.join(BASELINES)}, "
                       f"got {baseline!r}", "baseline")  # fmt: skip
    uploads = [v for k, v in form.multi_items() if k == "files" and not isinstance(v, str)]
    if not uploads:
        raise ApiError(422, "missing_field", "files: expected one or more uploaded files (a WFDB "
                       ".hea with its .dat/.mat, or a .csv/.npy/.edf/.dcm/.xml/.scp/.mwf/.ecg)", "files")  # fmt: skip
    groups: dict[str, list[tuple[str, Any]]] = {}
    for up in uploads:
        name = up.filename or ""  # a bare name: a path ("../x.hea", "a/b.dat") is refused
        suffix = Path(name).suffix.lower()
        # DICOM media name files IM000001 or by UID (1.2.840...1): told by the DICOM preamble
        dicom_by_name = (suffix == "" or suffix[1:].isdigit()) and _starts_like_dicom(up)
        if not SAFE_NAME.match(name) or not (suffix in UPLOAD_SUFFIXES or dicom_by_name):
            raise ApiError(422, "invalid_file", f"files: {up.filename!r} is not a usable file "
                           f"name; expected letters, digits, '.', '_' or '-' and one of "
                           f"{', '.join(UPLOAD_SUFFIXES)} (or a DICOM file named by its UID)",
                           "files")  # fmt: skip
        # a WFDB record is its .hea with its signal file; any other file is a record of its own
        # (a.dcm and a.xml are two records, not one)
        key = Path(name).stem if suffix in (".hea", ".dat", ".mat") else name
        groups.setdefault(key, []).append((name, up))
    # A record is reported by its stem ("ecg" for ecg.csv), by its file name where two share one
    stems = [
        Path(key).stem if Path(key).suffix.lower() in UPLOAD_SUFFIXES else key for key in groups
    ]
    out: dict[str, Upload] = {}
    try:
        for (key, items), stem in zip(groups.items(), stems, strict=True):
            folder = tempfile.TemporaryDirectory(prefix="ecgcnn-upload-")
            paths = []
            out[stem if stems.count(stem) == 1 else key] = Upload(
                folder, paths, fs, units, allow, baseline
            )
            for name, up in items:
                path = Path(folder.name) / name
                path.write_bytes(await up.read())
                paths.append(path)
    except BaseException:
        for up in out.values():
            up.cleanup()
        raise
    return out


# --- prediction (runs in the worker threads) -----------------------------------------------------


def _predict_raw(
    p: Predictor, raw: bytes, settings: Settings, mid: str, explain: bool
) -> dict[str, Any]:
    """Parse, validate and predict a JSON body: all of it off the event loop."""
    try:  # pydantic parses and validates in one pass: ~6x faster than json.loads, then validate
        body = EcgIn.model_validate_json(raw)
    except ValidationError as exc:
        raise _from_validation(exc.errors(include_url=False, include_input=False)) from None
    return _predict_json(p, body, settings, mid, explain)


def _predict_json(
    p: Predictor, body: EcgIn, settings: Settings, mid: str, explain: bool
) -> dict[str, Any]:
    name = body.name or "signal"
    n_rows = len(body.signal)
    if n_rows == 0:
        raise ApiError(422, "invalid_shape", "signal: empty; expected one list per lead", "signal")
    lengths = {len(row) for row in body.signal}
    if len(lengths) != 1:
        first = len(body.signal[0])
        bad = next(i for i, row in enumerate(body.signal) if len(row) != first)
        raise ApiError(422, "invalid_shape", f"signal[{bad}]: {len(body.signal[bad])} values, "
                       f"expected {first} like signal[0] (rows must have equal length)",
                       f"signal[{bad}]")  # fmt: skip
    leads = body.leads
    if leads is not None:
        unknown = [f"leads[{i}]={n!r}" for i, n in enumerate(leads) if canonical_lead(n) is None]
        if unknown:
            raise ApiError(422, "unknown_lead", f"unknown lead name(s) {', '.join(unknown)}; "
                           f"expected names such as {', '.join(p.leads)}", "leads")  # fmt: skip
    arr = np.asarray(body.signal, dtype=np.float64)
    if body.layout == "sample-major":
        arr = arr.T
    n_leads = len(leads) if leads is not None else len(p.leads)
    if arr.shape[0] != n_leads:
        what = "rows (lead-major)" if body.layout == "lead-major" else "values per sample"
        raise ApiError(422, "invalid_shape", f"signal: {arr.shape[0]} {what}, expected one per "
                       f"lead ({n_leads}: {', '.join(leads or p.leads)})", "signal")  # fmt: skip
    if not np.isfinite(arr).all():
        lead, sample = np.argwhere(~np.isfinite(arr))[0]
        raise ApiError(422, "not_finite", f"signal: lead {lead} sample {sample} is NaN or "
                       "infinite; expected finite numbers", "signal")  # fmt: skip
    if np.abs(arr).max(initial=0.0) > MAX_ABS_VALUE:
        raise ApiError(422, "out_of_range", f"signal: values up to {np.abs(arr).max():.3g} "
                       f"{body.units}; expected an ECG (at most {MAX_ABS_VALUE:g})", "signal")  # fmt: skip
    arr = arr.astype(np.float32)
    duration = arr.shape[1] / body.fs
    if duration > settings.max_duration_s:
        raise ApiError(422, "too_long", f"signal: {duration:g} s at {body.fs:g} Hz; at most "
                       f"{settings.max_duration_s:g} s per record", "signal")  # fmt: skip
    try:
        rec = conform(arr.T, body.fs, leads, name, p.leads, body.units, body.allow_missing_leads)
        spec = p.input_spec(body.fs, body.units, body.allow_missing_leads, baseline=body.baseline)
        prepared = spec.prepare(rec)
    except RecordError as exc:
        raise _record_error(exc, "signal") from None
    pred = p._predict_prepared([prepared])[0]
    return _prediction_out(p, pred, mid, rec if explain else None, spec.baseline)


def _predict_upload(
    p: Predictor, name: str, upload: Upload, settings: Settings, mid: str, explain: bool
) -> dict[str, Any]:
    from ecgcnn import recording

    def too_long(seconds: float) -> ApiError:
        return ApiError(422, "too_long", f"files: record {name} lasts {seconds:g} s; at most "
                        f"{settings.max_duration_s:g} s", "files")  # fmt: skip

    spec = p.input_spec(upload.fs, upload.units, upload.allow_missing_leads,
                        baseline=upload.baseline)  # fmt: skip
    # by the header first: a compressed .mat of a few KiB may hold hours of signal
    length = recording.record_length(upload.record_path(), upload.fs)
    if length is not None and length[0] / length[1] > settings.max_duration_s:
        raise too_long(length[0] / length[1])
    try:
        rec = recording.read_recording(upload.record_path(), p.leads, upload.fs, upload.units,
                                       upload.allow_missing_leads)  # fmt: skip
        if rec.duration_s > settings.max_duration_s:
            raise too_long(rec.duration_s)
        prepared = spec.prepare(rec)
    except EcgcnnError as exc:
        raise _record_error(exc, "files", upload.folder.name) from None
    pred = replace(p._predict_prepared([prepared])[0], record=name)
    return _prediction_out(p, pred, mid, rec if explain else None, spec.baseline)


# How conform() words problems with the lead names (the JSON field ``leads``).
LEAD_PROBLEMS = (
    "missing lead",
    "lead(s) ",
    "not a 12-lead",
    "none of the leads",
    "wrong lead count",
)
# Command-line wording in library messages, as the API's fields say it.
CLI_TO_API = {
    "(--fs HZ)": "(form field fs, Hz)",
    "(--allow-missing-leads fills missing leads with zeros)": "(allow_missing_leads fills them "
    "with zeros)",
    "--allow-missing-leads ": "allow_missing_leads ",
    "--baseline ": "baseline ",
    "--fs ": "fs ",
    "--units ": "units ",
}


def _api_words(text: str) -> str:
    """A library message with its command-line wording as the API's fields say it."""
    for cli, api in CLI_TO_API.items():
        text = text.replace(cli, api)
    return text


def _record_error(exc: EcgcnnError, where: str, folder: str | None = None) -> ApiError:
    message = str(exc)
    problem = exc.problem if isinstance(exc, RecordError) else message  # without the record's name
    if folder:  # name the uploaded file, not the server's temporary folder
        message = message.replace(folder.rstrip("/") + "/", "")
    message = _api_words(message)
    field_name = where
    lowered = problem.lower()
    if where == "signal" and lowered.startswith(LEAD_PROBLEMS):
        field_name = "leads"
    code = "too_short" if lowered.startswith("too short") else "invalid_record"
    return ApiError(422, code, f"{field_name}: {message}", field_name)


def _prediction_out(
    p: Predictor, pred: Prediction, mid: str, rec: Any, baseline: str | None = None
) -> dict[str, Any]:
    out = {
        "record": pred.record,
        "probabilities": pred.probabilities,
        "labels": pred.labels,
        "thresholds": dict(zip(p.classes, map(float, p.thresholds), strict=True)),
        "warnings": [_api_words(w) for w in pred.warnings],
        "filled_leads": pred.filled_leads,
        "duration_s": pred.duration_s,
        "windows": pred.windows,
        "model_id": mid,
    }
    if rec is not None:
        out["explanation"] = explain_prediction(p, rec, pred, baseline)
    return out


def explain_prediction(
    p: Predictor, rec: Any, pred: Prediction, baseline: str | None = None
) -> dict[str, Any]:
    """Saliency of the most probable class's score as predict reports it (the aggregated window
    probability) over the whole record, scaled to 0-1, with the signal as the model saw it."""
    from ecgcnn.explain import explain_signal
    from ecgcnn.predict import pad_near_miss

    target = max(pred.probabilities, key=pred.probabilities.__getitem__)
    rec = rec.validate()  # as predict scored it: a flat lead zero-filled where allowed
    signal = remove_baseline(rec.signal, rec.fs, baseline or p.default_baseline)
    x, _ = pad_near_miss(resample(signal, rec.fs, p.fs), p.window)
    x = np.ascontiguousarray(x.T, dtype=np.float32)
    # no image maps (not returned): they would hook the model other requests are using
    ex = explain_signal(p.model, x, p.classes.index(target), "saliency", p.window, p.stride,
                        p.aggregate, image_maps=False)  # fmt: skip
    saliency = ex.attribution
    top = float(saliency.max())
    if top > 0:
        saliency = saliency / top
    return {
        "target": target,
        "method": "saliency",
        "fs": p.fs,
        "leads": list(p.leads),
        "signal": np.round(x.astype(np.float64), 4).tolist(),  # float64: short decimals in JSON
        "saliency": np.round(saliency.astype(np.float64), 3).tolist(),
    }


# --- examples and static files --------------------------------------------------------------------


@lru_cache(maxsize=len(EXAMPLES))
def example_body(name: str) -> dict[str, Any]:
    """A bundled synthetic example as a /v1/predict body (synthesised once; do not mutate)."""
    from ecgcnn.records import LEADS
    from ecgcnn.synthetic import synthesize_ecg

    codes, description, seed = EXAMPLES[name]
    signal = synthesize_ecg(codes, fs=EXAMPLE_FS, rng=np.random.default_rng(seed))
    return {
        "signal": np.round(signal.T.astype(np.float64), 4).tolist(),
        "fs": EXAMPLE_FS,
        "leads": list(LEADS),
        "layout": "lead-major",
        "units": "mV",
        "name": f"example: {description}",
    }


def _static(name: str) -> str:
    return resources.files("ecgcnn").joinpath("static", name).read_text(encoding="utf-8")


# --- body limit -----------------------------------------------------------------------------------


class BodyLimit:
    """Reads a request body fully before the app sees it: 413 past ``max_bytes`` (by the
    Content-Length header or by counting), 408 if it does not arrive within ``timeout_s``.
    A client that disconnects mid-upload just ends its request.

    The app then works on at most ``max_inflight_bytes`` of bodies at once (each counted by the
    bytes read), until their answers are sent: a parsed body takes several times its size, so a
    burst of large ones could otherwise exceed the process's memory limit. A body past the budget
    waits its turn, first come first served (a large one is not passed over by smaller ones), for
    up to ``timeout_s``; then 503 ``busy``. Nothing is reserved before a body has arrived, so idle
    connections hold none of the budget."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, timeout_s: float, max_inflight_bytes: int | None = None
    ) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s
        self.max_inflight = max_inflight_bytes or DEFAULT_INFLIGHT_BODIES * max_bytes
        check_inflight(self.max_inflight, max_bytes)
        self.inflight = 0
        self._queue: deque[tuple[int, anyio.Event]] = deque()  # waiting: (size, its go-ahead)

    async def _reserve(self, size: int) -> bool:
        """Wait (up to ``timeout_s``, behind those already waiting) until ``size`` more bytes fit
        in the in-flight budget; False if they did not."""
        if not self._queue and self.inflight + size <= self.max_inflight:
            self.inflight += size
            return True
        entry = (size, anyio.Event())
        self._queue.append(entry)
        try:
            with anyio.move_on_after(self.timeout_s):
                await entry[1].wait()
        except BaseException:  # cancelled (shutdown): nothing of it stays counted or queued
            self._withdraw(entry)
            raise
        if entry[1].is_set():  # admitted (the release counted it), even if just as time ran out
            return True
        self._withdraw(entry)
        return False

    def _withdraw(self, entry: tuple[int, anyio.Event]) -> None:
        if entry[1].is_set():
            self._release(entry[0])
        else:
            self._queue.remove(entry)
            self._admit()  # those behind it may fit now

    def _admit(self) -> None:
        while self._queue and self.inflight + self._queue[0][0] <= self.max_inflight:
            size, go = self._queue.popleft()
            self.inflight += size
            go.set()

    def _release(self, size: int) -> None:
        self.inflight -= size
        self._admit()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        expects_continue = headers.get(b"expect", b"").lower() == b"100-continue"
        too_big = False
        declared_size = 0
        if declared is not None:
            try:
                declared_size = int(declared)
                if declared_size < 0:
                    raise ValueError
            except ValueError:
                await _reply(send, 400, "bad_request", "Content-Length is not a number",
                             "content-length")  # fmt: skip
                return
            if declared_size > self.max_bytes:
                too_big = True
                # Read (and drop) a body the client is already sending, so that it sees the 413
                # rather than a reset; one that waits for "100 Continue", or a huge one, is not read.
                if expects_continue or declared_size > DRAIN_FACTOR * self.max_bytes:
                    await self._too_big(send, declared_size)
                    return
        await self._read_and_call(scope, receive, send, too_big, declared_size, declared)

    async def _drain(self, receive: Receive, deadline: float, size: int) -> bool:
        """Read and drop a body already being sent (up to DRAIN_FACTOR times the limit, until its
        end or a pause of DRAIN_IDLE_S): False if the client went away."""
        while size <= DRAIN_FACTOR * self.max_bytes:
            try:
                with anyio.fail_after(max(min(deadline - time.monotonic(), DRAIN_IDLE_S), 0.0)):
                    message = await receive()
            except TimeoutError:
                break
            if message["type"] == "http.disconnect":
                return False
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return True

    async def _read_and_call(
        self, scope: Scope, receive: Receive, send: Send, too_big: bool, declared_size: int,
        declared: bytes | None,
    ) -> None:  # fmt: skip
        chunks: list[bytes] = []
        size = 0
        ended = False  # the last piece of the body arrived
        deadline = time.monotonic() + self.timeout_s
        while not too_big and not ended:  # the whole body within timeout_s
            try:
                with anyio.fail_after(max(deadline - time.monotonic(), 0.0)):
                    message = await receive()
            except TimeoutError:
                await _reply(send, 408, "body_timeout", f"the body did not arrive within "
                             f"{self.timeout_s:g} s", "body")  # fmt: skip
                return
            if message["type"] == "http.disconnect":
                return  # the client went away: nothing to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                too_big = True
                chunks.clear()
            else:
                chunks.append(chunk)
            ended = not message.get("more_body", False)
        if too_big:
            # the rest is drained, up to the first pause of DRAIN_IDLE_S: a client waiting for
            # the answer is not kept waiting
            if not ended and not await self._drain(receive, deadline, size):
                return
            await self._too_big(send, declared_size if declared is not None else size)
            return
        body = b"".join(chunks)
        chunks.clear()  # one copy of the body while it waits, not two
        if not await self._reserve(len(body)):
            await _reply(send, 503, "busy", f"busy with {self.inflight:,} bytes of request "
                         f"bodies (at most {self.max_inflight:,} at once); try again", None,
                         [(b"retry-after", b"1")])  # fmt: skip
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            await self.app(scope, replay, send)
        finally:
            self._release(len(body))

    async def _too_big(self, send: Send, size: int) -> None:
        await _reply(send, 413, "body_too_large", f"body of {size:,} bytes or more; at most "
                     f"{self.max_bytes:,}", "body")  # fmt: skip


async def _reply(
    send: Send, status: int, code: str, message: str, field: str | None,
    headers: list[tuple[bytes, bytes]] = (),
) -> None:  # fmt: skip
    payload = json.dumps(error_body(status, code, message, field)).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
        (b"connection", b"close"), *headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": payload})


def serve(
    settings: Settings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
    log_level: str = "info", predictor: Predictor | None = None,
) -> None:  # fmt: skip
    """Run uvicorn (``ecgcnn serve``): one process serving ``predictor`` (loaded from
    ``settings.checkpoint`` when None), or ``workers`` processes each loading the checkpoint."""
    import uvicorn

    options = {"host": host, "port": port, "log_level": log_level, "timeout_graceful_shutdown": 10}
    if workers == 1:
        _single_torch_thread()
        if predictor is None:
            predictor = Predictor.load(settings.checkpoint, threads=1)
        uvicorn.run(create_app(settings, predictor), workers=1, **options)
        return
    env = {
        "ECGCNN_CHECKPOINT": str(Path(settings.checkpoint).resolve())
        if settings.checkpoint
        else "",
        "ECGCNN_MAX_BODY_MB": str(settings.max_body_bytes / MiB),
        "ECGCNN_MAX_DURATION_S": str(settings.max_duration_s),
        "ECGCNN_MAX_BATCH": str(settings.max_batch),
        "ECGCNN_INFERENCE_THREADS": str(settings.inference_threads),
        "ECGCNN_BODY_TIMEOUT_S": str(settings.body_timeout_s),
        "ECGCNN_MAX_INFLIGHT_MB": str(settings.max_inflight_bytes / MiB)
        if settings.max_inflight_bytes
        else "",
    }
    os.environ.update(env)
    uvicorn.run("ecgcnn.serve:app_from_env", factory=True, workers=workers, **options)
