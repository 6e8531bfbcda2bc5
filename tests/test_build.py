"""The build script reproduces data sets from seeds and runs a short pre-training smoke run."""
import json
import subprocess
import sys

from transformers import AutoModelForCausalLM, AutoTokenizer

from rlcourse import build
from rlcourse.paths import DATA_DIR


def test_pretraining_smoke_run(tmp_path):
    out = tmp_path / "tiny"
    result = subprocess.run([sys.executable, "-m", "rlcourse.build", "--pretrain", "--smoke", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.n_layer == 1 and tok.eos_token_id != tok.pad_token_id
    ids = tok(["Review:"], return_tensors="pt")
    assert model.generate(**ids, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id).shape[1] > 1


def test_shipped_data_sets_are_reproduced_from_the_seed(tmp_path):
    build.build_datasets(tmp_path, seed=0)
    for rel in ["problems/train.jsonl", "problems/heldout.jsonl", "cafe/reviews.jsonl"]:
        assert (tmp_path / rel).read_text() == (DATA_DIR / rel).read_text(), rel
    first = json.loads((tmp_path / "problems/heldout.jsonl").read_text().splitlines()[0])
    assert set(first) == {"question", "answer", "solution", "scene", "ops", "start"}


def test_size_option_builds_a_model_of_that_shape_selectable_by_name(tmp_path, monkeypatch):
    """--size: the same build at another shape (here 2 x 64 for a few steps; gpt2-small is 12 x 768, for a GPU)."""
    from rlcourse import model as course_model
    from rlcourse.pretrain import size_config

    folder, cfg = size_config("gpt2-small")
    assert folder == "course-gpt2" and (cfg.n_layer, cfg.n_embd, cfg.n_head) == (12, 768, 12)
    assert size_config("tiny")[1] == size_config("tiny", 0)[1] and size_config("tiny")[0] == "tiny-gpt2"

    result = subprocess.run([sys.executable, "-m", "rlcourse.build", "--pretrain", "--smoke", "--size", "2x64",
                             "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "course-gpt2-2x64"
    model = AutoModelForCausalLM.from_pretrained(out)
    assert (model.config.n_layer, model.config.n_embd) == (2, 64)
    assert not (tmp_path / "problems").exists(), "--smoke should not rebuild the data sets"

    monkeypatch.setattr(course_model.paths, "DATA_DIR", tmp_path)
    assert course_model.resolve_model("course-gpt2-2x64") == str(out)
    policy, tok = course_model.load_policy("course-gpt2-2x64", device="cpu")
    assert policy.config.n_layer == 2 and tok.pad_token_id != tok.eos_token_id
    try:
        course_model.resolve_model("course-gpt2")
    except FileNotFoundError as err:
        assert "--size gpt2-small" in str(err)
    else:
        raise AssertionError("a course model that is not built should say how to build it")


def test_bf16_autocast_only_where_the_gpu_has_bf16(monkeypatch):
    import contextlib
    import warnings

    import torch

    from rlcourse.pretrain import bf16_autocast

    assert isinstance(bf16_autocast(torch.device("cpu")), contextlib.nullcontext)
    capability = {}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability["cc"])
    capability["cc"] = (7, 5)                                  # Colab's T4: float32, no autocast
    assert isinstance(bf16_autocast(torch.device("cuda", 0)), contextlib.nullcontext)
    capability["cc"] = (9, 0)                                  # H100
    with warnings.catch_warnings():                            # a CPU-only torch says it would disable autocast
        warnings.simplefilter("ignore")
        context = bf16_autocast(torch.device("cuda", 0))
    assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16
