"""`mlops-bot sandbox --script` as a newcomer runs it: a subprocess, a transcript, an exit code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_script(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "sandbox", "--script", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def test_sample_script_runs_and_prints_a_readable_transcript() -> None:
    result = run_script(ROOT / "docs" / "sandbox-example.txt")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "signing secret: sandbox-signing-secret" in out
    assert "[#ml-fraud] @mlops-bot\n  :lock: *fraud/prod* is locked by @alice" in out
    assert "[1: Unlock]" in out
    assert "(ephemeral, only @bob sees it)" in out
    assert "@bob needs the deployer role on fraud/prod" in out
    assert "[#ml-fraud] @mlops-bot (edited)\n  :unlock: *fraud/prod* unlocked by @alice" in out
    assert "Unknown model `frod`" in out
    assert "<!date" not in out


def test_a_failing_line_makes_the_script_fail(tmp_path: Path) -> None:
    script = tmp_path / "bad.txt"
    script.write_text("/deploy help\nas @mallory\n/deploy fraud status\n")
    result = run_script(script)
    assert result.returncode == 1
    assert "no sandbox user '@mallory'" in result.stdout
    assert "> /deploy fraud status" not in result.stdout


def readme_loop() -> str:
    """The console lines of the README's loop block, exactly as a newcomer copies them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    after = readme.split("The whole loop, as `docs/sandbox-deploy.txt` runs it:", 1)[1]
    return after.split("```", 2)[1].strip("\n")


def test_the_readme_loop_runs_verbatim(tmp_path: Path) -> None:
    script = tmp_path / "readme-loop.txt"
    script.write_text(readme_loop() + "\n")
    result = run_script(script)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "!!" not in result.stdout
    assert "revision 1 verified on ECS" in result.stdout.split("> /deploy fraud rollback prod")[1]


def test_wait_until_only_matches_what_came_after_the_previous_line(tmp_path: Path) -> None:
    script = tmp_path / "stale.txt"
    script.write_text('/deploy fraud lock stg reason="x"\n/deploy help\nwait until is locked by\n')
    result = subprocess.run(
        [sys.executable, "-m", "bot", "sandbox", "--script", str(script), "--wait-seconds", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1
    assert "timed out after 2s waiting for 'is locked by'" in result.stdout


def tagged_pids(tag: str) -> set[int]:
    """Processes whose environment carries ``tag``: the sandbox run and every child it left."""
    found = set()
    needle = f"MLOPS_TEST_TAG={tag}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.add(int(proc.name))
    return found


def sandbox_dirs(under: Path) -> set[str]:
    return {p.name for p in under.glob("mlops-bot-sandbox-*")}


def test_quit_during_a_hanging_deploy_exits_cleanly(tmp_path: Path) -> None:
    """`quit` while ecspresso hangs: exit 0, no traceback, no process of the run left, the
    sandbox's temporary directory removed."""
    tag, own_tmp = uuid.uuid4().hex, tmp_path / "tmp"  # its own: other sandboxes may run
    own_tmp.mkdir()
    script = tmp_path / "quit.txt"
    script.write_text(
        "ecspresso hang\n/train fraud ref=main\nwait until gate passed\n/deploy fraud stg\n"
        "wait 2\nquit\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot", "sandbox", "--script", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=os.environ | {"MLOPS_TEST_TAG": tag, "TMPDIR": str(own_tmp)},
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert tagged_pids(tag) == set()
    assert sandbox_dirs(own_tmp) == set()


def test_ctrl_c_ends_the_interactive_console(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) at the prompt ends the console at once and leaves nothing running."""
    tag = uuid.uuid4().hex
    console = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=os.environ | {"MLOPS_TEST_TAG": tag},
    )
    try:
        assert console.stdout is not None
        for line in console.stdout:
            if b"type `help` for console lines" in line:
                break
        console.send_signal(signal.SIGINT)
        assert console.wait(timeout=30) == 130
    finally:
        console.kill()
        console.wait()
    assert tagged_pids(tag) == set()
