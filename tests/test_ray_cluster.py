"""`--cluster ray`: loadgen's jobs as Ray tasks on a local 2-CPU Ray, started once per test
session (Ray takes seconds to start: these tests are few and each does a lot)."""

from __future__ import annotations

import json
import logging

import pytest

from loadgen.commands.cli import main
from parallel_results import comparable
from result_files import only_dir
from test_simulate_maxrate import write as write_capacity
from test_simulate_parallel import CROSSOVER

ray = pytest.importorskip("ray", reason="Ray is in the test extra: pip install -e '.[test]'")


@pytest.fixture(scope="session")
def local_ray():
    """A local Ray with 2 CPUs for the whole session; loadgen joins it (ray.is_initialized)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_sweep_and_find_max_rate_on_ray_write_what_the_serial_ones_write(local_ray, tmp_path, capsys):
    sweep = ["--sweep", "sessions.think_time.median=1m,45m"]
    assert main(["simulate", str(CROSSOVER), *sweep, "--out", str(tmp_path / "s1"), "--quiet"]) == 0
    assert main(["simulate", str(CROSSOVER), *sweep, "--out", str(tmp_path / "s2"), "--cluster", "ray"]) == 0
    out = capsys.readouterr().out
    assert "on Ray (already connected), 2 CPU(s)" in out
    one, two = only_dir(tmp_path / "s1"), only_dir(tmp_path / "s2")
    assert comparable(one, "sweep.json") == comparable(two, "sweep.json")
    # the tasks wrote in their own temporary folders and shipped the files back: every file is
    # here, and report.html names the folder it now sits in
    files = sorted(str(p.relative_to(two)) for p in two.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(one)) for p in one.rglob("*") if p.is_file())
    page = (two / "00-median=1m" / "report.html").read_text()
    assert str(two / "00-median=1m") in page and "loadgen-point-" not in page

    sc = write_capacity(tmp_path, "tpm = 60000")
    assert main(["simulate", str(sc), "--find-max-rate", "--out", str(tmp_path / "m1"), "--quiet"]) == 0
    assert main(["simulate", str(sc), "--find-max-rate", "--out", str(tmp_path / "m2"), "--quiet",
                 "--cluster", "ray"]) == 0
    one, two = only_dir(tmp_path / "m1"), only_dir(tmp_path / "m2")
    assert comparable(one, "maxrate.json") == comparable(two, "maxrate.json")
    assert json.loads((two / "in-region" / "summary.json").read_text())["clock"] == "virtual"
    assert ray.is_initialized()  # loadgen left the session's Ray running: it did not start it


def test_an_unreachable_cluster_exits_3_before_anything_is_written(tmp_path, capsys, monkeypatch):
    def refuse(*a, **kw):
        raise ConnectionError("no Ray cluster at 127.0.0.1:1")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    assert main(["simulate", str(CROSSOVER), "--sweep", "seed=1,2", "--cluster", "ray://127.0.0.1:1",
                 "--out", str(tmp_path / "out")]) == 3
    err = capsys.readouterr().err
    assert "--cluster ray://127.0.0.1:1: cannot connect to Ray" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
