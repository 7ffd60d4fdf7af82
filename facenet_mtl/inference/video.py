"""Predict on a video file or a camera, frame by frame (OpenCV): one record per sampled frame.

    for record in predict_video(facenet_mtl.load(), "clip.mp4", every=5, out_path="clip_annotated.mp4"):
        print(record["frame"], record["time_s"], len(record["faces"]))

Every `every`-th frame (0, N, 2N, ...) is predicted; the annotated video keeps every frame, each
drawn with the faces of the last predicted frame, at the source's frame rate. Frames are decoded
on a thread while the previous batches are predicted, two at once (`BATCHES_AHEAD`); faces are
followed as tracks (`tracks.FaceTracker`) and the video ends with one summary record per track.
A camera is the same loop over `cv2.VideoCapture(index)` (`predict_camera`).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import queue
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

from facenet_mtl.errors import DataError
from facenet_mtl.inference.predictor import BATCHES_AHEAD, annotate
from facenet_mtl.data import images
from facenet_mtl.inference.records import in_original_pixels, make_record
from facenet_mtl.inference.tracks import FaceTracker

if TYPE_CHECKING:
    from facenet_mtl.inference.predictor import FacePredictor

DEFAULT_FPS = 25.0  # when a container does not say (and for cameras that report 0)


def annotated_video_path(video: str | Path, out_dir: str | Path) -> Path:
    """`<out_dir>/<stem>_annotated.mp4` for a video file."""
    return Path(out_dir) / f"{Path(video).stem}_annotated.mp4"


def predict_video(predictor: FacePredictor, source: str | Path | cv2.VideoCapture, every: int = 1, detect: bool = True,
                  batch_size: int = 16, out_path: str | Path | None = None, max_frames: int = 0,
                  name: str | None = None, progress: bool | None = None,
                  tracker: FaceTracker | None | bool = True, ahead: int = BATCHES_AHEAD) -> Iterator[dict[str, Any]]:
    """Yield one record per sampled frame of `source` (a video path, or an opened VideoCapture):
    `{"path", "frame", "time_s", "model", "faces", ...}`. `max_frames` > 0 stops after that many
    frames read; `out_path` gets the annotated video (mp4).

    Frames are decoded on a thread while the previous batches of `batch_size` sampled frames are
    detected and predicted, `ahead` batches at once (`BATCHES_AHEAD`; a camera: 1, so a record
    waits for one batch, not two), their records given in frame order.
    Each face gets a `track` id and its attributes smoothed over the track
    (`tracks.FaceTracker`; `tracker=False`: each frame on its own, no `track`), and the video ends
    with one record per track: `{"path", "model", "track_summary": {track, first_frame,
    last_frame, faces, age, gender, emotion, smile}}`.
    """
    from tqdm import tqdm

    capture = source if isinstance(source, cv2.VideoCapture) else _open_video(source)
    name = str(name if name is not None else source)
    fps = capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    if max_frames:
        total = min(total, max_frames) if total > 0 else max_frames
    if tracker is True:
        tracker = FaceTracker(fps=fps)
    show = progress if progress is not None else total > 0
    bar = tqdm(total=total or None, unit="frame", desc=Path(name).name, disable=not show, dynamic_ncols=True)
    reader = _FrameReader(capture, every, decode_all=out_path is not None, max_frames=max_frames,
                          ahead=2 * batch_size * (every if out_path is not None else 1))
    writer, last_faces, buffered, sampled_count = None, [], [], 0
    pending: deque = deque()  # (buffered frames, the Future of their sampled frames' faces), oldest first
    depth = max(1, ahead)
    pool = ThreadPoolExecutor(depth, thread_name_prefix="video-predict")
    try:
        for index, rgb in reader:
            bar.update(1)
            if rgb is None:  # skipped without decoding
                continue
            if out_path is not None and writer is None:
                writer = _open_writer(out_path, fps, rgb.shape)
            buffered.append((index, rgb))
            sampled_count += index % every == 0
            if sampled_count >= batch_size:
                pending.append((buffered, pool.submit(_predicted, predictor, buffered, every, detect)))
                buffered, sampled_count = [], 0
                if len(pending) >= depth:
                    done, future = pending.popleft()
                    last_faces = yield from _emit(predictor, done, future.result(), fps, name, writer, tracker,
                                                  last_faces)
        if buffered:
            pending.append((buffered, pool.submit(_predicted, predictor, buffered, every, detect)))
        while pending:
            done, future = pending.popleft()
            last_faces = yield from _emit(predictor, done, future.result(), fps, name, writer, tracker, last_faces)
        if tracker:
            for summary in tracker.summaries():
                yield {"path": name, "model": predictor.card.id, "track_summary": summary}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a batch under way finishes (TensorFlow at exit aborts)
        reader.close()
        bar.close()
        if writer is not None:
            writer.release()
        if capture is not source:
            capture.release()


class _FrameReader:
    """Iterates `(index, rgb)` over a capture's frames, read on a thread up to `ahead` frames in
    front of the consumer; frames that are not sampled come as `(index, None)` unless
    `decode_all` (grabbed, not decoded). A read error is raised in the consumer."""

    _END = object()

    def __init__(self, capture, every, decode_all, max_frames, ahead):
        self.capture, self.every, self.decode_all, self.max_frames = capture, every, decode_all, max_frames
        self.frames: queue.Queue = queue.Queue(max(2, ahead))
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._read, name="video-decode", daemon=True)
        self.thread.start()

    def __iter__(self):
        while True:
            item = self.frames.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _read(self):
        try:
            index = 0
            while not self.stopped.is_set() and (not self.max_frames or index < self.max_frames):
                if index % self.every and not self.decode_all:
                    if not self.capture.grab():
                        break
                    self._put((index, None))
                else:
                    ok, bgr = self.capture.read()
                    if not ok:
                        break
                    self._put((index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
                index += 1
        except Exception as exc:  # noqa: BLE001  (handed to the consumer)
            self._put(exc)
        self._put(self._END)

    def _put(self, item):
        while not self.stopped.is_set():
            try:
                self.frames.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self):
        """Stop reading (the consumer has stopped early, or finished) and wait for the thread."""
        self.stopped.set()
        self.thread.join(timeout=10)


def _predicted(predictor, buffered, every, detect):
    """The sampled frames of `buffered` predicted together: {frame index: faces in its pixels}."""
    sampled = [(index, rgb) for index, rgb in buffered if index % every == 0]
    small = [images.bounded(rgb) for _, rgb in sampled]  # frames as large as photos are bounded the same way
    found = predictor.predict_arrays([rgb for rgb, _ in small], detect=detect) if sampled else []
    return dict(zip((index for index, _ in sampled),
                    [in_original_pixels(faces, scale) for faces, (_, scale) in zip(found, small)]))


def _emit(predictor, buffered, results, fps, name, writer, tracker, last_faces):
    """Write every buffered frame (annotated; a frame between samples with the faces of the sample
    before it) and yield the sampled frames' records, in order, through the tracker; returns the
    last sampled frame's faces."""
    for index, rgb in buffered:
        if index in results:
            last_faces = tracker.update(index, results[index]) if tracker else results[index]
            yield make_record(predictor.card, name, last_faces, frame=index, time_s=round(index / fps, 3))
        if writer is not None:
            writer.write(cv2.cvtColor(annotate(rgb, last_faces, predictor.heads), cv2.COLOR_RGB2BGR))
    return last_faces


def predict_camera(predictor: FacePredictor, index: int = 0, every: int = 1, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """`predict_video` on camera `index` (until `max_frames`, or interrupted with Ctrl-C)."""
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        raise DataError(f"camera {index}", "cannot be opened (no such camera, or it is in use)",
                        "check the camera index (--camera 0 is the first one), or give a video file")
    try:
        kwargs.setdefault("ahead", 1)  # live: the latest frames' records as soon as their batch is done
        yield from predict_video(predictor, capture, every=every, name=f"camera:{index}", progress=False, **kwargs)
    except KeyboardInterrupt:
        return
    finally:
        capture.release()


def _open_video(path):
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such video file", "check the path")
    with _opencv_name(path) as name:  # opened here; the file stays open once the name is gone
        capture = cv2.VideoCapture(name)
    if not capture.isOpened():
        raise DataError(path, "cannot be opened as a video (unknown codec, or not a video)",
                        "give an .mp4, .avi, .mov or .mkv file that a video player can play")
    return capture


def _open_writer(path, fps, shape):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = _VideoFile(path, fps, shape)
    if not writer.isOpened():
        writer.release()
        raise DataError(path, "cannot be written as an mp4 video", "check that the --out folder is writable")
    return writer


@contextlib.contextmanager
def _opencv_name(path):
    """A name for `path` that OpenCV can take: OpenCV's path functions crash (SIGSEGV) on a file
    name that is not valid UTF-8, so any name beyond ASCII is handed over as an ASCII symbolic
    link in a private temporary folder, removed on exit."""
    name = os.fspath(path)
    if name.isascii():
        yield name
        return
    with tempfile.TemporaryDirectory(prefix="facenet-mtl-") as folder:
        link = os.path.join(folder, "video" + (Path(name).suffix if Path(name).suffix.isascii() else ""))
        os.symlink(os.path.abspath(name), link)
        yield link


class _VideoFile:
    """cv2.VideoWriter for any file name: a name beyond ASCII is written under an ASCII name in a
    temporary folder and moved to `path` on `release` (see `_opencv_name`)."""

    def __init__(self, path, fps, shape):
        self.path, self._folder = Path(path), None
        name = os.fspath(self.path)
        if not name.isascii():
            self._folder = tempfile.mkdtemp(prefix="facenet-mtl-")
            name = os.path.join(self._folder, "video.mp4")
        self._name = name
        self._writer = cv2.VideoWriter(name, cv2.VideoWriter_fourcc(*"mp4v"), fps, (shape[1], shape[0]))

    def isOpened(self):
        return self._writer.isOpened()

    def write(self, bgr):
        self._writer.write(bgr)

    def release(self):
        self._writer.release()
        if self._folder is not None:
            try:
                if os.path.exists(self._name):
                    shutil.move(self._name, self.path)
            finally:
                shutil.rmtree(self._folder, ignore_errors=True)
                self._folder = None
