"""Device-clean by construction: every training helper puts its tensors on the policy's device.

A CPU machine has one real device, so a helper that forgets ``device=`` would pass every other test
here and crash on a GPU. These tests run the helpers on PyTorch's ``meta`` device instead: a tensor
made without ``device=`` lands on the CPU, and the helper either fails (CPU meets meta) or returns a
CPU tensor, which the assertions catch. The model is a stand-in with GPT-2's calling conventions
(Hugging Face's GPT-2 itself cannot run on ``meta``).
"""
from types import SimpleNamespace

import pytest
import torch

from rlcourse.model import ValueHeadModel, load_tokenizer
from rlcourse.reference import answer_reward, ranking_to_pairs
from rlcourse.rewards import rollout_rewards, score_at_last_token
from rlcourse.rollout import (Rollout, batch_from_texts, completion_logits, completion_logps, completion_values,
                              encode_prompts, last_token_scores, preference_pairs, subset)
from rlcourse.paths import REPO_ROOT

META = torch.device("meta")


class StandInLM(torch.nn.Module):
    """Embedding + linear head, called like a transformers causal LM: ``(input_ids, attention_mask, position_ids)``,
    ``use_cache``, and ``logits_to_keep`` (an int keeps the last positions, a tensor the positions it lists)."""

    def __init__(self, vocab=16, width=8, device=None, dtype=None):
        super().__init__()
        self.config = SimpleNamespace(n_embd=width)
        self.embed = torch.nn.Embedding(vocab, width, device=device, dtype=dtype)
        self.out = torch.nn.Linear(width, vocab, device=device, dtype=dtype)

    def forward(self, input_ids, attention_mask=None, position_ids=None, output_hidden_states=False, use_cache=None,
                logits_to_keep=0):
        hidden = self.embed(input_ids)
        if position_ids is not None:
            assert position_ids.device == input_ids.device, "position_ids made on another device"
        if isinstance(logits_to_keep, torch.Tensor):
            assert logits_to_keep.device == input_ids.device, "logits_to_keep made on another device"
            kept = hidden[:, logits_to_keep]
        else:
            kept = hidden[:, -logits_to_keep:] if logits_to_keep else hidden
        return SimpleNamespace(logits=self.out(kept), hidden_states=(hidden,))


def rollout_on(device, B=4, P=3, T=5) -> Rollout:
    lengths = [5, 2, 3, 1][:B]
    return Rollout(
        prompts=[f"prompt {i}" for i in range(B)],
        prompt_ids=torch.ones(B, P, dtype=torch.long, device=device),
        prompt_mask=torch.ones(B, P, dtype=torch.long, device=device),
        completion_ids=torch.ones(B, T, dtype=torch.long, device=device),
        completion_mask=torch.tensor([[1.0] * n + [0.0] * (T - n) for n in lengths], device=device),
        texts=["The answer is 4.", "7", "no number", "The answer is 5."][:B],
    )


def assert_on(x, device, what):
    assert isinstance(x, torch.Tensor), f"{what} is not a tensor"
    assert x.device == device, f"{what} is on {x.device}, the policy is on {device}"


def test_value_head_is_made_on_the_lms_device_and_dtype():
    lm = StandInLM(device=META, dtype=torch.float64)
    head = ValueHeadModel(lm).head
    assert head.weight.device == META and head.weight.dtype == torch.float64


def test_rollout_helpers_keep_the_rollouts_device():
    rollout = rollout_on(META)
    assert rollout.device == META
    for rows in ([2, 0], range(1, 3), torch.tensor([3, 1])):
        part = subset(rollout, rows)
        for name in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask"):
            assert_on(getattr(part, name), META, f"subset(...).{name} for rows {rows!r}")
    cpu = rollout_on("cpu")
    assert subset(cpu, torch.tensor([False, True, False, True])).texts == [cpu.texts[1], cpu.texts[3]]
    assert subset(cpu, [3, 1]).texts == [cpu.texts[3], cpu.texts[1]]
    assert_on(rollout.input_ids, META, "rollout.input_ids")
    assert_on(rollout.attention_mask, META, "rollout.attention_mask")


def test_reward_helpers_put_rewards_on_the_rollouts_device():
    rollout = rollout_on(META)
    rewards = rollout_rewards(rollout, answer_reward, [4, 7, 1, 6])
    assert_on(rewards, META, "rollout_rewards(...)")
    assert rewards.shape == (4,) and rewards.dtype == torch.float32
    assert_on(score_at_last_token(rewards, rollout.completion_mask), META, "score_at_last_token(...)")
    assert_on(score_at_last_token(torch.zeros(4), rollout.completion_mask), META,
              "score_at_last_token(CPU scores, meta mask)")


def test_model_helpers_return_tensors_on_the_models_device():
    rollout, lm = rollout_on(META), StandInLM(device=META)
    critic = ValueHeadModel(StandInLM(device=META))
    assert_on(completion_logits(lm, rollout), META, "completion_logits(...)")
    assert_on(completion_logps(lm, rollout), META, "completion_logps(...)")
    assert_on(completion_values(critic, rollout), META, "completion_values(...)")
    assert_on(last_token_scores(critic, rollout), META, "last_token_scores(...)")


def test_preference_pairs_are_rows_on_the_given_device():
    chosen, rejected = preference_pairs(["B > A = C", "C > B > A"], 3, ranking_to_pairs, device=META)
    assert_on(chosen, META, "preference_pairs(...) chosen")
    assert_on(rejected, META, "preference_pairs(...) rejected")
    cpu_chosen, cpu_rejected = preference_pairs(["B > A = C", "C > B > A"], 3, ranking_to_pairs, device="cpu")
    assert sorted(zip(cpu_chosen.tolist(), cpu_rejected.tolist())) == [(1, 0), (1, 2), (4, 3), (5, 3), (5, 4)]


def test_text_batches_go_to_the_requested_device():
    tok = load_tokenizer("tiny")
    ids, mask = encode_prompts(tok, ["Review:", "A customer writes:"], META)
    assert_on(ids, META, "encode_prompts(...) ids")
    batch = batch_from_texts(tok, ["Review:", "Question: x\nAnswer:"], [" Lovely.", " 3"], device=META)
    for name in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask"):
        assert_on(getattr(batch, name), META, f"batch_from_texts(...).{name}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sampled_rollout_and_rewards_are_on_cuda():
    from rlcourse.model import load_policy
    from rlcourse.rollout import sample_completions

    model, tok = load_policy("tiny", device="cuda")
    rollout = sample_completions(model, tok, ["Review:"] * 2, max_new_tokens=4)
    assert rollout.device.type == "cuda"
    assert rollout_rewards(rollout, lambda text: len(text)).device.type == "cuda"
    assert ValueHeadModel(model).head.weight.device.type == "cuda"


# ----------------------------------------------------------------------------- the notebooks' own cells
MAKERS = {"tensor", "zeros", "ones", "full", "empty", "arange", "rand", "randn", "eye", "linspace"}
POLICY_NAMES = {"load_policy", "sample_completions", "policy", "policy0", "base_policy", "model", "rollout", "data"}


def tensors_made_without_device(source: str) -> list[str]:
    """``torch.<maker>(...)`` calls without ``device=`` in a cell that works with the policy.

    Cells that never touch a policy (toy bandits, a categorical on five drinks) may stay on the CPU;
    row indices drawn with ``torch.randint``/``torch.randperm`` may too (helpers move them).
    """
    import ast

    tree = ast.parse(source)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    if not names & POLICY_NAMES:
        return []
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MAKERS
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"
                and not any(k.arg == "device" for k in node.keywords)):
            found.append(f"line {node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_notebook_training_cells_make_tensors_on_the_policys_device():
    import json

    root = REPO_ROOT
    problems = []
    for path in sorted(root.glob("solutions/*/*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell["cell_type"] != "code" or meta.get("grade") or meta.get("solution"):
                continue  # test cells and answer cells work on the tensors they are given
            source = "".join(cell["source"])
            problems += [f"{path.name} cell {i} {p}" for p in tensors_made_without_device(source)]
    assert not problems, "tensors made on the CPU beside a policy (use a helper or device=):\n" + "\n".join(problems)


def test_the_audit_sees_a_missing_device():
    assert tensors_made_without_device("rollout = 1\nr = torch.tensor([1.0])")
    assert not tensors_made_without_device("rollout = 1\nr = torch.tensor([1.0], device=rollout.device)")
    assert not tensors_made_without_device("logits = torch.zeros(3)")  # a toy cell without a policy
