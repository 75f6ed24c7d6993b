"""`python -m bench`: the HTTP benchmark (`make bench`), or one of the engine benchmarks.

python -m bench [ARGS]               # bench.api: ours vs peer vs stack limit (make bench)
python -m bench recompute [ARGS]     # status engine: full recompute, idle polls
python -m bench events [ARGS]        # event latency and relay throughput
python -m bench search [ARGS]        # search latency and plans at 1,000 / 50,000 courses
"""

import importlib
import sys

_OTHERS = {
    "recompute": "bench.recompute_bench",
    "events": "bench.events_bench",
    "search": "bench.search_bench",
}

if len(sys.argv) > 1 and sys.argv[1] in _OTHERS:
    name = _OTHERS[sys.argv[1]]
    sys.argv = [name, *sys.argv[2:]]
    importlib.import_module(name).main()
else:
    from bench.api.run import main

    main(sys.argv[1:])
