"""`logtv bench`: measure the server end to end, as separate processes, against baselines.

Why a package of processes: on a 2-core box the writer, the server and the clients compete for
the same CPUs, so each runs in its own process and the bench reports the CPU each one used and
its own ceiling (clients against :mod:`logtv.bench.blaster`), so a figure bounded by the bench is
never mistaken for one bounded by the server.

- :mod:`~logtv.bench.lines`: what a bench line looks like, and how its seq and time are read back;
- :mod:`~logtv.bench.writer`: the process that appends lines, flat out or at a rate;
- :mod:`~logtv.bench.wsclient`: a lean WebSocket client (the bench must out-read the server);
- :mod:`~logtv.bench.tracker`: lost, duplicated and reordered lines, and latency, per client;
- :mod:`~logtv.bench.client`: a process of many clients, reporting one JSON result;
- :mod:`~logtv.bench.procs`: subprocesses that always end, and their CPU and memory from /proc;
- :mod:`~logtv.bench.targets`: the servers under test (logtv, a ``--vs`` peer, the blaster);
- :mod:`~logtv.bench.scenarios`: one measured run of a workload against one target;
- :mod:`~logtv.bench.sustained`: the highest writer rate every one of N clients keeps up with;
- :mod:`~logtv.bench.runner`: the whole bench: options, scenarios, the report;
- :mod:`~logtv.bench.report`: the side-by-side table and the JSON;
- :mod:`~logtv.bench.peer` and :mod:`~logtv.bench.blaster`: tiny servers for tests and ceilings;
- ``python -m logtv.bench``: ``logtv bench``'s options, plus ``--sustained`` (only that search).
"""

__all__: list[str] = []
