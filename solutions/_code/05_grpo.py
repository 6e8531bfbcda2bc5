# The code cells of solutions/05_grpo/05_grpo.ipynb, written by scripts/release.py: do not edit.
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
import random
import re

import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from rlcourse.checks import (check, check_close, check_float, check_no_grad, check_own_function, check_raises,
                             check_scalar, check_shape, needs_your_code)
from rlcourse.config import Report, pick
from rlcourse.core import trust_region_stats
from rlcourse.model import count_parameters, load_policy, seed_everything, set_threads, trainable_copy
from rlcourse.optim import optimizer_step
from rlcourse.plots import plot_curve
from rlcourse.problems import HELDOUT_STARTS, load_problems, stops_short
from rlcourse.reference import sft_loss, token_log_probs
from rlcourse.rewards import answer_rewards, rollout_rewards
from rlcourse.rollout import completion_logits, completion_logps, sample_completions, subset

set_threads()

# ---- config: every knob of this notebook ----
MODEL_NAME = "tiny"           # or "course-gpt2" (build it on a GPU), "gpt2", "distilgpt2": README, "On a GPU"
SEED = 0
MAX_NEW_TOKENS = 28          # worked solutions are at most 23 tokens

STEPS = pick(30, 2)          # policy updates per method
PROMPTS_PER_STEP = pick(16, 2)
GROUP_SIZE = pick(8, 4)      # samples per prompt: a batch is PROMPTS_PER_STEP * GROUP_SIZE completions
INNER_STEPS = 2              # gradient steps per batch (the second one is off-policy: the ratio and clip matter)
LR = 2e-4 if MODEL_NAME == "tiny" else 3e-5   # a larger policy needs smaller steps: 3e-5 for course-gpt2 (85.8M)
CLIP_EPS = 0.2
MAX_GRAD_NORM = 1.0
BETA = 0.04                  # KL penalty (k3 estimator) toward the pre-trained policy
EVAL_EVERY = pick(10, 2)
N_EVAL = pick(400, 40)       # held-out problems per evaluation (400: all of them)

# pass@k (section 7)
PASSK_PROBLEMS = pick(100, 8)  # held-out problems
PASSK_SAMPLES = pick(16, 4)    # answers per problem: pass@k for k up to this
LOW_TEMPERATURE = 0.3          # the pre-trained policy sampled colder: sharpening without training
PASSK_SEED = SEED + 1

# the choices discussed in section 6: flip them and rerun the training cells
ADVANTAGES = "group_std"     # "group_std": your group_normalized_advantages (GRPO); "centred": r - mean(group),
                             # no std (Dr. GRPO); "rloo": your rloo_advantages (leave one out)
LENGTH_NORM = "sequence"     # "sequence": 1/|o_i| per answer (the lecture); "constant": 1/MAX_NEW_TOKENS (Dr. GRPO)

report = Report("05_grpo")


# %% cell 4 training_memory_gb
def training_memory_gb(n_params, algorithm, bytes_per_param=2):
    """Memory in GB to train with PPO or GRPO, counted in model-sized units.

    ppo: 3 (policy weights + Adam) + 1 (reference) + 3 (critic weights + Adam) + 1 (reward model) = 8 units
    grpo: 3 + 1 + 1 = 5 units;  GB = units * n_params * bytes_per_param / 1e9  (a Python float)
    """
    ### BEGIN SOLUTION
    units = {"ppo": 3 + 1 + 3 + 1, "grpo": 3 + 1 + 1}
    if algorithm not in units:
        raise ValueError(f"algorithm must be 'ppo' or 'grpo', got {algorithm!r}")
    return float(units[algorithm] * n_params * bytes_per_param / 1e9)
    ### END SOLUTION


# %% cell 5 test_training_memory_gb
check_own_function(training_memory_gb, "training_memory_gb")
check_float(training_memory_gb(8e9, "ppo"), 128.0, "training_memory_gb(8e9, 'ppo')",
            hint="PPO holds 8 model-sized units: policy (3 with Adam), reference (1), critic (3 with Adam), reward (1).")
check_float(training_memory_gb(8e9, "grpo"), 80.0, "training_memory_gb(8e9, 'grpo')",
            hint="GRPO drops the critic: 3 + 1 + 1 = 5 units.")


# %% cell 6 test_training_memory_gb_hidden
check_own_function(training_memory_gb, "training_memory_gb")
check(training_memory_gb(1e9, "grpo") > 0, "training_memory_gb should be positive.")
### BEGIN HIDDEN TESTS
check_float(training_memory_gb(1e9, "ppo", bytes_per_param=4), 32.0,
            "training_memory_gb for PPO with a non-default bytes_per_param",
            hint="bytes_per_param scales every unit: GB = units * n_params * bytes_per_param / 1e9.")
check_float(training_memory_gb(1e9, "grpo", 4), 20.0, "training_memory_gb for GRPO with a non-default bytes_per_param",
            hint="Take bytes_per_param as the third positional argument too; GRPO counts 5 units.")
check_float(training_memory_gb(124_000_000, "ppo"), 1.984,
            "training_memory_gb for PPO with the default bytes_per_param", tol=1e-9,
            hint="The default is 2 bytes a parameter, and a GB is 1e9 bytes here (not 2**30).")
check(isinstance(training_memory_gb(10, "grpo"), float), "training_memory_gb should return a Python float.")
check_raises(lambda: training_memory_gb(8e9, "dpo"), ValueError,
             "training_memory_gb for an algorithm other than 'ppo' or 'grpo'")
### END HIDDEN TESTS


# %% cell 7
policy0, tok = load_policy(MODEL_NAME)
for p in policy0.parameters():
    p.requires_grad_(False)
sizes = {"tiny GPT-2": count_parameters(policy0), "GPT-2 (124M)": 124e6, "8B": 8e9}
with needs_your_code():
    for name, n in sizes.items():
        print(f"{name:>14}: PPO {training_memory_gb(n, 'ppo'):9.3f} GB   GRPO {training_memory_gb(n, 'grpo'):9.3f} GB")


# %% cell 9 answer_reward
def answer_reward(completion, answer):
    """1.0 if the last integer (regex -?\\d+) in the completion text equals answer, else 0.0."""
    ### BEGIN SOLUTION
    import re

    numbers = re.findall(r"-?\d+", completion)
    if not numbers:
        return 0.0
    return 1.0 if int(numbers[-1]) == int(answer) else 0.0
    ### END SOLUTION


# %% cell 10 test_answer_reward
check_own_function(answer_reward, "answer_reward")
solution = " 10 / 2 = 5. 5 - 1 = 4. The answer is 4."
check_float(answer_reward(solution, 4), 1.0, "answer_reward(solution, 4)")
check_float(answer_reward(solution, 5), 0.0, "answer_reward(solution, 5)",
            hint="only the LAST integer is the answer; 5 is an intermediate step.")
check_float(answer_reward(" I do not know.", 4), 0.0, "answer_reward with no number in the completion")


# %% cell 11 test_answer_reward_hidden
check_own_function(answer_reward, "answer_reward")
check(answer_reward("The answer is 3.", 3) == 1.0, "answer_reward('The answer is 3.', 3) should be 1.0.")
### BEGIN HIDDEN TESTS
check_float(answer_reward(" 10 - 6 = 4. The answer is 4.", 10), 0.0, "answer_reward when the first number is the answer",
            hint="take the last integer, not the first.")
check_float(answer_reward(" 3 - 6 = -3. The answer is -3.", -3), 1.0, "answer_reward with a negative answer",
            hint="the pattern is -?\\d+: a minus sign belongs to the number.")
check_float(answer_reward(" The answer is -3.", 3), 0.0,
            "answer_reward when the number has the opposite sign of the answer",
            hint="the pattern is -?\\d+: a minus sign belongs to the number.")
check_float(answer_reward(" The answer is 40.", 4), 0.0,
            "answer_reward when the answer's digits sit inside a longer number",
            hint="compare whole numbers, not substrings.")
check_float(answer_reward("", 0), 0.0, "answer_reward of an empty completion",
            hint="no number at all gives reward 0.0, not an error.")
check_float(answer_reward("The answer is 12", 12), 1.0, "answer_reward without a final period")
r = answer_reward(" The answer is 7.", 7)
check(type(r) is float, "answer_reward should return a Python float (1.0 or 0.0), not a bool or an int: "
                        "wrap the result in float(...).")
### END HIDDEN TESTS


# %% cell 13 group_normalized_advantages
def group_normalized_advantages(rewards, group_size, eps=1e-6):
    """A_i = (r_i - mean(group)) / (std(group) + eps) over consecutive groups of group_size rows.

    rewards: (B,) with B = n_prompts * group_size -> (B,); std unbiased (torch.std); no gradient.
    """
    ### BEGIN SOLUTION
    if group_size < 1 or rewards.shape[0] % group_size != 0:
        raise ValueError(f"group_size {group_size} does not divide the batch of {rewards.shape[0]} rewards")
    groups = rewards.detach().reshape(-1, group_size)
    mean = groups.mean(dim=1, keepdim=True)
    # a group of one sample has equal rewards, so zero advantage (torch.std of one value is NaN)
    std = groups.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(mean)
    return ((groups - mean) / (std + eps)).reshape(-1)
    ### END SOLUTION


# %% cell 14 test_group_normalized_advantages
check_own_function(group_normalized_advantages, "group_normalized_advantages")
rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
adv = group_normalized_advantages(rewards, 4)
check_shape(adv, (8,), "group_normalized_advantages(rewards, 4)")
# group 1: mean 0.25, unbiased std sqrt((0.75^2 + 3 * 0.25^2) / 3) = 0.5; group 2: mean 0.5, std sqrt(1/3)
s = math.sqrt(1 / 3)
expected = torch.tensor([1.5, -0.5, -0.5, -0.5, 0.5 / s, 0.5 / s, -0.5 / s, -0.5 / s])
check_close(adv[:4].sum(), torch.tensor(0.0), "the sum of the first group's advantages", atol=1e-4,
            hint="did you subtract the mean of each group (not of the whole batch)?")
check_close(adv, expected, "the group-normalised advantages", atol=1e-4,
            hint="(r - mean of the group) / (std of the group + eps), std unbiased as torch.std; groups are consecutive rows.")


# %% cell 15 test_group_normalized_advantages_hidden
check_own_function(group_normalized_advantages, "group_normalized_advantages")
check_shape(group_normalized_advantages(torch.tensor([0.0, 1.0]), 2), (2,), "group_normalized_advantages")
### BEGIN HIDDEN TESTS
adv = group_normalized_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4)
check(abs(adv[0].item() - 1.5) < 1e-4,
      "In a group with a single success the advantages are off: subtract the group mean and divide by the "
      "unbiased std of the group (torch.std's default), not the population std (unbiased=False).")
same = group_normalized_advantages(torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]), 3)
check_close(same, torch.zeros(6), "the advantages of groups of equal rewards",
            hint="a group of equal rewards has std 0: (r - mean) / (0 + eps) must be 0, not NaN.")
single = group_normalized_advantages(torch.tensor([3.0, -1.0, 2.0]), 1)
check_close(single, torch.zeros(3), "the advantages with groups of one sample each",
            hint="a group of one sample is a group of equal rewards: its advantage is 0, never NaN "
                 "(torch.std of a single value is NaN, so that case needs its own branch).")
consecutive = group_normalized_advantages(torch.tensor([0.0, 0.0, 1.0, 1.0]), 2)
check_close(consecutive, torch.zeros(4), "the advantages when every group is uniform but the groups differ",
            hint="groups are consecutive blocks of group_size rows, not every group_size-th row, and each group "
                 "is normalised on its own, not with the whole batch.")
eps_case = group_normalized_advantages(torch.tensor([0.0, 2.0], dtype=torch.float64), 2, eps=0.5)
check_close(eps_case, torch.tensor([-1.0, 1.0]) / (math.sqrt(2.0) + 0.5), "the advantages with a non-default eps",
            hint="eps is added to the std, outside the square root.")
r = torch.tensor([3.0, 1.0, 2.0, 5.0, 5.0, 9.0], requires_grad=True)
out = group_normalized_advantages(r, 3)
check(not out.requires_grad, "advantages are constants: detach the rewards.")
check_raises(lambda: group_normalized_advantages(torch.zeros(6), 4), ValueError,
             "group_normalized_advantages when group_size does not divide the number of rewards")
### END HIDDEN TESTS


# %% cell 17 rloo_advantages
def rloo_advantages(rewards, group_size):
    """A_i = r_i - (1/(G-1)) * sum_{j != i} r_j over consecutive groups of G = group_size rows.

    rewards: (B,) with B = n_prompts * G -> (B,); no gradient; G < 2 or G not dividing B raises ValueError.
    """
    ### BEGIN SOLUTION
    if group_size < 2 or rewards.shape[0] % group_size != 0:
        raise ValueError(f"group_size {group_size} must be at least 2 and divide the batch of {rewards.shape[0]}")
    groups = rewards.detach().reshape(-1, group_size)
    others_mean = (groups.sum(dim=1, keepdim=True) - groups) / (group_size - 1)
    return (groups - others_mean).reshape(-1)
    ### END SOLUTION


# %% cell 18 test_rloo_advantages
check_own_function(rloo_advantages, "rloo_advantages")
rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
adv = rloo_advantages(rewards, 4)
check_shape(adv, (8,), "rloo_advantages(rewards, 4)")
# group 1: the success against 0, each failure against (1 + 0 + 0) / 3; group 2: against 1/3 and 2/3
expected = torch.tensor([1.0, -1 / 3, -1 / 3, -1 / 3, 2 / 3, 2 / 3, -2 / 3, -2 / 3])
check_close(adv, expected, "the leave-one-out advantages", atol=1e-6,
            hint="each answer's baseline is the mean of the OTHER G - 1 rewards of its group, not of all G.")


# %% cell 19 test_rloo_advantages_hidden
check_own_function(rloo_advantages, "rloo_advantages")
check_shape(rloo_advantages(torch.tensor([0.0, 1.0]), 2), (2,), "rloo_advantages")
### BEGIN HIDDEN TESTS
pair = rloo_advantages(torch.tensor([3.0, 1.0], dtype=torch.float64), 2)
check_close(pair, torch.tensor([2.0, -2.0], dtype=torch.float64), "the leave-one-out advantages of a group of two",
            hint="with G = 2 the other answer is the whole baseline: A_1 = r_1 - r_2.")
r = torch.tensor([0.5, 2.0, -1.0, 4.0, 4.0, 0.0])
check_close(rloo_advantages(r, 3), (r.reshape(2, 3) - r.reshape(2, 3).mean(1, keepdim=True)).reshape(-1) * 3 / 2,
            "the leave-one-out advantages of groups of three",
            hint="leave-one-out equals G / (G - 1) times (r - group mean): divide the others' sum by G - 1, not G.")
strided = rloo_advantages(torch.tensor([0.0, 0.0, 1.0, 1.0]), 2)
check_close(strided, torch.zeros(4), "the advantages when every group is uniform but the groups differ",
            hint="groups are consecutive blocks of group_size rows, not every group_size-th row.")
g = torch.tensor([1.0, 0.0, 1.0, 0.0], requires_grad=True)
check(not rloo_advantages(g, 2).requires_grad, "advantages are constants: detach the rewards.")
check_raises(lambda: rloo_advantages(torch.zeros(4), 1), ValueError,
             "rloo_advantages with groups of one answer (no other answer to leave in)")
check_raises(lambda: rloo_advantages(torch.zeros(6), 4), ValueError,
             "rloo_advantages when group_size does not divide the number of rewards")
### END HIDDEN TESTS


# %% cell 21 kl_k3
def kl_k3(logps, ref_logps):
    """k3 = exp(x) - x - 1 with x = ref_logps - logps, per token.

    logps, ref_logps: (B, T) -> (B, T); >= 0, exactly 0 where equal, accurate for |x| ~ 1e-8, finite for |x| = 50.
    """
    ### BEGIN SOLUTION
    if logps.shape != ref_logps.shape:
        raise ValueError(f"logps {tuple(logps.shape)} and ref_logps {tuple(ref_logps.shape)} must have the same shape")
    if logps.dtype in (torch.float16, torch.bfloat16):
        logps, ref_logps = logps.float(), ref_logps.float()
    x = ref_logps - logps
    taylor = x * x * (0.5 + x / 6 + x * x / 24)
    return torch.where(x.abs() < 1e-2, taylor, torch.expm1(x) - x)
    ### END SOLUTION


# %% cell 22 test_kl_k3
check_own_function(kl_k3, "kl_k3")
logps = torch.tensor([[0.0, -1.0, -2.0]])
ref = torch.tensor([[0.0, -2.0, -1.0]])
out = kl_k3(logps, ref)
check_shape(out, (1, 3), "kl_k3(logps, ref_logps)")
# x = ref - logp = 0, -1, +1  ->  e^x - x - 1 = 0, e^-1, e - 2
check_close(out, torch.tensor([[0.0, math.exp(-1.0), math.e - 2.0]]), "k3 for x = ref - logp = (0, -1, 1)",
            hint="x is ref_logps - logps (not the other way round); k3 = exp(x) - x - 1.")
g = torch.Generator().manual_seed(0)
a, b = torch.randn(4, 6, generator=g) * 2, torch.randn(4, 6, generator=g) * 2
check(bool((kl_k3(a, b) >= 0).all()), "k3 should never be negative.")


# %% cell 23 test_kl_k3_hidden
check_own_function(kl_k3, "kl_k3")
check_shape(kl_k3(torch.zeros(1, 2), torch.zeros(1, 2)), (1, 2), "kl_k3")
### BEGIN HIDDEN TESTS
lp = torch.zeros(1, 4, dtype=torch.float64)
ref = torch.tensor([[1e-8, -1e-8, 1e-5, -3e-4]], dtype=torch.float64)
x = ref
expected = x * x / 2 + x ** 3 / 6 + x ** 4 / 24
check_close(kl_k3(lp, ref), expected, "k3 for tiny differences (float64)", atol=1e-30, rtol=1e-6,
            hint="exp(x) - x - 1 cancels for tiny x: use torch.expm1(x) - x or the series x^2/2 + x^3/6 + x^4/24.")
big = kl_k3(torch.tensor([[0.0, 0.0]]), torch.tensor([[50.0, -50.0]]))
check_close(big, torch.tensor([[math.exp(50.0) - 51.0, 49.0 + math.exp(-50.0)]]),
            "k3 for large differences of either sign", rtol=1e-5,
            hint="k3 = exp(x) - x - 1 with x = ref_logps - logps (reference minus policy, not the reverse).")
g = torch.Generator().manual_seed(1)
base = torch.randn(64, 64, generator=g) * 3
small = kl_k3(base, base + torch.randn(64, 64, generator=g) * 1e-4)
check(bool((small >= 0).all()), "k3 went negative for small differences in float32: exp(x) - x - 1 cancels; "
                                "use expm1 or a series.")
same = kl_k3(base, base.clone())
check(bool((same == 0).all()), "k3 should be exactly 0 where logps == ref_logps.")
# gradient: d k3 / d logps = 1 - exp(x)
lpg = torch.tensor([[-1.0, -0.3]], dtype=torch.float64, requires_grad=True)
refg = torch.tensor([[-0.5, -0.9]], dtype=torch.float64)
kl_k3(lpg, refg).sum().backward()
check_close(lpg.grad, 1 - torch.exp(refg - lpg.detach()), "the gradient of k3 with respect to logps",
            hint="d k3 / d logps = 1 - exp(ref_logps - logps): compute k3 from logps without detaching them.")
check_raises(lambda: kl_k3(torch.zeros(2, 3), torch.zeros(3, 2)), ValueError,
             "kl_k3 with logps and ref_logps of different shapes")
### END HIDDEN TESTS


# %% cell 25
z = torch.tensor([0.5, -1.0, 2.0, 0.0, -0.5], dtype=torch.float64, requires_grad=True)   # the policy's logits
references = {"near": z.detach() + torch.tensor([0.1, -0.1, 0.05, 0.0, 0.1], dtype=torch.float64),
              "far": torch.tensor([0.0, 3.0, 0.0, 0.0, 0.0], dtype=torch.float64)}   # favours outcome 1, rare under pi
with needs_your_code():
    for where, ref_logits in references.items():
        logp, ref = torch.log_softmax(z, -1), torch.log_softmax(ref_logits, -1)
        p = logp.exp().detach()                          # sampling weights: constants, like sampled answers
        x = ref - logp
        kl_forward = (logp.exp() * (logp - ref)).sum()   # KL(pi_theta || pi_ref)
        kl_reverse = (ref.exp() * (ref - logp)).sum()    # KL(pi_ref || pi_theta)
        grad = lambda f: torch.autograd.grad(f, z, retain_graph=True)[0]
        g_forward, g_reverse = grad(kl_forward), grad(kl_reverse)
        print(f"reference {where}: KL(pi||ref) = {kl_forward.item():.4f}, KL(ref||pi) = {kl_reverse.item():.4f}")
        print(f"  {'estimator':<12}{'E[k]':>9}{'|E[grad k] - grad KL(pi||ref)|':>33}{'|E[grad k] - grad KL(ref||pi)|':>33}{'Var[k]':>10}")
        for name, k in [("k1 = -x", -x), ("k2 = x^2/2", x * x / 2), ("k3 (yours)", kl_k3(logp[None], ref[None])[0])]:
            mean = (p * k).sum()
            g = grad(mean)
            variance = (p * k.detach() ** 2).sum() - mean.detach() ** 2
            print(f"  {name:<12}{mean.item():>9.4f}{(g - g_forward).norm().item():>33.2e}"
                  f"{(g - g_reverse).norm().item():>33.2e}{variance.item():>10.2e}")


# %% cell 28 grpo_loss
def grpo_loss(logps, old_logps, ref_logps, advantages, mask, clip_eps=0.2, beta=0.04):
    """GRPO loss = -(1/B) sum_i (1/|o_i|) sum_t mask * [min(rho*A_i, clip(rho, 1-eps, 1+eps)*A_i) - beta*k3_t].

    rho = exp(logps - old_logps); k3 = exp(x) - x - 1 with x = ref_logps - logps; |o_i| = sum_t mask[i, t]
    logps, old_logps, ref_logps, mask: (B, T); advantages: (B,) -> scalar.
    """
    ### BEGIN SOLUTION
    if not (logps.shape == old_logps.shape == ref_logps.shape == mask.shape):
        raise ValueError(f"shapes must match: logps {tuple(logps.shape)}, old_logps {tuple(old_logps.shape)}, "
                         f"ref_logps {tuple(ref_logps.shape)}, mask {tuple(mask.shape)}")
    if advantages.shape != (logps.shape[0],):
        raise ValueError(f"advantages has shape {tuple(advantages.shape)}, expected ({logps.shape[0]},)")
    if logps.dtype in (torch.float16, torch.bfloat16):  # the exp in float32
        logps, old_logps, ref_logps = logps.float(), old_logps.float(), ref_logps.float()
    mask = mask.to(logps.dtype)
    ratio = torch.exp(logps - old_logps.detach())
    adv = advantages.detach().unsqueeze(1)
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
    x = ref_logps.detach() - logps
    k3 = torch.where(x.abs() < 1e-2, x * x * (0.5 + x / 6 + x * x / 24), torch.expm1(x) - x)
    per_token = surrogate - beta * k3
    lengths = mask.sum(dim=1).clamp(min=1)
    return -((per_token * mask).sum(dim=1) / lengths).mean()
    ### END SOLUTION


# %% cell 29 grpo_by_hand
# course code for the two test cells below: the GRPO objective and its gradient, written out from the formula

def grpo_by_hand(logps, old, ref, adv, mask, eps=0.2, beta=0.04):
    """Plain-Python GRPO objective and its gradient (lists of floats), from the formula."""
    B = len(logps)
    loss, grad = 0.0, [[0.0] * len(row) for row in logps]
    for i in range(B):
        n = sum(mask[i])
        for t in range(len(logps[i])):
            if not mask[i][t]:
                continue
            rho = math.exp(logps[i][t] - old[i][t])
            clipped = min(max(rho, 1 - eps), 1 + eps)
            surrogate = min(rho * adv[i], clipped * adv[i])
            x = ref[i][t] - logps[i][t]
            k3 = math.exp(x) - x - 1
            loss -= (surrogate - beta * k3) / n / B
            d_surrogate = rho * adv[i] if (rho * adv[i] <= clipped * adv[i] or 1 - eps <= rho <= 1 + eps) else 0.0
            grad[i][t] = -(d_surrogate - beta * (1 - math.exp(x))) / n / B
    return loss, grad


# %% cell 30 test_grpo_loss
check_own_function(grpo_loss, "grpo_loss")

L = [[-1.0, -0.5, -2.0], [-0.3, -1.2, -0.7]]
O = [[-1.2, -0.5, -9.0], [-0.3, -1.0, -1.0]]
R = [[-1.1, -0.4, -2.0], [-0.5, -1.2, -0.2]]
M = [[1, 1, 0], [1, 1, 1]]
A = [1.0, -0.5]
logps = torch.tensor(L, requires_grad=True)
loss = grpo_loss(logps, torch.tensor(O), torch.tensor(R), torch.tensor(A), torch.tensor(M, dtype=torch.float32))
check_scalar(loss, "grpo_loss(...)")
expected, expected_grad = grpo_by_hand(L, O, R, A, M)
check_close(loss, torch.tensor(expected), "the GRPO loss",
            hint="-(1/B) sum_i (1/|o_i|) sum_t mask*[min(rho*A_i, clip(rho)*A_i) - beta*k3]; "
                 "each answer is averaged over its own length, then answers are averaged.")
loss.backward()
check_close(logps.grad, torch.tensor(expected_grad), "the gradient with respect to logps",
            hint="the clipped token (ratio 1.22 > 1.2 with A > 0) should only feel the KL term.")


# %% cell 31 test_grpo_loss_hidden
check_own_function(grpo_loss, "grpo_loss")

check_scalar(grpo_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1), torch.ones(1, 2)), "grpo_loss")
### BEGIN HIDDEN TESTS
# answers of very different lengths: token-mean and per-sequence normalisation differ
L = [[-1.0, -1.0, -1.0, -1.0, -1.0, -1.0], [-2.0, -2.0, -2.0, -2.0, -2.0, -2.0]]
O = [[-1.1, -0.9, -1.0, -1.3, -1.0, -1.0], [-2.0, -2.1, -2.0, -2.0, -2.0, -2.0]]
R = [[-0.8, -1.0, -1.5, -1.0, -1.0, -1.0], [-2.0, -1.0, -2.0, -2.0, -2.0, -2.0]]
M = [[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]]
A = [-1.0, 2.0]
expected, _ = grpo_by_hand(L, O, R, A, M, eps=0.1, beta=0.5)
logps = torch.tensor(L, dtype=torch.float64, requires_grad=True)
old = torch.tensor(O, dtype=torch.float64, requires_grad=True)
ref = torch.tensor(R, dtype=torch.float64, requires_grad=True)
adv = torch.tensor(A, dtype=torch.float64, requires_grad=True)
loss = grpo_loss(logps, old, ref, adv, torch.tensor(M).bool(), clip_eps=0.1, beta=0.5)
check_close(loss, torch.tensor(expected),
            "the GRPO loss for answers of very different lengths (non-default clip_eps and beta)",
            hint="divide each answer's token sum by its own length |o_i| (not by the total number of tokens), "
                 "and subtract beta*k3 inside the bracket.")
loss.backward()
check_no_grad(old, "old_logps")
check_no_grad(ref, "ref_logps")
check_no_grad(adv, "advantages")
# masked-out positions never matter
L2 = [[-1.0, -1.0, -1.0, -1.0, -1.0, -1.0], [-2.0, -2.0, 7.0, 7.0, 7.0, 7.0]]
again = grpo_loss(torch.tensor(L2, dtype=torch.float64), torch.tensor(O, dtype=torch.float64),
                  torch.tensor(R, dtype=torch.float64), torch.tensor(A, dtype=torch.float64),
                  torch.tensor(M, dtype=torch.float64), clip_eps=0.1, beta=0.5)
check_close(again, torch.tensor(expected), "the GRPO loss after changing masked-out log-probs")
# defaults: clip_eps=0.2, beta=0.04
e2, _ = grpo_by_hand(L, O, R, A, M)
check_close(grpo_loss(torch.tensor(L), torch.tensor(O), torch.tensor(R), torch.tensor(A), torch.tensor(M, dtype=torch.float32)),
            torch.tensor(e2), "the GRPO loss with the default clip_eps and beta")
check_raises(lambda: grpo_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3)),
             ValueError, "grpo_loss with per-token advantages: advantages are one per answer, shape (B,)")
check_raises(lambda: grpo_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2), torch.ones(2, 3)),
             ValueError, "grpo_loss with ref_logps of a different shape than logps")
### END HIDDEN TESTS


# %% cell 33
train_problems = load_problems("train")
eval_problems = load_problems("heldout")[:N_EVAL]


def centred_advantages(rewards, group_size):
    """Dr. GRPO: r - mean(group), no std scaling."""
    groups = rewards.reshape(-1, group_size)
    return (groups - groups.mean(dim=1, keepdim=True)).reshape(-1)


def constant_length_grpo_loss(logps, old_logps, ref_logps, advantages, mask, clip_eps, beta):
    """Dr. GRPO: the same bracket as grpo_loss, summed over tokens and divided by a constant, not by |o_i|."""
    ratio = torch.exp(logps - old_logps)
    adv = advantages.unsqueeze(1)
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    per_token = surrogate - beta * kl_k3(logps, ref_logps)
    return -(per_token * mask).sum() / (logps.shape[0] * MAX_NEW_TOKENS)


@torch.no_grad()
def evaluate(policy):
    """One sample per held-out problem: (accuracy, share of answers that stop one step short)."""
    texts = sample_completions(policy, tok, [p.prompt for p in eval_problems], MAX_NEW_TOKENS).texts
    correct = answer_rewards(texts, [p.answer for p in eval_problems]).mean().item()
    return correct, sum(map(stops_short, texts)) / len(texts)


seed_everything(SEED)
base = evaluate(policy0)
print(f"pre-trained, on {len(eval_problems)} held-out problems: accuracy {base[0]:.1%}, "
      f"answers that stop one step short {base[1]:.1%}")


def sample_and_score(policy, rng):
    """Steps 1 and 2 of both methods: GROUP_SIZE answers to each of PROMPTS_PER_STEP training problems
    (consecutive rows share a problem), scored by your verifiable reward: (rollout, rewards (B,))."""
    problems = rng.sample(train_problems, PROMPTS_PER_STEP)
    rollout = sample_completions(policy, tok, [p.prompt for p in problems], MAX_NEW_TOKENS, num_samples=GROUP_SIZE)
    answers = [p.answer for p in problems for _ in range(GROUP_SIZE)]
    return rollout, rollout_rewards(rollout, answer_reward, answers)       # rewards on the policy's device


def grpo_update(policy, opt, rollout, rewards):
    """Steps 3 and 4 of GRPO: group-relative advantages, then INNER_STEPS clipped steps on the batch.

    Returns the update's trust region: KL(before || after) per token and the share of tokens whose
    ratio ended outside the clip range (trust_region_stats), and the mean gradient norm before clipping."""
    mask = rollout.completion_mask
    # 3. group-relative advantages; the reference's log-probs, once per batch
    advantages = {"group_std": group_normalized_advantages, "centred": centred_advantages,
                  "rloo": rloo_advantages}[ADVANTAGES](rewards, GROUP_SIZE)
    with torch.no_grad():
        ref_logps = completion_logps(policy0, rollout)
    # 4. a few clipped steps; the old log-probs are the first step's (the policy has not moved yet)
    norms = []
    for inner in range(INNER_STEPS):
        logps = token_log_probs(completion_logits(policy, rollout), rollout.completion_ids)
        if inner == 0:
            old_logps = logps.detach()
        if LENGTH_NORM == "sequence":
            loss = grpo_loss(logps, old_logps, ref_logps, advantages, mask, CLIP_EPS, BETA)
        else:
            loss = constant_length_grpo_loss(logps, old_logps, ref_logps, advantages, mask, CLIP_EPS, BETA)
        norms.append(optimizer_step(opt, loss, MAX_GRAD_NORM))
    # 5. how far the update moved the policy, on the samples it learned from
    with torch.no_grad():
        moved = trust_region_stats(old_logps, completion_logps(policy, rollout), mask, CLIP_EPS)
    return {**moved, "grad_norm": sum(norms) / len(norms)}


def rft_update(policy, opt, rollout, rewards):
    """Rejection fine-tuning: keep the correct answers, INNER_STEPS SFT steps on them."""
    keep = torch.nonzero(rewards > 0).squeeze(1)
    if len(keep) == 0:
        return
    kept = subset(rollout, keep)
    for _ in range(INNER_STEPS):
        logps = token_log_probs(completion_logits(policy, kept), kept.completion_ids)
        optimizer_step(opt, sft_loss(logps, kept.completion_mask), MAX_GRAD_NORM)


def train(update, name, steps=STEPS, seed=SEED):
    """The outer loop of both methods: sample, score, update (GRPO's or RFT's), evaluate every EVAL_EVERY steps.
    Returns the policy and its history: per step the training reward and the share of dead groups (all
    answers equally rewarded: zero advantage), [(step, held-out accuracy, share stopping short)], samples drawn,
    and per step whatever the update returns (GRPO's trust region)."""
    seed_everything(seed)
    rng = random.Random(seed)
    policy = trainable_copy(policy0)
    opt = torch.optim.Adam(policy.parameters(), lr=LR)
    history = {"training reward": [], "dead groups": [], "held-out": [(0, *base)], "samples": 0}
    for step in tqdm(range(1, steps + 1), desc=name):
        rollout, rewards = sample_and_score(policy, rng)                   # 1. sample  2. score
        groups = rewards.reshape(-1, GROUP_SIZE)
        history["samples"] += len(rollout)
        history["training reward"].append(rewards.mean().item())
        history["dead groups"].append((groups.max(1).values == groups.min(1).values).float().mean().item())
        stats = update(policy, opt, rollout, rewards)                     # 3. advantages  4. update
        for key, value in (stats or {}).items():
            history.setdefault(key, []).append(value)
        if step % EVAL_EVERY == 0 or step == steps:
            history["held-out"].append((step, *evaluate(policy)))
    policy.eval()
    return policy, history


with needs_your_code() as grpo_run:
    grpo_policy, grpo_history = train(grpo_update, "GRPO")
    rft_policy, rft_history = train(rft_update, "RFT")


# %% cell 34
grpo_run.require()
grpo_curve, rft_curve = grpo_history["held-out"], rft_history["held-out"]
fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
for name, history in [("GRPO", grpo_history), ("RFT", rft_history)]:
    plot_curve(axes[0], history["training reward"], label=name, window=10)
    plot_curve(axes[2], history["dead groups"], label=name, window=10)
axes[0].set_xlabel("step"); axes[0].set_ylabel("training reward (fraction correct)"); axes[0].legend()
for name, curve in [("GRPO", grpo_curve), ("RFT", rft_curve)]:
    x = [s * PROMPTS_PER_STEP * GROUP_SIZE for s, _, _ in curve]
    line, = axes[1].plot(x, [a for _, a, _ in curve], marker="o", label=f"{name}: accuracy")
    axes[1].plot(x, [short for _, _, short in curve], ls="--", color=line.get_color(), label=f"{name}: stops short")
axes[1].set_xlabel("samples drawn"); axes[1].set_ylabel("share of held-out answers"); axes[1].legend(fontsize=8)
axes[1].set_title(f"ADVANTAGES={ADVANTAGES!r}, LENGTH_NORM={LENGTH_NORM!r}")
axes[2].set_xlabel("step"); axes[2].set_ylabel(f"groups of {GROUP_SIZE} all right or all wrong"); axes[2].legend()
plt.tight_layout(); plt.show()

print(f"samples: GRPO {grpo_history['samples']}, RFT {rft_history['samples']}")
print(f"held-out accuracy: pre-trained {base[0]:.1%}, GRPO {grpo_curve[-1][1]:.1%}, RFT {rft_curve[-1][1]:.1%}")
print(f"answers that stop short: pre-trained {base[1]:.1%}, GRPO {grpo_curve[-1][2]:.1%}, RFT {rft_curve[-1][2]:.1%}")
tail = max(1, STEPS // 5)
dead_start = sum(grpo_history["dead groups"][:tail]) / tail
dead_end = sum(grpo_history["dead groups"][-tail:]) / tail
print(f"GRPO's dead groups (no gradient): {dead_start:.0%} of the first {tail} steps' groups, {dead_end:.0%} of the last {tail}'s")
problem = eval_problems[0]
print("\n" + problem.prompt)
print("  GRPO:", sample_completions(grpo_policy, tok, [problem.prompt], MAX_NEW_TOKENS).texts[0], f"(answer {problem.answer})")
fig, axes = plt.subplots(1, 3, figsize=(15, 3))
for ax, key, label in zip(axes, ["kl", "clip_fraction", "grad_norm"],
                          ["KL(before || after) per token", "share of tokens outside the clip range",
                           "gradient norm (before clipping)"]):
    plot_curve(ax, grpo_history[key], window=10)
    ax.set_xlabel("GRPO update"); ax.set_ylabel(label, fontsize=9)
axes[0].set_title("GRPO's trust region, per update", fontsize=9)
plt.tight_layout(); plt.show()
print("GRPO's trust region, means over the run: " + ", ".join(
    f"{key} {sum(grpo_history[key]) / len(grpo_history[key]):.4f}" for key in ["kl", "clip_fraction", "grad_norm"]))
report("heldout_accuracy_before", base[0])
report("heldout_accuracy_grpo", grpo_curve[-1][1])
report("heldout_accuracy_rft", rft_curve[-1][1])
report("grpo_gain_points", 100 * (grpo_curve[-1][1] - base[0]), ".1f")
report("stops_short_before", base[1])
report("stops_short_grpo", grpo_curve[-1][2])
report("stops_short_rft", rft_curve[-1][2])
report("grpo_dead_groups_first_steps", dead_start)
report("grpo_dead_groups_last_steps", dead_end)


# %% cell 36
@torch.no_grad()
def accuracy_by_kind(policy):
    """Held-out accuracy on unseen templates and on unseen start numbers, and the share of
    unseen-start answers whose first number is not the problem's start (a miscopied start)."""
    texts = sample_completions(policy, tok, [p.prompt for p in eval_problems], MAX_NEW_TOKENS).texts
    correct = answer_rewards(texts, [p.answer for p in eval_problems]).tolist()
    kinds = {"unseen template": [], "unseen start": [], "miscopied start": []}
    for problem, text, r in zip(eval_problems, texts, correct):
        if problem.start in HELDOUT_STARTS:
            first = re.search(r"-?\d+", text)
            kinds["unseen start"].append(r)
            kinds["miscopied start"].append(float(first is None or int(first.group()) != problem.start))
        else:
            kinds["unseen template"].append(r)
    return {kind: sum(values) / max(len(values), 1) for kind, values in kinds.items()}


grpo_run.require()
seed_everything(SEED)
table = {name: accuracy_by_kind(policy) for name, policy in
         [("pre-trained", policy0), ("GRPO", grpo_policy), ("RFT", rft_policy)]}
print(" " * 12 + "".join(f"{kind:>18}" for kind in table["GRPO"]))
for name, row in table.items():
    print(f"{name:<12}" + "".join(f"{value:>18.1%}" for value in row.values()))
for name, row in table.items():
    for kind, value in row.items():
        report(f"{name.replace('-', '')}_{kind.replace(' ', '_')}".lower(), value)


# %% cell 38 pass_at_k
def pass_at_k(n, c, k):
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k/i).

    Exactly 1.0 when n - c < k; no factorials (fine for n = 1000); k > n, c > n or a negative argument -> ValueError.
    """
    ### BEGIN SOLUTION
    if min(n, c, k) < 0 or k > n or c > n:
        raise ValueError(f"need 0 <= c <= n and 0 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    none_correct = 1.0
    for i in range(n - c + 1, n + 1):
        none_correct *= 1.0 - k / i
    return float(1.0 - none_correct)
    ### END SOLUTION


# %% cell 39 test_pass_at_k
check_own_function(pass_at_k, "pass_at_k")
check_float(pass_at_k(10, 3, 1), 0.3, "pass_at_k(10, 3, 1)", tol=1e-12,
            hint="pass@1 is the share of correct samples, c / n.")
check_float(pass_at_k(4, 2, 2), 1 - 1 / 6, "pass_at_k(4, 2, 2)", tol=1e-12,
            hint="1 - C(n-c, k) / C(n, k) = 1 - C(2, 2) / C(4, 2) = 1 - 1/6: choose k of the n samples, without replacement.")
check_float(pass_at_k(5, 0, 3), 0.0, "pass_at_k with no correct sample", tol=1e-12)


# %% cell 40 test_pass_at_k_hidden
check_own_function(pass_at_k, "pass_at_k")
check(0.0 <= pass_at_k(8, 1, 2) <= 1.0, "pass_at_k should be a probability.")
### BEGIN HIDDEN TESTS
from fractions import Fraction
from math import comb

check_float(pass_at_k(10, 3, 4), float(1 - Fraction(comb(7, 4), comb(10, 4))), "pass_at_k for k > 1", tol=1e-12,
            hint="the estimator chooses k of the n samples without replacement: 1 - C(n-c, k) / C(n, k), "
                 "not 1 - (1 - c/n)^k.")
check(pass_at_k(5, 3, 3) == 1.0, "When fewer than k samples are wrong, every choice of k samples holds a correct one: "
                                 "pass@k is exactly 1.0.")
check_float(pass_at_k(1000, 10, 100), float(1 - Fraction(comb(990, 100), comb(1000, 100))),
            "pass_at_k for n = 1000", tol=1e-9,
            hint="factorials of 1000 overflow a float: use the product of (1 - k/i) for i from n-c+1 to n.")
check_float(pass_at_k(6, 2, 0), 0.0, "pass_at_k with k = 0", tol=1e-12, hint="no sample drawn, no success: 0.0.")
check(type(pass_at_k(10, 3, 2)) is float, "pass_at_k should return a Python float.")
check_raises(lambda: pass_at_k(4, 1, 5), ValueError, "pass_at_k with k larger than n")
check_raises(lambda: pass_at_k(4, 5, 1), ValueError, "pass_at_k with more correct samples than samples")
check_raises(lambda: pass_at_k(4, -1, 1), ValueError, "pass_at_k with a negative count")
### END HIDDEN TESTS


# %% cell 42
grpo_run.require()
passk_problems = eval_problems[:PASSK_PROBLEMS]
ks = [k for k in (1, 2, 4, 8, 16, 32) if k <= PASSK_SAMPLES]


@torch.no_grad()
def correct_counts(policy, temperature):
    """Correct answers out of PASSK_SAMPLES for each problem."""
    rollout = sample_completions(policy, tok, [p.prompt for p in passk_problems], MAX_NEW_TOKENS,
                                 temperature=temperature, num_samples=PASSK_SAMPLES)
    answers = [p.answer for p in passk_problems for _ in range(PASSK_SAMPLES)]
    return answer_rewards(rollout.texts, answers).reshape(-1, PASSK_SAMPLES).sum(-1).int().tolist()


seed_everything(PASSK_SEED)
arms = {"pre-trained, T = 1": (policy0, 1.0), f"pre-trained, T = {LOW_TEMPERATURE}": (policy0, LOW_TEMPERATURE),
        "GRPO, T = 1": (grpo_policy, 1.0), "RFT, T = 1": (rft_policy, 1.0)}
with needs_your_code():
    curves = {}
    for name, (policy, temperature) in arms.items():
        counts = correct_counts(policy, temperature)
        curves[name] = [sum(pass_at_k(PASSK_SAMPLES, c, k) for c in counts) / len(counts) for k in ks]
fig, ax = plt.subplots(figsize=(5.5, 3.4))
for name, values in curves.items():
    ax.plot(ks, values, marker="o", label=name)
ax.set_xscale("log", base=2); ax.set_xticks(ks, [str(k) for k in ks])
ax.set_xlabel("k"); ax.set_ylabel(f"pass@k ({len(passk_problems)} held-out problems)"); ax.legend(fontsize=8)
plt.show()
print(f"{'':24s}" + "".join(f"{'pass@' + str(k):>10s}" for k in ks))
for name, values in curves.items():
    print(f"{name:24s}" + "".join(f"{v:>10.1%}" for v in values))
for name, values in curves.items():
    arm = name.split(",")[0].replace("-", "").lower() + ("_low_t" if "T = 1" not in name else "")
    report(f"pass_at_1_{arm}", values[0])
    report(f"pass_at_{ks[-1]}_{arm}", values[-1])
report.lessons(policy0)   # how this run did on the notebook's lessons, beside the results ledger
