"""`make bench`: every benchmark, one after the other."""

import importlib
import sys

_BENCHMARKS = (
    "bench.store_bench",
    "bench.search_bench",
    "bench.recompute_bench",
    "bench.events_bench",
    "bench.export_bench",
)

for name in _BENCHMARKS:
    print(f"\n=== {name} ===", flush=True)
    sys.argv = [name]
    importlib.import_module(name).main()
