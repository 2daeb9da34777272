"""Latency on `run`'s warp clock does not depend on the warp factor.

The in-process emulator tells the client, in response headers, when it sent the first
content delta and the end in modelled scenario time; the transport reports modelled time
plus the real overhead it measured, counted once (loadgen/engine/transport.py `unwarp`).
"""

from __future__ import annotations

from loadgen.engine import transport
from loadgen.emulator import server


def test_the_transport_reads_the_headers_the_emulator_sends():
    assert transport.SERVED_REGION_HEADER == server.SERVED_REGION_HEADER
    assert transport.QUOTA_HEADER == server.QUOTA_HEADER
    assert transport.MODELLED_FIRST_TOKEN_HEADER == server.MODELLED_FIRST_TOKEN_HEADER
    assert transport.MODELLED_END_HEADER == server.MODELLED_END_HEADER


def test_unwarp_counts_the_real_overhead_once():
    # x60: modelled first token 0.6 s, end 2.0 s; the client saw them 3 ms / 5 ms (real) later
    # than the modelled time took in real time, i.e. 0.18 s / 0.3 s later in warp time
    out = transport.Outcome(status="ok", start=10.0, end=10.0 + 2.0 + 0.3, first_token=10.0 + 0.6 + 0.18,
                            modelled_first_token=0.6, modelled_end=2.0)
    transport.unwarp(out, 60.0)
    assert abs(out.first_token - (10.0 + 0.6 + 0.003)) < 1e-9
    assert abs(out.end - (10.0 + 2.0 + 0.005)) < 1e-9
    # a connection dropped before the modelled end could have passed keeps its clock time
    cut = transport.Outcome(status="error", start=0.0, end=1.0, modelled_end=2.0)
    transport.unwarp(cut, 60.0)
    assert cut.end == 1.0
    # a timeout keeps its deadline; without the headers (AWS) nothing changes
    late = transport.Outcome(status="timeout", start=0.0, end=5.0, modelled_end=9.0)
    aws = transport.Outcome(status="ok", start=0.0, end=5.0, first_token=1.0)
    transport.unwarp(late, 60.0)
    transport.unwarp(aws, 60.0)
    assert (late.end, aws.end, aws.first_token) == (5.0, 5.0, 1.0)
