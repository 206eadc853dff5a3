"""A small stand-in for the Hugging Face Hub's HTTP API on 127.0.0.1, enough for ``DatasetDict.push_to_hub``.

It keeps repositories in memory: ``create`` (with its ``private`` flag), ``preupload`` (Parquet files go by LFS,
the rest inline), the LFS batch API with the ``basic`` transfer (so clients need ``HF_HUB_DISABLE_XET=1``), and
``commit`` (NDJSON), which stores every file's bytes. API requests without a bearer token are refused, as the Hub
does; LFS uploads go to a pre-signed address and carry none.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

COMMIT = "c" * 40


@dataclass
class FakeHub:
    base_url: str = ""
    private: dict[str, bool] = field(default_factory=dict)
    """repo id -> the private flag it was created with"""
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    """repo id -> path -> content, after the commits"""
    tokens: set[str] = field(default_factory=set)
    """bearer tokens the requests carried"""
    _blobs: dict[str, bytes] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 30, middlewares=[self._auth])
        routes = [
            web.post("/api/repos/create", self._create),
            web.post("/api/validate-yaml", self._validate_yaml),
            web.get("/api/datasets/{owner}/{name}", self._info),
            web.get("/api/datasets/{owner}/{name}/revision/{revision}", self._info),
            web.get("/api/datasets/{owner}/{name}/tree/{revision}", self._tree),
            web.get("/api/datasets/{owner}/{name}/tree/{revision}/{path:.*}", self._tree),
            web.post("/api/datasets/{owner}/{name}/preupload/{revision}", self._preupload),
            web.post("/datasets/{owner}/{name}.git/info/lfs/objects/batch", self._lfs_batch),
            web.put("/lfs-upload/{oid}", self._lfs_upload),
            web.post("/api/datasets/{owner}/{name}/commit/{revision}", self._commit),
        ]
        app.add_routes(routes)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        if request.path.startswith("/lfs-upload/"):
            return await handler(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not token:
            return web.json_response({"error": "Invalid credentials in Authorization header"}, status=401)
        self.tokens.add(token)
        return await handler(request)

    @staticmethod
    def _repo(request: web.Request) -> str:
        return f"{request.match_info['owner']}/{request.match_info['name']}"

    def _missing(self, repo: str) -> web.Response:
        return web.json_response(
            {"error": f"Repository not found: {repo}"}, status=404, headers={"X-Error-Code": "RepoNotFound"}
        )

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        repo = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
        self.private[repo] = body.get("visibility", "private" if body.get("private") else "public") == "private"
        self.files.setdefault(repo, {})
        return web.json_response({"url": f"{self.base_url}/datasets/{repo}", "name": repo})

    async def _validate_yaml(self, request: web.Request) -> web.Response:
        return web.json_response({"errors": [], "warnings": []})

    async def _info(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        if repo not in self.files:
            return self._missing(repo)
        siblings = [{"rfilename": path} for path in self.files[repo]]
        return web.json_response({"id": repo, "sha": COMMIT, "private": self.private[repo], "siblings": siblings})

    async def _tree(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        if repo not in self.files:
            return self._missing(repo)
        prefix = request.match_info.get("path", "").strip("/")
        entries = [
            {"type": "file", "path": path, "oid": COMMIT, "size": len(data)}
            for path, data in self.files[repo].items()
            if path.startswith(f"{prefix}/" if prefix else "")
        ]
        if prefix and not entries:
            return web.json_response(
                {"error": "Entry not found"}, status=404, headers={"X-Error-Code": "EntryNotFound"}
            )
        return web.json_response(entries)

    async def _preupload(self, request: web.Request) -> web.Response:
        body = await request.json()
        files = [
            {
                "path": f["path"],
                "uploadMode": "lfs" if f["path"].endswith(".parquet") else "regular",
                "shouldIgnore": False,
            }
            for f in body["files"]
        ]
        return web.json_response({"files": files})

    async def _lfs_batch(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        objects = [
            {
                "oid": o["oid"],
                "size": o["size"],
                "actions": {"upload": {"href": f"{self.base_url}/lfs-upload/{o['oid']}"}},
            }
            for o in body["objects"]
        ]
        return web.json_response({"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json")

    async def _lfs_upload(self, request: web.Request) -> web.Response:
        self._blobs[request.match_info["oid"]] = await request.read()
        return web.Response()

    async def _commit(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        if repo not in self.files:
            return self._missing(repo)
        for line in (await request.read()).decode().splitlines():
            entry = json.loads(line)
            value = entry["value"]
            if entry["key"] == "file":
                self.files[repo][value["path"]] = base64.b64decode(value["content"])
            elif entry["key"] == "lfsFile":
                self.files[repo][value["path"]] = self._blobs[value["oid"]]
            elif entry["key"] == "deletedFile":
                self.files[repo].pop(value["path"], None)
        return web.json_response(
            {"commitUrl": f"{self.base_url}/datasets/{repo}/commit/{COMMIT}", "commitOid": COMMIT, "success": True}
        )


@contextmanager
def running_fake_hub() -> Iterator[FakeHub]:
    """A ``FakeHub`` served from a background thread for the duration of the block."""
    hub = FakeHub()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(hub.app())
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    hub.base_url = f"http://127.0.0.1:{port}"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.run_until_complete(runner.cleanup())
        loop.close()
