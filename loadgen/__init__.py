"""loadgen: load generator and capacity planner for Amazon Bedrock LLM traffic.

The Python API (README "Python API"; the `loadgen` commands call the same functions):

    sc = loadgen.load_scenario("scenarios/slow-agent.toml")   # Scenario, or ScenarioError
    res = loadgen.simulate(sc, out="results")                 # virtual time; sweep=, find_max_rate=
    res = await loadgen.run(sc, target="emulator")            # the built-in emulator, an endpoint or AWS
    res.summary, res.arms["ttl-1h"].cost.per_1000, res.records()

They live in loadgen.api (setup.py, simulate.py, run.py; results in result.py).
"""

from loadgen._version import __version__ as __version__

__all__ = ["__version__", "load_scenario", "run", "simulate"]


def __getattr__(name: str) -> object:
    """loadgen.load_scenario / simulate / run, imported on first use."""
    if name == "load_scenario":
        from loadgen.api.setup import load_scenario  # deferred: the API loads aiobotocore and the runner (~1.5 s); `loadgen --version` must not wait for it
        return load_scenario
    if name == "simulate":
        from loadgen.api.simulate import simulate  # deferred: as load_scenario above (start-up time)
        return simulate
    if name == "run":
        from loadgen.api.run import run  # deferred: as load_scenario above (start-up time)
        return run
    raise AttributeError(f"module 'loadgen' has no attribute {name!r}")
