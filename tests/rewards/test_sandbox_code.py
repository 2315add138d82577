"""The code sandbox holds against escape attempts, and the `code` reward scores test cases through it."""

from __future__ import annotations

import os
import time

import pytest

from r1lab.rewards import get_reward, reset_timeout_counts, run_python, timeout_counts
from r1lab.rewards.code import last_python_block
from r1lab.rewards.sandbox import SandboxLimits

FAST = SandboxLimits(cpu_s=1, wall_s=3, memory_bytes=256 * 2**20)


def test_plain_program_reads_stdin_and_may_use_its_own_directory():
    code = "import math, collections\nopen('scratch.txt', 'w').write(input())\nprint(open('scratch.txt').read()[::-1], math.gcd(12, 18))"
    result = run_python(code, "abc\n", FAST)
    assert result.ok and result.stdout == "cba 6\n"


def test_infinite_loop_is_stopped_by_the_cpu_limit():
    start = time.monotonic()
    result = run_python("while True: pass", "", FAST)
    assert result.timed_out and not result.ok
    assert time.monotonic() - start < FAST.wall_s + 2


def test_sleeping_forever_is_stopped_by_the_wall_clock_and_leaves_no_process():
    result = run_python("import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(1000)", "", FAST)
    assert result.timed_out
    pid = int(result.stdout.split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize(
    "code",
    [
        "import os\nwhile True:\n    os.fork()",
        "import subprocess\nsubprocess.run(['sh', '-c', 'sleep 100'])",
        "import os\nos.system('sleep 100')",
        "import multiprocessing\nmultiprocessing.Process(target=print).start()",
        "import threading\nthreading.Thread(target=print).start()",
        "import pty\npty.spawn('sh')",
    ],
    ids=["fork-bomb", "subprocess", "os.system", "multiprocessing", "thread", "pty"],
)
def test_no_new_processes(code):
    result = run_python(code, "", FAST)
    assert not result.ok and not result.timed_out  # refused at once, not left to spin


def test_memory_hog_fails_inside_its_limit():
    result = run_python("x = bytearray(2 * 1024**3)\nprint('allocated')", "", FAST)
    assert not result.ok and "allocated" not in result.stdout
    result = run_python("chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))", "", FAST)
    assert not result.ok


def test_writes_outside_the_sandbox_directory_are_refused(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.chmod(tmp_path, 0o777)  # even a world-writable directory must stay untouched
    target = tmp_path / "escaped.txt"
    attempts = [
        f"open({str(target)!r}, 'w').write('x')",
        f"import os\nos.chdir({str(tmp_path)!r})\nos.close(os.open('escaped.txt', os.O_CREAT | os.O_WRONLY))",
        f"import os\nos.remove({str(victim)!r})",
        f"import os\nos.rename({str(victim)!r}, 'mine.txt')",
        f"import os\nos.symlink({str(target)!r}, 'link')\nopen('link', 'w').write('x')",
        f"import shutil\nshutil.rmtree({str(tmp_path)!r})",
        "open('/tmp/r1lab-sandbox-escape-probe', 'w').write('x')",
    ]
    for code in attempts:
        assert not run_python(code, "", FAST).ok, code
    assert victim.read_text() == "keep me"
    assert not target.exists()
    assert not os.path.exists("/tmp/r1lab-sandbox-escape-probe")


@pytest.mark.parametrize(
    "code",
    [
        "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)",
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'x', ('8.8.8.8', 53))",
        "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=1)",
    ],
    ids=["tcp", "udp", "http"],
)
def test_no_network(code):
    assert not run_python(code + "\nprint('connected')", "", FAST).ok


def test_network_namespace_and_privilege_drop_are_reported_where_available():
    isolation = run_python("print(1)", "", FAST).isolation
    assert isolation["rlimits"] and isolation["audit_hook"]
    if os.geteuid() == 0:  # root can always make a network namespace and drop to nobody
        assert isolation["network_namespace"] and isolation["dropped_privileges"]


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("R1LAB_TEST_SECRET", "hunter2")
    result = run_python("import os\nprint(dict(os.environ))", "", FAST)
    assert result.ok and "hunter2" not in result.stdout and "R1LAB_TEST_SECRET" not in result.stdout
    leak = run_python("import os\nprint(open(f'/proc/{os.getppid()}/environ').read())", "", FAST)
    assert "hunter2" not in leak.stdout


def test_ctypes_and_hook_tampering_are_refused():
    assert not run_python("import ctypes\nctypes.CDLL(None).fork()", "", FAST).ok
    assert not run_python("import gc\nprint(len(gc.get_objects()))", "", FAST).ok


def test_flood_of_output_is_cut():
    limits = SandboxLimits(cpu_s=1, wall_s=3, max_output_bytes=10_000)
    result = run_python("while True:\n    print('x' * 1000)", "", limits)
    assert result.output_truncated and not result.ok and len(result.stdout) <= 10_000


# -- the reward -------------------------------------------------------------------------------------------

def test_last_python_block():
    text = "```python\nprint(1)\n```\ntext\n```py\nprint(2)\n```\n```\nprint(3)\n```"
    assert last_python_block(text) == "print(2)\n"
    assert last_python_block("```\nprint(3)\n```") == "print(3)\n"
    assert last_python_block("```python\nprint(1)") is None  # unclosed fence
    assert last_python_block("no code") is None


def test_code_reward_scores_the_fraction_of_tests_passed():
    code = get_reward("code", cpu_s=1, wall_s=3)
    tests = [{"input": "2 3\n", "output": "5"}, {"input": "10 -4\n", "output": "6\n"}, {"input": "1 1", "output": "3"}]
    adder = "Here:\n```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    assert code([adder, "no code here"], tests=[tests, tests]) == [pytest.approx(2 / 3), 0.0]
    assert get_reward("code", all_or_nothing=True)([adder], tests=[tests]) == [0.0]
    assert code([adder], tests=['[{"input": "1 2", "output": "3"}]']) == [1.0]  # tests as JSON text
    assert code([adder, adder], tests=[None, "not json"]) == [None, None]


def test_code_reward_counts_time_outs():
    reset_timeout_counts()
    code = get_reward("code", cpu_s=1, wall_s=2)
    looping = "```python\nwhile True: pass\n```"
    assert code([looping], tests=[[{"input": "", "output": "1"}]]) == [0.0]
    assert timeout_counts().get("code") == 1


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_sandboxed_process_dies_with_a_crashed_parent(tmp_path):
    import subprocess
    import sys

    script = ("from r1lab.rewards import run_python, SandboxLimits\n"
              "run_python('import time\\ntime.sleep(120)', '', SandboxLimits(wall_s=120))")
    # TMPDIR: the crashed parent cannot remove its sandbox directory; keep it inside pytest's tmp_path
    parent = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        deadline = time.monotonic() + 60
        children = []
        while not children and time.monotonic() < deadline:
            time.sleep(0.2)
            children = _children_of(parent.pid)
        assert children, "the sandbox child never started"
        time.sleep(0.5)  # let it get past its lock-down into the solution
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{c}") for c in children):
        time.sleep(0.1)
    assert not any(os.path.exists(f"/proc/{c}") for c in children)
