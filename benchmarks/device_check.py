"""Quick checks on the GPU before the notebooks run (part of benchmarks/gpu_check.sh).

    python benchmarks/device_check.py            # on CUDA when present, else the CPU

1. Every training helper returns tensors on the policy's device (rollout, rewards, per-token
   rewards, sub-batches, preference pairs, value head, log-probs).
2. A policy with Hub GPT-2's conventions (no pad token, EOS reused, dropout 0.1 in its config; built
   from the tiny model by tests/fixtures/gpt2_conventions.py) loads through ``load_policy``: at the
   first step the PPO ratio is 1 and the k3 KL to the reference is 0, printed with the largest
   deviation seen on this device.
Exit status 1 if a check fails.
"""
from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

from gpt2_conventions import write_gpt2_conventions_model  # noqa: E402

from rlcourse.model import ValueHeadModel, get_device, load_policy, seed_everything  # noqa: E402
from rlcourse.reference import answer_reward, kl_k3, ranking_to_pairs, token_log_probs  # noqa: E402
from rlcourse.rewards import rollout_rewards, score_at_last_token  # noqa: E402
from rlcourse.rollout import (batch_from_texts, completion_logits, completion_logps, completion_values,  # noqa: E402
                              last_token_scores, preference_pairs, sample_completions, subset)

failures: list[str] = []


def expect(ok: bool, what: str) -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)


def helpers_on(device: torch.device) -> None:
    print(f"helpers on {device}:")
    seed_everything(0)
    policy, tok = load_policy("tiny", device=device)
    rollout = sample_completions(policy, tok, ["Review:", "Question: Two birds sit on a wire.\nAnswer:"], 12,
                                 num_samples=2)
    on = next(policy.parameters()).device  # "cuda" asked for, "cuda:0" given: compare with the model's own
    same = lambda x: x.device == on  # noqa: E731
    expect(same(rollout.completion_ids) and same(rollout.completion_mask), "sample_completions")
    rewards = rollout_rewards(rollout, answer_reward, [3, 3, 3, 3])
    expect(same(rewards), "rollout_rewards")
    expect(same(score_at_last_token(rewards, rollout.completion_mask)), "score_at_last_token")
    expect(same(subset(rollout, torch.tensor([3, 0])).completion_ids), "subset (rows from the CPU)")
    chosen, rejected = preference_pairs(["B > A"], 2, ranking_to_pairs, device=rollout.device)
    expect(same(chosen) and same(rejected), "preference_pairs")
    critic = ValueHeadModel(copy.deepcopy(policy))
    expect(same(critic.head.weight), "ValueHeadModel head")
    with torch.no_grad():
        expect(same(completion_values(critic, rollout)) and same(last_token_scores(critic, rollout)),
               "completion_values, last_token_scores")
        expect(same(completion_logps(policy, rollout)), "completion_logps")
    batch = batch_from_texts(tok, ["Review:"], [" Lovely."], device)
    expect(same(batch.completion_ids) and same(batch.completion_mask), "batch_from_texts")


def first_step_on(device: torch.device) -> None:
    print(f"Hub GPT-2 conventions on {device}:")
    with tempfile.TemporaryDirectory() as folder:
        path = write_gpt2_conventions_model(folder)
        seed_everything(0)
        policy, tok = load_policy(str(path), device=device)
    expect(tok.pad_token_id == tok.eos_token_id, "EOS reused as pad")
    reference = copy.deepcopy(policy)
    rollout = sample_completions(policy, tok, ["Review:", "Question: A bus carries seven passengers.\nAnswer:"], 16,
                                 num_samples=4)
    policy.train()
    with torch.no_grad():
        old_logps = completion_logps(policy, rollout)
        ref_logps = completion_logps(reference, rollout)
    logps = token_log_probs(completion_logits(policy, rollout), rollout.completion_ids) * rollout.completion_mask
    mask = rollout.completion_mask > 0
    ratio_dev = (torch.exp(logps.detach() - old_logps) - 1)[mask].abs().max().item()
    kl = kl_k3(logps.detach(), ref_logps)[mask].abs().max().item()
    print(f"  first step: max |ratio - 1| = {ratio_dev:.3g}, max k3 KL = {kl:.3g} (exactly 0 on the CPU)")
    expect(ratio_dev < 1e-5 and kl < 1e-8, "first-step ratio 1 and KL 0 (dropout off)")
    policy.train()
    ids = tok(["Review:"], return_tensors="pt").to(device)
    with torch.no_grad():
        expect(torch.equal(policy(**ids).logits, policy(**ids).logits), "train() mode is deterministic")


def main() -> int:
    device = get_device()
    print(f"torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""))
    helpers_on(device)
    first_step_on(device)
    if failures:
        print(f"device check FAILED: {', '.join(failures)}")
        return 1
    print("device check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
