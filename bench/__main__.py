"""`python -m bench`: every benchmark in one run (`make bench`), or one of them by name.

python -m bench                      # all: api, then ehr and export (each reports its numbers)
python -m bench api [ARGS]           # bench.api: ours vs peer vs stack limit, wrk (bench/results/)
python -m bench ehr [ARGS]           # EHR sync: push and pull throughput to a local sekmet-fhir
python -m bench export [ARGS]        # Bulk Data $export throughput and the API's peak memory
python -m bench recompute [ARGS]     # status engine: full recompute, idle polls
python -m bench events [ARGS]        # event latency and relay throughput
python -m bench search [ARGS]        # search latency and plans at 1,000 / 50,000 courses
"""

import importlib
import sys

_BENCHMARKS = {
    "api": "bench.api.run",
    "ehr": "bench.ehr_bench",
    "export": "bench.export_bench",
    "recompute": "bench.recompute_bench",
    "events": "bench.events_bench",
    "search": "bench.search_bench",
}
_DEFAULT = ("api", "ehr", "export")  # what `make bench` runs; the others take long alone


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
else:
    for name in _DEFAULT:
        _run(name, sys.argv[1:] if name == "api" else [])
