# The code cells of solutions/01_generation_as_rl/01_generation_as_rl.ipynb, written by scripts/release.py: do not edit.
# Each `# %% cell N` line starts cell N of the notebook (counting from 0, markdown included).


# %% cell 1 colab
# Colab only: fetch the course (package, data and tiny model) and install what Colab lacks.
# Anywhere else this cell does nothing. (A fork sets its own URL: REPO_URL in rlcourse/config.py.)
import os, subprocess, sys

COURSE_REPO = os.environ.get("RLCOURSE_REPO_URL", "https://github.com/rl-for-llms/parrots-to-agents")
COURSE_DIR = os.environ.get("RLCOURSE_DIR", "/content/parrots-to-agents")
try:
    import google.colab  # noqa: F401
    IN_COLAB = True
except ImportError:
    IN_COLAB = False
if IN_COLAB:
    from importlib.metadata import version
    if not os.path.isdir(COURSE_DIR):
        subprocess.run(["git", "clone", "--depth", "1", COURSE_REPO, COURSE_DIR], check=True)
    # pip adds only what is missing or too old; naming Colab's own torch keeps it as it is
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", COURSE_DIR, f"torch=={version('torch')}"],
                   check=True)
    sys.path.insert(0, COURSE_DIR)  # importable at once, from any working directory


# %% cell 2 setup
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from rlcourse.cafe import annotator_ranking, annotator_score, review_prompts
from rlcourse.checks import check, check_close, check_own_function, check_raises, check_shape, fail, needs_your_code
from rlcourse.model import load_policy, position_ids_from_mask, seed_everything, set_threads
from rlcourse.rollout import completion_logits, sample_completions

set_threads()

# ---- config: every knob of this notebook ----
MODEL_NAME = "tiny"           # or "course-gpt2" (build it on a GPU), "gpt2", "distilgpt2": README, "On a GPU"
SEED = 0
NUM_REVIEWS = 6              # trajectories to look at
MAX_NEW_TOKENS = 24


# %% cell 4 token_log_probs
def token_log_probs(logits, tokens):
    """log pi(a_t | s_t) of the chosen tokens.

    out[b, t] = log_softmax(logits[b, t])[tokens[b, t]]

    logits: (B, T, V), logits[b, t] produced tokens[b, t];  tokens: (B, T) long.  Returns (B, T).
    bf16/fp16 logits are up-cast to float32. Raises ValueError on mismatched shapes.
    """
    ### BEGIN SOLUTION
    if logits.shape[:-1] != tokens.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match tokens {tuple(tokens.shape)}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    logps = torch.log_softmax(logits, dim=-1)
    return logps.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)
    ### END SOLUTION


# %% cell 5 test_token_log_probs
check_own_function(token_log_probs, "token_log_probs")
probs = torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.2, 0.7]]])
logits = torch.log(probs) + 3.0          # adding a constant to all logits changes nothing
tokens = torch.tensor([[0, 2]])
out = token_log_probs(logits, tokens)
check_shape(out, (1, 2), "token_log_probs(logits (1,2,3), tokens (1,2))")
if abs(float(out[0, 0]) - 0.5) < 1e-4:
    fail("You returned probabilities, not log-probabilities: take log_softmax.")
if abs(float(out[0, 0]) - float(logits[0, 0, 0])) < 1e-4:
    fail("You returned raw logits: normalise them with log_softmax over the vocabulary.")
check_close(out, torch.log(torch.tensor([[0.5, 0.7]])), "token_log_probs on the hand example",
            hint="out[b, t] should be log p(tokens[b, t]) under softmax(logits[b, t]).")


# %% cell 6 test_token_log_probs_hidden
check_own_function(token_log_probs, "token_log_probs")
check_shape(token_log_probs(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long)), (2, 3), "token_log_probs")
### BEGIN HIDDEN TESTS
# stability: logits of magnitude 1e4
big = token_log_probs(torch.tensor([[[1e4, 0.0, -1e4]]]), torch.tensor([[1]]))
check_close(big, torch.tensor([[-1e4]]), "token_log_probs with very large logits",
            hint="Use log_softmax: log(softmax(x)) underflows to -inf.")
# every position uses its own logits (no off-by-one), independent float64 arithmetic
g = torch.Generator().manual_seed(0)
logits = torch.randn(2, 4, 5, generator=g, dtype=torch.float64)
tokens = torch.randint(0, 5, (2, 4), generator=g)
expected = torch.zeros(2, 4, dtype=torch.float64)
for b in range(2):
    for t in range(4):
        row = logits[b, t].tolist()
        expected[b, t] = row[tokens[b, t]] - math.log(sum(math.exp(z) for z in row))
out = token_log_probs(logits, tokens)
check(out.dtype == torch.float64, "float64 logits should give float64 log-probs: up-cast only half "
                                  "precision (bf16/fp16) to float32 and leave float64 as it is.")
check_close(out, expected, "token_log_probs on random logits", atol=1e-10, rtol=1e-10,
            hint="logits[b, t] scores tokens[b, t]: do not shift by one position.")
# gradient: d/dlogits sum out = onehot(tokens) - softmax(logits)
logits = logits.clone().requires_grad_(True)
token_log_probs(logits, tokens).sum().backward()
expected_grad = F.one_hot(tokens, 5).double() - torch.softmax(logits.detach(), -1)
check_close(logits.grad, expected_grad, "gradient of token_log_probs", atol=1e-8,
            hint="d log p(token) / d logits = onehot(token) - softmax(logits): normalise over the vocabulary "
                 "axis (the last one), not over time.")
# half precision is up-cast
half = token_log_probs(torch.zeros(1, 2, 4, dtype=torch.bfloat16), torch.tensor([[0, 3]]))
check(half.dtype == torch.float32, "bf16 logits should give float32 log-probs: call .float() on "
                                   "half-precision logits before log_softmax.")
check_close(half, torch.full((1, 2), -math.log(4)), "token_log_probs of bf16 logits",
            hint="Up-cast to float32 before log_softmax: bf16 keeps only about 3 significant digits.")
# batch size 1, one step
check_close(token_log_probs(torch.tensor([[[2.0, 0.0]]]), torch.tensor([[0]])),
            torch.tensor([[-math.log(1 + math.exp(-2.0))]]), "token_log_probs for the smallest batch",
            hint="Keep the batch and time dimensions: do not squeeze them away.")
check_raises(lambda: token_log_probs(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long)), ValueError,
             "token_log_probs with tokens whose shape differs from the first two dimensions of the logits")
### END HIDDEN TESTS


# %% cell 8 completion_mask
def completion_mask(completion_ids, eos_token_id):
    """1 up to and including the first EOS of each row, 0 after it; a row with no EOS is all 1.

    mask[b, t] = 1 if no EOS among completion_ids[b, :t] else 0

    completion_ids: (B, T) long;  eos_token_id: int.  Returns (B, T) float.
    """
    ### BEGIN SOLUTION
    is_eos = (completion_ids == eos_token_id).long()
    eos_strictly_before = is_eos.cumsum(dim=-1) - is_eos
    return (eos_strictly_before == 0).float()
    ### END SOLUTION


# %% cell 9 test_completion_mask
check_own_function(completion_mask, "completion_mask")
ids = torch.tensor([[5, 6, 0, 7, 0],
                    [0, 3, 4, 5, 6],
                    [1, 2, 3, 4, 5]])
out = completion_mask(ids, 0)
check_shape(out, (3, 5), "completion_mask")
check(out.is_floating_point(), f"completion_mask should be a float tensor, got {out.dtype}.")
expected = torch.tensor([[1., 1., 1., 0., 0.],
                         [1., 0., 0., 0., 0.],
                         [1., 1., 1., 1., 1.]])
without_eos = torch.tensor([[1., 1., 0., 0., 0.],
                            [0., 0., 0., 0., 0.],
                            [1., 1., 1., 1., 1.]])
if torch.equal(out.float(), without_eos):
    fail("Your mask stops before the EOS: the EOS token is an action of the policy and keeps mask 1.")
check_close(out, expected, "completion_mask with EOS id 0",
            hint="1 up to and including the FIRST EOS, 0 after it; no EOS -> all ones.")


# %% cell 10 test_completion_mask_hidden
check_own_function(completion_mask, "completion_mask")
check_shape(completion_mask(torch.tensor([[1, 2]]), 2), (1, 2), "completion_mask")
### BEGIN HIDDEN TESTS
ids = torch.tensor([[9, 9, 9, 42], [42, 42, 1, 42], [3, 42, 7, 7]])
before = ids.clone()
out = completion_mask(ids, 42)
check_close(out, torch.tensor([[1., 1., 1., 1.], [1., 0., 0., 0.], [1., 1., 0., 0.]]),
            "completion_mask with EOS at the end, repeated EOS, and tokens after EOS",
            hint="Only the FIRST EOS matters; everything after it is padding, even another EOS.")
check(torch.equal(ids, before), "completion_mask changed its input in place.")
check(out.is_floating_point(), "completion_mask should return a float mask (1.0 and 0.0), not bool or int: "
      "convert it with .float().")
check_close(completion_mask(torch.tensor([[4]]), 4), torch.tensor([[1.]]), "completion_mask of a lone EOS",
            hint="The first EOS itself belongs to the completion: its mask is 1.")
check_close(completion_mask(torch.tensor([[4]]), 5), torch.tensor([[1.]]), "completion_mask of one non-EOS token",
            hint="A completion without EOS is real all the way to its end.")
### END HIDDEN TESTS


# %% cell 12 sequence_log_prob
def sequence_log_prob(token_logps, mask):
    """log P(tau) = sum_t mask[b, t] * token_logps[b, t]  (deterministic transitions add nothing).

    token_logps: (B, T);  mask: (B, T) 0/1.  Returns (B,). Raises ValueError on mismatched shapes.
    """
    ### BEGIN SOLUTION
    if token_logps.shape != mask.shape:
        raise ValueError(f"token_logps {tuple(token_logps.shape)} and mask {tuple(mask.shape)} differ in shape")
    return (token_logps * mask.to(token_logps.dtype)).sum(dim=-1)
    ### END SOLUTION


# %% cell 13 test_sequence_log_prob
check_own_function(sequence_log_prob, "sequence_log_prob")
logps = torch.tensor([[-1.0, -0.5, -2.0], [-0.25, -3.0, -3.0]])
mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
out = sequence_log_prob(logps, mask)
check_shape(out, (2,), "sequence_log_prob of a (2, 3) batch")
if abs(float(out[0]) + 3.5 / 3) < 1e-6:
    fail("You averaged over tokens: log P(tau) is the SUM of the per-token log-probs.")
check_close(out, torch.tensor([-3.5, -0.25]), "sequence_log_prob on the hand example",
            hint="Sum mask * log-probs over time; padding (mask 0) must not count.")


# %% cell 14 test_sequence_log_prob_hidden
check_own_function(sequence_log_prob, "sequence_log_prob")
check_shape(sequence_log_prob(torch.zeros(1, 2), torch.ones(1, 2)), (1,), "sequence_log_prob")
### BEGIN HIDDEN TESTS
logps = torch.tensor([[-0.1, -0.2, -1e6], [-1.0, -1e6, -1e6]], dtype=torch.float64, requires_grad=True)
mask = torch.tensor([[True, True, False], [True, False, False]])
out = sequence_log_prob(logps, mask)
check(out.dtype == torch.float64, "float64 log-probs should give float64 sums: "
      "keep the input's dtype (no .float(), no float32 constants or buffers such as torch.zeros(...) without dtype).")
check_close(out, torch.tensor([-0.3, -1.0]), "sequence_log_prob with huge padded values (bool mask)", atol=1e-12,
            hint="Padding leaks into the sum.")
out.sum().backward()
check_close(logps.grad, mask.double(), "gradient of sequence_log_prob", hint="Each real token should get gradient 1.")
check_raises(lambda: sequence_log_prob(torch.zeros(2, 3), torch.ones(3, 2)), ValueError,
             "sequence_log_prob with mismatched shapes")
### END HIDDEN TESTS


# %% cell 16
seed_everything(SEED)
model, tok = load_policy(MODEL_NAME)     # on the GPU when there is one
prompts = review_prompts(NUM_REVIEWS, seed=SEED)
rollout = sample_completions(model, tok, prompts, max_new_tokens=MAX_NEW_TOKENS)

with torch.no_grad():
    logits = completion_logits(model, rollout)                  # (B, T, V)
with needs_your_code() as trajectory_run:
    logps = token_log_probs(logits, rollout.completion_ids)         # (B, T)
    mask = completion_mask(rollout.completion_ids, tok.eos_token_id)
    seq_logps = sequence_log_prob(logps, mask)                      # (B,)
print("state s_0 and the actions a_0, a_1, ... of the first trajectory:")
print("  s_0 =", repr(prompts[0]))
for t in range(int(mask[0].sum())):
    a = rollout.completion_ids[0, t].item()
    print(f"  a_{t:<2d} = {tok.decode([a])!r:14} log pi = {logps[0, t].item():7.3f}")
print(f"log P(tau | s_0) = {seq_logps[0].item():.3f}")


# %% cell 18
trajectory_run.require()
with torch.no_grad():
    out = model(input_ids=rollout.input_ids, attention_mask=rollout.attention_mask,
                position_ids=position_ids_from_mask(rollout.attention_mask))
full_logps = torch.log_softmax(out.logits[:, :-1].float(), -1).gather(-1, rollout.input_ids[:, 1:, None]).squeeze(-1)
P = rollout.prompt_ids.shape[1]
text_logp = (full_logps[:, P - 1:] * mask).sum(-1)   # log P(completion | prompt) read off the full text
print("sum of policy log-probs :", [round(v, 3) for v in seq_logps.tolist()])
print("log-prob of the text    :", [round(v, 3) for v in text_logp.tolist()])
print("difference (transitions):", f"{(seq_logps - text_logp).abs().max().item():.2e}")


# %% cell 20
trajectory_run.require()
labels = [chr(ord("A") + i) for i in range(NUM_REVIEWS)]
scores = [annotator_score(t) for t in rollout.texts]
for label, text, score, lp in zip(labels, rollout.texts, scores, seq_logps.tolist()):
    print(f"{label}  score {score:+.2f}  log P {lp:7.2f}  {text.strip()!r}")
print("\nannotator's ranking:", annotator_ranking(rollout.texts, labels))
print("reference reviews:", annotator_ranking(["I had a matcha latte. It was lovely.", "The coffee was fine."], ["matcha", "coffee"]))

fig, ax = plt.subplots(figsize=(5, 3))
ax.scatter(seq_logps.tolist(), scores)
for label, x, y in zip(labels, seq_logps.tolist(), scores):
    ax.annotate(label, (x, y))
ax.set_xlabel("log P(tau | s_0) under the policy"); ax.set_ylabel("annotator score (reward)")
ax.set_title("Likely is not the same as good")
plt.show()
