"""Pre-train the course's GPT-2 on its own synthetic text (run through ``python -m rlcourse.build``).

Sizes (``--size``): ``tiny`` (4 layers x 192, the shipped ``data/tiny-gpt2``, about 20 CPU minutes),
``gpt2-small`` (12 x 768, GPT-2 small's shape, for a GPU: written to ``data/course-gpt2``), or any
``<layers>x<width>`` such as ``6x384``. On a GPU with bf16 (A100, H100, ...) the forward pass runs
under bf16 autocast (the weights stay float32); the batches are drawn on the CPU, so a run sees the
same data on any device.
"""
from __future__ import annotations

import math
import re
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import cafe, problems

WARM_START_STEPS = 300  # a Hub model's warm start on the course's text (``warm_start``; ``load_policy`` makes it once)


@dataclass(frozen=True)
class PretrainConfig:
    n_layer: int = 4
    n_embd: int = 192
    n_head: int = 6
    n_positions: int = 128
    vocab_size: int = 2048
    steps: int = 1600
    batch_size: int = 64
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.1
    n_problems: int = 60_000
    n_reviews: int = 40_000
    seed: int = 0

    def smoke(self, keep_shape: bool = False) -> "PretrainConfig":
        """A few steps on little data (tests); ``keep_shape`` keeps the layers and width."""
        small = replace(self, steps=3, batch_size=8, n_problems=200, n_reviews=200, vocab_size=400)
        return small if keep_shape else replace(small, n_layer=1, n_embd=32, n_head=2)


# name -> (model folder under data/, architecture and schedule); "tiny" is what the course ships
SIZES = {
    "tiny": ("tiny-gpt2", {}),
    "gpt2-small": ("course-gpt2", dict(n_layer=12, n_embd=768, n_head=12, batch_size=128, lr=6e-4)),
}


def size_config(size: str, seed: int = 0) -> tuple[str, PretrainConfig]:
    """``(folder name under data/, config)`` for ``tiny``, ``gpt2-small`` or ``<layers>x<width>`` (heads of 64)."""
    if size in SIZES:
        folder, changes = SIZES[size]
        return folder, replace(PretrainConfig(seed=seed), **changes)
    m = re.fullmatch(r"(\d+)x(\d+)", size)
    if not m or int(m.group(2)) % 32:
        raise ValueError(f"unknown size {size!r}: choose {', '.join(SIZES)} or <layers>x<width> (width a multiple of 32)")
    n_layer, n_embd = int(m.group(1)), int(m.group(2))
    cfg = PretrainConfig(seed=seed, n_layer=n_layer, n_embd=n_embd, n_head=max(1, n_embd // 64), batch_size=128,
                         lr=min(3e-3, 3e-3 * 192 / n_embd))
    return f"course-gpt2-{size}", cfg


def pretraining_documents(n_problems: int, n_reviews: int, seed: int = 0) -> list[str]:
    """The pre-training mix: noisy worked word problems and café reviews, one document each."""
    docs = problems.problem_corpus(problems.generate_problems(n_problems, "train", seed + 1), seed=seed + 2)
    docs += cafe.generate_reviews(n_reviews, seed + 3)
    return [d["prompt"] + d["text"] for d in docs]


def model_config(cfg: PretrainConfig, tokenizer):
    from transformers import GPT2Config

    return GPT2Config(vocab_size=len(tokenizer), n_positions=cfg.n_positions, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                      n_head=cfg.n_head, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


def bf16_autocast(device: torch.device):
    """bf16 autocast on a CUDA GPU with native bf16 (compute capability 8.0 or more: A100, H100, L4,
    RTX 30xx and later); a plain float32 context elsewhere: the CPU, and older GPUs such as Colab's
    T4 (7.5), where bf16 is missing or emulated."""
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def train_on_documents(model, tokenizer, docs: list[str], steps: int, batch_size: int, lr: float, warmup: int = 100,
                       weight_decay: float = 0.1, max_tokens: int = 128, seed: int = 0, desc: str = "pre-training"):
    """Next-token training on whole documents (each ending in EOS, one per row) on the model's device,
    with a warm-up and cosine learning rate; bf16 autocast on a GPU that has bf16 (``bf16_autocast``).
    Returns the losses."""
    device = next(model.parameters()).device
    autocast = bf16_autocast(device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = [tokenizer(d)["input_ids"][: max_tokens - 1] + [tokenizer.eos_token_id] for d in docs]
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    bar = tqdm(range(steps), desc=desc, mininterval=5)
    for step in bar:
        step_lr = lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in opt.param_groups:
            group["lr"] = step_lr
        rows = [ids[i] for i in torch.randint(len(ids), (batch_size,), generator=gen).tolist()]
        width = max(map(len, rows))
        input_ids = torch.full((len(rows), width), pad)
        labels = torch.full((len(rows), width), -100)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            input_ids[r, : len(row)] = torch.tensor(row)
            labels[r, : len(row)] = torch.tensor(row)
            attention[r, : len(row)] = 1
        with autocast:
            loss = model(input_ids=input_ids.to(device), attention_mask=attention.to(device), labels=labels.to(device)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.3f}")
    model.eval()
    return losses


def pretrain(docs: list[str], tokenizer, out_dir: Path, cfg: PretrainConfig, device: torch.device):
    """Pre-train a new GPT-2 of ``cfg``'s shape on ``docs`` on ``device`` and save it (``python -m rlcourse.build``
    passes ``rlcourse.model.get_device()``: CUDA when present)."""
    from transformers import GPT2LMHeadModel

    torch.manual_seed(cfg.seed)
    model = GPT2LMHeadModel(model_config(cfg, tokenizer)).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"GPT-2 {cfg.n_layer} x {cfg.n_embd}: {n_params / 1e6:.2f}M parameters, on {device}")
    start = time.time()
    losses = train_on_documents(model, tokenizer, docs, cfg.steps, cfg.batch_size, cfg.lr, cfg.warmup,
                                cfg.weight_decay, cfg.n_positions, cfg.seed)
    print(f"pre-training: {cfg.steps} steps in {time.time() - start:.0f} s, final loss {sum(losses[-50:]) / len(losses[-50:]):.3f}")
    model = model.cpu().eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return model


def warm_start(model, tokenizer, steps: int = WARM_START_STEPS, batch_size: int = 16, lr: float = 5e-5, seed: int = 0) -> list[float]:
    """A Hub model's short warm start on the course's corpus, before the experiments.

    Hub GPT-2 has never seen the course's worked answers ("... The answer is 4.") or its reviews, so on
    the word problems every sampled answer is wrong and every GRPO group is dead. A few hundred
    next-token steps on the same mix the tiny model was pre-trained on teach it the format; the
    model is changed in place and left in eval mode (dropout stays as it was). Returns the losses.
    """
    docs = pretraining_documents(20 * batch_size * max(1, steps // 20), 10 * batch_size * max(1, steps // 20), seed)
    return train_on_documents(model, tokenizer, docs, steps, batch_size, lr, warmup=max(1, steps // 10),
                              seed=seed, desc="warm start")
