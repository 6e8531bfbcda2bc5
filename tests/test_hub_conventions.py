"""Hub GPT-2's conventions (no pad token, EOS reused as pad, dropout 0.1) through load_policy, a rollout,
log-probs and one training step of PPO, GRPO and DPO: at the first step the ratio is exactly 1 and the
KL to the reference exactly 0, because load_policy turns dropout off."""
import copy

import pytest
import torch

from rlcourse.model import load_policy, seed_everything
from rlcourse.reference import (dpo_loss, grpo_loss, group_normalized_advantages, kl_k3, ppo_clip_loss,
                                sequence_log_prob, token_log_probs)
from rlcourse.rollout import completion_logits, completion_logps, sample_completions

from gpt2_conventions import HUB_DROPOUT, write_gpt2_conventions_model

PROMPTS = ["Review:", "Question: A bus carries seven passengers. Then another one gets off. "
           "How many passengers are on the bus?\nAnswer:"]


@pytest.fixture(scope="module")
def hub_like(tmp_path_factory):
    return str(write_gpt2_conventions_model(tmp_path_factory.mktemp("gpt2-conventions")))


@pytest.fixture()
def start(hub_like):
    """A policy, its frozen reference, a left-padded rollout sampled from it, and the old/reference log-probs."""
    seed_everything(0)
    policy, tok = load_policy(hub_like)
    reference = copy.deepcopy(policy)
    rollout, sampler_logps = sample_completions(policy, tok, PROMPTS, max_new_tokens=16, num_samples=4,
                                                return_scores=True)
    policy.train()  # as the notebooks' training loops do
    with torch.no_grad():
        old_logps = completion_logps(policy, rollout)
        ref_logps = completion_logps(reference, rollout)
    return policy, tok, rollout, sampler_logps, old_logps, ref_logps


def train_logps(policy, rollout):
    return token_log_probs(completion_logits(policy, rollout), rollout.completion_ids) * rollout.completion_mask


def step(policy, loss):
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_fixture_has_gpt2s_conventions(hub_like):
    from transformers import AutoConfig, AutoTokenizer

    config, tok = AutoConfig.from_pretrained(hub_like), AutoTokenizer.from_pretrained(hub_like)
    assert tok.pad_token is None and config.pad_token_id is None
    assert config.resid_pdrop == config.embd_pdrop == config.attn_pdrop == HUB_DROPOUT


def test_load_policy_reuses_eos_and_turns_dropout_off(hub_like):
    policy, tok = load_policy(hub_like)
    assert tok.pad_token_id == tok.eos_token_id and tok.padding_side == "left"
    assert policy.config.resid_pdrop == policy.config.embd_pdrop == policy.config.attn_pdrop == 0.0
    assert all(m.p == 0.0 for m in policy.modules() if isinstance(m, torch.nn.Dropout))
    ids = tok(PROMPTS, return_tensors="pt", padding=True)
    policy.train()
    with torch.no_grad():
        a, b = policy(**ids).logits, policy(**ids).logits
    assert torch.equal(a, b), "train() mode is still random: dropout is on"


def test_dropout_switch_keeps_the_models_dropout(hub_like):
    policy, tok = load_policy(hub_like, dropout=True)
    assert policy.config.resid_pdrop == HUB_DROPOUT
    ids = tok(PROMPTS, return_tensors="pt", padding=True)
    policy.train()
    torch.manual_seed(0)
    with torch.no_grad():
        a, b = policy(**ids).logits, policy(**ids).logits
    assert not torch.equal(a, b), "dropout=True should keep GPT-2's dropout (the fixture has 0.1)"


def test_rollout_with_eos_as_pad(start):
    policy, tok, rollout, sampler_logps, old_logps, _ = start
    assert (rollout.prompt_mask == 0).any(), "the prompts must really be left-padded (with EOS ids)"
    assert (rollout.prompt_ids[rollout.prompt_mask == 0] == tok.eos_token_id).all()
    mask = rollout.completion_mask
    for row, ids in enumerate(rollout.completion_ids.tolist()):
        if tok.eos_token_id in ids:  # the mask keeps the first EOS and drops everything after it
            first = ids.index(tok.eos_token_id)
            assert mask[row, : first + 1].eq(1).all() and mask[row, first + 1:].eq(0).all()
    assert (old_logps - sampler_logps).abs().max().item() < 1e-4


def test_first_ppo_step_has_ratio_one(start):
    policy, _, rollout, _, old_logps, ref_logps = start
    mask = rollout.completion_mask
    logps = train_logps(policy, rollout)
    assert torch.equal(logps.detach(), old_logps), "ratio != 1 at the first PPO step"
    assert torch.equal(logps.detach(), ref_logps), "KL to the reference != 0 at the first step"
    advantages = torch.randn(mask.shape) * mask
    step(policy, ppo_clip_loss(logps, old_logps, advantages, mask, 0.2))
    with torch.no_grad():
        assert not torch.equal(completion_logps(policy, rollout), old_logps), "the step did not change the policy"


def test_first_grpo_step_has_ratio_one_and_zero_kl(start):
    policy, _, rollout, _, old_logps, ref_logps = start
    mask = rollout.completion_mask
    logps = train_logps(policy, rollout)
    ratio = torch.exp(logps.detach() - old_logps)
    assert torch.equal(ratio[mask > 0], torch.ones_like(ratio[mask > 0]))
    assert torch.equal(kl_k3(logps.detach(), ref_logps), torch.zeros_like(ref_logps))
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    advantages = group_normalized_advantages(rewards, 4)
    step(policy, grpo_loss(logps, old_logps, ref_logps, advantages, mask, clip_eps=0.2, beta=0.04))


def test_first_dpo_step_starts_at_log_two(start):
    policy, _, rollout, _, _, ref_logps = start
    mask = rollout.completion_mask
    seq = sequence_log_prob(train_logps(policy, rollout), mask)
    ref_seq = sequence_log_prob(ref_logps, mask)
    chosen, rejected = torch.tensor([0, 4]), torch.tensor([1, 5])
    loss = dpo_loss(seq[chosen], seq[rejected], ref_seq[chosen], ref_seq[rejected], beta=0.1)
    assert loss.item() == torch.nn.functional.softplus(torch.tensor(0.0)).item(), "policy == reference: loss log 2"
    step(policy, loss)


def test_warm_start_teaches_the_course_format_in_place(hub_like):
    """rlcourse.pretrain.warm_start: a few next-token steps on the course's corpus, with the model's own
    tokenizer (EOS as pad); the model changes in place, stays on its device and ends in eval mode."""
    from rlcourse.pretrain import warm_start

    from transformers import AutoModelForCausalLM

    from rlcourse.model import without_dropout

    trained, tok = load_policy(str(hub_like))
    torch.manual_seed(0)
    policy = without_dropout(AutoModelForCausalLM.from_config(trained.config)).eval()  # has never seen the course's text
    before = [p.detach().clone() for p in policy.parameters()]
    text = "Question: Ten students come to lecture. Half of them leave.\nAnswer: 10 / 2 = 5. The answer is 5."
    ids = tok(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        loss_before = policy(input_ids=ids, labels=ids).loss.item()
    losses = warm_start(policy, tok, steps=20, batch_size=8, lr=1e-3)
    with torch.no_grad():
        loss_after = policy(input_ids=ids, labels=ids).loss.item()
    assert len(losses) == 20 and all(torch.isfinite(torch.tensor(losses)))
    assert not policy.training
    assert any(not torch.equal(b, p) for b, p in zip(before, policy.parameters()))
    assert next(policy.parameters()).device == before[0].device
    assert loss_after < loss_before, (loss_before, loss_after)


def test_hub_models_come_warm_started_once_from_a_saved_copy(hub_like, tmp_path, monkeypatch, capsys):
    """load_policy gives a Hub model (here: the fixture, listed as one) the course's warm start the first
    time, saves it under data/<name>-warm, and loads that copy afterwards: policy and reference agree."""
    import rlcourse.model as model_module
    import rlcourse.pretrain as pretrain_module
    from rlcourse import paths

    monkeypatch.setattr(paths, "DATA_DIR", tmp_path)
    monkeypatch.setattr(model_module, "HUB_MODELS", (hub_like,))
    monkeypatch.setattr(pretrain_module, "WARM_START_STEPS", 4)
    raw, _ = load_policy(hub_like, warm_start=False)
    assert not model_module.warm_folder(hub_like).exists()

    policy, tok = load_policy(hub_like)  # the default for a Hub model: warm-started
    assert "warm start" in capsys.readouterr().out
    folder = model_module.warm_folder(hub_like)
    assert folder.parent == tmp_path and (folder / "model.safetensors").exists()
    assert any(not torch.equal(a, b) for a, b in zip(raw.parameters(), policy.parameters())), "no warm start happened"
    assert tok.pad_token_id == tok.eos_token_id
    assert all(m.p == 0.0 for m in policy.modules() if isinstance(m, torch.nn.Dropout))

    def no_second_warm_start(*args, **kwargs):
        raise AssertionError("the saved warm-started copy should be loaded, not trained again")

    monkeypatch.setattr(pretrain_module, "warm_start", no_second_warm_start)
    reference, _ = load_policy(hub_like)
    assert all(torch.equal(a, b) for a, b in zip(policy.parameters(), reference.parameters()))
    with_dropout, _ = load_policy(hub_like, dropout=True)  # the copy keeps the Hub model's own dropout setting
    assert with_dropout.config.resid_pdrop == HUB_DROPOUT
