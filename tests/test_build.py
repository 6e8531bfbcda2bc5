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
