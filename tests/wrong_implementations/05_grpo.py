"""Plausible wrong answers to the exercises of 05_grpo; each must fail at least one test of its exercise.

WRONG = {function_name: [(description, source of a wrong definition), ...]}
"""

WRONG = {
    "training_memory_gb": [
        ("critic counted without its optimiser state (6 units)", '''
def training_memory_gb(n_params, algorithm, bytes_per_param=2):
    units = {"ppo": 6, "grpo": 5}
    if algorithm not in units:
        raise ValueError(algorithm)
    return float(units[algorithm] * n_params * bytes_per_param / 1e9)
'''),
        ("bytes_per_param ignored", '''
def training_memory_gb(n_params, algorithm, bytes_per_param=2):
    units = {"ppo": 8, "grpo": 5}
    if algorithm not in units:
        raise ValueError(algorithm)
    return float(units[algorithm] * n_params * 2 / 1e9)
'''),
        ("GRPO without the reference model (4 units)", '''
def training_memory_gb(n_params, algorithm, bytes_per_param=2):
    units = {"ppo": 8, "grpo": 4}
    if algorithm not in units:
        raise ValueError(algorithm)
    return float(units[algorithm] * n_params * bytes_per_param / 1e9)
'''),
        ("anything that is not PPO counted as GRPO (no ValueError)", '''
def training_memory_gb(n_params, algorithm, bytes_per_param=2):
    units = 8 if algorithm == "ppo" else 5
    return float(units * n_params * bytes_per_param / 1e9)
'''),
    ],
    "answer_reward": [
        ("first number taken", '''
def answer_reward(completion, answer):
    import re
    numbers = re.findall(r"-?\\d+", completion)
    return 1.0 if numbers and int(numbers[0]) == answer else 0.0
'''),
        ("minus sign dropped", '''
def answer_reward(completion, answer):
    import re
    numbers = re.findall(r"\\d+", completion)
    return 1.0 if numbers and int(numbers[-1]) == answer else 0.0
'''),
        ("substring test", '''
def answer_reward(completion, answer):
    return 1.0 if str(answer) in completion else 0.0
'''),
        ("returns a bool", '''
def answer_reward(completion, answer):
    import re
    numbers = re.findall(r"-?\\d+", completion)
    return bool(numbers) and int(numbers[-1]) == answer
'''),
    ],
    "group_normalized_advantages": [
        ("population std (unbiased=False)", '''
def group_normalized_advantages(rewards, group_size, eps=1e-6):
    if rewards.shape[0] % group_size:
        raise ValueError("group size")
    g = rewards.detach().reshape(-1, group_size)
    return ((g - g.mean(1, keepdim=True)) / (g.std(1, unbiased=False, keepdim=True) + eps)).reshape(-1)
'''),
        ("no eps: NaN on a group of equal rewards", '''
def group_normalized_advantages(rewards, group_size, eps=1e-6):
    if rewards.shape[0] % group_size:
        raise ValueError("group size")
    g = rewards.detach().reshape(-1, group_size)
    return ((g - g.mean(1, keepdim=True)) / g.std(1, keepdim=True)).reshape(-1)
'''),
        ("groups taken strided", '''
def group_normalized_advantages(rewards, group_size, eps=1e-6):
    if rewards.shape[0] % group_size:
        raise ValueError("group size")
    g = rewards.detach().reshape(group_size, -1)
    return ((g - g.mean(0, keepdim=True)) / (g.std(0, keepdim=True) + eps)).reshape(-1)
'''),
        ("whole batch normalised", '''
def group_normalized_advantages(rewards, group_size, eps=1e-6):
    if rewards.shape[0] % group_size:
        raise ValueError("group size")
    r = rewards.detach()
    return (r - r.mean()) / (r.std() + eps)
'''),
        ("eps inside the square root", '''
def group_normalized_advantages(rewards, group_size, eps=1e-6):
    if rewards.shape[0] % group_size:
        raise ValueError("group size")
    g = rewards.detach().reshape(-1, group_size)
    return ((g - g.mean(1, keepdim=True)) / torch.sqrt(g.var(1, keepdim=True) + eps)).reshape(-1)
'''),
        ("no ValueError when group_size does not divide the batch", '''
def group_normalized_advantages(rewards, group_size, eps=1e-6):
    n = rewards.shape[0] // group_size * group_size
    g = rewards.detach()[:n].reshape(-1, group_size)
    return ((g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True) + eps)).reshape(-1)
'''),
        ("NaN for groups of one sample (torch.std of one value)", '''
def group_normalized_advantages(rewards, group_size, eps=1e-6):
    if group_size < 1 or rewards.shape[0] % group_size:
        raise ValueError("group size")
    g = rewards.detach().reshape(-1, group_size)
    return ((g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True) + eps)).reshape(-1)
'''),
    ],
    "kl_k3": [
        ("sign flipped (x = logp - ref)", '''
def kl_k3(logps, ref_logps):
    if logps.shape != ref_logps.shape:
        raise ValueError("shapes")
    x = logps - ref_logps
    return torch.expm1(x) - x
'''),
        ("naive exp(x) - x - 1", '''
def kl_k3(logps, ref_logps):
    if logps.shape != ref_logps.shape:
        raise ValueError("shapes")
    x = ref_logps - logps
    return torch.exp(x) - x - 1
'''),
        ("k2 = x^2 / 2 instead of k3", '''
def kl_k3(logps, ref_logps):
    if logps.shape != ref_logps.shape:
        raise ValueError("shapes")
    x = ref_logps - logps
    return x * x / 2
'''),
        ("k1 = -x (can be negative)", '''
def kl_k3(logps, ref_logps):
    if logps.shape != ref_logps.shape:
        raise ValueError("shapes")
    return logps - ref_logps
'''),
    ],
    "grpo_loss": [
        ("token mean over the batch instead of 1/|o_i| per answer", '''
def _k3(x):
    return torch.expm1(x) - x


def grpo_loss(logps, old_logps, ref_logps, advantages, mask, clip_eps=0.2, beta=0.04):
    if not (logps.shape == old_logps.shape == ref_logps.shape == mask.shape) or advantages.shape != logps.shape[:1]:
        raise ValueError("shapes")
    m = mask.to(logps.dtype)
    ratio = torch.exp(logps - old_logps.detach())
    a = advantages.detach().unsqueeze(1)
    s = torch.minimum(ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a) - beta * _k3(ref_logps.detach() - logps)
    return -(s * m).sum() / m.sum()
'''),
        ("KL added instead of subtracted", '''
def _k3(x):
    return torch.expm1(x) - x


def grpo_loss(logps, old_logps, ref_logps, advantages, mask, clip_eps=0.2, beta=0.04):
    if not (logps.shape == old_logps.shape == ref_logps.shape == mask.shape) or advantages.shape != logps.shape[:1]:
        raise ValueError("shapes")
    m = mask.to(logps.dtype)
    ratio = torch.exp(logps - old_logps.detach())
    a = advantages.detach().unsqueeze(1)
    s = torch.minimum(ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a) + beta * _k3(ref_logps.detach() - logps)
    return -((s * m).sum(1) / m.sum(1)).mean()
'''),
        ("max instead of min", '''
def _k3(x):
    return torch.expm1(x) - x


def grpo_loss(logps, old_logps, ref_logps, advantages, mask, clip_eps=0.2, beta=0.04):
    if not (logps.shape == old_logps.shape == ref_logps.shape == mask.shape) or advantages.shape != logps.shape[:1]:
        raise ValueError("shapes")
    m = mask.to(logps.dtype)
    ratio = torch.exp(logps - old_logps.detach())
    a = advantages.detach().unsqueeze(1)
    s = torch.maximum(ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a) - beta * _k3(ref_logps.detach() - logps)
    return -((s * m).sum(1) / m.sum(1)).mean()
'''),
        ("gradient flows into old and reference log-probs", '''
def _k3(x):
    return torch.expm1(x) - x


def grpo_loss(logps, old_logps, ref_logps, advantages, mask, clip_eps=0.2, beta=0.04):
    if not (logps.shape == old_logps.shape == ref_logps.shape == mask.shape) or advantages.shape != logps.shape[:1]:
        raise ValueError("shapes")
    m = mask.to(logps.dtype)
    ratio = torch.exp(logps - old_logps)
    a = advantages.unsqueeze(1)
    s = torch.minimum(ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a) - beta * _k3(ref_logps - logps)
    return -((s * m).sum(1) / m.sum(1)).mean()
'''),
        ("KL term left out", '''
def _k3(x):
    return torch.expm1(x) - x


def grpo_loss(logps, old_logps, ref_logps, advantages, mask, clip_eps=0.2, beta=0.04):
    if not (logps.shape == old_logps.shape == ref_logps.shape == mask.shape) or advantages.shape != logps.shape[:1]:
        raise ValueError("shapes")
    m = mask.to(logps.dtype)
    ratio = torch.exp(logps - old_logps.detach())
    a = advantages.detach().unsqueeze(1)
    s = torch.minimum(ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a)
    return -((s * m).sum(1) / m.sum(1)).mean()
'''),
    ],
    "rloo_advantages": [
        ("the group mean, own reward included", '''
def rloo_advantages(rewards, group_size):
    if group_size < 2 or rewards.shape[0] % group_size:
        raise ValueError(group_size)
    groups = rewards.detach().reshape(-1, group_size)
    return (groups - groups.mean(dim=1, keepdim=True)).reshape(-1)
'''),
        ("the others' sum divided by G instead of G - 1", '''
def rloo_advantages(rewards, group_size):
    if group_size < 2 or rewards.shape[0] % group_size:
        raise ValueError(group_size)
    groups = rewards.detach().reshape(-1, group_size)
    return (groups - (groups.sum(dim=1, keepdim=True) - groups) / group_size).reshape(-1)
'''),
        ("strided groups (every G-th row)", '''
def rloo_advantages(rewards, group_size):
    if group_size < 2 or rewards.shape[0] % group_size:
        raise ValueError(group_size)
    groups = rewards.detach().reshape(group_size, -1)
    others = (groups.sum(dim=0, keepdim=True) - groups) / (group_size - 1)
    return (groups - others).reshape(-1)
'''),
        ("no ValueError for groups of one (division by zero)", '''
def rloo_advantages(rewards, group_size):
    if rewards.shape[0] % group_size:
        raise ValueError(group_size)
    groups = rewards.detach().reshape(-1, group_size)
    return (groups - (groups.sum(dim=1, keepdim=True) - groups) / (group_size - 1)).reshape(-1)
'''),
        ("not detached", '''
def rloo_advantages(rewards, group_size):
    if group_size < 2 or rewards.shape[0] % group_size:
        raise ValueError(group_size)
    groups = rewards.reshape(-1, group_size)
    return (groups - (groups.sum(dim=1, keepdim=True) - groups) / (group_size - 1)).reshape(-1)
'''),
    ],
    "pass_at_k": [
        ("the biased 1 - (1 - c/n)^k", '''
def pass_at_k(n, c, k):
    if min(n, c, k) < 0 or k > n or c > n:
        raise ValueError((n, c, k))
    return float(1 - (1 - c / n) ** k)
'''),
        ("factorials in floats (overflow for n = 1000)", '''
def pass_at_k(n, c, k):
    import math
    if min(n, c, k) < 0 or k > n or c > n:
        raise ValueError((n, c, k))
    if n - c < k:
        return 1.0
    f = lambda m: float(math.factorial(m))
    return 1.0 - (f(n - c) / (f(k) * f(n - c - k))) / (f(n) / (f(k) * f(n - k)))
'''),
        ("wrong and right swapped: 1 - C(c, k) / C(n, k)", '''
def pass_at_k(n, c, k):
    import math
    if min(n, c, k) < 0 or k > n or c > n:
        raise ValueError((n, c, k))
    return float(1 - math.comb(c, k) / math.comb(n, k))
'''),
        ("no ValueError when k > n", '''
def pass_at_k(n, c, k):
    if n - c < k:
        return 1.0
    none_correct = 1.0
    for i in range(n - c + 1, n + 1):
        none_correct *= 1.0 - k / i
    return float(1.0 - none_correct)
'''),
        ("returns an exact Fraction, not a float", '''
def pass_at_k(n, c, k):
    from fractions import Fraction
    from math import comb
    if min(n, c, k) < 0 or k > n or c > n:
        raise ValueError((n, c, k))
    return 1 - Fraction(comb(n - c, k), comb(n, k))
'''),
    ],
}
