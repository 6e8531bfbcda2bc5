"""The wire between the grader and the student's process: plain data only, never pickles.

A message is a 4-byte big-endian length and a JSON body. Values travel as JSON with a few tagged
objects: tensors ``{"$t": [dtype, shape, base64 bytes, requires_grad]}``, NumPy arrays and scalars,
tuples, ``torch.Generator`` states, dtypes and exceptions as ``(type name, message)``; a GPT-2 and its
optimiser as their configuration and state, by reference (the end of this file). ``decode``
rebuilds fresh objects of the standard types from that data, so nothing the student process sends
can carry behaviour (a tensor subclass, an object with ``__eq__``, a pickle) into the grader.

The grader decodes a reply only once it is known to stay within ``MAX_REPLY`` bytes, ``MAX_ELEMENTS``
and ``MAX_DEPTH`` (``read_message``): a pre-scan of the bytes, in linear time and memory, so that a
small frame cannot grow into gigabytes of Python objects in the grader and deep nesting never reaches
the recursion limit; past any limit is a ProtocolError. The student's process reads the grader's
own messages without those limits.

This file is also copied into the sandbox, where it may import nothing from the course.
"""
from __future__ import annotations

import base64
import json
import math
import os
import re
import struct

MAX_MESSAGE = 256 * 2**20  # bytes: what the student's process accepts from the grader
# What the grader accepts from the student's process. Grading the eight solution notebooks, the
# largest of the 665 replies was 21,919 bytes (a tensor of 16 KB) with 58 elements. Within these
# limits decoding one reply adds at most about 6 times MAX_REPLY to the grader's memory (the frame,
# its text, a string in it, a tensor's bytes decoded and copied), and MAX_ELEMENTS Python objects
# cost a few MB more.
MAX_REPLY = 4 * 2**20  # bytes
MAX_ELEMENTS = 100_000  # containers and entries: the '[', '{', ',' and ':' outside strings
MAX_DEPTH = 128  # JSON nesting; encode nests values at most 50 deep, at most 2 JSON levels each
_DTYPES = ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
           "complex64", "complex128")


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed message."""


class Unencodable(TypeError):
    """A value the wire cannot carry (a function, a module, an object of the student's own class)."""


# ----------------------------------------------------------------------------- walking values
def leaves(obj, keep) -> list:
    """The leaves of nested lists, tuples and dicts for which ``keep(leaf)`` is true, depth first.

    Both sides walk arguments and results in this order, so the n-th tensor one side names is the
    n-th the other side sees (the autograd bridge and the generator states rely on it).
    """
    if isinstance(obj, (list, tuple)):
        return [x for v in obj for x in leaves(v, keep)]
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in leaves(v, keep)]
    return [obj] if keep(obj) else []


def needs_grad(x) -> bool:
    import torch

    return isinstance(x, torch.Tensor) and x.requires_grad


def is_generator(x) -> bool:
    import torch

    return isinstance(x, torch.Generator)


# ----------------------------------------------------------------------------- framing
def frame(message) -> bytes:
    """``message`` as it goes on the wire: the body's length in 4 bytes, then the JSON body."""
    body = json.dumps(message, allow_nan=True, separators=(",", ":")).encode()
    return struct.pack(">I", len(body)) + body


def send(fd: int, message) -> None:
    view = memoryview(frame(message))
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exactly(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(read, max_bytes: int = MAX_MESSAGE, max_elements: int | None = None,
                 max_depth: int | None = None):
    """The next message, where ``read(n)`` returns the next ``n`` bytes; ProtocolError past any limit.

    A body longer than ``max_bytes`` is refused before it is read; with ``max_elements`` and
    ``max_depth`` the body is checked (``check``) before anything is built from it.
    """
    (size,) = struct.unpack(">I", read(4))
    if size > max_bytes:
        raise ProtocolError(f"a message of {size} bytes (the limit is {max_bytes})")
    return loads(read(size), max_elements, max_depth)


def receive(fd: int, max_bytes: int = MAX_MESSAGE):
    return read_message(lambda n: _read_exactly(fd, n), max_bytes)


_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')  # once the escapes are gone, a string runs to the next quote
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def check(body: bytes, max_elements: int, max_depth: int) -> None:
    """ProtocolError unless the JSON text ``body`` is ASCII (as ``send`` writes it) and holds at most
    ``max_elements`` containers and entries, nested at most ``max_depth`` deep.

    Counted on the bytes, in time and memory linear in their length: escapes are dropped, then each
    string (which then runs to the next quote: only a last one without its end is scanned twice),
    so what remains is structure. For a body json.loads accepts, the counts are exact; for one it
    refuses, json.loads stops at the first error, and everything before it was counted the same way.
    """
    if not body.isascii():
        raise ProtocolError("a message with bytes that are not ASCII")
    bare = _STRING.sub(b"0", _ESCAPE.sub(b"", body))
    opened = bare.count(b"[") + bare.count(b"{")
    elements = opened + bare.count(b",") + bare.count(b":")
    if elements > max_elements:
        raise ProtocolError(f"a message of more than {max_elements} elements ({elements})")
    brackets = bare.translate(None, _NOT_BRACKETS)
    if len(brackets) > 2 * opened:
        raise ProtocolError("a message whose brackets do not match")
    for _ in range(max_depth):  # each pass removes at least the innermost level
        if not brackets:
            break
        brackets = brackets.replace(b"[]", b"").replace(b"{}", b"")
    if brackets:
        raise ProtocolError(f"a message nested more than {max_depth} deep (or whose brackets do not match)")


def loads(body: bytes, max_elements: int | None = None, max_depth: int | None = None):
    """The JSON value of ``body`` (checked first where limits are given); ProtocolError if it is not JSON."""
    if max_elements is not None or max_depth is not None:
        check(body, MAX_ELEMENTS if max_elements is None else max_elements,
              MAX_DEPTH if max_depth is None else max_depth)
    try:
        return json.loads(body.decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"a message that is not JSON ({type(exc).__name__}: {str(exc)[:100]})") from None


# ----------------------------------------------------------------------------- values
def encode(value, depth: int = 0, objects: list | None = None):
    """Plain data for ``value``; raises Unencodable for anything else. With ``objects`` (the grader's side of a
    call), a model or an optimiser becomes ``{"$ref": i}``, the i-th entry of ``objects`` (``describe``)."""
    import numpy as np
    import torch

    if depth > 50:
        raise Unencodable("the value is nested too deeply")
    if objects is not None and (is_model(value) or is_optimizer(value)):
        index = next((i for i, o in enumerate(objects) if o is value), None)
        if index is None:
            objects.append(value)
            index = len(objects) - 1
        return {"$ref": index}
    if value is None or type(value) in (bool, str):
        return value
    if type(value) is int:
        return value if abs(value) < 2**62 else {"$bigint": str(value)}
    if type(value) is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, torch.Tensor):
        t = value.detach()
        if t.is_sparse or t.layout != torch.strided:
            t = t.to_dense()
        t = torch.Tensor.cpu(t).contiguous()
        name = str(t.dtype).replace("torch.", "")
        if name not in _DTYPES:
            raise Unencodable(f"a tensor of dtype {t.dtype}")
        raw = t.view(torch.int16) if t.dtype == torch.bfloat16 else t
        data = raw.numpy().tobytes() if t.numel() else b""
        return {"$t": [name, list(t.shape), base64.b64encode(data).decode(), bool(value.requires_grad)]}
    if isinstance(value, torch.Generator):
        return {"$gen": base64.b64encode(value.get_state().numpy().tobytes()).decode()}
    if isinstance(value, torch.dtype):
        return {"$dtype": str(value).replace("torch.", "")}
    if isinstance(value, torch.device):
        return {"$device": str(value)}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            raise Unencodable(f"a NumPy array of dtype {value.dtype}")
        a = np.ascontiguousarray(value)
        return {"$nd": [a.dtype.str, list(a.shape), base64.b64encode(a.tobytes()).decode()]}
    if isinstance(value, np.generic) and value.dtype.kind in "biufc":
        return {"$np": [value.dtype.str, base64.b64encode(value.tobytes()).decode()]}
    if type(value) in (list, tuple):
        items = [encode(v, depth + 1, objects) for v in value]
        return items if type(value) is list else {"$tuple": items}
    if type(value) is dict:
        if not all(type(k) is str for k in value):
            raise Unencodable("a dict whose keys are not all strings")
        return {"$dict": {k: encode(v, depth + 1, objects) for k, v in value.items()}}
    if isinstance(value, (bool, int, float, str)):  # subclasses travel as the base type's value
        base = next(b for b in (bool, int, float, str) if isinstance(value, b))
        return encode(base(value), depth)
    raise Unencodable(f"a value of type {type(value).__name__}")


def decode(data, depth: int = 0, objects: list | None = None):
    """The value that ``encode`` described, built from scratch; ProtocolError on anything malformed. A
    ``{"$ref": i}`` is ``objects[i]`` (the student's side of a call, ``build``); anywhere else it is malformed."""
    import numpy as np
    import torch

    if depth > 60:
        raise ProtocolError("nested too deeply")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return [decode(v, depth + 1, objects) for v in data]
    if type(data) is not dict or len(data) != 1:
        raise ProtocolError(f"unexpected value {str(data)[:80]!r}")
    (tag, body), = data.items()
    if tag == "$ref":
        if objects is None or type(body) is not int or not 0 <= body < len(objects):
            raise ProtocolError(f"a reference to no object: {str(body)[:20]}")
        return objects[body]
    try:
        if tag == "$t":
            name, shape, b64, requires_grad = body
            if name not in _DTYPES or not all(type(s) is int and s >= 0 for s in shape):
                raise ProtocolError(f"bad tensor header {name!r} {shape!r}")
            dtype = getattr(torch, name)
            raw = base64.b64decode(b64, validate=True)
            n = math.prod(shape)
            size = torch.empty((), dtype=dtype).element_size()
            if len(raw) != n * size:
                raise ProtocolError("tensor data of the wrong length")
            if n == 0:
                t = torch.empty(shape, dtype=dtype)
            elif dtype == torch.bfloat16:
                t = torch.frombuffer(bytearray(raw), dtype=torch.int16).view(torch.bfloat16).reshape(shape).clone()
            else:
                t = torch.frombuffer(bytearray(raw), dtype=dtype).reshape(shape).clone()
            if requires_grad is True and (t.is_floating_point() or t.is_complex()):
                t.requires_grad_(True)
            return t
        if tag == "$gen":
            g = torch.Generator()
            g.set_state(torch.frombuffer(bytearray(base64.b64decode(body, validate=True)), dtype=torch.uint8).clone())
            return g
        if tag == "$dtype":
            if body not in _DTYPES:
                raise ProtocolError(f"bad dtype {body!r}")
            return getattr(torch, body)
        if tag == "$device":
            return torch.device(str(body))
        if tag == "$nd":
            dt, shape, b64 = body
            dtype = np.dtype(str(dt))
            if dtype.kind not in "biufc" or not all(type(s) is int and s >= 0 for s in shape):
                raise ProtocolError("bad array header")
            return np.frombuffer(base64.b64decode(b64, validate=True), dtype=dtype).reshape(shape).copy()
        if tag == "$np":
            dt, b64 = body
            dtype = np.dtype(str(dt))
            if dtype.kind not in "biufc":
                raise ProtocolError("bad scalar dtype")
            return np.frombuffer(base64.b64decode(b64, validate=True), dtype=dtype)[0]
        if tag == "$tuple":
            if type(body) is not list:
                raise ProtocolError("bad tuple")
            return tuple(decode(v, depth + 1, objects) for v in body)
        if tag == "$dict":
            if type(body) is not dict:
                raise ProtocolError("bad dict")
            return {str(k): decode(v, depth + 1, objects) for k, v in body.items()}
        if tag == "$float":
            if body not in ("nan", "inf", "-inf"):
                raise ProtocolError("bad float")
            return float(body)
        if tag == "$bigint":
            if len(body) > 5000:
                raise ProtocolError("integer too long")
            return int(body)
    except ProtocolError:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed body is a protocol error
        raise ProtocolError(f"malformed {tag}: {type(exc).__name__}: {str(exc)[:100]}") from None
    raise ProtocolError(f"unknown tag {tag!r}")


# ----------------------------------------------------------------------------- models and optimisers
# A call may pass a model and its optimiser (an update step): they travel as data, by reference. The
# grader's side sends each one's description (``describe``: the class's name, the configuration as JSON,
# the tensors of its state); the student's side builds fresh ones of the standard classes from it
# (``build``), runs the function, and sends back their new states (``state_of``); the grader's side loads
# those into its own objects once they are known to fit them (``load_state``). No code and no pickle
# crosses; the grader never builds a model from what the student's process sends.
MODEL_CLASSES = {"GPT2LMHeadModel": "GPT2Config"}  # transformers' model class -> its configuration's class
OPTIMIZERS = ("SGD", "Adam", "AdamW")               # in torch.optim


def is_model(x) -> bool:
    import torch

    return isinstance(x, torch.nn.Module) and type(x).__name__ in MODEL_CLASSES and \
        type(x).__module__.startswith("transformers.")


def is_optimizer(x) -> bool:
    import torch

    return isinstance(x, torch.optim.Optimizer) and type(x).__name__ in OPTIMIZERS and \
        type(x).__module__.startswith("torch.optim")


def _optimizer_state(opt) -> dict:
    """An optimiser's ``state_dict`` with string keys (JSON's), its per-parameter state by parameter number."""
    sd = opt.state_dict()
    return {"state": {str(k): dict(v) for k, v in sd["state"].items()}, "param_groups": [dict(g) for g in sd["param_groups"]]}


def _from_optimizer_state(state) -> dict:
    if not (type(state) is dict and type(state.get("state")) is dict and type(state.get("param_groups")) is list):
        raise ProtocolError("a malformed optimiser state")
    try:
        return {"state": {int(k): v for k, v in state["state"].items()}, "param_groups": state["param_groups"]}
    except ValueError:
        raise ProtocolError("a malformed optimiser state") from None


def describe(objects: list) -> list:
    """What the student's process needs to build each object (the optimisers name their models' parameters)."""
    out, names = [], {}
    for i, o in enumerate(objects):
        if is_model(o):
            names.update({id(p): [i, n] for n, p in o.named_parameters()})
    for o in objects:
        if is_model(o):
            frozen = [n for n, p in o.named_parameters() if not p.requires_grad]
            out.append({"$model": [type(o).__name__, o.config.to_json_string(), encode(dict(o.state_dict())),
                                   bool(o.training), frozen]})
        else:
            params = [p for g in o.param_groups for p in g["params"]]
            if not all(id(p) in names for p in params):
                raise Unencodable("an optimiser over parameters of no model passed in the same call")
            out.append({"$optim": [type(o).__name__, encode(_optimizer_state(o)), [names[id(p)] for p in params]]})
    return out


def build(descriptions: list) -> list:
    """The student's side: fresh models and optimisers from ``describe``'s data (ProtocolError if malformed)."""
    import json as _json

    import torch
    import transformers

    objects = [None] * len(descriptions)
    for i, d in enumerate(descriptions):  # the models first: the optimisers hold their parameters
        if type(d) is dict and "$model" in d:
            cls, config, state, training, frozen = d["$model"]
            if cls not in MODEL_CLASSES:
                raise ProtocolError(f"not a model class the wire carries: {str(cls)[:40]}")
            model = getattr(transformers, cls)(getattr(transformers, MODEL_CLASSES[cls]).from_dict(_json.loads(config)))
            model.load_state_dict(decode(state))
            model.train(bool(training))
            for name, p in model.named_parameters():
                p.requires_grad_(name not in frozen)
            objects[i] = model
    for i, d in enumerate(descriptions):
        if type(d) is dict and "$optim" in d:
            cls, state, refs = d["$optim"]
            if cls not in OPTIMIZERS:
                raise ProtocolError(f"not an optimiser the wire carries: {str(cls)[:40]}")
            params = [dict(objects[m].named_parameters())[name] for m, name in refs]
            sd = _from_optimizer_state(decode(state))
            opt = getattr(torch.optim, cls)([{"params": [params[k] for k in g["params"]]} for g in sd["param_groups"]])
            opt.load_state_dict(sd)
            objects[i] = opt
    if any(o is None for o in objects):
        raise ProtocolError("an object that is neither a model nor an optimiser")
    return objects


def state_of(obj) -> dict:
    """The student's side, after the call: the object's new state."""
    if is_model(obj):
        return {"$model_state": [encode(dict(obj.state_dict())), bool(obj.training)]}
    return {"$optim_state": encode(_optimizer_state(obj))}


def load_state(obj, data) -> None:
    """The grader's side: load the state the student's process sent back into the grader's own ``obj``.

    ProtocolError if the data is malformed; ValueError, naming what differs, if it does not fit ``obj`` (the
    student's code changed a parameter's shape or type, or the optimiser's parameters): that is the
    student's answer, a failed test. ``obj`` is left as it was unless everything fits."""
    import torch

    if is_model(obj):
        if not (type(data) is dict and type(data.get("$model_state")) is list and len(data["$model_state"]) == 2):
            raise ProtocolError("a malformed model state")
        state, training = decode(data["$model_state"][0]), data["$model_state"][1]
        own = obj.state_dict()
        if type(state) is not dict or set(state) != set(own):
            missing, extra = sorted(set(own) - set(state or {})), sorted(set(state or {}) - set(own))
            raise ValueError(f"the model came back with other parameters (missing {missing[:3]}, new {extra[:3]})")
        for name, value in state.items():
            if not isinstance(value, torch.Tensor) or value.shape != own[name].shape or value.dtype != own[name].dtype:
                what = f"{tuple(value.shape)} {value.dtype}" if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"the model's {name} came back as {what}, not {tuple(own[name].shape)} {own[name].dtype}")
        with torch.no_grad():
            obj.load_state_dict(state)
        obj.train(training is True)
        return
    if not (type(data) is dict and "$optim_state" in data):
        raise ProtocolError("a malformed optimiser state")
    state = _from_optimizer_state(decode(data["$optim_state"]))
    params = [p for g in obj.param_groups for p in g["params"]]
    groups = state["param_groups"]
    if [g.get("params") if type(g) is dict else None for g in groups] != [g["params"] for g in obj.state_dict()["param_groups"]]:
        raise ValueError("the optimiser came back with other parameter groups")
    for k, entry in state["state"].items():
        if not (0 <= k < len(params)) or type(entry) is not dict:
            raise ValueError("the optimiser came back with state for parameters it does not have")
        for key, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() and value.shape != params[k].shape:
                raise ValueError(f"the optimiser's {key} of parameter {k} came back as {tuple(value.shape)}, "
                                 f"not {tuple(params[k].shape)}")
    try:
        obj.load_state_dict(state)
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f"the optimiser's state does not load: {type(exc).__name__}: {str(exc)[:200]}") from None
