"""The grader's side of the wire is bounded: a reply from the student's process is decoded only once
it is known to stay within autograder/sandboxed/protocol.py's limits (MAX_REPLY bytes, MAX_ELEMENTS, MAX_DEPTH),
so a small frame cannot grow into gigabytes in the grader's kernel and deep nesting never reaches
Python's recursion limit. Anything past a limit is a protocol break (StudentProtocolError, which the
grader tags ``tampering`` and scores 0: tests/test_grader_trust.py). Read through
``StudentProcess._receive``, the grader's one way in, from a file standing in for the pipe."""
from __future__ import annotations

import os
import time
import tracemalloc
from types import SimpleNamespace

import pytest
import torch

from autograder.sandboxed import protocol as P
from autograder import remote


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def receive(tmp_path, data: bytes):
    """What the grader makes of ``data`` arriving on the student's pipe."""
    path = tmp_path / "pipe"
    path.write_bytes(data)
    student = remote.StudentProcess({})
    with open(path, "rb") as stdout:
        student.proc = SimpleNamespace(stdout=stdout, wait=lambda timeout=None: 0)
        try:
            return student._receive(time.time() + 60)
        finally:
            student.proc = None


def wide(n: int) -> bytes:
    """The issue's reply: ``n`` empty lists, 3 bytes each on the wire (16 million took the kernel to 3.8 GB)."""
    return b'{"ok":[' + b"[]," * (n - 1) + b"[]]}"


def deep(n: int) -> bytes:
    return b'{"ok":' + b"[" * n + b"]" * n + b"}"


def test_the_wide_reply_is_refused_before_it_is_built(tmp_path):
    data = frame(wide(1_000_000))  # 3 MB: under the size limit, 20 times the element limit
    assert len(data) < P.MAX_REPLY
    tracemalloc.start()
    t0 = time.time()
    try:
        with pytest.raises(remote.StudentProtocolError, match="elements"):
            receive(tmp_path, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the old decoder built 2 million lists here (about 150 MB; 3.8 GB for the 48 MB frame)
    assert peak < 16 * 2**20, f"{peak / 2**20:.0f} MB"
    assert time.time() - t0 < 10


@pytest.mark.parametrize("levels, why", [(200_000, "elements"), (50_000, "deep")])  # the issue's; within MAX_ELEMENTS
def test_the_deep_reply_is_a_protocol_break_not_a_recursion_error(tmp_path, levels, why):
    with pytest.raises(remote.StudentProtocolError, match=why):
        receive(tmp_path, frame(deep(levels)))


@pytest.mark.parametrize("body", [b"[" * 3_000_000, b'"' * 3_000_001, b'{"ok":"' + b'\\"' * 1_500_000,
                                  b'{"ok":"' + b"\\" * 3_000_000, b'{"ok":[' + b"0," * 1_500_000 + b"0]}"],
                         ids=["open brackets", "quotes", "escaped quotes", "backslashes", "numbers"])
def test_pathological_replies_are_refused_quickly(tmp_path, body):
    t0 = time.time()
    with pytest.raises(remote.StudentProtocolError):
        receive(tmp_path, frame(body))
    assert time.time() - t0 < 10


def test_a_frame_past_the_size_limit_is_refused_unread(tmp_path):
    # 64 MB was within the old 256 MB limit; nothing past the 4-byte header is read
    with pytest.raises(remote.StudentProtocolError, match="bytes"):
        receive(tmp_path, (64 * 2**20).to_bytes(4, "big") + b"{}")


def test_non_ascii_is_refused(tmp_path):
    # the student's process writes json.dumps' ASCII; a 4-byte character would make every string 4 bytes wide
    with pytest.raises(remote.StudentProtocolError, match="ASCII"):
        receive(tmp_path, frame('{"ok":"\U0001f600"}'.encode()))


def test_honest_replies_decode(tmp_path):
    """The largest tensor the course's tests get back is 16 KB (22 KB on the wire); this one is 2 MB, with
    a list of 10,000 numbers, strings full of brackets and quotes, and nesting as deep as ``encode`` goes."""
    t = torch.randn(512, 1024)
    nested = 0.5
    for i in range(49):  # 50 deep with the dict around it: as deep as encode goes, 2 JSON levels each
        nested = (nested,) if i % 2 else {"k": nested}
    value = {"t": t, "xs": [float(i) for i in range(10_000)], "s": '[[{{"\\' * 10_000, "nested": nested}
    path = tmp_path / "reply"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    P.send(fd, {"ok": P.encode(value), "mutated": {}, "generators": []})
    os.close(fd)
    data = path.read_bytes()
    assert len(data) < P.MAX_REPLY
    out = P.decode(receive(tmp_path, data)["ok"])
    assert torch.equal(out["t"], t) and out["xs"] == value["xs"] and out["s"] == value["s"]
    assert out["nested"] == nested


def test_the_limits_are_exact():
    ok = P.loads(b"[" + b"0," * (P.MAX_ELEMENTS - 1) + b"0]", P.MAX_ELEMENTS, P.MAX_DEPTH)
    assert len(ok) == P.MAX_ELEMENTS  # the list and its MAX_ELEMENTS - 1 commas
    with pytest.raises(P.ProtocolError, match="elements"):
        P.loads(b"[" + b"0," * P.MAX_ELEMENTS + b"0]", P.MAX_ELEMENTS, P.MAX_DEPTH)
    assert P.loads(b"[" * P.MAX_DEPTH + b"]" * P.MAX_DEPTH, P.MAX_ELEMENTS, P.MAX_DEPTH)
    with pytest.raises(P.ProtocolError, match="deep"):
        P.loads(b"[" * (P.MAX_DEPTH + 1) + b"]" * (P.MAX_DEPTH + 1), P.MAX_ELEMENTS, P.MAX_DEPTH)
    # brackets, commas and escaped quotes inside strings are not structure
    assert P.loads(b'{"a":"' + b'[,:{\\"' * 50_000 + b'"}', 3, 2) == {"a": '[,:{"' * 50_000}
