"""Shared by the emulator tests: model ids and a clock that moves only when told to."""

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
US_HAIKU = "us." + HAIKU
SONNET37 = "anthropic.claude-3-7-sonnet-20250219-v1:0"   # profile-only from us-east-1
US_SONNET37 = "us." + SONNET37
NOVA_MICRO = "amazon.nova-micro-v1:0"                      # in-Region in us-east-1, burndown 1


class FakeClock:
    """Scenario time moves only when a test sets `t`; sleeps return at once."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    async def sleep_until(self, t: float) -> None:
        return None
