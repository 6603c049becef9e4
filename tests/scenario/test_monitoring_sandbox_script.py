"""docs/sandbox-monitoring.txt as a newcomer runs it: `python -m bot sandbox --script`, a
transcript from drift to rollback and a resolved incident, then the digest chart."""

from __future__ import annotations

import re
from pathlib import Path

from tests.scenario.test_sandbox_script import ROOT, run_script


def test_the_monitoring_script_runs_an_incident_from_drift_to_rollback() -> None:
    result = run_script(ROOT / "docs" / "sandbox-monitoring.txt")

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "!!" not in out
    quiet = "(monitoring check of fraud/prod: drift ok, accuracy ok; 0 breached)"
    assert out.count(quiet) == 2
    assert "(traffic fraud/prod: amount shifted +0.5 sd; wrote 2,000 predictions" in out
    assert "(monitoring check of fraud/prod: drift breached, accuracy ok; 1 breached)" in out
    assert "*:rotating_light: fraud/prod: drift breached (incident #1)*" in out
    assert "*Now:* drift: 1 of 5 drifted over 2,000 predictions: amount (p=" in out
    assert "Live when it began: deploy #4 (run #2)" in out
    assert "Owners: <!subteam^S0FRAUDOWNERS>" in out
    assert "[1: Roll back to deploy #2] [2: Acknowledge] [3: Snooze 24h]" in out
    assert ":rewind: @alice rolls fraud/prod back to deploy #2 (revision 2)." in out
    assert ":white_check_mark: *fraud → prod · rollback #5* — succeeded" in out
    assert (
        "*:white_check_mark: fraud/prod: drift back within limits (incident #1, resolved)*" in out
    )
    health = out.rpartition("*Health of fraud/prod*")[2]
    assert "(deploy #5)" in health and "No open incidents." in health

    digest = out.rpartition("> monitor digest fraud prod")[2]
    assert "*Daily digest of fraud/prod* (last 24 h, " in digest
    assert "Deploys: #2, #4, #5" in digest and "Open incidents: 0" in digest
    saved = re.search(
        r"\[file 'fraud/prod digest [0-9-]+': [0-9,]+ bytes, saved to (\S+)\]", digest
    )
    assert saved is not None, digest
    assert Path(saved[1]).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
