"""The random draws of one request: from the model's shared stream, or from the request's
own key (common random numbers).

Bedrock's latency and faults are random; the emulator draws them per request. Drawn from
one stream in arrival order, two arms of a run that send the same request (the same
session and turn, so the same prompt) get different draws, and which one gets which
depends on which arrives first: per-request differences between arms, between two runs
and between `run` and `simulate` are then noise (observed: the same turn 1.49 s slower in
one arm and 1.49 s faster in the other between two runs of slow-agent). Common random
numbers remove that noise: loadgen names each attempt (`session:turn:attempt`, the same
in every arm, every segment and every run of a seed) and the emulator draws that
attempt's values from a hash of the name, so the same attempt gets the same draws in
every arm whatever the arrival order, and a difference between arms is the arm's doing
(DESIGN: arms share seeded arrivals and prompts for the same reason).

Each draw has a fixed slot, so a draw one arm makes and another does not (a brown-out
in the Region one profile routes to) cannot shift the others. The distributions are the
same as the shared stream's (uniform on [0, 1); standard normal by Box-Muller), only the
pairing of values to requests changes. A retry is another attempt and draws anew.

Without a key (a plain SDK client, batch jobs) the shared stream is used in the order
the model asks, exactly as before keys existed.
"""

from __future__ import annotations

import math
import random
import struct
from hashlib import blake2b

# slots: what each 32-bit value of a keyed request's digest is for (normals take two)
FAULT = 0          # injected error (error_rates)
BROWNOUT = 1       # an error during a brown-out
OUTPUT = 2         # output length (normal: 2, 3)
TTFT = 4           # time to first token (normal: 4, 5)
SPEED = 6          # output tokens per second (normal: 6, 7)
SLOW = 8           # a slow stream
RESET = 9          # a dropped connection
MID_STREAM = 10    # an exception mid-stream
MID_STREAM_AT = 11  # after which delta it comes
SLOTS = 16         # a 64-byte digest: 16 x 32 bits

_UNPACK = struct.Struct("<16I").unpack
_U32 = 2.0 ** -32
_TWO_PI = 2.0 * math.pi

# A key longer than this is cut (a header is client input; the names loadgen sends are short)
MAX_KEY_CHARS = 200


class StreamDraws:
    """Draws from the model's shared stream, in call order (slots ignored)."""

    __slots__ = ("_rng",)

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def u(self, slot: int) -> float:
        return self._rng.random()

    def normal(self, slot: int) -> float:
        return self._rng.gauss(0.0, 1.0)

    def randint(self, slot: int, a: int, b: int) -> int:
        return self._rng.randint(a, b)


class KeyedDraws:
    """Draws of one named attempt: BLAKE2b of the name keyed with the model's seed
    (`keyed_hash(seed)`), 16 values of 32 bits, one per slot."""

    __slots__ = ("_v",)

    def __init__(self, keyed: "blake2b", key: str) -> None:
        h = keyed.copy()  # a copy of the keyed state: half the cost of keying anew per request
        h.update(key[:MAX_KEY_CHARS].encode())
        self._v = _UNPACK(h.digest())

    def u(self, slot: int) -> float:
        """Uniform on [0, 1) (32-bit resolution: enough for fault rates and latency spread)."""
        return self._v[slot] * _U32

    def normal(self, slot: int) -> float:
        """Standard normal from slots `slot` and `slot + 1` (Box-Muller, cosine branch)."""
        u1 = (self._v[slot] + 1) * _U32  # (0, 1]: log never sees 0
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * self._v[slot + 1] * _U32)

    def randint(self, slot: int, a: int, b: int) -> int:
        """An integer in [a, b], each equally likely (up to 2^-32)."""
        return a + int(self._v[slot] * _U32 * (b - a + 1))


def keyed_hash(seed: str) -> "blake2b":
    """The BLAKE2b state, keyed by a seed string, that a model's keyed draws start from."""
    return blake2b(key=blake2b(seed.encode(), digest_size=64).digest(), digest_size=64)
