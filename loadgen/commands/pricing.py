"""`loadgen pricing [--scenario FILE]`: the price catalog in force."""

from __future__ import annotations

import argparse
import sys

from loadgen.api.documents import catalog_document
from loadgen.catalog.price_list import render
from loadgen.commands.machine import emit_json
from loadgen.catalog.pricing import PricingError, default_table
from loadgen.emulator.config import EmulatorConfig
from loadgen.scenario import ScenarioError, load


def cmd_pricing(args: argparse.Namespace) -> int:
    """`loadgen pricing [--scenario FILE]`: print the catalog in force; 2 on bad input."""
    table = default_table()
    scenario_path = getattr(args, "scenario", None)
    if scenario_path:
        try:
            sc = load(scenario_path, check_emulator=EmulatorConfig.from_mapping)
            table = table.with_overrides(sc.pricing)
        except (ScenarioError, PricingError, OSError) as e:
            print(f"loadgen pricing: {e}", file=sys.stderr)
            return 2
    if getattr(args, "format", "text") == "json":
        emit_json(catalog_document(table))
    else:
        sys.stdout.write(render(table))
    return 0
