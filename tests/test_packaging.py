"""The wheel ships the release model, and a fresh install labels a real photo offline with it."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
from tests.photos import UTKFACE, missing_data  # noqa: E402


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("src") / "facenet-mtl"
    # Build from a copy of the tracked files plus the weights, as a fresh clone would hold them.
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, tracked):
        path = ROOT / name.decode()
        if path.is_file() and not path.is_symlink():
            target = source / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    for name in ("release.h5", "release.json", "MODEL_CARD.md", "evaluation.json"):
        shutil.copyfile(ROOT / "facenet_mtl" / "weights" / name, source / "facenet_mtl" / "weights" / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True)
    (found,) = out.glob("facenet_mtl-*.whl")
    return found


def test_the_wheel_holds_the_release_model_and_its_card(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("facenet_mtl/weights/release.h5", "facenet_mtl/weights/release.json",
                 "facenet_mtl/weights/MODEL_CARD.md"):
        assert name in names, name
    info = json.loads(zipfile.ZipFile(wheel).read("facenet_mtl/weights/release.json"))
    assert len(info["sha256"]) == 64 and info["input_size"] >= 32
    assert not any(n.startswith(("datasets/", "tests/")) for n in names)
    assert "facenet_mtl/py.typed" in names  # type hints are part of the API (PEP 561)
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)


def test_a_fresh_install_predicts_a_real_photo_offline(wheel, tmp_path):
    if not UTKFACE.is_dir():
        pytest.skip(missing_data(UTKFACE, "a real face"))
    import cv2

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The new environment sees this one's dependencies (TensorFlow etc.) but not its facenet_mtl:
    # the package comes only from the wheel, unpacked into the new site-packages.
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    zipfile.ZipFile(wheel).extractall(site)
    photo = np.full((360, 480, 3), 120, np.uint8)
    photo[80:280, 140:340] = cv2.imread(str(sorted(UTKFACE.glob("*.jpg"))[3]))
    cv2.imwrite(str(tmp_path / "photo.jpg"), photo)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update({"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3", "no_proxy": "*",
                "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"})  # offline
    check = "import facenet_mtl; assert 'site-packages' in facenet_mtl.__file__, facenet_mtl.__file__"
    assert subprocess.run([str(venv / "bin" / "python"), "-c", check], cwd=tmp_path, env=env).returncode == 0
    # `facenet-mtl predict photo.jpg`: no model argument, so the shipped weights.
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "facenet_mtl.cli", "predict", "photo.jpg"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert line["model"].startswith("facenet-mtl-release-") and "warning" not in line
    faces = line["faces"]
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0]["box"]
    assert 110 < (x1 + x2) / 2 < 370 and 50 < (y1 + y2) / 2 < 310
    assert set(faces[0]) >= {"box", "age", "gender", "emotion", "smile"}
