"""The web app's community half: the album's groups to name and merge (`serve --groups`),
the unknown faces of uploads as a queue to name, removing a person, and face thumbnails.
Each route is one `Community` call; its refusals come back as a 400 with the sentence that
says why."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from facessl.product.community import Community


class NameIn(BaseModel):
    name: str = Field(description="the person's name")


class MergeIn(BaseModel):
    into: int = Field(description="the group that stays")
    other: int = Field(description="the group whose faces join it")


class DoneOut(BaseModel):
    message: str


class GroupOut(BaseModel):
    id: int
    name: str | None
    size: int
    faces: list[int] = Field(description="face ids to show, the most typical first")


class AlbumOut(BaseModel):
    groups: list[GroupOut]
    ungrouped: int
    enrolled: list[str]
    waiting: str | None = Field(description="why a named group is not enrolled yet")


class UnknownOut(BaseModel):
    id: int
    file: str
    nearest: str
    similarity: float


class QueueOut(BaseModel):
    faces: list[UnknownOut]


PNG = {200: {"content": {"image/png": {}}, "description": "a face crop"}}


def community_routes(community: Community) -> APIRouter:
    router = APIRouter()

    @router.get("/album", response_model=AlbumOut)
    def album() -> dict:
        return community.album()

    @router.post("/groups/{group_id}/name", response_model=DoneOut)
    def name_group(group_id: int, body: NameIn) -> dict:
        return {"message": community.name_group(group_id, body.name)}

    @router.post("/groups/merge", response_model=DoneOut)
    def merge(body: MergeIn) -> dict:
        return {"message": community.merge(body.into, body.other)}

    @router.delete("/people/{name}", response_model=DoneOut)
    def remove_person(name: str) -> dict:
        return {"message": community.remove_person(name)}

    @router.get("/faces/{face_id}.png", response_class=Response, responses=PNG)
    def face(face_id: int) -> Response:
        return Response(community.face_png(face_id), media_type="image/png")

    @router.get("/unknown", response_model=QueueOut)
    def unknown() -> dict:
        return {"faces": [{"id": f.id, "file": f.file, "nearest": f.nearest,
                           "similarity": f.similarity} for f in community.queued()]}

    @router.get("/unknown/{queue_id}.png", response_class=Response, responses=PNG)
    def unknown_face(queue_id: int) -> Response:
        return Response(community.unknown_png(queue_id), media_type="image/png")

    @router.post("/unknown/{queue_id}/name", response_model=DoneOut)
    def name_unknown(queue_id: int, body: NameIn) -> dict:
        return {"message": community.name_unknown(queue_id, body.name)}

    return router
