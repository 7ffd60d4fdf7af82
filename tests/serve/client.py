"""A few lines of urllib for the serve tests and the load benchmark (no HTTP client dependency)."""
import json
import urllib.error
import urllib.request
import uuid

import pytest

SERVE_EXTRA = "the serve tests need the serve extra: pip install -e '.[serve]'"


def require_serve_extra():
    """Skip the calling module unless starlette, uvicorn and python-multipart are installed."""
    for module in ("starlette", "uvicorn", "multipart"):
        pytest.importorskip(module, reason=SERVE_EXTRA)


def request(url, data=None, content_type=None, method=None, headers=None, timeout=120):
    """(status, JSON body, headers) for one HTTP request; error statuses are returned, not raised."""
    headers = dict(headers or {})
    if content_type:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, _json(response.read()), response.headers
    except urllib.error.HTTPError as error:
        return error.code, _json(error.read()), error.headers


def multipart(field, filename, content, content_type="application/octet-stream"):
    """(body, content type) of a multipart/form-data upload with one file field."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _json(raw):
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
