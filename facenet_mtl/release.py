"""`make release`: turn a finished run into the model that ships in the package, and measure it.

`publish_release(run_dir, data_root)` copies the run's float32 model into
`facenet_mtl/weights/` (release.h5 and release.json with its sha256, tasks, labels, figures) and
writes the model card (`facenet_mtl/weights/MODEL_CARD.md`, linked from the repository root)
from measurements made here, on the package's own test splits:

- every head on every built dataset's test split (`evaluate_model`), with figures per race,
  gender and age band (`by=GROUPINGS`) and the emotion confusion matrix;
- the photo path: UTKFace test chips given to `FacePredictor.predict` as photos (detected and
  aligned as a user's photo would be) against the same faces scored as dataset crops.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from facenet_mtl.artifact.saving import save_h5
from facenet_mtl.artifact.spec import spec_of_file
from facenet_mtl.data.built_dataset import BuiltDataset, built_dataset_names
from facenet_mtl.data.schema import EMOTIONS
from facenet_mtl.training.config import parents_of
from facenet_mtl.training.evaluate import GROUPINGS, evaluate_model, grouped_datasets
from facenet_mtl.weights import RELEASE_INFO, RELEASE_MODEL, WEIGHTS_DIR, sha256_of

CARD = WEIGHTS_DIR / "MODEL_CARD.md"


def photo_path_agreement(model_path: str | Path, utkface_dir: str | Path, limit: int = 0) -> dict[str, Any]:
    """UTKFace test-split chips as dataset crops vs as photos through the predictor.

    `limit` takes the first faces of the test split (by name). Returns {"n", "found", "crops":
    {gender_acc, age_mae}, "photos": {...}} over the faces that
    the detector found (a photo with no face found is counted in n, not in the figures)."""
    from facenet_mtl.data import images
    from facenet_mtl.data.readers.utkface import read
    from facenet_mtl.inference.predictor import FacePredictor

    records = [r for r in read(utkface_dir).records if r.split == "test"]
    if limit:
        records = records[:limit]
    predictor = FacePredictor.from_path(model_path)
    size = predictor.input_size
    crops = np.stack([images.square_resize(images.load_rgb(r.image), size) for r in records])
    as_crops = predictor.predict_faces(crops)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        as_photos = predictor.predict([r.image for r in records])
    found = [i for i, faces in enumerate(as_photos) if faces]

    def figures(results):
        ages = np.array([results[k]["age"] for k in range(len(found))])
        males = np.array([results[k]["gender"]["label"] == "male" for k in range(len(found))])
        truth_age = np.array([records[i].labels["age"] for i in found])
        truth_male = np.array([records[i].labels["gender"] == 1 for i in found])
        return {"gender_acc": float(np.mean(males == truth_male)), "age_mae": float(np.mean(np.abs(ages - truth_age)))}

    return {"n": len(records), "found": len(found),
            "crops": figures([as_crops[i] for i in found]), "photos": figures([as_photos[i][0] for i in found])}


def publish_release(run_dir: str | Path, data_root: str | Path, utkface_dir: str | Path | None = None,
                    version: str | None = None, command: str = "", photo_limit: int = 300) -> dict[str, Any]:
    """Copy `run_dir`'s model into the package, measure it, write release.json and the model card."""
    import keras

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    stages = training_stages(run_dir)  # before the package's release.h5 is overwritten: it may be an init
    model = keras.models.load_model(run_dir / "model.h5", compile=False)
    spec = spec_of_file(run_dir / "model.h5", model)
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    save_h5(model, RELEASE_MODEL, spec)  # the portable .h5 (every Keras 3 from 3.4 on loads it), its spec inside
    started = time.time()
    datasets = built_dataset_names(data_root)
    evaluation = evaluate_model(model, data_root, datasets, "test", by=GROUPINGS, heads=spec.task_objects())
    evaluation["seconds"] = round(time.time() - started, 1)
    # what `facenet-mtl evaluate --data ... --by race,gender,age_band` spends in the model: the
    # datasets that label every grouping
    evaluation["group_seconds"] = round(sum(evaluation.get("seconds_by_dataset", {}).get(name, 0)
                                            for name in grouped_datasets(data_root, datasets, "test", GROUPINGS)), 1)
    photos = photo_path_agreement(RELEASE_MODEL, utkface_dir, limit=photo_limit) if utkface_dir else None
    manifests = {name: BuiltDataset.open(data_root, name).manifest for name in datasets}
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    info = {
        "version": version or date.today().isoformat(),
        "trained_on": "real",
        "description": config.get("description", ""),
        "run": config.get("name", run_dir.name),
        "tasks": list(spec.task_names),
        "input_size": spec.input_size,
        "input": "RGB, 0-255, a face aligned to facenet_mtl.data.faces.TEMPLATE (crop_face)",
        "labels": {**spec.labels(), **{t.name: t.task().output_descriptions()[t.outputs[0]]
                                        for t in spec.tasks if not t.labels}},
        "figures": _headline(evaluation, photos),
        "calibration": {"temperatures": metrics.get("calibration", {}).get("temperatures", {}),
                        "valid": metrics.get("calibration", {}).get("valid"), "test": evaluation["calibration"]},
        "training": {"datasets": list(config["data"]["datasets"]), "epochs": metrics.get("epochs"),
                     "train_seconds": metrics.get("train_seconds"), "stages": stages,
                     "total_train_seconds": sum(st.get("train_seconds") or 0 for st in stages) or None,
                     "counts": {n: {s: v["count"] for s, v in m["splits"].items()} for n, m in manifests.items()}},
        "command": command,
        "sha256": sha256_of(RELEASE_MODEL),
    }
    RELEASE_INFO.write_text(json.dumps(info, indent=2) + "\n")
    from facenet_mtl.weights import release_info

    release_info.cache_clear()
    (WEIGHTS_DIR / "evaluation.json").write_text(json.dumps({"test": evaluation, "photo_path": photos}, indent=2) + "\n")
    CARD.write_text(model_card(info, evaluation, photos, manifests))
    return info


INTERVAL_PROBE = (
    "An interval by the predicted age was probed on 75401320 (2026-12-07, `age_range` only, no training): the "
    "validation faces grouped by their predicted age (5 groups, split at 13, 20, 40 and 60), and in each group the "
    "percentiles taken where 10 % of their true ages fall below and 10 % above: test coverage 0.781 overall, 0-12 "
    "0.701, 13-19 0.490, 20-39 0.849, 40-59 0.777, 60+ 0.712 (8 groups: 0.693, 0.540, 0.835, 0.783, 0.716). Closer "
    "for the over-40s, further for children and teens, so not kept: the head pulls the young and the old toward the "
    "middle (MAE 11.2 years over 60), and an interval chosen by the predicted age cannot undo that for every true age.")


def calibration_markdown(info: Mapping[str, Any]) -> str:
    """The card's calibration and age-interval tables, from release.json's "calibration"."""
    calib = info.get("calibration") or {}
    temperatures, valid, test = calib.get("temperatures", {}), calib.get("valid") or {}, calib.get("test") or {}
    overall = test.get("overall", {})
    rows = []
    for task, figures in overall.items():
        if "ece" not in figures:
            continue
        before = valid.get("before", {}).get(task, {}).get("ece")
        after = valid.get("after", {}).get(task, {}).get("ece")
        rows.append(f"| {task} | {temperatures.get(task, 1.0):.3f} | {_three(before)} | {_three(after)} | "
                    f"{figures['ece']:.3f} | {figures['n']} |")
    table = ("| head | temperature | ECE valid, before | ECE valid, after | ECE test (this model) | n test |\n"
             "|---|---:|---:|---:|---:|---:|\n" + "\n".join(rows)) if rows else "(not measured)"
    age = overall.get("age")
    bands = test.get("age_by_band", {})
    interval = "(not measured)"
    if age:
        interval = ("| faces | coverage of the 80 % interval | MAE | n |\n|---|---:|---:|---:|\n"
                    f"| all test faces with a year | {age['coverage']:.3f} | {age['mae']:.2f} | {age['n']} |\n"
                    + "\n".join(f"| {name} | {m['coverage']:.3f} | {m['mae']:.2f} | {m['n']} |"
                                 for name, m in bands.items()))
    t_age = temperatures.get("age")
    note = (f"The age head's temperature ({t_age:.3f}) was fitted for 80 % coverage on validation."
            if t_age else "The age head has no temperature: fitting one moved the validation MAE by more than 0.02 years, "
                          "or the run was not calibrated.")
    return (f"{table}\n\n### Age interval (`age_range`: the 10th to 90th percentile of the age bins)\n{interval}\n\n"
            f"{note}\n\n{INTERVAL_PROBE}")


def training_stages(run_dir: str | Path) -> list[dict[str, Any]]:
    """The stages that trained `run_dir`'s model, first to last: {"run", "epochs", "train_seconds"}.

    Follows each run's `init` (or each model of its `average`) back: to a run directory beside
    it (runs/<init>/), or to the package's release model (a warm restart of the shipped weights),
    whose stages release.json holds; a model file from elsewhere ends the chain with what is known
    of it (its path only). A stage two later stages descend from (an average of warm restarts of
    one model) is listed once, before both.
    """
    stages, seen = [], set()
    _add_stages(Path(run_dir), stages, seen)
    return stages


def _add_stages(run_dir, stages, seen):
    """Append `run_dir`'s ancestors not yet in `seen`, then its own stage."""
    from facenet_mtl.weights import release_info

    seen.add(run_dir.resolve())
    config = json.loads((run_dir / "config.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    own = {"run": config.get("name", run_dir.name), "epochs": metrics.get("epochs"),
           "train_seconds": metrics.get("train_seconds")}
    for init in parents_of(config):
        if (run_dir.parent / init / "config.json").is_file():
            if (run_dir.parent / init).resolve() not in seen:
                _add_stages(run_dir.parent / init, stages, seen)
        elif Path(init).is_file() and RELEASE_MODEL.is_file() and sha256_of(init) == sha256_of(RELEASE_MODEL):
            training = release_info().get("training", {})
            earlier = training.get("stages") or [{"run": release_info().get("run"), "epochs": training.get("epochs"),
                                                  "train_seconds": training.get("train_seconds")}]
            if earlier[-1]["run"] == own["run"]:
                # this run is already the shipped model (published again; its init path, the
                # package's release.h5, now holds it): the stages before it are the ones before
                earlier = earlier[:-1]
            stages.extend(stage for stage in earlier if stage["run"] not in {s["run"] for s in stages})
        elif str(init) not in {s["run"] for s in stages}:
            stages.append({"run": str(init), "epochs": None, "train_seconds": None})
    stages.append(own)


def _stages_text(stages):
    """'release-pretrain (12 epochs), release-mtl (14 epochs), ...' in training order."""
    return ", ".join(f"{st['run']} ({st['epochs']} epoch{'s' * (st['epochs'] != 1)})" if st.get("epochs")
                     else f"{st['run']} (untrained)" if st.get("epochs") == 0 else str(st["run"]) for st in stages)


def _headline(evaluation, photos):
    by = evaluation["by_dataset"]

    def get(dataset, key):
        value = by.get(dataset, {}).get(key)
        return None if value is None else round(float(value), 4)

    figures = {"emotion_acc_fer2013_publictest": get("fer2013", "emotion_acc"),
               "gender_acc_utkface": get("utkface", "gender_acc"), "age_mae_utkface": get("utkface", "age_mae"),
               "smile_acc_genki4k": get("genki4k", "smile_acc"), "smile_acc_celeba": get("celeba", "smile_acc"),
               "gender_acc_fairface": get("fairface", "gender_acc"),
               "age_group_acc_fairface": get("fairface", "age_group_acc")}
    races = evaluation.get("by_group", {}).get("fairface", {}).get("race", {})
    if races:
        figures["gender_acc_fairface_worst_race"] = round(min(m["gender_acc"] for m in races.values()), 4)
    if photos:
        figures["photo_path_utkface"] = {k: round(v, 4) for k, v in photos["photos"].items()}
    return figures


def _pct(value):
    return "" if value is None else f"{100 * value:.2f}"


def _group_rows(groups, columns):
    rows = []
    for name, m in groups.items():
        cells = [f"{m[key]:{fmt}}" if key in m else "" for key, fmt in columns]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {m['n']} |")
    return "\n".join(rows)


def model_card(info: Mapping[str, Any], evaluation: Mapping[str, Any], photos: Mapping[str, Any] | None,
               manifests: Mapping[str, Mapping[str, Any]]) -> str:
    """The model card's markdown, every figure from `evaluation` / `photos` (see `publish_release`)."""
    by = evaluation["by_dataset"]
    fig = info["figures"]
    groups = evaluation.get("by_group", {})
    pct_cols = [("age_mae", ".2f"), ("age_group_acc", ".2%"), ("gender_acc", ".2%")]

    def group_table(dataset, grouping):
        g = groups.get(dataset, {}).get(grouping, {})
        if not g:
            return "(no labels for this grouping)"
        used = [c for c in pct_cols if any(c[0] in m for m in g.values())]
        head = "| " + grouping + " | " + " | ".join({"age_mae": "age MAE", "age_group_acc": "age group %",
                                                    "gender_acc": "gender %"}[k] for k, _ in used) + " | n |"
        return head + "\n|" + "---|" * (len(used) + 2) + "\n" + _group_rows(g, used)

    confusion = by.get("fer2013", {}).get("emotion_confusion")
    confusion_md = ""
    if confusion:
        confusion_md = "| true \\ predicted | " + " | ".join(EMOTIONS) + " |\n|" + "---|" * (len(EMOTIONS) + 1) + "\n"
        confusion_md += "\n".join(f"| {EMOTIONS[i]} | " + " | ".join(str(v) for v in row) + " |"
                                  for i, row in enumerate(confusion))
    counts = "\n".join(f"| {name} | " + " | ".join(str(m["splits"].get(s, {}).get("count", 0)) for s in ("train", "valid", "test"))
                       + f" | {', '.join(f'{k}: {v}' for k, v in m.get('notes', {}).items()) or '-'} |"
                       for name, m in manifests.items())
    photo_md = "(not measured)"
    if photos:
        photo_md = (f"| framing | gender % | age MAE |\n|---|---|---|\n"
                    f"| dataset crops (the records' framing) | {_pct(photos['crops']['gender_acc'])} | {photos['crops']['age_mae']:.2f} |\n"
                    f"| photos through `facenet-mtl predict` (detect + align) | {_pct(photos['photos']['gender_acc'])} | {photos['photos']['age_mae']:.2f} |\n\n"
                    f"{photos['found']} of {photos['n']} UTKFace test chips had a face found as photos; the figures are over those.")
    return CARD_TEMPLATE.format(
        version=info["version"], sha=info["sha256"][:16], size=info["input_size"], command=info["command"],
        emotion=_pct(fig["emotion_acc_fer2013_publictest"]), gender_utk=_pct(fig["gender_acc_utkface"]),
        age_utk="" if fig["age_mae_utkface"] is None else f"{fig['age_mae_utkface']:.2f}",
        smile=_pct(fig["smile_acc_genki4k"]), smile_celeba=_pct(fig["smile_acc_celeba"]),
        gender_ff=_pct(fig["gender_acc_fairface"]), age_group_ff=_pct(fig["age_group_acc_fairface"]),
        worst_race=_pct(fig.get("gender_acc_fairface_worst_race")),
        counts=counts, photo=photo_md, confusion=confusion_md,
        **{f"{short}_{grouping.split('_')[-1]}": group_table(dataset, grouping)  # ff_race, ..., utk_band
           for short, dataset in (("ff", "fairface"), ("utk", "utkface")) for grouping in GROUPINGS},
        seconds=evaluation.get("group_seconds", evaluation.get("seconds", "")),
        calibration=calibration_markdown(info),
        stages=_stages_text(info["training"].get("stages") or [{"run": info.get("run"), "epochs": info["training"]["epochs"]}]),
        total_hours=_hours(info["training"].get("total_train_seconds") or info["training"]["train_seconds"]))


def _three(value):
    return "" if value is None else f"{value:.3f}"


def _hours(seconds):
    return "?" if not seconds else f"{seconds / 3600:.2f}"


CARD_TEMPLATE = """# facenet-mtl release model — model card

Version {version} · `facenet_mtl/weights/release.h5` (sha256 `{sha}...`, checked at load) ·
one Keras 3 model, four heads: age, gender, emotion, smile · input: RGB 0-255, {size}x{size}, a
face aligned to the package's template (all preprocessing inside; built-in layers only).

This file is written by `make release` from measurements; do not edit its figures by hand.

## What it is for, and not for
- **For**: research and teaching on face attributes; labelling faces in photos you may
  process, to study the attributes or the model itself; a baseline to compare with.
- **Not for**: decisions about people (hiring, policing, access, credit, insurance, medical
  or legal use), surveillance or identifying anyone, inferring a person's actual feelings,
  identity or gender identity. Gender here is a binary label as annotated in the datasets, not a
  person's self-identified gender; emotion is a posed/visible expression category, not an inner
  state; age is apparent age from one photo.

## Training data and terms
| dataset | train | valid | test | how faces were framed |
|---|---|---|---|---|
{counts}

- **UTKFace** (age, gender; non-commercial research only), **FER2013** Training (emotion;
  ICML 2013 challenge data, research use), **GENKI-4K** (smile; MPLab, research use only),
  **CelebA** (smile, gender; non-commercial research only), **FairFace** (age group, gender;
  CC BY 4.0). UTKFace, FER2013, GENKI-4K and CelebA: only the copies in the project's shared
  data were used; the FER2013 PrivateTest images, the other 800 GENKI-4K images and the other
  4,676 UTKFace faces were never seen. FairFace: 40,000 training faces from a public snapshot
  (`make release FAIRFACE=<folder>`; the 10,000 shared faces are its first 10,000, with the same
  labels and, split by the same hash of the file name, the same splits), so the FairFace test
  faces below were never trained on.
- Several sources are for **non-commercial research only**: weights trained on them inherit
  those terms as far as the dataset licences reach. Treat the weights as non-commercial,
  research-only, and cite the datasets (see `datasets/*/README.md`).
- Splits: FER2013 test = PublicTest (validation carved from Training by a salted hash); UTKFace,
  GENKI-4K, FairFace and CelebA 80/10/10 by a salted hash of the file name (the shared CelebA
  images are all in the official train partition, so its test split is not the official one).
  Model selection used validation splits only.

## How to retrain it
```
{command}
```
The stages that trained it, each from the ones before: {stages};
{total_hours} h of training in all on a 2-core CPU. `experiments/release/` holds each stage
(release-pretrain: age + gender; release-mtl: the four heads; then warm restarts, and
release-mtl-soup, the average of the last two restarts' weights, untrained), and the recipe and
every probe behind it are there and in `experiments/real/`.

### Probes on validation (2026-12-02)
On the first 2026-12-02 release (sha256 b744f2ba..., release-mtl-more): warm restarts of it (3 x
40,960, peak lr 5e-4, `facenet-mtl train --config experiments/release/release-mtl-more.toml --set
init=facenet_mtl/weights/release.h5 --set train.epochs=3 ...`), validation splits, flip averaging;
and test-time views of it (`model.test_time_crops`, no training). Then the long warm restart
that shipped next (55a11327: `experiments/release/release-mtl-long.toml`, 16 x 40,960 from that
model, peak lr 5e-4; `facenet-mtl evaluate runs/release-mtl-long/model.h5 --data
data_out/release --split valid`, and its network with flip averaging only), and on 2026-12-06
(issue 19): the dense 32-256 net's chain from scratch, a self-distilled flip-only student of
55a11327, and a second long warm restart of 55a11327 (8444b8ed); on 2026-12-07 a third restart and
the average of the last two, this model (`experiments/release/dense-*.toml`, `release-distill*.toml`,
`release-mtl-restart*.toml`, `release-mtl-soup.toml`, each with its figures):

| probe | FER2013 | UTKFace gender | UTKFace MAE | FairFace gender | GENKI-4K smile | CelebA smile |
|---|---:|---:|---:|---:|---:|---:|
| b744f2ba, no flip | 64.40 | 92.19 | 5.60 | 84.08 | 95.96 | 90.62 |
| b744f2ba, flip (as it shipped) | 65.36 | 92.50 | 5.50 | 84.91 | 94.61 | 91.10 |
| + 4 corner crops at 0.95 (10 views) | 66.40 | 92.29 | 5.27 | 85.72 | 94.95 | 91.67 |
| + 4 corner crops at 0.90 | 66.33 | 92.09 | 5.24 | 85.85 | 94.95 | 90.91 |
| + 4 corner crops at 0.85 | 65.43 | 92.03 | 5.41 | 84.89 | 96.30 | 90.33 |
| warm restart, 3 epochs (baseline) | 64.15 | 92.34 | 5.40 | 85.21 | 93.60 | 90.14 |
| the same + label smoothing 0.1 | 63.98 | 92.29 | 5.41 | 85.23 | 93.94 | 89.95 |
| the same + random erasing 0.25 | 63.74 | 92.60 | 5.54 | 85.11 | 94.61 | 90.72 |
| warm restart, 16 epochs (release-mtl-long), flip | 66.26 | 92.50 | 5.27 | 85.48 | 95.29 | 90.81 |
| the same, 10 views at 0.95 (55a11327) | 67.06 | 92.60 | 5.19 | 85.72 | 95.62 | 91.00 |
| dense 32-256 from scratch (dense-pretrain 12 + dense-mtl 14 epochs, 1.49 h), 10 views | 65.99 | 92.29 | 5.28 | 85.55 | 95.96 | 90.33 |
| 55a11327 self-distilled from its 10 views, 8 epochs, flip only (release-distill) | 65.99 | 92.65 | 5.37 | 85.28 | 95.96 | 90.62 |
| 55a11327 + 16 epochs, 10 views, calibrated (release-mtl-restart, 8444b8ed) | 67.61 | 92.50 | **5.15** | 86.22 | 95.96 | 91.39 |
| 8444b8ed's network, flip only (2 views) | 66.82 | **92.75** | 5.22 | 85.90 | 95.29 | 90.91 |
| 8444b8ed self-distilled from its 10 views, 16 epochs, teacher weight 0.7, balanced, flip only (release-distill-long) | 66.57 | 92.45 | 5.27 | 85.53 | 94.95 | 90.91 |
| the same student, one view | 64.85 | 92.24 | 5.32 | 85.58 | **96.30** | 90.53 |
| 8444b8ed self-distilled at lr 5e-5, 8 epochs, unbalanced, flip only (release-distill-gentle) | 66.47 | 92.34 | 5.30 | 85.82 | 95.62 | 91.39 |
| 8444b8ed + 16 epochs, 10 views, calibrated (release-mtl-restart2) | **68.41** | 92.45 | 5.25 | **86.71** | 95.96 | 91.58 |
| 8444b8ed and release-mtl-restart2 averaged weight by weight, untrained, 10 views, calibrated (release-mtl-soup, **this model**) | 67.96 | 92.60 | 5.17 | 86.46 | 95.96 | 91.58 |
| the same average + release-distill-gentle (checkpoints, uncalibrated) | 68.06 | 92.39 | 5.21 | 86.22 | 95.96 | 91.48 |
| the same average + both students (checkpoints, uncalibrated) | 67.89 | 92.45 | 5.18 | 85.90 | 95.62 | 91.20 |
| this model's network, flip only (2 views) | 66.47 | 92.86 | 5.21 | 86.00 | 95.29 | 90.91 |

Multi-crop averaging helps (FER2013 +0.8 to +1.0, MAE -0.08 to -0.23) at 10 passes per face
instead of 2; 3-epoch restarts with label smoothing or erasing do not beat their baseline (3 epochs
are too few to recover from the restart's peak learning rate); 16 more epochs do: +0.9 FER2013,
-0.23 years MAE, +0.6 FairFace, +0.7 GENKI-4K over the model it started from, with flip averaging
alike, and 16 more after those: +0.55 FER2013, -0.04 years, +0.5 FairFace, +0.3 GENKI-4K and
+0.4 CelebA again, level on UTKFace gender (-0.10, two faces). The distilled student answers in
2 passes a face at the 10-view model's flip-only level, not above it; the dense chain did not
overtake the separable one in 1.49 h. Two more students of 8444b8ed (16 epochs at teacher weight
0.7; 8 epochs at a tenth of the rate, unbalanced) ended below its own network answering with the
same two views on emotion, gender and age: distilling the ten views' average into the same
network did not carry the views' gain. A third 16-epoch restart gained on emotion and FairFace
again but lost 0.10 years on age; the average of its weights and its parent's (a "model soup",
no training) keeps most of both: ahead of 8444b8ed on FER2013 (+0.35), UTKFace gender (+0.10),
FairFace (+0.24) and CelebA (+0.19), level on GENKI-4K, 0.02 years behind on age. Adding the
students to the average lowers it.
The architecture by accuracy per CPU-hour (`benchmarks/README.md`: dense 3x3 convolutions reach
28-31 % of this CPU's bfloat16 matmul peak, depthwise-separable ones 14 %): two candidates trained
from scratch for the same 3 x 20,480 faces of release-mtl's mixing (`facenet-mtl train --config
experiments/release/release-mtl.toml --stage pretrain --set 'init=""' --set train.epochs=3 --set
data.epoch_size=20480 --set train.bn_recalibration_batches=0 --set name=probe-arch-...`), validation,
flip averaging:

| candidate | params | train seconds | FER2013 | UTKFace gender | UTKFace MAE | FairFace gender | GENKI-4K smile | CelebA smile |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
| separable, widths 48-384 (this model's network) | 0.88 M | 356 | 36.99 | 78.47 | **11.72** | 66.76 | 89.90 | 85.93 |
| dense, widths 32-256 | 2.82 M | **308** | **42.83** | **84.33** | 14.33 | **71.74** | **92.59** | **88.13** |

At the same throughput the dense net learns every classification head faster (+3 to +6 points
after 3 short epochs) and its age head slower; over a full schedule (the dense chain in the table
above, 26 epochs) the lead did not hold.

## Figures (test splits)
| head | dataset (protocol) | figure |
|---|---|---|
| emotion | FER2013 PublicTest, 7 classes | {emotion} % |
| gender | UTKFace test (hash split) | {gender_utk} % |
| age | UTKFace test, ages 0-100, MAE | {age_utk} years |
| smile | GENKI-4K test (hash split) | {smile} % |
| smile | CelebA test (hash split) | {smile_celeba} % |
| gender | FairFace faces never trained on (hash split) | {gender_ff} % (worst race group {worst_race} %) |
| age group | FairFace faces never trained on, 9 groups | {age_group_ff} % |

### Through the photo path (what `facenet-mtl predict` does)
{photo}

### Per group (`facenet-mtl evaluate --data data_out/release --by race,gender,age_band`, {seconds} s)
FairFace test faces, by race:

{ff_race}

FairFace by gender:

{ff_gender}

FairFace by age band (a group falls in the band of its midpoint):

{ff_band}

UTKFace test faces, by race (UTKFace's five groups):

{utk_race}

UTKFace by gender:

{utk_gender}

UTKFace by age band:

{utk_band}

### Calibration (`train.calibrate`: a temperature per head fitted on validation, folded into the head)
Expected calibration error (15 confidence bins; 0 means a probability of 0.9 is right 9 times in 10),
over the faces each head is labelled on:

{calibration}

### Emotion confusion matrix (FER2013 PublicTest, rows: true label)
{confusion}

## Known limits
- Children and the elderly: few training faces below 13 and above 70, and the age band tables
  above show the error growing there; ages above 100 were not trained (DEX bins stop at 100).
- Non-frontal faces: the sources are mostly frontal; faces turned more than ~45 degrees are
  often missed by the detector or mis-framed.
- Posed vs spontaneous expressions: FER2013 mixes both, from web images; expressions in the
  wild, subtle ones and disgust (the rarest class) are much less reliable than happy or surprise.
- Small faces (under ~40 px) are upscaled and lose detail; the model sees {size}x{size} crops.
- Gender and race groups are as annotated by each dataset's authors; the per-group figures show
  where the model is weaker, and a group not listed was not measured.
"""
