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
from collections import namedtuple

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from rlcourse.cafe import annotator_ranking, annotator_score, review_prompts
from rlcourse.checks import (check_close, check_no_grad, check_own_function, check_raises, check_scalar,
                             needs_your_code)
from rlcourse.config import Report, pick
from rlcourse.model import load_policy, seed_everything, set_threads, trainable_copy
from rlcourse.optim import optimizer_step
from rlcourse.plots import moving_average, plot_curve
from rlcourse.reference import ranking_to_pairs, sequence_log_prob, token_log_probs
from rlcourse.rollout import completion_logits, map_chunks, preference_pairs, sample_completions, subset

set_threads()

# ---- config: every knob of this notebook ----
MODEL_NAME = "tiny"           # or "course-gpt2" (build it on a GPU), "gpt2", "distilgpt2": README, "On a GPU"
SEED = 0
WINRATE_PROMPT_SEED = 123      # the win-rate evaluation's prompts (never the training data's)
MAX_NEW_TOKENS = 32

PAIR_PROMPTS = pick(300, 16)   # prompts; GROUP_SIZE sampled reviews each, ranked once by the annotator (offline data)
GROUP_SIZE = 4                 # reviews the annotator ranks at once
STEPS = pick(75, 2)            # optimiser steps per method (about 1.4 passes over the pairs)
PAIR_BATCH = pick(32, 8)       # preference pairs per step
LR = 1e-4 if MODEL_NAME == "tiny" else 1.5e-5   # smaller steps for a larger policy (README, "Bigger policies")
MAX_GRAD_NORM = 1.0
DPO_BETA = 0.1
SIMPO_BETA, SIMPO_GAMMA = 2.0, 0.5
N_WINRATE = pick(400, 32)      # prompts for the win-rate evaluation
OFF_POLICY_TEMPERATURES = {"near": 1.5, "far": 2.0}   # section 6: other models for DPO's pairs: the pre-trained one, sampled hotter
ONLINE_ROUNDS = pick(5, 2)     # section 6: online DPO samples and ranks fresh pairs from the current policy this often
OVERTRAIN_STEPS = pick(75, 2)  # DPO keeps training this many steps past STEPS, to watch over-optimisation
EVAL_EVERY = pick(25, 2)       # steps between the annotator's evaluations during that run
EVAL_PROMPT_SEED = 99          # notebook 04's evaluation prompts, so that the true scores compare
EVAL_REVIEWS = pick(256, 32)   # as many as notebook 04 evaluates
REFERENCE_EVAL_SEED = EVAL_PROMPT_SEED + 1   # sampling the reference's own reviews of those prompts

report = Report("06_dpo")


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
Pairs = namedtuple("Pairs", "data chosen rejected ref_logps")   # chosen, rejected: (N,) rows of data


def sequence_logps(model, batch):
    """log pi(y|x) of every row of a batch: (N,)."""
    return sequence_log_prob(token_log_probs(completion_logits(model, batch), batch.completion_ids), batch.completion_mask)


def make_pairs(sampler, prompts, temperature=1.0):
    """GROUP_SIZE reviews of each prompt sampled from `sampler`, ranked once by the annotator, every (winner, loser)
    of each ranking; and the reference's (policy0's) log-probs of every review, computed once."""
    data = sample_completions(sampler, tok, prompts, MAX_NEW_TOKENS, temperature=temperature, num_samples=GROUP_SIZE)
    rankings = [annotator_ranking(data.texts[g:g + GROUP_SIZE]) for g in range(0, len(data), GROUP_SIZE)]
    chosen, rejected = preference_pairs(rankings, GROUP_SIZE, ranking_to_pairs, device=data.device)
    with torch.no_grad():
        ref_logps = map_chunks(lambda chunk: sequence_logps(policy0, chunk), data)      # (len(data),)
    return Pairs(data, chosen, rejected, ref_logps)


pair_prompts = review_prompts(PAIR_PROMPTS, seed=SEED)
offline = make_pairs(policy0, pair_prompts)     # the offline data: sampled once, from the reference itself
w, l = offline.chosen[0].item(), offline.rejected[0].item()
print(f"{len(offline.chosen)} preference pairs from {PAIR_PROMPTS} prompts; for example")
print(f"  chosen   ({annotator_score(offline.data.texts[w]):+.2f}): {offline.data.texts[w]}")
print(f"  rejected ({annotator_score(offline.data.texts[l]):+.2f}): {offline.data.texts[l]}")


# %% cell 14
def dpo_pair_loss(pc, pr, chosen, rejected, pairs):
    """DPO: the policy's log-probs of each pair against the reference's (computed once, with the pairs)."""
    return dpo_loss(pc, pr, pairs.ref_logps[chosen], pairs.ref_logps[rejected], beta=DPO_BETA)


def simpo_pair_loss(pc, pr, chosen, rejected, pairs):
    """SimPO: log-probs divided by the lengths, a margin gamma, no reference."""
    lengths = pairs.data.completion_mask.sum(-1)
    return simpo_loss(pc, pr, lengths[chosen], lengths[rejected], beta=SIMPO_BETA, gamma=SIMPO_GAMMA)


eval_prompts = review_prompts(EVAL_REVIEWS, seed=EVAL_PROMPT_SEED)
seed_everything(REFERENCE_EVAL_SEED)
reference_eval_scores = [annotator_score(t) for t in sample_completions(policy0, tok, eval_prompts, MAX_NEW_TOKENS).texts]


def win_share(new_scores, old_scores):
    """Share of pairs the annotator scores higher for the new text (a tie counts a half)."""
    return sum((a > b) + 0.5 * (a == b) for a, b in zip(new_scores, old_scores)) / len(new_scores)


def annotator_eval(policy):
    """The annotator's mean score of the policy's reviews of notebook 04's evaluation prompts, and their win
    rate against the reference's reviews of the same prompts (a tie counts a half)."""
    seed_everything(EVAL_PROMPT_SEED)
    scores = [annotator_score(t) for t in sample_completions(policy, tok, eval_prompts, MAX_NEW_TOKENS).texts]
    return sum(scores) / len(scores), win_share(scores, reference_eval_scores)


def train(pair_loss, name, steps=STEPS, seed=SEED, extra_steps=0, pairs=None, resample=None):
    """Offline preference optimisation: minimise pair_loss on random batches of fixed pairs (section 3's
    `offline` ones unless `pairs` says otherwise). Returns (a copy of) the policy after `steps` steps and the
    history. With extra_steps the run goes on past `steps`, and the annotator evaluates the policy every
    EVAL_EVERY steps. With resample (section 6), the pairs become resample(policy, step) whenever that is not None."""
    pairs = offline if pairs is None else pairs
    seed_everything(seed)
    policy = trainable_copy(policy0)
    policy.train()
    opt = torch.optim.Adam(policy.parameters(), lr=LR)
    history = {"loss": [], "chosen log-ratio": [], "rejected log-ratio": [], "pair accuracy": [],
               "annotator": [(0, *annotator_eval(policy0))] if extra_steps else []}
    gen = torch.Generator().manual_seed(seed)
    for step in tqdm(range(steps + extra_steps), desc=name):
        if resample is not None:
            pairs = resample(policy, step) or pairs     # online: now and then, fresh pairs from the policy itself
        # 1. a batch of pairs
        idx = torch.randint(len(pairs.chosen), (PAIR_BATCH,), generator=gen)
        chosen, rejected = pairs.chosen[idx], pairs.rejected[idx]
        # 2. the policy's log-probs of the chosen and the rejected reviews
        logps = sequence_logps(policy, subset(pairs.data, torch.cat([chosen, rejected])))
        pc, pr = logps[:PAIR_BATCH], logps[PAIR_BATCH:]
        # 3. the pair loss  4. step
        loss = pair_loss(pc, pr, chosen, rejected, pairs)
        optimizer_step(opt, loss, MAX_GRAD_NORM)
        with torch.no_grad():
            chosen_ratio, rejected_ratio = pc - pairs.ref_logps[chosen], pr - pairs.ref_logps[rejected]
            history["loss"].append(loss.item())
            history["chosen log-ratio"].append(chosen_ratio.mean().item())
            history["rejected log-ratio"].append(rejected_ratio.mean().item())
            history["pair accuracy"].append((chosen_ratio > rejected_ratio).float().mean().item())
        if extra_steps and (step + 1) % EVAL_EVERY == 0:
            policy.eval()
            history["annotator"].append((step + 1, *annotator_eval(policy)))
            policy.train()
        if step + 1 == steps:
            kept = copy.deepcopy(policy).eval()
    return kept, history


with needs_your_code() as preference_run:
    dpo_policy, dpo_hist = train(dpo_pair_loss, "DPO", extra_steps=OVERTRAIN_STEPS)
    simpo_policy, simpo_hist = train(simpo_pair_loss, "SimPO")


# %% cell 15
preference_run.require()
fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
for ax, (name, hist) in zip(axes[:2], [("DPO", dpo_hist), ("SimPO", simpo_hist)]):
    plot_curve(ax, hist["chosen log-ratio"][:STEPS], label="chosen", color="tab:green")
    plot_curve(ax, hist["rejected log-ratio"][:STEPS], label="rejected", color="tab:red")
    ax.axhline(0, color="gray", lw=0.5)
    ax.set_title(f"{name}: log pi(y) - log pi_ref(y)"); ax.set_xlabel("step"); ax.legend()
plot_curve(axes[2], dpo_hist["loss"][:STEPS], label="DPO"); plot_curve(axes[2], simpo_hist["loss"], label="SimPO")
axes[2].set_title("loss"); axes[2].set_xlabel("step"); axes[2].legend()
plt.tight_layout(); plt.show()
tail = max(1, STEPS // 10)
print(f"DPO, steps {STEPS - tail + 1}-{STEPS}: chosen log-ratio {sum(dpo_hist['chosen log-ratio'][STEPS - tail:STEPS]) / tail:+.2f}, "
      f"rejected log-ratio {sum(dpo_hist['rejected log-ratio'][STEPS - tail:STEPS]) / tail:+.2f}")


# %% cell 17
preference_run.require()


def win_rate(policy, n=N_WINRATE, seed=WINRATE_PROMPT_SEED):
    prompts = review_prompts(n, seed=seed)
    seed_everything(seed)
    new = sample_completions(policy, tok, prompts, MAX_NEW_TOKENS).texts
    old = sample_completions(policy0, tok, prompts, MAX_NEW_TOKENS).texts
    new_scores, old_scores = [annotator_score(t) for t in new], [annotator_score(t) for t in old]
    return win_share(new_scores, old_scores), sum(new_scores) / n, sum(old_scores) / n, new


dpo_win, dpo_score, ref_score, dpo_texts = win_rate(dpo_policy)
simpo_win, simpo_score, _, simpo_texts = win_rate(simpo_policy)
print(f"annotator win rate vs the reference: DPO {dpo_win:.1%}, SimPO {simpo_win:.1%}")
print(f"mean annotator score: reference {ref_score:.3f}, DPO {dpo_score:.3f}, SimPO {simpo_score:.3f}")
for t in dpo_texts[:5]:
    print("   DPO:", t)
report("dpo_win_rate", dpo_win)
report("simpo_win_rate", simpo_win)
report("dpo_true_score", dpo_score)
report("reference_true_score", ref_score)


# %% cell 19
preference_run.require()
steps, true_scores, win_rates = zip(*dpo_hist["annotator"])
fig, axes = plt.subplots(1, 3, figsize=(15, 3.3))
plot_curve(axes[0], dpo_hist["loss"], label="DPO loss (training pairs)", window=10)
axes[1].plot(steps, true_scores, marker="o"); axes[1].set_ylabel("mean annotator score")
axes[2].plot(steps, win_rates, marker="o"); axes[2].set_ylabel("win rate vs the reference")
axes[2].axhline(0.5, color="gray", lw=0.5)
for ax in axes:
    ax.axvline(STEPS, color="k", ls=":", lw=1, label=f"STEPS = {STEPS} (the policy used above)")
    ax.set_xlabel("DPO step"); ax.legend(fontsize=8)
plt.tight_layout(); plt.show()
for step, score, win in dpo_hist["annotator"]:
    print(f"step {step:4d}: mean annotator score {score:+.3f}, win rate {win:.1%}")
best = max(dpo_hist["annotator"], key=lambda row: row[1])
print(f"best mean score at step {best[0]}; at the last step ({steps[-1]}) {true_scores[-1]:+.3f}")
at_steps = [row for row in dpo_hist["annotator"] if row[0] == STEPS]
if at_steps:
    report("dpo_eval_true_score", at_steps[0][1])   # same prompts and count as 04_ppo_rlhf_kl_true_score_after
report("dpo_eval_true_score_best", best[1])
report("dpo_eval_true_score_last", true_scores[-1])
report("dpo_eval_win_rate_last", win_rates[-1])
loss_avg = moving_average(dpo_hist["loss"], 10)
report("dpo_loss_at_steps", loss_avg[STEPS - 1])          # 10-step moving averages, as plotted
report("dpo_loss_last", loss_avg[-1])


# %% cell 22
preference_run.require()
offpolicy, offpolicy_policies = {}, {}
for arm, temperature in OFF_POLICY_TEMPERATURES.items():
    seed_everything(SEED)
    offpolicy[arm] = make_pairs(policy0, pair_prompts, temperature=temperature)   # same prompts, another sampler
    offpolicy_policies[arm], _ = train(dpo_pair_loss, f"DPO, pairs sampled at T = {temperature}", pairs=offpolicy[arm])

per_round, round_steps = PAIR_PROMPTS // ONLINE_ROUNDS, STEPS // ONLINE_ROUNDS
online_rounds = []   # each round's pairs


def fresh_pairs(policy, step):
    """Online DPO: at the start of each round, the round's share of the prompts, sampled from the current policy."""
    k, into_round = divmod(step, round_steps)
    if into_round or k >= ONLINE_ROUNDS:
        return None
    online_rounds.append(make_pairs(policy, pair_prompts[k * per_round:(k + 1) * per_round]))
    return online_rounds[-1]


online_policy, _ = train(dpo_pair_loss, "online DPO", resample=fresh_pairs)


def describe(pairs):
    """The annotator's mean score of the sampled reviews and the reference's mean log-prob per token of them."""
    tokens = pairs.data.completion_mask.sum(-1)
    scores = [annotator_score(t) for t in pairs.data.texts]
    return f"{len(pairs.chosen):5d} pairs; reviews: score {sum(scores) / len(scores):+.3f}, " \
           f"log pi_ref per token {(pairs.ref_logps / tokens).mean().item():+.2f}"


print(f"{'from the reference (section 4)':36s}", describe(offline))
for arm, temperature in OFF_POLICY_TEMPERATURES.items():
    print(f"{f'off-policy ({arm}): at T = {temperature}':36s}", describe(offpolicy[arm]))
for k, pairs in enumerate(online_rounds):
    print(f"{f'online round {k + 1}: the current policy':36s}", describe(pairs))


# %% cell 23
preference_run.require()
rows = [("DPO, pairs from the reference", dpo_win, dpo_score)]
for arm, temperature in OFF_POLICY_TEMPERATURES.items():
    win, score, _, _ = win_rate(offpolicy_policies[arm])
    rows.append((f"DPO, pairs sampled at T = {temperature}", win, score))
    report(f"dpo_offpolicy_{arm}_win_rate", win)
    report(f"dpo_offpolicy_{arm}_true_score", score)
online_win, online_score, _, online_texts = win_rate(online_policy)
rows.append(("online DPO", online_win, online_score))
print(f"{'':32s} win rate vs the reference   mean annotator score (reference {ref_score:+.3f})")
for name, win, score in rows:
    print(f"{name:32s} {win:6.1%} {score:+28.3f}")
for t in online_texts[:3]:
    print("   online DPO:", t)
report("dpo_online_win_rate", online_win)
report("dpo_online_true_score", online_score)
report.lessons(dpo_policy)   # how this run did on the notebook's lessons, beside the results ledger
