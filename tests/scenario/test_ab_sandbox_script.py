"""docs/sandbox-ab.txt as a newcomer runs it: `python -m bot sandbox --script`, a transcript."""

from __future__ import annotations

from tests.scenario.test_sandbox_script import ROOT, run_script


def test_the_ab_script_runs_an_experiment_trips_the_guard_and_promotes() -> None:
    result = run_script(ROOT / "docs" / "sandbox-ab.txt")

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "*fraud → prod-b · deploy #2* — awaiting approval" in out
    assert "*traffic*: A 90% · B 10% (ELBv2 weights 90/10)" in out
    assert "@alice asks to move B from 10% to *30%*; approvals 0/1" in out
    assert "You approved moving B of fraud/prod to 30%; it is done." in out
    assert "traffic (ELBv2): A 70% · B 30% (weights 70/30)" in out
    assert "A/B: A 70% · B 30% (A/B #1 running)" in out
    assert "(CloudWatch now holds b-errors data for fraud/prod: A healthy, B b-errors)" in out
    assert ":red_circle: *fraud/prod · A/B #1* — aborted" in out
    assert ":red_circle: @alice the guard aborted A/B #1 on *fraud/prod*: 3 breaches" in out
    assert "All traffic is on A (ELBv2 weights 100/0)" in out
    assert ":white_check_mark: *fraud/prod · A/B #2* — promoted" in out
    assert "!!" not in out
