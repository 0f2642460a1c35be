"""What the metrics cost a chat message (docs/observability.md, "Cost").

Per acknowledged chat message the web service makes at most: two `perf_counter()` calls and one
`Histogram.observe` (ack latency), one `Counter.inc` through a cached label child (recipient
sockets of the broadcast), and per write batch one `Histogram.observe` plus one `Counter.inc`
(charged here in full to every message, as if each batch held one). This times exactly those
calls on the real `Metrics` class, best of several runs:

  .venv/bin/python bench/metrics_cost.py
"""

from __future__ import annotations

import argparse
import time
import timeit

from appliance.observability.metrics import Metrics


def per_message(metrics: Metrics) -> None:
    started = time.perf_counter()
    metrics.delivered("chat:message", 1)
    metrics.batch_written(1, 1)
    metrics.chat_ack_seconds.observe(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    metrics = Metrics(process=False)
    cases = {
        "Histogram.observe (ack latency)": lambda: metrics.chat_ack_seconds.observe(0.003),
        "delivered() (cached label child)": lambda: metrics.delivered("chat:message", 1),
        "batch_written(1, 1)": lambda: metrics.batch_written(1, 1),
        "all of one message (worst case)": lambda: per_message(metrics),
        "empty call (baseline)": lambda: None,
    }
    for name, body in cases.items():
        best = min(timeit.repeat(body, number=args.number, repeat=args.repeat)) / args.number
        print(f"{name:36s} {best * 1e9:8.0f} ns")


if __name__ == "__main__":
    main()
