"""`facenet-mtl serve`: the model behind an HTTP API and a one-page web app (the `serve` extra).

    from facenet_mtl.serve import serve
    serve(model_path=None, host="127.0.0.1", port=8000)   # None: the shipped model
"""
from facenet_mtl.data.schema import MIN_FACE
from facenet_mtl.errors import DataError

INSTALL = ("in the facenet-mtl source folder: pip install -e '.[serve]' (starlette, uvicorn, python-multipart; "
           "facenet-mtl is installed from its source, not from PyPI)")


def serve(model_path=None, host="127.0.0.1", port=8000, max_upload_bytes=10 * 1024 * 1024, threads=2, log=print,
          search_side=None, allow_hosts=(), min_face=MIN_FACE):
    """Load the model once, warm it up, and answer HTTP on host:port until interrupted: to the
    host names `served_hosts(host)` and `allow_hosts` ("*": any Host header). `search_side` and
    `min_face` (its `min_size`): the detector's (`FaceDetector`)."""
    try:
        import uvicorn

        from facenet_mtl.serve.app import create_app
    except ImportError as exc:
        raise DataError("facenet-mtl serve", f"needs the serve extra ({exc.name or exc} is not installed)",
                        INSTALL) from None
    from facenet_mtl.data.faces import FaceDetector
    from facenet_mtl.inference.predictor import FacePredictor

    predictor = FacePredictor.from_path(model_path, detector=FaceDetector(search_side=search_side, min_size=min_face),
                                        trace_whole=True)  # seconds once at start, less per request
    predictor.warm_up()
    if predictor.warning:
        log(f"warning: {predictor.warning}")
    app = create_app(predictor, max_upload_bytes=max_upload_bytes, threads=threads,
                     allowed_hosts=served_hosts(host) + tuple(allow_hosts))
    log(f"serving {predictor.model_id} on http://{host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def served_hosts(host):
    """The host names a server listening on `host` answers to: the loopback names, `host`, and
    for 0.0.0.0 / :: this machine's own name(s) and addresses."""
    import socket

    from facenet_mtl.serve.app import LOCAL_HOSTS

    names = [*LOCAL_HOSTS, host]
    if host in ("0.0.0.0", "::", ""):
        names += [socket.gethostname(), socket.getfqdn()]
        try:
            names += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)]
        except OSError:
            pass
    return tuple(dict.fromkeys(name for name in names if name))


def warm_up(predictor):
    """One detection and one forward pass, so the first request does not pay for tracing."""
    predictor.warm_up()
