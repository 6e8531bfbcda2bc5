"""Seconds per GRPO batch: the course's loop (notebook 05's recipe) against TRL's ``GRPOTrainer``, in one process.

    bash benchmarks/setup_trl.sh                    # once: TRL beside the course's .venv (not part of the course)
    .venv/bin/python benchmarks/grpo_speed.py [--batches 5] [--trl-stock-kernels]

The same work on both sides, per batch: 16 word-problem prompts (``load_problems("train")``) x 8 samples
= 128 completions of at most 28 new tokens, temperature 1.0 (no top-k, no top-p); the answer reward;
group-normalised advantages; the reference policy's log-probs; two Adam steps (lr 2e-4, gradient norm
clipped to 1.0) on the whole batch, each minimising the GRPO loss (clip 0.2, beta 0.04, k3 KL, 1/|o_i|
per answer). The tiny GPT-2, on the CPU in float32, with ``set_threads()``'s threads.

The two run interleaved: a callback of TRL's trainer runs one course batch each time TRL has finished
one (so both see the same machine load), and its time is left out of TRL's. The first batch of each is
a warm-up; the figures are the medians of the next ``--batches``.

The course (``course_batch``): ``sample_completions``, ``rollout_rewards``, ``group_normalized_advantages``,
the reference log-probs with ``completion_logps`` under ``torch.no_grad()``, then two steps of
``token_log_probs(completion_logits(...))`` -> ``grpo_loss`` -> Adam; the first step's ``logps.detach()``
are the old log-probs (the policy has not moved yet, so a separate forward pass would compute the same).

TRL (tested with trl 1.16.0 on transformers 5.24.0, torch 2.13.0): ``GRPOConfig(per_device_train_batch_size=128,
gradient_accumulation_steps=1, steps_per_generation=1, num_generations=8, num_iterations=2,
max_completion_length=28, temperature=1.0, top_k=0, top_p=1.0, beta=0.04, epsilon=0.2, loss_type="grpo",
scale_rewards="group", learning_rate=2e-4, lr_scheduler_type="constant", weight_decay=0.0,
max_grad_norm=1.0, use_cpu=True, bf16=False, fp16=False, report_to="none", logging_strategy="no",
save_strategy="no", disable_tqdm=True)``; the model is the shipped tiny GPT-2 as TRL users load it
(``AutoModelForCausalLM.from_pretrained``), the tokenizer the course's, the reward the course's
``answer_reward``. What its source does with these settings (trl/trainer/grpo_trainer.py, grpo_config.py):

- generation batch: ``generation_batch_size = per_device_train_batch_size * steps_per_generation`` = 128
  rows = 16 prompts x ``num_generations`` 8 (``RepeatSampler``); it generates once every
  ``steps_per_generation * num_iterations`` = 2 optimiser steps (``_prepare_inputs``), and each of those
  steps takes the whole buffered batch: two gradient steps per generated batch, as in the course. One
  "batch" here is therefore two of TRL's global steps.
- old log-probs: ``_generate_and_score_completions`` runs an extra no-grad forward pass for them whenever
  ``gradient_accumulation_steps % (steps_per_generation * num_iterations) != 0`` (here 1 % 2). A batch
  serves ``steps_per_generation * num_iterations / gradient_accumulation_steps`` optimiser steps, so with
  two of them that remainder is never 0: no setting of this version skips the pass for this recipe (its
  ``_compute_loss`` reuses ``per_token_logps.detach()`` only when the pass was skipped). The course takes
  them from its first step's forward pass instead. The pass is part of TRL's time: TRL's work here.
- reference log-probs: beta != 0 builds a separate reference model from the policy's path
  (``create_model_from_path``) and runs it once per batch, under no_grad, like the course.
- both log-prob passes and the loss's pass go through TRL's fused LM head (``add_fused_lm_head``):
  logits only for completion positions, in tiles, plus the entropy (for its metrics).
- sampling: ``model.generate`` (no vLLM, no paged attention) with the settings above, as the course's
  ``sample_completions``; the rows are shuffled after generation (cheap).
- loss "grpo": per-token min(ratio A, clip(ratio) A) - beta k3, averaged per answer over its tokens, then
  over answers, as the course's ``grpo_loss``. Adam(W) with weight_decay 0 is Adam.

Like with like: TRL's policy and reference model get the course's fused GELU too
(``rlcourse.model.fuse_activations``), so the ratio measures the two loops, not a kernel. The headline
is that ratio. ``--trl-stock-kernels`` gives TRL stock transformers GPT-2 instead (as a TRL user would
load it): the figure beside it, which adds what the kernel is worth.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRL_DIR = ROOT / ".venv" / "trl-benchmark"  # benchmarks/setup_trl.sh installs TRL here
if TRL_DIR.is_dir():
    sys.path.append(str(TRL_DIR))  # after the course's own packages: torch and transformers stay the course's

import torch

from rlcourse.model import (fuse_activations, load_policy, load_tokenizer, position_ids_from_mask, resolve_model,
                            seed_everything, set_threads, without_dropout)
from rlcourse.problems import load_problems
from rlcourse.reference import grpo_loss, group_normalized_advantages, token_log_probs
from rlcourse.rewards import answer_reward, rollout_rewards
from rlcourse.rollout import completion_logits, completion_logps, sample_completions

PROMPTS_PER_STEP = 16
GROUP_SIZE = 8
MAX_NEW_TOKENS = 28
INNER_STEPS = 2
LR = 2e-4
CLIP_EPS = 0.2
BETA = 0.04
SEED = 0


# ----------------------------------------------------------------------------- the course's batch
@contextlib.contextmanager
def timed(timings: dict, phase: str):
    """Adds the seconds spent in the ``with`` block to ``timings[phase]``."""
    start = time.perf_counter()
    yield
    timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - start


def course_batch(policy, policy0, tok, opt, problems, timings):
    """One GRPO batch, notebook 05's recipe; each phase's seconds go to ``timings``."""
    with timed(timings, "sampling"):
        # 1. sample a group of answers per problem (consecutive rows share a problem)
        rollout = sample_completions(policy, tok, [p.prompt for p in problems], MAX_NEW_TOKENS, num_samples=GROUP_SIZE)
        mask = rollout.completion_mask
    with timed(timings, "rewards"):
        # 2. score with the verifiable reward; 3. group-relative advantages
        answers = [p.answer for p in problems for _ in range(GROUP_SIZE)]
        rewards = rollout_rewards(rollout, answer_reward, answers)
        advantages = group_normalized_advantages(rewards, GROUP_SIZE)
    with timed(timings, "ref log-probs"), torch.no_grad():
        ref_logps = completion_logps(policy0, rollout)
    with timed(timings, "2 x forward-backward"):
        # 4. a few clipped steps on the batch
        for step in range(INNER_STEPS):
            logps = token_log_probs(completion_logits(policy, rollout), rollout.completion_ids)
            if step == 0:
                old_logps = logps.detach()  # the policy has not moved yet: these are the old log-probs
            loss = grpo_loss(logps, old_logps, ref_logps, advantages, mask, CLIP_EPS, BETA)
            opt.zero_grad(); loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0); opt.step()


# ----------------------------------------------------------------------------- the course before issue 14 (--before)
def full_forward_logits(model, rollout):
    """``completion_logits`` as it was: logits at every position, sliced to the completion afterwards."""
    mask = rollout.attention_mask
    logits = model(input_ids=rollout.input_ids, attention_mask=mask, position_ids=position_ids_from_mask(mask)).logits
    P = rollout.prompt_ids.shape[1]
    return logits[:, P - 1:-1] / 1.0


def before_batch(policy, policy0, tok, opt, problems, timings):
    """``course_batch`` before issue 14: a forward pass of its own for the old log-probs, full-width logits and
    transformers' element-wise GELU (the models are loaded with plain ``from_pretrained``)."""
    with timed(timings, "sampling"):
        rollout = sample_completions(policy, tok, [p.prompt for p in problems], MAX_NEW_TOKENS, num_samples=GROUP_SIZE)
        mask = rollout.completion_mask
    with timed(timings, "rewards"):
        answers = [p.answer for p in problems for _ in range(GROUP_SIZE)]
        advantages = group_normalized_advantages(rollout_rewards(rollout, answer_reward, answers), GROUP_SIZE)
    with timed(timings, "old log-probs"), torch.no_grad():
        old_logps = token_log_probs(full_forward_logits(policy, rollout), rollout.completion_ids) * mask
    with timed(timings, "ref log-probs"), torch.no_grad():
        ref_logps = token_log_probs(full_forward_logits(policy0, rollout), rollout.completion_ids) * mask
    with timed(timings, "2 x forward-backward"):
        for _ in range(INNER_STEPS):
            logps = token_log_probs(full_forward_logits(policy, rollout), rollout.completion_ids)
            loss = grpo_loss(logps, old_logps, ref_logps, advantages, mask, CLIP_EPS, BETA)
            opt.zero_grad(); loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0); opt.step()


def stock_policy():
    """The tiny GPT-2 as plain transformers loads it (element-wise ``gelu_new``), tokenizer the course's."""
    from transformers import AutoModelForCausalLM

    model = without_dropout(AutoModelForCausalLM.from_pretrained(resolve_model("tiny"))).eval()
    model.generation_config.pad_token_id = load_tokenizer("tiny").pad_token_id
    return model, load_tokenizer("tiny")


class Course:
    def __init__(self, before: bool = False):
        seed_everything(SEED)
        self.rng = random.Random(SEED)
        self.batch = before_batch if before else course_batch
        self.policy0, self.tok = stock_policy() if before else load_policy("tiny")
        self.policy = copy.deepcopy(self.policy0)
        for p in self.policy.parameters():
            p.requires_grad_(True)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=LR)
        self.problems = load_problems("train")
        self.batches = []  # {phase: seconds} per batch
        self.cpu = []  # the process's CPU seconds per batch (all threads)

    def run_one(self):
        timings = {}
        start, cpu = time.perf_counter(), time.process_time()
        self.batch(self.policy, self.policy0, self.tok, self.opt, self.rng.sample(self.problems, PROMPTS_PER_STEP),
                   timings)
        timings["total"] = time.perf_counter() - start
        self.batches.append(timings)
        self.cpu.append(time.process_time() - cpu)


# ----------------------------------------------------------------------------- TRL
def trl_trainer(courses: list[Course], total_batches: int, same_kernels: bool, threads: int, output_dir: str):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    problems = load_problems("train")
    dataset = Dataset.from_list([{"prompt": p.prompt, "answer": p.answer} for p in problems])

    def correct_answer(completions, answer, **kwargs):
        return [answer_reward(c, a) for c, a in zip(completions, answer)]

    model = without_dropout(AutoModelForCausalLM.from_pretrained(resolve_model("tiny")))  # dropout is 0 already
    if same_kernels:
        fuse_activations(model)
    config = GRPOConfig(
        output_dir=output_dir, per_device_train_batch_size=PROMPTS_PER_STEP * GROUP_SIZE, gradient_accumulation_steps=1,
        steps_per_generation=1, num_generations=GROUP_SIZE, num_iterations=INNER_STEPS,
        max_completion_length=MAX_NEW_TOKENS, temperature=1.0, top_k=0, top_p=1.0, beta=BETA, epsilon=CLIP_EPS,
        loss_type="grpo", scale_rewards="group", learning_rate=LR, lr_scheduler_type="constant", weight_decay=0.0,
        max_grad_norm=1.0, max_steps=INNER_STEPS * total_batches, use_cpu=True, bf16=False, fp16=False,
        report_to="none", logging_strategy="no", save_strategy="no", disable_tqdm=True, seed=SEED,
        dataloader_num_workers=0)

    class Interleave(TrainerCallback):
        """At the end of each TRL batch (two optimiser steps): note its time, then run one course batch."""

        def __init__(self):
            self.batches, self.cpu, self.start = [], [], None

        def on_train_begin(self, args, state, control, **kwargs):
            torch.set_num_threads(threads)
            self.start = (time.perf_counter(), time.process_time())

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % INNER_STEPS == 0:
                self.batches.append(time.perf_counter() - self.start[0])
                self.cpu.append(time.process_time() - self.start[1])
                for course in courses:
                    course.run_one()
                self.start = (time.perf_counter(), time.process_time())

    interleave = Interleave()
    trainer = GRPOTrainer(model=model, reward_funcs=correct_answer, args=config, train_dataset=dataset,
                          processing_class=courses[0].tok, callbacks=[interleave])
    if same_kernels and trainer.ref_model is not None:
        fuse_activations(trainer.ref_model)
    return trainer, interleave


# ----------------------------------------------------------------------------- main
def machine_load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"
    except OSError:
        return "load average unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=5, help="measured batches of each (after one warm-up)")
    parser.add_argument("--trl-stock-kernels", action="store_true",
                        help="TRL's models as stock transformers GPT-2 (default: the course's fused GELU on both sides)")
    parser.add_argument("--before", action="store_true",
                        help="also run the course's batch as it was before issue 14 (interleaved too)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: set_threads(), every core); 1 makes CPU seconds a steadier "
                             "measure of work on a busy machine")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import trl
    except ImportError:
        sys.exit("TRL is not installed: run `bash benchmarks/setup_trl.sh` first (it installs it beside .venv).")
    import transformers

    set_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"before: {machine_load()}")
    course = Course()
    courses = [course] + ([Course(before=True)] if args.before else [])
    total = args.batches + 1
    with tempfile.TemporaryDirectory() as output_dir:
        trainer, interleave = trl_trainer(courses, total, not args.trl_stock_kernels, threads, output_dir)
        trainer.train()
    print(f"after:  {machine_load()}, {torch.get_num_threads()} threads")

    trl_times, trl_cpu = interleave.batches[1:], interleave.cpu[1:]
    if not trl_times or any(len(c.batches) < 2 for c in courses):
        sys.exit(f"too few batches measured: TRL {len(interleave.batches)}, course {len(course.batches)}")
    median = statistics.median
    print(f"\nseconds per batch ({PROMPTS_PER_STEP} prompts x {GROUP_SIZE} samples, {MAX_NEW_TOKENS} new tokens, "
          f"{INNER_STEPS} gradient steps), median of {len(trl_times)} after one warm-up (each batch's figures in brackets):")
    for name, c in zip(["course", "course before issue 14"], courses):
        print(f"  {name}")
        for phase in c.batches[1]:
            values = [b[phase] for b in c.batches[1:]]
            print(f"    {phase:<22s} {median(values):6.3f}   ({', '.join(f'{v:.2f}' for v in values)})")
        print(f"    {'CPU seconds':<22s} {median(c.cpu[1:]):6.3f}   ({', '.join(f'{v:.2f}' for v in c.cpu[1:])})")
    kernels = "stock transformers GPT-2" if args.trl_stock_kernels else "the course's fused GELU, as the course"
    print(f"  TRL GRPOTrainer ({kernels})")
    print(f"    {'total':<22s} {median(trl_times):6.3f}   ({', '.join(f'{v:.2f}' for v in trl_times)})")
    print(f"    {'CPU seconds':<22s} {median(trl_cpu):6.3f}   ({', '.join(f'{v:.2f}' for v in trl_cpu)})")

    def ratio(slow, fast):
        pairs = [s / f for s, f in zip(slow, fast)]
        return f"{median(slow) / median(fast):.2f} (each interleaved pair: {', '.join(f'{r:.2f}' for r in pairs)})"

    totals = [[b["total"] for b in c.batches[1:]] for c in courses]
    print(f"\nTRL ({'stock kernels' if args.trl_stock_kernels else 'the same kernels'}) / course = "
          f"{ratio(trl_times, totals[0])}   target >= 1.30")
    print(f"TRL / course, CPU seconds = {ratio(trl_cpu, courses[0].cpu[1:])}")
    if args.before:
        print(f"course before / now = {ratio(totals[1], totals[0])}")
        print(f"TRL / course before = {ratio(trl_times, totals[1])}")

if __name__ == "__main__":
    main()
