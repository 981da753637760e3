"""NGSI-LD errors, each knowing its HTTP status and ProblemDetails type (GS CIM 009, 5.5.2).

The exception tree::

    NgsiError (500, InternalError)
     ├── InvalidRequest (400)           the request itself is malformed (JSON, headers, parameters)
     ├── BadRequestData (400)           the request is well formed but its content is not valid
     ├── AlreadyExists (409)
     ├── OperationNotSupported (422)
     ├── ResourceNotFound (404)
     ├── NonexistentTenant (404)
     ├── TooManyResults (403)
     ├── LdContextNotAvailable (503)
     ├── UnsupportedMediaType (415)     not an NGSI-LD type: plain HTTP problems
     ├── NotAcceptable (406)
     ├── PayloadTooLarge (413)
     └── MethodNotAllowed (405)

One handler in the API renders any of them as ``application/json`` ProblemDetails
(RFC 7807); a client never sees a stack trace.
"""

from __future__ import annotations

from typing import Any, ClassVar

NGSI_LD_ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


class NgsiError(Exception):
    """Base of all errors a request can end with."""

    status: ClassVar[int] = 500
    type_name: ClassVar[str] = "InternalError"
    title: ClassVar[str] = "Internal error"
    plain: ClassVar[bool] = False
    """True for plain HTTP errors, whose problem type is ``about:blank`` (RFC 9457)."""

    def __init__(self, detail: str, *, instance: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.instance = instance
        self.extra = extra

    @property
    def problem_type(self) -> str:
        return "about:blank" if self.plain else NGSI_LD_ERRORS + self.type_name

    def to_problem(self) -> dict[str, Any]:
        """The ProblemDetails body."""
        body: dict[str, Any] = {
            "type": self.problem_type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.instance is not None:
            body["instance"] = self.instance
        body.update(self.extra)
        return body


class InvalidRequest(NgsiError):
    status = 400
    type_name = "InvalidRequest"
    title = "Invalid request"


class BadRequestData(NgsiError):
    status = 400
    type_name = "BadRequestData"
    title = "Bad request data"


class AlreadyExists(NgsiError):
    status = 409
    type_name = "AlreadyExists"
    title = "Already exists"


class OperationNotSupported(NgsiError):
    status = 422
    type_name = "OperationNotSupported"
    title = "Operation not supported"


class ResourceNotFound(NgsiError):
    status = 404
    type_name = "ResourceNotFound"
    title = "Resource not found"


class NonexistentTenant(NgsiError):
    status = 404
    type_name = "NonexistentTenant"
    title = "Nonexistent tenant"


class TooManyResults(NgsiError):
    status = 403
    type_name = "TooManyResults"
    title = "Too many results"


class LdContextNotAvailable(NgsiError):
    status = 503
    type_name = "LdContextNotAvailable"
    title = "@context not available"


class UnsupportedMediaType(NgsiError):
    status = 415
    type_name = "UnsupportedMediaType"
    title = "Unsupported media type"
    plain = True


class NotAcceptable(NgsiError):
    status = 406
    type_name = "NotAcceptable"
    title = "Not acceptable"
    plain = True


class PayloadTooLarge(NgsiError):
    status = 413
    type_name = "PayloadTooLarge"
    title = "Payload too large"
    plain = True


class MethodNotAllowed(NgsiError):
    status = 405
    type_name = "MethodNotAllowed"
    title = "Method not allowed"
    plain = True


class Unauthenticated(NgsiError):
    """401: no credentials, or credentials that are not valid."""

    status = 401
    type_name = "Unauthenticated"
    title = "Authentication required"
    plain = True


class Forbidden(NgsiError):
    """403: the caller is known but its role does not allow the operation."""

    status = 403
    type_name = "Forbidden"
    title = "Forbidden"
    plain = True


class TooManyRequests(NgsiError):
    """429: the caller went over its request rate."""

    status = 429
    type_name = "TooManyRequests"
    title = "Too many requests"
    plain = True
