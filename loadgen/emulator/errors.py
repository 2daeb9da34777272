"""BedrockError: an error as Bedrock reports it (HTTP status, error code, message)."""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.emulator.config import ERROR_CODES


@dataclass(frozen=True)
class BedrockError:
    """status: HTTP status; code: Bedrock's name (e.g. ThrottlingException);
    delay_s: scenario seconds after the request start at which the error is sent;
    served_region: the Region that answered (the caller's Region when none was chosen)."""

    status: int
    code: str
    message: str
    delay_s: float = 0.0
    served_region: str = ""

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


def error(code: str, message: str, **kw) -> BedrockError:
    return BedrockError(ERROR_CODES[code], code, message, **kw)


def validation(message: str) -> BedrockError:
    return error("ValidationException", message)
