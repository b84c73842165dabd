"""A real two-worker Dask cluster on the loopback, and a worker that dies once, for tests.

:func:`local_cluster` starts ``distributed.LocalCluster(n_workers=2, threads_per_worker=1,
processes=True)`` bound to 127.0.0.1 (each worker its own process, restarted by its
nanny when it dies). :func:`kill_once_plugin` makes the first worker that finishes a
matching task kill its own process (SIGKILL) before it can report the result, so the
scheduler runs the task again elsewhere: the case a distributed run has to survive.
:func:`square_task`, :func:`fail_task` and :func:`die_task` are tasks the workers can
import (a test module is not importable from a worker). ``dask`` is imported inside
the functions.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from brrrr.core.errors import FileReadError
from brrrr.core.files import atomic_write

__all__ = [
    "die_task",
    "fail_task",
    "kill_once_plugin",
    "local_cluster",
    "snapshot_files",
    "square_task",
]


@contextlib.contextmanager
def local_cluster(n_workers: int = 2) -> Iterator[Any]:
    """A ``LocalCluster`` of single-threaded worker processes on 127.0.0.1 (closed after).

    Yields:
        The cluster; ``cluster.scheduler_address`` is what ``--scheduler`` takes.
    """
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
    ) as cluster:
        yield cluster


def snapshot_files(folder: str | os.PathLike[str]) -> dict[str, list[int]]:
    """``relative path → [inode, mtime_ns, size]`` of every file under ``folder``.

    A file rewritten (atomically: a new inode) or touched shows in a later snapshot.
    """
    folder = Path(folder)
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            out[path.relative_to(folder).as_posix()] = [stat.st_ino, stat.st_mtime_ns, stat.st_size]
    return out


def kill_once_plugin(
    marker: str | os.PathLike[str], *, key_prefix: str, watch: str | os.PathLike[str]
) -> Any:
    """A ``distributed.WorkerPlugin`` that kills one worker, once, as a task finishes.

    The first worker whose task with a key starting with ``key_prefix`` finishes
    (``executing → memory``, before the result reaches the scheduler) creates
    ``marker`` (exclusively: one worker only, even across restarts), writes there
    :func:`snapshot_files` of ``watch`` (what the task had written), and SIGKILLs
    its own process. Register it with ``client.register_plugin(plugin)``.

    Args:
        marker: File that records the kill; its presence disarms the plugin.
        key_prefix: Task keys to act on (``run_tasks``' ``name``).
        watch: Output folder to snapshot.

    Returns:
        The plugin.
    """
    from distributed import WorkerPlugin

    class KillOnce(WorkerPlugin):
        name = "brrrr-kill-once"

        def __init__(self) -> None:
            self.marker = str(marker)
            self.key_prefix = key_prefix
            self.watch = str(watch)

        def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
            if start != "executing" or finish != "memory":
                return
            if not str(key).startswith(self.key_prefix):
                return
            try:
                fd = os.open(self.marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                return
            with os.fdopen(fd, "w") as handle:
                json.dump({"key": str(key), "files": snapshot_files(self.watch)}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.kill(os.getpid(), signal.SIGKILL)

    return KillOnce()


def square_task(task: tuple[str, int]) -> dict[str, int]:
    """A task shaped like the packages' tasks: ``number**2`` written to ``FOLDER/out-NNN.json``.

    The output is named by the task and written atomically; a second attempt finds it
    and returns it without writing. Each write appends the number to ``FOLDER/writes.log``.

    Args:
        task: ``(folder, number)``.

    Returns:
        ``{"number", "square", "pid"}`` (``pid``: the process that wrote it).
    """
    folder, number = task
    out = Path(folder) / f"out-{number:03d}.json"
    if out.is_file():
        return dict(json.loads(out.read_text()))
    result = {"number": number, "square": number * number, "pid": os.getpid()}
    atomic_write(out, json.dumps(result).encode())
    with open(Path(folder) / "writes.log", "a") as log:
        log.write(f"{number}\n")
    return result


def fail_task(path: str) -> None:
    """Raise :class:`~brrrr.core.errors.FileReadError` naming ``path`` (a failing task)."""
    raise FileReadError("cannot read", path=path)


def die_task(_: object) -> None:
    """Kill the process running it with SIGKILL (a task that kills every worker)."""
    os.kill(os.getpid(), signal.SIGKILL)
