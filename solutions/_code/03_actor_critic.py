# The code cells of solutions/03_actor_critic/03_actor_critic.ipynb, written by scripts/release.py: do not edit.
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

import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from rlcourse.cafe import BEST_SCORE, annotator_score, review_prompts
from rlcourse.checks import (check, check_close, check_no_grad, check_own_function, check_raises,
                             check_scalar, check_shape, fail, needs_your_code)
from rlcourse.config import Report, pick
from rlcourse.model import ValueHeadModel, load_policy, seed_everything, set_threads
from rlcourse.optim import GradientVariance, optimizer_step
from rlcourse.plots import plot_curve
from rlcourse.reference import reinforce_loss, rewards_to_go, token_log_probs  # from notebooks 01-02
from rlcourse.rewards import mean_review_score, rollout_rewards, score_at_last_token
from rlcourse.rollout import completion_logits, completion_values, sample_completions

set_threads()

# ---- config: every knob of this notebook ----
MODEL_NAME = "tiny"           # or "course-gpt2" (build it on a GPU), "gpt2", "distilgpt2": README, "On a GPU"
SEED = 0
WARMUP_PROMPT_SEED = SEED           # critic warm-up step k: prompts with seed WARMUP_PROMPT_SEED + k
VARIANCE_PROMPT_SEED = 1_000        # gradient sample k: seed VARIANCE_PROMPT_SEED + k
TRAIN_PROMPT_SEED = 10_000          # training step k: seed TRAIN_PROMPT_SEED + k
EVAL_PROMPT_SEED = 123              # the evaluation's prompts
BATCH = 16                          # reviews per update
MAX_NEW_TOKENS = 24
CRITIC_WARMUP = pick(80, 1)         # critic-only updates before measuring variance
WARMUP_BATCH = pick(64, BATCH)      # reviews per critic warm-up update
VARIANCE_BATCHES = pick(24, 2)      # gradient samples for the variance estimate
TRAIN_STEPS = pick(25, 1)           # updates per learning curve
LR_ACTOR = 3e-4 if MODEL_NAME == "tiny" else 5e-5   # smaller steps for a larger policy (README, "Bigger policies")
LR_CRITIC = 1e-3 if MODEL_NAME == "tiny" else 1.5e-4
MAX_GRAD_NORM = None                # plain steps: no gradient clipping
GAMMA = 1.0
REWARD_OFFSET = 2.0                 # every reward is the annotator's score + 2: always positive (section 7)
LAM = 0.95
EVAL_REVIEWS = pick(128, 8)

report = Report("03_actor_critic")


# %% cell 4 value_loss
def value_loss(values, returns, mask):
    """Squared error of the critic, summed over time and averaged over trajectories.

    L_V = (1/B) * sum_i sum_t mask[i,t] * (values[i,t] - returns[i,t])**2   (returns detached)

    values, returns, mask: (B, T).  Returns a scalar.
    """
    ### BEGIN SOLUTION
    if values.shape != returns.shape or values.shape != mask.shape:
        raise ValueError(f"shapes differ: values {tuple(values.shape)}, returns {tuple(returns.shape)}, "
                         f"mask {tuple(mask.shape)}")
    m = mask.to(values.dtype)
    return (m * (values - returns.detach()) ** 2).sum() / values.shape[0]
    ### END SOLUTION


# %% cell 5 test_value_loss
check_own_function(value_loss, "value_loss")
values = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]])
returns = torch.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
loss = value_loss(values, returns, mask)
check_scalar(loss, "value_loss(...)")
# squared errors of real tokens: row 0 = 0 + 1 + 4, row 1 = 4 -> 9 / B = 4.5
if abs(float(loss) - 9 / 4) < 1e-6:
    fail("You averaged over real tokens: the formula sums over time and divides by the number of trajectories B.")
if abs(float(loss) - 22 / 6) < 1e-6:
    fail("You averaged over every position, padding included: multiply by the mask, sum, divide by B.")
check_close(loss, torch.tensor(4.5), "value_loss on the 2x3 example",
            hint="(1/B) * sum over real tokens of (V - G)^2.")


# %% cell 6 test_value_loss_hidden
check_own_function(value_loss, "value_loss")
check_scalar(value_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2)), "value_loss")
### BEGIN HIDDEN TESTS
values = torch.tensor([[0.5, -1.0, 1e3], [2.0, 1e3, 1e3]], dtype=torch.float64, requires_grad=True)
returns = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
loss = value_loss(values, returns, mask)
check(loss.dtype == torch.float64, "float64 inputs should give a float64 loss: "
      "keep the input's dtype (no .float(), no float32 constants or buffers such as torch.zeros(...) without dtype).")
check_close(loss, torch.tensor((0.25 + 4.0 + 1.0) / 2), "value_loss with huge padded values", atol=1e-9,
            hint="Padding leaks in: multiply the squared errors by the mask.")
loss.backward()
check_close(values.grad, 2 * mask.double() * (values.detach() - returns.detach()) / 2,
            "gradient of value_loss w.r.t. values", atol=1e-12, hint="d/dV = 2 * mask * (V - G) / B.")
check_no_grad(returns, "the returns (regression targets)")
check_raises(lambda: value_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(3, 2)), ValueError,
             "value_loss with a mask of the wrong shape")
### END HIDDEN TESTS


# %% cell 8 compute_advantages
def compute_advantages(returns, values, mask):
    """A[i,t] = (returns[i,t] - values[i,t]) * mask[i,t], with no gradient into values.

    returns, values, mask: (B, T).  Returns (B, T), detached.
    """
    ### BEGIN SOLUTION
    if returns.shape != values.shape or returns.shape != mask.shape:
        raise ValueError(f"shapes differ: returns {tuple(returns.shape)}, values {tuple(values.shape)}, "
                         f"mask {tuple(mask.shape)}")
    return (returns - values).detach() * mask.to(returns.dtype)
    ### END SOLUTION


# %% cell 9 test_compute_advantages
check_own_function(compute_advantages, "compute_advantages")
returns = torch.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 0.0]])
values = torch.tensor([[0.5, 1.5, 1.0], [0.0, 1.0, 7.0]])
mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
adv = compute_advantages(returns, values, mask)
check_shape(adv, (2, 3), "compute_advantages")
if abs(float(adv[0, 0]) + 0.5) < 1e-6:
    fail("Wrong sign: the advantage is G - V (better than expected is positive).")
check_close(adv, torch.tensor([[0.5, -0.5, 0.0], [2.0, 1.0, 0.0]]), "compute_advantages on the 2x3 example",
            hint="(G - V) * mask; padding positions are 0.")


# %% cell 10 test_compute_advantages_hidden
check_own_function(compute_advantages, "compute_advantages")
check_shape(compute_advantages(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2)), (1, 2), "compute_advantages")
### BEGIN HIDDEN TESTS
values = torch.tensor([[0.25, 3.0], [1.0, 2.0]], dtype=torch.float64, requires_grad=True)
returns = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
mask = torch.tensor([[True, True], [True, False]])
adv = compute_advantages(returns, values, mask)
check(not adv.requires_grad, "Gradient flows from the advantages into the critic: .detach() the values.")
check(adv.dtype == torch.float64, "float64 inputs should give float64 advantages: "
      "keep the input's dtype (no .float(), no float32 constants or buffers such as torch.zeros(...) without dtype).")
check_close(adv, torch.tensor([[0.75, -2.0], [0.0, 0.0]]), "compute_advantages, float64, bool mask", atol=1e-12,
            hint="A = (G - V) * mask, with V detached: positive where the return beat the critic's guess, "
                 "0 at padding.")
# no normalisation: a constant shift of the returns shifts every advantage
adv2 = compute_advantages(returns + 10, values.detach(), torch.ones(2, 2))
check_close(adv2, returns + 10 - values.detach(), "compute_advantages of shifted returns",
            hint="Do not normalise the advantages here: the contract is plain G - V.")
check_raises(lambda: compute_advantages(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3)), ValueError,
             "compute_advantages with mismatched shapes")
### END HIDDEN TESTS


# %% cell 12 actor_critic_loss
def actor_critic_loss(token_logps, advantages, mask):
    """L = -(1/B) * sum_i sum_t mask[i,t] * A[i,t] * token_logps[i,t]   (advantages detached)

    token_logps, advantages, mask: (B, T).  Returns a scalar.
    """
    ### BEGIN SOLUTION
    if token_logps.shape != advantages.shape or token_logps.shape != mask.shape:
        raise ValueError(f"shapes differ: token_logps {tuple(token_logps.shape)}, "
                         f"advantages {tuple(advantages.shape)}, mask {tuple(mask.shape)}")
    m = mask.to(token_logps.dtype)
    return -(m * advantages.detach() * token_logps).sum() / token_logps.shape[0]
    ### END SOLUTION


# %% cell 13 test_actor_critic_loss
check_own_function(actor_critic_loss, "actor_critic_loss")
logps = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -1.0, -9.0]])
advantages = torch.tensor([[1.0, -1.0, 0.5], [2.0, 2.0, 4.0]])
mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
loss = actor_critic_loss(logps, advantages, mask)
check_scalar(loss, "actor_critic_loss(...)")
# row 0: -1 + 2 - 1.5 = -0.5; row 1: -1 - 2 = -3; loss = 3.5 / 2 = 1.75
if abs(float(loss) + 1.75) < 1e-6:
    fail("Wrong sign: the loss is MINUS the objective.")
if abs(float(loss) - 3.5 / 5) < 1e-6:
    fail("You averaged over tokens: sum over time and divide by the number of trajectories B.")
check_close(loss, torch.tensor(1.75), "actor_critic_loss on the 2x3 example",
            hint="-(1/B) * sum over real tokens of A * log pi; padding must not count.")


# %% cell 14 test_actor_critic_loss_hidden
check_own_function(actor_critic_loss, "actor_critic_loss")
check_scalar(actor_critic_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2)), "actor_critic_loss")
### BEGIN HIDDEN TESTS
logps = torch.tensor([[-0.2, -1e6], [-0.7, -0.1]], dtype=torch.float64, requires_grad=True)
advantages = torch.tensor([[-2.0, 30.0], [0.5, 1.0]], dtype=torch.float64, requires_grad=True)
mask = torch.tensor([[1, 0], [1, 1]], dtype=torch.bool)
loss = actor_critic_loss(logps, advantages, mask)
check(loss.dtype == torch.float64, "float64 inputs should give a float64 loss: "
      "keep the input's dtype (no .float(), no float32 constants or buffers such as torch.zeros(...) without dtype).")
check_close(loss, torch.tensor(-(0.4 - 0.35 - 0.1) / 2), "actor_critic_loss with a huge padded value", atol=1e-9,
            hint="Padding leaks in: multiply by the mask.")
loss.backward()
check_close(logps.grad, -(mask.double() * advantages.detach()) / 2, "gradient w.r.t. token_logps", atol=1e-12,
            hint="d loss / d logp[i,t] = -mask * A / B: sum over tokens, mean over trajectories.")
check_no_grad(advantages, "the advantages")
check_raises(lambda: actor_critic_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 2)), ValueError,
             "actor_critic_loss with a mask of the wrong shape")
### END HIDDEN TESTS


# %% cell 16 gae_advantages
def gae_advantages(rewards, values, mask, gamma=1.0, lam=0.95):
    """Generalised advantage estimation.

    delta[t] = r[t] + gamma * V[t+1] - V[t]   (V = 0 past the last real token)
    A[t]     = sum_l (gamma * lam)**l * delta[t+l]  = delta[t] + gamma * lam * A[t+1];  A = 0 at padding

    rewards, values, mask: (B, T).  Returns (B, T), no gradient into values.
    """
    ### BEGIN SOLUTION
    if rewards.shape != values.shape or rewards.shape != mask.shape:
        raise ValueError(f"shapes differ: rewards {tuple(rewards.shape)}, values {tuple(values.shape)}, "
                         f"mask {tuple(mask.shape)}")
    m = mask.to(rewards.dtype)
    r = rewards * m
    v = values.detach().to(rewards.dtype) * m
    next_v = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], dim=1)
    delta = (r + gamma * next_v - v) * m
    advantages = torch.zeros_like(delta)
    running = torch.zeros_like(delta[:, 0])
    for t in range(delta.shape[1] - 1, -1, -1):
        running = delta[:, t] + gamma * lam * running * m[:, t]
        advantages[:, t] = running
    return advantages * m
    ### END SOLUTION


# %% cell 17 test_gae_advantages
check_own_function(gae_advantages, "gae_advantages")
rewards = torch.tensor([[0.0, 0.0, 1.0]])
values = torch.tensor([[0.5, 0.2, 0.8]])
adv = gae_advantages(rewards, values, torch.ones(1, 3), gamma=1.0, lam=0.5)
check_shape(adv, (1, 3), "gae_advantages")
# delta = [0 + 0.2 - 0.5, 0 + 0.8 - 0.2, 1 + 0 - 0.8] = [-0.3, 0.6, 0.2]
if torch.allclose(adv.float(), torch.tensor([[-0.3, 0.6, 0.2]])):
    fail("You returned the TD errors delta_t: accumulate them backwards, A_t = delta_t + gamma*lam*A_{t+1}.")
check_close(adv, torch.tensor([[0.05, 0.7, 0.2]]), "gae_advantages with gamma=1, lam=0.5",
            hint="delta = [-0.3, 0.6, 0.2]; A_2 = 0.2, A_1 = 0.6 + 0.5*0.2, A_0 = -0.3 + 0.5*A_1.")


# %% cell 18 test_gae_advantages_hidden
check_own_function(gae_advantages, "gae_advantages")
check_shape(gae_advantages(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2)), (1, 2), "gae_advantages")
### BEGIN HIDDEN TESTS
gen = torch.Generator().manual_seed(0)
rewards = torch.randn(3, 5, generator=gen, dtype=torch.float64)
values = torch.randn(3, 5, generator=gen, dtype=torch.float64)
mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.float64)
rewards_junk = torch.where(mask > 0, rewards, torch.full_like(rewards, 100.0))
values_junk = torch.where(mask > 0, values, torch.full_like(values, -100.0)).requires_grad_(True)
gamma = 0.9
# independent loop: returns-to-go, then lam=1 must give G - V
G = torch.zeros(3, 5, dtype=torch.float64)
for b in range(3):
    n = int(mask[b].sum())
    for t in range(n):
        G[b, t] = sum(gamma ** (j - t) * float(rewards[b, j]) for j in range(t, n))
adv1 = gae_advantages(rewards_junk, values_junk, mask, gamma=gamma, lam=1.0)
check(adv1.dtype == torch.float64, "float64 inputs should give float64 advantages: "
      "keep the input's dtype (no .float(), no float32 constants or buffers such as torch.zeros(...) without dtype).")
check(not adv1.requires_grad, "Gradient flows into the critic's values: .detach() them.")
check_close(adv1, (G - values) * mask, "gae_advantages in its Monte Carlo limit (should equal rewards_to_go - values)",
            atol=1e-10,
            hint="Check gamma (gamma**l for l steps ahead), and that V = 0 and r = 0 past the last real token.")
# lam = 0: one-step TD errors
next_v = torch.zeros(3, 5, dtype=torch.float64)
for b in range(3):
    n = int(mask[b].sum())
    for t in range(n - 1):
        next_v[b, t] = values[b, t + 1]
check_close(gae_advantages(rewards_junk, values_junk.detach(), mask, gamma=gamma, lam=0.0),
            (rewards + gamma * next_v - values) * mask,
            "gae_advantages in its one-step limit (should equal the TD errors)",
            atol=1e-10,
            hint="delta_t = r_t + gamma*V_{t+1} - V_t with V_{t+1} = 0 after the last real token.")
# default lam = 0.95, gamma = 1
adv = gae_advantages(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.5]]), torch.ones(1, 2))
check_close(adv, torch.tensor([[0.0 + 0.95 * 0.5, 0.5]]), "gae_advantages with the default gamma and lam",
            hint="Use the defaults of the signature, and accumulate backwards: A_t = delta_t + gamma*lam*A_{t+1}.")
check_raises(lambda: gae_advantages(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3)), ValueError,
             "gae_advantages with mismatched shapes")
### END HIDDEN TESTS


# %% cell 20
def sample_batch(policy, prompt_seed, batch=BATCH):
    """Sample reviews, score them, and build per-token rewards and returns."""
    rollout = sample_completions(policy, tok, review_prompts(batch, seed=prompt_seed), max_new_tokens=MAX_NEW_TOKENS)
    mask = rollout.completion_mask
    scores = rollout_rewards(rollout, annotator_score)                  # what we report: the annotator's score
    rewards = score_at_last_token(scores + REWARD_OFFSET, mask)         # what we train on: always positive
    return rollout, mask, scores, rewards, rewards_to_go(rewards, mask, GAMMA)


seed_everything(SEED)
base_policy, tok = load_policy(MODEL_NAME)     # on the GPU when there is one
critic = ValueHeadModel(copy.deepcopy(base_policy))     # its head is made on the policy's device
critic_opt = torch.optim.Adam(critic.parameters(), lr=LR_CRITIC)
warmup_losses = []
with needs_your_code() as warmup_run:
    for step in tqdm(range(CRITIC_WARMUP), desc="critic warm-up"):
        rollout, mask, scores, rewards, returns = sample_batch(base_policy, WARMUP_PROMPT_SEED + step, WARMUP_BATCH)
        loss = value_loss(completion_values(critic, rollout), returns, mask)
        optimizer_step(critic_opt, loss, MAX_GRAD_NORM)
        warmup_losses.append(loss.item())
fig, ax = plt.subplots(figsize=(5, 3))
plot_curve(ax, warmup_losses, label="value loss", window=5)
ax.set_xlabel("critic step"); ax.set_ylabel("value loss"); ax.set_title("Fitting the critic"); ax.legend()
plt.show()


# %% cell 22
theta = torch.zeros(2, 2, dtype=torch.float64)                                # logits[state, action]
two_state_reward = torch.tensor([[10.0, 11.0], [0.0, 1.0]], dtype=torch.float64)  # R(s, a)


def exact_gradient_moments(baseline):
    """Mean and total variance of grad log pi(a|s) * (R(s, a) - baseline[s]) over s ~ 1/2, a ~ pi(.|s)."""
    pi = theta.softmax(-1)
    mean, second = torch.zeros_like(theta), torch.zeros((), dtype=torch.float64)
    for s in range(2):
        for a in range(2):
            score = torch.zeros_like(theta)
            score[s] = -pi[s]
            score[s, a] += 1.0                          # grad of log softmax: one-hot minus pi, in row s only
            g = score * (two_state_reward[s, a] - baseline[s])
            weight = 0.5 * pi[s, a]
            mean += weight * g
            second += weight * (g ** 2).sum()
    return mean, (second - (mean ** 2).sum()).item()


constants = torch.linspace(0.0, 12.0, 241, dtype=torch.float64)
constant_variances = [exact_gradient_moments(torch.stack([c, c]))[1] for c in constants]
best_constant = constants[min(range(len(constants)), key=constant_variances.__getitem__)].item()
rows = {"no baseline": torch.zeros(2, dtype=torch.float64),
        f"best constant ({best_constant:g})": torch.full((2,), best_constant, dtype=torch.float64),
        "V(s) = (10.5, 0.5)": two_state_reward.mean(-1)}
for name, baseline in rows.items():
    mean, variance = exact_gradient_moments(baseline)
    print(f"{name:<22} mean gradient {mean.flatten().tolist()}   total variance {variance:.4f}")
two_state_var = {name: exact_gradient_moments(b)[1] for name, b in rows.items()}
var_none, var_constant, var_state = two_state_var.values()
report("two_state_variance_ratio_constant_over_none", var_constant / var_none)
report("two_state_variance_ratio_state_over_constant", var_state / var_constant, ".4f")
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(constants, constant_variances, label="constant baseline b")
ax.axhline(var_state, color="tab:green", ls="--", label="state-dependent V(s)")
ax.set_xlabel("b"); ax.set_ylabel("total variance"); ax.set_yscale("log"); ax.legend(); plt.show()


# %% cell 25
def flat_grad(model, loss, retain_graph=False):
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad], retain_graph=retain_graph)
    return torch.cat([g.reshape(-1) for g in grads])


warmup_run.require()
grads_reinforce, grads_baseline = GradientVariance(), GradientVariance()   # one draw per batch for each
grads_ac, grads_gae = GradientVariance(), GradientVariance()
with needs_your_code():
    for k in tqdm(range(VARIANCE_BATCHES), desc="gradient samples"):
        rollout, mask, scores, rewards, returns = sample_batch(base_policy, VARIANCE_PROMPT_SEED + k)
        with torch.no_grad():
            values = completion_values(critic, rollout)
        logps = token_log_probs(completion_logits(base_policy, rollout), rollout.completion_ids)
        grads_reinforce.add(flat_grad(base_policy, reinforce_loss(logps, returns, mask), retain_graph=True))
        returns_bl = rewards_to_go(score_at_last_token(scores - scores.mean(), mask), mask, GAMMA)
        grads_baseline.add(flat_grad(base_policy, reinforce_loss(logps, returns_bl, mask), retain_graph=True))
        advantages = compute_advantages(returns, values, mask)
        grads_ac.add(flat_grad(base_policy, actor_critic_loss(logps, advantages, mask), retain_graph=True))
        gae = gae_advantages(rewards, values, mask, GAMMA, LAM)
        grads_gae.add(flat_grad(base_policy, actor_critic_loss(logps, gae, mask)))
var_reinforce, var_baseline = grads_reinforce.total(), grads_baseline.total()
var_ac, var_gae = grads_ac.total(), grads_gae.total()
print(f"total gradient variance  REINFORCE: {var_reinforce:.4g}   batch-mean baseline: {var_baseline:.4g}   "
      f"G_t - V(s_t): {var_ac:.4g}   GAE: {var_gae:.4g}")
report("gradient_variance_ratio_baseline_over_reinforce", var_baseline / var_reinforce)
report("gradient_variance_ratio_ac_over_reinforce", var_ac / var_reinforce)
report("gradient_variance_ratio_gae_over_reinforce", var_gae / var_reinforce)
fig, ax = plt.subplots(figsize=(6.5, 3))
ax.bar(["REINFORCE\n(G_t)", "batch mean\n(G_t - mean G)", "actor-critic\n(G_t - V(s_t))",
        f"actor-critic\n(GAE, lambda={LAM})"],
       [var_reinforce, var_baseline, var_ac, var_gae], color=["#c44e52", "#dd8452", "#4c72b0", "#55a868"])
ax.set_yscale("log"); ax.set_ylabel("total gradient variance (log scale)"); ax.set_title("Same samples, different baselines")
plt.show()


# %% cell 27
def train_reinforce(use_baseline, steps=TRAIN_STEPS, seed=SEED):
    """REINFORCE: every token is weighted by its return G_t, minus the batch-mean score with use_baseline (02)."""
    seed_everything(seed)
    policy = copy.deepcopy(base_policy)
    policy_opt = torch.optim.Adam(policy.parameters(), lr=LR_ACTOR)
    curve = []
    for step in tqdm(range(steps), desc="REINFORCE" + (" with baseline" if use_baseline else "")):
        # 1. sample  2. score (rewards at the last token, returns)
        rollout, mask, scores, rewards, returns = sample_batch(policy, TRAIN_PROMPT_SEED + step)
        if use_baseline:   # the batch mean of the rewards; the offset cancels
            returns = rewards_to_go(score_at_last_token(scores - scores.mean(), mask), mask, GAMMA)
        policy.train()
        logps = token_log_probs(completion_logits(policy, rollout), rollout.completion_ids)
        # 3. loss  4. step
        optimizer_step(policy_opt, reinforce_loss(logps, returns, mask), MAX_GRAD_NORM)
        policy.eval()
        curve.append(scores.mean().item())
    return policy, curve


def train_actor_critic(steps=TRAIN_STEPS, seed=SEED):
    """Actor-critic: GAE advantages from the critic weight the tokens; the critic regresses the returns."""
    seed_everything(seed)
    actor, value_model = copy.deepcopy(base_policy), copy.deepcopy(critic)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=LR_ACTOR)
    critic_opt = torch.optim.Adam(value_model.parameters(), lr=LR_CRITIC)
    curve = []
    for step in tqdm(range(steps), desc="actor-critic"):
        # 1. sample  2. score
        rollout, mask, scores, rewards, returns = sample_batch(actor, TRAIN_PROMPT_SEED + step)
        actor.train()
        logps = token_log_probs(completion_logits(actor, rollout), rollout.completion_ids)
        # 3. advantages: GAE on the critic's values
        values = completion_values(value_model, rollout)
        advantages = gae_advantages(rewards, values, mask, GAMMA, LAM)
        # 4. the critic's step, then the actor's
        optimizer_step(critic_opt, value_loss(values, returns, mask), MAX_GRAD_NORM)
        optimizer_step(actor_opt, actor_critic_loss(logps, advantages, mask), MAX_GRAD_NORM)
        actor.eval()
        curve.append(scores.mean().item())
    return actor, curve


warmup_run.require()
with needs_your_code():
    policy_rf, curve_rf = train_reinforce(use_baseline=False)
    policy_bl, curve_bl = train_reinforce(use_baseline=True)
    policy_ac, curve_ac = train_actor_critic()
score_start, score_rf, score_bl, score_ac = (
    mean_review_score(p, tok, n=EVAL_REVIEWS, max_new_tokens=MAX_NEW_TOKENS, seed=EVAL_PROMPT_SEED)
    for p in (base_policy, policy_rf, policy_bl, policy_ac))
training_samples = TRAIN_STEPS * BATCH
warmup_samples = CRITIC_WARMUP * WARMUP_BATCH
print(f"samples drawn: {training_samples} by each training run, plus {warmup_samples} for the critic's warm-up "
      f"(actor-critic only): {training_samples + warmup_samples} in all")
print(f"mean annotator score of {EVAL_REVIEWS} fresh reviews: start {score_start:.3f}, REINFORCE {score_rf:.3f}, "
      f"REINFORCE with baseline {score_bl:.3f}, actor-critic {score_ac:.3f}")
report("review_score_start", score_start)
report("review_score_reinforce", score_rf)
report("review_score_reinforce_baseline", score_bl)
report("review_score_actor_critic", score_ac)
report.lessons(base_policy)   # how this run did on the notebook's lessons, beside the results ledger
fig, ax = plt.subplots(figsize=(6, 3.2))
plot_curve(ax, curve_rf, label="REINFORCE (no baseline)", window=8)
plot_curve(ax, curve_bl, label="REINFORCE (batch-mean baseline)", window=8)
plot_curve(ax, curve_ac, label="actor-critic (GAE)", window=8)
ax.axhline(BEST_SCORE, color="k", ls="--", lw=1, label="best possible")
ax.set_xlabel("update"); ax.set_ylabel("mean annotator score of the batch"); ax.legend()
ax.set_title(f"Same seed, same training batches ({BATCH} reviews per update)")
plt.show()
