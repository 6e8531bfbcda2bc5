"""Figures of the shipped tiny GPT-2: size, load time, sampling speed, RL-step time, task quality.

    .venv/bin/python benchmarks/model.py [--model tiny] [--heldout 400] [--reviews 512]
"""
from __future__ import annotations

import argparse
import time

import torch

from rlcourse.cafe import BEST_SCORE
from rlcourse.model import count_parameters, load_policy, resolve_model, seed_everything, set_threads
from rlcourse.problems import load_problems
from rlcourse.rewards import mean_review_score, problem_accuracy
from rlcourse.rollout import completion_logps, sample_completions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--heldout", type=int, default=400)
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--reviews", type=int, default=512)
    args = parser.parse_args()
    set_threads()
    print(f"torch threads: {torch.get_num_threads()}")

    start = time.perf_counter()
    model, tok = load_policy(args.model)
    print(f"load time: {time.perf_counter() - start:.2f} s")
    print(f"parameters: {count_parameters(model):,}")
    if args.model == "tiny":
        from pathlib import Path
        size = (Path(resolve_model("tiny")) / "model.safetensors").stat().st_size
        print(f"model.safetensors: {size / 2**20:.1f} MiB")

    seed_everything(0)
    prompts = [p.prompt for p in load_problems("train")[:64]]
    sample_completions(model, tok, prompts[:8], max_new_tokens=8)  # warm-up
    start = time.perf_counter()
    rollout = sample_completions(model, tok, prompts, max_new_tokens=32)
    gen = time.perf_counter() - start
    n_tokens = int(rollout.completion_mask.sum())
    print(f"sampling: 64 x 32 new tokens in {gen:.2f} s = {64 * 32 / gen:.0f} tokens/s (batch), "
          f"{n_tokens} real tokens before EOS")

    times = []
    for _ in range(3):
        start = time.perf_counter()
        rollout = sample_completions(model, tok, prompts, max_new_tokens=32)
        model.train()
        logps = completion_logps(model, rollout)
        (-(logps.sum())).backward()
        model.zero_grad(set_to_none=True)
        model.eval()
        times.append(time.perf_counter() - start)
    print(f"one RL step (64 completions x 32 new tokens, sample + forward + backward): "
          f"{min(times):.2f} s best, {sum(times) / len(times):.2f} s mean of 3")

    seed_everything(0)
    heldout = load_problems("heldout")[: args.heldout]
    train = load_problems("train")[: args.train]
    print(f"held-out word-problem accuracy (T=1, {len(heldout)}): {problem_accuracy(model, tok, heldout):.3f}")
    print(f"  greedy-ish (T=0.1): {problem_accuracy(model, tok, heldout, temperature=0.1):.3f}")
    print(f"train-template accuracy (T=1, {len(train)}): {problem_accuracy(model, tok, train):.3f}")
    score = mean_review_score(model, tok, n=args.reviews)
    print(f"mean annotator score of {args.reviews} sampled reviews (T=1): {score:.3f} (best achievable {BEST_SCORE})")
    rollout = sample_completions(model, tok, ["Review:"] * 4 + [heldout[0].prompt], max_new_tokens=40)
    for text in rollout.texts:
        print("  sample:", repr(text))


if __name__ == "__main__":
    main()
