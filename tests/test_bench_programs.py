"""Each benchmark in bench/ runs as a program, at a tiny size, and prints its figures. No timing is judged
here (the figures are for people to read); this keeps the programs working. Their PostgreSQL modes reset the
schema of the database they are given, so they are not pointed at the suite's database."""
from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url

from engine.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _once_per_ci(database_url):
    """The programs make their own SQLite files; running them again for the PostgreSQL pass adds nothing."""
    if make_url(database_url).get_backend_name() != "sqlite":
        pytest.skip("the benchmark programs run in the SQLite pass")


def _run(*args: str, timeout: int = 300) -> str:
    done = subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_the_scan_benchmark_runs_and_prints_both_sizes_and_the_ratio():
    out = _run("bench/scan.py", "--sizes", "2000", "4000")
    assert "2,000 cases" in out and "4,000 cases" in out and "raising scan ratio" in out


def test_the_main_path_benchmark_runs_and_checks_both_sides_kept_the_same_rows():
    out = _run("bench/main_path.py", "--cases", "4", "--rounds", "2")
    assert "ratio engine/baseline (median of rounds)" in out


def test_the_pages_benchmark_times_every_page(tmp_path):
    out = _run("bench/pages.py", "--cases", "600", "--repeat", "1", "--keep", str(tmp_path))
    assert "start (desk)" in out and "FM dashboard" in out and "slowest page" in out


def test_the_intake_benchmark_posts_through_the_production_server_and_the_baseline_writes_the_same_rows():
    out = _run("bench/intake.py", "--referrals", "40", "--rounds", "2", "--clients", "4", "--seconds", "1")
    assert "ratio referrals / bare, median of rounds" in out and "ratio replays / bare" in out
    assert "p99 at 20/s" in out
    assert "same rows on both sides: yes, in every table" in out


def test_the_import_benchmark_imports_a_file_and_the_baseline_writes_the_same_rows():
    out = _run("bench/import.py", "--rows", "60")
    assert "ratio import / Core" in out and "新しい紹介 60 件" in out
    assert "same rows on both sides: yes, in every table" in out


def test_the_matching_benchmark_matches_each_kind_against_the_baseline(tmp_path):
    out = _run("bench/matching.py", "--people", "2000", "--runs", "30", "--keep", str(tmp_path))
    assert "known 宛名番号 (matched)" in out and "candidate by kana" in out and "new person" in out
    assert "ratio, median match / median baseline" in out and "USING INDEX uq_people_resident_id_live" in out
    again = _run("bench/matching.py", "--runs", "10", "--keep", str(tmp_path), "--reuse")
    assert "filled" not in again and "2,000 people" in again  # timed what was kept, without refilling
