"""Converse request bodies from a scenario: what to send, never when.

- A byte-stable synthetic prefix of exactly `prefix_tokens` tokens (by
  loadgen.catalog.tokens.count_tokens, the emulator's own rule) ends with a cachePoint
  carrying the arm's TTL. Each arm gets its own prefix (its name is in the first
  line), so arms never share cache entries.
- `single`: the prefix as the system prompt, then one user question below the
  checkpoint that varies per request.
- `agent`: a multi-turn session. Every turn appends the user's new message (with a
  cachePoint at its end) to the history. `checkpoint_pattern` ([workload]) says which
  earlier checkpoints stay:
  - "kept" (default): the previous turn's checkpoint is kept, so the history cached
    last turn is read and only the new part is written, on any model. At most 3
    checkpoints (system, previous turn, this turn): within Bedrock's 4.
  - "moving": the system prompt's checkpoint and one at the end of the latest user
    message, moved forward each turn. The previous turn's prefix is then read only
    through the model's cache lookback (Claude on Bedrock checks up to 20 block
    positions back from each checkpoint; models.toml cache_lookback_blocks); a model
    without one re-writes the history every turn. The system prompt keeps its own
    checkpoint because the lookback only finds entries earlier requests wrote ("Cache
    writes happen only at your breakpoint", Anthropic's "How automatic prefix checking
    works"): without one there, a new session's first turn could never read the system
    prompt other sessions share, and a conversation past 20 blocks would lose it too
    (the same page: a second breakpoint "Ensure[s] a cache hit when a growing
    conversation pushes your breakpoint 20 or more blocks past the last cache write").
  Every message holds one content block, so a turn adds 2 block positions.
- The output length the scenario asks for travels as a plain instruction in the
  user text ("Reply with about N tokens."); the emulator honours it, a real model
  roughly does.

Everything random comes from a `random.Random` the caller passes in, so every arm
sees the same sequence of sizes (common random numbers).
"""

from __future__ import annotations

import random
from hashlib import sha512
from dataclasses import dataclass, field
from typing import Any

from loadgen.engine.frozen import built
from loadgen.scenario.distributions import sample_int
from loadgen.catalog.models import lookup
from loadgen.scenario import Arm, Scenario
from loadgen.catalog.tokens import CHARS_PER_TOKEN, count_tokens

# A small vocabulary of plain words: realistic-looking text, cheap to produce.
_WORDS = (
    "agent tool call result customer order invoice shipment status query table index "
    "latency region cache token model prompt request response policy account billing "
    "report summary detail record update create delete review approve reject schedule "
    "window metric threshold budget forecast capacity quota limit retry backoff stream "
    "event message context history answer question check verify explain compare plan"
).split()


_Random = random.Random
_c_seed = random.Random.__mro__[1].seed  # _random.Random.seed: the Mersenne Twister's own


def seeded_random(seed: str) -> random.Random:
    """`random.Random(seed)` for a str seed, in the same state, ~30 % cheaper: the run makes
    two or three per request (sizes, question text, turn text). `Random(str)` goes through
    random.py's `seed()`, which turns the string into an int (version 2: the UTF-8 bytes
    followed by their SHA-512) and hands it to the C generator; this does the same without
    the Python-level dispatch. tests/test_workload.py checks the state equals Random(seed)'s."""
    r = _Random.__new__(_Random)
    b = seed.encode()
    _c_seed(r, int.from_bytes(b + sha512(b).digest(), "big"))
    r.gauss_next = None
    return r


_N_WORDS = float(len(_WORDS))


def filler(rng: random.Random, tokens: int) -> str:
    """Text of exactly `tokens` tokens (tokens x 4 characters) drawn from rng."""
    n = tokens * CHARS_PER_TOKEN
    if n <= 0:
        return ""
    # ~7 chars per word incl. space; draw a little more than needed and cut. The words are
    # rng.choices(_WORDS, k=...) spelled out (the same draws; int() is floor() for these
    # non-negative numbers), without its per-call set-up: this runs once per request.
    draw, m, k = rng.random, _N_WORDS, n // 5 + 2
    text = " ".join([_WORDS[int(draw() * m)] for _ in range(k)])
    while len(text) < n:
        text += " " + " ".join([_WORDS[int(draw() * m)] for _ in range(k)])
    return text[:n]


def _cache_point(ttl: str) -> dict[str, Any]:
    cp: dict[str, Any] = {"type": "default"}
    if ttl != "5m":  # 5m is the default; sending it explicitly is allowed but noisy
        cp["ttl"] = ttl
    return {"cachePoint": cp}


@dataclass(frozen=True)
class Checkpoint:
    """A cachePoint in a request, as the client-side cache model sees it.

    key identifies the exact prefix bytes up to this checkpoint (symbolically:
    loadgen builds those bytes itself, so it knows when two are equal).
    tokens: prefix tokens up to and including this point.
    lookback: the checkpoints of earlier requests whose prefixes end at block positions
    inside this one's lookback window (the model's cache_lookback_blocks): Bedrock reads
    the longest of them still cached when this checkpoint's own prefix is not.
    """

    key: tuple
    tokens: int
    ttl: str
    lookback: tuple["Checkpoint", ...] = ()


@dataclass(frozen=True)
class Request:
    arm: str
    session: int
    turn: int
    model_id: str
    stream: bool
    params: dict[str, Any]           # Converse keyword arguments, modelId included
    checkpoints: tuple[Checkpoint, ...]
    input_tokens: int                # all input tokens (cached or not)
    max_tokens: int


def reply_instruction(tokens: int) -> str:
    return f" Reply with about {tokens} tokens."


@dataclass(frozen=True)
class PrefixSize:
    """An arm's prefix as sized against the target's CountTokens (loadgen.engine.prefix_sizing)."""

    arm: str
    model_id: str
    target: int                  # tokens the scenario asks for (workload.prefix_tokens)
    body_tokens: int             # filler after the head, in loadgen tokens (chars / 4)
    measured: int | None         # the target's count of the prefix; None: not measured
    local: int                   # loadgen's own count of the same prefix
    calls: int = 0               # CountTokens calls made for it
    note: str = ""               # why it was not measured, or not exact


def arm_prefix(scenario: Scenario, arm: Arm, salt: str = "", body_tokens: int | None = None) -> str:
    """The arm's synthetic prefix: a head naming scenario, arm (and run salt), then filler.
    `body_tokens` (loadgen tokens) sizes the filler; None makes the whole prefix exactly
    workload.prefix_tokens by loadgen's own rule."""
    head = f"[loadgen scenario={scenario.name} arm={arm.name}{' run=' + salt if salt else ''}] "
    head += "You are a careful assistant. Context follows. "
    head_tokens = count_tokens(head)
    # pad the head to a token boundary so the whole prefix is exactly prefix_tokens
    head = head.ljust(head_tokens * CHARS_PER_TOKEN)
    if body_tokens is None:
        body_tokens = max(0, scenario.workload.prefix_tokens - head_tokens)
    prefix_rng = random.Random(f"{scenario.seed}:prefix")  # same text for every arm after the head
    return head + filler(prefix_rng, body_tokens)


class ArmWorkload:
    """Builds the requests of one arm. Holds the arm's prefix (built once)."""

    def __init__(self, scenario: Scenario, arm: Arm, *, salt: str = "",
                 size: "PrefixSize | None" = None) -> None:
        """`size`: the prefix as measured by the target's CountTokens (run --target aws;
        loadgen.engine.prefix_sizing); None sizes it by loadgen's own token rule."""
        self.scenario = scenario
        self.arm = arm
        self.info = lookup(arm.model_id)
        self.prefix = arm_prefix(scenario, arm, salt, size.body_tokens if size is not None else None)
        # tokens the target counts in the prefix: Bedrock's count when measured
        self.prefix_tokens = (size.measured if size is not None and size.measured is not None
                              else count_tokens(self.prefix))
        self.pattern = scenario.workload.checkpoint_pattern
        self._system_cp: tuple[int, tuple[Checkpoint, ...]] | None = None  # (prefix_tokens, _system_checkpoint())
        # block positions a checkpoint's cache lookup checks, itself included (models.toml)
        self.lookback_blocks = self.info.cache_lookback_blocks

    # -- pieces --------------------------------------------------------------

    def _system(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [{"text": self.prefix}]
        if self.arm.cache:
            blocks.append(_cache_point(self.arm.cache_ttl))
        return blocks

    def _inference_config(self) -> dict[str, Any]:
        # Without [model] max_tokens the request omits maxTokens, as a client that never sets
        # it does; Bedrock then reserves the model's maximum output against the TPM quota.
        cfg: dict[str, Any] = {"maxTokens": self.arm.max_tokens} if self.arm.max_tokens_set else {}
        if self.arm.temperature is not None:
            cfg["temperature"] = self.arm.temperature
        return cfg

    def _params(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "modelId": self.arm.model_id,
            "system": self._system(),
            "messages": messages,
        }
        cfg = self._inference_config()
        if cfg:
            params["inferenceConfig"] = cfg
        if self.arm.service_tier:
            params["serviceTier"] = {"type": self.arm.service_tier}
        return params

    def _system_checkpoint(self) -> tuple[Checkpoint, ...]:
        # the same for every request of the arm (immutable): made once
        cp = self._system_cp
        if cp is None or cp[0] != self.prefix_tokens:
            made = ((Checkpoint(("system", self.arm.name), self.prefix_tokens, self.arm.cache_ttl),)
                    if self.arm.cache else ())
            cp = self._system_cp = (self.prefix_tokens, made)
        return cp[1]

    # -- single-turn ---------------------------------------------------------

    def single(self, index: int, sizes: "Sizes") -> Request:
        instr = reply_instruction(sizes.output_tokens)
        q_rng = seeded_random(f"{self.scenario.seed}:question:{index}")
        question = f"Q{index}: " + filler(q_rng, max(0, sizes.question_tokens - count_tokens(instr) - 2))
        text = question + instr
        messages = [{"role": "user", "content": [{"text": text}]}]
        arm = self.arm
        return built(Request, {  # Request(...): this runs once per request
            "arm": arm.name, "session": index, "turn": 0, "model_id": arm.model_id, "stream": arm.stream,
            "params": self._params(messages), "checkpoints": self._system_checkpoint(),
            "input_tokens": self.prefix_tokens + count_tokens(text), "max_tokens": arm.max_tokens,
        })


@dataclass(frozen=True)
class Sizes:
    """The random sizes of one request, drawn once and shared by every arm."""

    question_tokens: int = 0
    turn_tokens: int = 0
    output_tokens: int = 0


def draw_sizes(scenario: Scenario, rng: random.Random) -> Sizes:
    # written out (no per-call closure, Sizes built in one step): this runs once per request
    w = scenario.workload
    q, t, o = w.question_tokens, w.turn_tokens, w.output_tokens
    return built(Sizes, {"question_tokens": 0 if q is None else sample_int(q, rng),
                           "turn_tokens": 0 if t is None else sample_int(t, rng),
                           "output_tokens": 0 if o is None else sample_int(o, rng)})


# block positions (docs/emulator.md "Prompt cache"): the system prompt is one text block
_SYSTEM_BLOCKS = 1


@dataclass
class AgentSession:
    """One arm's view of one agent session: the history grows turn by turn."""

    workload: ArmWorkload
    session: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    # token count of the history in `messages` (by count_tokens over its text blocks)
    history_tokens: int = 0
    # checkpoints sent at the end of earlier turns' user messages that are in the history:
    # (index in messages, block position, Checkpoint), oldest first
    written: list[tuple[int, int, Checkpoint]] = field(default_factory=list)
    turn: int = 0

    def _lookback(self, position: int) -> tuple[Checkpoint, ...]:
        """Checkpoints this session (or any, for the system prompt) may have written whose
        block positions lie in the lookback window of a checkpoint at `position`."""
        n = self.workload.lookback_blocks
        if n <= 1:
            return ()
        lo = position - (n - 1)
        out = [cp for _, pos, cp in self.written if lo <= pos < position]
        sys_cp = self.workload._system_checkpoint()
        if sys_cp and lo <= _SYSTEM_BLOCKS < position:
            out.append(sys_cp[0])
        return tuple(out)

    def next_request(self, sizes: Sizes) -> Request:
        wl, arm = self.workload, self.workload.arm
        instr = reply_instruction(sizes.output_tokens)
        t_rng = seeded_random(f"{wl.scenario.seed}:turn:{self.session}:{self.turn}")
        text = f"S{self.session}T{self.turn}: " + filler(t_rng, max(0, sizes.turn_tokens - count_tokens(instr) - 3))
        text += instr
        user_tokens = count_tokens(text)
        messages = list(self.messages)  # history is stored without cache points; they are added per request
        checkpoints = list(wl._system_checkpoint())
        if arm.cache and self.written and wl.pattern == "kept":
            idx, pos, cp = self.written[-1]
            messages[idx] = _with_cache_point(messages[idx], arm.cache_ttl)
            checkpoints.append(Checkpoint(cp.key, cp.tokens, cp.ttl, self._lookback(pos)))
        user_msg = {"role": "user", "content": [{"text": text}]}
        position = _SYSTEM_BLOCKS + len(messages) + 1  # one block per message
        # keyed by turn: a failed turn's prefix (history + its own question) is not the next one's
        new_cp = Checkpoint(("session", arm.name, self.session, self.turn),
                            wl.prefix_tokens + self.history_tokens + user_tokens, arm.cache_ttl,
                            self._lookback(position))
        if arm.cache:
            messages.append(_with_cache_point(user_msg, arm.cache_ttl))
            checkpoints.append(new_cp)
        else:
            messages.append(user_msg)
        req = Request(
            arm=arm.name, session=self.session, turn=self.turn, model_id=arm.model_id, stream=arm.stream,
            params=wl._params(messages), checkpoints=tuple(checkpoints),
            input_tokens=wl.prefix_tokens + self.history_tokens + user_tokens, max_tokens=arm.max_tokens,
        )
        self._pending = (user_msg, user_tokens, position, Checkpoint(new_cp.key, new_cp.tokens, new_cp.ttl))
        return req

    def complete(self, ok: bool, reply: str) -> None:
        """Record the turn's outcome: on success the user message and reply join the history."""
        user_msg, user_tokens, position, cp = self._pending
        self.turn += 1
        if not ok:
            return  # a failed turn leaves no trace in the conversation; the next turn is a new question
        self.written.append((len(self.messages), position, cp))
        self.messages.append(user_msg)
        reply = reply or "(no reply)"
        self.messages.append({"role": "assistant", "content": [{"text": reply}]})
        self.history_tokens += user_tokens + count_tokens(reply)
        # the next requests look back at most n - 1 positions from this checkpoint (kept
        # again) or from later ones: anything older is never looked at again
        oldest = position - max(0, self.workload.lookback_blocks - 1)
        while len(self.written) > 1 and self.written[0][1] < oldest:
            del self.written[0]


def _with_cache_point(msg: dict[str, Any], ttl: str) -> dict[str, Any]:
    return {"role": msg["role"], "content": [*msg["content"], _cache_point(ttl)]}
