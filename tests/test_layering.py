"""Prediction stands on its own floor: importing the predictor, the record writers, the server and the CLI
loads nothing of the trainer nor of the demo data (checked in a fresh interpreter)."""
import json
import subprocess
import sys

PREDICTION = ("facenet_mtl", "facenet_mtl.inference", "facenet_mtl.inference.predictor",
              "facenet_mtl.inference.records", "facenet_mtl.inference.batch", "facenet_mtl.inference.video",
              "facenet_mtl.inference.inputs", "facenet_mtl.serve", "facenet_mtl.serve.app",
              "facenet_mtl.artifact.loading", "facenet_mtl.artifact.spec", "facenet_mtl.artifact.saving",
              "facenet_mtl.artifact.exporting", "facenet_mtl.cli")
PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("facenet_mtl"))))
"""


def loaded_after_importing(*modules):
    done = subprocess.run([sys.executable, "-c", PROBE, *modules], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_prediction_and_the_server_import_nothing_from_training_or_demo():
    loaded = loaded_after_importing(*PREDICTION)
    assert "facenet_mtl.inference.predictor" in loaded and "facenet_mtl.serve.app" in loaded  # the probe works
    assert [m for m in loaded if m.startswith(("facenet_mtl.training", "facenet_mtl.demo"))] == []


def test_the_probe_sees_training_when_it_is_imported():
    """The same probe on the trainer lists training modules: the check above can fail."""
    assert "facenet_mtl.training.export" in loaded_after_importing("facenet_mtl.training.trainer")
