"""Dynamic batching for the server: concurrent requests share one pass of the detector and model.

    batcher = PredictionBatcher(predictor, max_batch=16, wait_ms=5, max_queue=64)
    faces = await batcher.predict(rgb, detect=True)    # from any request handler
    # QueueFull when `max_queue` images already wait: the app answers 503 with Retry-After

A worker thread takes the first waiting image, gathers whatever else arrives within `wait_ms`
(up to `max_batch` images) and runs them through `FacePredictor.predict_arrays` together (images
of one size are detected as one batch, all their faces go through the model at once); each
request's future gets its own image's faces. The event loop only queues and awaits.
"""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from facenet_mtl.inference.predictor import FacePredictor

QueueFull = queue.Full


@dataclass
class _Request:
    rgb: np.ndarray
    detect: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


class PredictionBatcher:
    """Gathers concurrent `predict` calls into batches run on `workers` threads (see module doc)."""

    def __init__(self, predictor: FacePredictor, max_batch: int = 16, wait_ms: float = 5.0, max_queue: int = 64,
                 workers: int = 1) -> None:
        self.predictor, self.max_batch, self.wait_s = predictor, max_batch, wait_ms / 1000
        self.queue: queue.Queue[_Request | None] = queue.Queue(max_queue)
        self.workers = workers
        self.batch_sizes: list[int] = []  # how many images each pass carried (the tests read it)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    async def predict(self, rgb: np.ndarray, detect: bool = True) -> list[dict[str, Any]]:
        """This image's faces, predicted in a batch with whatever else arrives meanwhile; raises
        QueueFull at once when the queue is full."""
        self._start()
        loop = asyncio.get_running_loop()
        request = _Request(rgb, detect, loop, loop.create_future())
        self.queue.put_nowait(request)
        return await request.future

    def close(self) -> None:
        """Stop the workers once the images already queued are done."""
        with self._lock:
            for _ in self._threads:
                self.queue.put(None)
            self._threads = []

    def _start(self):
        with self._lock:
            while len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name="predict-batch", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _work(self):
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.perf_counter() + self.wait_s
            while len(batch) < self.max_batch:
                try:
                    item = self.queue.get(timeout=max(0.0, deadline - time.perf_counter()))
                except queue.Empty:
                    break
                if item is None:  # closing: finish this batch, then stop
                    self.queue.put(None)
                    break
                batch.append(item)
            self.batch_sizes.append(len(batch))
            for detect in (True, False):
                group = [r for r in batch if r.detect is detect]
                if group:
                    self._run(group, detect)

    def _run(self, group, detect):
        """One pass for the group; if it fails, each image alone, so one bad image costs only itself."""
        try:
            results = self.predictor.predict_arrays([r.rgb for r in group], detect=detect)
        except Exception as exc:  # noqa: BLE001  (retried one by one below; each error goes to its request)
            if len(group) == 1:
                _settle(group[0], exception=exc)
                return
            for request in group:
                self._run([request], detect)
            return
        for request, faces in zip(group, results):
            _settle(request, result=faces)


def _settle(request, result=None, exception=None):
    """Hand the result to the request's future on its event loop (unless the client has gone)."""

    def settle():
        if request.future.done():  # cancelled: the client disconnected
            return
        if exception is not None:
            request.future.set_exception(exception)
        else:
            request.future.set_result(result)

    try:
        request.loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop has closed (server shutting down)
        pass
