"""What the README shows is what the code sends and the Makefile installs."""
import re
from pathlib import Path

from facenet_mtl import weights

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_the_sample_model_ids_are_the_shipped_models():
    shown = set(re.findall(r'"model": "(facenet-mtl-release-[^"]+)"', README))
    assert shown == {weights.model_id()}


def test_the_installing_table_lists_the_extras_make_test_installs():
    installed = re.search(r'pip install -q -e "\.\[([\w,]+)\]"', (ROOT / "Makefile").read_text()).group(1)
    table = README[README.index("## Installing"):README.index("## Layout")]
    assert set(re.findall(r"^\| `\.\[(\w+)\]`", table, re.M)) == set(installed.split(","))
    assert f"`make test` installs `.[{installed}]`" in table
    assert "pip install facenet-mtl`" not in README  # no such package on the index


def test_the_layout_names_each_package_folder_once():
    layout = README[README.index("## Layout"):README.index("## Runs")]
    folders = re.findall(r"^(facenet_mtl/\S+/)", layout, re.M)
    assert len(folders) == len(set(folders))
