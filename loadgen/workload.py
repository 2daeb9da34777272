"""Converse request bodies from a scenario: what to send, never when.

- A byte-stable synthetic prefix of exactly `prefix_tokens` tokens (by
  loadgen.tokens.count_tokens, the emulator's own rule) ends with a cachePoint
  carrying the arm's TTL. Each arm gets its own prefix (its name is in the first
  line), so arms never share cache entries.
- `single`: the prefix as the system prompt, then one user question below the
  checkpoint that varies per request.
- `agent`: a multi-turn session. Every turn appends the user's new message (with a
  cachePoint at its end) to the history; the previous turn's checkpoint is kept so
  the history cached last turn is read and only the new part is written. At most
  3 checkpoints are used (system, previous turn, this turn): within Bedrock's 4.
- The output length the scenario asks for travels as a plain instruction in the
  user text ("Reply with about N tokens."); the emulator honours it, a real model
  roughly does.

Everything random comes from a `random.Random` the caller passes in, so every arm
sees the same sequence of sizes (common random numbers).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from loadgen.arrivals import Dist, sample_int
from loadgen.models import lookup
from loadgen.scenario import Arm, Scenario
from loadgen.tokens import CHARS_PER_TOKEN, count_tokens

# A small vocabulary of plain words: realistic-looking text, cheap to produce.
_WORDS = (
    "agent tool call result customer order invoice shipment status query table index "
    "latency region cache token model prompt request response policy account billing "
    "report summary detail record update create delete review approve reject schedule "
    "window metric threshold budget forecast capacity quota limit retry backoff stream "
    "event message context history answer question check verify explain compare plan"
).split()


def filler(rng: random.Random, tokens: int) -> str:
    """Text of exactly `tokens` tokens (tokens x 4 characters) drawn from rng."""
    n = tokens * CHARS_PER_TOKEN
    if n <= 0:
        return ""
    # ~7 chars per word incl. space; draw a little more than needed and cut.
    words = rng.choices(_WORDS, k=n // 5 + 2)
    text = " ".join(words)
    while len(text) < n:
        text += " " + " ".join(rng.choices(_WORDS, k=n // 5 + 2))
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
    """

    key: tuple
    tokens: int
    ttl: str


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


class ArmWorkload:
    """Builds the requests of one arm. Holds the arm's prefix (built once)."""

    def __init__(self, scenario: Scenario, arm: Arm, *, salt: str = "") -> None:
        self.scenario = scenario
        self.arm = arm
        self.info = lookup(arm.model_id)
        w = scenario.workload
        head = f"[loadgen scenario={scenario.name} arm={arm.name}{' run=' + salt if salt else ''}] "
        head += "You are a careful assistant. Context follows. "
        head_tokens = count_tokens(head)
        # pad the head to a token boundary so the whole prefix is exactly prefix_tokens
        head = head.ljust(head_tokens * CHARS_PER_TOKEN)
        body_tokens = max(0, w.prefix_tokens - head_tokens)
        prefix_rng = random.Random(f"{scenario.seed}:prefix")  # same text for every arm after the head
        self.prefix = head + filler(prefix_rng, body_tokens)
        self.prefix_tokens = count_tokens(self.prefix)

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
        if not self.arm.cache:
            return ()
        return (Checkpoint(("system", self.arm.name), self.prefix_tokens, self.arm.cache_ttl),)

    # -- single-turn ---------------------------------------------------------

    def single(self, index: int, sizes: "Sizes") -> Request:
        instr = reply_instruction(sizes.output_tokens)
        q_rng = random.Random(f"{self.scenario.seed}:question:{index}")
        question = f"Q{index}: " + filler(q_rng, max(0, sizes.question_tokens - count_tokens(instr) - 2))
        text = question + instr
        messages = [{"role": "user", "content": [{"text": text}]}]
        return Request(
            arm=self.arm.name, session=index, turn=0, model_id=self.arm.model_id, stream=self.arm.stream,
            params=self._params(messages), checkpoints=self._system_checkpoint(),
            input_tokens=self.prefix_tokens + count_tokens(text), max_tokens=self.arm.max_tokens,
        )


@dataclass(frozen=True)
class Sizes:
    """The random sizes of one request, drawn once and shared by every arm."""

    question_tokens: int = 0
    turn_tokens: int = 0
    output_tokens: int = 0


def draw_sizes(scenario: Scenario, rng: random.Random) -> Sizes:
    w = scenario.workload

    def draw(d: Dist | None) -> int:
        return 0 if d is None else sample_int(d, rng)

    return Sizes(question_tokens=draw(w.question_tokens), turn_tokens=draw(w.turn_tokens),
                 output_tokens=draw(w.output_tokens))


@dataclass
class AgentSession:
    """One arm's view of one agent session: the history grows turn by turn."""

    workload: ArmWorkload
    session: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    # token count of the history in `messages` (by count_tokens over its text blocks)
    history_tokens: int = 0
    # checkpoint of the previous turn's user message: (index in messages, Checkpoint)
    last_checkpoint: tuple[int, Checkpoint] | None = None
    turn: int = 0

    def next_request(self, sizes: Sizes) -> Request:
        wl, arm = self.workload, self.workload.arm
        instr = reply_instruction(sizes.output_tokens)
        t_rng = random.Random(f"{wl.scenario.seed}:turn:{self.session}:{self.turn}")
        text = f"S{self.session}T{self.turn}: " + filler(t_rng, max(0, sizes.turn_tokens - count_tokens(instr) - 3))
        text += instr
        user_tokens = count_tokens(text)
        messages = list(self.messages)  # history is stored without cache points; they are added per request
        checkpoints = list(wl._system_checkpoint())
        if arm.cache and self.last_checkpoint is not None:
            idx, cp = self.last_checkpoint
            messages[idx] = _with_cache_point(messages[idx], arm.cache_ttl)
            checkpoints.append(cp)
        user_msg = {"role": "user", "content": [{"text": text}]}
        new_cp = Checkpoint(("session", arm.name, self.session, len(messages)),
                            wl.prefix_tokens + self.history_tokens + user_tokens, arm.cache_ttl)
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
        self._pending = (user_msg, user_tokens, new_cp)
        return req

    def complete(self, ok: bool, reply: str) -> None:
        """Record the turn's outcome: on success the user message and reply join the history."""
        user_msg, user_tokens, cp = self._pending
        self.turn += 1
        if not ok:
            return  # a failed turn leaves no trace in the conversation; the next turn is a new question
        self.last_checkpoint = (len(self.messages), cp)
        self.messages.append(user_msg)
        reply = reply or "(no reply)"
        self.messages.append({"role": "assistant", "content": [{"text": reply}]})
        self.history_tokens += user_tokens + count_tokens(reply)


def _with_cache_point(msg: dict[str, Any], ttl: str) -> dict[str, Any]:
    return {"role": msg["role"], "content": [*msg["content"], _cache_point(ttl)]}
