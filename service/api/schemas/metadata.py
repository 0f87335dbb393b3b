"""Descriptions and tags on jobs, models and model versions, and the patch that edits them.
What a tag may be is the database's rule (`service.db.tags`); here it is put into the
JSON Schema, so the docs show every bound."""

from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints
from pydantic.config import JsonDict

from service.api.schemas.common import Input
from service.db.tags import (
    MAX_TAG_KEY_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    MAX_TAGS,
    TAG_KEY_PATTERN,
    TAG_VALUE_PATTERN,
)

MAX_DESCRIPTION_LENGTH = 4000
# Any text but NUL, which PostgreSQL refuses: a description may span lines.
DESCRIPTION_PATTERN = r"^[^\x00]*$"
EXAMPLE_TAGS: JsonDict = {"team": "vision", "stage": "candidate"}

Description = Annotated[
    str,
    StringConstraints(max_length=MAX_DESCRIPTION_LENGTH, pattern=DESCRIPTION_PATTERN),
    Field(description=f"Free text, up to {MAX_DESCRIPTION_LENGTH} characters."),
]
TagKey = Annotated[str, StringConstraints(max_length=MAX_TAG_KEY_LENGTH, pattern=TAG_KEY_PATTERN)]
TagValue = Annotated[
    str, StringConstraints(max_length=MAX_TAG_VALUE_LENGTH, pattern=TAG_VALUE_PATTERN)
]


def _keys_only_of_the_pattern(schema: dict[str, Any]) -> None:
    # pydantic writes a key pattern as `patternProperties`, which leaves other keys
    # allowed; the validator refuses them, and so must the schema.
    schema["additionalProperties"] = False


TAGS_DESCRIPTION = (
    f"A string map of at most {MAX_TAGS} tags: keys of 1 to {MAX_TAG_KEY_LENGTH} letters, "
    "digits and `._/-` (starting with a letter or digit), values of up to "
    f"{MAX_TAG_VALUE_LENGTH} characters on one line. Lists filter on them with "
    "`?tag=key:value`."
)
Tags = Annotated[
    dict[TagKey, TagValue],
    Field(
        max_length=MAX_TAGS,
        description=TAGS_DESCRIPTION,
        examples=[EXAMPLE_TAGS],
        json_schema_extra=_keys_only_of_the_pattern,
    ),
]
TagsPatch = Annotated[
    dict[TagKey, TagValue | None],
    Field(max_length=MAX_TAGS, json_schema_extra=_keys_only_of_the_pattern),
]


class MetadataPatch(Input):
    """What `PATCH` changes on a job, a model or a model version; fields left out stay as
    they are. `description` replaces the old one (null clears it).
    `tags` is a JSON merge patch (RFC 7386): a key set to a string is set, a key set to
    null is removed, keys left out stay, and `"tags": null` removes every tag. At most 50
    tags may remain afterwards (422 naming `tags` otherwise)."""

    model_config = ConfigDict(
        json_schema_extra={
            # No example removes a tag: the OpenAPI document leaves nulls out of examples.
            "examples": [
                {"description": "Best run of the sweep", "tags": {"stage": "production"}},
            ]
        }
    )

    description: Description | None = None
    tags: TagsPatch | None = Field(
        None, description="Tags to set (string) or remove (null); the others stay."
    )
