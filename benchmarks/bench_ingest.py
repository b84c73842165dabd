"""BIDS → Parquet shards: brrrr-ingest vs plain copying vs ``datasets``' niftifolder + save_to_disk.

Generates a synthetic BIDS dataset (``brrrr.core.testing.write_bids_tree``: T1w, T2w ×2,
FLAIR, 4-volume bold, 5-volume dwi and a lesion mask per session, uncompressed ``.nii``
so that niftifolder, which only lists ``.nii``, sees every image) of ``--gb`` gigabytes,
then again at twice the size, and on each runs, in a fresh process:

* ``copy``: copy every image file to another folder (the same bytes, nothing else) with
  ``shutil.copyfile`` (the kernel moves the bytes); ``copy-rw``: the same through user space;
  ``copy-sha256``: through user space with each file's SHA-256 (the least a transfer that can
  be verified does; context for the ratio, not the target's baseline);
* ``brrrr``: ``brrrr.ingest.to_hf`` (pybids index, header columns, 500 MB shards, manifest, card);
* ``niftifolder``: ``load_dataset("niftifolder", data_dir=ROOT)`` + ``save_to_disk`` (which
  embeds the image bytes), the route ``datasets`` offers today.

Each method runs ``--repeat`` times, the methods taking turns, and the median counts (the
machine may be shared). Before each run the page cache is written out (``sync``, not timed), so
that no method pays for the writeback of the dataset just generated or of the previous
method's output; the files stay in the page cache, as they would after a fetch. brrrr fsyncs
each shard (its durability guarantee); the copies leave their output to the kernel.

Two times per run: ``seconds``, the whole process as a user who starts it waits for (start-up
and imports included; Python's bytecode cache is written once before timing, as a user's
first run would have, even where ``PYTHONDONTWRITEBYTECODE`` is set), and ``work``, after the method's own one-off imports (each method
imports what it uses before its clock starts: nothing for the copies; pybids, pyarrow, pandas,
nibabel and brrrr-ingest for brrrr; ``datasets`` for niftifolder). ``cpu`` is the process's
user + system CPU time. Prints throughput (image GB/s) and peak RSS of each, and checks the
targets: brrrr ≥ 0.7× the copy's throughput (on whole-process seconds; the ratio after imports
is printed beside it), peak RSS ≤ 1 GB and flat when the dataset doubles.

Run:  uv run python benchmarks/bench_ingest.py [--gb 2] [--repeat 3] [--workdir DIR] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

METHODS = ("copy", "copy-rw", "copy-sha256", "brrrr", "niftifolder")
SHAPE = (96, 96, 96)


def _images(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.nii") if p.is_file())


def generate(root: Path, *, target_bytes: float) -> int:
    """Write a BIDS tree of about ``target_bytes`` of images; return their exact size."""
    from brrrr.core.testing import write_bids_tree

    probe = write_bids_tree(
        root.with_name(root.name + "-probe"), subjects=("000",), compress=False, shape=SHAPE
    )
    per_subject = sum(p.stat().st_size for p in _images(probe))
    shutil.rmtree(probe)
    n = max(1, round(target_bytes / per_subject))
    write_bids_tree(root, subjects=[f"{i:03d}" for i in range(n)], compress=False, shape=SHAPE)
    return sum(p.stat().st_size for p in _images(root))


def _import_for(method: str) -> None:
    """Import exactly the modules ``method`` uses, so that neither time carries another's."""
    if method == "brrrr":
        import bids  # noqa: F401
        import pandas  # noqa: F401  # pyarrow imports it on its first conversion from Python
        import pyarrow.parquet  # noqa: F401

        import brrrr.ingest.shards  # noqa: F401  # nibabel, brrrr.core
    elif method == "niftifolder":
        import datasets  # noqa: F401


def warm_bytecode(method: str) -> None:
    """Import ``method``'s modules once in a process that may write Python's bytecode cache.

    A user's second run finds the ``.pyc`` files its first run wrote; with
    ``PYTHONDONTWRITEBYTECODE`` set (as in some sandboxes and containers) every run would
    compile every module again, about 1.8 s more for brrrr's imports (pybids, pandas,
    pyarrow, nibabel) and more for ``datasets``'. Not timed.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, __file__, "--imports", method], env=env, check=True)


def worker(method: str, root: Path, out: Path) -> None:
    """Run one method and print ``{"work_seconds", "peak_rss_bytes"}`` as JSON.

    ``work_seconds`` starts after the method's own imports (the parent times the whole
    process too).
    """
    _import_for(method)
    work_start = time.perf_counter()
    if method in ("copy", "copy-rw", "copy-sha256"):
        import hashlib

        digests = {}
        for src in _images(root):
            dst = out / src.relative_to(root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if method == "copy":  # copy_file_range/sendfile: the kernel moves the bytes
                shutil.copyfile(src, dst)
            else:  # through user space, as any converter must
                data = src.read_bytes()
                if method == "copy-sha256":
                    digests[str(src)] = hashlib.sha256(data).hexdigest()
                dst.write_bytes(data)
    elif method == "brrrr":
        from brrrr.ingest import to_hf

        to_hf(root, out, progress=False)
    elif method == "niftifolder":
        from datasets import load_dataset

        ds = load_dataset(
            "niftifolder", data_dir=str(root), split="train", cache_dir=str(out) + "-cache"
        )
        ds.save_to_disk(str(out))
    else:
        raise SystemExit(f"unknown method {method!r}")
    end = time.perf_counter()
    print(json.dumps({"work_seconds": end - work_start, "peak_rss_bytes": _peak_rss()}))


def _peak_rss() -> int:
    """This process's peak RSS in bytes.

    ``VmHWM`` where Linux has it: ``ru_maxrss`` survives ``exec``, so in a child it is
    never below what the parent held when it forked (about 150 MB here).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(method: str, root: Path, out: Path) -> dict[str, object]:
    env = dict(os.environ, HF_DATASETS_CACHE=str(out) + "-hfcache", HF_HUB_OFFLINE="1")
    os.sync()  # start clean: no method pays for another's writeback
    cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--worker", method, str(root), str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    seconds = time.perf_counter() - start
    cpu = _children_cpu() - cpu
    if done.returncode != 0:
        # A baseline that breaks at this size is a result too (datasets' Nifti embedding
        # fails once a chunk passes 2 GB): report it instead of aborting the whole run.
        last = (done.stderr.strip().splitlines() or ["no error output"])[-1]
        if method == "brrrr":
            raise SystemExit(f"{method} failed:\n{done.stderr[-3000:]}")
        for leftover in (out, Path(str(out) + "-cache"), Path(str(out) + "-hfcache")):
            shutil.rmtree(leftover, ignore_errors=True)
        return {"failed": last, "seconds": seconds, "cpu_seconds": cpu}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result |= {"seconds": seconds, "cpu_seconds": cpu}
    for leftover in (out, Path(str(out) + "-cache"), Path(str(out) + "-hfcache")):
        shutil.rmtree(leftover, ignore_errors=True)
    return result


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the runs that did not fail (or the first failure)."""
    good = [r for r in runs if "failed" not in r]
    if not good:
        return runs[0]
    keys = ("seconds", "work_seconds", "cpu_seconds", "peak_rss_bytes")
    return {k: statistics.median(r[k] for r in good) for k in keys} | {"runs": len(good)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=2.0, help="size of the first dataset (GB)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each method (median)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to generate (temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    parser.add_argument(
        "--worker", nargs=3, metavar=("METHOD", "ROOT", "OUT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--imports", metavar="METHOD", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.imports:
        _import_for(args.imports)
        return
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), Path(args.worker[2]))
        return

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, median of {args.repeat} runs"
    )
    print(
        "seconds: the whole process (start-up and imports included); "
        "work: after the method's imports; cpu: user + system"
    )
    print(
        f"{'dataset':>9} {'method':<12} {'seconds':>8} {'GB/s':>6} {'vs copy':>8} "
        f"{'work s':>7} {'work GB/s':>9} {'vs copy':>8} {'cpu s':>6} {'peak RSS':>10}"
    )
    for method in METHODS:
        warm_bytecode(method)
    results: list[dict[str, Any]] = []
    for scale in (1, 2):
        root = work / f"ds-{scale}x"
        size = generate(root, target_bytes=args.gb * scale * 1e9)
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
        for _ in range(args.repeat):
            for method in METHODS:
                runs[method].append(measure(method, root, work / f"out-{method}"))
        shutil.rmtree(root)
        copy = _median(runs["copy"])
        for method in METHODS:
            m = _median(runs[method])
            results.append({"image_bytes": size, "method": method, **m, "all_runs": runs[method]})
            if "failed" in m:
                print(
                    f"{size / 1e9:>7.2f}GB {method:<12} FAILED after {m['seconds']:.1f} s: {m['failed']}"
                )
                continue
            print(
                f"{size / 1e9:>7.2f}GB {method:<12} {m['seconds']:>8.2f} "
                f"{size / m['seconds'] / 1e9:>6.2f} {copy['seconds'] / m['seconds']:>7.2f}× "
                f"{m['work_seconds']:>7.2f} {size / m['work_seconds'] / 1e9:>9.2f} "
                f"{copy['work_seconds'] / m['work_seconds']:>7.2f}× {m['cpu_seconds']:>6.1f} "
                f"{m['peak_rss_bytes'] / 2**20:>8.0f} MB"
            )

    def pick(scale: int, method: str) -> dict[str, float]:
        return [r for r in results if r["method"] == method][scale - 1]

    ratio = min(pick(s, "copy")["seconds"] / pick(s, "brrrr")["seconds"] for s in (1, 2))
    rw = min(pick(s, "copy-rw")["seconds"] / pick(s, "brrrr")["seconds"] for s in (1, 2))
    hashed = min(pick(s, "copy-sha256")["seconds"] / pick(s, "brrrr")["seconds"] for s in (1, 2))
    after_imports = min(
        pick(s, "copy")["work_seconds"] / pick(s, "brrrr")["work_seconds"] for s in (1, 2)
    )
    peaks = [pick(s, "brrrr")["peak_rss_bytes"] / 2**20 for s in (1, 2)]
    print(
        f"target throughput ≥ 0.7× copy (whole process): {ratio:.2f}× "
        f"({rw:.2f}× copy-rw; {hashed:.2f}× copy-sha256; {after_imports:.2f}× copy after "
        "imports) — " + ("met" if ratio >= 0.7 else "NOT met")
    )
    print(
        f"target peak RSS ≤ 1024 MB and flat: {peaks[0]:.0f} MB → {peaks[1]:.0f} MB — "
        + ("met" if max(peaks) <= 1024 and peaks[1] <= 1.25 * peaks[0] else "NOT met")
    )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
