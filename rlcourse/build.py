"""Rebuild the course's data sets, tokenizer and (with ``--pretrain``) the tiny GPT-2 from seeds.

    python -m rlcourse.build                 # data/ sets and the tokenizer (seconds)
    python -m rlcourse.build --pretrain      # ... and pre-train data/tiny-gpt2 (about 22 minutes on 2 cores)
    python -m rlcourse.build --pretrain --size gpt2-small   # a 12 x 768 GPT-2 in data/course-gpt2 (on a GPU)
    python -m rlcourse.build --pretrain --smoke --out /tmp/tiny   # a few steps, for tests

Everything is deterministic in ``--seed``; the shipped files were made with the defaults.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from . import cafe, problems
from .model import get_device
from .paths import DATA_DIR
from .pretrain import pretrain, pretraining_documents, size_config

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
VOCAB_SIZE = 2048
N_TRAIN_PROBLEMS = 4000
N_HELDOUT_PROBLEMS = 400
N_REVIEWS = 4000


def write_jsonl(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def build_datasets(data_dir: Path, seed: int = 0) -> None:
    """The files the notebooks read: word problems (train / held-out) and café reviews."""
    problems.save_problems(problems.generate_problems(N_TRAIN_PROBLEMS, "train", seed), data_dir / "problems/train.jsonl")
    problems.save_problems(problems.generate_problems(N_HELDOUT_PROBLEMS, "heldout", seed), data_dir / "problems/heldout.jsonl")
    write_jsonl(cafe.generate_reviews(N_REVIEWS, seed), data_dir / "cafe/reviews.jsonl")


def train_tokenizer(texts: list[str], out_dir: Path, vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE tokenizer with distinct EOS and pad tokens, saved in Hugging Face format."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS_TOKEN, PAD_TOKEN],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS_TOKEN, bos_token=EOS_TOKEN,
                                   unk_token=EOS_TOKEN, pad_token=PAD_TOKEN, padding_side="left",
                                   model_max_length=256)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--out", type=Path, default=None,
                        help="model folder (default: DATA_DIR/tiny-gpt2, or DATA_DIR/course-gpt2 for gpt2-small)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain", action="store_true", help="also pre-train the model")
    parser.add_argument("--size", default="tiny",
                        help="tiny (4 x 192, default), gpt2-small (12 x 768, for a GPU) or <layers>x<width>")
    parser.add_argument("--steps", type=int, default=None, help="pre-training steps (default: the size's)")
    parser.add_argument("--smoke", action="store_true", help="a few pre-training steps on little data (tests)")
    args = parser.parse_args(argv)
    folder, cfg = size_config(args.size, args.seed)
    out = args.out or args.data_dir / folder

    if not args.smoke:
        build_datasets(args.data_dir, args.seed)
    if args.smoke:
        cfg = cfg.smoke(keep_shape=args.size != "tiny")
    if args.steps:
        cfg = replace(cfg, steps=args.steps)
    docs = pretraining_documents(cfg.n_problems, cfg.n_reviews, args.seed)
    tokenizer = train_tokenizer(docs, out, cfg.vocab_size)
    print(f"tokenizer: {len(tokenizer)} tokens -> {out}")
    if args.pretrain:
        pretrain(docs, tokenizer, out, cfg, get_device())


if __name__ == "__main__":
    main()
