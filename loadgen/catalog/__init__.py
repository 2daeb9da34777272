"""The catalog: facts about Bedrock that are data, not code.

Owns the model catalog (`models`: context, output and cache limits, quota burndown), the
inference-profile kinds and the Regions they route to (`profiles`), dated and sourced prices
and the dollar arithmetic of one call (`pricing`, `price_list` for the printed table), the
token-count rule shared by the workload builder and the emulator (`tokens`), and the TOML
files they read (`data/`).

The lowest layer: imports nothing from loadgen except `loadgen._toml`, so every other
package may use it.
"""
