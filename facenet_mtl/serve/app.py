"""The HTTP API and its page, a Starlette app around one `FacePredictor`.

    POST /v1/predict   an image -> {"path", "model", "faces": [...], ["note"], ["warning"], "width", "height"}
                       as multipart (field `image` or `file`), JSON {"image": "<base64 or data: URL>"},
                       or the raw bytes with an image/* content type; `?detect=false` for a face crop
    GET  /v1/model     the model card: id, version, tasks, label names, input size, test figures
    GET  /healthz      {"status": "ok", "model": id}
    GET  /             the page: drop a photo, see its faces boxed and labelled, and the JSON

Errors are JSON `{"error": message, "status": code}`: 400 not an image (or a bad request, or a
`Host` the server does not answer to), 403 a request sent by a page of another origin,
413 over the upload limit, 503 (with `Retry-After`) when more images wait than the queue holds,
404 and 405. The model is loaded once, before the app is made. Uploads are decoded on a thread
pool, and concurrent requests are gathered for a few milliseconds and predicted together
(`batching.PredictionBatcher`), so the event loop only reads requests and writes answers.

Who may call it: only requests whose `Host` is one of `allowed_hosts` (by default the names of
this machine's loopback, and the address it listens on): a page on another site that points a
DNS name at 127.0.0.1 (DNS rebinding) gets 400. The server sends no CORS headers, so a page of
another origin cannot read any answer, and a request carrying an `Origin` header of another
host (a cross-site form or fetch) is refused with 403 before it costs a prediction.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from facenet_mtl.data import images
from facenet_mtl.errors import DataError
from facenet_mtl.inference.records import in_original_pixels, make_record
from facenet_mtl.serve.batching import PredictionBatcher, QueueFull

if TYPE_CHECKING:
    from facenet_mtl.inference.predictor import FacePredictor

DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# An upload over the limit is still read (and dropped) up to this many bytes before the 413 goes
# out: a client that sends its whole body before reading (urllib, requests) then reads the 413
# instead of a broken pipe. Beyond it the connection is closed unread.
DRAIN_BYTES = 64 * 1024 * 1024
MAX_BATCH = 16  # images predicted in one pass
BATCH_WAIT_MS = 5.0  # how long the first image of a pass waits for others
MAX_QUEUE = 64  # images waiting beyond this get 503
RETRY_AFTER_S = 1
STATIC = resources.files("facenet_mtl.serve") / "static"


class UploadTooLarge(Exception):
    pass


class LimitUploadSize:
    """ASGI middleware: a request body over `max_bytes` gets 413, whether its Content-Length
    says so up front or a chunked body grows past the limit while it is read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _drain(receive, 0)
            return await self._too_large(send)
        received, started, more = 0, False, True

        async def counting_receive():
            nonlocal received, more
            message = await receive()
            received += len(message.get("body", b""))
            more = message.get("more_body", False)
            if received > self.max_bytes:
                raise UploadTooLarge()
            return message

        async def watching_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except UploadTooLarge:
            if not started:
                if more:
                    await _drain(receive, received)
                await self._too_large(send)

    async def _too_large(self, send):
        limit_mb = self.max_bytes / (1024 * 1024)
        response = _error(413, f"the upload is over the size limit of {limit_mb:g} MB; send a smaller image")
        await response({"type": "http"}, None, send)


async def _drain(receive, received):
    """Read and drop the rest of a request body, up to `DRAIN_BYTES` in all."""
    more = True
    while more and received <= DRAIN_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        received += len(message.get("body", b""))
        more = message.get("more_body", False)


class AllowedHosts:
    """ASGI middleware: a request whose `Host` is not in `hosts` gets 400, and one whose `Origin`
    names another host gets 403 (JSON errors both); see the module's docstring."""

    def __init__(self, app: ASGIApp, hosts: tuple[str, ...]) -> None:
        self.app, self.hosts = app, {host.lower().strip("[]") for host in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "*" in self.hosts:
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        host = _host_name(headers.get(b"host", b"").decode("latin-1"))
        if host not in self.hosts:
            response = _error(400, f"this server does not answer to the host name '{host[:100]}' (it answers "
                                   f"to {', '.join(sorted(self.hosts))}); start it with --allow-host "
                                   f"{host[:100] or 'NAME'} if that is its name")
            return await response(scope, receive, send)
        origin = headers.get(b"origin")
        if origin is not None and origin != b"null" and _host_name(origin.decode("latin-1").split("://", 1)[-1]) \
                not in self.hosts:
            response = _error(403, "requests from pages of other origins are refused; call the API from a "
                                   "program, or from the page this server serves")
            return await response(scope, receive, send)
        await self.app(scope, receive, send)


def _host_name(value):
    """The host of a `Host` header value (`name:port`, `[::1]:port`), lower-case, without the port."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _error(status, message):
    return JSONResponse({"error": message, "status": status}, status_code=status)


def create_app(predictor: FacePredictor, max_upload_bytes: int = DEFAULT_MAX_UPLOAD, threads: int = 1,
               max_batch: int = MAX_BATCH, batch_wait_ms: float = BATCH_WAIT_MS,
               max_queue: int = MAX_QUEUE, allowed_hosts: tuple[str, ...] = LOCAL_HOSTS) -> Starlette:
    """The app for `predictor` (already loaded). `threads` batches may run at once, each of up
    to `max_batch` images gathered for `batch_wait_ms`; beyond `max_queue` waiting images, 503;
    requests are answered for the host names in `allowed_hosts` ("*": any)."""
    decoder = ThreadPoolExecutor(2, thread_name_prefix="decode")
    batcher = PredictionBatcher(predictor, max_batch=max_batch, wait_ms=batch_wait_ms, max_queue=max_queue,
                                workers=threads)
    card = predictor.describe()
    if card.get("path"):
        card["path"] = Path(card["path"]).name  # the file's name, never where it sits on this machine

    async def index(request):
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    async def healthz(request):
        return JSONResponse({"status": "ok", "model": predictor.model_id})

    async def model(request):
        return JSONResponse({**card, "max_upload_bytes": max_upload_bytes})

    async def predict(request):
        name, data, detect = await _read_image(request)
        started = time.perf_counter()
        try:
            rgb, scale = await asyncio.get_running_loop().run_in_executor(  # a large photo decoded reduced
                decoder, images.decode_bytes_scaled, data, name)
        except DataError as exc:
            raise HTTPException(400, f"{name}: not an image that can be read ({exc.problem}); "
                                     "send a JPEG, PNG, BMP or WebP photo") from None
        try:
            faces = await batcher.predict(rgb, detect)
        except QueueFull:
            raise HTTPException(503, f"the server is busy ({max_queue} images are waiting); try again in "
                                     f"{RETRY_AFTER_S} s", headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        record = make_record(predictor.card, name, in_original_pixels(faces, scale))
        width, height = images.header_size(data, name) or (rgb.shape[1], rgb.shape[0])  # the original's pixels
        record.update(width=int(width), height=int(height),
                      milliseconds=round(1000 * (time.perf_counter() - started), 1))
        return JSONResponse(record)

    async def http_error(request, exc):
        message = exc.detail
        if exc.status_code == 404:
            message = (f"no such path: {request.url.path}; the API is POST /v1/predict, GET /v1/model, "
                       "GET /healthz, and the page at /")
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = f"{request.method} is not allowed on {request.url.path}; use {allowed}"
        return JSONResponse({"error": message, "status": exc.status_code}, status_code=exc.status_code,
                            headers=exc.headers if exc.status_code in (405, 503) else None)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        batcher.close()
        decoder.shutdown(wait=False)

    app = Starlette(routes=[Route("/", index), Route("/healthz", healthz), Route("/v1/model", model),
                            Route("/v1/predict", predict, methods=["POST"]),
                            Mount("/static", StaticFiles(directory=str(STATIC)), name="static")],
                    exception_handlers={HTTPException: http_error}, lifespan=lifespan)
    app.add_middleware(LimitUploadSize, max_bytes=max_upload_bytes)
    app.add_middleware(AllowedHosts, hosts=tuple(allowed_hosts))
    app.state.batcher = batcher
    return app


async def _read_image(request: Request) -> tuple[str, bytes, bool]:
    """(name, encoded bytes, detect) from a multipart, JSON or raw image request; 400 otherwise."""
    detect = request.query_params.get("detect", "true").lower() not in ("0", "false", "no")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=8)
        upload = form.get("image") or form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(400, "the multipart form has no file field 'image' (or 'file'); "
                                     "send the photo as -F image=@photo.jpg")
        return upload.filename or "upload", await upload.read(), detect
    if kind == "application/json":
        try:
            body = json.loads(await request.body())
            text = body["image"]
            if "," in text[:100] and text.startswith("data:"):
                text = text.split(",", 1)[1]
            data = base64.b64decode(text, validate=True)
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, RecursionError):
            raise HTTPException(400, 'the JSON body must be {"image": "<the image file, base64-encoded>"}') from None
        detect = bool(body.get("detect", detect))
        return str(body.get("name", "upload")), data, detect
    if kind.startswith("image/") or kind == "application/octet-stream":
        return "upload", await request.body(), detect
    raise HTTPException(400, f"cannot read a photo from content type '{kind or 'none'}'; send multipart/form-data "
                             "(field 'image'), JSON {\"image\": base64}, or the image bytes as image/jpeg")
