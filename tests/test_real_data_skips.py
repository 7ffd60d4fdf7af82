"""The tests on the real data skip, when it is absent, with a reason that says where it was looked
for and which variable points elsewhere (FACENET_MTL_SHARED_DATA, honoured by every such test)."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_real_data_tests_say_why_they_skip_and_name_the_variable(tmp_path):
    env = dict(os.environ, FACENET_MTL_SHARED_DATA=str(tmp_path / "nowhere"))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           "tests/data/test_readers_genki4k.py", "tests/data/test_readers_utkface.py",
                           "-k", "real"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    skips = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skips) == 2, done.stdout[-3000:]
    assert all("FACENET_MTL_SHARED_DATA" in line and str(tmp_path / "nowhere") in line for line in skips), skips
