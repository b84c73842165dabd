"""Load test of the demo's segmentation endpoint: N concurrent gradio_client clients on /segment.

The app is the one ``brrrr demo`` serves (all three tabs, Gradio's queue with its concurrency
limit), launched on 127.0.0.1 in this process. Every client is its own ``gradio_client.Client``
in its own thread; each submits one job for a sample case (the cases rotate) at the same moment.
Printed: errors (must be 0), latency p50/p95/max as each client saw it (queue wait included),
throughput, and beside them the same segmentation called in-process without a server (the
baseline a user scripting ``brrrr.demos.apps.stroke.segment_case`` would get), with the ratio of
the served p50 per job to it. Exit 1 on any error.

    uv run python benchmarks/bench_demo_load.py                 # 50 clients
    uv run python benchmarks/bench_demo_load.py --clients 4 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--concurrency", type=int, default=2, help="the app's concurrency limit")
    parser.add_argument("--sample-dir", type=Path, default=None, help="demo sample (default tmp)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()

    import torch
    from gradio_client import Client

    from brrrr.demos.apps import stroke
    from brrrr.demos.apps.app import build_demo, launch
    from brrrr.demos.testing import free_port

    scratch = Path(tempfile.mkdtemp(prefix="brrrr-bench-demo-"))
    sample_dir = args.sample_dir or scratch / "sample"
    app = build_demo(
        sample_dir,
        work_dir=scratch / "work",
        concurrency_limit=args.concurrency,
        max_queue=max(64, args.clients),
    )
    cases = sorted(stroke.sample_cases(sample_dir))

    # The baseline: the same work in-process, one case after another (after a warm-up).
    stroke.segment_case(sample_dir, scratch / "direct", case=cases[0])
    direct = []
    for case in cases:
        start = time.perf_counter()
        stroke.segment_case(sample_dir, scratch / "direct", case=case)
        direct.append(time.perf_counter() - start)
    direct_s = statistics.median(direct)

    url = launch(app, port=free_port(), block=False)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(args.clients)

    def one(index: int) -> None:
        try:
            client = Client(url, verbose=False, download_files=str(scratch / f"dl-{index}"))
            barrier.wait(timeout=120)
            start = time.perf_counter()
            _, summary, _, _ = client.predict(
                cases[index % len(cases)],
                None,
                None,
                None,
                None,
                stroke.SHIPPED,
                "mean",
                0.5,
                api_name="/segment",
            )
            took = time.perf_counter() - start
            if not summary or summary.get("lesion_count") is None:
                raise RuntimeError(f"client {index}: empty summary {summary!r}")
            with lock:
                latencies.append(took)
        except Exception as exc:  # every failure is counted and printed, none is hidden
            with lock:
                errors.append(f"client {index}: {type(exc).__name__}: {exc}")

    try:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(args.clients)]
        wall = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - wall
    finally:
        app.close()

    figures: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}",
        "clients": args.clients,
        "concurrency_limit": args.concurrency,
        "errors": len(errors),
        "error_messages": errors[:10],
        "direct_s_per_case": round(direct_s, 3),
    }
    if latencies:
        p50, p95 = _percentile(latencies, 50), _percentile(latencies, 95)
        per_job = wall / len(latencies)
        figures.update(
            {
                "p50_s": round(p50, 3),
                "p95_s": round(p95, 3),
                "max_s": round(max(latencies), 3),
                "wall_s": round(wall, 3),
                "jobs_per_s": round(len(latencies) / wall, 3),
                "served_s_per_job": round(per_job, 3),
                "served_per_job_over_direct": round(per_job / direct_s, 3),
            }
        )
    print(f"{args.clients} clients on /segment, concurrency limit {args.concurrency}")
    print(f"  errors            {len(errors)}")
    for message in errors[:10]:
        print(f"    {message}")
    if latencies:
        print(
            f"  latency           p50 {figures['p50_s']:.2f} s   p95 {figures['p95_s']:.2f} s   "
            f"max {figures['max_s']:.2f} s (queue wait included)"
        )
        print(f"  throughput        {figures['jobs_per_s']:.2f} jobs/s over {wall:.1f} s")
        print(
            f"  per job           served {figures['served_s_per_job']:.2f} s, in-process "
            f"{direct_s:.2f} s: ratio {figures['served_per_job_over_direct']:.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if errors or not latencies else 0


if __name__ == "__main__":
    raise SystemExit(main())
