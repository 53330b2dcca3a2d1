"""The JSON Schemas and TypeScript types of the Redis documents (reco_tools/doc_schemas.py):
the committed files are what the generator makes; real documents, built by
flink_jobs.documents from what the job's own steps compute on the MovieLens sample
(lab.inprocess), validate and carry exactly the listed fields; broken ones do not validate.
With the ``tsc`` deploy/setup.sh installs, the same documents type-check against reco.ts and
a broken one does not."""

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from flink_jobs import contracts, documents
from flink_jobs.codec import AvroCodec
from flink_jobs.config import JobConfig
from lab.inprocess import run
from reco_tools import doc_schemas, movielens
from schemas import SCHEMA_DIR
from udfs.records import Event, ItemInfo

ROOT = Path(__file__).resolve().parents[2]
KINDS = {kind.name: kind for kind in documents.DOCUMENTS}
# Document kind -> (the in-process output it is built from, its builder in flink_jobs.documents)
BUILT_FROM = {"user": ("recommendations", documents.user_document),
              "similar": ("item_neighbors", documents.similar_document),
              "trending": ("trending", documents.trending_document)}


def schema_of(kind: str) -> dict:
    return json.loads((SCHEMA_DIR / doc_schemas.json_path(KINDS[kind])).read_text())


def errors(kind: str, doc) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in Draft202012Validator(schema_of(kind)).iter_errors(doc)]


@pytest.fixture(scope="module")
def real_documents() -> dict[str, list[tuple[str, dict]]]:
    """(key, document) by kind, from the first 400 ratings of the sample through the job's steps."""
    events = movielens.load_rating_events()[:400]
    catalog = [ItemInfo.of(r) for r in movielens.item_records(movielens.load_movies(), updated_at=0)]
    out = run(map(Event.of, events), catalog, JobConfig())
    return {kind: [build(r) for r in out[output]] for kind, (output, build) in BUILT_FROM.items()}


# --- the generated files -------------------------------------------------------------

def test_the_committed_files_are_up_to_date():
    problems = doc_schemas.differences()
    assert problems == [], "\n".join(problems) + "\nrun: .venv/bin/python -m reco_tools.doc_schemas"


def test_check_names_a_file_that_differs_is_missing_or_is_left_over(tmp_path):
    doc_schemas.write(tmp_path)
    assert doc_schemas.differences(tmp_path) == []
    user = tmp_path / "json" / "user.schema.json"
    user.write_text(user.read_text().replace('"integer"', '"string"', 1))
    (tmp_path / "typescript" / "reco.ts").unlink()
    (tmp_path / "json" / "gone.schema.json").write_text("{}")
    problems = doc_schemas.differences(tmp_path)
    assert len(problems) == 3, problems
    assert "user.schema.json: differs" in problems[0] and '-      "type": "string"' in problems[0]
    assert "reco.ts: missing" in problems[1]
    assert "gone.schema.json: no document kind" in problems[2]
    doc_schemas.write(tmp_path)     # writing repairs all three
    assert doc_schemas.differences(tmp_path) == []


def test_the_command_checks_the_tree_and_imports_no_flink_numpy_or_kafka():
    probe = ("import sys, runpy; sys.argv = ['doc_schemas', '--check']\n"
             "try:\n    runpy.run_module('reco_tools.doc_schemas', run_name='__main__')\n"
             "except SystemExit as e:\n    code = e.code\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'pyflink', 'numpy', 'kafka'}), code)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.splitlines()[-1] == "[] 0", out.stdout + out.stderr


def test_every_kind_has_its_key_record_and_schema():
    assert set(KINDS) == set(BUILT_FROM) == {"user", "similar", "trending"}
    assert KINDS["user"].key.format(user_id=42) == contracts.user_recommendations_key(42)
    assert KINDS["similar"].key.format(item_id=7) == contracts.item_similar_key(7)
    assert KINDS["trending"].key == contracts.TRENDING_KEY
    for kind in KINDS:
        schema = schema_of(kind)
        Draft202012Validator.check_schema(schema)
        assert schema["title"] == doc_schemas.type_name(KINDS[kind]) and schema["additionalProperties"] is True


# --- real documents ------------------------------------------------------------------

def test_real_documents_of_every_kind_validate(real_documents):
    for kind, docs in real_documents.items():
        assert len(docs) >= 1, kind
        bad = [f"{key}: {e}" for key, doc in docs for e in errors(kind, doc)]
        assert bad == [], bad[:5]
        assert all(key == KINDS[kind].key.format(**doc) for key, doc in docs), kind


# What Python values each JSON type takes. Stricter than JSON Schema, where 1.0 is an integer:
# a count the job keeps as a float (written 1.0) must not be described as a long, though every
# value would pass. A number may be an int (an empty window's item_count is 0, written 0).
PYTHON_TYPES = {"integer": int, "number": (int, float), "string": str}


def _exactly(schema: dict, defs: dict, value, where: str) -> None:
    """``value`` has exactly the fields ``schema`` lists (additionalProperties would hide one
    the schema forgot), at every level, each of its type."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[1]]
    kind = schema["type"]
    if kind == "object":
        assert isinstance(value, dict) and set(value) == set(schema["properties"]), where
        for name, sub in schema["properties"].items():
            _exactly(sub, defs, value[name], f"{where} {name}")
    elif kind == "array":
        assert isinstance(value, list), where
        for i, entry in enumerate(value):
            _exactly(schema["items"], defs, entry, f"{where}[{i}]")
    else:
        assert isinstance(value, PYTHON_TYPES[kind]) and not isinstance(value, bool), f"{where}: {value!r}"


def test_real_documents_carry_exactly_the_listed_fields_of_their_types(real_documents):
    for kind, docs in real_documents.items():
        schema = schema_of(kind)
        for key, doc in docs:
            _exactly(schema, schema.get("$defs", {}), doc, key)


def test_each_document_is_its_avro_record_plus_the_added_fields(real_documents):
    # strict encoding: a field missing from the record or unknown to it fails
    for kind, docs in real_documents.items():
        codec, added = AvroCodec(KINDS[kind].record), {f.name for f in KINDS[kind].added}
        for key, doc in docs[:50]:
            codec.encode({k: v for k, v in doc.items() if k not in added})


def _broken(doc: dict, path: tuple, value=None, delete=False) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = path
    target = doc
    for p in parents:
        target = target[p]
    if delete:
        del target[last]
    else:
        target[last] = value
    return doc


@pytest.mark.parametrize("kind, path, value, delete", [
    ("user", ("user_id",), None, True),                 # a required field missing
    ("user", ("user_id",), "538", False),               # an id as a string
    ("user", ("items", 0, "item_id"), "616", False),
    ("user", ("items", 0, "reason"), None, True),
    ("user", ("version",), 1.5, False),                 # not an integer
    ("user", ("user_id",), 2**53, False),               # no longer exact as a JavaScript number
    ("similar", ("version",), None, True),              # an added field, required
    ("similar", ("neighbors", 0, "score"), "0.5", False),
    ("similar", ("neighbors",), {"item_id": 1}, False),
    ("trending", ("items",), None, True),
    ("trending", ("items", 0, "count"), None, False),
    ("trending", ("format",), "1", False),              # optional, but typed when present
])
def test_broken_documents_do_not_validate(real_documents, kind, path, value, delete):
    doc = next(d for _, d in real_documents[kind] if len(d.get("items", d.get("neighbors", []))) > 1)
    assert errors(kind, doc) == []
    assert errors(kind, _broken(doc, path, value, delete)) != []


def test_added_fields_and_older_documents_stay_valid(real_documents):
    _, user = real_documents["user"][-1]
    newer = {**user, "explanation": "a field of a later job", "items": [{**user["items"][0], "rank": 1}]}
    assert errors("user", newer) == []
    older = {k: v for k, v in user.items() if k not in ("format", "model_version")}   # before those fields
    assert errors("user", older) == []


# --- TypeScript ----------------------------------------------------------------------

def _tsc() -> str:
    """The TypeScript compiler deploy/setup.sh installs in .cache/node (as it puts the jars
    in .cache/jars). Never installed here."""
    local = ROOT / ".cache" / "node" / "node_modules" / ".bin" / "tsc"
    if not local.is_file():
        pytest.fail(f"{local} is missing: run `make setup` (deploy/setup.sh installs TypeScript)")
    return str(local)


def _type_check(tmp_path: Path, name: str, body: str) -> subprocess.CompletedProcess:
    shutil.copy(SCHEMA_DIR / doc_schemas.TYPESCRIPT, tmp_path / "reco.ts")
    (tmp_path / name).write_text(
        'import type { UserDocument, SimilarDocument, TrendingDocument } from "./reco";\n' + body)
    return subprocess.run([_tsc(), "--noEmit", "--strict", "--target", "es2020", str(tmp_path / name)],
                          capture_output=True, text=True, timeout=120)


def _short(doc: dict) -> dict:
    return {k: (v[:3] if isinstance(v, list) else v) for k, v in doc.items()}


def test_real_documents_type_check_against_reco_ts(real_documents, tmp_path):
    body = "".join(f"export const {kind}: {doc_schemas.type_name(KINDS[kind])} = "
                   f"{json.dumps(_short(real_documents[kind][-1][1]), indent=2)};\n" for kind in KINDS)
    ok = _type_check(tmp_path, "good.ts", body)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    _, user = real_documents["user"][-1]
    bad = _type_check(tmp_path, "bad.ts", f"export const user: UserDocument = "
                                          f"{json.dumps({**_short(user), 'user_id': str(user['user_id'])})};\n")
    assert bad.returncode != 0 and "Type 'string' is not assignable to type 'number'" in bad.stdout, bad.stdout
