"""The job's side of a Confluent-compatible Schema Registry (its REST API, v1), for output
topics in the Confluent wire format (docs/consumers.md). No Flink here: the driver registers
before it builds the job, and the tools read schemas back by id.

At start, for each such topic (``JobConfig.confluent_topics``): compatibility BACKWARD on
subject ``<topic>-value`` (TopicNameStrategy, what Confluent's serializers, Connect, ksqlDB
and kcat look up), then the record's current schema registered there (``codec``'s
``SchemaRegistry.text``), which gives its id; the ids go into the job's Publish operators.
Registering a schema the subject already has returns its id and changes nothing, so every
restart does the same. A registry that cannot be reached, refuses the credentials or the
schema (409: incompatible with the subject's versions) stops the start: the job would
otherwise write records no consumer can read.

Plain ``urllib``: four REST calls need no client library, and the job's environment (shipped
to clusters, ``deploy/package.sh``) stays as it is. Basic-auth credentials come in the URL's
user info (as Confluent's clients and kcat take them); they are sent as an Authorization
header to the URL without them and never appear in a message or log line.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Mapping

from flink_jobs import contracts
from flink_jobs.codec import (CONFLUENT, CONFLUENT_MAGIC, SINGLE_OBJECT, AvroCodec, AvroError, bundled_registry,
                              confluent_unframe)
from flink_jobs.sensitive import redact_url

if TYPE_CHECKING:
    from flink_jobs.config import JobConfig

log = logging.getLogger("reco.schema_registry")
COMPATIBILITY = "BACKWARD"
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPT = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; qs=0.9, application/json; qs=0.5"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would send the credentials to wherever it points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def value_subject(topic: str) -> str:
    """The subject of a topic's record values under TopicNameStrategy."""
    return f"{topic}-value"


class RegistryError(RuntimeError):
    """The Schema Registry could not be used; the message names the registry (password hidden)
    and what was asked. ``status``: the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None, error_code: int | None = None):
        super().__init__(message)
        self.status, self.error_code = status, error_code


class RegistryClient:
    """The few REST calls of a Confluent-compatible Schema Registry the project makes."""

    def __init__(self, url: str, ca_file: str = "", timeout_s: float = 10.0):
        self.shown = redact_url(url)   # for messages
        parts = urllib.parse.urlsplit(url)
        parts.port   # ValueError for a port that is no number
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RegistryError(f"{self.shown!r} is not an http:// or https:// URL")
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        self.base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.headers = {"Accept": ACCEPT}
        if parts.username is not None or parts.password is not None:
            user_info = f"{urllib.parse.unquote(parts.username or '')}:{urllib.parse.unquote(parts.password or '')}"
            self.headers["Authorization"] = "Basic " + base64.b64encode(user_info.encode()).decode("ascii")
        context = None
        if parts.scheme == "https":
            try:
                context = ssl.create_default_context(cafile=ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise RegistryError(f"cannot use the CA file {ca_file} (schema_registry_tls_ca_file): "
                                    f"{getattr(exc, 'strerror', None) or exc}") from None
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirects)
        self.timeout_s = timeout_s

    def __repr__(self) -> str:   # never the Authorization header
        return f"RegistryClient({self.shown!r})"

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = CONTENT_TYPE
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(request, timeout=self.timeout_s) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, code, message = exc.code, None, exc.reason
            try:   # the registry's own error: {"error_code": 40901, "message": "..."}
                answer = json.loads(exc.read())
                code, message = answer.get("error_code"), answer.get("message") or message
            except (ValueError, AttributeError, OSError):
                pass
            raise RegistryError(f"HTTP {status}{f' (error {code})' if code else ''}: {message}", status, code) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:   # refused, no host, TLS, timeout
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise RegistryError(f"unreachable: {reason}") from None
        try:
            return json.loads(raw or b"null")
        except ValueError:   # no registry at this URL
            raise RegistryError(f"HTTP {status}, but not JSON ({raw[:60]!r}): is this a Schema Registry?",
                                status) from None

    @staticmethod
    def _subject_path(subject: str) -> str:
        return urllib.parse.quote(subject, safe="")

    def set_compatibility(self, subject: str, level: str = COMPATIBILITY) -> None:
        """PUT /config/{subject}: the compatibility the registry checks new versions against."""
        self._call("PUT", f"/config/{self._subject_path(subject)}", {"compatibility": level})

    def register(self, subject: str, schema_text: str) -> int:
        """POST /subjects/{subject}/versions: the schema's id (the same one when already there)."""
        answer = self._call("POST", f"/subjects/{self._subject_path(subject)}/versions", {"schema": schema_text})
        schema_id = answer.get("id") if isinstance(answer, dict) else None
        if isinstance(schema_id, bool) or not isinstance(schema_id, int) or not 0 <= schema_id < 2**31:
            raise RegistryError(f"answered a registration without a schema id (got {answer!r:.200})")
        return schema_id

    def schema(self, schema_id: int) -> str:
        """GET /schemas/ids/{id}: the schema's text (Avro only: the project writes no other)."""
        answer = self._call("GET", f"/schemas/ids/{int(schema_id)}")
        if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
            raise RegistryError(f"answered schema id {schema_id} without a schema")
        if answer.get("schemaType", "AVRO") != "AVRO":
            raise RegistryError(f"schema id {schema_id} is a {answer['schemaType']} schema, not Avro")
        if answer.get("references"):
            raise RegistryError(f"schema id {schema_id} uses schema references, which the project's decoder "
                                f"does not follow (its own schemas are registered with named types inlined)")
        return answer["schema"]


def register_outputs(cfg: JobConfig, client: RegistryClient | None = None) -> dict[str, int]:
    """For every output topic in the Confluent wire format: compatibility BACKWARD on its
    subject, its record's schema registered; returns topic -> schema id ({} when none is).
    RegistryError naming the subject and the settings to look at when the registry is
    unreachable, refuses the credentials, or refuses the schema."""
    topics = cfg.confluent_topics()
    if not topics:
        return {}
    client = client or RegistryClient(cfg.schema_registry_url, cfg.schema_registry_tls_ca_file)
    registry = bundled_registry()
    ids = {}
    for topic, setting in topics.items():
        subject, record = value_subject(topic), contracts.TOPIC_RECORDS[topic]
        step = f"compatibility {COMPATIBILITY} on subject {subject}"
        try:
            client.set_compatibility(subject)
            step = f"schema {record} under subject {subject}"
            ids[topic] = client.register(subject, registry.text(record))
        except RegistryError as exc:
            raise RegistryError(_explain(exc, client.shown, step, subject, record, setting),
                                exc.status, exc.error_code) from None
        log.info("Schema Registry %s: %s is schema id %d under subject %s (compatibility %s); %s is written in the "
                 "Confluent wire format", client.shown, record, ids[topic], subject, COMPATIBILITY, topic)
    return ids


def _explain(exc: RegistryError, shown_url: str, step: str, subject: str, record: str, setting: str) -> str:
    """Why the start stops, and the settings to look at."""
    where = f"Schema Registry at {shown_url} (schema_registry_url)"
    if exc.status is None:
        hint = ("check schema_registry_url, that the registry runs and this machine reaches it, and for https "
                "schema_registry_tls_ca_file")
        return f"cannot set {step}: the {where} is {exc}; {hint}"
    if exc.status in (401, 403):
        return (f"the {where} refused {'the credentials' if exc.status == 401 else 'the user'} for {step} ({exc}): "
                f"check the user and password in schema_registry_url (RECO_SCHEMA_REGISTRY_URL or "
                f"schema_registry_url_file) and that the user may write subject {subject} and its config")
    if exc.status == 409:
        return (f"the {where} refuses {step} as incompatible with the versions the subject already has ({exc}); "
                f"under {COMPATIBILITY} a consumer reading with the new schema must read every earlier version (a "
                f"field added needs a default). Give the change a new topic (v2), or write {setting} = "
                f"\"{SINGLE_OBJECT}\" meanwhile")
    if exc.status == 422:
        return f"the {where} finds {step} invalid ({exc}); the schema in schemas/ or the registry is at fault"
    return f"the {where} failed {step} ({exc}); {setting} = \"{CONFLUENT}\" needs it"


class FramedDecoder:
    """Decodes a topic's values in either wire format: single-object with the bundled schemas,
    Confluent with the writer schema fetched by id from ``client`` (once per id). Raises
    AvroError saying which format it found when it cannot decode."""

    def __init__(self, codec: AvroCodec, client: RegistryClient | None = None):
        self.codec, self.client = codec, client
        self.writers: dict[int, str] = {}

    def decode(self, data: bytes) -> dict[str, Any]:
        if not isinstance(data, (bytes, bytearray, memoryview)) or data[:1] != CONFLUENT_MAGIC:
            return self.codec.decode(data)   # its errors name the magic (or the type: a tombstone) it found
        schema_id, _ = confluent_unframe(data)
        if self.client is None:
            raise AvroError(f"Confluent wire format (schema id {schema_id}), not single-object encoding: a Schema "
                            f"Registry is needed to decode it")
        if schema_id not in self.writers:
            try:
                self.writers[schema_id] = self.client.schema(schema_id)
            except RegistryError as exc:
                raise AvroError(f"Confluent wire format, schema id {schema_id}: the Schema Registry at "
                                f"{self.client.shown} {exc}") from None
        return self.codec.decode_confluent(data, self.writers[schema_id])
