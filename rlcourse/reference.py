"""Reference versions of the course's exercise functions (``COURSE_CONTRACT.md``).

Later notebooks import the building blocks of earlier ones from here, so that a learner who is
stuck in notebook 02 can still run notebook 05. A notebook's own exercise is always the learner's
function, defined in the notebook. This is the answer key: the package's own plumbing does not
import it (rlcourse/core.py has what the plumbing needs), and the grader's sandbox has no copy of it,
so an answer that imports from here fails under grading. tests/test_answer_key.py runs every
notebook's tests against it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .core import gather_log_probs, last_integer, through_first, upcast


# ----------------------------------------------------------------------------- checks
_float = upcast


def _same_shape(**tensors: torch.Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError("shapes must match: " + ", ".join(f"{n} {s}" for n, s in shapes.items()))


def _check_mask(mask: torch.Tensor, like: torch.Tensor, name: str = "mask") -> torch.Tensor:
    if tuple(mask.shape) != tuple(like.shape):
        raise ValueError(f"{name} has shape {tuple(mask.shape)}, expected {tuple(like.shape)}")
    return mask.to(like.dtype if like.is_floating_point() else torch.float32)


# ----------------------------------------------------------------------------- 00
def sft_loss(token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """-(sum mask*logps) / (sum mask)."""
    m = _check_mask(mask, token_logps)
    return -(token_logps * m).sum() / m.sum()


# ----------------------------------------------------------------------------- 01
def token_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log_softmax(logits)[b, t, tokens[b, t]]: (B, T, V), (B, T) -> (B, T)."""
    if logits.shape[:-1] != tokens.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match tokens {tuple(tokens.shape)}")
    return gather_log_probs(logits, tokens)


def completion_mask(completion_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """1 up to and including the first EOS of each row, 0 after it."""
    return through_first(completion_ids, eos_token_id)


def sequence_log_prob(token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log P(tau) = sum_t mask*logps: (B, T) -> (B,)."""
    return (token_logps * _check_mask(mask, token_logps)).sum(-1)


# ----------------------------------------------------------------------------- 02
def exact_policy_gradient(logits: torch.Tensor, f_values: torch.Tensor) -> torch.Tensor:
    """grad_logits sum_x p(x) f(x) = p * (f - sum_x p f): (K,), (K,) -> (K,)."""
    _same_shape(logits=logits, f_values=f_values)
    p = torch.softmax(_float(logits), -1)
    f = f_values.to(p.dtype)
    return p * (f - (p * f).sum())


def score_function_gradient(logits, f_values, num_samples, generator=None):
    """(1/N) sum_i f(x_i) grad log p(x_i), x_i ~ softmax(logits); grad log p(x) = onehot(x) - p."""
    _same_shape(logits=logits, f_values=f_values)
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    p = torch.softmax(_float(logits).detach(), -1)
    x = torch.multinomial(p.cpu(), num_samples, replacement=True, generator=generator).to(p.device)
    onehot = F.one_hot(x, p.shape[-1]).to(p.dtype)
    f = f_values.to(p.dtype)[x]
    return (f.unsqueeze(-1) * (onehot - p)).mean(0)


def rewards_to_go(rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """G_t = sum_{j>=t} gamma^(j-t) mask_j r_j; 0 where mask is 0."""
    m = _check_mask(mask, rewards)
    r = rewards * m
    returns = torch.zeros_like(r)
    running = torch.zeros_like(r[:, 0])
    for t in reversed(range(r.shape[1])):
        running = r[:, t] + gamma * running
        returns[:, t] = running
    return returns * m


def reinforce_loss(token_logps, returns, mask):
    """-(1/B) sum_i sum_t mask G_t logps."""
    _same_shape(token_logps=token_logps, returns=returns)
    m = _check_mask(mask, token_logps)
    return -(m * returns.detach() * token_logps).sum() / token_logps.shape[0]


# ----------------------------------------------------------------------------- 03
def value_loss(values, returns, mask):
    """(1/B) sum_i sum_t mask (V - G)^2."""
    _same_shape(values=values, returns=returns)
    m = _check_mask(mask, values)
    return (m * (values - returns.detach()) ** 2).sum() / values.shape[0]


def compute_advantages(returns, values, mask):
    """A_t = (G_t - V(s_t)) * mask, no gradient into values."""
    _same_shape(returns=returns, values=values)
    m = _check_mask(mask, returns)
    return (returns - values).detach() * m


def actor_critic_loss(token_logps, advantages, mask):
    """-(1/B) sum_i sum_t mask A_t logps."""
    _same_shape(token_logps=token_logps, advantages=advantages)
    m = _check_mask(mask, token_logps)
    return -(m * advantages.detach() * token_logps).sum() / token_logps.shape[0]


def gae_advantages(rewards, values, mask, gamma=1.0, lam=0.95):
    """delta_t = r_t + gamma V_{t+1} - V_t (V = 0 past the last real token); A_t = sum_l (gamma lam)^l delta_{t+l}."""
    _same_shape(rewards=rewards, values=values)
    m = _check_mask(mask, rewards)
    r, v = rewards * m, values.detach() * m
    next_v = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], dim=1)
    delta = (r + gamma * next_v - v) * m
    advantages = torch.zeros_like(delta)
    running = torch.zeros_like(delta[:, 0])
    for t in reversed(range(delta.shape[1])):
        running = delta[:, t] + gamma * lam * running * m[:, t]
        advantages[:, t] = running
    return advantages * m


# ----------------------------------------------------------------------------- 04
def ranking_to_pairs(ranking: str) -> list[tuple[str, str]]:
    """"D > G > A = B" -> every (winner, loser) with the winner strictly above the loser."""
    if not ranking or not ranking.strip():
        raise ValueError("empty ranking")
    levels = [[label.strip() for label in level.split("=")] for level in ranking.split(">")]
    if any(not label for level in levels for label in level):
        raise ValueError(f"empty label in ranking {ranking!r}")
    return [(w, l) for i, upper in enumerate(levels) for lower in levels[i + 1:] for w in upper for l in lower]


def reward_model_loss(chosen_rewards, rejected_rewards):
    """Bradley-Terry: mean(-log sigmoid(r_chosen - r_rejected))."""
    _same_shape(chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards)
    return -F.logsigmoid(_float(chosen_rewards) - _float(rejected_rewards)).mean()


def ppo_clip_loss(logps, old_logps, advantages, mask, clip_eps=0.2):
    """-(1/B) sum_i sum_t mask min(rho A, clip(rho, 1-eps, 1+eps) A), rho = exp(logps - old_logps)."""
    _same_shape(logps=logps, old_logps=old_logps, advantages=advantages)
    m = _check_mask(mask, logps)
    ratio = torch.exp(_float(logps) - _float(old_logps).detach())
    adv = advantages.detach()
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    return -(m * surrogate).sum() / logps.shape[0]


def kl_penalized_rewards(scores, logps, ref_logps, mask, beta):
    """-beta (logps - ref_logps) mask per token, plus scores[i] at the last real token of row i."""
    _same_shape(logps=logps, ref_logps=ref_logps)
    m = _check_mask(mask, logps)
    if scores.shape != logps.shape[:1]:
        raise ValueError(f"scores has shape {tuple(scores.shape)}, expected ({logps.shape[0]},)")
    rewards = -beta * (logps - ref_logps).detach() * m
    positions = torch.arange(m.shape[1], device=m.device).expand_as(m)
    last = torch.where(m > 0, positions, torch.full_like(positions, -1)).max(-1).values
    has_token = last >= 0
    rows = torch.arange(m.shape[0], device=m.device)[has_token]
    return rewards.index_put((rows, last[has_token]), scores.detach().to(rewards.dtype)[has_token], accumulate=True)


# ----------------------------------------------------------------------------- 05
def group_normalized_advantages(rewards, group_size, eps=1e-6):
    """(r - mean_group) / (std_group + eps) over consecutive groups; std unbiased."""
    if group_size < 1 or rewards.shape[0] % group_size:
        raise ValueError(f"group_size {group_size} does not divide the batch of {rewards.shape[0]}")
    groups = rewards.detach().reshape(-1, group_size)
    std = groups.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(groups[:, :1])
    return ((groups - groups.mean(dim=1, keepdim=True)) / (std + eps)).reshape(-1)



def rloo_advantages(rewards, group_size):
    """r_i minus the mean of the other G - 1 rewards of its group (consecutive groups); G >= 2."""
    if group_size < 2 or rewards.shape[0] % group_size:
        raise ValueError(f"group_size {group_size} must be at least 2 and divide the batch of {rewards.shape[0]}")
    groups = rewards.detach().reshape(-1, group_size)
    return (groups - (groups.sum(dim=1, keepdim=True) - groups) / (group_size - 1)).reshape(-1)


def pass_at_k(n, c, k):
    """1 - C(n-c, k) / C(n, k), as 1 - prod_{i=n-c+1}^{n} (1 - k/i); 1.0 when n - c < k."""
    if min(n, c, k) < 0 or k > n or c > n:
        raise ValueError(f"need 0 <= c <= n and 0 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    none_correct = 1.0
    for i in range(n - c + 1, n + 1):
        none_correct *= 1.0 - k / i
    return float(1.0 - none_correct)

def kl_k3(logps, ref_logps):
    """exp(x) - x - 1 with x = ref - logp: expm1(x) - x, and its Taylor series where |x| is tiny."""
    _same_shape(logps=logps, ref_logps=ref_logps)
    x = _float(ref_logps) - _float(logps)
    series = x * x * (0.5 + x / 6 + x * x / 24)  # exact to ~x^5/120: no cancellation near 0
    return torch.where(x.abs() < 1e-2, series, torch.expm1(x) - x)


def grpo_loss(logps, old_logps, ref_logps, advantages, mask, clip_eps=0.2, beta=0.04):
    """-(1/B) sum_i (1/|o_i|) sum_t mask [min(rho A_i, clip(rho) A_i) - beta k3_t]."""
    _same_shape(logps=logps, old_logps=old_logps, ref_logps=ref_logps)
    m = _check_mask(mask, logps)
    if advantages.shape != logps.shape[:1]:
        raise ValueError(f"advantages has shape {tuple(advantages.shape)}, expected ({logps.shape[0]},)")
    ratio = torch.exp(_float(logps) - _float(old_logps).detach())
    adv = advantages.detach().unsqueeze(-1)
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    per_token = surrogate - beta * kl_k3(logps, ref_logps.detach())
    lengths = m.sum(-1).clamp(min=1)
    return -((m * per_token).sum(-1) / lengths).mean()




def answer_reward(completion: str, answer: int) -> float:
    """1.0 if the last integer in the completion equals the answer, else 0.0."""
    last = last_integer(completion)
    return 1.0 if last is not None and last == int(answer) else 0.0


def training_memory_gb(n_params, algorithm, bytes_per_param=2):
    """The lecture's count: PPO 8 model-sized units (3 policy + 1 reference + 3 critic + 1 reward), GRPO 5."""
    units = {"ppo": 3 + 1 + 3 + 1, "grpo": 3 + 1 + 1}
    if algorithm not in units:
        raise ValueError(f"algorithm must be 'ppo' or 'grpo', not {algorithm!r}")
    return float(units[algorithm] * n_params * bytes_per_param / 1e9)


# ----------------------------------------------------------------------------- 06
def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta=0.1):
    """mean(-log sigmoid(beta ((pc - rc) - (pr - rr))))."""
    _same_shape(policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps,
                ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps)
    margin = (policy_chosen_logps - ref_chosen_logps.detach()) - (policy_rejected_logps - ref_rejected_logps.detach())
    return -F.logsigmoid(beta * _float(margin)).mean()


def simpo_loss(policy_chosen_logps, policy_rejected_logps, chosen_lengths, rejected_lengths, beta=2.0, gamma=0.5):
    """mean(-log sigmoid(beta pc/len_c - beta pr/len_r - gamma))."""
    _same_shape(policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps,
                chosen_lengths=chosen_lengths, rejected_lengths=rejected_lengths)
    pc, pr = _float(policy_chosen_logps), _float(policy_rejected_logps)
    margin = beta * pc / chosen_lengths.to(pc.dtype) - beta * pr / rejected_lengths.to(pr.dtype) - gamma
    return -F.logsigmoid(margin).mean()


# ----------------------------------------------------------------------------- 07
ABSTAIN_PHRASE = "I don't know"


def action_mask(completion_mask, env_mask):
    """completion_mask * (1 - env_mask): 1 on the policy's own tokens, 0 on tool output and padding."""
    if tuple(completion_mask.shape) != tuple(env_mask.shape):
        raise ValueError(f"completion_mask {tuple(completion_mask.shape)} and env_mask {tuple(env_mask.shape)} "
                         "must have the same shape")
    dtype = torch.promote_types(completion_mask.dtype, env_mask.dtype)
    dtype = dtype if dtype.is_floating_point else torch.float32
    return completion_mask.to(dtype) * (1 - env_mask.to(dtype))


def abstain_reward(completion: str, answer: int, wrong_penalty: float = 1.0) -> float:
    """0.0 if the last line abstains, 1.0 if the last integer is the answer, else -wrong_penalty."""
    lines = completion.strip().splitlines()
    if lines and ABSTAIN_PHRASE in lines[-1]:
        return 0.0
    last = last_integer(completion)
    return 1.0 if last is not None and last == int(answer) else -float(wrong_penalty)


def abstain_threshold(wrong_penalty):
    """w / (1 + w): answer when P(correct) is above it, abstain when below."""
    if wrong_penalty < 0:
        raise ValueError(f"wrong_penalty must be >= 0, not {wrong_penalty}")
    return float(wrong_penalty / (1 + wrong_penalty))
