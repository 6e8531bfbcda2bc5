"""The tiny GPT-2: offline loading, generation, tokenizer, size, and clear errors."""
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlcourse import model as course_model
from rlcourse.paths import TINY_MODEL_DIR


def test_tokenizer_round_trip_and_special_tokens():
    tok = AutoTokenizer.from_pretrained(TINY_MODEL_DIR)
    for text in ["Question: Ten students come to lecture.\nAnswer: 10 / 2 = 5. The answer is 5.",
                 " I had a matcha latte. It was lovely!", "unseen wörds, émojis 🍵 and  double  spaces\t"]:
        assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.eos_token_id != tok.pad_token_id
    assert tok.convert_ids_to_tokens([tok.eos_token_id, tok.pad_token_id]) == ["<|endoftext|>", "<|pad|>"]


def test_loads_offline_with_plain_from_pretrained_and_generates():
    code = (
        "import torch; from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(TINY_MODEL_DIR)!r}); t = AutoTokenizer.from_pretrained({str(TINY_MODEL_DIR)!r})\n"
        "ids = t(['Review:'], return_tensors='pt')\n"
        "out = m.generate(**ids, max_new_tokens=20, do_sample=False, pad_token_id=t.pad_token_id)\n"
        "print(t.decode(out[0, ids['input_ids'].shape[1]:], skip_special_tokens=True))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) >= 3  # it writes words


def test_size_and_config():
    size = (TINY_MODEL_DIR / "model.safetensors").stat().st_size
    assert size <= 20 * 2**20
    m = AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR)
    tok = AutoTokenizer.from_pretrained(TINY_MODEL_DIR)
    assert m.config.model_type == "gpt2"
    assert m.config.eos_token_id == tok.eos_token_id and m.config.pad_token_id == tok.pad_token_id
    assert m.get_output_embeddings().weight.shape[0] == len(tok)


def test_load_policy_default_is_tiny_on_cpu():
    m, tok = course_model.load_policy()
    assert m.config.n_layer == 4 and not m.training
    assert tok.padding_side == "left"
    assert next(m.parameters()).device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_unknown_model_lists_the_choices():
    with pytest.raises(ValueError) as err:
        course_model.load_policy("gpt5")
    for choice in course_model.MODEL_CHOICES:
        assert choice in str(err.value)


def test_hub_model_offline_points_to_tiny(tmp_path):
    code = ("from rlcourse.model import load_policy\n"
            "try:\n    load_policy('distilgpt2')\nexcept RuntimeError as e:\n    print('ERR', e)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "ERR" in result.stdout, result.stdout + result.stderr
    assert "network" in result.stdout and "load_policy('tiny')" in result.stdout


def test_missing_model_says_how_to_rebuild(tmp_path):
    code = "from rlcourse.model import load_policy\nload_policy('tiny')\n"
    env = {**os.environ, "RLCOURSE_DATA": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "tiny-gpt2" in result.stderr and "python -m rlcourse.build" in result.stderr


def test_seed_everything_repeats_sampling():
    a = course_model.seed_everything(3)
    x = torch.rand(3), torch.rand(3, generator=a)
    b = course_model.seed_everything(3)
    y = torch.rand(3), torch.rand(3, generator=b)
    assert all(torch.equal(u, v) for u, v in zip(x, y))


def test_set_threads_takes_the_graders_share(monkeypatch):
    """The grader runs kernels side by side and sets OMP_NUM_THREADS to each one's share of the cores."""
    before, share = torch.get_num_threads(), (os.cpu_count() or 1) + 1  # differs from "every core"
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", str(share))
        course_model.set_threads()
        assert torch.get_num_threads() == share
        monkeypatch.delenv("OMP_NUM_THREADS")
        course_model.set_threads()
        assert torch.get_num_threads() == max(1, os.cpu_count() or 1)
    finally:
        torch.set_num_threads(before)


def test_load_policy_computes_gelu_new_with_the_fused_kernel():
    """load_policy swaps transformers' element-wise gelu_new for torch's fused kernel: the same function."""
    from transformers.activations import NewGELUActivation

    m, _ = course_model.load_policy("tiny")
    acts = [mod for mod in m.modules() if isinstance(mod, (NewGELUActivation, course_model.FusedGELUTanh))]
    assert len(acts) == m.config.n_layer and all(isinstance(a, course_model.FusedGELUTanh) for a in acts)
    assert m.config.activation_function == "gelu_pytorch_tanh"
    x = (torch.randn(4096, dtype=torch.float64) * 4).requires_grad_(True)
    fused, spelled_out = course_model.FusedGELUTanh()(x), NewGELUActivation()(x)
    assert torch.allclose(fused, spelled_out, atol=1e-12, rtol=0)  # in float64: the same formula
    (g_fused,) = torch.autograd.grad(fused.sum(), x)
    (g_spelled_out,) = torch.autograd.grad(spelled_out.sum(), x)
    assert torch.allclose(g_fused, g_spelled_out, atol=1e-12, rtol=0)


def test_a_trainable_copy_trains_alone():
    """The start of every training run in 04-07: a copy whose parameters all require grad, sharing no storage
    with the frozen original, which stays frozen."""
    frozen = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    for p in frozen.parameters():
        p.requires_grad_(False)
    trained = course_model.trainable_copy(frozen)
    assert all(p.requires_grad for p in trained.parameters()) and not any(p.requires_grad for p in frozen.parameters())
    before = [p.clone() for p in frozen.parameters()]
    trained(torch.ones(1, 3)).sum().backward()
    torch.optim.SGD(trained.parameters(), lr=1.0).step()
    assert all(torch.equal(a, b) for a, b in zip(frozen.parameters(), before))
    assert not all(torch.equal(a, b) for a, b in zip(trained.parameters(), before))
