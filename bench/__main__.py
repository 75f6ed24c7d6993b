"""`python -m bench`: every benchmark in one run (`make bench`), or one of them by name.

python -m bench                      # all: api, ehr, export, recompute, events (api phase)
python -m bench [api] --OPTIONS      # bench.api: ours vs peer vs stack limit, wrk (bench/results/)
python -m bench ehr [ARGS]           # EHR sync: push and pull throughput to a local sekmet-fhir
python -m bench export [ARGS]        # Bulk Data $export throughput and the API's peak memory
python -m bench recompute [ARGS]     # status engine: full recompute, idle polls
python -m bench events [ARGS]        # event latency and relay throughput
python -m bench claims [ARGS]        # webhook claims behind a failing endpoint's backlog
python -m bench search [ARGS]        # search latency and plans at 1,000 / 50,000 courses
python -m bench memory [ARGS]        # API RSS over 1,000,000 reads (`make bench-memory`)
"""

import importlib
import subprocess
import sys

_BENCHMARKS = {
    "api": "bench.api.run",
    "ehr": "bench.ehr_bench",
    "export": "bench.export_bench",
    "recompute": "bench.recompute_bench",
    "events": "bench.events_bench",
    "claims": "bench.claims_bench",
    "search": "bench.search_bench",
    "memory": "bench.memory_bench",
}
# What `make bench` runs, with each one's arguments; the others take long alone. The export
# runs at 100,000 resources here (1,000,000: `python -m bench export --resources 1000000`,
# whose bulk load alone takes tens of minutes on 2 cores). Events: the latency at the API's
# sustained write rate (about 2 minutes); recompute at 10,000 courses, seeded with COPY (about
# 2 minutes), the size the targets name; webhook claims behind 1k-100k held-back
# queues (about 30 s). The memory benchmark (1M reads, ~20 minutes
# or more) is `make bench-memory`.
_DEFAULT = {
    "api": None,
    "ehr": [],
    "export": ["--resources", "100000"],
    "recompute": ["--courses", "10000"],
    "events": ["--phases", "api"],
    "claims": [],
}


def _run(name: str, args: list[str]) -> None:
    print(f"\n=== {name} ===", flush=True)
    module = _BENCHMARKS[name]
    if name == "api":
        importlib.import_module(module).main(args)
        return
    sys.argv = [module, *args]
    importlib.import_module(module).main()


if len(sys.argv) > 1 and sys.argv[1] in _BENCHMARKS:
    _run(sys.argv[1], sys.argv[2:])
elif len(sys.argv) > 1:  # options alone: the HTTP benchmark, to iterate on it quickly
    _run("api", sys.argv[1:])
else:
    # Each in a process of its own: the status engine runs inside the benchmark's process,
    # whose heap (and garbage collections) would otherwise hold the earlier benchmarks' data.
    for name, args in _DEFAULT.items():
        subprocess.run([sys.executable, "-m", "bench", name, *(args or [])], check=True)
