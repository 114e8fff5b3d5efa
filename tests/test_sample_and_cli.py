"""The sample generator and the command line, through real processes."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

from sample import DECK_2019, SampleSpec, volumes, write_sample


def politikpi(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows", *args], capture_output=True, text=True, env=env)


def test_sample_is_deterministic(tmp_path):
    write_sample(tmp_path / "a", SampleSpec(years=(2019,), days=3))
    write_sample(tmp_path / "b", SampleSpec(years=(2019,), days=3))
    cmp = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    files = [p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()]
    assert len(files) > 10
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert not cmp.diff_files


def test_2019_volumes_are_the_deck_and_scale_multiplies():
    assert volumes(2019, 1) == DECK_2019
    assert volumes(2019, 55)["reports"] == 205_690 * 55


def test_sample_writes_every_format(small_landing: Path):
    names = [p.name for p in small_landing.rglob("*")]
    assert any(n.endswith(".csv.gz") for n in names) and any(n.endswith(".jsonl.gz") for n in names)
    assert any(n.endswith(".xlsx") for n in names) and any(n.endswith(".jsonl") for n in names)
    raw = b"".join(p.read_bytes()[:3] for p in (small_landing / "reports").glob("*.csv"))
    assert b"\xef\xbb\xbf" in raw  # a UTF-8 file with BOM


def test_help_teaches_the_commands():
    out = politikpi("--help")
    assert out.returncode == 0
    for command in ("sample", "refresh", "overview", "quarantine", "releases"):
        assert command in out.stdout


def test_refresh_of_a_missing_landing_folder_fails_with_one_line(tmp_path):
    out = politikpi("refresh", "--landing", str(tmp_path / "nope"), "--state", str(tmp_path / "s"),
                    "--warehouse", str(tmp_path / "w"))
    assert out.returncode == 1 and "does not exist" in out.stderr


def test_bad_year_range_is_refused(tmp_path):
    out = politikpi("sample", "--year", "2019-2015", "--out", str(tmp_path))
    assert out.returncode == 1 and "range" in out.stderr
