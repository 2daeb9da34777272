"""BedrockError: an error as Bedrock reports it (HTTP status, error code, message)."""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.emulator.config import ERROR_CODES


@dataclass(frozen=True)
class BedrockError:
    """status: HTTP status; code: Bedrock's name (e.g. ThrottlingException);
    delay_s: scenario seconds after the request start at which the error is sent;
    served_region: the Region that answered (the caller's Region when none was chosen);
    quota: for a throttle, the limit that refused it as `KIND REGIONS` (see QUOTA_KINDS),
    sent as the x-loadgen-quota header so clients need not parse the message; "" otherwise."""

    status: int
    code: str
    message: str
    delay_s: float = 0.0
    served_region: str = ""
    quota: str = ""

    @property
    def stream_event_type(self) -> str | None:
        """The ConverseStream exception event for this code, or None if it has none."""
        name = self.code[0].lower() + self.code[1:]
        return name if name in _STREAM_MEMBERS else None

    def in_band(self, stream_errors_in_band: bool) -> bool:
        """Whether a ConverseStream call gets this error as an exception event after HTTP 200.

        Request validation happens before a stream opens, so a ValidationException is
        always an HTTP 400, although the stream shape has a validationException event
        (which Bedrock uses for problems found mid-stream)."""
        return (stream_errors_in_band and self.stream_event_type is not None
                and self.code != "ValidationException")


_STREAM_MEMBERS = ("internalServerException", "modelStreamErrorException", "validationException",
                   "throttlingException", "serviceUnavailableException")


# The limits a ThrottlingException from the emulator names in its x-loadgen-quota header,
# followed by a space and the comma-separated Regions concerned:
#   rpm       requests-per-minute quota of the model id as called, in the caller's Region
#   tpm       tokens-per-minute quota of the model id as called, in the caller's Region
#   tpd       tokens-per-day quota of the model id as called, in the caller's Region
#   capacity  the serving Regions' own capacity (the profile had nowhere left to send it)
# Bedrock itself sends no such header; its message text is all a client gets there.
QUOTA_KINDS = ("rpm", "tpm", "tpd", "capacity")


def quota_value(kind: str, regions: "tuple[str, ...] | list[str]") -> str:
    """The x-loadgen-quota value for a throttle by `kind` (QUOTA_KINDS) in `regions`."""
    assert kind in QUOTA_KINDS, kind
    return f"{kind} {','.join(regions)}"


def error(code: str, message: str, **kw) -> BedrockError:
    return BedrockError(ERROR_CODES[code], code, message, **kw)


def validation(message: str) -> BedrockError:
    return error("ValidationException", message)
