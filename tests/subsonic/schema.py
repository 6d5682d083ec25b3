"""The Subsonic API's answers checked against the Subsonic REST API XSD, version 1.16.1
(``schema/subsonic-rest-api-1.16.1.xsd``, see ``schema/README.md``).

``assert_valid_xml`` validates an XML answer with the XSD itself (xmlschema). ``assert_valid_json``
checks a JSON answer against the same XSD's shapes, read from xmlschema's components (never a
copy of them written here): each key is an attribute or a child element the XSD allows at that
place; a child that may occur more than once is an array, one that occurs at most once an
object; attribute values have the JSON type of their XSD type and a value that type accepts;
required attributes and required children are present; at most one alternative of a choice.

The only things the XSD does not know that pass are OpenSubsonic's additions to the envelope,
listed once below. Both take a response (or its body: bytes for XML, the decoded data for JSON)
and raise AssertionError naming every problem found.
"""

import json
from dataclasses import dataclass, field
from functools import cache
from numbers import Number
from pathlib import Path
from xml.etree import ElementTree

import xmlschema
from xmlschema.validators import XsdAnyElement, XsdElement, XsdGroup

SCHEMA_FILE = Path(__file__).resolve().parent / "schema" / "subsonic-rest-api-1.16.1.xsd"
NAMESPACE = "http://subsonic.org/restapi"
ROOT = "subsonic-response"
_XS = "{http://www.w3.org/2001/XMLSchema}"

# OpenSubsonic's additions to the envelope, which the Subsonic 1.16.1 XSD predates: the root's
# `type`, `serverVersion` and `openSubsonic` fields
# (https://opensubsonic.netlify.app/docs/responses/subsonic-response/) and the
# `openSubsonicExtensions` list that getOpenSubsonicExtensions answers, each entry a `name` and
# its `versions` (https://opensubsonic.netlify.app/docs/endpoints/getopensubsonicextensions/,
# https://opensubsonic.netlify.app/docs/responses/opensubsonicextension/). These, and nothing
# else, are taken out of an XML answer before the XSD sees it, and allowed in a JSON one.
OPEN_SUBSONIC_ROOT_ATTRIBUTES = {"type": str, "serverVersion": str, "openSubsonic": bool}
OPEN_SUBSONIC_EXTENSIONS = "openSubsonicExtensions"
# OpenSubsonic's additions to Child (https://opensubsonic.netlify.app/docs/responses/child/)
# that the app sends, on the elements of type Child in the answers it gives (songs of albums,
# searches and random lists; entries of playlists and shares).
OPEN_SUBSONIC_CHILD_ATTRIBUTES = {"samplingRate": int, "bitDepth": int, "channelCount": int, "mediaType": str}
CHILD_ELEMENTS = ("song", "entry", "child")


@cache
def schema() -> xmlschema.XMLSchema10:
    loaded = xmlschema.XMLSchema10(SCHEMA_FILE)
    assert loaded.version == "1.16.1" and loaded.target_namespace == NAMESPACE
    return loaded


# --- XML ----------------------------------------------------------------------------------------


def assert_valid_xml(response) -> None:
    body = response if isinstance(response, bytes | str) else response.content
    root = ElementTree.fromstring(body)  # noqa: S314 - our own server's answer
    assert root.tag == f"{{{NAMESPACE}}}{ROOT}", f"the root is {root.tag}, not {ROOT}"
    problems = _open_subsonic_xml_problems(root)
    for error in schema().iter_errors(root):
        problems.append(f"{(error.path or '').replace(f'{{{NAMESPACE}}}', '')}: {error.reason}")
    assert not problems, "the XML answer does not match the Subsonic XSD:\n" + "\n".join(problems)


def _open_subsonic_xml_problems(root: ElementTree.Element) -> list[str]:
    """Take OpenSubsonic's additions out of ``root`` (checking their own shape on the way)."""
    problems = []
    for name, kind in OPEN_SUBSONIC_ROOT_ATTRIBUTES.items():
        value = root.attrib.pop(name, None)
        if value is not None and kind is bool and value not in ("true", "false"):
            problems.append(f"{ROOT} {name}={value!r}: not a boolean")
    for element in root.iter():
        if element.tag.removeprefix(f"{{{NAMESPACE}}}") in CHILD_ELEMENTS:
            for name, kind in OPEN_SUBSONIC_CHILD_ATTRIBUTES.items():
                value = element.attrib.pop(name, None)
                if value is not None and kind is int and not value.isdigit():
                    problems.append(f"{element.tag} {name}={value!r}: not a whole number")
    for extension in root.findall(f"{{{NAMESPACE}}}{OPEN_SUBSONIC_EXTENSIONS}"):
        root.remove(extension)
        where = f"{OPEN_SUBSONIC_EXTENSIONS} {extension.attrib}"
        if set(extension.attrib) != {"name"}:
            problems.append(f"{where}: needs a name and no other attribute")
        for child in extension:
            if child.tag != f"{{{NAMESPACE}}}versions" or not (child.text or "").strip().isdigit() or len(child):
                problems.append(f"{where}: {child.tag} {child.text!r} is not a versions number")
    return problems


# --- JSON ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Child:
    """A child element as the XSD allows it in one type: JSON array or object, required or not."""

    element: XsdElement
    many: bool
    required: bool


@dataclass
class Shape:
    """What the XSD allows in an element of one complex type, read from xmlschema's components."""

    name: str
    attributes: dict = field(default_factory=dict)  # name: XsdAttribute
    children: dict[str, Child] = field(default_factory=dict)
    choices: list[tuple[tuple[str, ...], bool]] = field(default_factory=list)  # (alternatives, required)
    text: object = None  # the simple type of its text (mixed or simple content): JSON's "value"


def _many(particle) -> bool:
    return particle.max_occurs is None or particle.max_occurs > 1


@cache
def shape_of(xsd_type) -> Shape:
    shape = Shape(name=xsd_type.local_name or "(anonymous type)")
    shape.attributes = {name: attribute for name, attribute in xsd_type.attributes.items() if name}
    if xsd_type.has_simple_content():
        shape.text = xsd_type.content
    elif isinstance(xsd_type.content, XsdGroup):
        if xsd_type.mixed:
            shape.text = schema().maps.types[_XS + "string"]
        _read_group(shape, xsd_type.content, many=False, required=True)
    return shape


def _read_group(shape: Shape, group: XsdGroup, *, many: bool, required: bool) -> list[str]:
    many = many or _many(group)
    required = required and group.min_occurs > 0
    names: list[str] = []
    for particle in group:
        if isinstance(particle, XsdGroup):
            names += _read_group(shape, particle, many=many, required=required and group.model != "choice")
        elif isinstance(particle, XsdElement):
            name = particle.local_name
            assert name not in shape.children, f"{shape.name}: {name} twice in one content model"
            shape.children[name] = Child(
                particle,
                many=many or _many(particle),
                required=required and group.model != "choice" and particle.min_occurs > 0,
            )
            names.append(name)
        else:  # the 1.16.1 XSD has no wildcards: say so if a later one brings them
            kind = "xs:any" if isinstance(particle, XsdAnyElement) else repr(particle)
            raise AssertionError(f"{shape.name}: {kind} is not supported here")
    if group.model == "choice" and not many and len(names) > 1:
        shape.choices.append((tuple(names), required))
    return names


def _json_kind(simple_type) -> type:
    """The JSON type of an XSD simple type: bool, int, a number, or str (dateTime included)."""
    types = schema().maps.types
    for builtin, kind in (("boolean", bool), ("integer", int), ("decimal", Number), ("double", Number),
                          ("float", Number)):  # fmt: skip
        if simple_type.is_derived(types[_XS + builtin]):
            return kind
    return str


def _scalar_problems(where: str, value, simple_type) -> list[str]:
    kind = _json_kind(simple_type)
    if kind is bool:
        fits = isinstance(value, bool)
    elif kind is str:
        fits = isinstance(value, str)
    else:
        fits = isinstance(value, kind) and not isinstance(value, bool)
    type_name = simple_type.prefixed_name or simple_type.local_name or "a simple type"
    if not fits:
        wanted = {bool: "true or false", int: "an integer", Number: "a number", str: "a string"}[kind]
        return [f"{where}: {value!r} is a JSON {type(value).__name__}; {type_name} needs {wanted}"]
    lexical = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if not simple_type.is_valid(lexical):
        return [f"{where}: {value!r} is not a valid {type_name}"]
    return []


def json_problems(value, xsd_type, where: str) -> list[str]:
    """What in ``value`` (a JSON object for an element of ``xsd_type``) the XSD does not allow."""
    if xsd_type.is_simple():
        return _scalar_problems(where, value, xsd_type)
    if not isinstance(value, dict):
        return [f"{where}: a JSON {type(value).__name__} where {xsd_type.local_name} needs an object"]
    shape = shape_of(xsd_type)
    problems = []
    for name, attribute in shape.attributes.items():
        if attribute.use == "required" and name not in value:
            problems.append(f"{where}: the required attribute {name} is missing ({shape.name})")
    for name, child in shape.children.items():
        if child.required and value.get(name) in (None, []):
            problems.append(f"{where}: the required element {name} is missing ({shape.name})")
    for alternatives, required in shape.choices:
        present = [name for name in alternatives if name in value]
        if len(present) > 1:
            problems.append(f"{where}: {present} together, where {shape.name} allows only one of them")
        elif required and not present:
            problems.append(f"{where}: none of {list(alternatives)}, where {shape.name} needs one")
    for key, item in value.items():
        here = f"{where}.{key}"
        if key in shape.attributes:
            problems += _scalar_problems(here, item, shape.attributes[key].type)
        elif key in shape.children:
            child = shape.children[key]
            if child.many and not isinstance(item, list):
                problems.append(f"{here}: a JSON {type(item).__name__} where {key} (maxOccurs>1) needs an array")
            elif not child.many and isinstance(item, list):
                problems.append(f"{here}: an array where {key} (maxOccurs=1) needs one value")
            else:
                for n, entry in enumerate(item if child.many else [item]):
                    problems += json_problems(entry, child.element.type, f"{here}[{n}]" if child.many else here)
        elif key == "value" and shape.text is not None:
            problems += _scalar_problems(here, item, shape.text)
        else:
            problems.append(f"{here}: {shape.name} has no attribute or element {key}")
    return problems


def _child_additions(value, where: str, problems: list[str]):
    """``value`` without OpenSubsonic's Child additions, wherever Child elements are."""
    if isinstance(value, list):
        return [_child_additions(item, where, problems) for item in value]
    if not isinstance(value, dict):
        return value
    cleaned = {}
    for key, item in value.items():
        if key in CHILD_ELEMENTS:
            entries = []
            for entry in item if isinstance(item, list) else [item]:
                if isinstance(entry, dict):
                    entry = dict(entry)
                    for name, kind in OPEN_SUBSONIC_CHILD_ATTRIBUTES.items():
                        if name in entry and type(entry.pop(name)) is not kind:
                            problems.append(f"{where}.{key}.{name}: not a JSON {kind.__name__}")
                entries.append(_child_additions(entry, f"{where}.{key}", problems))
            cleaned[key] = entries if isinstance(item, list) else entries[0]
        else:
            cleaned[key] = _child_additions(item, f"{where}.{key}", problems)
    return cleaned


def _open_subsonic_json_problems(envelope: dict) -> list[str]:
    """Take OpenSubsonic's additions out of ``envelope`` (checking their own shape on the way)."""
    problems = []
    cleaned = _child_additions(envelope, ROOT, problems)
    envelope.clear()
    envelope.update(cleaned)
    for name, kind in OPEN_SUBSONIC_ROOT_ATTRIBUTES.items():
        if name in envelope and type(envelope.pop(name)) is not kind:
            problems.append(f"{ROOT}.{name}: not a JSON {kind.__name__}")
    if OPEN_SUBSONIC_EXTENSIONS in envelope:
        extensions = envelope.pop(OPEN_SUBSONIC_EXTENSIONS)
        fits = isinstance(extensions, list) and all(
            isinstance(e, dict) and set(e) == {"name", "versions"} and isinstance(e["name"], str)
            and isinstance(e["versions"], list)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in e["versions"])
            for e in extensions
        )  # fmt: skip
        if not fits:
            problems.append(f"{ROOT}.{OPEN_SUBSONIC_EXTENSIONS}: not [{{name: string, versions: [integer]}}]")
    return problems


def assert_valid_json(response) -> None:
    data = response if isinstance(response, dict) else json.loads(response.content)
    assert isinstance(data, dict) and list(data) == [ROOT], f"not {{{ROOT!r}: ...}}: {str(data)[:200]}"
    envelope = dict(data[ROOT])
    problems = _open_subsonic_json_problems(envelope)
    problems += json_problems(envelope, schema().elements[ROOT].type, ROOT)
    assert not problems, "the JSON answer does not match the Subsonic XSD:\n" + "\n".join(problems)
