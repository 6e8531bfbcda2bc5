"""Can the grades be trusted? Honest answers, attacks, the sandbox itself, and hidden tests.

1. Correct answers written in many ordinary styles get full marks (status ``ok``).
2. Each class of attack, combined with a wrong answer (or with an attempt to get points without
   one), scores nothing, leaves nothing behind (files, processes) and reaches nothing outside.
3. The sandbox, probed from inside through ``autograder.remote.StudentProcess``.
4. The feedback of a failing hidden test shows no hidden code, inputs or expected values, and the
   student's strings are HTML-escaped.

Parts 1, 2 and 4 are graded in ONE ``grade()`` run (module-scoped fixture ``batch``) of the
fixture course (tests/fixtures/course: ``sft_loss`` 1 visible + 2 hidden points,
``sequence_log_prob`` 1 + 1). Needs bubblewrap (``bwrap``), as the grader does.
"""
from __future__ import annotations

import hashlib
import html
import json
import os
import re
import socket
import sqlite3
import sysconfig
import threading
import time
import uuid
from pathlib import Path

import nbformat
import pytest
import torch

from autograder import notebooks as nbs
from autograder import remote, sandbox
from autograder.grade import grade
from autograder.pool import GradingOptions
from demo_course import COURSE, REPLAY_SEQ, REPLAY_SFT, SEQ_OK, SFT_OK, SOURCE, gradebook_scores, with_answers

REPO = Path(__file__).resolve().parent.parent
SITE = Path(sysconfig.get_paths()["purelib"])
NOBODY = 65534
MARK = f"rltrust{uuid.uuid4().hex[:10]}"  # names every file/process an attack tries to leave behind

SFT_WRONG = "def sft_loss(token_logps, mask):\n    return torch.zeros((), dtype=token_logps.dtype)\n"

pytestmark = pytest.mark.skipif(sandbox.bwrap_path() is None, reason="bubblewrap (bwrap) is not installed")


# ----------------------------------------------------------------------------- notebooks
def student_nb(sft: str = SFT_OK, seq: str = SEQ_OK, added: tuple = ()):
    """The release with both answer cells filled in; ``added``: (grade id of the cell to insert
    before, or None for the end, source) for code cells the student added (no nbgrader metadata)."""
    nb = with_answers({"sft_loss": sft, "sequence_log_prob": seq})
    for before, source in added:
        cell = nbformat.v4.new_code_cell(source)
        if before is None:
            nb.cells.append(cell)
        else:
            at = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == before)
            nb.cells.insert(at, cell)
    return nb


# ----------------------------------------------------------------------------- 1. honest styles
HONEST = {
    "import_re": dict(sft=(
        "import re\n\n"
        "def sft_loss(token_logps, mask):\n"
        "    if not re.fullmatch(r'torch\\.\\w+', str(token_logps.dtype)):\n"
        "        raise TypeError('unexpected dtype')\n"
        "    m = mask.to(token_logps.dtype)\n"
        "    return -(token_logps * m).sum() / m.sum()\n")),
    "type_name": dict(sft=(
        "def sft_loss(token_logps, mask):\n"
        "    if not isinstance(token_logps, torch.Tensor):\n"
        "        raise TypeError(f'token_logps should be a tensor, not {type(token_logps).__name__}')\n"
        "    if token_logps.shape != mask.shape:\n"
        "        raise ValueError(f'shapes differ: {type(mask).__name__} {tuple(mask.shape)}')\n"
        "    m = mask.to(token_logps.dtype)\n"
        "    return -(token_logps * m).sum() / m.sum()\n")),
    "list_remove": dict(seq=(
        "def sequence_log_prob(token_logps, mask):\n"
        "    dims = list(range(token_logps.dim()))\n"
        "    dims.remove(0)  # every dimension but the batch\n"
        "    return (token_logps * mask.to(token_logps.dtype)).sum(dim=dims)\n")),
    "super_init": dict(sft=(
        "class _Masked:\n"
        "    def __init__(self, values, mask):\n"
        "        self.values, self.mask = values, mask.to(values.dtype)\n\n"
        "class _MaskedMean(_Masked):\n"
        "    def __init__(self, values, mask):\n"
        "        super().__init__(values, mask)\n\n"
        "    def value(self):\n"
        "        return (self.values * self.mask).sum() / self.mask.sum()\n\n"
        "def sft_loss(token_logps, mask):\n"
        "    return -_MaskedMean(token_logps, mask).value()\n")),
    "method_min_next": dict(seq=(
        "class Rows:\n"
        "    def __init__(self, lp, mask):\n"
        "        self.lp, self.mask, self.i = lp, mask.to(lp.dtype), 0\n\n"
        "    def next(self):\n"
        "        row = (self.lp[self.i] * self.mask[self.i]).sum()\n"
        "        self.i += 1\n"
        "        return row\n\n"
        "    def min(self):\n"
        "        return self.lp.min()\n\n"
        "def sequence_log_prob(token_logps, mask):\n"
        "    rows = Rows(token_logps, mask)\n"
        "    assert rows.min() <= 0, 'log-probabilities are never positive'\n"
        "    return torch.stack([rows.next() for _ in range(token_logps.shape[0])])\n")),
    "locals_reference_signal_input": dict(sft=(
        "def sft_loss(token_logps, mask):\n"
        "    input = token_logps\n"
        "    signal = mask.to(input.dtype)\n"
        "    reference = (input * signal).sum()\n"
        "    return -reference / signal.sum()\n")),
    "timeit_magic": dict(sft=SFT_OK + "\n%timeit -n 1 -r 1 sft_loss(torch.zeros(2, 3), torch.ones(2, 3))\n"),
    "memo_dict": dict(sft=(
        "_kernels = {}\n\n"
        "def sft_loss(token_logps, mask):\n"
        "    key = (token_logps.dtype, mask.dtype)\n"
        "    if key not in _kernels:\n"
        "        _kernels[key] = lambda lp, m: -(lp * m.to(lp.dtype)).sum() / m.to(lp.dtype).sum()\n"
        "    return _kernels[key](token_logps, mask)\n")),
    "global_counter": dict(sft=(
        "DEBUG_CALLS = 0\n\n"
        "def sft_loss(token_logps, mask):\n"
        "    global DEBUG_CALLS\n"
        "    DEBUG_CALLS += 1\n"
        "    m = mask.to(token_logps.dtype)\n"
        "    return -(token_logps * m).sum() / m.sum()\n")),
    "added_helper_cell": dict(
        seq="def sequence_log_prob(token_logps, mask):\n    return masked_sum(token_logps, mask)\n",
        added=(("sequence_log_prob", "def masked_sum(x, m):\n    return (x * m.to(x.dtype)).sum(-1)\n"),)),
    "helper_cell_after": dict(
        sft="def sft_loss(token_logps, mask):\n    return -masked_mean(token_logps, mask)\n",
        added=((None, "def masked_mean(x, m):\n    m = m.to(x.dtype)\n    return (x * m).sum() / m.sum()\n"),)),
    "numpy_roundtrip": dict(seq=(
        "import numpy as np\n\n"
        "def sequence_log_prob(token_logps, mask):\n"
        "    m = torch.from_numpy(np.asarray(mask.numpy(), dtype=np.float64)).to(token_logps.dtype)\n"
        "    return (token_logps * m).sum(-1)\n")),
    "einsum": dict(seq=(
        "def sequence_log_prob(token_logps, mask):\n"
        "    return torch.einsum('bt,bt->b', token_logps, mask.to(token_logps.dtype))\n")),
    "lambda": dict(sft="sft_loss = lambda token_logps, mask: -(token_logps * mask.to(token_logps.dtype)).sum() "
                       "/ mask.to(token_logps.dtype).sum()\n"),
    "functools_partial": dict(sft=(
        "import functools\n\n"
        "def _masked_mean(token_logps, mask, sign=1.0):\n"
        "    m = mask.to(token_logps.dtype)\n"
        "    return sign * (token_logps * m).sum() / m.sum()\n\n"
        "sft_loss = functools.partial(_masked_mean, sign=-1.0)\n")),
    "typing_annotations": dict(sft=(
        "from typing import Optional\n\n"
        "def sft_loss(token_logps: torch.Tensor, mask: torch.Tensor, eps: Optional[float] = None) -> torch.Tensor:\n"
        "    m: torch.Tensor = mask.to(token_logps.dtype)\n"
        "    return -(token_logps * m).sum() / (m.sum() if eps is None else m.sum() + eps)\n")),
    "begin_markers_in_text": dict(sft=(
        "def sft_loss(token_logps, mask):\n"
        "    \"\"\"Masked mean NLL.\n\n"
        "    Notes copied from the course: ### BEGIN HIDDEN TESTS / ### END HIDDEN TESTS mark the\n"
        "    hidden part of a test cell.\n"
        "    \"\"\"\n"
        "    ### BEGIN SOLUTION\n"
        "    m = mask.to(token_logps.dtype)\n"
        "    return -(token_logps * m).sum() / m.sum()\n"
        "    ### END SOLUTION\n")),
    "print_inside": dict(sft=(
        "def sft_loss(token_logps, mask):\n"
        "    print('shapes', token_logps.shape, mask.shape)\n"
        "    m = mask.to(token_logps.dtype)\n"
        "    loss = -(token_logps * m).sum() / m.sum()\n"
        "    print('loss', loss)\n"
        "    return loss\n")),
    "star_import": dict(seq=(
        "from torch import *\n\n"
        "def sequence_log_prob(token_logps, mask):\n"
        "    return where(mask.bool(), token_logps, zeros_like(token_logps)).sum(-1)\n")),
    "wraps_decorator": dict(sft=(
        "import functools\n\n"
        "def logged(fn):\n"
        "    @functools.wraps(fn)\n"
        "    def inner(*args, **kwargs):\n"
        "        return fn(*args, **kwargs)\n"
        "    return inner\n\n"
        "@logged\n" + SFT_OK)),
    "callable_class": dict(sft=(
        "class SFTLoss:\n"
        "    def __call__(self, token_logps, mask):\n"
        "        m = mask.to(token_logps.dtype)\n"
        "        return -(token_logps * m).sum() / m.sum()\n\n"
        "sft_loss = SFTLoss()\n")),
    "recursion": dict(seq=(
        "def sequence_log_prob(token_logps, mask):\n"
        "    if token_logps.shape[0] == 0:\n"
        "        return token_logps.new_zeros(0)\n"
        "    head = (token_logps[0] * mask[0].to(token_logps.dtype)).sum().unsqueeze(0)\n"
        "    return torch.cat([head, sequence_log_prob(token_logps[1:], mask[1:])])\n")),
    "generator_expression": dict(seq=(
        "def sequence_log_prob(token_logps, mask):\n"
        "    return torch.stack([sum(l * float(k) for l, k in zip(row, mrow))\n"
        "                        for row, mrow in zip(token_logps, mask)])\n")),
    "assert_inside_unused_os": dict(sft=(
        "import os\n\n"
        "def sft_loss(token_logps, mask):\n"
        "    assert token_logps.shape == mask.shape, 'token_logps and mask must have the same shape'\n"
        "    m = mask.to(token_logps.dtype)\n"
        "    return -(token_logps * m).sum() / m.sum()\n")),
    "no_grad_normaliser": dict(sft=(
        "def sft_loss(token_logps, mask):\n"
        "    m = mask.to(token_logps.dtype)\n"
        "    with torch.no_grad():\n"
        "        n = m.sum()  # a count: no gradient needed\n"
        "    return -(token_logps * m).sum() / n\n")),
    "closure_factory_kwonly": dict(sft=(
        "def make_loss(*, sign=-1.0):\n"
        "    def loss(token_logps, mask):\n"
        "        m = mask.to(token_logps.dtype)\n"
        "        return sign * (token_logps * m).sum() / m.sum()\n"
        "    return loss\n\n"
        "sft_loss = make_loss()\n")),
    "main_guard_selftest": dict(sft=SFT_OK + (
        "\nif __name__ == '__main__':\n"
        "    assert abs(float(sft_loss(torch.tensor([[-1.0, -3.0]]), torch.tensor([[1.0, 1.0]]))) - 2.0) < 1e-6\n")),
    "own_test_cell_and_helper_package": dict(
        seq=("from rlcourse.checks import check_shape\n\n"
             "def sequence_log_prob(token_logps, mask):\n"
             "    out = (token_logps * mask.to(token_logps.dtype)).sum(-1)\n"
             "    check_shape(out, token_logps.shape[:1], 'sequence_log_prob')\n"
             "    return out\n"),
        added=((None, "out = sequence_log_prob(torch.tensor([[-1.0, -2.0]]), torch.ones(1, 2))\n"
                      "assert torch.allclose(out, torch.tensor([-3.0])), out\nout\n"),)),
    "scratch_cell_that_fails": dict(
        added=(("sft_loss", "x = undefined_name + 1  # a scratch cell left broken\n"),)),
    "edited_demo_cell_and_plot": dict(added=((None, (
        "import matplotlib.pyplot as plt\n"
        "for step in range(STEPS):\n    pass\n"
        "plt.plot([float(sft_loss(torch.zeros(2, 3), torch.ones(2, 3)))])\nplt.show()\n")),)),
    "dataclass_and_where": dict(sft=(
        "from dataclasses import dataclass\n\n"
        "@dataclass\n"
        "class Batch:\n"
        "    logps: torch.Tensor\n"
        "    mask: torch.Tensor\n\n"
        "def sft_loss(token_logps, mask):\n"
        "    b = Batch(token_logps, mask.bool())\n"
        "    picked = torch.where(b.mask, b.logps, torch.zeros_like(b.logps))\n"
        "    return -picked.sum() / b.mask.sum().to(b.logps.dtype)\n")),
}


# ----------------------------------------------------------------------------- 2. attacks
def attacks(ctx: dict) -> dict:
    """student -> (notebook, expected sft_loss points, expected sequence_log_prob points or None,
    a status it must have or None). Each attack would raise a score if it worked."""
    out_dir, gradebook = ctx["out"], ctx["gradebook"]
    A = {}

    # reaching the reference answers: whatever is found is used as the answer
    A["ref_imports"] = (
        "import importlib, inspect, pkgutil, sys\n"
        "_found = None\n\n"
        "def _try(get):\n"
        "    global _found\n"
        "    if _found is None:\n"
        "        try:\n"
        "            fn = get()\n"
        "            if callable(fn):\n"
        "                _found = fn\n"
        "        except BaseException:\n"
        "            pass\n\n"
        "def _scan():\n"
        "    import rlcourse\n"
        "    for info in pkgutil.iter_modules(rlcourse.__path__):\n"
        "        try:\n"
        "            mod = importlib.import_module('rlcourse.' + info.name)\n"
        "        except BaseException:\n"
        "            continue\n"
        "        for value in list(vars(mod).values()):\n"
        "            if callable(value) and getattr(value, '__name__', '') == 'sft_loss':\n"
        "                return value\n"
        "            if inspect.ismodule(value) and hasattr(value, 'sft_loss'):\n"
        "                return value.sft_loss\n\n"
        "def _from_file(path):\n"
        "    import importlib.util\n"
        "    spec = importlib.util.spec_from_file_location('_r', path)\n"
        "    mod = importlib.util.module_from_spec(spec)\n"
        "    spec.loader.exec_module(mod)\n"
        "    return mod.sft_loss\n\n"
        "def _repo_on_path():\n"
        f"    sys.path.insert(0, {str(REPO)!r})\n"
        "    for name in [m for m in sys.modules if m.startswith('rlcourse')]:\n"
        "        del sys.modules[name]\n"
        "    importlib.invalidate_caches()\n"
        "    return importlib.import_module('rlcourse.reference').sft_loss\n\n"
        "_try(lambda: __import__('rlcourse.reference', fromlist=['sft_loss']).sft_loss)\n"
        "_try(lambda: importlib.import_module('rlcourse.' + ''.join(['ref', 'ere', 'nce'])).sft_loss)\n"
        "_try(lambda: getattr(importlib.import_module('rlcourse.rollout'), 'sft_loss'))\n"
        "_try(lambda: getattr(importlib.import_module('rlcourse.rewards'), 'reference').sft_loss)\n"
        "_try(lambda: getattr(__import__('rlcourse'), 'reference').sft_loss)\n"
        "_try(_scan)\n"
        f"_try(lambda: _from_file({str(REPO / 'rlcourse' / 'reference.py')!r}))\n"
        "_try(lambda: _from_file('/grader/rlcourse/reference.py'))\n"
        "_try(_repo_on_path)\n\n"
        "def sft_loss(token_logps, mask):\n"
        "    if _found is not None:\n"
        "        return _found(token_logps, mask)\n"
        "    return torch.zeros((), dtype=token_logps.dtype)\n", 0, 2, "ok")

    # disabling the checks from inside: all of it happens in the sandbox only
    A["disable_checks"] = (
        "import builtins, sys, types\n"
        "import torch, numpy.testing\n"
        "import rlcourse.checks as C\n"
        "for _n in dir(C):\n"
        "    if _n.startswith(('check', 'fail')):\n"
        "        setattr(C, _n, lambda *a, **k: None)\n"
        "builtins.AssertionError = type('AssertionError', (Exception,), {})\n"
        "torch.allclose = lambda *a, **k: True\n"
        "numpy.testing.assert_allclose = lambda *a, **k: None\n"
        "sys.excepthook = lambda *a: None\n"
        "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n"
        "sys.modules['rlcourse.checks'] = types.ModuleType('rlcourse.checks')\n"
        "check_close = check_scalar = check_own_function = lambda *a, **k: None\n" + SFT_WRONG, 0, 2, "ok")
    # builtins that the student's own server needs too: whatever breaks is the student's own process
    A["patch_builtins"] = (
        "import builtins\n" + SFT_WRONG +
        "builtins.isinstance = lambda *a: True\nbuiltins.float = lambda *a: 1.5\n", 0, None, None)

    # objects that fool comparisons
    A["fool_tensor_subclass"] = (
        "class Liar(torch.Tensor):\n"
        "    @classmethod\n"
        "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
        "        if getattr(func, '__name__', '') in ('__eq__', 'allclose', 'isclose', 'equal'):\n"
        "            return True\n"
        "        return super().__torch_function__(func, types, args, kwargs or {})\n"
        "    def __eq__(self, other): return True\n"
        "    def __float__(self): return 1.5\n"
        "    def __sub__(self, other): return torch.zeros(())\n"
        "    def __rsub__(self, other): return torch.zeros(())\n"
        "    def __abs__(self): return torch.zeros(())\n"
        "    def double(self): return self\n"
        "    def detach(self): return self\n\n"
        "def sft_loss(token_logps, mask):\n"
        "    return torch.zeros((), dtype=token_logps.dtype).as_subclass(Liar)\n", 0, 2, "ok")
    A["fool_float_subclass"] = (
        "class Close(float):\n"
        "    def __eq__(self, other): return True\n"
        "    def __sub__(self, other): return Close(0.0)\n"
        "    def __rsub__(self, other): return Close(0.0)\n"
        "    def __abs__(self): return Close(0.0)\n"
        "    def __gt__(self, other): return False\n"
        "    def __le__(self, other): return True\n"
        "    def __float__(self): return 1.5\n\n"
        "def sft_loss(token_logps, mask):\n"
        "    return Close(0.0)\n", 0, 2, "ok")
    A["fool_custom_lt"] = (SFT_OK, 3, 0,
                           "ok", "class Always:\n"
                           "    def __lt__(self, other): return True\n"
                           "    def __le__(self, other): return True\n"
                           "    def __gt__(self, other): return False\n"
                           "    def __eq__(self, other): return True\n"
                           "    shape = (1,)\n\n"
                           "def sequence_log_prob(token_logps, mask):\n"
                           "    return Always()\n")

    # reading: the hidden tests' expected values, wherever the student can look
    known = [REPO / "solutions", COURSE / "solutions" / "demo" / "demo.ipynb", gradebook, out_dir, ctx["nbgrader"],
             REPO / "autograded", out_dir / ".grading"]
    A["read_files"] = (
        "import glob, os, re, time\n"
        "LEAKED = ''\n\n"
        "def _text(path):\n"
        "    try:\n"
        "        with open(path, 'rb') as fh:\n"
        "            return fh.read(5_000_000).decode('utf-8', 'replace')\n"
        "    except Exception:\n"
        "        return ''\n\n"
        "def _look(text):\n"
        "    global LEAKED\n"
        "    found = re.search(r'check_close\\(sft_loss\\(lp, m\\), ([0-9.+*/ ]+),', text)\n"
        "    if found and not LEAKED:\n"
        "        LEAKED = found.group(1)\n\n"
        "def _files(top, budget):\n"
        "    end = time.time() + budget\n"
        "    for d, dirs, files in os.walk(top):\n"
        "        dirs[:] = [x for x in dirs if x not in ('proc', 'sys', 'dev')]\n"
        "        for f in files:\n"
        "            if f.endswith(('.ipynb', '.db', '.json', '.jsonl', '.csv', '.log', '.html')) or 'solution' in d:\n"
        "                yield os.path.join(d, f)\n"
        "        if time.time() > end:\n"
        "            return\n\n"
        f"for top in {[str(p) for p in known]!r}:\n"
        "    if os.path.isfile(top):\n"
        "        _look(_text(top))\n"
        "    for p in _files(top, 0.5):\n"
        "        _look(_text(p))\n"
        "_look(str(dict(os.environ)))\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit():\n"
        "        for what in ('cmdline', 'environ', 'cwd/student.json', 'root/tmp'):\n"
        "            _look(_text(f'/proc/{pid}/{what}'))\n"
        "for fd in os.listdir('/proc/self/fd'):\n"
        "    _look(_text(f'/proc/self/fd/{fd}'))\n"
        "# the grader's folders, from where the sandbox's own mounts come from\n"
        "for line in _text('/proc/self/mountinfo').splitlines():\n"
        "    fields = line.split()\n"
        "    if len(fields) > 4 and fields[4] == '/grader':\n"
        "        tmp = os.path.dirname(fields[3])\n"
        "        for p in glob.glob(tmp + '/ws-*/*') + glob.glob(tmp + '/*'):\n"
        "            _look(_text(p))\n"
        "for p in _files('/', 2.0):\n"
        "    _look(_text(p))\n\n"
        "def sft_loss(token_logps, mask):\n"
        "    if LEAKED:  # the hidden test's expected value, as read from the grader's files\n"
        "        value = eval(LEAKED, {})\n"
        "        return torch.tensor(value if mask.dtype == torch.bool else 1.5, dtype=token_logps.dtype)\n"
        "    return torch.zeros((), dtype=token_logps.dtype)\n", 0, 2, "ok")

    # writing: the environment, the repository, the gradebook, the results, /tmp and /dev/shm
    ws = out_dir / ".grading" / "tmp" / f"ws-{hashlib.sha256(b'write_everywhere/demo/demo').hexdigest()[:16]}"
    targets = [SITE / f"{MARK}.pth", REPO / f"{MARK}.txt", REPO / "rlcourse" / f"{MARK}.py", COURSE / f"{MARK}.txt",
               out_dir / f"{MARK}.txt", out_dir / "grades.csv", ctx["nbgrader"] / f"{MARK}.txt",
               gradebook.parent / f"{MARK}.txt", ws / "result.json", Path("/tmp") / MARK, Path("/dev/shm") / MARK,
               Path("/tmp") / f"{MARK}.pth"]
    A["write_everywhere"] = (
        "import os, sqlite3\n"
        f"for target in {[str(t) for t in targets]!r}:\n"
        "    try:\n"
        "        os.makedirs(os.path.dirname(target), exist_ok=True)\n"
        "    except OSError:\n"
        "        pass\n"
        "    try:\n"
        "        with open(target, 'w') as fh:\n"
        f"            fh.write('import os; open(\"/tmp/{MARK}-pth-ran\", \"w\")\\n' if target.endswith('.pth') else "
        "'{\"success\": true, \"grades\": {\"test_sft_loss\": [1, 1], \"test_sft_loss_hidden\": [2, 2]}}')\n"
        "    except OSError:\n"
        "        pass\n"
        "try:\n"
        f"    con = sqlite3.connect({str(gradebook)!r})\n"
        "    con.execute('update grade set auto_score = 99')\n"
        "    con.commit()\n"
        "except Exception:\n"
        "    pass\n" + SFT_WRONG, 0, 2, "ok")

    # a daemon that would rewrite grades.csv after the batch
    A["daemon"] = (
        "import os\n"
        "def _daemon():\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        try:\n"
        "            os.setsid()\n"
        "            if os.fork() == 0:\n"
        f"                script = 'while :; do echo hacked > {out_dir}/grades.csv; sleep 0.2; done'\n"
        f"                os.execv('/bin/sh', ['sh', '-c', script, {MARK!r}])\n"
        "        finally:\n"
        "            os._exit(0)\n"
        "    os.waitpid(pid, 0)\n"
        "_daemon()\n" + SFT_WRONG, 0, 2, "ok")

    # killing the grader's processes and the student graded next to this one
    A["kill"] = (
        "import os, signal\n\n"
        "def _contained():  # only unprivileged, in a PID namespace: never on a bare test machine\n"
        "    return os.getuid() != 0 and len([p for p in os.listdir('/proc') if p.isdigit()]) < 50\n\n"
        "def sft_loss(token_logps, mask):\n"
        "    if _contained():\n"
        "        for pid in [os.getppid(), 1] + [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
        "            if pid != os.getpid():\n"
        "                try:\n"
        "                    os.kill(pid, signal.SIGKILL)\n"
        "                except OSError:\n"
        "                    pass\n"
        "        try:\n"
        "            os.kill(-1, signal.SIGKILL)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return torch.zeros((), dtype=token_logps.dtype)\n", 0, 2, None)

    # a modest fork bomb (300 processes at most, and only when contained)
    A["fork_bomb"] = (
        "import os, time\n"
        "FORKED = 0\n"
        "if os.getuid() != 0 and len([p for p in os.listdir('/proc') if p.isdigit()]) < 50:\n"
        "    for _ in range(300):\n"
        "        try:\n"
        "            pid = os.fork()\n"
        "        except OSError:\n"
        "            break\n"
        "        if pid == 0:\n"
        "            try:\n"
        "                time.sleep(600)\n"
        "            finally:\n"
        "                os._exit(0)\n"
        "        FORKED += 1\n" + SFT_WRONG, 0, 2, None)

    # the network: a listener of the test on 127.0.0.1, on this machine's address and an abstract unix socket
    A["network"] = (
        "import socket\n"
        "GOT = b''\n"
        f"for family, address in [(socket.AF_INET, ('127.0.0.1', {ctx['port']})), "
        f"(socket.AF_INET, ({ctx['host_ip']!r}, {ctx['port']})), (socket.AF_UNIX, {ctx['abstract']!r})]:\n"
        "    try:\n"
        "        s = socket.socket(family, socket.SOCK_STREAM)\n"
        "        s.settimeout(1)\n"
        "        s.connect(address)\n"
        "        s.sendall(b'sft_loss?')\n"
        "        GOT += s.recv(100)\n"
        "    except OSError:\n"
        "        pass\n"
        "try:\n"
        f"    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'hi', ('127.0.0.1', {ctx['port']}))\n"
        "except OSError:\n"
        "    pass\n\n"
        "def sft_loss(token_logps, mask):\n"
        "    if GOT:\n"
        "        return torch.tensor(float(GOT.decode()), dtype=token_logps.dtype)\n"
        "    return torch.zeros((), dtype=token_logps.dtype)\n", 0, 2, "ok")

    # breaking the protocol is evidence: the exercise scores 0 and is flagged
    A["forge_protocol"] = (
        "import os\n\n"
        "def sft_loss(token_logps, mask):\n"
        "    for fd in os.listdir('/proc/self/fd'):\n"
        "        try:\n"
        "            if os.readlink(f'/proc/self/fd/{fd}').startswith('pipe:'):\n"
        "                os.write(int(fd), b'xxxx')\n"
        "        except OSError:\n"
        "            pass\n"
        "    return torch.zeros((), dtype=token_logps.dtype)\n", 0, 2, "tampering")

    table = {}
    for name, spec in A.items():
        if len(spec) == 5:  # (sft, sft points, seq points, status, seq source)
            sft, p1, p2, status, seq = spec
            table[name] = (student_nb(sft=sft, seq=seq), p1, p2, status)
        else:
            sft, p1, p2, status = spec
            table[name] = (student_nb(sft=sft), p1, p2, status)
    return table


# ----------------------------------------------------------------------------- 4. hidden tests, escaping
def _raise_with(kind: str, name: str) -> str:
    return (f"def {name}(token_logps, mask):\n"
            "    print('my inputs', token_logps.tolist(), mask.tolist())\n" + kind)


LEAKERS = {
    # right on the visible test, wrong on the hidden ones
    "leak_wrong": (student_nb(
        sft=("def sft_loss(token_logps, mask):\n    m = mask.to(token_logps.dtype)\n"
             "    return (-(token_logps * m).sum(-1) / m.sum(-1)).mean()\n"),
        seq=("def sequence_log_prob(token_logps, mask):\n    m = mask.to(token_logps.dtype)\n"
             "    return (token_logps * m).sum(-1) / m.sum(-1)\n")), 1, 1, "ok"),
    # the student's own exception text carries the inputs
    "leak_raise": (student_nb(
        sft=_raise_with("    raise ValueError(str(token_logps.tolist()) + str(mask.tolist()))\n", "sft_loss"),
        seq=_raise_with("    raise ValueError(str(token_logps.tolist()) + str(mask.tolist()))\n", "sequence_log_prob")),
        0, 0, "ok"),
    "leak_assert": (student_nb(
        sft=_raise_with("    assert False, str(token_logps.tolist()) + str(mask.tolist())\n", "sft_loss"),
        seq=_raise_with("    assert False, str(token_logps.tolist()) + str(mask.tolist())\n", "sequence_log_prob")),
        0, 0, "ok"),
    # ... or the name of an exception class made on the fly
    "leak_typename": (student_nb(
        sft=_raise_with("    raise type('E' + str(token_logps.tolist()) + str(mask.tolist()), (Exception,), {})('x')\n",
                        "sft_loss"),
        seq=_raise_with("    raise type('E' + str(token_logps.tolist()) + str(mask.tolist()), (Exception,), {})('x')\n",
                        "sequence_log_prob")), 0, 0, "ok"),
    # HTML in a comment, a string, an exception message and an exception class name
    "xss": (student_nb(
        sft=("# <script>alert(1)</script>\n"
             "NOTE = '<script>alert(2)</script>'\n" + SFT_OK),
        seq=("def sequence_log_prob(token_logps, mask):\n"
             "    raise type('<img src=x onerror=alert(3)>', (Exception,), {})('<script>alert(4)</script>')\n")),
        3, 0, "ok"),
}


def hidden_blocks() -> list[str]:
    src = nbs.load_source("demo", SOURCE)
    out = []
    for cell in src.nb.cells:
        if nbs.nbmeta(cell).get("grade"):
            out += nbs.split_hidden(nbs.nbmeta(cell)["grade_id"], nbs.source_text(cell))[1]
    return out


# literal inputs and expected values of the fixture's hidden tests (and what they print as)
HIDDEN_VALUES = ["7.0 / 3", "2.33333", "[-6.0, -0.5]", "-6, -0.5", "[[-1.0, -1.0], [-4.0, -2.0]]",
                 "[[1, 0], [1, 1]]", "[[-1.0, -2.0, -3.0], [-0.5, 0.0, -1.0]]", "[[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]",
                 "[[True, False], [True, True]]"]


def page_text(page: str) -> str:
    """What a reader of the feedback page sees (tags dropped, entities decoded)."""
    text = re.sub(r"<script\b.*?</script>|<style\b.*?</style>", " ", page, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


# ----------------------------------------------------------------------------- the batch
def _processes():
    """pid -> (uid, cmdline, mountinfo) of every live process (read as root: also those in sandboxes).
    Zombies are left out: they run nothing, and reaping them is the job of this machine's init."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                continue
            uid = os.stat(f"/proc/{pid}").st_uid
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            try:
                mounts = Path(f"/proc/{pid}/mountinfo").read_text(errors="replace")
            except OSError:
                mounts = ""
            out[int(pid)] = (uid, cmd, mounts)
        except OSError:
            continue
    return out


def _leftovers(marker: str):
    """Processes of this test: any whose mounts show ``marker``'s folder (a sandbox of this test's batch:
    its /grader is bound from there), or that carry the attacks' MARK on their command line."""
    return {pid: cmd for pid, (uid, cmd, mounts) in _processes().items() if MARK in cmd or marker in mounts}


def _host_ip() -> str:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))
        return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()


class Listener:
    """TCP (all addresses) and abstract unix listeners that record every connection."""

    def __init__(self):
        self.hits = []
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("0.0.0.0", 0))
        self.tcp.listen(16)
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.abstract = f"\0{MARK}"
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind(self.abstract)
        self.unix.listen(16)
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        import select

        while not self.stop:
            ready, _, _ = select.select([self.tcp, self.udp, self.unix], [], [], 0.2)
            for s in ready:
                if s is self.udp:
                    self.hits.append(("udp", s.recvfrom(100)))
                else:
                    conn, addr = s.accept()
                    self.hits.append(("stream", addr))
                    try:
                        conn.sendall(b"2.3333333333333335")
                    finally:
                        conn.close()

    def close(self):
        self.stop = True
        self.thread.join(5)
        for s in (self.tcp, self.udp, self.unix):
            s.close()


def _snapshot_files():
    """Files an escaped sandbox could leave: in /tmp and /dev/shm (top level and owned by nobody or
    named after MARK), and in site-packages / the repository / the course (named after MARK or .pth)."""
    found = set()
    for top in (Path("/tmp"), Path("/dev/shm")):
        for p in top.iterdir():
            try:
                if MARK in p.name or p.lstat().st_uid != 0:  # sandboxed code never runs as root
                    found.add(str(p))
            except OSError:
                pass
    for top in (SITE, REPO, REPO / "rlcourse", REPO / "autograder", COURSE):
        found |= {str(p) for p in top.glob(f"*{MARK}*")}
    found |= {str(p) for p in SITE.glob("*.pth")}
    return found


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust")
    out, nbgrader_dir, gradebook = root / "out", root / "course", root / "gradebook.db"
    listener = Listener()
    ctx = {"out": out, "gradebook": gradebook, "nbgrader": nbgrader_dir, "port": listener.port,
           "host_ip": _host_ip(), "abstract": listener.abstract}
    expected = {}
    notebooks = {}
    for name, spec in HONEST.items():
        notebooks[f"honest_{name}"] = student_nb(spec.get("sft", SFT_OK), spec.get("seq", SEQ_OK), spec.get("added", ()))
        expected[f"honest_{name}"] = (3, 2, "ok")
    for name, (nb, p1, p2, status) in {**attacks(ctx), **LEAKERS}.items():
        notebooks[name] = nb
        expected[name] = (p1, p2, status)
    for name, nb in notebooks.items():
        d = root / "submitted" / name / "demo"
        d.mkdir(parents=True)
        (d / "demo.ipynb").write_text(nbformat.writes(nb))
    files_before = _snapshot_files()
    solutions_before = {p: p.read_bytes() for p in (COURSE / "solutions").rglob("*") if p.is_file()}
    t0 = time.time()
    try:
        rows = grade(root / "submitted", out, COURSE, db_url=f"sqlite:///{gradebook}", quiet=True,
                     nbgrader_dir=nbgrader_dir, fresh=True,
                     options=GradingOptions(workers=2, timeout=120, cell_timeout=20, call_seconds=5))
    finally:
        listener.close()
    seconds = time.time() - t0
    time.sleep(1.5)  # a daemon that survived would have rewritten grades.csv by now
    result = {
        "root": root, "out": out, "rows": {r["student"]: r for r in rows}, "expected": expected,
        "seconds": seconds, "hits": list(listener.hits), "leftovers": _leftovers(str(root)),
        "new_files": _snapshot_files() - files_before, "gradebook": gradebook,
        "solutions_changed": solutions_before != {p: p.read_bytes() for p in (COURSE / "solutions").rglob("*")
                                                  if p.is_file()},
        "grades_csv": (out / "grades.csv").read_text(),
    }
    yield result
    for path in result["new_files"]:  # never leave an escaped attack's file behind
        try:
            Path(path).unlink()
        except OSError:
            pass


def _points(row, name):
    return float(row[name])


def test_honest_styles_get_full_marks(batch):
    rows = batch["rows"]
    assert len(HONEST) >= 20
    bad = {}
    for name in HONEST:
        row = rows.get(f"honest_{name}")
        got = None if row is None else (row["sft_loss"], row["sequence_log_prob"], row["total"], row["status"])
        if got != ("3", "2", "5", "ok"):
            bad[name] = (got, row and row["notes"])
    assert not bad, bad


@pytest.mark.parametrize("name", ["ref_imports", "disable_checks", "patch_builtins", "fool_tensor_subclass",
                                  "fool_float_subclass", "fool_custom_lt", "read_files", "write_everywhere",
                                  "daemon", "kill", "fork_bomb", "network", "forge_protocol"])
def test_attack_scores_nothing(batch, name):
    row = batch["rows"][name]
    sft, seq, status = batch["expected"][name]
    got = (_points(row, "sft_loss"), _points(row, "sequence_log_prob"))
    want = (float(sft), float(seq) if seq is not None else got[1])
    assert got == want, (got, want, row["status"], row["notes"])
    if name != "patch_builtins":
        assert row["status"] != "error", row["notes"]
    if status is not None:
        assert set(status.split("+")) <= set(row["status"].split("+")), (row["status"], row["notes"])


def test_forged_protocol_is_the_evidence(batch):
    row = batch["rows"]["forge_protocol"]
    assert "tampering" in row["status"] and "sft_loss" in row["notes"], row["notes"]
    assert row["sft_loss"] == "0" and row["sequence_log_prob"] == "2"


def test_nothing_called_tampering_without_evidence(batch):
    flagged = {s for s, r in batch["rows"].items() if "tampering" in r["status"]}
    assert flagged == {"forge_protocol"}, {s: batch["rows"][s]["notes"] for s in flagged}


def test_no_network_reached(batch):
    assert batch["hits"] == []


def test_nothing_left_behind(batch):
    assert batch["leftovers"] == {}, batch["leftovers"]
    assert batch["new_files"] == set(), batch["new_files"]
    assert not batch["solutions_changed"]
    assert "hacked" not in batch["grades_csv"] and "hacked" not in (batch["out"] / "grades.csv").read_text()
    assert not list(batch["out"].glob(f"*{MARK}*")) and not list(batch["root"].rglob(f"*{MARK}*"))


def test_gradebook_untouched_by_students(batch):
    con = sqlite3.connect(batch["gradebook"])
    try:
        scores = gradebook_scores(con)
        top = con.execute("select max(auto_score) from grade").fetchone()[0]
    finally:
        con.close()
    assert top <= 2
    assert scores == {s: float(r["total"]) for s, r in batch["rows"].items()}


def test_every_honest_student_was_graded_next_to_the_attackers(batch):
    """Every honest student was graded next to the attackers (2 workers) and still got 5/5."""
    assert sum(1 for s in batch["rows"] if s.startswith("honest_")) == len(HONEST)


# ----------------------------------------------------------------------------- 4. feedback
@pytest.mark.parametrize("name", sorted(LEAKERS))
def test_hidden_tests_never_leak(batch, name):
    row = batch["rows"][name]
    sft, seq, _ = batch["expected"][name]
    assert (_points(row, "sft_loss"), _points(row, "sequence_log_prob")) == (sft, seq), row["notes"]
    page = (batch["out"] / "feedback" / name / "demo" / "demo.html").read_text()
    text = page_text(page)
    assert "BEGIN HIDDEN TESTS" not in text and "END HIDDEN TESTS" not in text
    leaked_lines = [line.strip() for block in hidden_blocks() for line in block.splitlines()
                    if line.strip() and line.strip() in text]
    assert not leaked_lines, leaked_lines
    leaked_values = [v for v in HIDDEN_VALUES if v in text]
    assert not leaked_values, (leaked_values, [text[max(0, text.find(v) - 200):text.find(v) + 100] for v in leaked_values])
    assert "hidden test failed" in text.lower() or name == "xss"


def test_visible_failures_do_show_the_students_message(batch):
    """The other side of the coin: on a visible test the student's own message is shown."""
    text = page_text((batch["out"] / "feedback" / "leak_raise" / "demo" / "demo.html").read_text())
    assert "[[-1.0, -2.0, -3.0]]" in text  # the visible sft_loss input, in the student's ValueError


def test_student_strings_are_escaped(batch):
    page = (batch["out"] / "feedback" / "xss" / "demo" / "demo.html").read_text()
    for raw in ("<script>alert(1)</script>", "<script>alert(2)</script>", "<img src=x onerror=alert(3)>",
                "<script>alert(4)</script>"):
        assert raw not in page, raw
    text = page_text(page)
    assert "<script>alert(1)</script>" in text  # the comment is shown, escaped


def test_hidden_inputs_recorded_then_raised_never_reach_the_feedback(tmp_path):
    """Issue 26: the student's process kept its state across tests, so a function could record its hidden test's
    inputs and another raise them in its visible test, printed in full in the feedback and results.json. The
    process that runs a visible test has never seen a hidden input (it is started afresh after a hidden block)."""
    import csv

    from autograder import one

    sub = tmp_path / "demo.ipynb"
    sub.write_text(nbformat.writes(student_nb(sft=REPLAY_SFT, seq=REPLAY_SEQ)))
    result = one.grade_one(sub, tmp_path / "out", COURSE, call_seconds=10)
    (nb,) = result["notebooks"]
    assert nb["points"] == {"sft_loss": 3.0, "sequence_log_prob": 0.0}, nb
    shown = {"results.json": json.dumps(result), "gradescope results.json": json.dumps(one.gradescope(result)),
             "feedback": page_text(Path(nb["feedback"]).read_text()),
             "grades.csv": json.dumps(list(csv.reader(open(tmp_path / "out" / "grades.csv"))))}
    for where, text in shown.items():
        leaked = [v for v in HIDDEN_VALUES if v in text]
        assert not leaked, (where, leaked, text[text.find("REPLAY"):][:600])
    assert "REPLAY [] FILE" in shown["feedback"]  # the visible test ran in a process that saw no test before it


def test_batch_runtime_is_recorded(batch):
    print(f"\ngraded {len(batch['rows'])} notebooks in {batch['seconds']:.0f} s")
    assert len(batch["rows"]) == len(batch["expected"])


# ----------------------------------------------------------------------------- 3. the sandbox itself
PROBES = r"""
import os, socket, sys

def uid():
    return [os.getuid(), os.geteuid(), os.getgid(), os.getegid()]

def can_read(path):
    try:
        with open(path, 'rb') as fh:
            return fh.read(100).decode(errors='replace')
    except OSError as exc:
        return type(exc).__name__

def exists(path):
    return os.path.exists(path)

def can_write(path):
    try:
        with open(path, 'w') as fh:
            fh.write('x')
        return True
    except OSError:
        return False

def pids():
    return sorted(int(p) for p in os.listdir('/proc') if p.isdigit())

def connect(family, address):
    s = socket.socket(getattr(socket, family), socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(address if isinstance(address, str) else tuple(address))
        return 'connected'
    except OSError as exc:
        return type(exc).__name__
    finally:
        s.close()

def fill(where, chunk_mb, max_mb):
    written = 0
    buf = b'\0' * (chunk_mb << 20)
    try:
        while written < max_mb:
            with open(f'{where}/fill{written}', 'wb') as fh:
                fh.write(buf)
            written += chunk_mb
        return ['no limit', written]
    except OSError as exc:
        return [type(exc).__name__, written]

def daemon(marker):
    if os.fork() == 0:
        try:
            os.setsid()
            os.execv('/bin/sh', ['sh', '-c', 'sleep 600; :', marker])
        finally:
            os._exit(0)
    return True

def forever():
    while True:
        pass

def die():
    os._exit(3)

def ping(x):
    return x + 1

def grad_fn(x, y, z):
    return (x ** 2 * y).sum() + x.sin().sum() + (z.detach() * y).sum(), (x * y).sum(-1)

def sample(n, generator):
    return torch.randn(n, generator=generator)

def bump(t):
    t.add_(1)
    return None

class Sub(torch.Tensor):
    def __eq__(self, other):
        return True

def subclass():
    return torch.arange(3.0).as_subclass(Sub)

def forge():
    for fd in os.listdir('/proc/self/fd'):
        try:
            if os.readlink(f'/proc/self/fd/{fd}').startswith('pipe:'):
                os.write(int(fd), b'xxxx')
        except OSError:
            pass
    return 1.0

def forge_reply(kind):
    # a reply frame of its own: 200,000 levels deep, or a million empty lists in 3 MB
    body = b'{"ok":' + b'[' * 200_000 + b']' * 200_000 + b'}' if kind == 'deep' else b'{"ok":[' + b'[],' * 999_999 + b'[]]}'
    for fd in os.listdir('/proc/self/fd'):
        try:
            if os.readlink(f'/proc/self/fd/{fd}').startswith('pipe:'):
                os.write(int(fd), len(body).to_bytes(4, 'big') + body)
        except OSError:
            pass
    return 1.0

def alloc(gb):
    import torch
    return torch.zeros(int(gb * 2**28)).sum().item()   # float32: gb GB
"""
PROBE_NAMES = ["uid", "can_read", "exists", "can_write", "pids", "connect", "fill", "daemon", "forever", "die",
               "ping", "grad_fn", "sample", "bump", "subclass", "forge", "forge_reply", "alloc"]


@pytest.fixture(scope="module")
def sandbox_root(tmp_path_factory):
    return sandbox.prepare_root(tmp_path_factory.mktemp("sbroot") / "root")


def _job(root: Path, work: Path, **extra) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    job = {"sandbox_root": str(root), "log": str(work / "student.log"), "cwd": str(work), "prelude": ["import torch"],
           "cells": [{"id": 0, "source": PROBES, "exercise": None}], "names": PROBE_NAMES, "call_seconds": 3,
           "cell_seconds": 10, "memory_gb": 4.0, "cpu_seconds": 120, "scratch_mb": 32, "threads": 1}
    job.update(extra)
    return job


@pytest.fixture(scope="module")
def student(sandbox_root, tmp_path_factory):
    work = tmp_path_factory.mktemp("sbwork")
    proc = remote.StudentProcess(_job(sandbox_root, work), work / "events.jsonl")
    proc.start()
    fns = {n: proc.function(n) for n in PROBE_NAMES}
    yield proc, fns, work
    proc.stop()


def test_sandbox_runs_unprivileged(student):
    proc, f, _ = student
    uid = proc.job.get("uid", getattr(sandbox, "NOBODY", NOBODY))  # nobody unless the job names another
    assert uid != 0 and f["uid"]() == [uid] * 4


def test_sandbox_cannot_read_outside(student, tmp_path):
    _, f, work = student
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    secret.chmod(0o644)
    solution = REPO / "solutions"
    some_solution = next(iter(sorted(solution.rglob("*.ipynb"))), SOURCE)
    for path in (secret, some_solution, SOURCE, COURSE / "solutions", REPO / "autograder" / "grade.py",
                 REPO / "rlcourse" / "reference.py", work / "events.jsonl", Path("/etc/shadow"), Path("/root")):
        assert f["can_read"](str(path)) in ("FileNotFoundError", "PermissionError", "IsADirectoryError"), path
    assert not f["exists"](str(secret)) and not f["exists"](str(solution))
    assert not f["exists"]("/grader/rlcourse/reference.py") and not f["exists"]("/grader/rlcourse/rollout.py")
    assert not f["exists"]("/grader/rlcourse/rewards.py")


def test_sandbox_cannot_write_outside_tmp(student, tmp_path):
    _, f, work = student
    tmp_path.chmod(0o777)  # even a folder anyone may write to is out of sight
    outside = [tmp_path / f"{MARK}-w", work / f"{MARK}-w", REPO / f"{MARK}-w", SITE / f"{MARK}.pth",
               Path("/grader") / f"{MARK}-w", Path("/") / f"{MARK}-w", Path(sysconfig.get_paths()["stdlib"]) / f"{MARK}-w"]
    wrote = [str(p) for p in outside if f["can_write"](str(p))]
    assert wrote == []
    assert f["can_write"](f"/tmp/{MARK}-w") and f["can_write"](f"/dev/shm/{MARK}-w")
    assert not [p for p in outside if p.exists()]
    assert not Path(f"/tmp/{MARK}-w").exists() and not Path(f"/dev/shm/{MARK}-w").exists()


def test_sandbox_sees_no_other_process(student):
    _, f, _ = student
    assert len(f["pids"]()) <= 3  # bubblewrap's init and the student's process


def test_sandbox_has_no_network(student):
    _, f, _ = student
    listener = Listener()
    try:
        assert f["connect"]("AF_INET", ["127.0.0.1", listener.port]) != "connected"
        assert f["connect"]("AF_INET", [_host_ip(), listener.port]) != "connected"
        assert f["connect"]("AF_UNIX", listener.abstract) != "connected"
        time.sleep(0.3)
    finally:
        listener.close()
    assert listener.hits == []


def test_sandbox_scratch_is_capped(student):
    _, f, _ = student
    error, written = f["fill"]("/tmp", 4, 200)  # scratch_mb=32
    assert error == "OSError" and written <= 32, (error, written)
    error, written = f["fill"]("/dev/shm", 8, 200)
    assert error == "OSError" and written <= 64, (error, written)


def test_call_timeout_then_next_call_works(student):
    proc, f, work = student
    t0 = time.time()
    with pytest.raises(remote.StudentTimeout):
        f["forever"]()
    assert time.time() - t0 < 3 + 2
    assert f["ping"](41) == 42
    assert any(json.loads(line)["kind"] == "timeout" for line in (work / "events.jsonl").read_text().splitlines())


def test_exit_in_a_call_then_next_call_works(student):
    proc, f, work = student
    with pytest.raises(remote.StudentCrashed):
        f["die"]()
    assert f["ping"](1) == 2


def test_gradients_through_the_bridge(student):
    _, f, _ = student
    x = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[1.0, 2.0, -3.0], [0.5, -0.5, 4.0]], dtype=torch.float64, requires_grad=True)
    z = torch.tensor([[3.0, 1.0, 2.0], [1.0, 1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    loss, rows = f["grad_fn"](x, y, z)
    (loss + 0.5 * rows.sum()).backward()
    remote_grads = (x.grad.clone(), y.grad.clone(), z.grad)
    x2, y2, z2 = (t.detach().clone().requires_grad_(True) for t in (x, y, z))
    l2, r2 = (x2 ** 2 * y2).sum() + x2.sin().sum() + (z2.detach() * y2).sum(), (x2 * y2).sum(-1)
    (l2 + 0.5 * r2.sum()).backward()
    assert torch.allclose(remote_grads[0], x2.grad) and torch.allclose(remote_grads[1], y2.grad)
    assert torch.allclose(loss.detach(), l2.detach()) and torch.allclose(rows.detach(), r2.detach())
    assert remote_grads[2] is None and z2.grad is None  # no gradient flows into a detached input


def test_generator_state_advances_as_a_local_call(student):
    _, f, _ = student
    g_remote, g_local = torch.Generator().manual_seed(123), torch.Generator().manual_seed(123)
    a = f["sample"](4, g_remote)
    b = torch.randn(4, generator=g_local)
    assert torch.equal(a, b)
    assert torch.equal(g_remote.get_state(), g_local.get_state())
    assert torch.equal(torch.randn(3, generator=g_remote), torch.randn(3, generator=g_local))


def test_in_place_change_of_an_argument_is_visible(student):
    _, f, _ = student
    t = torch.zeros(3)
    assert f["bump"](t) is None
    assert torch.equal(t, torch.ones(3))


def test_returned_subclass_arrives_as_a_plain_tensor(student):
    _, f, _ = student
    out = f["subclass"]()
    assert type(out) is torch.Tensor and torch.equal(out, torch.arange(3.0))
    assert not bool((out == torch.tensor([9.0, 9.0, 9.0])).any())


def test_protocol_forgery_is_caught(student):
    proc, f, work = student
    with pytest.raises(remote.StudentProtocolError):
        f["forge"]()
    kinds = [json.loads(line)["kind"] for line in (work / "events.jsonl").read_text().splitlines()]
    assert "protocol" in kinds
    assert f["ping"](2) == 3


def test_a_reply_past_the_limits_is_a_protocol_break(student):
    """Issue 26: a reply nested 200,000 deep raised RecursionError in the grader, untagged; a small reply of
    empty lists took the grader's kernel to gigabytes. Both are refused before decoding (tests/test_protocol.py)."""
    proc, f, work = student
    events = work / "events.jsonl"

    def breaks():
        return events.read_text().count('"kind": "protocol"') if events.exists() else 0

    for kind in ("deep", "wide"):
        before = breaks()
        with pytest.raises(remote.StudentProtocolError, match="elements"):
            f["forge_reply"](kind)
        assert breaks() == before + 1  # the grader tags it and scores that test 0
        assert f["ping"](2) == 3


def test_a_tensor_past_the_memory_limit_is_tagged_memory(student):
    """Issue 26: torch's allocator fails with a RuntimeError, not a MemoryError; a 20 GB tensor was tagged
    ``timeout``. It is the student's ``memory`` event, and the process goes on serving."""
    proc, f, work = student
    with pytest.raises(RuntimeError, match="allocate"):
        f["alloc"](20)
    events = [json.loads(line) for line in (work / "events.jsonl").read_text().splitlines()]
    assert ("memory", "alloc") in [(e["kind"], e["exercise"]) for e in events], events
    assert f["alloc"](0.001) == 0.0 and f["ping"](2) == 3


def test_prints_into_a_full_log_never_fail_the_students_code(monkeypatch):
    """Issue 26: once the student's log reached its file-size limit, every later ``print`` raised OSError and
    a correct answer scored 0. The student's output is dropped instead."""
    monkeypatch.syspath_prepend(str(REPO / "autograder" / "sandboxed"))  # as in the sandbox: student_server beside protocol
    from student_server import CappedOutput

    class Full:
        def write(self, text):
            raise OSError(27, "File too large")

        def flush(self):
            raise OSError(27, "File too large")

    out = CappedOutput(Full())
    assert out.write("hello\n") == 6 and out.write("again\n") == 6
    out.flush()


def test_stop_leaves_no_process(tmp_path):
    root = sandbox.prepare_root(tmp_path / "root")  # its own, so only this test's processes mount it
    work = tmp_path / "work"
    marker = f"{MARK}-stop"
    proc = remote.StudentProcess(_job(root, work), work / "events.jsonl")
    proc.start()
    daemon = proc.function("daemon")
    assert daemon(marker) is True
    time.sleep(0.3)
    running = {pid for pid, (uid, cmd, mounts) in _processes().items()
               if marker in cmd or str(root) in mounts}
    assert len(running) >= 2  # the server and the daemon, at least
    outer = proc.proc.pid
    proc.stop()
    time.sleep(0.5)
    left = {pid: cmd for pid, (uid, cmd, mounts) in _processes().items()
            if pid in running or marker in cmd or pid == outer}
    assert left == {}


def _tasks_of(uids) -> int:
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                n += sum(1 for t in os.listdir(f"/proc/{pid}/task") if os.stat(f"/proc/{pid}/task/{t}").st_uid in uids)
            except OSError:
                pass
    return n


FORKER = r"""
import os, time
def fork_all(n):
    made = 0
    if os.getuid() != 0 and len([p for p in os.listdir('/proc') if p.isdigit()]) < 50:
        for _ in range(n):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                try:
                    time.sleep(120)
                finally:
                    os._exit(0)
            made += 1
    return made

def ping(x):
    import threading  # an honest student's code may start a thread (tqdm, a DataLoader) or a process
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    return x + 1
"""


def test_process_budget_is_not_shared_between_students(tmp_path, monkeypatch):
    """A student who forks up to the process limit must not stop the student graded next to them.

    The students get the uids the grader gives two parallel workers; the process limit is lowered to
    (their tasks now + 40) so that this test exhausts nothing other sandboxes on the machine need.
    """
    root = sandbox.prepare_root(tmp_path / "root")
    from autograder import pool as grading

    base = getattr(grading, "SANDBOX_UID_BASE", None)
    # two parallel workers get two uids (offset here so as not to meet a grading run on this machine)
    uids = [base + 50, base + 51] if base is not None else [NOBODY, NOBODY]
    limit = _tasks_of(uids) + 40
    real = sandbox.limiter

    def lowered(memory_gb, cpu_seconds, *args, **kwargs):
        kwargs["processes"] = limit
        return real(memory_gb, cpu_seconds, **kwargs)

    monkeypatch.setattr(sandbox, "limiter", lowered)
    jobs = [_job(root, tmp_path / w, cells=[{"id": 0, "source": FORKER, "exercise": None}],
                 names=["fork_all", "ping"], call_seconds=20, uid=uid) for w, uid in zip("ab", uids)]
    a = remote.StudentProcess(jobs[0], tmp_path / "a" / "events.jsonl")
    b = remote.StudentProcess(jobs[1], tmp_path / "b" / "events.jsonl")
    try:
        a.start()
        made = a.function("fork_all")(80)
        assert 0 < made < 80  # the limit stopped the forks
        b.start()
        assert b.function("ping")(1) == 2
    finally:
        a.stop()
        b.stop()
