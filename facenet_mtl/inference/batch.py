"""Predict over many image files: decoded and detected ahead on two threads (the next two batches'
faces are found while the model reads this batch's: one batch's Python and NumPy steps run
beside the other's TensorFlow ones, so both cores stay busy), detected once each, batched through
the model, annotated from the pixels already decoded, one record per image in input order.

    for record in predict_files(facenet_mtl.load(), paths, out_dir="annotated/"):
        print(record["path"], len(record["faces"]))
"""
from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facenet_mtl.data import images
from facenet_mtl.errors import DataError
from facenet_mtl.inference.predictor import BATCHES_AHEAD, annotated_names, check_out_dir, loaded, save_annotated
from facenet_mtl.inference.records import in_original_pixels, make_record

if TYPE_CHECKING:
    from facenet_mtl.inference.inputs import Inputs
    from facenet_mtl.inference.predictor import FacePredictor

PROGRESS_FROM = 4  # a progress bar only for more images than a glance takes


def predict_files(predictor: FacePredictor | Future[FacePredictor], paths: Iterable[str | Path], detect: bool = True,
                  batch_size: int = 16, out_dir: str | Path | None = None,
                  progress: bool | None = None) -> Iterator[dict[str, Any]]:
    """Yield one record per image path (see `records.make_record`); an unreadable image gives a
    record with `error` (the message names the file and the fix) and the others go on.

    `batch_size` images are decoded, detected (images of one size together) and sent through
    the model together; `out_dir` gets an annotated copy of each (names from `annotated_names`);
    `progress` (None: only for more than a few images) shows a bar on stderr. `predictor` may be
    a Future of one (`load_in_background`): the first images are decoded while it loads.
    """
    from tqdm import tqdm

    paths = list(paths)
    targets = annotated_names(paths) if out_dir is not None else [None] * len(paths)
    out_dir = check_out_dir(out_dir) if out_dir is not None else None
    chunks = [list(range(start, min(start + batch_size, len(paths)))) for start in range(0, len(paths), batch_size)]
    show = len(paths) >= PROGRESS_FROM if progress is None else progress
    with ThreadPoolExecutor(BATCHES_AHEAD) as finder, tqdm(total=len(paths), unit="img", file=sys.stderr,
                                                   disable=not show, dynamic_ncols=True) as bar:
        upcoming = deque(finder.submit(_decode_and_locate, predictor, [paths[i] for i in chunk], detect)
                         for chunk in chunks[:BATCHES_AHEAD])
        predictor = loaded(predictor)
        for number, chunk in enumerate(chunks):
            decoded, readable, located = upcoming.popleft().result()
            if number + BATCHES_AHEAD < len(chunks):
                upcoming.append(finder.submit(_decode_and_locate, predictor,
                                              [paths[i] for i in chunks[number + BATCHES_AHEAD]], detect))
            results = dict(zip((chunk[j] for j in readable), predictor.describe_faces(located)))
            for i, (rgb, scale) in zip(chunk, decoded):
                if isinstance(rgb, DataError):
                    yield make_record(predictor.card, paths[i], [], error=str(rgb))
                    continue
                written = save_annotated(rgb, results[i], out_dir / targets[i], predictor.heads) \
                    if out_dir is not None else None
                yield make_record(predictor.card, paths[i], in_original_pixels(results[i], scale),
                                  annotated=written and str(written))
            bar.update(len(chunk))


def _decode_and_locate(predictor, paths, detect):
    """The finder thread's part of a chunk: `(decoded, readable, located)`, each path decoded
    (`_decode_all`), the positions of the readable ones, and their faces found and cropped
    (`FacePredictor.locate_faces`), while the caller's thread runs the model on the chunk before."""
    decoded = _decode_all(paths)
    readable = [j for j, (rgb, _) in enumerate(decoded) if not isinstance(rgb, DataError)]
    located = loaded(predictor).locate_faces([decoded[j][0] for j in readable], detect=detect)
    return decoded, readable, located


def _decode_all(paths):
    """Each path's `(rgb, scale)` (a large image decoded reduced), or `(the DataError that says
    why it cannot be read, None)`."""
    decoded = []
    for path in paths:
        try:
            decoded.append(images.load_rgb_scaled(os.fspath(path)))
        except DataError as exc:
            decoded.append((exc, None))
    return decoded


def predict_inputs(predictor: FacePredictor | Future[FacePredictor], inputs: Inputs, detect: bool = True,
                   batch_size: int = 16, out_dir: str | Path | None = None, every: int = 1, max_frames: int = 0,
                   progress: bool | None = None, track: bool = True) -> Iterator[dict[str, Any]]:
    """Records for every image of `inputs` (an `inputs.Inputs`), then every sampled frame of each
    of its videos (faces followed as tracks unless `track` is False, each video ending with its
    track summaries); `out_dir` gets the annotated images and `<stem>_annotated.mp4` videos."""
    from facenet_mtl.inference.video import predict_video

    for path, message in inputs.unreadable.items():  # folders that could not be listed: one error each
        yield make_record(loaded(predictor).card, path, [], error=message)
    yield from predict_files(predictor, inputs.images, detect=detect, batch_size=batch_size, out_dir=out_dir,
                             progress=progress)
    predictor = loaded(predictor)
    video_targets = annotated_names(inputs.videos)
    for video, target in zip(inputs.videos, video_targets):
        out_path = check_out_dir(out_dir) / target.with_suffix(".mp4") if out_dir is not None else None
        for record in predict_video(predictor, video, every=every, detect=detect, batch_size=batch_size,
                                    out_path=out_path, max_frames=max_frames, progress=progress, tracker=track):
            if out_path is not None and "track_summary" not in record:
                record["annotated"] = str(out_path)
            yield record
