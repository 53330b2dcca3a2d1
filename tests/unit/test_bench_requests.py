"""bench/requests.py compares two checkouts in one process: each must run its own code."""

import shutil
import sys
from pathlib import Path

from bench import requests

ROOT = Path(__file__).resolve().parents[2]


def test_another_checkout_runs_its_own_udfs_and_lab_and_leaves_ours_in_place(tmp_path):
    import udfs.ranker

    for package in requests.OWN:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "only_there.py").write_text("")
    with open(tmp_path / "udfs" / "ranker.py", "a") as f:
        f.write("\nimport only_there  # noqa: E402\nTHE_OTHER_CHECKOUT = True\n")
    before = {name: mod for name, mod in sys.modules.items() if name.split(".")[0] in requests.OWN}

    other = requests.load(tmp_path)

    assert other["ranker"].THE_OTHER_CHECKOUT
    assert Path(other["inprocess"].__file__).is_relative_to(tmp_path)
    assert other["inprocess"].ranker is other["ranker"]   # its lab runs its udfs, not ours
    assert not hasattr(udfs.ranker, "THE_OTHER_CHECKOUT")
    assert {name: mod for name, mod in sys.modules.items() if name.split(".")[0] in requests.OWN} == before
    assert "only_there" not in sys.modules   # nothing else of the other checkout stays behind
