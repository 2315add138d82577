"""The `r1lab` command: help works, unknown commands and user errors exit non-zero without a traceback."""

import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "r1lab.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_commands():
    r = run("--help")
    assert r.returncode == 0
    assert "version" in r.stdout


def test_unknown_command_fails_cleanly():
    r = run("no-such-command")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
