"""Service tiers under contention (docs/emulator.md, "Service tiers").

Documented by AWS: the on-demand quota of a model is shared across all tiers
(service-tiers-inference.html), priority requests "are prioritized over Standard and
Flex", and flex requests "receive lower priority relative to the Standard tier" during
high demand (What's New, 2025-11-18). How much is not published, so these are ASSUMPTIONS:
  - flex is admitted only while the shared TPM window stays at or under FLEX_QUOTA_SHARE of
    the quota after its reservation: the top of the quota is held for default and priority,
    so flex throttles first and default/priority still get the whole quota;
  - queueing delay at a busy Region is scaled per tier (priority skips the queue, flex
    waits twice as long);
  - priority output runs 25 % faster (What's New: "up to 25% better output tokens per
    second"; the emulator takes the upper bound).
"""

FLEX_QUOTA_SHARE = 0.8
TIER_QUEUE_FACTOR = {"priority": 0.0, "default": 1.0, "flex": 2.0}
PRIORITY_TPS_GAIN = 1.25
