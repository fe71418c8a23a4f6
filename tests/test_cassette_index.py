"""Cassette lookup through an index: vcrpy's playback order and misses, without its scan (issue 14)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx2
import pytest
import vcr.cassette
from hypothesis import given, settings
from hypothesis import strategies as st
from vcr.cassette import Cassette
from vcr.record_mode import RecordMode
from vcr.request import Request as VcrRequest

from harness import cassettes, context
from harness.cassettes import MATCH_ON, CassetteStore, CassetteTransport, IndexedCassette, match_key
from harness.errors import CassetteDamaged, CassetteMiss

MODEL, TASK = "openai:terse", "some-task"
URL = "http://127.0.0.1:8123/v1/chat/completions"


def body(n: int, **extra: object) -> bytes:
    return json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": f"step {n}"}], **extra}
    ).encode()


def answer(index: int) -> bytes:
    return json.dumps({"id": f"resp-{index}"}).encode()


class Provider:
    """Answers attempt i with status statuses[i] and body `answer(i)`."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = statuses or []
        self.sent = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        index = self.sent
        self.sent += 1
        status = self.statuses[index] if index < len(self.statuses) else 200
        return httpx2.Response(status, content=answer(index))


def send(transport: CassetteTransport, bodies: list[bytes], url: str = URL) -> list[tuple[int, bytes]]:
    async def go() -> list[tuple[int, bytes]]:
        out = []
        for step, content in enumerate(bodies, 1):
            request = httpx2.Request(
                "POST", url, content=content, headers={"content-type": "application/json"}
            )
            with context.bind(model=MODEL, task_id=TASK, repeat=0, step=step):
                response = await transport.handle_async_request(request)
                out.append((response.status_code, await response.aread()))
        return out

    return asyncio.run(go())


def record(root: Path, bodies: list[bytes], statuses: list[int] | None = None) -> list[tuple[int, bytes]]:
    store = CassetteStore(root, "suite", "record")
    got = send(CassetteTransport(store, httpx2.MockTransport(Provider(statuses))), bodies)
    store.save(MODEL, TASK, 0)
    return got


def replay(root: Path, bodies: list[bytes], url: str = URL) -> list[tuple[int, bytes]]:
    return send(CassetteTransport(CassetteStore(root, "suite", "replay")), bodies, url)


def test_identical_requests_replay_in_recorded_order(tmp_path):
    a, b = body(1), body(2)
    # Retries and repeats of one body, interleaved with another: each gets its own answer back.
    sequence = [a, a, b, a, b, a]
    recorded = record(tmp_path, sequence, statuses=[529, 200, 200, 500, 200, 200])
    assert [status for status, _ in recorded] == [529, 200, 200, 500, 200, 200]
    assert replay(tmp_path, sequence) == recorded


def test_replay_matches_through_normalisation(tmp_path):
    recorded = record(tmp_path, [body(1, user="alice"), body(2)])
    # Another port, a trailing slash, reordered keys and another volatile field still match.
    reordered = json.dumps({"messages": [{"content": "step 1", "role": "user"}], "model": "m", "user": "bob"})
    got = replay(tmp_path, [reordered.encode(), body(2)], url="http://localhost:9/v1/chat/completions/")
    assert got == recorded


def test_a_miss_raises_with_the_closest_request(tmp_path):
    record(tmp_path, [body(1), body(2)])
    with pytest.raises(CassetteMiss) as caught:
        replay(tmp_path, [body(1), body(3)])
    message = str(caught.value)
    assert f"no recorded response for task {TASK} ({MODEL}, repeat 0) step 2 attempt 1" in message
    assert "closest recorded request POST /v1/chat/completions first differs at character" in message
    assert "vs now" in message and "step 3" in message


def test_a_request_replayed_more_often_than_recorded_misses(tmp_path):
    record(tmp_path, [body(1)])
    with pytest.raises(CassetteMiss, match="closest recorded request"):
        replay(tmp_path, [body(1), body(1)])


def test_a_missing_cassette_misses_as_empty(tmp_path):
    with pytest.raises(CassetteMiss, match="is empty or missing"):
        replay(tmp_path, [body(1)])


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "is empty"),
        ('{"interactions": [', "is damaged"),
        (
            json.dumps(
                {
                    "interactions": [
                        {
                            "request": {"method": ["POST"], "uri": URL, "body": "", "headers": {}},
                            "response": {"status": {"code": 200}, "headers": {}, "body": {"string": ""}},
                        }
                    ],
                    "version": 1,
                }
            ),
            "is damaged",
        ),
    ],
    ids=["empty", "truncated", "unhashable-method"],
)
def test_a_damaged_cassette_is_reported_as_such(tmp_path, content, reason):
    store = CassetteStore(tmp_path, "suite", "replay")
    path = store.path_for(MODEL, TASK, 0)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(CassetteDamaged, match=reason):
        replay(tmp_path, [body(1)])


def test_auto_replays_what_it_has_and_appends_the_rest(tmp_path):
    first = record(tmp_path, [body(1), body(2)])
    store = CassetteStore(tmp_path, "suite", "auto")
    provider = Provider()
    got = send(CassetteTransport(store, httpx2.MockTransport(provider)), [body(1), body(2), body(3), body(4)])
    store.save(MODEL, TASK, 0)
    assert got[:2] == first and provider.sent == 2
    assert replay(tmp_path, [body(1), body(2), body(3), body(4)]) == got


def test_auto_sends_a_retry_of_what_it_just_recorded(tmp_path):
    """A 529 recorded live is not the answer to its own retry: the retry reaches the provider."""
    store = CassetteStore(tmp_path, "suite", "auto")
    provider = Provider([529, 200])
    got = send(CassetteTransport(store, httpx2.MockTransport(provider)), [body(1), body(1)])
    store.save(MODEL, TASK, 0)
    assert [status for status, _ in got] == [529, 200] and provider.sent == 2
    assert replay(tmp_path, [body(1), body(1)]) == got


class Counter:
    """Wraps a function and counts its calls."""

    def __init__(self, function):
        self.function = function
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.function(*args, **kwargs)


@pytest.mark.parametrize("mode", ["replay", "auto"])
def test_a_lookup_does_not_scan_the_cassette(tmp_path, monkeypatch, mode):
    """The work per lookup stays the same from 10 to 1,000 recorded requests: no timing, only counts."""
    per_lookup = {}
    for n in (10, 100, 1000):
        root = tmp_path / str(n)
        bodies = [body(i) for i in range(n)]
        record(root, bodies)
        store = CassetteStore(root, "suite", mode)
        store.cassette(MODEL, TASK, 0)  # loading indexes every interaction once; not counted
        keys = Counter(cassettes.match_key)
        scans = Counter(vcr.cassette.requests_match)
        diagnoses = Counter(cassettes.closest_request)
        monkeypatch.setattr(cassettes, "match_key", keys)
        monkeypatch.setattr(vcr.cassette, "requests_match", scans)
        monkeypatch.setattr(cassettes, "closest_request", diagnoses)
        # The last recorded request (the worst case of a scan), then a new one: a miss,
        # which auto sends on live and records.
        transport = CassetteTransport(store, httpx2.MockTransport(Provider()))
        send(transport, [bodies[-1], body(n + 1)] if mode == "auto" else [bodies[-1]])
        per_lookup[n] = (keys.calls, scans.calls, diagnoses.calls)
        monkeypatch.undo()
    expected = (2, 0, 0) if mode == "auto" else (1, 0, 0)  # one key per lookup
    assert per_lookup == {10: expected, 100: expected, 1000: expected}


def test_only_a_raised_miss_builds_its_diagnosis(tmp_path, monkeypatch):
    record(tmp_path, [body(i) for i in range(50)])
    diagnoses = Counter(cassettes.closest_request)
    monkeypatch.setattr(cassettes, "closest_request", diagnoses)
    with pytest.raises(CassetteMiss):
        replay(tmp_path, [body(0), body(1), body(99)])
    assert diagnoses.calls == 1


# Small pools so that sequences repeat requests often and differ in one part at a time.
REQUESTS = st.tuples(
    st.sampled_from(["POST", "GET"]),
    st.sampled_from(["/v1/chat/completions", "/v1/chat/completions/", "/v1/responses"]),
    st.sampled_from(
        [
            b"",
            b'{"a":1}',
            b'{"a": 1, "user": "x"}',
            b'{"a":2}',
            b"not json",
            b'{"k":"sk-ant-0123456789abcdef"}',
        ]
    ),
)
OPERATIONS = st.lists(st.tuples(st.sampled_from(["append", "play"]), REQUESTS), max_size=40)


def vcr_request(spec: tuple[str, str, bytes]) -> VcrRequest:
    method, path, content = spec
    return VcrRequest(method, f"http://127.0.0.1:1{path}", content, {})


def outcome(cassette: Cassette, request: VcrRequest) -> object:
    try:
        return json.dumps(cassette.play_response(request))
    except Exception as exc:  # vcrpy's UnhandledHTTPRequestError
        return type(exc).__name__


def played(cassette: Cassette) -> list[object]:
    return [(r.method, r.uri, r.body, response) for r, response in cassette._played_interactions]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(loaded=st.lists(REQUESTS, max_size=20), operations=OPERATIONS)
def test_the_index_plays_exactly_what_vcrpys_scan_plays(loaded, operations):
    """Against vcrpy's own Cassette with the same matchers: same answers, misses and bookkeeping.

    The reference holds only what was loaded: interactions recorded during the run are never
    played back (vcrpy's scan would play them, so that in auto mode the retry of a 529 got
    the recorded 529 back instead of reaching the provider).
    """
    kwargs = {"path": "unused", "record_mode": RecordMode.NEW_EPISODES, "match_on": MATCH_ON}
    reference, indexed = Cassette(**kwargs), IndexedCassette(**kwargs)
    for cassette in (reference, indexed):
        for number, spec in enumerate(loaded):
            cassette.append(vcr_request(spec), {"loaded": number})
        # As `_load` leaves a cassette read from a file.
        cassette._old_interactions = list(cassette.data)
        cassette._loaded_count = len(cassette.data)
    for number, (operation, spec) in enumerate(operations):
        if operation == "append":  # auto mode records while it replays
            indexed.append(vcr_request(spec), {"recorded": number})
        else:
            assert (vcr_request(spec) in indexed) == (vcr_request(spec) in reference)
            assert outcome(indexed, vcr_request(spec)) == outcome(reference, vcr_request(spec))
    assert indexed.play_counts == reference.play_counts
    assert played(indexed) == played(reference)
    indexed.rewind()
    reference.rewind()
    for _, spec in operations:
        assert outcome(indexed, vcr_request(spec)) == outcome(reference, vcr_request(spec))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(first=REQUESTS, second=REQUESTS)
def test_equal_keys_are_exactly_matching_requests(first, second):
    r1, r2 = vcr_request(first), vcr_request(second)
    assert (match_key(r1) == match_key(r2)) == vcr.cassette.requests_match(r1, r2, MATCH_ON)
