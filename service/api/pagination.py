"""The query parameters of every list: a page size and the opaque cursor of the page
before (made by `service.db.pagination`), and the link expression that passes it on."""

from typing import Annotated

from fastapi import Query

Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
]
# For a `NextPage` link: the cursor the response holds.
NEXT_CURSOR = "$response.body#/next_cursor"
