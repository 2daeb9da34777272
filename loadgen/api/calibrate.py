"""`loadgen.api.calibrate`: a results directory in, the emulator's latency model fitted to it
out (`[emulator.latency]` TOML text, optionally written to a file, and calibration.png).

The fit itself is results/calibration.py (pure); this shell reads requests.jsonl and the
caller's Region (run.json), refuses what cannot be fitted, checks that the table it made
loads as the emulator reads it, and writes the files.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from loadgen._toml import toml
from loadgen.api.setup import InputError
from loadgen.emulator.config import EmulatorConfig
from loadgen.report.calibration_plot import calibration_plot
from loadgen.results.calibration import Calibration, CalibrationError, calibrate as fit
from loadgen.results.calibration_table import calibration_toml
from loadgen.results.directory import REQUESTS_FILE, load_attempts, load_run_facts

PRESET = "realistic"   # the shipped preset whose values a key keeps when it is not fitted
PLOT_NAME = "calibration.png"


@dataclass(frozen=True)
class CalibrateResult:
    calibration: Calibration
    toml: str                 # the [emulator.latency] table with its comments
    out: Path | None          # the file written (None: the caller prints `toml`)
    plot: Path | None         # calibration.png (None: not drawn)


def calibrate(results_dir: str | Path, *, model: str | None = None, out: str | Path | None = None,
              overwrite: bool = False, keep_defaults: bool = False, plot: bool = True) -> CalibrateResult:
    """Fit the emulator's latency model to the ok, streamed attempts in `results_dir`.

    `model`: which model when the run called several (any id form). `out`: write the table
    there (an existing file is refused unless `overwrite`). A parameter the data cannot
    identify is refused (InputError naming it and why) unless `keep_defaults`, which keeps
    the preset's value and marks it in the table. The plot goes beside `out`
    (`<out stem>.png`), else to `results_dir/plots/calibration.png`.
    Raises InputError (nothing written) for anything the caller should fix.
    """
    src = Path(results_dir)
    if not (src / REQUESTS_FILE).is_file():
        raise InputError(f"{src}: no {REQUESTS_FILE}; expected a loadgen results directory")
    out_path = Path(out) if out is not None else None
    if out_path is not None and out_path.suffix.lower() == ".png":
        raise InputError(f"{out_path}: --out is the TOML table (the plot goes beside it as <name>.png); "
                         "name it .toml")
    if out_path is not None and out_path.exists() and not overwrite:
        raise InputError(f"{out_path}: already exists; choose another --out or pass --force to replace it")
    facts = load_run_facts(src) or {}
    region = facts.get("region") if isinstance(facts.get("region"), str) else None
    defaults = dataclasses.asdict(EmulatorConfig.from_mapping({"latency": PRESET}).latency)
    try:
        records = list(load_attempts(src))
    except (OSError, ValueError) as e:   # a damaged line: the message names file:line
        raise InputError(str(e)) from None
    try:
        cal = fit(records, defaults=defaults, caller_region=region, model=model)
    except CalibrationError as e:
        raise InputError(f"{src}: {e}") from None
    except (KeyError, TypeError, AttributeError) as e:   # a record without its times, or not an object
        raise InputError(f"{src / REQUESTS_FILE}: a record is not a loadgen attempt ({type(e).__name__}: {e})") from None
    if cal.unidentified and not keep_defaults:
        lines = [f"{src}: cannot fit {key}: {why}" for key, why in cal.unidentified]
        lines.append(f"(vary what the data lacks, or pass --keep-defaults to keep the shipped value (preset "
                     f"\"{PRESET}\") for each, marked in the table)")
        raise InputError("\n".join(lines))

    text = calibration_toml(cal, source=str(src), preset=PRESET)
    # the table must load as the emulator and a scenario's [emulator] read it
    EmulatorConfig.from_mapping(toml.loads(text)["emulator"])
    if out_path is not None:
        _write(out_path, text, overwrite)
    png = None
    if plot:
        png = calibration_plot(cal, out_path.with_suffix(".png") if out_path is not None
                               else src / "plots" / PLOT_NAME)
    return CalibrateResult(calibration=cal, toml=text, out=out_path, plot=png)


def _write(path: Path, text: str, overwrite: bool) -> None:
    """Write `text` to `path` whole (a temporary file, then a hard link or, with `overwrite`, a
    rename): a reader never sees half a table, and without `overwrite` an existing file is kept."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)   # fails if the name exists: a file that appeared meanwhile is kept
            except FileExistsError:
                raise
            except OSError:          # a filesystem without hard links: exclusive create instead
                with open(path, "x", encoding="utf-8") as f:
                    f.write(text)
    except FileExistsError:
        raise InputError(f"{path}: already exists; choose another --out or pass --force to replace it") from None
    except OSError as e:
        raise InputError(f"{path}: cannot write ({e.strerror})") from None
    finally:
        tmp.unlink(missing_ok=True)
