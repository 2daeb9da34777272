"""Results: what a run leaves behind and the figures folded from it.

Owns the fold of attempt records into metrics (`metrics`, with `histograms`,
`per_second`, `gap_buckets` and the live views in `live`), the results directory on disk
(`directory`: requests.jsonl, histograms/, summary.json, never overwritten), a killed
run's summary rebuilt from requests.jsonl (`rebuild`), time series of the records
for plots and reports (`series`), and the emulator's latency model fitted to the records
(`calibration`, as TOML text in `calibration_table`; the preset's values come in as a
mapping from loadgen.api, so no emulator import).

May import the engine (the Attempt record, the cache model's likely causes), the
scenario and the catalog; never loadgen.report, loadgen.api, loadgen.commands or
loadgen.emulator.
"""
