"""Rollouts: training log-probs equal the sampler's own, on a left-padded batch."""
import copy

import pytest
import torch

from rlcourse.core import gather_log_probs
from rlcourse.model import load_policy, position_ids_from_mask, seed_everything
from rlcourse.rollout import batch_from_texts, completion_logits, completion_logps, sample_completions


@pytest.fixture(scope="module")
def policy():
    return load_policy("tiny")


PROMPTS = ["Review:", "Question: A bus carries seven passengers. Then another one gets off. "
           "How many passengers are on the bus?\nAnswer:", "A customer writes:"]


def test_training_logps_equal_sampler_scores_on_left_padded_batch(policy):
    model, tok = policy
    seed_everything(0)
    rollout, sampler_logps = sample_completions(model, tok, PROMPTS, max_new_tokens=24, num_samples=2,
                                                return_scores=True)
    assert (rollout.prompt_mask == 0).any(), "the batch must really be left-padded"
    with torch.no_grad():
        train_logps = completion_logps(model, rollout)
    mask = rollout.completion_mask
    assert torch.all(train_logps[mask == 0] == 0)
    assert (train_logps - sampler_logps).abs().max().item() < 1e-4
    # the same forward without position_ids gets the padded rows wrong: why the helper passes them
    with torch.no_grad():
        logits = model(input_ids=rollout.input_ids, attention_mask=rollout.attention_mask).logits
    P = rollout.prompt_ids.shape[1]
    naive = torch.log_softmax(logits[:, P - 1:-1], -1).gather(-1, rollout.completion_ids[..., None]).squeeze(-1)
    padded_rows = (rollout.prompt_mask == 0).any(-1)
    assert ((naive - train_logps) * mask)[padded_rows].abs().max().item() > 1e-3


def test_samples_that_share_a_prompt_cache_equal_generate_on_repeated_prompts(policy):
    """num_samples > 1 reads each prompt once (shared_prompt_cache); generate on the repeated prompts,
    which reads every row's prompt itself, must draw the same tokens with the same log-probs."""
    model, tok = policy
    seed_everything(3)
    shared, shared_logps = sample_completions(model, tok, PROMPTS, max_new_tokens=20, num_samples=4, return_scores=True)
    seed_everything(3)
    repeated = [p for p in PROMPTS for _ in range(4)]
    plain, plain_logps = sample_completions(model, tok, repeated, max_new_tokens=20, return_scores=True)
    assert shared.prompts == repeated and torch.equal(shared.prompt_ids, plain.prompt_ids)
    assert torch.equal(shared.prompt_mask, plain.prompt_mask)
    assert torch.equal(shared.completion_ids, plain.completion_ids) and shared.texts == plain.texts
    assert len(set(shared.texts[:4])) > 1, "the four samples of one prompt must differ"
    assert (shared_logps - plain_logps).abs().max().item() < 1e-5


def test_completion_mask_keeps_eos_and_texts_drop_it(policy):
    model, tok = policy
    seed_everything(1)
    rollout = sample_completions(model, tok, ["Review:"] * 16, max_new_tokens=40)
    ids, mask = rollout.completion_ids, rollout.completion_mask
    finished = (ids == tok.eos_token_id).any(-1)
    assert finished.any(), "the tiny model should end most reviews within 40 tokens"
    for row in torch.nonzero(finished).flatten().tolist():
        first = (ids[row] == tok.eos_token_id).nonzero()[0].item()
        assert mask[row, : first + 1].eq(1).all() and mask[row, first + 1:].eq(0).all()
        assert tok.eos_token not in rollout.texts[row]


def test_position_ids_count_real_tokens_only():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]


def test_batch_from_texts_scores_given_completions(policy):
    model, tok = policy
    batch = batch_from_texts(tok, ["Review:", "Question: Two birds sit on a wire.\nAnswer:"],
                             [" I had a matcha.", " 2 + 1 = 3. The answer is 3."])
    assert batch.completion_mask.sum(-1).tolist() == [len(tok(" I had a matcha.")["input_ids"]) + 1,
                                                      len(tok(" 2 + 1 = 3. The answer is 3.")["input_ids"]) + 1]
    with torch.no_grad():
        logps = completion_logps(model, batch)
    # each row alone (no padding) gives the same log-probs
    for i in range(2):
        single = batch_from_texts(tok, [batch.prompts[i]], [batch.texts[i]])
        with torch.no_grad():
            alone = completion_logps(model, single)[0]
        n = int(batch.completion_mask[i].sum())
        assert torch.allclose(logps[i, :n], alone[:n], atol=1e-5)


def _stock_model():
    """The shipped tiny GPT-2 as plain transformers loads it: transformers' own element-wise ``gelu_new``."""
    from transformers import AutoModelForCausalLM

    from rlcourse.model import resolve_model, without_dropout
    return without_dropout(AutoModelForCausalLM.from_pretrained(resolve_model("tiny"))).eval()


def _full_forward_logits(model, rollout):
    """The plain way: logits at every position of a full forward, sliced to the completion afterwards."""
    mask = rollout.attention_mask
    logits = model(input_ids=rollout.input_ids, attention_mask=mask, position_ids=position_ids_from_mask(mask)).logits
    P = rollout.prompt_ids.shape[1]
    return logits[:, P - 1:-1]


def test_completion_logits_equal_a_plain_full_forward_on_a_left_padded_batch(policy):
    """The LM head runs on completion positions only, and load_policy's fused GELU: the same numbers to 1e-5."""
    model, tok = policy
    stock = _stock_model()
    seed_everything(2)
    rollout = sample_completions(model, tok, PROMPTS, max_new_tokens=20, num_samples=3)
    assert (rollout.prompt_mask == 0).any(), "the batch must really be left-padded"
    ids, mask = rollout.completion_ids, rollout.completion_mask
    with torch.no_grad():
        fast = completion_logits(model, rollout)
        same_model_full = _full_forward_logits(model, rollout)
        plain = _full_forward_logits(stock, rollout)
        fast_logps, plain_logps = completion_logps(model, rollout), gather_log_probs(plain, ids) * mask
        hot = completion_logits(model, rollout, temperature=0.7)
    assert fast.shape == plain.shape == (len(rollout), ids.shape[1], model.config.vocab_size)
    assert torch.allclose(fast, same_model_full, atol=1e-6, rtol=0)  # slicing before or after the LM head
    assert (fast - plain).abs().max().item() < 1e-5
    assert (fast_logps - plain_logps).abs().max().item() < 1e-5
    assert torch.allclose(hot, fast / 0.7, atol=1e-6, rtol=0)


def test_completion_logits_gradients_equal_a_plain_full_forward(policy):
    model, tok = policy
    stock = _stock_model()
    seed_everything(3)
    rollout = sample_completions(model, tok, PROMPTS, max_new_tokens=12, num_samples=2)
    grads = []
    for m, logits_of in [(copy.deepcopy(model), completion_logits), (stock, _full_forward_logits)]:
        m.train()
        logps = gather_log_probs(logits_of(m, rollout), rollout.completion_ids)
        (logps * rollout.completion_mask).sum().backward()
        grads.append({name: p.grad for name, p in m.named_parameters()})
    fast, plain = grads
    assert fast.keys() == plain.keys()
    for name in fast:
        scale = plain[name].abs().max().item()
        assert (fast[name] - plain[name]).abs().max().item() <= 1e-4 * max(scale, 1.0), name
