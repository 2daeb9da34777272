"""Reports: what people read after a run, from its results directory alone.

Owns the summary table (`summary_table`), a results directory read for reporting
(`view`, with `summary_shape` checking summary.json), per-arm detail tables (`detail`),
arms and runs side by side (`compare`), threshold verdicts (`verdicts`), the whole
report as text or dict (`render`), plots (`plots`, `latency_plot`, `sweep_chart`,
`calibration_plot`, `figures`), report.html (`html`) and what a run writes at its end (`artifacts`).
`table` holds the text table and cell formats they share.

May import results, engine, emulator, scenario and catalog; never loadgen.api or
loadgen.commands (they call this package, not the other way round). matplotlib is
imported only when a plot is drawn.
"""
