"""A small real HTTP server on 127.0.0.1 speaking the few Hub endpoints huggingface_hub uses to commit.

create_repo, create_branch, validate-yaml, preupload, the LFS batch API (basic transfer: PUT
then verify) and the ndjson commit endpoint. Commits are kept in memory as {path: bytes} per
commit, so a test can check what one commit held and write it out for from_pretrained.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Repo:
    branches: dict[str, str | None] = field(default_factory=lambda: {"main": None})  # branch -> head commit
    private: bool | None = None  # what create_repo asked for


@dataclass
class FakeHub:
    repos: dict[str, Repo] = field(default_factory=dict)
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit oid -> files
    lfs: dict[str, bytes] = field(default_factory=dict)  # sha256 -> bytes
    requests: list[tuple[str, str]] = field(default_factory=list)
    tokens_seen: set[str] = field(default_factory=set)
    url: str = ""

    def files_at(self, repo_id: str, branch: str = "main") -> dict[str, bytes]:
        head = self.repos[repo_id].branches[branch]
        return dict(self.commits[head]) if head else {}

    def write_out(self, repo_id: str, dest: Path, branch: str = "main") -> Path:
        for rel, data in self.files_at(repo_id, branch).items():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(data)
        return dest


def serve() -> tuple[FakeHub, ThreadingHTTPServer]:
    hub = FakeHub()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _send(self, status: int, obj=None) -> None:
            data = b"" if obj is None else json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self):
            hub.requests.append(("PUT", self.path))
            m = re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", self.path)
            data = self._body()
            if not m or hashlib.sha256(data).hexdigest() != m.group(1):
                return self._send(400, {"error": "bad upload"})
            hub.lfs[m.group(1)] = data
            self._send(200, {})

        def do_POST(self):
            hub.requests.append(("POST", self.path.split("?")[0]))
            auth = self.headers.get("authorization", "")
            if auth:
                hub.tokens_seen.add(auth)
            path = self.path.split("?")[0]
            body = self._body()
            if path == "/api/repos/create":
                req = json.loads(body)
                repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
                if repo_id in hub.repos:
                    return self._send(409, {"error": "You already created this model repo",
                                            "url": f"{hub.url}/{repo_id}"})
                seen = req.get("visibility")  # huggingface_hub >= 1.x; older ones send "private"
                hub.repos[repo_id] = Repo(private=(seen == "private") if seen is not None else req.get("private"))
                return self._send(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})
            if path == "/api/validate-yaml":
                return self._send(200, {"errors": [], "warnings": []})
            if path == "/lfs-verify":
                req = json.loads(body)
                ok = req["oid"] in hub.lfs and len(hub.lfs[req["oid"]]) == req["size"]
                return self._send(200 if ok else 404, {})
            if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/branch/([^/]+)", path):
                repo = hub.repos.get(m.group(1))
                if repo is None:
                    return self._send(404, {"error": "Repository not found"})
                if m.group(2) in repo.branches:
                    return self._send(409, {"error": "Reference already exists"})
                repo.branches[m.group(2)] = repo.branches["main"]
                return self._send(200, {})
            if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/preupload/([^/]+)", path):
                if m.group(1) not in hub.repos:
                    return self._send(404, {"error": "Repository not found"})
                files = json.loads(body)["files"]
                return self._send(200, {"files": [
                    {"path": f["path"], "shouldIgnore": False,
                     "uploadMode": "lfs" if f["path"].endswith(".safetensors") else "regular"} for f in files]})
            if m := re.fullmatch(r"/([^/]+/[^/]+)\.git/info/lfs/objects/batch", path):
                req = json.loads(body)
                objs = []
                for o in req["objects"]:
                    obj = {"oid": o["oid"], "size": o["size"], "authenticated": True}
                    if o["oid"] not in hub.lfs:  # no "actions": the server already has the object
                        obj["actions"] = {"upload": {"href": f"{hub.url}/lfs-upload/{o['oid']}"},
                                          "verify": {"href": f"{hub.url}/lfs-verify"}}
                    objs.append(obj)
                return self._send(200, {"transfer": "basic", "objects": objs})
            if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/commit/([^/]+)", path):
                return self._commit(m.group(1), m.group(2), body)
            self._send(404, {"error": f"no route {path}"})

        def _commit(self, repo_id: str, branch: str, body: bytes):
            repo = hub.repos.get(repo_id)
            if repo is None or branch not in repo.branches:
                return self._send(404, {"error": "Repository or revision not found"})
            files = dict(hub.commits[repo.branches[branch]]) if repo.branches[branch] else {}
            for line in body.splitlines():
                item = json.loads(line)
                v = item["value"]
                if item["key"] == "file":
                    files[v["path"]] = base64.b64decode(v["content"])
                elif item["key"] == "lfsFile":
                    if v["oid"] not in hub.lfs:
                        return self._send(422, {"error": f"LFS object {v['oid']} was not uploaded"})
                    files[v["path"]] = hub.lfs[v["oid"]]
                elif item["key"] == "deletedFile":
                    files.pop(v["path"], None)
            oid = hashlib.sha1(json.dumps(sorted((k, hashlib.sha256(d).hexdigest()) for k, d in files.items()))
                               .encode() + (repo.branches[branch] or "").encode()).hexdigest()
            hub.commits[oid] = files
            repo.branches[branch] = oid
            self._send(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{oid}", "commitOid": oid,
                             "pullRequestUrl": None})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return hub, server
