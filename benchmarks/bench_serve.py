"""`facenet-mtl serve` under load: latency p50/p95 at 1 and at 8 concurrent clients, and no error.

    .venv/bin/python benchmarks/bench_serve.py [--requests 300] [--serial 50] [--clients 8] [--threads 2]

Starts a real server on 127.0.0.1 (the shipped model, or --model), posts a real 640x480 photo
(a UTKFace face pasted into a canvas, multipart) from client threads, and exits 1 on any error.
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_predict import DATA, make_photos


def start_server(model, threads, search_side=None):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "facenet_mtl.cli", "serve", "--port", str(port), "--threads", str(threads)]
    command += ["--search-side", str(search_side)] if search_side else []
    process = subprocess.Popen(command + (["--model", model] if model else []), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    while True:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=2).close()
            return process, url, time.perf_counter() - started
        except OSError:
            if process.poll() is not None:
                sys.exit(f"the server exited ({process.returncode}):\n{process.stderr.read()[-2000:]}")
            time.sleep(0.2)


def post(url, body, kind):
    """(seconds, status) of one POST /v1/predict."""
    request = urllib.request.Request(url + "/v1/predict", data=body, headers={"Content-Type": kind})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError:
        status = 0
    return time.perf_counter() - started, status


def load(url, body, kind, requests, clients):
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda _: post(url, body, kind), range(requests)))
    wall = time.perf_counter() - started
    latencies = sorted(1000 * seconds for seconds, _ in results)
    errors = sum(status != 200 for _, status in results)
    p50, p95 = statistics.median(latencies), latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    print(f"  {clients} client(s), {requests} requests: p50 {p50:6.0f} ms  p95 {p95:6.0f} ms  "
          f"{requests / wall:5.2f} req/s  errors {errors}")
    return errors


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300, help="requests at --clients concurrent clients")
    parser.add_argument("--serial", type=int, default=50, help="requests from one client")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="the server's prediction threads (its default)")
    parser.add_argument("--model", default=None, help="default: the shipped model")
    parser.add_argument("--search-side", type=int, default=None, help="the server's --search-side")
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args()
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    with tempfile.TemporaryDirectory() as tmp:
        photo, = make_photos(Path(tmp), 1, args.data)
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.jpg\"\r\n"
                "Content-Type: image/jpeg\r\n\r\n").encode() + photo.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        kind = f"multipart/form-data; boundary={boundary}"
        process, url, startup = start_server(args.model, args.threads, args.search_side)
        try:
            print(f"facenet-mtl serve on {url} (ready in {startup:.1f} s, {args.threads} prediction thread(s), "
                  f"search side {args.search_side or 'full size'}, "
                  f"{os.cpu_count()} CPUs), a {photo.stat().st_size // 1024} KB 640x480 photo with one face:")
            post(url, body, kind)  # the first request after start-up is not counted
            errors = load(url, body, kind, args.serial, 1) + load(url, body, kind, args.requests, args.clients)
        finally:
            process.terminate()
            process.wait(timeout=30)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
