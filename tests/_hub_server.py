"""A minimal Hugging Face Hub API on 127.0.0.1 for upload tests: no request leaves the machine.

Serves just enough for ``HfApi.create_repo`` / ``create_branch`` / ``upload_folder`` (files inlined as regular,
base64 uploads), and serves what was committed back (``HEAD`` / ``GET /<repo>/resolve/<revision>/<path>``, so
``file_exists`` and ``hf_hub_download`` work against it); records every request::

    with LocalHub() as hub:
        push_checkpoint(..., endpoint=hub.endpoint)      # or HF_ENDPOINT=hub.endpoint in a subprocess
    hub.requests                # [Request(method, path, authorization, body)], in arrival order
    hub.created_repo()          # the JSON body of POST /api/repos/create
    hub.committed_files('org/name', 'v1')   # {path in repo: bytes} of the one commit to that branch
"""
import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, NamedTuple, Optional

__all__ = ['LocalHub', 'Request']

COMMIT_OID = 'a' * 40


class Request(NamedTuple):
    method: str
    path: str
    authorization: Optional[str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _record(self, method):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        self.server.requests.append(Request(method, self.path, self.headers.get('Authorization'), body))
        return body

    def _reply(self, body, status=200):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _committed(self):
        """The committed bytes ``/<owner>/<name>/resolve/<revision>/<path>`` names, None if none."""
        parts = self.path.split('?')[0].lstrip('/').split('/')
        if len(parts) < 5 or parts[2] != 'resolve':
            return None
        return self.server.files.get(('/'.join(parts[:2]), parts[3]), {}).get('/'.join(parts[4:]))

    def _file_headers(self, data):
        self.send_header('X-Repo-Commit', COMMIT_OID)
        self.send_header('ETag', '"' + hashlib.sha256(data).hexdigest() + '"')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()

    def do_HEAD(self):
        self._record('HEAD')
        data = self._committed()
        if data is None:
            self.send_response(404)
            self.send_header('X-Error-Code', 'EntryNotFound')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        self.send_response(200)
        self._file_headers(data)

    def do_GET(self):  # committed files; anything else is not served: recorded, answered 404
        self._record('GET')
        data = self._committed()
        if data is None:
            self._reply({'error': f'not served by the local Hub: {self.path}'}, status=404)
            return
        self.send_response(200)
        self._file_headers(data)
        self.wfile.write(data)

    def do_POST(self):
        body = self._record('POST')
        base = f'http://127.0.0.1:{self.server.server_port}'
        if self.path == '/api/repos/create':
            req = json.loads(body)
            self._reply({'url': f"{base}/{req['organization']}/{req['name']}"})
        elif '/preupload/' in self.path:
            files = json.loads(body)['files']
            self._reply({'files': [{'path': f['path'], 'uploadMode': 'regular', 'shouldIgnore': False, 'oid': None}
                                   for f in files]})
        elif '/commit/' in self.path:
            repo_id, revision = self.path[len('/api/models/'):].split('/commit/')
            lines = [json.loads(line) for line in body.decode().splitlines()]
            self.server.files.setdefault((repo_id, revision), {}).update(
                {v['value']['path']: base64.b64decode(v['value']['content']) for v in lines if v['key'] == 'file'})
            self._reply({'commitUrl': f'{base}/{repo_id}/commit/{COMMIT_OID}', 'commitOid': COMMIT_OID})
        else:  # /api/validate-yaml, /api/models/<repo>/branch/<name>
            self._reply({})


class LocalHub:
    """The Hub API above on a free loopback port, served from a daemon thread while the context is open."""

    def __init__(self):
        self._server = ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
        self._server.requests = []
        self._server.files = {}  # (repo_id, revision): {path: bytes} committed
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f'http://127.0.0.1:{self._server.server_port}'

    @property
    def requests(self):
        return self._server.requests

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def created_repo(self) -> dict:
        bodies = [r.body for r in self.requests if r.method == 'POST' and r.path == '/api/repos/create']
        assert len(bodies) == 1, f'expected one repo creation, got {len(bodies)}'
        return json.loads(bodies[0])

    def commit(self, repo_id: str, revision: str = 'main'):
        """(header value, {path: bytes}) of the single commit to ``repo_id`` at ``revision``."""
        bodies = [r.body for r in self.requests if r.path == f'/api/models/{repo_id}/commit/{revision}']
        assert len(bodies) == 1, f'expected one commit to {repo_id}@{revision}, got {len(bodies)}'
        lines = [json.loads(line) for line in bodies[0].decode().splitlines()]
        assert lines[0]['key'] == 'header'
        files = {v['value']['path']: base64.b64decode(v['value']['content']) for v in lines[1:] if v['key'] == 'file'}
        return lines[0]['value'], files

    def committed_files(self, repo_id: str, revision: str = 'main') -> Dict[str, bytes]:
        return self.commit(repo_id, revision)[1]
