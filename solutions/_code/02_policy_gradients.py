# The code cells of solutions/02_policy_gradients/02_policy_gradients.ipynb, written by scripts/release.py: do not edit.
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
from tqdm.auto import tqdm

from rlcourse.cafe import BEST_SCORE, annotator_score, review_prompts
from rlcourse.checks import (check, check_close, check_no_grad, check_own_function, check_raises,
                             check_scalar, check_shape, fail, needs_your_code)
from rlcourse.config import Report, pick
from rlcourse.model import load_policy, seed_everything, set_threads
from rlcourse.optim import optimizer_step
from rlcourse.plots import plot_curve
from rlcourse.reference import token_log_probs  # from notebook 01
from rlcourse.rewards import mean_review_score, rollout_rewards, score_at_last_token
from rlcourse.rollout import completion_logits, sample_completions

set_threads()

# ---- config: every knob of this notebook ----
MODEL_NAME = "tiny"           # or "course-gpt2" (build it on a GPU), "gpt2", "distilgpt2": README, "On a GPU"
SEED = 0
VARIANCE_SEED = SEED                  # generator seeds VARIANCE_SEED, +1, ... for the repeated estimates
TRAIN_PROMPT_SEED = SEED              # step k draws its reviews' prompts with seed TRAIN_PROMPT_SEED + k
EVAL_PROMPT_SEED = 123                # the evaluation's prompts (never a training step's)
SHOW_PROMPT_SEED = 7                  # the prompts of the samples printed at the end
VARIANCE_REPEATS = pick(300, 20)      # independent estimates per sample size
SAMPLE_SIZES = [1, 4, 16, 64, 256, 1024]
PG_STEPS = pick(30, 2)                # REINFORCE updates
PG_BATCH = 32                         # reviews per update
MAX_NEW_TOKENS = 24
LR = 3e-4 if MODEL_NAME == "tiny" else 5e-5   # smaller steps for a larger policy (README, "Bigger policies")
MAX_GRAD_NORM = None                  # plain REINFORCE steps: no gradient clipping
GAMMA = 1.0
REPEAT_PENALTY = -0.2                # section 4's example: a reward for every repeated word
DEMO_GAMMA = 0.5
USE_BASELINE = True                   # subtract the batch-mean score (explained below)
EVAL_REVIEWS = pick(192, 16)

report = Report("02_policy_gradients")


# %% cell 4
text = "I had a matcha latte. It was lovely."
print("reward of a string:", annotator_score(text), " <- a float from a string: no autograd graph")
probs = torch.tensor([0.2, 0.5, 0.3], requires_grad=True)
sample = torch.multinomial(probs, 1)
print("a sample:", sample, "requires_grad =", sample.requires_grad, " <- sampling is not differentiable")


# %% cell 6 exact_policy_gradient
def exact_policy_gradient(logits, f_values):
    """Exact gradient w.r.t. logits of E_{x ~ softmax(logits)}[f(x)] = sum_x p(x) f(x).

    grad[k] = p(k) * (f(k) - sum_x p(x) f(x)),  p = softmax(logits)

    logits: (K,);  f_values: (K,).  Returns (K,). Raises ValueError if the shapes differ.
    """
    ### BEGIN SOLUTION
    if logits.shape != f_values.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and f_values {tuple(f_values.shape)} differ in shape")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    p = torch.softmax(logits, dim=-1)
    f = f_values.to(p.dtype)
    return p * (f - (p * f).sum())
    ### END SOLUTION


# %% cell 7 test_exact_policy_gradient
check_own_function(exact_policy_gradient, "exact_policy_gradient")
g = exact_policy_gradient(torch.zeros(2), torch.tensor([1.0, 0.0]))
check_shape(g, (2,), "exact_policy_gradient of K=2")
if abs(float(g[0]) - 0.5) < 1e-6:
    fail("You returned p * f: the gradient of softmax couples the entries. Subtract E_p[f]: p * (f - E_p[f]).")
check_close(g, torch.tensor([0.25, -0.25]), "exact_policy_gradient(zeros(2), [1, 0])",
            hint="p = [0.5, 0.5], E[f] = 0.5, so grad = p * (f - 0.5).")
g = exact_policy_gradient(torch.tensor([0.0, math.log(3.0)]), torch.tensor([2.0, 0.0]))
check_close(g, torch.tensor([0.375, -0.375]), "exact_policy_gradient([0, log 3], [2, 0])",
            hint="p = [0.25, 0.75], E[f] = 0.5.")


# %% cell 8 test_exact_policy_gradient_hidden
check_own_function(exact_policy_gradient, "exact_policy_gradient")
check_shape(exact_policy_gradient(torch.zeros(3), torch.ones(3)), (3,), "exact_policy_gradient")
### BEGIN HIDDEN TESTS
# against autograd, float64
gen = torch.Generator().manual_seed(3)
logits = torch.randn(6, generator=gen, dtype=torch.float64)
f = torch.randn(6, generator=gen, dtype=torch.float64)
z = logits.clone().requires_grad_(True)
(torch.softmax(z, -1) * f).sum().backward()
g = exact_policy_gradient(logits, f)
check(g.dtype == torch.float64, "float64 logits and f should give a float64 gradient: "
      "keep the input's dtype (no .float(), no float32 constants or buffers such as torch.zeros(...) without dtype).")
check_close(g, z.grad, "exact_policy_gradient vs autograd", atol=1e-12, rtol=1e-9,
            hint="Check the sign, and that you subtract the expectation E_p[f].")
# a constant reward cannot be improved
check_close(exact_policy_gradient(torch.tensor([0.3, -1.0, 2.0]), torch.full((3,), 7.0)), torch.zeros(3),
            "exact_policy_gradient of a constant f", atol=1e-6,
            hint="A constant f equals its expectation, so p * (f - E_p[f]) is 0: did you subtract E_p[f]?")
# large logits stay finite
check_close(exact_policy_gradient(torch.tensor([1e4, 0.0, -1e4]), torch.tensor([1.0, 2.0, 3.0])), torch.zeros(3),
            "exact_policy_gradient with very large logits", atol=1e-6,
            hint="Use torch.softmax (it subtracts the max first), not exp(logits) / exp(logits).sum().")
check_raises(lambda: exact_policy_gradient(torch.zeros(3), torch.zeros(4)), ValueError,
             "exact_policy_gradient with logits and f of different shapes")
### END HIDDEN TESTS


# %% cell 10 score_function_gradient
def score_function_gradient(logits, f_values, num_samples, generator=None):
    """Monte Carlo estimate of grad_logits E_{x ~ softmax(logits)}[f(x)].

    grad ~= (1/N) sum_i f(x_i) * grad log p(x_i),  x_i ~ softmax(logits),
    grad log p(x) = onehot(x) - p

    logits: (K,);  f_values: (K,);  num_samples: N >= 1;  generator: torch.Generator or None.
    Returns (K,). Raises ValueError if the shapes differ.
    """
    ### BEGIN SOLUTION
    if logits.shape != f_values.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and f_values {tuple(f_values.shape)} differ in shape")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    p = torch.softmax(logits.detach(), dim=-1)
    x = torch.multinomial(p, num_samples, replacement=True, generator=generator)  # (N,)
    grad_log_p = F.one_hot(x, p.shape[-1]).to(p.dtype) - p                     # (N, K)
    return (f_values.to(p.dtype)[x].unsqueeze(-1) * grad_log_p).mean(dim=0)
    ### END SOLUTION


# %% cell 11 test_score_function_gradient
check_own_function(score_function_gradient, "score_function_gradient")
logits, f = torch.zeros(4), torch.tensor([1.0, 2.0, 3.0, 4.0])
est = score_function_gradient(logits, f, 100_000, generator=torch.Generator().manual_seed(0))
check_shape(est, (4,), "score_function_gradient for K=4")
check_close(est, torch.tensor([-0.375, -0.125, 0.125, 0.375]), "the estimate with 100000 samples", atol=0.03, rtol=0,
            hint="grad log p(x) = onehot(x) - p; average f(x_i) * (onehot(x_i) - p) over the samples.")
again = score_function_gradient(logits, f, 100_000, generator=torch.Generator().manual_seed(0))
check_close(again, est, "a second estimate with the same generator seed",
            hint="Draw the samples with torch.multinomial(..., generator=generator).")


# %% cell 12 test_score_function_gradient_hidden
check_own_function(score_function_gradient, "score_function_gradient")
check_shape(score_function_gradient(torch.zeros(3), torch.ones(3), 5), (3,), "score_function_gradient")
### BEGIN HIDDEN TESTS
logits = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
f = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
z = logits.clone().requires_grad_(True)
(torch.softmax(z, -1) * f).sum().backward()
exact = z.grad
est = score_function_gradient(logits, f, 10, generator=torch.Generator().manual_seed(1))
check(est.dtype == torch.float64, "float64 logits and f should give a float64 estimate: "
      "keep the input's dtype (no .float(), no float32 constants or buffers such as torch.zeros(...) without dtype).")
# the samples come from the generator, not from the global seed
torch.manual_seed(0)
a = score_function_gradient(logits, f, 10, generator=torch.Generator().manual_seed(5))
torch.manual_seed(123)
b = score_function_gradient(logits, f, 10, generator=torch.Generator().manual_seed(5))
check_close(a, b, "two estimates with equal generator seeds", hint="Pass generator=generator to torch.multinomial.")

def many(n, reps=200):
    return torch.stack([score_function_gradient(logits, f, n, generator=torch.Generator().manual_seed(1000 + s))
                        for s in range(reps)])

e10, e160 = many(10), many(160)
mse10 = float(((e10 - exact) ** 2).sum(-1).mean())
mse160 = float(((e160 - exact) ** 2).sum(-1).mean())
check(mse10 > 1e-6, "Your estimates do not vary from seed to seed: a Monte Carlo estimator must use the samples, "
                    "not the exact expectation.")
check(8.0 < mse10 / mse160 < 32.0,
      "The squared error of your estimates does not fall like 1 / num_samples: do you draw all num_samples "
      "samples and average their terms (mean, not sum)?")
se = e160.std(0) / math.sqrt(e160.shape[0])
bias = (e160.mean(0) - exact).abs()
check(bool((bias <= 4 * se + 1e-9).all()),
      "The estimator is biased: the mean of many estimates does not approach the exact gradient. "
      "Did you forget the -p in grad log p(x) = onehot(x) - p, or flip the sign?")
check_raises(lambda: score_function_gradient(torch.zeros(3), torch.zeros(4), 5), ValueError,
             "score_function_gradient with logits and f of different shapes")
### END HIDDEN TESTS


# %% cell 14
seed_everything(SEED)
cat_logits = torch.tensor([1.0, 0.2, -0.5, 0.0, 0.7])
cat_f = torch.tensor([0.1, 1.0, -0.3, 0.5, 0.1])    # e.g. the annotator's taste for 5 drinks
with needs_your_code():
    exact = exact_policy_gradient(cat_logits, cat_f)
    mse = []
    for n in tqdm(SAMPLE_SIZES, desc="sample sizes"):
        ests = torch.stack([score_function_gradient(cat_logits, cat_f, n,
                                                    generator=torch.Generator().manual_seed(VARIANCE_SEED + s))
                            for s in range(VARIANCE_REPEATS)])
        mse.append(((ests - exact) ** 2).sum(-1).mean().item())
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.loglog(SAMPLE_SIZES, mse, "o-", label="score-function estimator")
ax.loglog(SAMPLE_SIZES, [mse[0] / n for n in SAMPLE_SIZES], "k--", label="1/N")
ax.set_xlabel("number of samples N"); ax.set_ylabel("mean squared error"); ax.legend()
ax.set_title("Monte Carlo error falls like 1/N")
plt.show()
report(f"categorical_mse_ratio_N{SAMPLE_SIZES[0]}_over_N{SAMPLE_SIZES[-1]}", mse[0] / mse[-1], ".0f")


# %% cell 16 rewards_to_go
def rewards_to_go(rewards, mask, gamma=1.0):
    """Discounted reward still to come at each step.

    G[b, t] = sum_{j >= t} gamma**(j - t) * mask[b, j] * rewards[b, j];  G = 0 where mask is 0

    rewards: (B, T);  mask: (B, T) 0/1;  gamma: float.  Returns (B, T).
    """
    ### BEGIN SOLUTION
    if rewards.shape != mask.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)} and mask {tuple(mask.shape)} differ in shape")
    m = mask.to(rewards.dtype)
    r = rewards * m
    returns = torch.zeros_like(r)
    running = torch.zeros_like(r[:, 0])
    for t in range(r.shape[1] - 1, -1, -1):
        running = r[:, t] + gamma * running
        returns[:, t] = running
    return returns * m
    ### END SOLUTION


# %% cell 17 test_rewards_to_go
check_own_function(rewards_to_go, "rewards_to_go")
rewards = torch.tensor([[0.0, 0.0, 1.0], [2.0, 0.0, 0.0]])
mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
G = rewards_to_go(rewards, mask)
check_shape(G, (2, 3), "rewards_to_go")
if torch.allclose(G.float(), torch.tensor([[0.0, 0.0, 1.0], [2.0, 2.0, 0.0]])):
    fail("You summed the PAST rewards (a forward cumsum): G_t sums the rewards from t to the end.")
check_close(G, torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 0.0]]), "rewards_to_go with gamma=1",
            hint="G_t = r_t + r_{t+1} + ...; a reward at the end reaches every earlier step.")
G = rewards_to_go(torch.tensor([[1.0, 0.0, 2.0, 5.0]]), torch.tensor([[1.0, 1.0, 1.0, 0.0]]), gamma=0.5)
check_close(G, torch.tensor([[1.5, 1.0, 2.0, 0.0]]), "rewards_to_go with gamma=0.5 and one padded step",
            hint="G_0 = 1 + 0.5*0 + 0.25*2; the padded reward 5 must not count, and G is 0 at padding.")


# %% cell 18 test_rewards_to_go_hidden
check_own_function(rewards_to_go, "rewards_to_go")
check_shape(rewards_to_go(torch.zeros(1, 2), torch.ones(1, 2)), (1, 2), "rewards_to_go")
### BEGIN HIDDEN TESTS
# gamma the right way round: a reward k steps ahead counts gamma**k
G = rewards_to_go(torch.tensor([[1.0, 2.0, 3.0]]), torch.ones(1, 3), gamma=0.5)
check_close(G, torch.tensor([[2.75, 3.5, 3.0]]), "rewards_to_go with discounting",
            hint="G_t = sum_j gamma**(j - t) r_j: the discount grows with the distance from t, not from the start.")
# padding never leaks; inputs untouched; float64; gamma = 0
rewards = torch.tensor([[0.0, 1.0, 100.0, 100.0], [3.0, 100.0, 100.0, 100.0]], dtype=torch.float64)
mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
before = rewards.clone()
G = rewards_to_go(rewards, mask, gamma=0.9)
check(torch.equal(rewards, before), "rewards_to_go changed `rewards` in place.")
check(G.dtype == torch.float64, "float64 rewards should give float64 returns: "
      "keep the input's dtype (no .float(), no float32 constants or buffers such as torch.zeros(...) without dtype).")
check_close(G, torch.tensor([[0.9, 1.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0]]),
            "rewards_to_go with large junk rewards at padded positions", atol=1e-12,
            hint="Mask the rewards before summing, and zero G at padding.")
check_close(rewards_to_go(torch.tensor([[1.0, 2.0]]), torch.ones(1, 2), gamma=0.0), torch.tensor([[1.0, 2.0]]),
            "rewards_to_go when only the immediate reward counts",
            hint="G_t = r_t + gamma * G_{t+1}: the immediate reward is never discounted, whatever gamma is.")
check_raises(lambda: rewards_to_go(torch.zeros(2, 3), torch.ones(2, 4)), ValueError,
             "rewards_to_go with mismatched shapes")
### END HIDDEN TESTS


# %% cell 20
review = "the matcha was lovely lovely and the matcha was warm".split()
seen, step_rewards = set(), []
for word in review:
    step_rewards.append(REPEAT_PENALTY if word in seen else 0.0)
    seen.add(word)
step_rewards[-1] += annotator_score(" ".join(review))        # her score, at the last word
rewards = torch.tensor([step_rewards])
mask = torch.ones_like(rewards)
with needs_your_code():
    returns = {gamma: rewards_to_go(rewards, mask, gamma)[0] for gamma in (1.0, DEMO_GAMMA)}
print(f"{'word':>8} {'r_t':>6} {'G_t (gamma=1)':>14} {f'G_t (gamma={DEMO_GAMMA})':>16}")
for t, word in enumerate(review):
    print(f"{word:>8} {step_rewards[t]:>6.2f} {returns[1.0][t].item():>14.2f} {returns[DEMO_GAMMA][t].item():>16.2f}")


# %% cell 22 reinforce_loss
def reinforce_loss(token_logps, returns, mask):
    """REINFORCE surrogate loss: sum over time, mean over trajectories.

    L = -(1/B) * sum_i sum_t mask[i,t] * G[i,t] * token_logps[i,t]   (G detached)

    token_logps, returns, mask: (B, T).  Returns a scalar.
    """
    ### BEGIN SOLUTION
    if token_logps.shape != returns.shape or token_logps.shape != mask.shape:
        raise ValueError(f"shapes differ: token_logps {tuple(token_logps.shape)}, returns {tuple(returns.shape)}, "
                         f"mask {tuple(mask.shape)}")
    m = mask.to(token_logps.dtype)
    return -(m * returns.detach() * token_logps).sum() / token_logps.shape[0]
    ### END SOLUTION


# %% cell 23 test_reinforce_loss
check_own_function(reinforce_loss, "reinforce_loss")
logps = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -1.0, -9.0]])
returns = torch.tensor([[2.0, 2.0, 2.0], [-1.0, -1.0, 7.0]])
mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
loss = reinforce_loss(logps, returns, mask)
check_scalar(loss, "reinforce_loss(...)")
# sum_t m G logp: row 0 = -12, row 1 = 1.5 -> loss = -(-12 + 1.5) / 2 = 5.25
if abs(float(loss) + 5.25) < 1e-6:
    fail("Wrong sign: optimisers minimise, so the loss is MINUS the REINFORCE objective.")
if abs(float(loss) - 10.5 / 5) < 1e-6:
    fail("You averaged over tokens: the lecture's estimator sums over time and averages over trajectories (divide by B).")
check_close(loss, torch.tensor(5.25), "reinforce_loss on the 2x3 example",
            hint="-(1/B) * sum over real tokens of G_t * log pi; padding (mask 0) must not count.")


# %% cell 24 test_reinforce_loss_hidden
check_own_function(reinforce_loss, "reinforce_loss")
check_scalar(reinforce_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2)), "reinforce_loss")
### BEGIN HIDDEN TESTS
logps = torch.tensor([[-0.2, -1.5, -1e6], [-0.7, -1e6, -1e6], [-0.1, -0.3, -0.4]], dtype=torch.float64,
                     requires_grad=True)
returns = torch.tensor([[1.0, -2.0, 50.0], [0.5, 50.0, 50.0], [3.0, 2.0, 1.0]], dtype=torch.float64,
                       requires_grad=True)
mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=torch.bool)
loss = reinforce_loss(logps, returns, mask)
check(loss.dtype == torch.float64, "float64 inputs should give a float64 loss: "
      "keep the input's dtype (no .float(), no float32 constants or buffers such as torch.zeros(...) without dtype).")
expected = -(0.2 * -1 + -1.5 * -2 + -0.7 * 0.5 + -0.1 * 3 + -0.3 * 2 + -0.4 * 1) / 3
check_close(loss, torch.tensor(expected), "reinforce_loss with huge padded values", atol=1e-9,
            hint="Padding leaks into your sum: multiply by the mask.")
loss.backward()
check_close(logps.grad, -(mask.double() * returns.detach()) / 3, "gradient of reinforce_loss w.r.t. token_logps",
            atol=1e-12, hint="d loss / d logp[i,t] = -mask * G / B.")
check_no_grad(returns, "the returns")
check_raises(lambda: reinforce_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3)), ValueError,
             "reinforce_loss with mismatched shapes")
### END HIDDEN TESTS


# %% cell 26
seed_everything(SEED)
policy, tok = load_policy(MODEL_NAME)     # on the GPU when there is one
score_before = mean_review_score(policy, tok, n=EVAL_REVIEWS, max_new_tokens=MAX_NEW_TOKENS, seed=EVAL_PROMPT_SEED)
report("review_score_before", score_before)
optimizer = torch.optim.Adam(policy.parameters(), lr=LR)
history = {"score": [], "loss": []}
with needs_your_code() as reinforce_run:
    for step in tqdm(range(PG_STEPS), desc="REINFORCE"):
        # 1. sample
        rollout = sample_completions(policy, tok, review_prompts(PG_BATCH, seed=TRAIN_PROMPT_SEED + step), max_new_tokens=MAX_NEW_TOKENS)
        mask = rollout.completion_mask
        # 2. score
        scores = rollout_rewards(rollout, annotator_score)   # (B,) on the policy's device
        baseline = scores.mean() if USE_BASELINE else 0.0
        # 3. returns
        returns = rewards_to_go(score_at_last_token(scores - baseline, mask), mask, GAMMA)
        # 4. loss
        policy.train()
        logps = token_log_probs(completion_logits(policy, rollout), rollout.completion_ids)
        loss = reinforce_loss(logps, returns, mask)
        # 5. step
        optimizer_step(optimizer, loss, MAX_GRAD_NORM)
        policy.eval()
        history["score"].append(scores.mean().item())
        history["loss"].append(loss.item())
score_after = mean_review_score(policy, tok, n=EVAL_REVIEWS, max_new_tokens=MAX_NEW_TOKENS, seed=EVAL_PROMPT_SEED)
report("review_score_after", score_after)
report("review_gap_closed", (score_after - score_before) / (BEST_SCORE - score_before), ".2f")
report.lessons(policy)   # how this run did on the notebook's lessons, beside the results ledger


# %% cell 27
reinforce_run.require()
fig, ax = plt.subplots(figsize=(6, 3.2))
plot_curve(ax, history["score"], label="mean annotator score of the batch", window=10)
ax.axhline(BEST_SCORE, color="k", ls="--", lw=1, label="best possible")
ax.set_xlabel("REINFORCE step"); ax.set_ylabel("annotator score"); ax.legend(); ax.set_title("REINFORCE on the café")
plt.show()
for text in sample_completions(policy, tok, review_prompts(4, seed=SHOW_PROMPT_SEED), max_new_tokens=MAX_NEW_TOKENS).texts:
    print(f"{annotator_score(text):+.2f}  {text.strip()!r}")
