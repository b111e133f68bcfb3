"""The grid command on the smoke config: trains every model once, skips finished ones, writes the table."""

import csv
import json
import pathlib

import pytest

from experiments import run_grid
from experiments.grid import load_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "configs" / "grid_cpu.py"
FACES = ROOT.parent / "shared" / "data" / "faces"


@pytest.mark.skipif(not (FACES / "london").is_dir(), reason="the shared face sets are not beside the repository")
def test_grid_trains_once_skips_finished_models_and_writes_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the config names ../shared/data/faces
    workdir = tmp_path / "grid"
    assert run_grid.main(["--config", f"{CONFIG}:smoke", "--workdir", str(workdir)]) == 0
    first = capsys.readouterr()
    assert "trained 4 model(s), skipped 0 finished" in first.out
    runs = sorted(p.relative_to(workdir / "runs").as_posix() for p in workdir.glob("runs/*/*/seed*/model"))
    assert runs == [f"{b}/{t}/seed0/model" for b in ("imagenet", "vggface") for t in ("gender", "identity")]
    assert (workdir / "bases" / "vggface" / "model" / "metadata.json").is_file()
    metadata = json.loads((workdir / "runs" / "vggface" / "gender" / "seed0" / "model" / "metadata.json").read_text())
    assert metadata["base_checkpoint"] == str(workdir / "bases" / "vggface" / "model")
    assert metadata["class_names"] == ["female", "male"] and metadata["seed"] == 0 and metadata["task"] == "gender"

    assert run_grid.main(["--config", f"{CONFIG}:smoke", "--workdir", str(workdir)]) == 0
    second = capsys.readouterr()
    assert "trained 0 model(s), skipped 4 finished" in second.out
    assert second.err.count("skipping") == 6  # two bases and four models
    shown = [line for line in second.err.splitlines() if line.startswith("grid ")]  # the one progress display
    assert [line.split()[1] for line in shown] == ["1/4", "2/4", "3/4", "4/4"] and "\r" not in second.err
    assert all("  0.0 models/s  ETA " in line for line in shown)  # nothing trained: no rate from skipped ones
    assert shown[-1].endswith("ETA 00:00:00  vggface/identity/seed0")
    with open(workdir / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["base"], r["task"]) for r in rows] == [("imagenet", "gender"), ("imagenet", "identity"),
                                                      ("vggface", "gender"), ("vggface", "identity")]
    assert rows[0]["ORL test"] == "" and 0 <= float(rows[0]["Canada"]) <= 1 and 0 <= float(rows[1]["ORL test"]) <= 1
    table = (workdir / "results.md").read_text()
    assert "| base | task | seed | London test | Canada | ORL test |" in table and "| vggface | identity | 0 |" in table
    assert "Mean ± sd" in table


def test_config_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_config(str(tmp_path / "missing.py"))
    bad = tmp_path / "bad.py"
    bad.write_text("def get_config(arg=None):\n    return {'workdir': 'x', 'typo': 1}\n")
    with pytest.raises(ValueError, match=r"missing keys \['data'.*unknown keys \['typo'\]"):
        load_config(str(bad))
    assert run_grid.main(["--config", str(bad)]) == 2
