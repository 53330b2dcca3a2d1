"""Schema Registries over HTTP for the tests, on a free loopback port in a thread.

No real Confluent Schema Registry runs on the project's machines (no Docker; Apicurio has no
runnable jar on Maven Central), so ``MockRegistry`` serves confluent-kafka's own in-memory
registry (``SchemaRegistryClient.new_client({"url": "mock://"})``) through the few REST
calls the job and confluent-kafka's AvroDeserializer make:

    PUT  /config/{subject}              {"compatibility": ...}   (kept here: the mock ignores it)
    POST /subjects/{subject}/versions   {"schema": ...}          -> {"id": ...}
    GET  /schemas/ids/{id}[?subject=..]                          -> {"schema": ...}
    GET  /associations/resources/{namespace}/{topic}             -> [] (asked by AvroDeserializer)

Anything else answers 404 and is kept in ``unhandled``, so a test sees a call it does not
serve. ``ScriptedRegistry`` answers what a test scripts instead (409, 401, ...).
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Call:
    method: str
    path: str            # without the query
    query: dict
    headers: dict
    body: object         # parsed JSON, or None


Answer = tuple[int, object]   # (HTTP status, JSON body)


class RegistryServer:
    """An HTTP server whose every request goes to ``answer(call)``; ``calls`` keeps them all."""

    def __init__(self, answer: Callable[[Call], Answer], tls: tuple[str, str] | None = None):
        """``tls``: (certificate file, key file) to serve https instead of http."""
        self.answer, self.calls = answer, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                split = urllib.parse.urlsplit(self.path)
                call = Call(self.command, urllib.parse.unquote(split.path), dict(urllib.parse.parse_qsl(split.query)),
                            dict(self.headers), json.loads(raw) if raw else None)
                server.calls.append(call)
                status, body = server.answer(call)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args):   # quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.url = f"https://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), name="registry-http", daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class MockRegistry(RegistryServer):
    """confluent-kafka's in-memory Schema Registry (``mock://``) over HTTP; with
    ``user_info`` ("user:password") every call without those basic-auth credentials gets 401."""

    def __init__(self, user_info: str | None = None):
        from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        self.client = SchemaRegistryClient.new_client({"url": "mock://"})
        self.compatibility: dict[str, str] = {}
        self.unhandled: list[Call] = []

        expected = "Basic " + base64.b64encode(user_info.encode()).decode() if user_info else None

        def answer(call: Call) -> Answer:
            if expected and call.headers.get("Authorization") != expected:
                return 401, {"error_code": 401, "message": "Unauthorized"}
            parts = call.path.strip("/").split("/")
            try:
                if call.method == "PUT" and parts[0] == "config" and len(parts) == 2:
                    self.compatibility[parts[1]] = call.body["compatibility"]
                    return 200, {"compatibility": call.body["compatibility"]}
                if call.method == "POST" and parts[0] == "subjects" and parts[2:] == ["versions"]:
                    schema = Schema(call.body["schema"], call.body.get("schemaType", "AVRO"))
                    return 200, {"id": self.client.register_schema(parts[1], schema)}
                if call.method == "GET" and parts[:2] == ["associations", "resources"] and len(parts) == 4:
                    # confluent-kafka >= 2.13 asks which subject a topic is associated with first
                    # (none here: it falls back to TopicNameStrategy)
                    found = self.client.get_associations_by_resource_name(
                        parts[3], parts[2], call.query.get("resourceType"),
                        [call.query["associationType"]] if "associationType" in call.query else None)
                    return 200, [a.to_dict() for a in found]
                if call.method == "GET" and parts[:2] == ["schemas", "ids"] and len(parts) == 3:
                    schema = self.client.get_schema(int(parts[2]))
                    return 200, {"schema": schema.schema_str, **({"schemaType": schema.schema_type}
                                                                  if schema.schema_type != "AVRO" else {})}
            except SchemaRegistryError as exc:
                return exc.http_status_code, {"error_code": exc.error_code, "message": exc.error_message}
            self.unhandled.append(call)
            return 404, {"error_code": 404, "message": f"not served by the test's adapter: {call.method} {call.path}"}

        super().__init__(answer)


class ScriptedRegistry(RegistryServer):
    """Answers from ``script``: (method, path) -> Answer, or a function of the call; 404 else."""

    def __init__(self, script: dict, tls: tuple[str, str] | None = None):
        def answer(call: Call) -> Answer:
            found = script.get((call.method, call.path))
            if found is None:
                return 404, {"error_code": 40401, "message": f"Subject not found ({call.path})"}
            return found(call) if callable(found) else found

        super().__init__(answer, tls)
