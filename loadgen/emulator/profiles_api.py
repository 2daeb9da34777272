"""ListInferenceProfiles / GetInferenceProfile / ListFoundationModels / GetFoundationModel
answered from the model catalog (loadgen/catalog/data/models.toml and profiles.toml), so
the profiles a client discovers are the ones `validate` and the runtime emulator accept.

Shapes: botocore `bedrock` service-2.json InferenceProfileSummary (= GetInferenceProfile
response) and FoundationModelSummary (= GetFoundationModel's modelDetails). ARNs:
  profile         arn:aws:bedrock:<caller Region>:<account>:inference-profile/<profile id>
  foundation model arn:aws:bedrock:<Region>::foundation-model/<model id> (no account)
  global model    arn:aws:bedrock:::foundation-model/<model id> (no Region, no account:
                  AWS user guide global-cross-region-inference)
The account is batch_requests.ACCOUNT_ID, the emulator's fixed fake account.
"""

from __future__ import annotations

from typing import Any

from loadgen.catalog import profiles
from loadgen.catalog.models import ModelInfo, UnknownModel, catalog, lookup
from loadgen.emulator.batch_requests import ACCOUNT_ID, invalid, not_found

# createdAt/updatedAt of every system-defined profile. ASSUMPTION: the catalog has no
# dates; a fixed instant keeps the answers reproducible.
PROFILE_TIME = "2025-01-01T00:00:00Z"
_PROVIDERS = {"anthropic": "Anthropic", "amazon": "Amazon", "openai": "OpenAI", "meta": "Meta",
              "mistral": "Mistral AI", "cohere": "Cohere", "deepseek": "DeepSeek"}
_GEO_NAMES = {"us": "US", "eu": "EU", "apac": "APAC", "jp": "JP", "au": "AU", "us-gov": "US-GOV",
              "global": "Global"}


def provider(base_id: str) -> str:
    head = base_id.split(".", 1)[0]
    return _PROVIDERS.get(head, head.capitalize())


def model_arn(region: str, base_id: str) -> str:
    return f"arn:aws:bedrock:{region}::foundation-model/{base_id}"


def _join(regions: list[str]) -> str:
    return regions[0] if len(regions) == 1 else ", ".join(regions[:-1]) + " and " + regions[-1]


def profile_summary(profile_id: str, info: ModelInfo, region: str) -> dict[str, Any]:
    """One system-defined profile as `region` sees it. models[]: one foundation-model ARN
    per destination Region (profiles.toml) for a geo profile; the Region-less global ARN for
    a global one (ASSUMPTION: which ARNs Bedrock lists for a global profile is UNCONFIRMED;
    a third-party fixture uses this one). botocore models[] holds at most 5 items; the
    emulator lists every destination it routes to (eu. has 6; botocore does not check
    output lengths). Name and description follow observed answers ("US Anthropic Claude
    Opus 5", "Routes requests to ... in us-east-1, us-east-2 and us-west-2.", secondary)."""
    kind, prefix, base = profiles.split(profile_id)
    dest = list(profiles.destination_regions(profile_id, region))
    if kind == "global":
        models = [{"modelArn": f"arn:aws:bedrock:::foundation-model/{base}"}]
        where = "commercial AWS Regions worldwide"
    else:
        models = [{"modelArn": model_arn(r, base)} for r in sorted(dest)]
        where = _join(sorted(dest))
    name = f"{_GEO_NAMES.get(prefix or '', (prefix or '').upper())} {provider(base)} {info.name}"
    return {
        "inferenceProfileName": name,
        "description": f"Routes requests to {provider(base)} {info.name} in {where}.",
        "createdAt": PROFILE_TIME,
        "updatedAt": PROFILE_TIME,
        "inferenceProfileArn": f"arn:aws:bedrock:{region}:{ACCOUNT_ID}:inference-profile/{profile_id}",
        "models": models,
        "inferenceProfileId": profile_id,
        "status": "ACTIVE",
        "type": "SYSTEM_DEFINED",
    }


def list_profiles(region: str, type_equals: str | None) -> list[dict[str, Any]]:
    """Every system-defined profile callable from `region`, catalog order (geo, then
    global). The emulator has no application profiles: type APPLICATION lists none."""
    if type_equals not in (None, "SYSTEM_DEFINED", "APPLICATION"):
        raise invalid(f"type: expected SYSTEM_DEFINED or APPLICATION, got {type_equals!r}")
    if type_equals == "APPLICATION":
        return []
    out = []
    for info in catalog().values():
        for pid in info.profiles_from(region):
            if profiles.kind_of(pid) != "region":
                out.append(profile_summary(pid, info, region))
    return out


def get_profile(identifier: str, region: str) -> dict[str, Any]:
    """GetInferenceProfile by id or ARN; ResourceNotFoundException for a profile that
    does not exist or is not callable from `region` (text: the emulator's)."""
    pid = identifier.rsplit("/", 1)[-1] if identifier.startswith("arn:") else identifier
    for p in list_profiles(region, None):
        if p["inferenceProfileId"] == pid and (pid == identifier or p["inferenceProfileArn"] == identifier):
            return p
    raise not_found(f"The inference profile {identifier} was not found in {region}.")


_LIFECYCLE = {"active": "ACTIVE", "legacy": "LEGACY", "deprecated": "ACTIVE"}


def model_summary(info: ModelInfo, region: str) -> dict[str, Any]:
    """FoundationModelSummary. inferenceTypesSupported: ON_DEMAND where the bare id is
    served in `region`, else INFERENCE_PROFILE (seen in third-party captures, not in
    botocore's enum: secondary). Modalities: text only (the emulator serves text)."""
    return {
        "modelArn": model_arn(region, info.base_id),
        "modelId": info.base_id,
        "modelName": info.name,
        "providerName": provider(info.base_id),
        "inputModalities": ["TEXT"],
        "outputModalities": ["TEXT"],
        "responseStreamingSupported": True,
        "customizationsSupported": [],
        "inferenceTypesSupported": ["ON_DEMAND"] if info.in_region_at(region) else ["INFERENCE_PROFILE"],
        "modelLifecycle": {"status": _LIFECYCLE.get(info.lifecycle, "ACTIVE")},
    }


def list_models(region: str, query: dict[str, str]) -> list[dict[str, Any]]:
    """ListFoundationModels with its filters (byProvider, byCustomizationType,
    byOutputModality, byInferenceType)."""
    out = []
    for info in catalog().values():
        s = model_summary(info, region)
        if "byProvider" in query and query["byProvider"].lower() != s["providerName"].lower():
            continue
        if "byCustomizationType" in query:
            continue   # the emulator models no customization
        if "byOutputModality" in query and query["byOutputModality"] not in s["outputModalities"]:
            continue
        if "byInferenceType" in query and query["byInferenceType"] not in s["inferenceTypesSupported"]:
            continue
        out.append(s)
    return out


def get_model(identifier: str, region: str) -> dict[str, Any]:
    """GetFoundationModel by bare id or foundation-model ARN."""
    mid = identifier.rsplit("/", 1)[-1] if identifier.startswith("arn:") else identifier
    try:
        info = lookup(mid)
    except UnknownModel:
        raise not_found(f"The foundation model {identifier} was not found.") from None
    if info.base_id != mid:
        raise not_found(f"The foundation model {identifier} was not found (a profile id is not a model id).")
    return model_summary(info, region)
