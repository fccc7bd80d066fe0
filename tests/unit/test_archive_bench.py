"""The archive benchmark's measuring code on ~20 small images, so bench/bench_archives.py
cannot rot between the (slow) real runs; and the ZIP writer it measures."""
from __future__ import annotations

import csv
import io
import math
import zipfile

import pytest

from bench.bench_archives import Measurement, items, main, make_files, measure, report
from services.library import archives, imaging


def test_measure_on_twenty_small_images(tmp_path):
    paths = make_files(tmp_path / "pngs", 20, side=64)
    assert len(paths) == 20 and len({p.read_bytes() for p in paths}) == 20  # every file differs
    assert imaging.read_metadata(paths[0])["prompt"].startswith("a lighthouse")

    m = measure(paths, repeats=2, workdir=tmp_path / "out")

    assert m.order == ["A", "B", "B", "A"]  # interleaved
    assert len(m.project_s) == len(m.zip_s) == len(m.rss_growth) == 2
    assert all(math.isfinite(s) and 0 < s < 60 for s in m.project_s + m.zip_s)
    assert m.zip_entries == 21  # the 20 PNGs and manifest.csv
    assert 0 <= m.rss_growth_mb < 32
    assert m.passed(target_ratio=float("inf")) and not m.passed(target_ratio=0.0)
    text = report(m)
    assert "ratio" in text and "RSS" in text and ("PASS" in text or "FAIL" in text)


def test_the_zip_is_stored_with_a_manifest_and_leaves_missing_files_out(tmp_path):
    paths = make_files(tmp_path / "pngs", 3, side=64)
    todo = items(paths)
    todo.insert(1, (str(tmp_path / "gone.png"), "gone_0.png", {"file": "gone_0.png"}))
    size = archives.write_zip_file(todo, tmp_path / "out.zip")
    assert size == (tmp_path / "out.zip").stat().st_size
    assert not list(tmp_path.glob("*.part"))
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        assert zf.namelist() == [name for _p, name, _r in items(paths)] + ["manifest.csv"]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())
        assert zf.read(todo[0][1]) == paths[0].read_bytes()
        rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode())))
    assert [row["file"] for row in rows] == [name for _p, name, _r in items(paths)]


def test_the_streamed_zip_equals_a_valid_archive(tmp_path):
    paths = make_files(tmp_path / "pngs", 4, side=64)
    data = b"".join(archives.stream_zip(items(paths)))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        assert len(zf.namelist()) == 5


def test_archive_measurement_uses_medians():
    m = Measurement(count=3, total_bytes=1, project_s=[1.0, 3.0, 2.0], zip_s=[2.0, 2.0, 9.0],
                    rss_growth=[1 << 20, 2 << 20, 0])
    assert m.ratio == 1.0 and m.rss_growth_mb == 2.0
    assert m.passed() and not m.passed(target_rss_mb=1.0)


def test_archive_bench_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--count", "0"])
    assert exc.value.code == 2
    assert "--count" in capsys.readouterr().err
