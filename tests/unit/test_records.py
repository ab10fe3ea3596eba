"""Records: Go JSON shapes, time format, omission rules, escaping."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from containers_storage.errors import CorruptMetadata, InvalidDigest
from containers_storage.records import (
    Container,
    Image,
    Layer,
    Timestamp,
    decode_records,
    encode_records,
    go_json,
    parse_record_file,
    sorted_map,
    validate_digest,
)

CAPTURED_LAYERS = (
    b'[{"id":"579842e5152d6fa67ced55670a872a67f9e1f6a19d77f5173c8471a1d03f8b56",'
    b'"created":"2026-11-27T09:17:30.518862881Z",'
    b'"compressed-diff-digest":"sha256:8a152b70292dce0a54867dcdf3d33117f41784e2d8a09b160222926f081f8264",'
    b'"compressed-size":214,'
    b'"diff-digest":"sha256:579842e5152d6fa67ced55670a872a67f9e1f6a19d77f5173c8471a1d03f8b56",'
    b'"diff-size":5120,"compression":2,"uidset":[0],"gidset":[0]},'
    b'{"id":"3a3b01fd3010b6e6670e66e96522999029967d206d4dac0cdda9a1437c341c77",'
    b'"parent":"579842e5152d6fa67ced55670a872a67f9e1f6a19d77f5173c8471a1d03f8b56",'
    b'"created":"2026-11-27T09:17:38.493027735Z"}]'
)


def test_captured_layers_round_trip_byte_for_byte() -> None:
    layers = [Layer.from_json(o) for o in parse_record_file(CAPTURED_LAYERS, "layers.json")]
    assert encode_records(layers) == CAPTURED_LAYERS


def test_captured_container_round_trip() -> None:
    raw = (b'[{"id":"dbcd","names":["ctr1"],"image":"1678","layer":"9444","metadata":"ctr metadata",'
           b'"created":"2026-11-27T09:06:14.847171596Z","flags":{"MountLabel":"","ProcessLabel":""}}]')
    records = [Container.from_json(o) for o in parse_record_file(raw, "c.json")]
    assert encode_records(records) == raw


def test_container_keeps_empty_image_and_layer() -> None:
    out = Container(id="x", image="", layer="", created="2026-01-01T00:00:00Z").to_json()
    assert out == {"id": "x", "image": "", "layer": "", "created": "2026-01-01T00:00:00Z"}


def test_image_maps_sorted_by_bytes_and_digest_filled_from_manifest() -> None:
    d = "sha256:" + "c" * 64
    image = Image.from_json({
        "id": "i", "big-data-names": ["manifest", "Weird Key"],
        "big-data-sizes": {"manifest": 3, "Weird Key": 1},
        "big-data-digests": {"manifest": d, "Weird Key": "sha256:" + "e" * 64},
        "created": "2026-11-27T09:17:29.282355996+02:00",
    })
    assert image.digest == d and image.digests == [d]
    encoded = go_json(image.to_json())
    assert encoded.index(b'"Weird Key"') < encoded.index(b'"manifest":3')
    assert b'"created":"2026-11-27T09:17:29.282355996+02:00"' in encoded


def test_go_escaping() -> None:
    assert go_json({"m": "<a>&b\u2028é"}) == b'{"m":"\\u003ca\\u003e\\u0026b\\u2028\xc3\xa9"}'


def test_zero_time_and_missing_created() -> None:
    layer = Layer.from_json({"id": "a"})
    assert layer.to_json()["created"] == "0001-01-01T00:00:00Z"


@pytest.mark.parametrize("text", [
    "2026-11-27T09:05:29.9095Z", "2026-11-27T09:05:29Z", "2026-11-27T09:05:29.000000001-07:30",
    "0001-01-01T00:00:00Z", "1969-12-31T23:59:59.5Z",
])
def test_time_round_trip(text: str) -> None:
    assert Timestamp.parse(text).format() == text


def test_time_strips_trailing_zeros() -> None:
    assert Timestamp.parse("2026-11-27T09:05:29.900Z").format() == "2026-11-27T09:05:29.9Z"


@given(st.integers(min_value=-(10**10), max_value=10**11), st.integers(0, 999_999_999),
       st.integers(-14 * 60, 14 * 60))
def test_time_property_round_trip(seconds: int, nanos: int, offset: int) -> None:
    ts = Timestamp(seconds, nanos, offset)
    assert Timestamp.parse(ts.format()) == ts


def test_omitempty_rules() -> None:
    layer = Layer(id="x", created="2026-01-01T00:00:00Z")
    assert layer.to_json() == {"id": "x", "created": "2026-01-01T00:00:00Z"}


def test_sorted_map_is_bytewise() -> None:
    assert list(sorted_map({"b": 1, "B": 2, "é": 3, "a": 4})) == ["B", "a", "b", "é"]


def test_corrupt_file_names_the_path() -> None:
    with pytest.raises(CorruptMetadata, match=r"/x/layers\.json"):
        parse_record_file(b'[{"id":"a"', "/x/layers.json")
    with pytest.raises(CorruptMetadata):
        parse_record_file(b'{"id":"a"}', "/x/layers.json")


def test_empty_file_is_empty_store() -> None:
    assert parse_record_file(b"", "p") == [] and parse_record_file(b"null", "p") == []


def test_digest_validation() -> None:
    validate_digest("sha256:" + "a" * 64)
    for bad in ["sha256:abc", "nothex", "sha256:" + "A" * 64, "md5:" + "a" * 32]:
        with pytest.raises(InvalidDigest):
            validate_digest(bad)


def test_flags_nested_values_survive() -> None:
    raw = {"id": "c", "image": "", "layer": "", "created": "2026-01-01T00:00:00Z",
           "flags": {"MountOpts": ["nodev"], "Volatile": True, "MountLabel": ""}}
    out = json.loads(go_json(Container.from_json(raw).to_json()))
    assert out["flags"] == raw["flags"]


def test_decode_records_fast_and_lenient_paths_agree() -> None:
    from containers_storage.records import decode_records

    fast = decode_records(CAPTURED_LAYERS, "layers.json", Layer)
    assert [layer.id[:6] for layer in fast] == ["579842", "3a3b01"]
    # Nulls and a missing "created" are accepted (Go reads them as empty values).
    odd = b'[{"id":"a","names":null,"flags":null},{"id":"b","created":"2026-01-01T00:00:00Z"}]'
    layers = decode_records(odd, "layers.json", Layer)
    assert layers[0].names == [] and layers[0].created == "0001-01-01T00:00:00Z"
    assert encode_records(layers) == (b'[{"id":"a","created":"0001-01-01T00:00:00Z"},'
                                      b'{"id":"b","created":"2026-01-01T00:00:00Z"}]')
    containers = decode_records(b'[{"id":"c"}]', "containers.json", Container)
    assert encode_records(containers) == b'[{"id":"c","image":"","layer":"","created":"0001-01-01T00:00:00Z"}]'


def test_decode_records_errors_name_the_file() -> None:
    from containers_storage.records import decode_records

    for bad in (b'[{"id":"a"', b'{"id":"a"}', b'[{"id":"a","names":"notalist"}]'):
        with pytest.raises(CorruptMetadata, match=r"/s/layers\.json"):
            decode_records(bad, "/s/layers.json", Layer)


def test_runtime_state_is_never_encoded_and_survives_clone() -> None:
    from containers_storage.records import clone

    layer = Layer(id="a", created="2026-01-01T00:00:00Z", names=["n"])
    layer.mount_point, layer.mount_count = "/m", 2
    assert encode_records([layer]) == b'[{"id":"a","names":["n"],"created":"2026-01-01T00:00:00Z"}]'
    copy = clone(layer)
    copy.mount_count = 3
    copy.names = ["other"]
    assert (copy.mount_point, layer.mount_count, layer.names) == ("/m", 2, ["n"])


@given(st.integers(min_value=-62135596800, max_value=253402300799))
def test_time_format_agrees_with_datetime(seconds: int) -> None:
    import datetime

    d = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(seconds=seconds)
    expected = f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}Z"
    assert Timestamp(seconds).format() == expected
    assert Timestamp.parse(expected).seconds == seconds


def test_generated_converters_are_current() -> None:
    """``_recordcode.py`` is generated from the field tables; editing a table means regenerating it."""
    import pathlib

    from containers_storage import records

    checked_in = pathlib.Path(records.__file__).with_name("_recordcode.py").read_text(encoding="utf-8")
    assert checked_in == records.recordcode_source(), (
        "src/containers_storage/_recordcode.py is stale: run "
        "`python -m containers_storage.records > src/containers_storage/_recordcode.py`")


def test_go_escape_ascii_and_unicode_separators() -> None:
    from containers_storage.records import go_json

    assert go_json(["<a&b>"]) == b'["\\u003ca\\u0026b\\u003e"]'
    assert go_json(["x\u2028y\u2029é"]) == '["x\\u2028y\\u2029é"]'.encode()


_DIGESTS = st.sampled_from(["", "sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha256:" + "c" * 64])
_KEYS = st.sampled_from(["manifest", "manifest-sha256:x", "manifest-other", "config", "signature"])


@given(digest=_DIGESTS, items=st.lists(st.tuples(_KEYS, _DIGESTS), max_size=5, unique_by=lambda kv: kv[0]),
       extra_known=st.lists(st.tuples(_KEYS, _DIGESTS), max_size=2))
def test_recompute_digests_matches_the_rule(digest: str, items: list[tuple[str, str]],
                                            extra_known: list[tuple[str, str]]) -> None:
    """``digest`` first, then ``manifest``, then other ``manifest*`` items in name order, no repeats."""
    from containers_storage.records import Image

    known = dict(items)
    for key, value in extra_known:  # digests recorded for names the list lacks (a damaged record)
        known.setdefault(key, value)
    names = [key for key, _ in items]
    image = Image(id="f" * 64, digest=digest, big_data_names=names, big_data_digests=known)
    image.recompute_digests()
    expected: list[str] = [digest] if digest else []
    ordered = (["manifest"] if "manifest" in known else []) + [
        k for k in names if k != "manifest" and k.startswith("manifest")]
    for key in ordered:
        value = known.get(key)
        if value and value not in expected:
            expected.append(value)
    assert image.digests == expected
    assert image.digest == (digest or (expected[0] if expected else ""))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_json_values)
def test_c_json_path_matches_the_json_module(value: object) -> None:
    """go_json and json_loads use _json directly; the json module must agree byte for byte."""
    import json

    from containers_storage.records import _c_encode, _c_scan, go_escape, go_json, json_loads

    assert _c_encode is not None and _c_scan is not None  # CPython: the fast path is what runs
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"), check_circular=False)
    assert go_json(value) == go_escape(expected.encode("utf-8", "surrogatepass"))
    for document in (json.dumps([value]), json.dumps({"k": value}, indent=1) + " \n"):
        assert json_loads(document.encode()) == json.loads(document)


@pytest.mark.parametrize("document", [b"", b" [1]", b"[1] x", b"[1,]", b"\xef\xbb\xbf[1]", b"[\"\xff\"]",
                                      b"{\"a\":1", b"[1]\x0b", b"[NaN]", b"[1e400]"])
def test_json_loads_odd_documents_behave_as_the_json_module(document: bytes) -> None:
    import json

    from containers_storage.records import json_loads

    try:
        expected: object = json.loads(document)
    except ValueError as exc:
        with pytest.raises(type(exc)) as got:
            json_loads(document)
        assert str(got.value) == str(exc)
    else:
        got_value = json_loads(document)
        assert repr(got_value) == repr(expected)


@pytest.mark.parametrize(("key", "name"), [
    ("manifest", "manifest"),
    ("sha256:abc", "=c2hhMjU2OmFiYw=="),
    ("a.b-c", "=YS5iLWM="),
    ("abc\n", "=YWJjCg=="),  # a regex's $ would let the newline through; upstream's rune loop doesn't
    ("Manifest", "=TWFuaWZlc3Q="),
])
def test_bigdata_file_names_follow_upstream(key: str, name: str) -> None:
    from containers_storage._recordstore import bigdata_file_name

    assert bigdata_file_name(key) == name


@pytest.mark.parametrize("digest", ["sha256:" + "a" * 64 + "\n", "sha256:" + "A" * 64, "sha256:" + "a" * 63,
                                    "sha512:" + "g" * 128, ":abc", "sha256"])
def test_malformed_digests_are_refused(digest: str) -> None:
    with pytest.raises(InvalidDigest):
        validate_digest(digest)


@pytest.mark.parametrize("text", [
    "2023-11-14T22:13:20Z", "2023-11-14t22:13:20.5z", "2023-11-14T22:13:20.123456789+02:00",
    "12023-11-14T22:13:20Z",  # a longer year: not a usual shape, still a time
])
def test_well_formed_times_load(text: str) -> None:
    data = json.dumps([{"id": "a" * 64, "created": text}]).encode()
    assert [r.created for r in decode_records(data, "layers.json", Layer)] == [text]


@pytest.mark.parametrize("text", [
    "2023-11-14T22:13:20Z\n", "2023-11-14 22:13:20Z", "2023-11-14T22:13:20.1234567890Z", "2023-11-14T22:13:20",
    "\uff12023-11-14T22:13:20Z", "2023-11-14T22:13:20Z\n2023-11-14T22:13:20Z", "",
])
def test_malformed_times_are_refused_like_go(text: str) -> None:
    """Go's parser takes ASCII digits only and nothing after the zone."""
    data = json.dumps([{"id": "b" * 64, "created": "2023-11-14T22:13:20Z"},
                       {"id": "a" * 64, "created": text}]).encode()
    with pytest.raises(CorruptMetadata, match="not RFC 3339"):
        decode_records(data, "layers.json", Layer)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="0123456789-:.TtZz+ \n", max_size=32), min_size=1, max_size=5))
def test_fast_time_check_never_accepts_what_the_pattern_refuses(times: list[str]) -> None:
    from containers_storage.records import _match_time, _usual_times

    if _usual_times(times):
        assert all(_match_time(t) for t in times)


@pytest.mark.parametrize("count", [0, 1, 127, 128, 129, 300])
def test_encoded_pieces_join_to_the_document(count: int) -> None:
    from containers_storage.records import encode_records, iter_encoded_records

    layers = [Layer.from_json({"id": f"{i:064x}", "names": [f"<n{i}>"], "created": "2023-11-14T22:13:20Z"})
              for i in range(count)]
    assert b"".join(iter_encoded_records(layers)) == encode_records(layers)


@pytest.mark.parametrize(("document", "message"), [
    (b'[{"id": ', "Expecting value"),
    (b'[{"id":"abc', "Unterminated string starting at"),
    (b'[{"id":1 "x":2}]', "Expecting ',' delimiter"),
    (b'["\\q"]', "Invalid \\escape"),
])
def test_broken_json_before_the_json_module_is_imported(document: bytes, message: str) -> None:
    """The C scanner cannot raise its error until json.decoder is imported; json_loads copes.

    One fresh interpreter per document: the first fallback imports json for the rest.
    """
    import subprocess
    import sys

    import containers_storage

    src = os.path.dirname(os.path.dirname(containers_storage.__file__))
    code = (
        "import sys\n"
        "from containers_storage.records import json_loads\n"
        "assert 'json.decoder' not in sys.modules, 'json already imported: the test proves nothing'\n"
        "try:\n"
        f"    json_loads({document!r})\n"
        "except ValueError as exc:\n"
        "    print(type(exc).__name__, str(exc).split(':')[0])\n"
    )
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": src}, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"JSONDecodeError {message}"
