"""One real `facenet-mtl serve` (the shipped model) on 127.0.0.1, shared by the serve tests."""
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

MAX_UPLOAD_MB = 1


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The base URL of a server started for the session (the shipped model, a 1 MB upload limit)."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "serve.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "facenet_mtl.cli", "serve", "--port", str(port),
                                    "--max-upload-mb", str(MAX_UPLOAD_MB), "--threads", "2"],
                                   stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.time() > deadline:
                    pytest.fail(f"the server did not start (exit {process.poll()}):\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
