"""Loading policies, picking the device, seeding.

``load_policy("tiny")`` loads the course's own GPT-2 from ``data/tiny-gpt2`` (offline, CPU-fast);
``load_policy("gpt2")`` or ``load_policy("distilgpt2")`` load the Hub models through the same
``from_pretrained`` call (needs network, meant for Colab/GPU); a local folder path works too.

A Hub model has never seen the course's text (its worked answers end "The answer is 4.", its reviews
are the café's), so on the word problems every answer it samples is wrong and every GRPO group is
dead. ``load_policy`` therefore gives a Hub model the course's short warm start
(``rlcourse.pretrain.warm_start``, ``pretrain.WARM_START_STEPS`` next-token steps on the pre-training mix) the
first time, saves the result in ``data/<name>-warm/`` and loads that copy from then on, so that the
policy and its reference, in every notebook, start from the same weights. ``warm_start=False`` loads
the Hub weights as they are; ``warm_start=True`` warm-starts a local folder too.

Every policy comes with its dropout off (Hub GPT-2 has 0.1): in RL the policy that sampled a batch
and the policy being trained must compute the same log-probs, so that at the first PPO or GRPO step
the ratio is exactly 1 and the KL to the reference exactly 0. ``load_policy(..., dropout=True)``
keeps the model's own dropout.

GPT-2's activation, ``gelu_new`` (the tanh approximation of GELU), is computed by torch's fused
kernel (``FusedGELUTanh``, ``fuse_activations``): transformers spells it out in six element-wise
passes over the MLP's activations forward and more backward, a tenth of a training step's time on
one CPU core and more on a busy machine. The same function: activations differ by rounding only (at
most ~5e-7), the tiny model's log-probs by a few 1e-6; the sampler and the learner use the same kernel.
"""
from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

import numpy as np
import torch

from . import paths
from .paths import REBUILD_HINT, TINY_MODEL_DIR

HUB_MODELS = ("gpt2", "distilgpt2")
# "course-gpt2": the 12 x 768 GPT-2 that `python -m rlcourse.build --pretrain --size gpt2-small` writes to
# data/course-gpt2 (on a GPU); "course-gpt2-<layers>x<width>" for other sizes
MODEL_CHOICES = ("tiny", "course-gpt2") + HUB_MODELS


def get_device(prefer: str | None = None) -> torch.device:
    """CUDA when present (or ``prefer``), else the CPU."""
    if prefer:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a CPU ``torch.Generator`` seeded the same."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


def resolve_model(name: str = "tiny") -> str:
    """The folder or Hub id that ``from_pretrained`` should load for ``name``."""
    if name == "tiny":
        if not (TINY_MODEL_DIR / "model.safetensors").exists():
            raise FileNotFoundError(f"the tiny GPT-2 is missing from {TINY_MODEL_DIR}: {REBUILD_HINT}")
        return str(TINY_MODEL_DIR)
    if name in HUB_MODELS:
        return name
    if name.startswith("course-gpt2"):
        folder = paths.DATA_DIR / name
        if not (folder / "config.json").exists():
            size = "gpt2-small" if name == "course-gpt2" else name.removeprefix("course-gpt2-")
            raise FileNotFoundError(f"{name} is not built yet ({folder} is missing): build it with "
                                    f"`python -m rlcourse.build --pretrain --size {size}` (meant for a GPU)")
        return str(folder)
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODEL_CHOICES)} or a local model folder")


def _offline_error(name: str, exc: Exception) -> RuntimeError:
    return RuntimeError(
        f"could not load {name!r} from the Hugging Face Hub ({type(exc).__name__}: {exc}). "
        "Hub models need network access (e.g. on Colab); offline, use the course's own model: load_policy('tiny')."
    )


def load_tokenizer(name: str = "tiny"):
    """The tokenizer of a policy, left-padding, with a pad token distinct from EOS where the model has one."""
    return _load_tokenizer(name, resolve_model(name), name in HUB_MODELS)


def _load_tokenizer(name: str, source: str, hub: bool):
    """``load_tokenizer`` for a name already resolved (``source``) and known to be a Hub model or not (``hub``)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        if hub:
            raise _offline_error(name, exc) from exc
        raise
    if tokenizer.pad_token is None:  # Hub GPT-2 has no pad token: reuse EOS (masks are built from lengths)
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


@contextlib.contextmanager
def _quiet_loading():
    """No "Loading weights" progress bar from transformers during one load (it stays at 0% in saved outputs)."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def is_dropout_setting(key: str, value) -> bool:
    """Config entries that are dropout probabilities (GPT-2: ``resid_pdrop``, ``embd_pdrop``, ``attn_pdrop``)."""
    return isinstance(value, float) and not isinstance(value, bool) and (key.endswith("pdrop") or key.endswith("dropout"))


def without_dropout(model):
    """Turn every dropout of ``model`` off, in its config and in its modules; returns the model."""
    for key, value in model.config.to_dict().items():
        if is_dropout_setting(key, value):
            setattr(model.config, key, 0.0)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


class FusedGELUTanh(torch.nn.Module):
    """``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (GPT-2's ``gelu_new``) in one fused torch kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.gelu(x, approximate="tanh")


def fuse_activations(model):
    """Swap transformers' element-wise ``gelu_new`` modules for ``FusedGELUTanh`` (same function); returns the model."""
    from transformers.activations import NewGELUActivation

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is NewGELUActivation:
                setattr(module, name, FusedGELUTanh())
    if getattr(model.config, "activation_function", None) == "gelu_new":
        model.config.activation_function = "gelu_pytorch_tanh"  # transformers' name for the fused kernel
    return model


def warm_folder(name: str) -> Path:
    """Where the warm-started copy of ``name`` is kept: ``data/<name>-warm`` (``<folder name>-warm`` for a path)."""
    return paths.DATA_DIR / f"{Path(name).name}-warm"


def _from_pretrained(name: str, source: str, hub: bool):
    from transformers import AutoModelForCausalLM

    try:
        with _quiet_loading():
            return AutoModelForCausalLM.from_pretrained(source)
    except OSError as exc:
        if hub:
            raise _offline_error(name, exc) from exc
        raise


def _warm_copy(name: str, source: str, hub: bool, tokenizer, device: torch.device) -> Path:
    """The folder of ``name``'s warm-started copy, made (once, on ``device``) from ``source`` when it is missing."""
    folder = warm_folder(name)
    if (folder / "model.safetensors").exists():
        return folder
    # Imported here, not at the top: the training plumbing is not in the grader sandbox's copy of the
    # package (autograder/sandbox.py, STUDENT_MODULES), where this module must import; pretrain does
    # not import this module (no cycle: tests/test_package_imports.py checks the import graph).
    from . import pretrain

    model = fuse_activations(_from_pretrained(name, source, hub)).to(device)
    steps = pretrain.WARM_START_STEPS
    print(f"{name} has never seen the course's text: warm start on the course's corpus "
          f"({steps} steps, once; saved in {folder})", flush=True)
    pretrain.warm_start(model, tokenizer, steps=steps)
    partial = folder.with_name(folder.name + ".partial")
    model.cpu().save_pretrained(partial, safe_serialization=True)
    partial.replace(folder)  # a run stopped half-way leaves no half-written copy behind
    return folder


def load_policy(name: str = "tiny", device: str | torch.device | None = None, dropout: bool = False,
                warm_start: bool | None = None):
    """``(model, tokenizer)`` for a policy name: ``"tiny"`` (default), a Hub id, or a local folder.

    The model is on ``device`` (default: CUDA when present), in eval mode, with its dropout off
    unless ``dropout=True`` and its activation computed by one fused kernel (see the module's docstring).
    A Hub model (``warm_start=None`` means: for Hub models) comes warm-started on the course's text,
    from the copy in ``warm_folder(name)``, made the first time.
    """
    source, hub, device = resolve_model(name), name in HUB_MODELS, get_device(device)  # once per load
    tokenizer = _load_tokenizer(name, source, hub)
    if warm_start if warm_start is not None else hub:
        source = str(_warm_copy(name, source, hub, tokenizer, device))
    model = _from_pretrained(name, source, hub)
    if not dropout:
        without_dropout(model)
    fuse_activations(model)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer


class ValueHeadModel(torch.nn.Module):
    """A causal LM with a scalar head on the last hidden state: the critic ``V(s_t)`` or a reward model.

    ``forward`` returns per-position values ``(B, L)``: ``values[:, t]`` is the value of the prefix
    ending at token ``t``. The head is made on the language model's device and in its dtype. The
    language model's own head (vocabulary logits) is computed for one position only
    (``logits_to_keep=1``): the values need the last hidden states, not the logits.
    """

    def __init__(self, lm):
        super().__init__()
        self.lm = lm
        hidden = lm.config.n_embd if hasattr(lm.config, "n_embd") else lm.config.hidden_size
        weight = next(lm.parameters())
        self.head = torch.nn.Linear(hidden, 1, device=weight.device, dtype=weight.dtype)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, input_ids, attention_mask):
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask,
                      position_ids=position_ids_from_mask(attention_mask), output_hidden_states=True,
                      logits_to_keep=1)
        return self.head(out.hidden_states[-1]).squeeze(-1)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions 0, 1, 2, ... counted over real tokens only, so left padding does not shift them."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def trainable_copy(model):
    """A copy of ``model`` to train, every parameter requiring grad; ``model`` itself (frozen: the reference,
    the start of every run) stays as it is."""
    import copy

    trained = copy.deepcopy(model)
    for p in trained.parameters():
        p.requires_grad_(True)
    return trained


def cache_of(out) -> tuple[str, object]:
    """The key/value cache a forward pass returned, and the name under which the next pass takes it: ``cache``
    from transformers 5.x (which deprecates ``past_key_values``), ``past_key_values`` before and in stand-ins."""
    cache = getattr(out, "cache", None)
    return ("cache", cache) if cache is not None else ("past_key_values", out.past_key_values)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def set_threads() -> None:
    """Use every core on CPU (torch sometimes starts with fewer), or ``OMP_NUM_THREADS`` where it is set.

    The grader sets ``OMP_NUM_THREADS`` to each parallel worker's share of the cores: kernels side by
    side that each take every core slow each other down (grading took 2.2 times longer on 2 cores).
    """
    if torch.cuda.is_available():
        return
    torch.set_num_threads(cpu_threads())


def cpu_threads() -> int:
    """The CPU threads ``set_threads`` gives torch: ``OMP_NUM_THREADS`` where it is set, else every core."""
    share = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(share) if share.isdigit() and int(share) > 0 else max(1, os.cpu_count() or 1)
