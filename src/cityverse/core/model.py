"""The stored shape of an NGSI-LD entity: expanded, normalised, JSON-serialisable.

Every entity is kept in one canonical form, whatever representation and @context it
arrived in. Names (entity types, attribute and sub-attribute names, VocabProperty
values, Relationship ``objectType``) are fully expanded IRIs; the request's @context
compacts them again on the way out. Example::

    {
      "id": "urn:ngsi-ld:Pipe:1",
      "type": ["https://smartdatamodels.org/dataModel.WaterDistributionManagementEPANET/Pipe"],
      "scope": ["/Berkane/Centre"],                      # optional
      "createdAt": "2026-11-21T08:31:26.123Z",
      "modifiedAt": "2026-11-21T08:31:26.123Z",
      "attrs": {
        "https://smartdatamodels.org/.../diameter": [
          {"type": "Property", "value": 203.0, "unitCode": "MMT",
           "createdAt": "...", "modifiedAt": "...",
           "sub": {"https://.../accuracy": {"type": "Property", "value": 0.1}}}
        ],
        "https://uri.etsi.org/ngsi-ld/location": [
          {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [-2.32, 34.92]}}
        ]
      }
    }

Rules:

- ``type`` is a non-empty list without duplicates, in the order given.
- ``attrs`` maps an expanded name to a non-empty list of instances (a multi-attribute):
  at most one instance has no ``datasetId`` (the default instance) and datasetIds are
  unique. The default instance, when present, comes first.
- An instance carries exactly one value member, chosen by its ``type``
  (see ``VALUE_MEMBER``): ``value`` (Property, GeoProperty: a GeoJSON geometry),
  ``object`` (Relationship: a URI or a list of URIs), ``languageMap``
  (LanguageProperty: ``{lang: str | [str]}``), ``vocab`` (VocabProperty: an expanded
  IRI or a list of them), ``valueList`` (ListProperty), ``objectList``
  (ListRelationship: a list of URIs) or ``json`` (JsonProperty: any JSON).
- Optional instance members: ``datasetId``, ``observedAt``, ``unitCode``,
  ``objectType`` (Relationship, expanded), ``createdAt``, ``modifiedAt`` and ``sub``,
  the sub-attributes: expanded name -> one instance of the same shape (recursively).
- Timestamps are UTC strings ``YYYY-MM-DDTHH:MM:SS.mmmZ``, so that they compare as
  strings.
"""

from __future__ import annotations

from typing import Any

Entity = dict[str, Any]
"""A stored entity, in the shape above."""

Instance = dict[str, Any]
"""One instance of an attribute (or a sub-attribute), in the shape above."""

NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
DEFAULT_CONTEXT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
LOCATION = NGSI_LD + "location"
OBSERVATION_SPACE = NGSI_LD + "observationSpace"
OPERATION_SPACE = NGSI_LD + "operationSpace"

VALUE_MEMBER: dict[str, str] = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "VocabProperty": "vocab",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
    "JsonProperty": "json",
}
"""Attribute type -> the member that holds its value."""

ATTRIBUTE_TYPES = frozenset(VALUE_MEMBER)

INSTANCE_META = frozenset(
    {"type", "datasetId", "observedAt", "unitCode", "objectType", "createdAt", "modifiedAt", "sub"}
) | frozenset(VALUE_MEMBER.values())
"""Keys of a stored instance that are not sub-attributes."""

ENTITY_MEMBERS = frozenset({"id", "type", "scope", "createdAt", "modifiedAt", "attrs"})
