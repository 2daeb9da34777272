"""The scenario: a TOML file read into frozen, typed data, every problem reported as
`file:line: key: message`.

Owns: the schema (schema.py), the validation framework (fields.py), the section readers
(sections.py, arms.py, traffic.py), data files a scenario points to (datafiles.py), the
entry points (loader.py), value syntax and formatting (units.py), the TOML line map
(toml_lines.py), arrival-process and distribution kinds (arrivals.py, distributions.py,
and what they share in kinds.py), sweeps (sweep.py) and the threshold grammar (thresholds.py).

Imports nothing above itself: only loadgen.catalog and loadgen._toml. Checks that belong
to a higher package (the emulator's [emulator] keys) are passed in by the caller.

    from loadgen.scenario import load, Scenario
"""

from loadgen.scenario.loader import EmulatorCheck, decode, load, loads
from loadgen.scenario.schema import (Arm, Model, PriceOverride, Retry, Scenario, ScenarioError,
                                     Sessions, Target, Threshold, Workload)
from loadgen.scenario.sections import MAX_TIME_SCALE, time_scale_problem

__all__ = ["Arm", "EmulatorCheck", "MAX_TIME_SCALE", "Model", "PriceOverride", "Retry", "Scenario",
           "ScenarioError", "Sessions", "Target", "Threshold", "Workload", "decode", "load", "loads",
           "time_scale_problem"]
