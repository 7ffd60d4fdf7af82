"""Per-record work for the TFRecords build, run in worker processes: load, crop, resize, encode.

Returns `(record, jpeg_bytes, None)` or `(record, None, (reason, detail))` so that a corrupt
image or a missing face is counted and named, and never stops the build; a face not found under
`no_face="keep_full"` gives `(record, jpeg_bytes, ("no_face_kept_whole", detail))`: written, counted;
so does each alignment (`aligned_by_landmarks`, `aligned_by_source_framing`), so the manifest
says how many faces of a source were re-aligned and how.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from facenet_mtl.data.schema import FaceRecord


def init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)


def encode_record(
        job: tuple[FaceRecord, int, float, str, int]) -> tuple[FaceRecord, bytes | None, tuple[str, str] | None]:
    record, image_size, margin, no_face, quality = job
    from facenet_mtl.data import images

    try:
        rgb, scale = images.load_rgb_scaled(record.image)  # type: ignore[arg-type]  # schema types image `object`
    except images.ImageTooLargeError as exc:
        return record, None, ("image_too_large", str(exc))
    except images.CorruptImageError as exc:
        return record, None, ("corrupt_image", str(exc))
    except OSError as exc:
        return record, None, ("unreadable_image", str(exc))
    from facenet_mtl.data import faces as face_alignment

    note = None
    if record.box is not None:  # a known face box (IMDB-WIKI), in the original image's pixels
        box = [v * scale for v in record.box]  # scale < 1: a large image was decoded reduced
        rgb = images.square_resize(images.crop_box_with_margin(rgb, box, margin), image_size)
    elif record.face_found is False or record.detect:  # detection (records._detect_faces) found none
        if no_face == "skip":
            return record, None, ("no_face", "face detector found no face")
        rgb = images.square_resize(rgb, image_size)
        note = ("no_face_kept_whole", "face detector found no face; the whole image was kept")
    elif record.face_found:  # `framing` holds the landmarks the detector found in this image
        rgb = face_alignment.align_by_framing(rgb, record.framing, image_size)
        note = ("aligned_by_landmarks", "detected and aligned to the template")
    elif record.framing is not None:
        rgb = face_alignment.align_by_framing(rgb, record.framing, image_size)
        note = ("aligned_by_source_framing", "aligned by the dataset's typical landmark layout")
    else:  # already a face crop in the template framing
        rgb = images.square_resize(rgb, image_size)
    return record, images.encode_jpeg(rgb, quality), note
