"""The Subsonic response envelope, in XML (the default), JSON (``f=json``) or JSONP
(``f=jsonp&callback=name``), and the API's error codes.

A payload is plain data: a dict whose scalar values become XML attributes (JSON fields), whose
dict values become one child element and whose list values become repeated child elements
(JSON arrays). Errors are answered with HTTP 200 and ``status="failed"``, as every Subsonic
server does: clients read the code, not the HTTP status.
"""

import json
import re
from xml.etree import ElementTree

from django.http import HttpResponse

API_VERSION = "1.16.1"
SERVER_TYPE = "mixtapes"
SERVER_VERSION = "1.0"
XML_NAMESPACE = "http://subsonic.org/restapi"
CALLBACK = re.compile(r"^[A-Za-z_$][\w$.]{0,63}$")


class SubsonicError(Exception):
    """An answer with ``status="failed"``; codes from the Subsonic and OpenSubsonic specs."""

    GENERIC = 0
    MISSING_PARAMETER = 10
    CLIENT_TOO_OLD = 20
    WRONG_CREDENTIALS = 40
    TOKEN_NOT_SUPPORTED = 41
    MECHANISM_NOT_SUPPORTED = 42
    CONFLICTING_MECHANISMS = 43
    INVALID_API_KEY = 44
    NOT_AUTHORIZED = 50
    NOT_FOUND = 70

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def missing(name: str) -> SubsonicError:
    return SubsonicError(SubsonicError.MISSING_PARAMETER, f"Required parameter is missing: {name}")


def not_found(what: str) -> SubsonicError:
    return SubsonicError(SubsonicError.NOT_FOUND, f"{what} not found")


def envelope(status: str, payload: dict | None = None) -> dict:
    return {
        "status": status,
        "version": API_VERSION,
        "type": SERVER_TYPE,
        "serverVersion": SERVER_VERSION,
        "openSubsonic": True,
        **(payload or {}),
    }


def render(request, params, payload: dict | None = None, *, error: SubsonicError | None = None) -> HttpResponse:
    body = (
        envelope("failed", {"error": {"code": error.code, "message": error.message}})
        if error
        else envelope("ok", payload)
    )
    form = params.get("f", "xml")
    if form in ("json", "jsonp"):
        body = _without_none(body)
    if form == "json":
        return HttpResponse(json.dumps({"subsonic-response": body}), content_type="application/json")
    if form == "jsonp":
        callback = params.get("callback", "")
        if not CALLBACK.match(callback):
            callback = "callback"
        text = f"{callback}({json.dumps({'subsonic-response': body})});"
        return HttpResponse(text, content_type="application/javascript")
    root = ElementTree.Element("subsonic-response", {"xmlns": XML_NAMESPACE})
    _fill(root, body)
    xml = ElementTree.tostring(root, encoding="unicode", xml_declaration=False)
    return HttpResponse('<?xml version="1.0" encoding="UTF-8"?>\n' + xml, content_type="text/xml; charset=utf-8")


def _without_none(value):
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fill(element: ElementTree.Element, data: dict) -> None:
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, dict):
            _fill(ElementTree.SubElement(element, key), value)
        elif isinstance(value, list):
            for item in value:
                child = ElementTree.SubElement(element, key)
                if isinstance(item, dict):
                    _fill(child, item)
                else:
                    child.text = _text(item)
        else:
            element.set(key, _text(value))
