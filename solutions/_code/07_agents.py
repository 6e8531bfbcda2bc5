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
import copy
import random

import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from rlcourse.agents import (ABSTAIN, abstain_sft_targets, abstain_stats, answer_samples, calculator_reply,
                             evaluate_answers, tool_batch, tool_rollout, tool_segments, tool_solution, tool_token_stats)
from rlcourse.checks import (check, check_close, check_float, check_own_function, check_raises, check_shape,
                             needs_your_code)
from rlcourse.config import Report, pick
from rlcourse.model import load_policy, seed_everything, set_threads
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
TOOL_TOKENS = 64             # answers with calls: three steps of `a op b =? c.` are about 60 tokens
PLAIN_TOKENS = 28            # answers without calls (as in notebook 05)
MAX_GRAD_NORM = 1.0

# part 1: the calculator
SFT_STEPS = pick(40, 2)      # warm start on worked solutions that call the calculator
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
PENALTIES = (0.5, 1.0)       # wrong_penalty of the two GRPO runs: thresholds 1/3 and 1/2
ABSTAIN_STEPS = pick(48, 2)
N_CALIBRATION = pick(160, 8)  # held-out problems we measure; part 2's GRPO draws from the other held-out problems
CALIBRATION_SAMPLES = pick(16, 4)  # answers per problem from the pre-trained policy: its P(correct)
SAMPLES_PER_PROBLEM = pick(8, 4)   # answers per problem from each fine-tuned policy: its abstention rate
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
rollout, env_mask = tool_rollout(policy0, tok, [problem.prompt], TOOL_TOKENS)
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
    """SFT (notebook 00) from a copy of `start`: make_batch(rng) -> (batch, mask of the target tokens)."""
    seed_everything(seed)
    rng = random.Random(seed)
    policy = copy.deepcopy(start)
    for p in policy.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    losses = []
    for _ in tqdm(range(steps), desc=desc):
        batch, mask = make_batch(rng)
        logps = token_log_probs(completion_logits(policy, batch), batch.completion_ids)
        loss = sft_loss(logps, mask)
        optimizer_step(opt, loss, MAX_GRAD_NORM)
        losses.append(loss.item())
    policy.eval()
    for p in policy.parameters():
        p.requires_grad_(False)
    return policy, losses


def tool_sft_batch(rng):
    problems = rng.sample(train_problems, SFT_BATCH)
    batch, env_mask = tool_batch(tok, [p.prompt for p in problems], [tool_segments(p) for p in problems],
                                 device=policy0.device)
    return batch, action_mask(batch.completion_mask, env_mask)


def evaluate(policy, use_tool, max_new_tokens=TOOL_TOKENS):
    seed_everything(EVAL_SEED)
    return evaluate_answers(policy, tok, eval_problems, max_new_tokens, use_tool=use_tool)


with needs_your_code() as sft_run:
    tool_policy, sft_losses = train_sft(policy0, tool_sft_batch, SFT_STEPS, SFT_LR, desc="SFT with calls")

results = {"pre-trained, no tool": evaluate(policy0, use_tool=False, max_new_tokens=PLAIN_TOKENS),
           "warm start, tool": evaluate(tool_policy, use_tool=True),
           "warm start, no tool": evaluate(tool_policy, use_tool=False)}
seed_everything(EVAL_SEED)
print("a held-out answer with the tool:", tool_rollout(tool_policy, tok, [eval_problems[0].prompt], TOOL_TOKENS)[0].texts[0])
print(f"SFT loss: first step {sft_losses[0]:.3f}, last step {sft_losses[-1]:.3f}")
for name, stats in results.items():
    print(f"{name:<22} " + "   ".join(f"{k} {v:.3f}" for k, v in stats.items()))


# %% cell 12
def train_grpo(start, reward_fn, steps, use_tool, mask_tool_tokens=True, pool=None, seed=SEED, desc="GRPO"):
    """GRPO (notebook 05) from a copy of `start`, which is also the KL reference.

    reward_fn(text, problem) -> float; pool: the problems the prompts are drawn from (default: the
    training problems). Returns the policy and its history per step: the mean reward and
    the policy's mean log-prob of the calculator's tokens in its samples (when there are any).
    """
    seed_everything(seed)
    rng = random.Random(seed)
    pool = train_problems if pool is None else pool
    policy = copy.deepcopy(start)
    for p in policy.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(policy.parameters(), lr=LR)
    history = {"reward": [], "tool_token_logp": []}
    max_new_tokens = TOOL_TOKENS if use_tool else PLAIN_TOKENS
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
        for inner in range(INNER_STEPS):
            logps = token_log_probs(completion_logits(policy, rollout), rollout.completion_ids)
            if inner == 0:
                old_logps = logps.detach()   # the policy has not moved yet
            loss = grpo_loss(logps, old_logps, ref_logps, advantages, mask, CLIP_EPS, BETA)
            optimizer_step(opt, loss, MAX_GRAD_NORM)
        history["reward"].append(rewards.mean().item())
        if env_mask.sum() > 0:
            history["tool_token_logp"].append(((old_logps * env_mask).sum() / env_mask.sum()).item())
    policy.eval()
    return policy, history


def correct(text, problem):
    return answer_reward(text, problem.answer)


sft_run.require()
with needs_your_code() as grpo_run:
    masked_policy, masked_hist = train_grpo(tool_policy, correct, STEPS, use_tool=True, desc="GRPO, tool, action mask")
    unmasked_policy, unmasked_hist = train_grpo(tool_policy, correct, STEPS, use_tool=True, mask_tool_tokens=False,
                                                desc="GRPO, tool, env tokens in the loss")
    notool_policy, notool_hist = train_grpo(policy0, correct, STEPS, use_tool=False, desc="GRPO, no tool")


# %% cell 13
grpo_run.require()
runs = {"GRPO, no tool": (notool_policy, notool_hist, False), "GRPO, tool, action mask": (masked_policy, masked_hist, True),
        "GRPO, tool, env tokens in loss": (unmasked_policy, unmasked_hist, True)}
for name, (policy, _, use_tool) in runs.items():
    results[name] = evaluate(policy, use_tool=use_tool, max_new_tokens=TOOL_TOKENS if use_tool else PLAIN_TOKENS)
for name in ["GRPO, tool, action mask", "GRPO, tool, env tokens in loss"]:
    results[name.replace("tool,", "tool withheld,")] = evaluate(runs[name][0], use_tool=False)
own = {name: tool_token_stats(policy, tok, eval_problems) for name, policy in
       [("warm start", tool_policy), ("action mask", masked_policy), ("env tokens in loss", unmasked_policy)]}

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for name, (_, hist, _) in runs.items():
    plot_curve(axes[0], hist["reward"], label=name, window=4)
    if hist["tool_token_logp"]:
        plot_curve(axes[1], hist["tool_token_logp"], label=name, window=1)
axes[0].set_xlabel("GRPO step"); axes[0].set_ylabel("training reward (fraction correct)"); axes[0].legend(fontsize=8)
axes[1].set_xlabel("GRPO step"); axes[1].set_ylabel("policy's mean log-prob of the tool's tokens")
axes[1].legend(fontsize=8)
plt.tight_layout(); plt.show()

print(f"{'held-out, one answer each':<40}{'accuracy':>9}{'slips':>8}{'calls':>7}{'carried':>9}")
for name, s in results.items():
    print(f"{name:<40}{s['accuracy']:>9.3f}{s['slip_rate']:>8.3f}{s['calls_per_answer']:>7.2f}{s['carried_forward']:>9.3f}")
print("\nthe policy's own prediction of the calculator's replies (correct held-out transcripts):")
for name, s in own.items():
    print(f"  {name:<20} mean log-prob of the tool's tokens {s['tool_token_logp']:7.3f}   "
          f"first token of the result right {s['own_result_accuracy']:.3f}")

report("pretrained_notool_accuracy", results["pre-trained, no tool"]["accuracy"])
report("grpo_notool_accuracy", results["GRPO, no tool"]["accuracy"])
report("warmstart_tool_accuracy", results["warm start, tool"]["accuracy"])
report("grpo_tool_masked_accuracy", results["GRPO, tool, action mask"]["accuracy"])
report("grpo_tool_unmasked_accuracy", results["GRPO, tool, env tokens in loss"]["accuracy"])
report("pretrained_notool_slip_rate", results["pre-trained, no tool"]["slip_rate"])
report("grpo_notool_slip_rate", results["GRPO, no tool"]["slip_rate"])
report("grpo_tool_masked_slip_rate", results["GRPO, tool, action mask"]["slip_rate"])
report("grpo_tool_masked_calls_per_answer", results["GRPO, tool, action mask"]["calls_per_answer"])
report("grpo_tool_masked_carried_forward", results["GRPO, tool, action mask"]["carried_forward"])
report("grpo_tool_unmasked_carried_forward", results["GRPO, tool, env tokens in loss"]["carried_forward"])
report("grpo_tool_masked_withheld_accuracy", results["GRPO, tool withheld, action mask"]["accuracy"])
report("grpo_tool_unmasked_withheld_accuracy", results["GRPO, tool withheld, env tokens in loss"]["accuracy"])
report("grpo_tool_unmasked_withheld_slip_rate", results["GRPO, tool withheld, env tokens in loss"]["slip_rate"])
for name, s in own.items():
    key = name.replace(" ", "_")
    report(f"{key}_tool_token_logp", s["tool_token_logp"])
    report(f"{key}_own_result_accuracy", s["own_result_accuracy"])


# %% cell 16 abstain_reward
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


# %% cell 17 test_abstain_reward
check_own_function(abstain_reward, "abstain_reward")
solution = " 10 / 2 = 5. 5 - 1 = 4. The answer is 4."
check_float(abstain_reward(solution, 4), 1.0, "abstain_reward(solution, 4)")
check_float(abstain_reward(solution, 5), -1.0, "abstain_reward(solution, 5)",
            hint="a wrong answer costs -wrong_penalty (default 1.0); only the last integer is the answer.")
check_float(abstain_reward(" I don't know.", 4), 0.0, "abstain_reward(\" I don't know.\", 4)",
            hint="abstaining earns 0: neither the reward of a right answer nor the penalty of a wrong one.")
check_float(abstain_reward(solution, 6, wrong_penalty=3.0), -3.0, "abstain_reward(solution, 6, wrong_penalty=3.0)")


# %% cell 18 test_abstain_reward_hidden
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


# %% cell 20 abstain_threshold
def abstain_threshold(wrong_penalty):
    """w / (1 + w): answering beats abstaining (reward 0) exactly when P(correct) > w / (1 + w).

    wrong_penalty: w >= 0 (ValueError when negative) -> a Python float in [0, 1).
    """
    ### BEGIN SOLUTION
    if wrong_penalty < 0:
        raise ValueError(f"wrong_penalty must be >= 0, not {wrong_penalty}")
    return float(wrong_penalty / (1 + wrong_penalty))
    ### END SOLUTION


# %% cell 21 test_abstain_threshold
check_own_function(abstain_threshold, "abstain_threshold")
check_float(abstain_threshold(1.0), 0.5, "abstain_threshold(1.0)", tol=1e-12,
            hint="with w = 1, answering pays p - (1 - p) > 0 when p > 1/2.")
check_float(abstain_threshold(3.0), 0.75, "abstain_threshold(3.0)", tol=1e-12,
            hint="p(1 + w) - w > 0  <=>  p > w / (1 + w).")


# %% cell 22 test_abstain_threshold_hidden
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


# %% cell 24
def abstain_sft_batch(rng):
    rows = rng.sample(range(len(train_problems)), SFT_BATCH)
    batch = batch_from_texts(tok, [train_problems[i].prompt for i in rows], [sft_targets[i] for i in rows],
                             device=policy0.device)
    return batch, batch.completion_mask


def abstention(policy, problems, samples=SAMPLES_PER_PROBLEM):
    """abstain_stats of `samples` answers (no tool) to each problem."""
    seed_everything(EVAL_SEED)
    return abstain_stats(answer_samples(policy, tok, problems, samples, PLAIN_TOKENS), problems)


def mean_where(values, keep):
    kept = [v for v, k in zip(values, keep) if k]
    return sum(kept) / len(kept) if kept else float("nan")


sft_targets = abstain_sft_targets(train_problems, ABSTAIN_SHARE, seed=SFT_SEED)
abstain_sft_policy, abstain_sft_losses = train_sft(policy0, abstain_sft_batch, ABSTAIN_SFT_STEPS, ABSTAIN_SFT_LR,
                                                   desc="SFT with 'I don't know'")
heldout = load_problems("heldout")
calibration = heldout[:N_CALIBRATION]  # the problems we measure
rl_problems = heldout[N_CALIBRATION:]  # the prompts of part 2's GRPO: held out from SFT too, never measured

# each measured problem's difficulty: P(correct) under the pre-trained policy (which never abstains)
p_correct = abstention(policy0, calibration, CALIBRATION_SAMPLES)["p_correct"]
stats = {"after SFT": abstention(abstain_sft_policy, calibration)}
seen = abstention(abstain_sft_policy, train_problems[:N_TRAIN_CHECK])
novel = [p.start in HELDOUT_STARTS for p in calibration]  # a start number no training problem starts from
sft_rates = stats["after SFT"]["abstain_rate"]

print(f"share of SFT targets that abstain: {sum(t == ' ' + ABSTAIN + '.' for t in sft_targets) / len(sft_targets):.3f}")
print(f"pre-trained P(correct) of the {len(calibration)} measured problems ({CALIBRATION_SAMPLES} answers each): "
      f"mean {sum(p_correct) / len(p_correct):.3f}, max {max(p_correct):.3f}, {sum(p >= 0.75 for p in p_correct)} at 3/4 or more")
print(f"after SFT, measured problems: abstention {1 - stats['after SFT']['coverage']:.3f}, "
      f"accuracy on answered {stats['after SFT']['accuracy_answered']:.3f}")
print(f"after SFT, {len(seen['abstain_rate'])} training problems: abstention {1 - seen['coverage']:.3f}, "
      f"accuracy on answered {seen['accuracy_answered']:.3f}")
print(f"{'measured problems':<40}{'count':>6}{'pre-trained P(correct)':>24}{'abstention after SFT':>22}")
for name, keep in [("start never a training start", novel), ("start also a training start", [not n for n in novel])]:
    print(f"{name:<40}{sum(keep):>6}{mean_where(p_correct, keep):>24.3f}{mean_where(sft_rates, keep):>22.3f}")
report("sft_abstain_rate", 1 - stats["after SFT"]["coverage"])
report("sft_train_accuracy_answered", seen["accuracy_answered"])
report("pretrained_p_correct_mean", sum(p_correct) / len(p_correct))
report("pretrained_p_correct_novel_start", mean_where(p_correct, novel))
report("pretrained_p_correct_seen_start", mean_where(p_correct, [not n for n in novel]))
report("sft_abstain_novel_start", mean_where(sft_rates, novel))
report("sft_abstain_seen_start", mean_where(sft_rates, [not n for n in novel]))


# %% cell 26
abstain_policies = {}
with needs_your_code() as abstain_run:
    for w in PENALTIES:
        def reward(text, problem, w=w):
            return abstain_reward(text, problem.answer, w)

        abstain_policies[w], _ = train_grpo(abstain_sft_policy, reward, ABSTAIN_STEPS, use_tool=False, pool=rl_problems,
                                            desc=f"GRPO, abstain reward, w = {w:g}")
        stats[f"after RL, w = {w:g}"] = abstention(abstain_policies[w], calibration)
    thresholds = {w: abstain_threshold(w) for w in PENALTIES}


# %% cell 27
abstain_run.require()


def rate_where(s, keep):
    """Mean abstention rate of a policy's stats `s` over the problems whose pre-trained P(correct) passes `keep`."""
    return mean_where(s["abstain_rate"], [keep(p) for p in p_correct])


edges = [0.0, 0.15, 0.3, 0.45, 0.6, 1.0]
fig, ax = plt.subplots(figsize=(7, 4))
for name, s in stats.items():
    points = [((lo + min(hi, max(p_correct))) / 2, rate_where(s, lambda p, lo=lo, hi=hi: lo <= p < hi or p == hi == 1.0))
              for lo, hi in zip(edges[:-1], edges[1:])]
    points = [(x, y) for x, y in points if y == y]
    ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=name)
for w, t in thresholds.items():
    ax.axvline(t, ls="--", color="gray"); ax.text(t, 1.02, f"w = {w:g}", ha="center", fontsize=8)
ax.set_xlabel("P(correct) of the problem under the pre-trained policy")
ax.set_ylabel("abstention rate"); ax.set_ylim(-0.02, 1.08); ax.legend(fontsize=8)
plt.show()

print(f"{'':<18}{'threshold':>10}{'below':>8}{'above':>8}{'ratio':>8}{'coverage':>10}{'acc. answered':>15}"
      f"{'novel start':>13}{'seen start':>12}")
for w, t in thresholds.items():
    for name in ["after SFT", f"after RL, w = {w:g}"]:
        s = stats[name]
        below, above = rate_where(s, lambda p: p < t), rate_where(s, lambda p: p >= t)
        ratio = below / above if above > 0 else float("nan")
        novel_rate, seen_rate = mean_where(s["abstain_rate"], novel), mean_where(s["abstain_rate"], [not n for n in novel])
        print(f"{name:<18}{t:>10.2f}{below:>8.3f}{above:>8.3f}{ratio:>8.2f}{s['coverage']:>10.3f}"
              f"{s['accuracy_answered']:>15.3f}{novel_rate:>13.3f}{seen_rate:>12.3f}")
        key = "sft" if name == "after SFT" else "rl"
        report(f"{key}_w{w:g}_abstain_below_threshold", below)
        report(f"{key}_w{w:g}_abstain_above_threshold", above)
        report(f"{key}_w{w:g}_abstain_ratio", ratio, ".2f")
        if key == "rl":
            report(f"rl_w{w:g}_abstain_novel_start", novel_rate)
            report(f"rl_w{w:g}_abstain_seen_start", seen_rate)
            print(f"{'':<18}target (abstain at least 3 times as often below the threshold as above): "
                  f"{'met' if ratio >= 3 else 'missed'}")
for name, s in stats.items():
    key = "sft" if name == "after SFT" else "rl_w" + name.split("= ")[1]
    report(f"{key}_coverage", s["coverage"])
    report(f"{key}_accuracy_answered", s["accuracy_answered"])
report.lessons(abstain_sft_policy)   # how this run did on the notebook's lessons, beside the results ledger
print("measured problems below / above the thresholds: " + ", ".join(
    f"w = {w:g}: {sum(p < t for p in p_correct)} / {sum(p >= t for p in p_correct)}" for w, t in thresholds.items()))
