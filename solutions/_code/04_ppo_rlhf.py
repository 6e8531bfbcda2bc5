# The code cells of solutions/04_ppo_rlhf/04_ppo_rlhf.ipynb, written by scripts/release.py: do not edit.
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
from rlcourse.config import Report, pick
from rlcourse.core import masked_whiten
from rlcourse.model import ValueHeadModel, load_policy, seed_everything, set_threads, trainable_copy
from rlcourse.optim import optimizer_step
from rlcourse.plots import moving_average, plot_curve
from rlcourse.reference import gae_advantages, token_log_probs, value_loss
from rlcourse.rewards import best_of_n, best_of_n_kl, rank_correlation
from rlcourse.rollout import (completion_logits, completion_logps, completion_values, last_token_scores, map_chunks,
                              preference_pairs, sample_completions, subset)

set_threads()

# ---- config: every knob of this notebook ----
MODEL_NAME = "tiny"           # or "course-gpt2" (build it on a GPU), "gpt2", "distilgpt2": README, "On a GPU"
SEED = 0
TRAIN_PROMPT_SEED = 10_000     # PPO step k samples prompts with seed TRAIN_PROMPT_SEED + k
EVAL_PROMPT_SEED = 99          # the evaluation's prompts (never a training step's)
MAX_NEW_TOKENS = 32        # review length cap (the annotator likes <= 12 words)

# the bandit of section 1
BANDIT_REWARDS = [1.0, 0.8, 0.0]
BANDIT_STEPS, BANDIT_BATCH, BANDIT_RUNS = 100, 8, 50
BANDIT_LRS = (2.0, 50.0)       # a small and a large step size

# preference data and reward model
RM_PROMPTS = pick(300, 24)     # prompts; GROUP_SIZE sampled reviews each, ranked by the annotator
GROUP_SIZE = 4                 # reviews the annotator ranks at once
RM_HELDOUT_SHARE = 0.2         # share of prompts whose pairs are held out
RM_STEPS = pick(200, 3)
RM_BATCH = 64                  # pairs per step
RM_LR = 3e-4 if MODEL_NAME == "tiny" else 5e-5   # smaller steps for a larger policy (README, "Bigger policies")

# PPO
PPO_STEPS = pick(100, 2)
BATCH = pick(32, 16)           # reviews sampled per PPO step
MINIBATCH = pick(16, 8)
PPO_EPOCHS = 2                 # passes over each batch
CLIP_EPS = 0.2
LR_POLICY = 4e-4 if MODEL_NAME == "tiny" else 3e-5
LR_CRITIC = 3e-4 if MODEL_NAME == "tiny" else 5e-5
MAX_GRAD_NORM = 1.0            # the policy's steps are clipped; the critic's and the reward model's are not
LAM = 0.95                     # GAE lambda (gamma = 1)

# best-of-n (section 9)
BON_PROMPTS = pick(32, 2)      # prompts
BON_SAMPLES = pick(64, 4)      # reviews sampled per prompt: n runs up to this
BON_PROMPT_SEED = 77
KL_BETA = 0.1                  # the KL-penalised run; the other run uses 0
EVAL_REVIEWS = pick(256, 32)   # fresh reviews per evaluation

report = Report("04_ppo_rlhf")


# %% cell 4
def bandit_run(lr, seed, steps=BANDIT_STEPS, batch=BANDIT_BATCH):
    """REINFORCE without a baseline on the bandit: (expected reward after each step, final probabilities)."""
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.tensor(BANDIT_REWARDS)
    logits = torch.zeros(len(rewards))
    curve = []
    for _ in range(steps):
        probs = torch.softmax(logits, -1)
        actions = torch.multinomial(probs, batch, replacement=True, generator=gen)
        r = rewards[actions]
        grad = (r.unsqueeze(-1) * (F.one_hot(actions, len(rewards)) - probs)).mean(0)  # score-function estimate
        logits = logits + lr * grad
        curve.append(float((torch.softmax(logits, -1) * rewards).sum()))
    return curve, torch.softmax(logits, -1)


fig, ax = plt.subplots(figsize=(6, 3.5))
for lr, color in zip(BANDIT_LRS, ["tab:blue", "tab:red"]):
    runs = [bandit_run(lr, seed=SEED + s) for s in range(BANDIT_RUNS)]
    curves = torch.tensor([curve for curve, _ in runs])
    locked = sum(float(probs[1]) > 0.99 for _, probs in runs)       # arm 1 pays 0.8
    for c in curves:
        ax.plot(c, color=color, alpha=0.15)
    ax.plot(curves.mean(0), color=color, label=f"lr = {lr}: final mean {curves[:, -1].mean():.2f}")
    print(f"lr = {lr}: {locked} of {BANDIT_RUNS} seeds end with P(0.8 arm) > 0.99, "
          f"{sum(float(probs[0]) > 0.99 for _, probs in runs)} with P(1.0 arm) > 0.99")
    report(f"bandit_lr{lr:g}_locked_on_worse_arm", locked / BANDIT_RUNS)
ax.set_xlabel("step"); ax.set_ylabel("expected reward"); ax.legend(); ax.set_title("large steps lock in a worse arm")
plt.show()


# %% cell 7 ranking_to_pairs
def ranking_to_pairs(ranking):
    """Every (winner, loser) pair of a ranking such as "D > G > A = B".

    ">" separates levels (best first), "=" joins tied labels within a level.
    "D > G > A = B" -> [(D, G), (D, A), (D, B), (G, A), (G, B)]: winner strictly above loser, ties give no pair.
    Returns a list of (str, str); raises ValueError on an empty ranking.
    """
    ### BEGIN SOLUTION
    if not isinstance(ranking, str) or not ranking.strip():
        raise ValueError("the ranking is empty")
    levels = [[label.strip() for label in level.split("=")] for level in ranking.split(">")]
    if any(label == "" for level in levels for label in level):
        raise ValueError(f"the ranking {ranking!r} has an empty label")
    pairs = []
    for i, upper in enumerate(levels):
        for lower in levels[i + 1:]:
            for winner in upper:
                for loser in lower:
                    pairs.append((winner, loser))
    return pairs
    ### END SOLUTION


# %% cell 8 test_ranking_to_pairs
check_own_function(ranking_to_pairs, "ranking_to_pairs")
pairs = ranking_to_pairs("D > G > A = B")
check(isinstance(pairs, list), f"ranking_to_pairs should return a list, got {type(pairs).__name__}.")
check(all(isinstance(p, tuple) and len(p) == 2 for p in pairs), f"each pair should be a (winner, loser) tuple, got {pairs}.")
expected = {("D", "G"), ("D", "A"), ("D", "B"), ("G", "A"), ("G", "B")}
check(("A", "B") not in pairs and ("B", "A") not in pairs, "A = B is a tie: a tie gives no pair.")
check(all(l != "D" for _, l in pairs), "D is ranked first: it should never be a loser. Is your pair (winner, loser)?")
check(set(pairs) == expected and len(pairs) == 5,
      f"expected the 5 pairs {sorted(expected)}, got {sorted(pairs)}.")


# %% cell 9 test_ranking_to_pairs_hidden
check_own_function(ranking_to_pairs, "ranking_to_pairs")
check(isinstance(ranking_to_pairs("A > B"), list), "ranking_to_pairs should return a list.")
### BEGIN HIDDEN TESTS
pairs = ranking_to_pairs("A > B = C > D")
check(sorted(pairs) == sorted([("A", "B"), ("A", "C"), ("A", "D"), ("B", "D"), ("C", "D")]),
      "With a tie in the middle of a ranking, each tied label should beat every label ranked strictly below it "
      "and lose to every label above it; tied labels give no pair. Compare every level with every lower level "
      "(not only the next one), and write each pair as (winner, loser).")
check(ranking_to_pairs("A = B = C") == [], "a ranking that is one big tie has no pairs.")
check(ranking_to_pairs("A") == [], "a single label has no pairs.")
check(sorted(ranking_to_pairs("  X>Y  ")) == [("X", "Y")], "labels should be stripped of spaces.")
check(sorted(ranking_to_pairs("latte > decaf")) == [("latte", "decaf")], "labels can be longer than one letter.")
big = ranking_to_pairs("A > B > C > D > E")
check(len(big) == 10 and len(set(big)) == 10,
      "n strictly ranked labels should give n(n-1)/2 distinct pairs: each label beats every label below it, "
      "not only the next one.")
check_raises(lambda: ranking_to_pairs(""), ValueError, "ranking_to_pairs of an empty ranking")
check_raises(lambda: ranking_to_pairs("   "), ValueError, "ranking_to_pairs of a ranking of only spaces")
### END HIDDEN TESTS


# %% cell 11 reward_model_loss
def reward_model_loss(chosen_rewards, rejected_rewards):
    """Bradley-Terry loss  L = -(1/N) sum_n log sigmoid(r_chosen[n] - r_rejected[n]).

    chosen_rewards, rejected_rewards: (N,) -> scalar. Finite for margins of +-1e4.
    """
    ### BEGIN SOLUTION
    if chosen_rewards.shape != rejected_rewards.shape:
        raise ValueError(f"chosen_rewards {tuple(chosen_rewards.shape)} and rejected_rewards "
                         f"{tuple(rejected_rewards.shape)} must have the same shape")
    margin = chosen_rewards - rejected_rewards
    if margin.dtype in (torch.float16, torch.bfloat16):
        margin = margin.float()
    return -F.logsigmoid(margin).mean()
    ### END SOLUTION


# %% cell 12 test_reward_model_loss
check_own_function(reward_model_loss, "reward_model_loss")
chosen = torch.tensor([2.0, 0.0, -1.0], requires_grad=True)
rejected = torch.tensor([0.0, 0.0, 1.0], requires_grad=True)
loss = reward_model_loss(chosen, rejected)
check_scalar(loss, "reward_model_loss(...)")
# by hand: -log sigmoid(m) = log(1 + exp(-m)) for margins m = 2, 0, -2
expected = (math.log1p(math.exp(-2.0)) + math.log(2.0) + math.log1p(math.exp(2.0))) / 3
check_close(loss, torch.tensor(expected), "the Bradley-Terry loss",
            hint="Expected -(1/N) sum log sigmoid(chosen - rejected). Check the sign and the order chosen - rejected.")
loss.backward()
# d/d chosen_n = -sigmoid(-m_n) / N
grads = torch.tensor([-1 / (1 + math.exp(2.0)), -0.5, -1 / (1 + math.exp(-2.0))]) / 3
check_close(chosen.grad, grads, "the gradient with respect to chosen_rewards",
            hint="The loss should be a mean over pairs of -log sigmoid(margin).")


# %% cell 13 test_reward_model_loss_hidden
check_own_function(reward_model_loss, "reward_model_loss")
check_scalar(reward_model_loss(torch.zeros(2), torch.ones(2)), "reward_model_loss")
### BEGIN HIDDEN TESTS
chosen = torch.tensor([1e4, -1e4, 0.0], requires_grad=True)
loss = reward_model_loss(chosen, torch.zeros(3))
check_close(loss, torch.tensor((0.0 + 1e4 + math.log(2.0)) / 3), "the loss for very large margins of either sign",
            hint="log(sigmoid(x)) underflows to log(0) = -inf for very negative x: use F.logsigmoid.", rtol=1e-6)
loss.backward()
check_close(chosen.grad, torch.tensor([0.0, -1 / 3, -1 / 6]), "the gradient for very large margins of either sign",
            atol=1e-6,
            hint="Use F.logsigmoid (its gradient stays finite) and average over the pairs.")
one = reward_model_loss(torch.tensor([3.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64))
check_close(one, torch.tensor(math.log1p(math.exp(-2.0)), dtype=torch.float64), "the loss for a single pair in float64",
            hint="loss = -mean(logsigmoid(chosen - rejected)): chosen minus rejected, not the reverse.")
check(one.dtype == torch.float64, "float64 input should give a float64 loss.")
check_raises(lambda: reward_model_loss(torch.zeros(3), torch.zeros(4)), ValueError,
             "reward_model_loss with different numbers of chosen and rejected rewards")
### END HIDDEN TESTS


# %% cell 15 ppo_clip_loss
def ppo_clip_loss(logps, old_logps, advantages, mask, clip_eps=0.2):
    """PPO's clipped surrogate loss.

    rho = exp(logps - old_logps)
    loss = -(1/B) sum_i sum_t mask[i,t] * min(rho*A, clip(rho, 1-eps, 1+eps)*A)
    logps, old_logps, advantages, mask: (B, T) -> scalar. No gradient into old_logps or advantages.
    """
    ### BEGIN SOLUTION
    if not (logps.shape == old_logps.shape == advantages.shape == mask.shape):
        raise ValueError(f"shapes must match: logps {tuple(logps.shape)}, old_logps {tuple(old_logps.shape)}, "
                         f"advantages {tuple(advantages.shape)}, mask {tuple(mask.shape)}")
    if logps.dtype in (torch.float16, torch.bfloat16):  # the exp in float32
        logps, old_logps = logps.float(), old_logps.float()
    mask = mask.to(logps.dtype)
    ratio = torch.exp(logps - old_logps.detach())
    adv = advantages.detach()
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv
    objective = torch.minimum(unclipped, clipped)
    return -(objective * mask).sum() / logps.shape[0]
    ### END SOLUTION


# %% cell 16 test_ppo_clip_loss
check_own_function(ppo_clip_loss, "ppo_clip_loss")
# four sequences of one real token (the second column is padding) with ratios 1.5, 0.5, 1.1, 0.7
ratios = torch.tensor([1.5, 0.5, 1.1, 0.7])
old = torch.tensor([[-1.0, -2.0], [-2.0, -1.0], [-0.5, -3.0], [-1.5, -0.1]])
logps = torch.stack([old[:, 0] + ratios.log(), torch.tensor([5.0, -5.0, 5.0, -5.0])], 1).requires_grad_(True)
advantages = torch.tensor([[1.0, 9.0], [1.0, -9.0], [-1.0, 9.0], [-1.0, -9.0]])
mask = torch.tensor([[1.0, 0.0]] * 4)
loss = ppo_clip_loss(logps, old, advantages, mask)
check_scalar(loss, "ppo_clip_loss(...)")
# by hand, eps = 0.2: min(1.5, 1.2) = 1.2; min(0.5, 0.8) = 0.5; min(-1.1, -1.1) = -1.1; min(-0.7, -0.8) = -0.8
expected = -(1.2 + 0.5 - 1.1 - 0.8) / 4
if abs(loss.item() - (-(1.5 + 0.8 - 1.1 - 0.7) / 4)) < 1e-6:
    fail("your loss takes the max of the two terms: PPO takes the min (the pessimistic bound).")
check_close(loss, torch.tensor(expected), "the clipped loss",
            hint="loss = -(1/B) sum mask * min(rho*A, clip(rho, 1-eps, 1+eps)*A), rho = exp(logps - old_logps); "
                 "padding (mask 0) must not count.")
loss.backward()
# clipped terms have no gradient; the others -(1/B) * A * rho
check_close(logps.grad, torch.tensor([[0.0, 0.0], [-0.5 / 4, 0.0], [1.1 / 4, 0.0], [0.0, 0.0]]),
            "the gradient with respect to logps",
            hint="A clipped term should have zero gradient; an unclipped one -(1/B) * A * rho.")


# %% cell 17 test_ppo_clip_loss_hidden
check_own_function(ppo_clip_loss, "ppo_clip_loss")
check_scalar(ppo_clip_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2)), "ppo_clip_loss")
### BEGIN HIDDEN TESTS
# ratio inverted / advantage clipped / token mean instead of (1/B) sum_t
old = torch.zeros(2, 2)
logps = torch.log(torch.tensor([[1.5, 1.0], [1.1, 0.5]])).requires_grad_(True)
adv = torch.tensor([[2.0, 1.0], [1.0, -3.0]], requires_grad=True)
old_req = old.clone().requires_grad_(True)
mask = torch.ones(2, 2)
loss = ppo_clip_loss(logps, old_req, adv, mask)
# terms: min(3.0, 2.4) = 2.4; min(1, 1) = 1; min(1.1, 1.1) = 1.1; min(-1.5, -2.4) = -2.4
check_close(loss, torch.tensor(-(2.4 + 1.0 + 1.1 - 2.4) / 2),
            "the clipped loss on a batch with ratios inside and outside the clip range",
            hint="Check rho = exp(logps - old_logps) (not the inverse), that the ratio (not the advantage) is clipped, "
                 "and that you sum over tokens and divide by B.")
loss.backward()
check_no_grad(old_req, "old_logps")
check_no_grad(adv, "advantages")
# clip_eps is honoured
l2 = ppo_clip_loss(torch.log(torch.tensor([[1.5]])), torch.zeros(1, 1), torch.ones(1, 1), torch.ones(1, 1), clip_eps=0.1)
check_close(l2, torch.tensor(-1.1), "the loss with a non-default clip_eps",
            hint="Clip the ratio to [1 - clip_eps, 1 + clip_eps] with the clip_eps argument, not a fixed number.")
# masked positions never change the result
g = torch.Generator().manual_seed(0)
lp, ol, ad = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
m = (torch.rand(3, 5, generator=g) > 0.4).float()
base = ppo_clip_loss(lp, ol, ad, m)
lp2 = torch.where(m > 0, lp, torch.full_like(lp, 30.0))
ad2 = torch.where(m > 0, ad, torch.full_like(ad, -1e3))
check_close(ppo_clip_loss(lp2, ol, ad2, m), base, "the loss after changing masked-out positions",
            hint="masked-out tokens must not contribute (multiply by the mask before summing).")
check_close(ppo_clip_loss(lp.double(), ol.double(), ad.double(), m.bool()), base,
            "the loss with a bool mask in float64",
            hint="A bool mask must work like a 0/1 mask; compute in the input's dtype.")
check_raises(lambda: ppo_clip_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3)),
             ValueError, "ppo_clip_loss with advantages of a different shape than logps")
check_raises(lambda: ppo_clip_loss(torch.zeros(2, 3), torch.zeros(2, 2), torch.zeros(2, 3), torch.ones(2, 3)),
             ValueError, "ppo_clip_loss with old_logps of a different shape than logps")
### END HIDDEN TESTS


# %% cell 19
rhos = torch.linspace(0.2, 2.0, 181)
with needs_your_code():
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=False)
    for ax, a in zip(axes, [1.0, -1.0]):
        objective = [-ppo_clip_loss(r.log().view(1, 1), torch.zeros(1, 1), torch.full((1, 1), a), torch.ones(1, 1)).item()
                     for r in rhos]
        ax.plot(rhos, rhos * a, "--", color="gray", label=r"$\rho A$")
        ax.plot(rhos, objective, lw=2, label=r"$\min(\rho A, \mathrm{clip}(\rho) A)$")
        for edge in (1 - CLIP_EPS, 1 + CLIP_EPS):
            ax.axvline(edge, color="k", lw=0.5, ls=":")
        ax.set_title(f"A = {a:+.0f}"); ax.set_xlabel(r"ratio $\rho$"); ax.legend()
axes[0].set_ylabel("objective")
plt.tight_layout(); plt.show()


# %% cell 21 kl_penalized_rewards
def kl_penalized_rewards(scores, logps, ref_logps, mask, beta):
    """Per-token RLHF rewards.

    r[i,t] = -beta * (logps[i,t] - ref_logps[i,t]) * mask[i,t],  plus scores[i] at the last t with mask[i,t] = 1.
    scores: (B,); logps, ref_logps, mask: (B, T) -> (B, T), no gradient.
    """
    ### BEGIN SOLUTION
    if logps.shape != ref_logps.shape or mask.shape != logps.shape:
        raise ValueError(f"logps {tuple(logps.shape)}, ref_logps {tuple(ref_logps.shape)} and mask "
                         f"{tuple(mask.shape)} must have the same shape")
    if scores.shape != (logps.shape[0],):
        raise ValueError(f"scores has shape {tuple(scores.shape)}, expected ({logps.shape[0]},)")
    mask = mask.to(logps.dtype)
    rewards = (-beta * (logps - ref_logps) * mask).detach().clone()
    T = mask.shape[1]
    positions = torch.arange(T, device=mask.device)
    for i in range(mask.shape[0]):
        real = positions[mask[i] > 0]
        if len(real) > 0:
            rewards[i, real[-1]] += scores[i].detach().to(rewards.dtype)
    return rewards
    ### END SOLUTION


# %% cell 22 test_kl_penalized_rewards
check_own_function(kl_penalized_rewards, "kl_penalized_rewards")
logps = torch.tensor([[-1.0, -2.0, -0.5, -3.0], [-0.2, -0.4, -0.6, -0.8]])
ref = torch.tensor([[-1.5, -1.0, -0.5, -1.0], [-0.2, -0.2, -0.2, -0.2]])
mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
scores = torch.tensor([2.0, -1.0])
out = kl_penalized_rewards(scores, logps, ref, mask, beta=0.1)
check_shape(out, (2, 4), "kl_penalized_rewards(...)")
# row 0: -0.1 * (0.5, -1.0, 0.0), score 2 at t = 2 (its last real token), padding 0
# row 1: -0.1 * (0, -0.2, -0.4, -0.6), score -1 at t = 3
expected = torch.tensor([[-0.05, 0.1, 2.0, 0.0], [0.0, 0.02, 0.04, 0.06 - 1.0]])
check_close(out[:, 0], expected[:, 0], "the rewards at the first token",
            hint="the score belongs at the LAST real token, not the first.")
check(abs(out[0, 3].item()) < 1e-9, f"position 3 of row 0 is padding: its reward should be 0, got {out[0, 3].item():.4g}.")
check_close(out, expected, "the KL-penalised rewards",
            hint="r_t = -beta*(logps - ref_logps)*mask, plus the score at the last real token of each row.")


# %% cell 23 test_kl_penalized_rewards_hidden
check_own_function(kl_penalized_rewards, "kl_penalized_rewards")
check_shape(kl_penalized_rewards(torch.zeros(1), torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), 0.1), (1, 2), "kl_penalized_rewards")
### BEGIN HIDDEN TESTS
logps = torch.tensor([[-1.0, -1.0, -1.0, -1.0, -1.0], [-2.0, -2.0, -2.0, -2.0, -2.0], [-1.0, -3.0, -1.0, -1.0, -1.0]],
                     requires_grad=True)
ref = torch.tensor([[-3.0, -3.0, -3.0, -3.0, -3.0], [-1.0, -1.0, -1.0, -1.0, -1.0], [-2.0, -2.0, -2.0, -2.0, -2.0]])
mask = torch.tensor([[1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]).bool()
out = kl_penalized_rewards(torch.tensor([5.0, 7.0, 3.0]), logps, ref, mask, 0.5)
expected = torch.tensor([[-1.0, 4.0, 0.0, 0.0, 0.0], [7.5, 0.0, 0.0, 0.0, 0.0], [-0.5, 0.5, -0.5, -0.5, 2.5]])
check_close(out, expected, "the rewards for padded rows of different lengths",
            hint="-beta multiplies the whole difference (logps - ref_logps); the score goes to the last real token; "
                 "padding stays 0.")
check(not out.requires_grad, "the rewards should be constants (no gradient into logps): detach them.")
out64 = kl_penalized_rewards(torch.tensor([1.0], dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64),
                             torch.zeros(1, 3, dtype=torch.float64), torch.tensor([[1.0, 1.0, 0.0]]), 0.1)
check_close(out64, torch.tensor([[0.0, 1.0, 0.0]]), "the rewards of a padded row where the policy equals the reference",
            hint="With zero KL the only non-zero reward is the score, at the last real token (not the last position).")
check_raises(lambda: kl_penalized_rewards(torch.zeros(3), torch.zeros(2, 4), torch.zeros(2, 4), torch.ones(2, 4), 0.1),
             ValueError, "kl_penalized_rewards with a number of scores that differs from the number of rows")
check_raises(lambda: kl_penalized_rewards(torch.zeros(2), torch.zeros(2, 4), torch.zeros(2, 3), torch.ones(2, 4), 0.1),
             ValueError, "kl_penalized_rewards with ref_logps of a different shape than logps")
### END HIDDEN TESTS


# %% cell 25
seed_everything(SEED)
policy0, tok = load_policy(MODEL_NAME)          # the pre-trained policy: also the reference for the KL penalty
for p in policy0.parameters():
    p.requires_grad_(False)

prompts = review_prompts(RM_PROMPTS, seed=SEED)
data = sample_completions(policy0, tok, prompts, MAX_NEW_TOKENS, num_samples=GROUP_SIZE)   # consecutive rows share a prompt
rankings = [annotator_ranking(data.texts[g:g + GROUP_SIZE]) for g in range(0, len(data), GROUP_SIZE)]
# every ranking -> (winner, loser) pairs by your ranking_to_pairs, as rows of `data` (on the policy's device)
with needs_your_code() as ranking_run:
    chosen_rows, rejected_rows = preference_pairs(rankings, GROUP_SIZE, ranking_to_pairs, device=data.device)

print(f"prompt {prompts[0]!r}, ranking {rankings[0]}")
for label, text in zip("ABCDEFGH", data.texts[:GROUP_SIZE]):
    print(f"  {label} (score {annotator_score(text):+.2f}): {text}")
print(f"{len(data)} reviews, {len(chosen_rows)} comparisons from {RM_PROMPTS} rankings")


# %% cell 27
ranking_run.require()


def pair_accuracy(reward_model, chosen, rejected):
    """Fraction of (chosen, rejected) pairs whose last-token scores the reward model orders correctly."""
    with torch.no_grad():
        scores = map_chunks(lambda chunk: last_token_scores(reward_model, chunk), data)
    return (scores[chosen] > scores[rejected]).float().mean().item()


n_train_groups = int((1 - RM_HELDOUT_SHARE) * RM_PROMPTS)
is_train = chosen_rows // GROUP_SIZE < n_train_groups      # whole prompts are held out, not single pairs
train_chosen, train_rejected = chosen_rows[is_train], rejected_rows[is_train]
heldout_chosen, heldout_rejected = chosen_rows[~is_train], rejected_rows[~is_train]

seed_everything(SEED)
reward_model = ValueHeadModel(copy.deepcopy(policy0))
for p in reward_model.parameters():
    p.requires_grad_(True)
reward_model.train()
rm_opt = torch.optim.Adam(reward_model.parameters(), lr=RM_LR)
rm_losses = []
with needs_your_code() as reward_model_run:
    for step in tqdm(range(RM_STEPS), desc="reward model"):
        batch = torch.randint(len(train_chosen), (RM_BATCH,))
        scores = last_token_scores(reward_model, subset(data, torch.cat([train_chosen[batch], train_rejected[batch]])))
        loss = reward_model_loss(scores[:RM_BATCH], scores[RM_BATCH:])
        optimizer_step(rm_opt, loss, max_grad_norm=None)
        rm_losses.append(loss.item())
reward_model.eval()
for p in reward_model.parameters():
    p.requires_grad_(False)

rm_train_acc = pair_accuracy(reward_model, train_chosen, train_rejected)
rm_heldout_acc = pair_accuracy(reward_model, heldout_chosen, heldout_rejected)
fig, ax = plt.subplots(figsize=(5, 3))
plot_curve(ax, rm_losses, label="Bradley-Terry loss"); ax.axhline(math.log(2), ls=":", color="gray", label="log 2 (chance)")
ax.set_xlabel("step"); ax.legend(); plt.show()
print(f"pair accuracy: train {rm_train_acc:.1%}, held-out {rm_heldout_acc:.1%} ({len(heldout_chosen)} held-out pairs)")
report("rm_heldout_pair_accuracy", rm_heldout_acc)


# %% cell 29
reward_model_run.require()


def ppo_rlhf(beta, steps=PPO_STEPS, seed=SEED):
    seed_everything(seed)
    policy, critic = trainable_copy(policy0), trainable_copy(reward_model)
    policy.train(); critic.train()
    opt_policy = torch.optim.Adam(policy.parameters(), lr=LR_POLICY)
    opt_critic = torch.optim.Adam(critic.parameters(), lr=LR_CRITIC)
    history = {"learned reward": [], "true score": [], "KL to reference": [], "clip fraction": [], "words": []}
    for step in tqdm(range(steps), desc=f"PPO, beta = {beta}"):
        # 1. sample from the current (soon: old) policy
        rollout = sample_completions(policy, tok, review_prompts(BATCH, seed=TRAIN_PROMPT_SEED + step), MAX_NEW_TOKENS)
        mask = rollout.completion_mask
        # 2. score
        with torch.no_grad():
            old_logps = completion_logps(policy, rollout)
            ref_logps = completion_logps(policy0, rollout)
            scores = last_token_scores(reward_model, rollout)
            values = completion_values(critic, rollout)
        # 3. reward: learned score at the last token, KL penalty on every token
        rewards = kl_penalized_rewards(scores, old_logps, ref_logps, mask, beta)
        # 4. advantages (GAE, gamma = 1) and the critic's targets
        advantages = gae_advantages(rewards, values, mask, gamma=1.0, lam=LAM)
        returns = advantages + values
        advantages = masked_whiten(advantages, mask)
        # 5. PPO epochs over minibatches
        clipped, counted = 0.0, 0.0
        for epoch in range(PPO_EPOCHS):
            for rows in torch.randperm(len(rollout)).split(MINIBATCH):
                mb, m = subset(rollout, rows), mask[rows]
                logps = token_log_probs(completion_logits(policy, mb), mb.completion_ids)
                loss = ppo_clip_loss(logps, old_logps[rows], advantages[rows], m, CLIP_EPS)
                optimizer_step(opt_policy, loss, MAX_GRAD_NORM)
                v_loss = value_loss(completion_values(critic, mb), returns[rows], m)
                optimizer_step(opt_critic, v_loss, max_grad_norm=None)
                with torch.no_grad():
                    ratio = torch.exp(logps - old_logps[rows])
                    clipped += (((ratio - 1).abs() > CLIP_EPS).float() * m).sum().item(); counted += m.sum().item()
        history["learned reward"].append(scores.mean().item())
        history["true score"].append(sum(annotator_score(t) for t in rollout.texts) / len(rollout))
        history["KL to reference"].append(((old_logps - ref_logps) * mask).sum(-1).mean().item())
        history["clip fraction"].append(clipped / counted)
        history["words"].append(sum(len(t.split()) for t in rollout.texts) / len(rollout))
    policy.eval()
    return policy, history


def evaluate(policy, n=EVAL_REVIEWS):
    """n fresh reviews (prompts never used in training): their mean learned reward, mean true annotator
    score, the rank correlation between the two (scale-free), and the texts."""
    rollout = sample_completions(policy, tok, review_prompts(n, seed=EVAL_PROMPT_SEED), MAX_NEW_TOKENS)
    with torch.no_grad():
        learned = last_token_scores(reward_model, rollout).tolist()
    true = [annotator_score(t) for t in rollout.texts]
    return sum(learned) / n, sum(true) / n, rank_correlation(learned, true), rollout.texts


base_learned, base_true, base_agreement, base_texts = evaluate(policy0)
with needs_your_code() as ppo_run:
    policy_kl, hist_kl = ppo_rlhf(beta=KL_BETA)
    policy_nokl, hist_nokl = ppo_rlhf(beta=0.0)


# %% cell 30
ppo_run.require()
fig, axes = plt.subplots(1, 5, figsize=(20, 3.4))
for name, hist, color in [(f"beta = {KL_BETA}", hist_kl, "tab:blue"), ("beta = 0 (no KL)", hist_nokl, "tab:red")]:
    for ax, key in zip(axes, hist):
        plot_curve(ax, hist[key], label=name, window=10, color=color)
        ax.set_title(key); ax.set_xlabel("PPO step")
axes[1].axhline(base_true, ls=":", color="gray", label="pre-trained")
axes[0].axhline(base_learned, ls=":", color="gray", label="pre-trained")
axes[0].legend(); axes[1].legend(); plt.tight_layout(); plt.show()

kl_learned, kl_true, kl_agreement, kl_texts = evaluate(policy_kl)
nokl_learned, nokl_true, nokl_agreement, nokl_texts = evaluate(policy_nokl)
print(f"{'policy':<18}{'learned reward':>16}{'true score':>12}{'rank correlation':>18}")
for name, (lr_, tr_, rc_) in [("pre-trained", (base_learned, base_true, base_agreement)),
                              (f"PPO beta={KL_BETA}", (kl_learned, kl_true, kl_agreement)),
                              ("PPO beta=0", (nokl_learned, nokl_true, nokl_agreement))]:
    print(f"{name:<18}{lr_:>16.3f}{tr_:>12.3f}{rc_:>18.3f}")
for name, texts in [("pre-trained", base_texts), (f"PPO beta={KL_BETA}", kl_texts), ("PPO beta=0", nokl_texts)]:
    print(f"\n{name}:"); [print("   ", t) for t in texts[:4]]
report("true_score_before", base_true)
report("kl_true_score_after", kl_true)
report("kl_learned_reward_gain", kl_learned - base_learned)
report("nokl_true_score_after", nokl_true)
report("nokl_learned_reward_gain", nokl_learned - base_learned)
report("rm_annotator_rank_correlation_pretrained", base_agreement)
report("rm_annotator_rank_correlation_kl", kl_agreement)
report("rm_annotator_rank_correlation_nokl", nokl_agreement)

# reward hacking over time: where each run's true score peaked (10-step moving average, as plotted)
# and what the learned reward did after that peak
for name, hist in [("kl", hist_kl), ("nokl", hist_nokl)]:
    true_avg, learned_avg = moving_average(hist["true score"], 10), moving_average(hist["learned reward"], 10)
    peak = int(true_avg.argmax())
    print(f"beta = {KL_BETA if name == 'kl' else 0}: true score peaked at {true_avg[peak]:.3f} (step {peak + 1}) and "
          f"ended at {true_avg[-1]:.3f}; the learned reward went from {learned_avg[peak]:.3f} to {learned_avg[-1]:.3f}")
    report(f"{name}_true_score_fall_from_peak", true_avg[peak] - true_avg[-1])
    report(f"{name}_learned_reward_rise_after_true_peak", learned_avg[-1] - learned_avg[peak])
    report(f"{name}_kl_to_reference_last", moving_average(hist["KL to reference"], 10)[-1])


# %% cell 32
ppo_run.require()
bon_rollout = sample_completions(policy0, tok, review_prompts(BON_PROMPTS, seed=BON_PROMPT_SEED), MAX_NEW_TOKENS,
                                 num_samples=BON_SAMPLES)
with torch.no_grad():
    bon_learned = last_token_scores(reward_model, bon_rollout).view(BON_PROMPTS, BON_SAMPLES)
bon_true = torch.tensor([annotator_score(t) for t in bon_rollout.texts],
                        device=bon_learned.device).view(BON_PROMPTS, BON_SAMPLES)
bon_ns = [n for n in (1, 2, 4, 8, 16, 32, 64, 128, 256) if n <= BON_SAMPLES]
bon = [best_of_n(bon_learned, bon_true, n) for n in bon_ns]     # (learned, true) of the kept review
bon_kl = [best_of_n_kl(n) for n in bon_ns]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
axes[0].plot(bon_ns, [b[0] for b in bon], "o-", color="tab:purple")
axes[0].set_xscale("log", base=2); axes[0].set_xlabel("n"); axes[0].set_title("learned reward of the best of n")
axes[1].plot(bon_kl, [b[1] for b in bon], "o-", color="tab:purple", label="best-of-n")
for name, hist, color in [(f"PPO beta = {KL_BETA}", hist_kl, "tab:blue"), ("PPO beta = 0", hist_nokl, "tab:red")]:
    axes[1].plot(moving_average(hist["KL to reference"], 10), moving_average(hist["true score"], 10), color=color,
                 label=name, alpha=0.8)
axes[1].set_xscale("symlog", linthresh=1); axes[1].set_xlabel("KL to the pre-trained policy (nats)")
axes[1].set_title("annotator's true score"); axes[1].legend(); plt.tight_layout(); plt.show()
peak = max(range(len(bon_ns)), key=lambda i: bon[i][1])
for n, kl, (learned, true) in zip(bon_ns, bon_kl, bon):
    print(f"n = {n:>3}  KL = {kl:5.2f}  learned reward {learned:7.3f}  true score {true:6.3f}" + ("  <- peak" if n == bon_ns[peak] else ""))
report("bon_true_score_n1", bon[0][1])
report("bon_true_score_peak", bon[peak][1])
report("bon_peak_n", bon_ns[peak], "d")
report(f"bon_true_score_n{bon_ns[-1]}", bon[-1][1])
report("bon_true_score_fall_from_peak", bon[peak][1] - bon[-1][1])
report("bon_learned_reward_gain", bon[-1][0] - bon[0][0])
report.lessons(policy0)   # how this run did on the notebook's lessons, beside the results ledger
