"""A small real TAXII 2.1 server on 127.0.0.1 (one API root, one read-only collection), with the
faults of :mod:`support.kev_upstream`. It speaks the parts of TAXII 2.1 a reader needs:
"Get a Collection" (section 5.2) and paged "Get Objects" (section 5.4: ``limit``, ``next``,
``more``) with the ``application/taxii+json;version=2.1`` media type.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from support.kev_upstream import FaultyUpstream, RecordedRequest, Reply

__all__ = ["TAXII_TYPE", "TaxiiUpstream"]

TAXII_TYPE = "application/taxii+json;version=2.1"
COLLECTION_ID = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"


class TaxiiUpstream(FaultyUpstream):
    """Serves ``objects`` from one collection, ``page_size`` per page at most.

    Hostile answers: ``collection_reply`` replaces the collection's information, and
    ``page_replies[n]`` the ``n``-th page of objects (1-based); ``endless`` makes every page
    say there is more (with the same objects again). ``on_page(n)`` runs before page ``n``
    is served (a test moves its fake clock there).
    """

    def __init__(self, objects: Sequence[Mapping[str, Any]], *, page_size: int = 2) -> None:
        super().__init__()
        self.objects = [dict(obj) for obj in objects]
        self.page_size = page_size
        self.collection_reply: Reply | None = None
        self.page_replies: dict[int, Reply] = {}
        self.endless = False
        self.on_page: Callable[[int], None] | None = None
        self.pages_served = 0
        self.collection_path = f"/taxii2/api1/collections/{COLLECTION_ID}/"
        self.objects_path = self.collection_path + "objects/"
        self.route(self.collection_path, self._collection)
        self.route(self.objects_path, self._objects)

    @property
    def collection_url(self) -> str:
        return self.url_for(self.collection_path)

    def _collection(self, request: RecordedRequest) -> Reply:
        if self.collection_reply is not None:
            return self.collection_reply
        info = {
            "id": COLLECTION_ID,
            "title": "Loopback intel",
            "can_read": True,
            "can_write": False,
            "media_types": ["application/stix+json;version=2.1"],
        }
        return Reply(json.dumps(info).encode(), TAXII_TYPE)

    def _objects(self, request: RecordedRequest) -> Reply:
        if "taxii+json" not in request.headers.get("accept", ""):
            return Reply(b'{"title": "not acceptable"}', TAXII_TYPE, status=406)
        self.pages_served += 1
        number = self.pages_served
        if self.on_page is not None:
            self.on_page(number)
        if number in self.page_replies:
            return self.page_replies[number]
        limit = int((request.query.get("limit") or [self.page_size])[0] or self.page_size)
        limit = min(max(limit, 1), self.page_size)
        start = int((request.query.get("next") or ["0"])[0] or 0)
        if self.endless:
            page = self.objects[:limit]
            more = True
        else:
            page = self.objects[start : start + limit]
            more = start + limit < len(self.objects)
        envelope: dict[str, Any] = {"more": more}
        if page:
            envelope["objects"] = page
        if more:
            envelope["next"] = str(start + limit)
        return Reply(json.dumps(envelope).encode(), TAXII_TYPE)

    def malformed_reply(self, path: str, normal: Reply) -> Reply:
        return Reply(b'{"more": false, "objects": [', normal.content_type)

    def empty_reply(self, path: str, normal: Reply) -> Reply:
        if path == self.objects_path:
            return Reply(b'{"more": false}', normal.content_type)
        return normal
