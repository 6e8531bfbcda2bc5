# The code cells of solutions/06_dpo/06_dpo.ipynb, written by scripts/release.py: do not edit.
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
import copy
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from rlcourse.cafe import annotator_ranking, annotator_score, review_prompts
from rlcourse.checks import (check, check_close, check_no_grad, check_own_function, check_raises, check_scalar,
                             check_shape, fail, needs_your_code)
from rlcourse.config import pick
from rlcourse.model import load_policy, seed_everything, set_threads
from rlcourse.plots import moving_average, plot_curve
from rlcourse.reference import ranking_to_pairs, sequence_log_prob, token_log_probs
from rlcourse.rollout import completion_logits, preference_pairs, sample_completions, subset

set_threads()

MODEL_NAME = "tiny"
SEED = 0
MAX_NEW_TOKENS = 32

PAIR_PROMPTS = pick(300, 16)   # prompts; 4 sampled reviews each, ranked once by the annotator (offline data)
STEPS = pick(75, 2)            # optimiser steps per method (about 1.4 passes over the pairs)
PAIR_BATCH = pick(32, 8)       # preference pairs per step
LR = 1e-4
DPO_BETA = 0.1
SIMPO_BETA, SIMPO_GAMMA = 2.0, 0.5
N_WINRATE = pick(400, 32)      # prompts for the win-rate evaluation


# %% cell 4 dpo_loss
def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta=0.1):
    """L = -(1/N) sum_n log sigmoid(beta * ((pc - rc) - (pr - rr))).

    pc, pr: sequence log-probs (N,) of the chosen / rejected completion under the policy;
    rc, rr: the same under the reference policy (constants). Returns a scalar.
    """
    ### BEGIN SOLUTION
    shapes = {tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)}
    if len(shapes) != 1:
        raise ValueError(f"the four log-prob tensors must have the same shape, got {sorted(shapes)}")
    chosen_ratio = policy_chosen_logps - ref_chosen_logps.detach()
    rejected_ratio = policy_rejected_logps - ref_rejected_logps.detach()
    margin = beta * (chosen_ratio - rejected_ratio)
    if margin.dtype in (torch.float16, torch.bfloat16):
        margin = margin.float()
    return -F.logsigmoid(margin).mean()
    ### END SOLUTION


# %% cell 5 test_dpo_loss
check_own_function(dpo_loss, "dpo_loss")
pc = torch.tensor([-1.0, -2.0], requires_grad=True)
pr = torch.tensor([-3.0, -2.0])
rc = torch.tensor([-2.0, -2.5])
rr = torch.tensor([-2.0, -1.0])
loss = dpo_loss(pc, pr, rc, rr, beta=0.5)
check_scalar(loss, "dpo_loss(...)")
# by hand: z = beta * ((pc - rc) - (pr - rr)) = 0.5 * (1 + 1) = 1 and 0.5 * (0.5 + 1) = 0.75
z = [1.0, 0.75]
expected = sum(math.log1p(math.exp(-v)) for v in z) / 2
check_close(loss, torch.tensor(expected), "the DPO loss",
            hint="-(1/N) sum log sigmoid(beta * ((pc - rc) - (pr - rr))): beta multiplies the whole difference.")
loss.backward()
check_close(pc.grad, torch.tensor([-0.5 / (1 + math.exp(v)) / 2 for v in z]), "the gradient with respect to policy_chosen_logps")


# %% cell 6 test_dpo_loss_hidden
check_own_function(dpo_loss, "dpo_loss")
check_scalar(dpo_loss(torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.zeros(2)), "dpo_loss")
### BEGIN HIDDEN TESTS
pc, pr = torch.tensor([0.0, -5.0], requires_grad=True), torch.tensor([-5.0, 0.0], requires_grad=True)
rc, rr = torch.tensor([-1.0, -1.0], requires_grad=True), torch.tensor([-2.0, -2.0], requires_grad=True)
loss = dpo_loss(pc, pr, rc, rr)  # default beta = 0.1: z = 0.1 * (1 - (-3)) = 0.4 and 0.1 * (-4 - 2) = -0.6
check_close(loss, torch.tensor((math.log1p(math.exp(-0.4)) + math.log1p(math.exp(0.6))) / 2),
            "the DPO loss with the default beta",
            hint="chosen minus rejected, each relative to its reference log-prob.")
loss.backward()
check_no_grad(rc, "ref_chosen_logps")
check_no_grad(rr, "ref_rejected_logps")
big = dpo_loss(torch.tensor([1e4, -1e4]), torch.zeros(2), torch.zeros(2), torch.zeros(2), beta=1.0)
check_close(big, torch.tensor(1e4 / 2), "the DPO loss for very large margins of either sign", rtol=1e-6,
            hint="log(sigmoid(x)) is log(0) = -inf for very negative x: use F.logsigmoid.")
d64 = dpo_loss(*(torch.tensor([v], dtype=torch.float64) for v in (-1.0, -2.0, -1.5, -1.5)), beta=2.0)
check_close(d64, torch.tensor([math.log1p(math.exp(-2.0))]).squeeze(), "the DPO loss in float64",
            hint="beta multiplies the whole difference of log-ratios: beta * ((pi_c - ref_c) - (pi_r - ref_r)).")
check_raises(lambda: dpo_loss(torch.zeros(3), torch.zeros(3), torch.zeros(2), torch.zeros(3)), ValueError,
             "dpo_loss with ref_chosen_logps of a different shape than the other inputs")
### END HIDDEN TESTS


# %% cell 8 simpo_loss
def simpo_loss(policy_chosen_logps, policy_rejected_logps, chosen_lengths, rejected_lengths, beta=2.0, gamma=0.5):
    """L = -(1/N) sum_n log sigmoid(beta * pc / len_c - beta * pr / len_r - gamma).

    pc, pr: sequence log-probs (N,); len_c, len_r: completion lengths in tokens (N,). Returns a scalar.
    """
    ### BEGIN SOLUTION
    shapes = {tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps, chosen_lengths, rejected_lengths)}
    if len(shapes) != 1:
        raise ValueError(f"the four tensors must have the same shape, got {sorted(shapes)}")
    pc, pr = policy_chosen_logps, policy_rejected_logps
    if pc.dtype in (torch.float16, torch.bfloat16):
        pc, pr = pc.float(), pr.float()
    margin = beta * pc / chosen_lengths.to(pc.dtype) - beta * pr / rejected_lengths.to(pr.dtype) - gamma
    return -F.logsigmoid(margin).mean()
    ### END SOLUTION


# %% cell 9 test_simpo_loss
check_own_function(simpo_loss, "simpo_loss")
pc = torch.tensor([-4.0, -6.0], requires_grad=True)
pr = torch.tensor([-9.0, -4.0])
lc, lr = torch.tensor([2, 3]), torch.tensor([3, 2])
loss = simpo_loss(pc, pr, lc, lr)
check_scalar(loss, "simpo_loss(...)")
# by hand, beta = 2, gamma = 0.5: 2*(-4/2) - 2*(-9/3) - 0.5 = 1.5 and 2*(-6/3) - 2*(-4/2) - 0.5 = -0.5
z = [1.5, -0.5]
check_close(loss, torch.tensor(sum(math.log1p(math.exp(-v)) for v in z) / 2), "the SimPO loss",
            hint="beta * pc / len_c - beta * pr / len_r - gamma inside log sigmoid; the margin gamma is subtracted.")
loss.backward()
check_close(pc.grad, torch.tensor([-2.0 / 2 / (1 + math.exp(1.5)) / 2, -2.0 / 3 / (1 + math.exp(-0.5)) / 2]),
            "the gradient with respect to policy_chosen_logps")


# %% cell 10 test_simpo_loss_hidden
check_own_function(simpo_loss, "simpo_loss")
check_scalar(simpo_loss(torch.zeros(2), torch.zeros(2), torch.ones(2), torch.ones(2)), "simpo_loss")
### BEGIN HIDDEN TESTS
loss = simpo_loss(torch.tensor([-10.0]), torch.tensor([-10.0]), torch.tensor([5.0]), torch.tensor([2.0]), beta=1.0, gamma=0.0)
check_close(loss, torch.tensor(math.log1p(math.exp(-3.0))), "the SimPO loss for equal log-probs of different lengths",
            hint="divide each log-prob by its own length before comparing.")
big = simpo_loss(torch.tensor([0.0, -1e4]), torch.tensor([-1e4, 0.0]), torch.ones(2), torch.ones(2), beta=1.0, gamma=0.0)
check_close(big, torch.tensor(1e4 / 2), "the SimPO loss for very large margins of either sign", rtol=1e-6,
            hint="use F.logsigmoid, not log(sigmoid(...)).")
l64 = simpo_loss(torch.tensor([-2.0], dtype=torch.float64), torch.tensor([-6.0], dtype=torch.float64),
                 torch.tensor([2]), torch.tensor([3]), beta=3.0, gamma=1.0)
check_close(l64, torch.tensor(math.log1p(math.exp(-2.0))),
            "the SimPO loss with non-default beta and gamma (float64, integer lengths)",
            hint="gamma is subtracted after the beta-scaled difference, not multiplied by beta.")
check_raises(lambda: simpo_loss(torch.zeros(3), torch.zeros(3), torch.ones(3), torch.ones(4)), ValueError,
             "simpo_loss with rejected_lengths of a different shape than the other inputs")
### END HIDDEN TESTS


# %% cell 12
seed_everything(SEED)
policy0, tok = load_policy(MODEL_NAME)
for p in policy0.parameters():
    p.requires_grad_(False)

GROUP = 4
data = sample_completions(policy0, tok, review_prompts(PAIR_PROMPTS, seed=SEED), MAX_NEW_TOKENS, num_samples=GROUP)
rankings = [annotator_ranking(data.texts[g * GROUP:(g + 1) * GROUP]) for g in range(PAIR_PROMPTS)]
chosen_rows, rejected_rows = preference_pairs(rankings, GROUP, ranking_to_pairs, device=data.device)   # (N,) rows of data


def sequence_logps(model, rows):
    """log pi(y|x) of the given rows of the data (N,)."""
    batch = subset(data, rows)
    return sequence_log_prob(token_log_probs(completion_logits(model, batch), batch.completion_ids), batch.completion_mask)


with torch.no_grad():
    ref_logps = torch.cat([sequence_logps(policy0, range(i, min(i + 256, len(data))))
                           for i in range(0, len(data), 256)])
lengths = data.completion_mask.sum(-1)
w, l = chosen_rows[0].item(), rejected_rows[0].item()
print(f"{len(chosen_rows)} preference pairs from {PAIR_PROMPTS} prompts; for example")
print(f"  chosen   ({annotator_score(data.texts[w]):+.2f}): {data.texts[w]}")
print(f"  rejected ({annotator_score(data.texts[l]):+.2f}): {data.texts[l]}")


# %% cell 14
def train(method, steps=STEPS, seed=SEED):
    seed_everything(seed)
    policy = copy.deepcopy(policy0)
    for p in policy.parameters():
        p.requires_grad_(True)
    policy.train()
    opt = torch.optim.Adam(policy.parameters(), lr=LR)
    history = {"loss": [], "chosen log-ratio": [], "rejected log-ratio": [], "pair accuracy": []}
    gen = torch.Generator().manual_seed(seed)
    for step in tqdm(range(steps), desc=method):
        idx = torch.randint(len(chosen_rows), (PAIR_BATCH,), generator=gen)
        cw, rj = chosen_rows[idx], rejected_rows[idx]
        logps = sequence_logps(policy, torch.cat([cw, rj]))
        pc, pr = logps[:PAIR_BATCH], logps[PAIR_BATCH:]
        if method == "DPO":
            loss = dpo_loss(pc, pr, ref_logps[cw], ref_logps[rj], beta=DPO_BETA)
        else:
            loss = simpo_loss(pc, pr, lengths[cw], lengths[rj], beta=SIMPO_BETA, gamma=SIMPO_GAMMA)
        opt.zero_grad(); loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0); opt.step()
        with torch.no_grad():
            history["loss"].append(loss.item())
            history["chosen log-ratio"].append((pc - ref_logps[cw]).mean().item())
            history["rejected log-ratio"].append((pr - ref_logps[rj]).mean().item())
            history["pair accuracy"].append(((pc - ref_logps[cw]) > (pr - ref_logps[rj])).float().mean().item())
    policy.eval()
    return policy, history


with needs_your_code() as preference_run:
    dpo_policy, dpo_hist = train("DPO")
    simpo_policy, simpo_hist = train("SimPO")


# %% cell 15
preference_run.require()
fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
for ax, (name, hist) in zip(axes[:2], [("DPO", dpo_hist), ("SimPO", simpo_hist)]):
    plot_curve(ax, hist["chosen log-ratio"], label="chosen", color="tab:green")
    plot_curve(ax, hist["rejected log-ratio"], label="rejected", color="tab:red")
    ax.axhline(0, color="gray", lw=0.5)
    ax.set_title(f"{name}: log pi(y) - log pi_ref(y)"); ax.set_xlabel("step"); ax.legend()
plot_curve(axes[2], dpo_hist["loss"], label="DPO"); plot_curve(axes[2], simpo_hist["loss"], label="SimPO")
axes[2].set_title("loss"); axes[2].set_xlabel("step"); axes[2].legend()
plt.tight_layout(); plt.show()
tail = max(1, STEPS // 10)
print(f"DPO, last {tail} steps: chosen log-ratio {sum(dpo_hist['chosen log-ratio'][-tail:]) / tail:+.2f}, "
      f"rejected log-ratio {sum(dpo_hist['rejected log-ratio'][-tail:]) / tail:+.2f}")


# %% cell 17
preference_run.require()


def win_rate(policy, n=N_WINRATE, seed=123):
    prompts = review_prompts(n, seed=seed)
    seed_everything(seed)
    new = sample_completions(policy, tok, prompts, MAX_NEW_TOKENS).texts
    old = sample_completions(policy0, tok, prompts, MAX_NEW_TOKENS).texts
    wins = sum((annotator_score(a) > annotator_score(b)) + 0.5 * (annotator_score(a) == annotator_score(b))
               for a, b in zip(new, old))
    return wins / n, sum(map(annotator_score, new)) / n, sum(map(annotator_score, old)) / n, new


dpo_win, dpo_score, ref_score, dpo_texts = win_rate(dpo_policy)
simpo_win, simpo_score, _, simpo_texts = win_rate(simpo_policy)
print(f"annotator win rate vs the reference: DPO {dpo_win:.1%}, SimPO {simpo_win:.1%}")
print(f"mean annotator score: reference {ref_score:.3f}, DPO {dpo_score:.3f}, SimPO {simpo_score:.3f}")
for t in dpo_texts[:5]:
    print("   DPO:", t)
print(f"[result] dpo_win_rate = {dpo_win:.3f}")
print(f"[result] simpo_win_rate = {simpo_win:.3f}")
print(f"[result] dpo_true_score = {dpo_score:.3f}")
print(f"[result] reference_true_score = {ref_score:.3f}")
