# The code cells of solutions/07_agents/07_agents.ipynb, written by scripts/release.py: do not edit.
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
import random

import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from rlcourse.agents import (ABSTAIN, abstain_sft_targets, abstain_stats, abstains, abstention_value, answer_samples,
                             calculator_reply, env_gradient_share, evaluate_answers, invented_replies, tool_batch,
                             tool_rollout, tool_segments, tool_solution)
from rlcourse.checks import (check, check_close, check_float, check_own_function, check_raises, check_shape,
                             needs_your_code)
from rlcourse.config import Report, pick
from rlcourse.core import trust_region_stats
from rlcourse.model import load_policy, seed_everything, set_threads, trainable_copy
from rlcourse.optim import optimizer_step
from rlcourse.plots import plot_curve
from rlcourse.problems import HELDOUT_STARTS, load_problems
from rlcourse.reference import answer_reward, group_normalized_advantages, grpo_loss, sft_loss, token_log_probs
from rlcourse.rewards import rollout_rewards
from rlcourse.rollout import batch_from_texts, completion_logits, completion_logps

set_threads()

# ---- config: every knob of this notebook ----
MODEL_NAME = "tiny"           # or "course-gpt2" (build it on a GPU), "gpt2", "distilgpt2": README, "On a GPU"
SEED = 0
EVAL_SEED = SEED + 1         # the same sampling noise for every evaluation
SFT_SEED = SEED + 2          # which SFT prompts abstain (part 2)
ANSWER_TOKENS = 40           # part 1, either arm: the longest worked solution is 26 tokens with calls, 23 without
PLAIN_TOKENS = 28            # part 2, answers without calls (as in notebook 05)
MAX_GRAD_NORM = 1.0

# part 1: the calculator
SFT_STEPS = pick(40, 2)      # each warm start: worked solutions, with calls or without
SFT_BATCH = pick(16, 4)
SFT_LR = 5e-4 if MODEL_NAME == "tiny" else 1e-4   # smaller steps for a larger policy (README, "Bigger policies")
STEPS = pick(16, 2)          # GRPO updates per run
PROMPTS_PER_STEP = pick(8, 2)
GROUP_SIZE = pick(8, 4)
INNER_STEPS = 2
LR = 2e-4 if MODEL_NAME == "tiny" else 3e-5
CLIP_EPS = 0.2
BETA = 0.04
N_EVAL = pick(200, 16)       # held-out problems per evaluation, one answer each

# part 2: abstention (no tool)
ABSTAIN_SHARE = 0.3          # share of SFT prompts whose target is the abstain phrase
ABSTAIN_SFT_STEPS = pick(150, 2)  # the phrase is ten tokens rare in pre-training: 60 steps left it garbled
ABSTAIN_SFT_LR = 1e-3 if MODEL_NAME == "tiny" else 1.5e-4
PENALTIES = (0.5, 1.0, 3.0)  # wrong_penalty of the three GRPO runs
ABSTAIN_STEPS = pick(80, 2)  # at 48, RL with w = 1/2 beat always answering in only 4 of 5 seeds
N_CALIBRATION = pick(160, 8)  # held-out problems we measure; part 2's GRPO draws from the other held-out problems
FORCED_SAMPLES = pick(16, 4)  # answers per problem with abstaining forbidden: the policy's own P(correct)
SAMPLES_PER_PROBLEM = pick(8, 4)   # free answers per problem: how often the policy abstains, and its reward
N_TRAIN_CHECK = pick(64, 8)  # training problems on which we also measure the SFT policy

report = Report("07_agents")


# %% cell 4
policy0, tok = load_policy(MODEL_NAME)          # the pre-trained policy
for p in policy0.parameters():
    p.requires_grad_(False)
train_problems = load_problems("train")
eval_problems = load_problems("heldout")[:N_EVAL]

problem = train_problems[0]
print(problem.prompt + tool_solution(problem))
for expression in ["10 / 2", "2 * (3 + 4) - -1", "7 / 2", "4 +", "twelve"]:
    print(f"calculator({expression!r}) ->{calculator_reply(expression)!r}")

seed_everything(SEED)
rollout, env_mask = tool_rollout(policy0, tok, [problem.prompt], ANSWER_TOKENS)
print("\nthe pre-trained policy, with the calculator listening:", repr(rollout.texts[0]))
batch, env = tool_batch(tok, [problem.prompt], [tool_segments(problem)], device=policy0.device)
pieces = [tok.decode([t]) for t in batch.completion_ids[0].tolist()]
print("tokens the environment wrote:", [piece for piece, e in zip(pieces, env[0].tolist()) if e])


# %% cell 6 action_mask
def action_mask(completion_mask, env_mask):
    """m_action = completion_mask * (1 - env_mask): 1 on the policy's tokens, 0 on tool output and padding.

    completion_mask, env_mask: (B, T), 0/1, bool or float -> (B, T) float; ValueError when the shapes differ.
    """
    ### BEGIN SOLUTION
    if tuple(completion_mask.shape) != tuple(env_mask.shape):
        raise ValueError(f"completion_mask {tuple(completion_mask.shape)} and env_mask {tuple(env_mask.shape)} "
                         "must have the same shape")
    dtype = torch.promote_types(completion_mask.dtype, env_mask.dtype)
    dtype = dtype if dtype.is_floating_point else torch.float32
    return completion_mask.to(dtype) * (1 - env_mask.to(dtype))
    ### END SOLUTION


# %% cell 7 test_action_mask
check_own_function(action_mask, "action_mask")
# one answer "10 / 2 =? 5. <EOS>" as tokens: 4 policy tokens, 2 calculator tokens, EOS, then padding
completion = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]])
env = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]])
out = action_mask(completion, env)
check_shape(out, (1, 8), "action_mask(completion_mask, env_mask)")
check(out.is_floating_point(), "action_mask should return a float tensor (it multiplies log-probs).")
check_close(out[0, 4:6], torch.zeros(2), "the mask on the calculator's tokens",
            hint="tokens the environment wrote are not actions: 1 - env_mask is 0 there.")
check_close(out, torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]]), "the action mask",
            hint="completion_mask * (1 - env_mask): the policy's tokens (EOS included) stay 1, padding stays 0.")


# %% cell 8 test_action_mask_hidden
check_own_function(action_mask, "action_mask")
check_shape(action_mask(torch.ones(2, 3), torch.zeros(2, 3)), (2, 3), "action_mask")
### BEGIN HIDDEN TESTS
completion = torch.tensor([[True, True, True, True, False], [True, True, True, True, True]])
env = torch.tensor([[False, True, False, False, False], [False, False, True, True, False]])
out = action_mask(completion, env)
check(out.is_floating_point(), "action_mask of bool masks should return a float tensor, not a bool one.")
check_close(out, torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0, 1.0]]),
            "the action mask of bool inputs with several tool replies",
            hint="convert both masks to float, then completion_mask * (1 - env_mask).")
odd = action_mask(torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[0.0, 1.0, 1.0]]))
check_close(odd, torch.tensor([[1.0, 0.0, 0.0]]), "the action mask where env_mask is 1 on a padding position",
            hint="a product, not a difference: padding must stay 0 whatever env_mask says (never -1).")
wide = action_mask(torch.ones(3, 4, dtype=torch.float64), torch.zeros(3, 4, dtype=torch.float64))
check_close(wide, torch.ones(3, 4), "the action mask of float64 inputs without tool replies",
            hint="without tool tokens the action mask is the completion mask itself.")
check_raises(lambda: action_mask(torch.ones(2, 5), torch.zeros(2, 4)), ValueError,
             "action_mask with masks of different widths")
check_raises(lambda: action_mask(torch.ones(2, 4), torch.zeros(1, 4)), ValueError,
             "action_mask with masks that would broadcast")
### END HIDDEN TESTS


# %% cell 10
def train_sft(start, make_batch, steps, lr, seed=SEED, desc="SFT"):
    """SFT (notebook 00) from a copy of `start`: make_batch(rng) -> (batch, mask of the target tokens, env_mask).

    env_mask is None for transcripts without calculator replies. Returns the policy and its history:
    the loss per step, the problems of each step, and the calculator tokens' share of the gradient
    norm per step (when there are such tokens).
    """
    seed_everything(seed)
    rng = random.Random(seed)
    policy = trainable_copy(start)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    history = {"loss": [], "problems": [], "env_grad_share": []}
    for _ in tqdm(range(steps), desc=desc):
        batch, mask, env_mask = make_batch(rng)
        logps = token_log_probs(completion_logits(policy, batch), batch.completion_ids)
        loss = sft_loss(logps, mask)
        if env_mask is not None:
            history["env_grad_share"].append(env_gradient_share(loss, logps, env_mask, policy))
        optimizer_step(opt, loss, MAX_GRAD_NORM)
        history["loss"].append(loss.item())
        history["problems"].append(batch.prompts)
    policy.eval()
    for p in policy.parameters():
        p.requires_grad_(False)
    return policy, history


def worked_batch(rng, calls, mask_env=True):
    """SFT_BATCH training problems and their correct worked solutions: (batch, target mask, env_mask).

    calls: a calculator call per step (`tool_solution`), or every result written out (notebook 00's
    solution, env_mask None). The targets are the policy's own tokens, or with mask_env=False every
    token of the completion, the calculator's replies included (section 5).
    """
    problems = rng.sample(train_problems, SFT_BATCH)
    segments = [tool_segments(p) if calls else [("policy", p.solution)] for p in problems]
    batch, env_mask = tool_batch(tok, [p.prompt for p in problems], segments, device=policy0.device)
    mask = action_mask(batch.completion_mask, env_mask) if mask_env else batch.completion_mask
    return batch, mask, (env_mask if calls else None)


def mean(values):
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def evaluate(policy, use_tool):
    seed_everything(EVAL_SEED)
    return evaluate_answers(policy, tok, eval_problems, ANSWER_TOKENS, use_tool=use_tool)


with needs_your_code() as sft_run:
    plain_policy, plain_sft = train_sft(policy0, lambda rng: worked_batch(rng, calls=False), SFT_STEPS, SFT_LR,
                                        desc="SFT, no calls")
    tool_policy, tool_sft = train_sft(policy0, lambda rng: worked_batch(rng, calls=True), SFT_STEPS, SFT_LR,
                                      desc="SFT, calls")
assert plain_sft["problems"] == tool_sft["problems"], "the two warm starts should see the same problems"

results = {"pre-trained": evaluate(policy0, use_tool=False),
           "warm start, no calls": evaluate(plain_policy, use_tool=False),
           "warm start, calls, tool": evaluate(tool_policy, use_tool=True)}
seed_everything(EVAL_SEED)
print("a held-out answer with the tool:", tool_rollout(tool_policy, tok, [eval_problems[0].prompt], ANSWER_TOKENS)[0].texts[0])
for name, h in [("no calls", plain_sft), ("calls", tool_sft)]:
    print(f"SFT, {name}: {len(h['loss'])} steps of {len(h['problems'][0])} problems, "
          f"loss {h['loss'][0]:.3f} -> {h['loss'][-1]:.3f}")
for name, stats in results.items():
    print(f"{name:<26} " + "   ".join(f"{k} {v:.3f}" for k, v in stats.items()))


# %% cell 12
def train_grpo(start, reward_fn, steps, use_tool, mask_tool_tokens=True, pool=None, max_new_tokens=ANSWER_TOKENS,
               seed=SEED, desc="GRPO"):
    """GRPO (notebook 05) from a copy of `start`, which is also the KL reference.

    reward_fn(text, problem) -> float; pool: the problems the prompts are drawn from (default: the
    training problems). Returns the policy and its history per update: the mean reward, the problems,
    the trust region (KL old -> new, share of tokens outside the clip range, gradient norm) and the
    calculator tokens' share of the gradient norm (when the samples have such tokens).
    """
    seed_everything(seed)
    rng = random.Random(seed)
    pool = train_problems if pool is None else pool
    policy = trainable_copy(start)
    opt = torch.optim.Adam(policy.parameters(), lr=LR)
    history = {key: [] for key in ("reward", "problems", "kl", "clip_fraction", "grad_norm", "env_grad_share")}
    for _ in tqdm(range(steps), desc=desc):
        # 1. sample a group of answers per problem; the calculator answers the calls
        problems = rng.sample(pool, PROMPTS_PER_STEP)
        rollout, env_mask = tool_rollout(policy, tok, [p.prompt for p in problems], max_new_tokens,
                                         num_samples=GROUP_SIZE, use_tool=use_tool)
        # 2. score every answer
        rewards = rollout_rewards(rollout, reward_fn, [p for p in problems for _ in range(GROUP_SIZE)])
        # 3. advantages relative to the group; the tokens that get gradient; reference log-probs
        advantages = group_normalized_advantages(rewards, GROUP_SIZE)
        mask = action_mask(rollout.completion_mask, env_mask) if mask_tool_tokens else rollout.completion_mask
        with torch.no_grad():
            ref_logps = completion_logps(start, rollout)
        # 4. clipped steps on the batch
        norms = []
        for inner in range(INNER_STEPS):
            logps = token_log_probs(completion_logits(policy, rollout), rollout.completion_ids)
            if inner == 0:
                old_logps = logps.detach()   # the policy has not moved yet
            loss = grpo_loss(logps, old_logps, ref_logps, advantages, mask, CLIP_EPS, BETA)
            if inner == 0 and env_mask.any():
                history["env_grad_share"].append(env_gradient_share(loss, logps, env_mask, policy))
            norms.append(optimizer_step(opt, loss, MAX_GRAD_NORM))
        # 5. the trust region: how far the update moved the policy on its own samples
        with torch.no_grad():
            moved = trust_region_stats(old_logps, completion_logps(policy, rollout), mask, CLIP_EPS)
        history["reward"].append(rewards.mean().item())
        history["problems"].append([p.prompt for p in problems])
        history["kl"].append(moved["kl"])
        history["clip_fraction"].append(moved["clip_fraction"])
        history["grad_norm"].append(sum(norms) / len(norms))
    policy.eval()
    return policy, history


def correct(text, problem):
    return answer_reward(text, problem.answer)


sft_run.require()
with needs_your_code() as grpo_run:
    notool_policy, notool_hist = train_grpo(plain_policy, correct, STEPS, use_tool=False, desc="GRPO, no calls")
    tool_grpo_policy, tool_hist = train_grpo(tool_policy, correct, STEPS, use_tool=True, desc="GRPO, calls")
assert notool_hist["problems"] == tool_hist["problems"], "the two GRPO arms should see the same problems"


# %% cell 13
grpo_run.require()
results["GRPO, no calls"] = evaluate(notool_policy, use_tool=False)
results["GRPO, calls, tool"] = evaluate(tool_grpo_policy, use_tool=True)

fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
for name, hist in [("no calls", notool_hist), ("calls", tool_hist)]:
    for ax, key, label in zip(axes, ["reward", "kl", "clip_fraction", "grad_norm"],
                              ["training reward (fraction correct)", "KL(before || after) per token",
                               "share of tokens outside the clip range", "gradient norm (before clipping)"]):
        plot_curve(ax, hist[key], label=name, window=4 if key == "reward" else 1)
        ax.set_xlabel("GRPO update"); ax.set_ylabel(label, fontsize=8)
axes[0].legend(fontsize=8)
plt.tight_layout(); plt.show()

print(f"budget of each arm: {SFT_STEPS} SFT steps x {SFT_BATCH} problems, then {STEPS} GRPO updates x "
      f"{PROMPTS_PER_STEP} problems x {GROUP_SIZE} answers, at most {ANSWER_TOKENS} tokens per answer")
print(f"{'held-out, one answer each':<28}{'accuracy':>9}{'slips':>8}{'calls':>7}{'carried':>9}")
for name, s in results.items():
    print(f"{name:<28}{s['accuracy']:>9.3f}{s['slip_rate']:>8.3f}{s['calls_per_answer']:>7.2f}{s['carried_forward']:>9.3f}")
for name, hist in [("no calls", notool_hist), ("calls", tool_hist)]:
    print(f"GRPO, {name}: per update, KL {mean(hist['kl']):.4f}, outside the clip range "
          f"{mean(hist['clip_fraction']):.3f}, gradient norm {mean(hist['grad_norm']):.3f} (means over the run)")

report("pretrained_accuracy", results["pre-trained"]["accuracy"])
report("pretrained_slip_rate", results["pre-trained"]["slip_rate"])
for key, name in [("warm_nocalls", "warm start, no calls"), ("warm_calls", "warm start, calls, tool"),
                  ("grpo_nocalls", "GRPO, no calls"), ("grpo_calls", "GRPO, calls, tool")]:
    for stat in ("accuracy", "slip_rate", "calls_per_answer"):
        report(f"{key}_{stat}", results[name][stat])
report("grpo_calls_carried_forward", results["GRPO, calls, tool"]["carried_forward"])
for key, hist in [("grpo_nocalls", notool_hist), ("grpo_calls", tool_hist)]:
    report(f"{key}_kl_per_update", mean(hist["kl"]), ".4f")
    report(f"{key}_clip_fraction", mean(hist["clip_fraction"]))


# %% cell 15
grpo_run.require()
bug_warm, bug_sft = train_sft(policy0, lambda rng: worked_batch(rng, calls=True, mask_env=False), SFT_STEPS, SFT_LR,
                              desc="SFT, calls, env tokens in the loss")
bug_policy, bug_hist = train_grpo(bug_warm, correct, STEPS, use_tool=True, mask_tool_tokens=False,
                                  desc="GRPO, calls, env tokens in the loss")
assert bug_sft["problems"] == tool_sft["problems"] and bug_hist["problems"] == tool_hist["problems"], \
    "the arms should see the same problems"


def nobody_answers(policy):
    """invented_replies of one answer per held-out problem, sampled with nobody answering the calls."""
    seed_everything(EVAL_SEED)
    rollout, _ = tool_rollout(policy, tok, [p.prompt for p in eval_problems], ANSWER_TOKENS, use_tool=False)
    return invented_replies(rollout.texts)


seed_everything(EVAL_SEED)
print("nobody answers (env tokens in the loss):",
      tool_rollout(bug_policy, tok, [eval_problems[0].prompt], ANSWER_TOKENS, use_tool=False)[0].texts[0])
print(f"{'':<24}{'after':<12}{'env share of |grad|':>20}{'invented':>10}{'of them wrong':>15}{'accuracy, tool':>16}")
for arm, runs in [("masked", [("warm start", tool_policy, tool_sft), ("GRPO", tool_grpo_policy, tool_hist)]),
                  ("unmasked", [("warm start", bug_warm, bug_sft), ("GRPO", bug_policy, bug_hist)])]:
    for stage, policy, hist in runs:
        share = mean(hist["env_grad_share"])
        invented = nobody_answers(policy)
        accuracy = evaluate(policy, use_tool=True)["accuracy"]
        name = "action mask" if arm == "masked" else "env tokens in the loss"
        print(f"{name:<24}{stage:<12}{share:>20.3f}{invented['invented']:>10.3f}{invented['invented_wrong']:>15.3f}"
              f"{accuracy:>16.3f}")
        key = f"{arm}_{'warm' if stage == 'warm start' else 'grpo'}"
        report(f"{key}_env_grad_share", share)
        report(f"{key}_invented", invented["invented"])
        report(f"{key}_invented_wrong", invented["invented_wrong"])
        report(f"{key}_tool_accuracy", accuracy)


# %% cell 18 abstain_reward
def abstain_reward(completion, answer, wrong_penalty=1.0):
    """0.0 if the last line contains "I don't know"; else 1.0 if the last integer (-?\\d+) equals answer;
    else -wrong_penalty (also when there is no integer). A Python float."""
    ### BEGIN SOLUTION
    import re

    lines = completion.strip().splitlines()
    if lines and "I don't know" in lines[-1]:
        return 0.0
    numbers = re.findall(r"-?\d+", completion)
    if numbers and int(numbers[-1]) == int(answer):
        return 1.0
    return -float(wrong_penalty)
    ### END SOLUTION


# %% cell 19 test_abstain_reward
check_own_function(abstain_reward, "abstain_reward")
solution = " 10 / 2 = 5. 5 - 1 = 4. The answer is 4."
check_float(abstain_reward(solution, 4), 1.0, "abstain_reward(solution, 4)")
check_float(abstain_reward(solution, 5), -1.0, "abstain_reward(solution, 5)",
            hint="a wrong answer costs -wrong_penalty (default 1.0); only the last integer is the answer.")
check_float(abstain_reward(" I don't know.", 4), 0.0, "abstain_reward(\" I don't know.\", 4)",
            hint="abstaining earns 0: neither the reward of a right answer nor the penalty of a wrong one.")
check_float(abstain_reward(solution, 6, wrong_penalty=3.0), -3.0, "abstain_reward(solution, 6, wrong_penalty=3.0)")


# %% cell 20 test_abstain_reward_hidden
check_own_function(abstain_reward, "abstain_reward")
check(isinstance(abstain_reward("The answer is 2.", 2), float), "abstain_reward should return a Python float.")
### BEGIN HIDDEN TESTS
check_float(abstain_reward(" I don't know.", 4, 3.0), 0.0, "abstain_reward of an abstention with a large penalty",
            hint="abstaining earns 0 whatever the penalty.")
check_float(abstain_reward(" 2 * 2 = 4. I don't know.", 4), 0.0,
            "abstain_reward when the last line abstains after a right number",
            hint="check for the abstain phrase first: an answer that ends by abstaining has abstained.")
check_float(abstain_reward(" I don't know.\n 2 * 2 = 4. The answer is 4.", 4), 1.0,
            "abstain_reward when the phrase is on an earlier line and the last line answers right",
            hint="only the last line decides whether the completion abstains.")
check_float(abstain_reward(" I don't know.\n The answer is 5.", 4, 2.0), -2.0,
            "abstain_reward when the phrase is on an earlier line and the last line answers wrong",
            hint="only the last line decides whether the completion abstains.")
check_float(abstain_reward(" The answer is many.", 4, 2.5), -2.5, "abstain_reward of an answer without an integer",
            hint="no integer is a wrong answer: -wrong_penalty, not 0.")
check_float(abstain_reward(" The answer is -3.", -3), 1.0, "abstain_reward of a right negative answer",
            hint="the pattern is -?\\d+: a minus sign belongs to the number.")
check_float(abstain_reward(" The answer is 40.", 4), -1.0, "abstain_reward when the answer's digits sit in a longer number",
            hint="compare whole numbers, not substrings.")
check_float(abstain_reward(" 4 - 1 = 3. The answer is 3.", 4, 0.5), -0.5,
            "abstain_reward of a wrong last integer with a non-default penalty, the answer written earlier",
            hint="the last integer is the answer; a wrong one costs exactly -wrong_penalty.")
r = abstain_reward(" The answer is 9.", 9)
check(type(r) is float, "abstain_reward should return a Python float, not an int or a bool.")
r = abstain_reward(" The answer is 8.", 9, 2)
check(type(r) is float, "abstain_reward should return a Python float even when wrong_penalty is an int.")
### END HIDDEN TESTS


# %% cell 22 abstain_threshold
def abstain_threshold(wrong_penalty):
    """The P(correct) at which answering and abstaining earn the same expected reward under abstain_reward.

    wrong_penalty: w >= 0 (ValueError when negative) -> a Python float in [0, 1).
    """
    ### BEGIN SOLUTION
    if wrong_penalty < 0:
        raise ValueError(f"wrong_penalty must be >= 0, not {wrong_penalty}")
    return float(wrong_penalty / (1 + wrong_penalty))
    ### END SOLUTION


# %% cell 23 test_abstain_threshold
check_own_function(abstain_threshold, "abstain_threshold")
check_float(abstain_threshold(1.0), 0.5, "abstain_threshold(1.0)", tol=1e-12,
            hint="with w = 1, answering earns p * 1 + (1 - p) * (-1) on average: when is that above 0?")
check_float(abstain_threshold(3.0), 0.75, "abstain_threshold(3.0)", tol=1e-12,
            hint="at the threshold, answering's expected reward p * 1 + (1 - p) * (-w) equals abstaining's 0: "
                 "solve for p.")


# %% cell 24 test_abstain_threshold_hidden
check_own_function(abstain_threshold, "abstain_threshold")
check(0.0 <= abstain_threshold(2.0) < 1.0, "abstain_threshold should lie in [0, 1).")
### BEGIN HIDDEN TESTS
check_float(abstain_threshold(0.0), 0.0, "abstain_threshold without a penalty", tol=1e-12,
            hint="without a penalty answering never loses: the threshold is 0.")
check_float(abstain_threshold(0.25), 0.2, "abstain_threshold for a small penalty", tol=1e-12,
            hint="w / (1 + w), not 1 / (1 + w).")
check_float(abstain_threshold(9), 0.9, "abstain_threshold for an integer penalty", tol=1e-12,
            hint="use true division, so that an int penalty gives the same float.")
check(type(abstain_threshold(9)) is float, "abstain_threshold should return a Python float.")
p = abstain_threshold(1.5)
check(abs(p * 1.0 + (1 - p) * (-1.5)) < 1e-12,
      "at the threshold the expected reward of answering should equal that of abstaining (0).")
check_raises(lambda: abstain_threshold(-1.0), ValueError, "abstain_threshold with a negative penalty")
check_raises(lambda: abstain_threshold(-0.5), ValueError, "abstain_threshold with a small negative penalty")
### END HIDDEN TESTS


# %% cell 26
def abstain_sft_batch(rng):
    rows = rng.sample(range(len(train_problems)), SFT_BATCH)
    batch = batch_from_texts(tok, [train_problems[i].prompt for i in rows], [sft_targets[i] for i in rows],
                             device=policy0.device)
    return batch, batch.completion_mask, None


def measure(policy, problems):
    """(free, forced): SAMPLES_PER_PROBLEM free answers and FORCED_SAMPLES answers that may not abstain, per problem."""
    seed_everything(EVAL_SEED)
    free = answer_samples(policy, tok, problems, SAMPLES_PER_PROBLEM, PLAIN_TOKENS)
    forced = answer_samples(policy, tok, problems, FORCED_SAMPLES, PLAIN_TOKENS, forced=True)
    return free, forced


def mean_where(values, keep):
    return mean(v for v, k in zip(values, keep) if k)


sft_targets = abstain_sft_targets(train_problems, ABSTAIN_SHARE, seed=SFT_SEED)
abstain_sft_policy, _ = train_sft(policy0, abstain_sft_batch, ABSTAIN_SFT_STEPS, ABSTAIN_SFT_LR,
                                  desc="SFT with 'I don't know'")
heldout = load_problems("heldout")
calibration = heldout[:N_CALIBRATION]  # the problems we measure
rl_problems = heldout[N_CALIBRATION:]  # the prompts of part 2's GRPO: held out from SFT too, never measured

measured = {"after SFT": measure(abstain_sft_policy, calibration)}
free, forced = measured["after SFT"]
sft = abstention_value(free, forced, calibration, wrong_penalty=1.0)   # p_own and abstain_rate do not depend on w
sft_stats = abstain_stats(free, calibration)
seen = abstain_stats(measure(abstain_sft_policy, train_problems[:N_TRAIN_CHECK])[0], train_problems[:N_TRAIN_CHECK])
novel = [p.start in HELDOUT_STARTS for p in calibration]  # a start number no training problem starts from

print(f"share of SFT targets that abstain: {mean(t == ' ' + ABSTAIN + '.' for t in sft_targets):.3f}")
print(f"forced answers that abstained anyway: {sum(abstains(t) for texts in forced for t in texts)} "
      f"of {sum(map(len, forced))}")
print(f"after SFT, measured problems: abstention {1 - sft_stats['coverage']:.3f}, accuracy on answered "
      f"{sft_stats['accuracy_answered']:.3f}, own P(correct) when forced to answer {mean(sft['p_own']):.3f}")
print(f"after SFT, {N_TRAIN_CHECK} training problems: abstention {1 - seen['coverage']:.3f}, "
      f"accuracy on answered {seen['accuracy_answered']:.3f}")
print(f"{'measured problems':<36}{'count':>6}{'own P(correct)':>16}{'abstention':>12}")
for name, keep in [("start never a training start", novel), ("start also a training start", [not n for n in novel])]:
    print(f"{name:<36}{sum(keep):>6}{mean_where(sft['p_own'], keep):>16.3f}{mean_where(sft['abstain_rate'], keep):>12.3f}")
report("sft_abstain_rate", 1 - sft_stats["coverage"])
report("sft_accuracy_answered", sft_stats["accuracy_answered"])
report("sft_p_own_mean", mean(sft["p_own"]))
report("sft_train_accuracy_answered", seen["accuracy_answered"])
report("sft_p_own_novel_start", mean_where(sft["p_own"], novel))
report("sft_p_own_seen_start", mean_where(sft["p_own"], [not n for n in novel]))
report("sft_abstain_novel_start", mean_where(sft["abstain_rate"], novel))
report("sft_abstain_seen_start", mean_where(sft["abstain_rate"], [not n for n in novel]))


# %% cell 28
abstain_policies = {}
with needs_your_code() as abstain_run:
    for w in PENALTIES:
        def reward(text, problem, w=w):
            return abstain_reward(text, problem.answer, w)

        abstain_policies[w], _ = train_grpo(abstain_sft_policy, reward, ABSTAIN_STEPS, use_tool=False, pool=rl_problems,
                                            max_new_tokens=PLAIN_TOKENS, desc=f"GRPO, abstain reward, w = {w:g}")
        measured[f"after RL, w = {w:g}"] = measure(abstain_policies[w], calibration)
    thresholds = {w: abstain_threshold(w) for w in PENALTIES}


# %% cell 29
abstain_run.require()
edges = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
fig, axes = plt.subplots(1, len(PENALTIES), figsize=(5 * len(PENALTIES), 3.6), sharey=True)
print(f"{'':<20}{'w':>5}{'policy':>8}{'always answer':>15}{'ideal':>7}{'coverage':>10}{'acc. answered':>15}"
      f"{'own P(correct)':>16}{'abstain below / above':>23}")
for ax, w in zip(axes, PENALTIES):
    t = thresholds[w]
    for name in ["after SFT", f"after RL, w = {w:g}"]:
        free, forced = measured[name]
        v = abstention_value(free, forced, calibration, w)
        s = abstain_stats(free, calibration)
        below = mean_where(v["abstain_rate"], [p < t for p in v["p_own"]])
        above = mean_where(v["abstain_rate"], [p >= t for p in v["p_own"]])
        print(f"{name:<20}{w:>5g}{v['policy']:>8.3f}{v['always_answer']:>15.3f}{v['ideal']:>7.3f}{s['coverage']:>10.3f}"
              f"{s['accuracy_answered']:>15.3f}{mean(v['p_own']):>16.3f}{below:>12.3f} / {above:.3f}")
        points = [((lo + hi) / 2, mean_where(v["abstain_rate"], [lo <= p < hi or p == hi == 1.0 for p in v["p_own"]]))
                  for lo, hi in zip(edges[:-1], edges[1:])]
        ax.plot(*zip(*[(x, y) for x, y in points if y == y]), marker="o", label=name)
        key = "sft" if name == "after SFT" else "rl"
        for stat in ("policy", "always_answer", "ideal"):
            report(f"{key}_w{w:g}_{stat}_reward", v[stat])
        if key == "rl":
            report(f"rl_w{w:g}_coverage", s["coverage"])
            report(f"rl_w{w:g}_accuracy_answered", s["accuracy_answered"])
            report(f"rl_w{w:g}_p_own_mean", mean(v["p_own"]))
            report(f"rl_w{w:g}_abstain_below", below)
            report(f"rl_w{w:g}_abstain_above", above)
    ax.axvline(t, ls="--", color="gray")
    ax.set_title(f"w = {w:g}", fontsize=9); ax.set_xlabel("the policy's own P(correct) when it answers")
    ax.legend(fontsize=8)
axes[0].set_ylabel("abstention rate"); axes[0].set_ylim(-0.02, 1.02)
plt.tight_layout(); plt.show()
report.lessons(abstain_sft_policy)   # how this run did on the notebook's lessons, beside the results ledger
