"""The parent's handle on a segment actor (api/ray_executor.py `_Segment`) over a fake Ray:
the lines pulled at a segment's end, and what happens when those pulls fail."""

from __future__ import annotations

from pathlib import Path

from loadgen.api.ray_executor import _Segment
from loadgen.api.segment_worker import PartResult
from loadgen.api.workers import WORKER_DIED

LINES = b"".join(b'{"n": %d}\n' % i for i in range(6))


class _Failed:
    """A pull whose result never arrives (its actor's node is gone)."""


class _Remote:
    def __init__(self, fn):
        self.remote = fn


class _Actor:
    def __init__(self, fail_final: bool) -> None:
        self.fail_final = fail_final
        self.pulls: list[tuple[int, bool]] = []
        self.run = _Remote(lambda spec: PartResult(0, "", 6, b"metrics-state"))
        self.pull = _Remote(self._pull)

    def _pull(self, offset: int, final: bool = False):
        self.pulls.append((offset, final))
        if final and self.fail_final:
            return _Failed()
        return LINES[offset:], (b"state" if final else None)


class _Ray:
    def get(self, ref, timeout=None):
        if isinstance(ref, _Failed):
            raise TimeoutError("GetTimeoutError")
        return ref

    def wait(self, refs, timeout=None):
        return refs, []

    def kill(self, actor, no_restart=True):
        pass


class _Spec:
    index = 0


def _segment(tmp_path: Path, fail_final: bool) -> tuple[_Segment, _Actor]:
    actor = _Actor(fail_final)
    seg = _Segment(_Ray(), actor, _Spec(), tmp_path / "worker-0")  # type: ignore[arg-type]
    seg._append(LINES[:20])   # an earlier pull brought the first lines
    return seg, actor


def test_a_failed_pending_pull_is_ignored_and_the_final_pull_takes_the_rest(tmp_path):
    seg, actor = _segment(tmp_path, fail_final=False)
    seg._pull = _Failed()
    seg._end()
    outcome = seg.poll()
    assert actor.pulls == [(20, True)]                       # from the offset the lost pull did not move
    assert (tmp_path / "worker-0" / "requests.jsonl").read_bytes() == LINES
    assert outcome.result.metrics_state == b"metrics-state" and outcome.result.stop_reason is None


def test_a_failed_final_pull_drops_the_metrics_that_count_lines_not_pulled(tmp_path):
    seg, actor = _segment(tmp_path, fail_final=True)
    seg._end()
    outcome = seg.poll()
    assert (tmp_path / "worker-0" / "requests.jsonl").read_bytes() == LINES[:20]
    assert outcome.result.metrics_state is None              # rebuilt from the lines pulled
    assert outcome.result.stop_reason == WORKER_DIED         # the run is not said to have completed
    assert "last lines lost" in outcome.result.error
    assert not (tmp_path / "worker-0" / "metrics.state").exists()
