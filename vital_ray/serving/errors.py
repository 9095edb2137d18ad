"""Client errors of the endpoint, rendered as OpenAI-style error bodies."""

from __future__ import annotations


class RequestError(Exception):
    """A bad request: `status` is the HTTP status (4xx), `code` a stable machine-readable name."""

    def __init__(self, status: int, message: str, code: str = "invalid_request", param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param

    def body(self) -> dict:
        kind = "authentication_error" if self.status == 401 else "invalid_request_error"
        return error_body(self.message, kind, self.code, self.param)


def error_body(message: str, kind: str, code: str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "code": code, "param": param}}
