"""A temporary state file left by a write that a SIGKILL interrupted is removed when the exporter starts.

The state file is written to `.<name>.<random>.tmp` and renamed over the target; a process killed in between
leaves the temporary behind, and before this every such kill left one more file next to the state file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from exporter.app import App
from exporter.simulator import SimJob, Simulator
from tests.support import scrape, wait_until


def test_a_start_removes_the_temporaries_of_an_interrupted_write(
    sim: Simulator, tmp_path: Path, exporter_for: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="exporter.state")
    sim.add_job(SimJob(id=1, status="completed"))
    state = tmp_path / "final.json"
    stale = tmp_path / ".final.json.k1ll3d.tmp"
    stale.write_text('{"version": 1, "acc')  # what a write cut short looks like
    unrelated = tmp_path / ".other.json.x.tmp"
    unrelated.write_text("not ours")

    app = exporter_for(sim, [1], interval=0.2, state_file=str(state))

    assert not stale.exists()
    assert unrelated.exists()  # another file's temporary is not ours to remove
    assert (
        f"state file {state}: removed .final.json.k1ll3d.tmp, left by an interrupted write" in caplog.messages
    )
    wait_until(lambda: scrape(app).status(1) == "completed", 10, "job 1 on /metrics")
    wait_until(state.exists, 10, "the state file")
    assert sorted(path.name for path in tmp_path.iterdir()) == [".other.json.x.tmp", "final.json"]
