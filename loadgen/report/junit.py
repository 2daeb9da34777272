"""Threshold verdicts as JUnit XML (`--junit FILE`), so CI systems list PASS/FAIL per
threshold as they list tests.

The shape most consumers read (Jenkins, GitLab, GitHub test reporters, pytest's own):

    <testsuites name="loadgen" tests= failures= skipped= errors="0">
      <testsuite name="<scenario>[ <point>]" tests= failures= skipped= errors="0" time=>
        <testcase classname="loadgen.<scenario>.<arm>" name="<threshold>" time="0">
          <failure type="threshold" message="<the report's line>"/>     (FAIL)
          <skipped message="<why>"/>                                    (SKIP)

One <testsuite> per run (a sweep: one per point), one <testcase> per threshold and arm;
a FAIL's message is the line the text report prints for it ("arm  expr  FAIL  measured
... (limit ...)"). `time` on a suite is the run's wall seconds.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Sequence

from loadgen.scenario.thresholds import format_results


def _count(results: Sequence[Any], status: str) -> int:
    return sum(1 for r in results if r.status == status)


def junit_tree(suites: Sequence[tuple[str, Sequence[Any], float]]) -> ET.ElementTree:
    """`suites`: (suite name, thresholds.Result list, wall seconds) per run."""
    root = ET.Element("testsuites", name="loadgen")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for name, results, wall_s in suites:
        failures, skipped = _count(results, "FAIL"), _count(results, "SKIP")
        suite = ET.SubElement(root, "testsuite", name=name, tests=str(len(results)), failures=str(failures),
                              skipped=str(skipped), errors="0", time=f"{wall_s:.3f}")
        scenario = name.split(" ", 1)[0]
        for r in results:
            case = ET.SubElement(suite, "testcase", classname=f"loadgen.{scenario}.{r.arm}", name=r.expr.text,
                                 time="0")
            line = format_results([r])
            if r.status == "FAIL":
                ET.SubElement(case, "failure", type="threshold", message=line).text = line
            elif r.status == "SKIP":
                ET.SubElement(case, "skipped", message=r.note or line)
            else:
                ET.SubElement(case, "system-out").text = line
        totals["tests"] += len(results)
        totals["failures"] += failures
        totals["skipped"] += skipped
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("errors", "0")
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(path: str | Path, suites: Sequence[tuple[str, Sequence[Any], float]]) -> Path:
    """Write the JUnit XML file (parents made; replaced atomically, as CI reruns write it again)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    junit_tree(suites).write(tmp, encoding="utf-8", xml_declaration=True)
    os.replace(tmp, p)
    return p
