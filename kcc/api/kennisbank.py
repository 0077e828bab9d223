"""Kennisbank API: search and suggestions for staff, article editing with versions for editors
and team leads, and the gaps the content team should write for.

Article text is Markdown and is only ever returned as a JSON string: nothing here renders it,
so an editor's `<script>` stays text wherever a client shows it as text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from contacts.models import ArticleVersion, KennisbankGap
from kcc.api.auth import (
    KENNISBANK_EDIT_ROLES,
    KENNISBANK_READ_ROLES,
    STAFF_ROLES,
    authenticate,
    require_role,
)
from kcc.api.contacts import load_contact
from kcc.api.views import iso
from kcc.services import Services
from kcc.web_keys import SERVICES
from kennisbank.article import VARIANT_FOR_CHANNEL, Article, ArticleError, parse
from kennisbank.store import VersionConflict

MAX_QUERY = 2_000
MAX_SOURCE = 200_000


class CreateArticle(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=MAX_SOURCE)


class UpdateArticle(CreateArticle):
    # The version the editor started from: anything else means someone else saved meanwhile.
    expected_version: int = Field(ge=1)


def _services(request: web.Request) -> Services:
    return request.app[SERVICES]


def _search_args(request: web.Request) -> tuple[str, str, str, int]:
    query = request.query.get("q", "").strip()
    if not query:
        raise web.HTTPBadRequest(text="q: the question to search for is required")
    if len(query) > MAX_QUERY:
        raise web.HTTPBadRequest(text=f"q: at most {MAX_QUERY} characters")
    channel = request.query.get("channel", "email")
    if channel not in VARIANT_FOR_CHANNEL:
        raise web.HTTPBadRequest(text=f"channel: one of {', '.join(VARIANT_FOR_CHANNEL)}")
    language = request.query.get("language", "nl")
    if language not in ("nl", "en"):
        language = "nl"  # any other language gets the Dutch text (the fallback)
    try:
        limit = int(request.query.get("limit", "5"))
    except ValueError:
        raise web.HTTPBadRequest(text="limit: a number from 1 to 20") from None
    if not 1 <= limit <= 20:
        raise web.HTTPBadRequest(text="limit: a number from 1 to 20")
    return query, channel, language, limit


async def search(request: web.Request) -> web.Response:
    services = _services(request)
    require_role(await authenticate(request, services), KENNISBANK_READ_ROLES)
    query, channel, language, limit = _search_args(request)
    kennisbank = services.kennisbank
    # At least 5 hits, so that the gap check can see the runner-up.
    hits = kennisbank.search(query, max(limit, 5))
    if kennisbank.note_gap(query, hits, "search", strict=True):
        await kennisbank.flush_gaps(services.clock.now())
    return web.json_response({"results": [hit.view(channel, language) for hit in hits[:limit]]})


async def suggestions(request: web.Request) -> web.Response:
    """Articles for a contact, from its subject and text, in its channel's variant."""
    services = _services(request)
    agent = await authenticate(request, services)
    require_role(agent, STAFF_ROLES)
    contact = await load_contact(request, services, agent)
    # The same text the router searched with, so suggestions and routing agree.
    text = services.planner.classifier.message_text(contact.body, contact.subject)
    hits = services.kennisbank.search(text, 5)
    channel = contact.reply_channel or contact.channel
    language = contact.language if contact.language in ("nl", "en") else "nl"
    return web.json_response({"suggestions": [hit.view(channel, language) for hit in hits]})


def _version_summary(row: ArticleVersion) -> dict[str, Any]:
    return {
        "version": row.version,
        "title": row.title,
        "origin": row.origin,
        "author": row.author,
        "created_at": iso(row.created_at),
    }


def _article_view(row: ArticleVersion) -> dict[str, Any]:
    """One version in full: its source and the text each channel gets."""
    view = {"slug": row.slug, **_version_summary(row), "source": row.source}
    try:
        article = parse(row.source)
    except ArticleError as error:
        return view | {"error": str(error)}
    variants = {
        language: {
            kind: article.variant(channel, language)
            for kind, channel in (("short", "whatsapp"), ("answer", "email"), ("phone", "phone"))
        }
        for language in article.languages
    }
    return view | {
        "skill": article.skill,
        "kind": article.kind,
        "products": list(article.products),
        "link": article.link,
        "variants": variants,
    }


async def list_articles(request: web.Request) -> web.Response:
    services = _services(request)
    require_role(await authenticate(request, services), KENNISBANK_READ_ROLES)
    rows = await services.kennisbank.db.current()
    return web.json_response(
        {"articles": [{"slug": row.slug, **_version_summary(row)} for row in rows]}
    )


async def get_article(request: web.Request) -> web.Response:
    services = _services(request)
    require_role(await authenticate(request, services), KENNISBANK_READ_ROLES)
    versions = await services.kennisbank.db.versions(request.match_info["slug"])
    if not versions:
        raise web.HTTPNotFound(text="no such article")
    return web.json_response(
        _article_view(versions[0]) | {"versions": [_version_summary(v) for v in versions]}
    )


async def get_version(request: web.Request) -> web.Response:
    """A version exactly as it was: what a resident was sent can be reconstructed."""
    services = _services(request)
    require_role(await authenticate(request, services), KENNISBANK_READ_ROLES)
    try:
        number = int(request.match_info["version"])
    except ValueError:
        raise web.HTTPNotFound(text="no such article version") from None
    row = await services.kennisbank.db.version(request.match_info["slug"], number)
    if row is None:
        raise web.HTTPNotFound(text="no such article version")
    return web.json_response(_article_view(row))


def _validated(services: Services, source: str, slug: str | None = None) -> Article:
    try:
        article = parse(source)
    except ArticleError as error:
        raise web.HTTPUnprocessableEntity(text=f"source: {error}") from None
    if slug is not None and article.slug != slug:
        raise web.HTTPUnprocessableEntity(
            text=f"source: slug {article.slug!r} differs from the article being edited"
        )
    products = services.kennisbank.products
    unknown = [p for p in article.products if p not in products]
    if unknown:
        raise web.HTTPUnprocessableEntity(text=f"products: unknown {', '.join(unknown)}")
    if article.skill not in set(products.values()):
        raise web.HTTPUnprocessableEntity(text=f"skill: {article.skill!r} is not a product skill")
    return article


async def _save(services: Services, article: Article, author: str, expected: int) -> ArticleVersion:
    try:
        row = await services.kennisbank.db.save(
            article, author, services.clock.now(), origin="api", expected_version=expected
        )
    except VersionConflict as conflict:
        raise web.HTTPConflict(
            text=f"the article changed meanwhile: it is at version {conflict.current}; "
            "reload it and apply your edit to that version"
        ) from None
    await services.kennisbank.refresh()
    return row


async def create_article(request: web.Request) -> web.Response:
    services = _services(request)
    editor = await authenticate(request, services)
    require_role(editor, KENNISBANK_EDIT_ROLES)
    body = CreateArticle.model_validate(await request.json())
    article = _validated(services, body.source)
    row = await _save(services, article, f"agent:{editor.id}", expected=0)
    return web.json_response(_article_view(row), status=201)


async def update_article(request: web.Request) -> web.Response:
    services = _services(request)
    editor = await authenticate(request, services)
    require_role(editor, KENNISBANK_EDIT_ROLES)
    slug = request.match_info["slug"]
    if await services.kennisbank.db.version(slug) is None:
        raise web.HTTPNotFound(text="no such article")
    body = UpdateArticle.model_validate(await request.json())
    article = _validated(services, body.source, slug)
    row = await _save(services, article, f"agent:{editor.id}", expected=body.expected_version)
    return web.json_response(_article_view(row))


def _gap_view(gap: KennisbankGap) -> dict[str, Any]:
    return {
        "query": gap.query,
        "count": gap.count,
        "source": gap.source,
        "best_slug": gap.best_slug,
        "best_score": round(gap.best_score, 3),
        "first_at": iso(gap.first_at),
        "last_at": iso(gap.last_at),
    }


async def list_gaps(request: web.Request) -> web.Response:
    services = _services(request)
    require_role(await authenticate(request, services), KENNISBANK_EDIT_ROLES)
    await services.kennisbank.flush_gaps(services.clock.now())
    return web.json_response({"gaps": [_gap_view(g) for g in await services.kennisbank.db.gaps()]})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/kennisbank/search", search)
    app.router.add_get("/api/kennisbank/articles", list_articles)
    app.router.add_post("/api/kennisbank/articles", create_article)
    app.router.add_get("/api/kennisbank/articles/{slug}", get_article)
    app.router.add_put("/api/kennisbank/articles/{slug}", update_article)
    app.router.add_get("/api/kennisbank/articles/{slug}/versions/{version}", get_version)
    app.router.add_get("/api/kennisbank/gaps", list_gaps)
    app.router.add_get("/api/contacts/{reference}/suggestions", suggestions)


# -- OpenAPI (merged into kcc/api/openapi.py's document) -------------------------------------

OPENAPI_BODIES: dict[str, type[BaseModel]] = {
    "CreateArticle": CreateArticle,
    "UpdateArticle": UpdateArticle,
}


def openapi_paths(op: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """The kennisbank's paths; `op` builds an operation the way openapi.py does."""

    def query(name: str, description: str, required: bool = False, **schema: Any) -> Any:
        return {
            "name": name,
            "in": "query",
            "required": required,
            "description": description,
            "schema": {"type": "string", **schema},
        }

    def path(name: str) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}

    search_params = [
        query("q", "the question", required=True, maxLength=MAX_QUERY),
        query(
            "channel",
            "whose variant: whatsapp|telegram short, email|webform|post full, phone|counter script",
            enum=list(VARIANT_FOR_CHANNEL),
        ),
        query("language", "nl or en (others get Dutch)"),
        query("limit", "1-20, default 5"),
    ]
    slug = [path("slug")]
    return {
        "/api/kennisbank/search": {
            "get": op(
                'Ranked articles: {"results":[{"slug","title","version","score","skill",'
                '"kind","text","link"}]}, text = the channel\'s variant (staff, editor)',
                params=search_params,
            )
        },
        "/api/contacts/{reference}/suggestions": {
            "get": op(
                'Articles for a contact\'s text, in its channel and language: {"suggestions":'
                "[...same shape as search...]}",
                params=[path("reference")],
            )
        },
        "/api/kennisbank/articles": {
            "get": op("Current version of every article"),
            "post": op("Create an article (editor, teamlead, admin)", "CreateArticle", ok="201"),
        },
        "/api/kennisbank/articles/{slug}": {
            "get": op("The current version, its variants and the list of versions", params=slug),
            "put": op(
                "A new version; 409 when expected_version is not the current one",
                "UpdateArticle",
                params=slug,
            ),
        },
        "/api/kennisbank/articles/{slug}/versions/{version}": {
            "get": op("One version exactly as it was", params=[*slug, path("version")])
        },
        "/api/kennisbank/gaps": {
            "get": op("Questions without a good answer, anonymised, with counts (editor, lead)")
        },
    }
