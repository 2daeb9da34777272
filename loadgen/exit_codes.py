"""The exit codes of every `loadgen` command (README "Exit codes"), in one place.

A shared leaf: any layer may import it (the API returns them from the functions the
commands call, and tests assert them).
"""

EXIT_OK = 0            # done; every threshold passed
EXIT_THRESHOLD = 1     # a threshold failed (or a sweep point / find-max-rate verdict did)
EXIT_BAD_INPUT = 2     # bad scenario, flag or file; nothing was written or sent
EXIT_TARGET = 3        # the target failed: no credentials, the emulator could not start
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM; results written so far are kept
