"""Runs as the sandbox child (``python -I -S _sandbox_child.py CONFIG_JSON``): lock down, then run the solution.

Started by `r1lab.rewards.sandbox.run_python` in a new session (own process group), with a scrubbed
environment and its own temporary directory as cwd. In order, before any model-written code runs:

1. network: a fresh, empty network namespace (``unshare(CLONE_NEWNET)``; as non-root together with a new
   user namespace) — no interface but a downed loopback, so no connection can leave;
2. privileges: when started as root, the directory is handed to ``nobody`` and the process drops to
   uid/gid 65534 with no supplementary groups, so the file system's own permissions stop writes elsewhere
   and reads of other processes' ``/proc/<pid>/environ``; the standard library stays importable through
   directory descriptors opened before the drop (``/proc/self/fd/N``);
3. rlimits: CPU seconds, address space, file size, open files, no new processes (RLIMIT_NPROC = 0; binding
   once the process is not root), no core files;
4. an audit hook (PEP 578) that refuses sockets, process creation, signals to other processes, ctypes,
   writes/renames/deletes outside the directory and reads of other processes' /proc entries — a second
   layer only: audit hooks are not a security boundary on their own.
What was actually achieved is written as JSON on the status descriptor, so every result can say so.
"""

import ctypes
import json
import os
import resource
import signal
import sys
import traceback

NOBODY = 65534
CLONE_NEWNET, CLONE_NEWUSER = 0x40000000, 0x10000000
PR_SET_DUMPABLE = 4
PR_SET_PDEATHSIG = 1

BLOCKED_EVENT_PREFIXES = (
    "socket.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty", "os.system",
    "os.kill", "os.killpg", "os.setuid", "os.setgid", "os.chroot", "pty.", "ctypes.", "gc.get_",
    "sys._current_frames", "urllib.Request", "http.client.", "ftplib.", "smtplib.", "telnetlib.",
    "poplib.", "imaplib.", "nntplib.", "webbrowser.", "winreg.",
)
PATH_EVENTS = frozenset({
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.symlink", "os.link",
    "os.truncate", "os.utime", "os.setxattr", "os.removexattr", "shutil.rmtree", "shutil.move",
    "shutil.copyfile", "shutil.copytree", "shutil.copymode", "shutil.copystat", "shutil.chown",
})
BLOCKED_IMPORTS = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "cffi", "_multiprocessing"})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _inside(workdir: str, path) -> bool:
    full = os.path.realpath(os.fsdecode(path))
    return full == workdir or full.startswith(workdir + os.sep)


def _other_process_proc(path) -> bool:
    full = os.path.realpath(os.fsdecode(path))
    if not full.startswith("/proc/"):
        return False
    pid = full[len("/proc/"):].split("/", 1)[0]
    return pid.isdigit() and int(pid) != os.getpid()


def make_audit_hook(workdir: str):
    """The hook keeps no mutable state, so code that finds it cannot switch it off."""

    def hook(event: str, args: tuple) -> None:
        if event.startswith(BLOCKED_EVENT_PREFIXES):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "import":
            if args and isinstance(args[0], str) and args[0].split(".")[0] in BLOCKED_IMPORTS:
                raise PermissionError(f"sandbox: importing {args[0]} is not allowed")
        elif event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            if not isinstance(path, (str, bytes, os.PathLike)):
                return
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE_FLAGS
            )
            if writing and not _inside(workdir, path):
                raise PermissionError(f"sandbox: writing outside the sandbox directory is not allowed: {path!r}")
            if _other_process_proc(path):
                raise PermissionError("sandbox: other processes' /proc entries are not readable")
        elif event in PATH_EVENTS:
            for a in args:
                if isinstance(a, (str, bytes, os.PathLike)) and not _inside(workdir, a):
                    raise PermissionError(f"sandbox: {event} outside the sandbox directory is not allowed")
        elif event == "object.__setattr__" and len(args) >= 2 and args[1] == "__code__":
            raise PermissionError("sandbox: replacing function code is not allowed")

    return hook


def _isolate_network(libc) -> bool:
    flags = CLONE_NEWNET if os.geteuid() == 0 else CLONE_NEWUSER | CLONE_NEWNET
    return libc.unshare(flags) == 0


def _reroot(path: str, via_fd: dict[str, str]) -> str:
    real = os.path.realpath(path)
    for directory, fd_path in via_fd.items():
        if real == directory or real.startswith(directory + os.sep):
            return fd_path + real[len(directory):]
    return path


def _drop_root(workdir: str, libc) -> bool:
    if os.geteuid() != 0:
        return False
    dirs = [os.path.realpath(p) for p in sys.path if os.path.isdir(p)]
    dir_fds = [os.open(p, os.O_RDONLY | os.O_DIRECTORY) for p in dirs]
    for root, subdirs, files in os.walk(workdir):
        for name in [root] + [os.path.join(root, f) for f in subdirs + files]:
            os.chown(name, NOBODY, NOBODY)
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # keep /proc/self/fd ours after the uid change
    via_fd = {d: f"/proc/self/fd/{fd}" for d, fd in zip(dirs, dir_fds)}
    sys.path[:] = list(via_fd.values())
    for module in list(sys.modules.values()):  # packages already imported (encodings) find submodules too
        paths = getattr(module, "__path__", None)
        if isinstance(paths, list):
            paths[:] = [_reroot(p, via_fd) for p in paths]
    sys.path_importer_cache.clear()
    return True


def _set_limits(cfg: dict) -> None:
    cpu = max(1, int(cfg["cpu_s"] + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (cfg["memory_bytes"], cfg["memory_bytes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (cfg["file_bytes"], cfg["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (cfg["open_files"], cfg["open_files"]))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main() -> None:
    cfg = json.loads(sys.argv[1])
    workdir = os.path.realpath(cfg["workdir"])
    with open(os.path.join(workdir, "solution.py"), encoding="utf-8", errors="replace") as f:
        source = f.read()
    os.chdir(workdir)
    libc = ctypes.CDLL(None, use_errno=True)
    status = {"network_namespace": _isolate_network(libc)}
    status["dropped_privileges"] = _drop_root(workdir, libc)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after the uid change, which clears it
    if os.getppid() != cfg["parent_pid"]:  # the parent died before the line above took effect
        os._exit(1)
    _set_limits(cfg)
    status["rlimits"] = True
    sys.addaudithook(make_audit_hook(workdir))
    status["audit_hook"] = True
    with os.fdopen(cfg["status_fd"], "w") as status_out:
        status_out.write(json.dumps(status))
    del libc
    try:
        code = compile(source, "solution.py", "exec")
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


if __name__ == "__main__":
    main()
