"""A model and its optimiser across the sandbox, as plain data (issue 27: a graded update step needs it).

The grader's test cell calls the student's function with a GPT-2 and an optimiser; the wire carries their
descriptions (class name, configuration, state tensors), the student's process builds fresh ones, runs the
function, and sends back their new states, which the grader loads into its own objects: the update acts in
place, as in Jupyter. Checked here: the round trip is exact; an update run in the student's process equals
the same update run in the grader's; a state that does not fit (the student's code changed a layer) is the
student's failed test and leaves the grader's model as it was; a malformed one is a protocol break.
"""
from __future__ import annotations

import copy

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from autograder.sandboxed import protocol as P
from autograder import remote, sandbox

UPDATE = r'''
import torch

def update(policy, reference, optimizer, ids, steps, beta):
    """`steps` optimiser steps on -mean log p(ids) + beta * KL-ish penalty to the reference (the test's loss)."""
    with torch.no_grad():
        ref = reference(ids).logits.log_softmax(-1)
    losses = []
    for _ in range(steps):
        logps = policy(ids).logits.log_softmax(-1)
        loss = -logps.gather(-1, ids.unsqueeze(-1)).mean() + beta * (logps.exp() * (logps - ref)).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    return {"loss": sum(losses) / len(losses), "steps": steps}

def widen(policy):
    policy.lm_head = torch.nn.Linear(16, 49, bias=False)   # a layer of another shape
    policy.transformer.wte = torch.nn.Embedding(49, 16)
    return 0

def give_back(policy):
    return policy

def to_train(policy):
    policy.train()
    return policy.training
'''
NAMES = ["update", "widen", "give_back", "to_train"]


def tiny_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=48, n_positions=16, n_embd=16, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0)  # dropout 0.1, as GPT-2's
    return GPT2LMHeadModel(config).eval()


def models_and_optimizer(cls=torch.optim.AdamW, **kw):
    policy, reference = tiny_gpt2(0), tiny_gpt2(1)
    for p in reference.parameters():
        p.requires_grad_(False)
    return policy, reference, cls(policy.parameters(), **kw)


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- the wire alone
def test_describe_build_and_back_is_exact():
    policy, reference, opt = models_and_optimizer(lr=1e-2, weight_decay=0.1)
    ids = torch.randint(0, 48, (3, 8))
    policy(ids).logits.mean().backward()
    opt.step()  # an optimiser with state
    objects = []
    args = P.encode([policy, reference, opt, 3], objects=objects)
    assert args == [{"$ref": 0}, {"$ref": 1}, {"$ref": 2}, 3] and objects == [policy, reference, opt]
    built = P.build(P.loads(P.frame(P.describe(objects))[4:]))  # as JSON, as on the wire
    theirs_policy, theirs_reference, theirs_opt = built
    assert same_state(theirs_policy.state_dict(), policy.state_dict())
    assert same_state(theirs_reference.state_dict(), reference.state_dict())
    assert not theirs_policy.training and all(p.requires_grad for p in theirs_policy.parameters())
    assert not any(p.requires_grad for p in theirs_reference.parameters())
    assert theirs_opt.param_groups[0]["weight_decay"] == 0.1 and type(theirs_opt) is torch.optim.AdamW
    mine, theirs = opt.state_dict()["state"], theirs_opt.state_dict()["state"]
    assert mine.keys() == theirs.keys() and all(same_state(mine[k], theirs[k]) for k in mine)
    assert P.decode(args, objects=built)[:3] == built
    with pytest.raises(P.ProtocolError):
        P.decode(args)  # a reference where no object was sent: never in a reply


def test_a_state_that_does_not_fit_is_refused_and_changes_nothing():
    policy, _, opt = models_and_optimizer()
    before = copy.deepcopy(policy.state_dict())
    other = GPT2LMHeadModel(GPT2Config(vocab_size=49, n_positions=16, n_embd=16, n_layer=2, n_head=2, bos_token_id=0,
                                      eos_token_id=0))
    with pytest.raises(ValueError, match="wte.weight came back as"):
        P.load_state(policy, P.state_of(other))
    with pytest.raises(ValueError, match="other parameters"):
        P.load_state(policy, {"$model_state": [P.encode({"x": torch.zeros(1)}), False]})
    with pytest.raises(P.ProtocolError):
        P.load_state(policy, {"$model_state": "nonsense"})
    with pytest.raises(P.ProtocolError):
        P.load_state(opt, {"$optim_state": P.encode({"state": {"zero": {}}, "param_groups": []})})
    assert same_state(policy.state_dict(), before)


# ----------------------------------------------------------------------------- through the sandbox
@pytest.fixture(scope="module")
def student(tmp_path_factory):
    root = sandbox.prepare_root(tmp_path_factory.mktemp("wire") / "root")
    work = tmp_path_factory.mktemp("wirework")
    job = {"sandbox_root": str(root), "log": str(work / "student.log"), "cwd": str(work), "prelude": ["import torch"],
           "cells": [{"id": 0, "source": UPDATE, "exercise": None}], "names": NAMES, "call_seconds": 60,
           "cell_seconds": 30, "memory_gb": 4.0, "cpu_seconds": 300, "scratch_mb": 32, "threads": 1}
    proc = remote.StudentProcess(job, work / "events.jsonl")
    proc.start()
    yield {n: proc.function(n) for n in NAMES}, work
    proc.stop()


@pytest.mark.parametrize("optimizer", [torch.optim.SGD, torch.optim.AdamW])
def test_an_update_in_the_students_process_equals_the_same_update_here(student, optimizer):
    f, _ = student
    namespace = {}
    exec(compile(UPDATE, "<update>", "exec"), namespace)  # noqa: S102 - the test's own code
    ids = torch.randint(0, 48, (4, 10), generator=torch.Generator().manual_seed(3))
    theirs = models_and_optimizer(optimizer, lr=0.05)
    mine = models_and_optimizer(optimizer, lr=0.05)
    stats = f["update"](*theirs, ids, 3, 0.1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the student's process runs it (the job's "threads"): the same sums in the same order
    try:
        expected = namespace["update"](*mine, ids, 3, 0.1)
    finally:
        torch.set_num_threads(threads)
    assert stats["steps"] == 3 and stats["loss"] == expected["loss"]
    diff = max((a - b).abs().max().item() for a, b in zip(theirs[0].parameters(), mine[0].parameters()))
    assert diff == 0.0, diff
    assert not torch.equal(theirs[0].transformer.wte.weight, tiny_gpt2(0).transformer.wte.weight)  # it moved
    assert same_state(theirs[1].state_dict(), tiny_gpt2(1).state_dict())  # the reference did not
    state_a, state_b = theirs[2].state_dict()["state"], mine[2].state_dict()["state"]
    assert state_a.keys() == state_b.keys()
    for k in state_a:
        for key, value in state_a[k].items():
            assert torch.equal(value, state_b[k][key]), (k, key)
    theirs[0](ids).logits.mean().backward()
    theirs[2].step()  # the grader's optimiser goes on from the state the student's update left


def test_a_changed_layer_is_the_students_failed_test_and_the_model_stays(student):
    f, work = student
    policy = tiny_gpt2(0)
    before = copy.deepcopy(policy.state_dict())
    with pytest.raises(ValueError, match="after `widen`.*came back as"):
        f["widen"](policy)
    assert same_state(policy.state_dict(), before)
    events = (work / "events.jsonl").read_text() if (work / "events.jsonl").exists() else ""
    assert '"protocol"' not in events  # not tampering: a wrong answer


def test_a_model_is_never_returned_and_modes_come_back(student):
    f, _ = student
    with pytest.raises(TypeError, match="cannot check"):
        f["give_back"](tiny_gpt2(0))
    policy = tiny_gpt2(0)
    assert f["to_train"](policy) is True and policy.training  # put in train mode there: here too
