"""Per-record work for the TFRecords build, run in worker processes: load, crop, resize, encode.

Returns `(record, jpeg_bytes, None)` or `(record, None, (reason, detail))` so that a corrupt
image or a missing face is counted and named, and never stops the build; a face not found under
`no_face="keep_full"` gives `(record, jpeg_bytes, ("no_face_kept_whole", detail))`: written, counted.
"""
_detector = None


def init_worker():
    import cv2

    cv2.setNumThreads(1)


def encode_record(job):
    record, image_size, margin, no_face, quality = job
    from facenet_mtl.data import images

    try:
        rgb, scale = images.load_rgb_scaled(record.image)
    except images.ImageTooLargeError as exc:
        return record, None, ("image_too_large", str(exc))
    except images.CorruptImageError as exc:
        return record, None, ("corrupt_image", str(exc))
    except OSError as exc:
        return record, None, ("unreadable_image", str(exc))
    if record.box is not None:  # in the original image's pixels; `scale` < 1 if it was decoded reduced
        rgb = images.crop_box_with_margin(rgb, [v * scale for v in record.box], margin)
    note = None
    if record.box is None and record.detect:
        faces = _face_detector().detect(rgb)
        if faces:
            rgb = images.crop_box_with_margin(rgb, faces[0].box, margin)
        elif no_face == "skip":
            return record, None, ("no_face", "face detector found no face")
        else:
            note = ("no_face_kept_whole", "face detector found no face; the whole image was kept")
    rgb = images.square_resize(rgb, image_size)
    return record, images.encode_jpeg(rgb, quality), note


def _face_detector():
    global _detector
    if _detector is None:
        from facenet_mtl.data.faces import FaceDetector

        _detector = FaceDetector()
    return _detector
