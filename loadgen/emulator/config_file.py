"""`loadgen emulator --config FILE`: an EmulatorConfig from a TOML file, its errors placed
on the line of the key that is wrong (`file:line: emulator.<key>: message`)."""

from __future__ import annotations

from typing import Mapping

from loadgen._toml import toml
from loadgen.emulator.config import ConfigError, EmulatorConfig
from loadgen.scenario.toml_lines import key_lines, line_of, syntax_error

# A file holding any of these keys is a scenario: its [emulator] table, or none (defaults)
_SCENARIO_KEYS = ("name", "seed", "duration", "target", "model", "workload", "arms", "sessions", "arrivals")


def load_config_file(path: str) -> EmulatorConfig:
    """EmulatorConfig from a scenario file (its [emulator] table) or a file holding only
    that table. Raises ValueError listing every problem as `file:line: key: message` (the
    line of the key that is wrong, found with loadgen.scenario.toml_lines as scenario
    errors are), one per line, in line order."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ValueError(f"{path}: cannot read the config file ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a UTF-8 text file ({e.reason})") from None
    try:
        doc = toml.loads(text)
    except toml.TOMLDecodeError as e:
        raise ValueError(syntax_error(path, text, e)) from None
    if "emulator" in doc:
        table: Mapping = doc["emulator"]
        root: tuple = ("emulator",)
    elif any(k in doc for k in _SCENARIO_KEYS):
        table, root = {}, ()
    else:
        table, root = doc, ()
    try:
        return EmulatorConfig.from_mapping(table)
    except ConfigError as e:
        # every problem at once, in line order, as a scenario's are (loadgen.scenario.loader)
        lines = key_lines(text)
        placed = sorted(((line_of(lines, root + one.path), str(one)) for one in e.problems), key=lambda x: x[0])
        raise ValueError("\n".join(f"{path}:{line}: {m}" for line, m in placed)) from None
