"""The Python API the commands call: `load_scenario`, `simulate`, `run` (exported as
`loadgen.load_scenario` / `loadgen.simulate` / `loadgen.run`), sweeps, find-max-rate,
the dry plan, and the in-process transport simulation uses.

Owns: what is checked before a run (setup.py), the state of a run and its files
(session.py), virtual-time runs (virtual.py), Ctrl-C handling (signals.py), the results
it returns (result.py). Takes plain arguments, never an argparse namespace; prints
nothing but the live status line and interrupt notices (progress lines go to the
caller's callback). May import report, results, engine, emulator, scenario and catalog;
must not import loadgen.commands.
"""
