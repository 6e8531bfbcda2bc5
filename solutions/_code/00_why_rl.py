# The code cells of solutions/00_why_rl/00_why_rl.ipynb, written by scripts/release.py: do not edit.
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
from tqdm.auto import tqdm

from rlcourse.checks import check, check_close, check_own_function, check_raises, check_scalar, fail, needs_your_code
from rlcourse.config import Report, pick
from rlcourse.model import load_policy, seed_everything, set_threads
from rlcourse.optim import optimizer_step
from rlcourse.plots import plot_curve
from rlcourse.problems import load_problems
from rlcourse.reference import answer_reward, token_log_probs  # plumbing (you write them in notebooks 01, 05)
from rlcourse.rewards import problem_accuracy, rollout_rewards
from rlcourse.rollout import batch_from_texts, completion_logits, sample_completions

set_threads()

# ---- config: every knob of this notebook ----
MODEL_NAME = "tiny"           # or "course-gpt2" (build it on a GPU), "gpt2", "distilgpt2": README, "On a GPU"
SEED = 0
RFT_SEED = SEED + 1          # which training problems rejection fine-tuning samples
MAX_NEW_TOKENS = 32          # answer length cap
EVAL_PROBLEMS = pick(400, 40)  # held-out problems per evaluation (400: all of them)
SFT_STEPS = pick(80, 3)
SFT_BATCH = 16
RFT_PROMPTS = pick(160, 16)    # prompts sampled for rejection fine-tuning
RFT_SAMPLES = 4                # samples per prompt
RFT_SAMPLE_BATCH = 32          # prompts per sampling call
RFT_EPOCHS = 1
LR = 1e-4
MAX_GRAD_NORM = None           # SFT here takes plain steps: no gradient clipping

report = Report("00_why_rl")   # prints the summary figures the benchmarks collect


# %% cell 4
seed_everything(SEED)
model, tok = load_policy(MODEL_NAME)     # on the GPU when there is one
device = model.device
train_problems = load_problems("train")
heldout = load_problems("heldout")[:EVAL_PROBLEMS]

example = train_problems[0]
print(example.prompt + example.solution)
rollout = sample_completions(model, tok, [heldout[0].prompt] * 4, max_new_tokens=MAX_NEW_TOKENS)
print("\nFour samples for a held-out question:", heldout[0].question)
for text in rollout.texts:
    print("  ->", text.strip())
acc_pretrained = problem_accuracy(model, tok, heldout, max_new_tokens=MAX_NEW_TOKENS)
report("heldout_accuracy_pretrained", acc_pretrained)


# %% cell 6 sft_loss
def sft_loss(token_logps, mask):
    """Mean negative log-likelihood per response token.

    L = -(sum_{i,t} mask[i,t] * token_logps[i,t]) / (sum_{i,t} mask[i,t])

    token_logps: (B, T) log pi(y_t | x, y_<t);  mask: (B, T) 0/1 (bool or float).
    Returns a scalar (0-dim) tensor. Raises ValueError if the shapes differ.
    """
    ### BEGIN SOLUTION
    if token_logps.shape != mask.shape:
        raise ValueError(f"token_logps {tuple(token_logps.shape)} and mask {tuple(mask.shape)} differ in shape")
    m = mask.to(token_logps.dtype)
    return -(token_logps * m).sum() / m.sum()
    ### END SOLUTION


# %% cell 7 test_sft_loss
check_own_function(sft_loss, "sft_loss")
logps = torch.tensor([[-1.0, -2.0, -3.0],
                      [-0.5, -9.0, -9.0]])
mask = torch.tensor([[1.0, 1.0, 1.0],
                     [1.0, 0.0, 0.0]])
loss = sft_loss(logps, mask)
check_scalar(loss, "sft_loss(...)")
# 4 real tokens: -(-1 - 2 - 3 - 0.5) / 4 = 1.625
if abs(float(loss) + 1.625) < 1e-6:
    fail("sft_loss returned -1.625 instead of 1.625: the loss is the NEGATIVE log-likelihood.")
if abs(float(loss) - (6.0 + 0.5 + 18.0) / 6) < 1e-6:
    fail("sft_loss averaged over padding too: multiply by the mask and divide by the number of real tokens.")
if abs(float(loss) - (2.0 + 0.5) / 2) < 1e-6:
    fail("sft_loss averaged each sequence first, then the sequences: the formula averages all real tokens together.")
check_close(loss, torch.tensor(1.625), "sft_loss on the 2x3 example",
            hint="Expected -(sum of masked log-probs) / (number of real tokens).")


# %% cell 8 test_sft_loss_hidden
check_own_function(sft_loss, "sft_loss")
check_scalar(sft_loss(torch.zeros(2, 3), torch.ones(2, 3)), "sft_loss of zeros")
### BEGIN HIDDEN TESTS
# gradient: d loss / d logps[i,t] = -mask[i,t] / sum(mask)
logps = torch.tensor([[-0.3, -1.2, -4.0, -2.0], [-2.2, -0.1, -7.0, -5.0]], requires_grad=True)
mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
loss = sft_loss(logps, mask)
check(loss.requires_grad, "sft_loss does not carry gradient: do not .detach() or .item() the log-probs.")
loss.backward()
check_close(logps.grad, -mask.double() / 5, "gradient of sft_loss w.r.t. token_logps",
            hint="Each real token should get -1/(number of real tokens); padding gets 0.")
check_close(loss, torch.tensor((0.3 + 1.2 + 2.2 + 0.1 + 7.0) / 5), "sft_loss with a bool mask",
            hint="Divide the masked sum of -log p by the number of real tokens in the whole batch (not by the "
                 "batch size, not per sequence); a bool mask must work like a 0/1 mask.")
# padding values never matter, even huge ones
a = sft_loss(torch.tensor([[-1.0, -1e6]]), torch.tensor([[1.0, 0.0]]))
check_close(a, torch.tensor(1.0), "sft_loss with a huge value at a padded position",
            hint="Padding is leaking into the sum.")
# batch size 1, float64 stays float64
l64 = sft_loss(torch.tensor([[-0.1, -0.2]], dtype=torch.float64), torch.ones(1, 2))
check(l64.dtype == torch.float64, "float64 log-probs should give a float64 loss: "
      "keep the input's dtype (no .float(), no float32 constants or buffers such as torch.zeros(...) without dtype).")
check_close(l64, torch.tensor(0.15, dtype=torch.float64), "sft_loss in float64", atol=1e-12, rtol=1e-12,
            hint="Compute in the input's dtype throughout: a detour through float32 loses precision.")
# wrong shapes
check_raises(lambda: sft_loss(torch.zeros(2, 3), torch.ones(2, 4)), ValueError, "sft_loss with mismatched shapes")
### END HIDDEN TESTS


# %% cell 10
def sft_step(model, optimizer, prompts, responses):
    """One gradient step of SFT on (prompt, response) pairs; returns the loss."""
    batch = batch_from_texts(tok, prompts, responses, device)
    logps = token_log_probs(completion_logits(model, batch), batch.completion_ids)
    loss = sft_loss(logps, batch.completion_mask)
    optimizer_step(optimizer, loss, MAX_GRAD_NORM)
    return loss.item()


seed_everything(SEED)
optimizer = torch.optim.Adam(model.parameters(), lr=LR)
model.train()
sft_losses = []
order = torch.randperm(len(train_problems)).tolist()
with needs_your_code() as sft_run:
    for step in tqdm(range(SFT_STEPS), desc="SFT"):
        chunk = [train_problems[j] for j in order[step * SFT_BATCH:(step + 1) * SFT_BATCH]]
        sft_losses.append(sft_step(model, optimizer, [p.prompt for p in chunk], [p.solution for p in chunk]))
model.eval()
acc_sft = problem_accuracy(model, tok, heldout, max_new_tokens=MAX_NEW_TOKENS)
report("sft_final_loss", sft_losses[-1])
report("heldout_accuracy_sft", acc_sft)

fig, ax = plt.subplots(figsize=(5, 3))
plot_curve(ax, sft_losses, label="SFT loss", window=10)
ax.set_xlabel("step"); ax.set_ylabel("NLL per token"); ax.set_title("SFT on correct solutions"); ax.legend()
plt.show()


# %% cell 12
sft_run.require()
seed_everything(RFT_SEED)
rft_problems = [train_problems[j] for j in torch.randperm(len(train_problems))[:RFT_PROMPTS].tolist()]
kept_prompts, kept_responses = [], []
for i in tqdm(range(0, len(rft_problems), RFT_SAMPLE_BATCH), desc="sampling"):
    chunk = rft_problems[i:i + RFT_SAMPLE_BATCH]
    rollout = sample_completions(model, tok, [p.prompt for p in chunk], MAX_NEW_TOKENS, num_samples=RFT_SAMPLES)
    answers = [p.answer for p in chunk for _ in range(RFT_SAMPLES)]
    rewards = rollout_rewards(rollout, answer_reward, answers)
    for prompt, text, r in zip(rollout.prompts, rollout.texts, rewards.tolist()):
        if r == 1.0:
            kept_prompts.append(prompt)
            kept_responses.append(text)
n_sampled = len(rft_problems) * RFT_SAMPLES
print(f"kept {len(kept_responses)} of {n_sampled} samples ({len(kept_responses) / n_sampled:.0%} correct)")
report("rft_train_sample_accuracy", len(kept_responses) / n_sampled)

model.train()
rft_losses = []
for epoch in range(RFT_EPOCHS):
    perm = torch.randperm(len(kept_responses)).tolist()
    for i in tqdm(range(0, len(perm), SFT_BATCH), desc=f"RFT epoch {epoch + 1}"):
        idx = perm[i:i + SFT_BATCH]
        rft_losses.append(sft_step(model, optimizer, [kept_prompts[j] for j in idx], [kept_responses[j] for j in idx]))
model.eval()
acc_rft = problem_accuracy(model, tok, heldout, max_new_tokens=MAX_NEW_TOKENS)
report("heldout_accuracy_rft", acc_rft)
report.lessons(model)   # how this run did on the notebook's lessons, beside the results ledger


# %% cell 13
sft_run.require()
fig, ax = plt.subplots(figsize=(5, 3))
stages = ["pre-trained", "+ SFT", "+ RFT"]
accs = [acc_pretrained, acc_sft, acc_rft]
errors = [math.sqrt(a * (1 - a) / len(heldout)) for a in accs]   # one standard error of each accuracy
ax.bar(stages, accs, yerr=errors, capsize=4, color=["#999999", "#4c72b0", "#55a868"])
for x, a in enumerate(accs):
    ax.text(x, a + 0.01, f"{a:.0%}", ha="center")
ax.set_ylim(0, 1); ax.set_ylabel(f"held-out accuracy ({len(heldout)} problems)")
ax.set_title("Imitation: pre-training, SFT, rejection fine-tuning")
plt.show()
for stage, a, e in zip(stages, accs, errors):
    print(f"{stage:>12}: {a:.1%} +- {e:.1%} (one standard error, {len(heldout)} problems)")
