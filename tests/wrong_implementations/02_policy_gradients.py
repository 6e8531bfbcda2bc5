"""Plausible wrong answers to the exercises of 02_policy_gradients (each must fail a test cell)."""

WRONG = {
    "exact_policy_gradient": [
        ("p * f: forgets to subtract the expectation", '''
def exact_policy_gradient(logits, f_values):
    return torch.softmax(logits, -1) * f_values
'''),
        ("f - E[f] without the factor p", '''
def exact_policy_gradient(logits, f_values):
    p = torch.softmax(logits, -1)
    return f_values - (p * f_values).sum()
'''),
        ("sign flipped", '''
def exact_policy_gradient(logits, f_values):
    p = torch.softmax(logits, -1)
    return -p * (f_values - (p * f_values).sum())
'''),
        ("only the diagonal of the softmax Jacobian: p (1 - p) f", '''
def exact_policy_gradient(logits, f_values):
    p = torch.softmax(logits, -1)
    return p * (1 - p) * f_values
'''),
        ("computes in float32 always", '''
def exact_policy_gradient(logits, f_values):
    if logits.shape != f_values.shape:
        raise ValueError("shape")
    p = torch.softmax(logits.float(), -1)
    f = f_values.float()
    return p * (f - (p * f).sum())
'''),
    ],
    "score_function_gradient": [
        ("secretly returns the exact expectation", '''
def score_function_gradient(logits, f_values, num_samples, generator=None):
    if logits.shape != f_values.shape:
        raise ValueError("shape")
    p = torch.softmax(logits, -1)
    return p * (f_values - (p * f_values).sum())
'''),
        ("f(x) * onehot(x): forgets the -p of grad log p", '''
def score_function_gradient(logits, f_values, num_samples, generator=None):
    p = torch.softmax(logits, -1)
    x = torch.multinomial(p, num_samples, replacement=True, generator=generator)
    return (f_values[x].unsqueeze(-1) * F.one_hot(x, p.shape[-1]).to(p.dtype)).mean(0)
'''),
        ("uses one sample whatever num_samples is", '''
def score_function_gradient(logits, f_values, num_samples, generator=None):
    if logits.shape != f_values.shape:
        raise ValueError("shape")
    p = torch.softmax(logits, -1)
    x = torch.multinomial(p, 1, replacement=True, generator=generator)
    return (f_values[x].unsqueeze(-1) * (F.one_hot(x, p.shape[-1]).to(p.dtype) - p)).mean(0)
'''),
        ("ignores the generator (global RNG)", '''
def score_function_gradient(logits, f_values, num_samples, generator=None):
    if logits.shape != f_values.shape:
        raise ValueError("shape")
    p = torch.softmax(logits, -1)
    x = torch.multinomial(p, num_samples, replacement=True)
    return (f_values[x].unsqueeze(-1) * (F.one_hot(x, p.shape[-1]).to(p.dtype) - p)).mean(0)
'''),
        ("sums over samples instead of averaging", '''
def score_function_gradient(logits, f_values, num_samples, generator=None):
    if logits.shape != f_values.shape:
        raise ValueError("shape")
    p = torch.softmax(logits, -1)
    x = torch.multinomial(p, num_samples, replacement=True, generator=generator)
    return (f_values[x].unsqueeze(-1) * (F.one_hot(x, p.shape[-1]).to(p.dtype) - p)).sum(0)
'''),
        ("sign flipped", '''
def score_function_gradient(logits, f_values, num_samples, generator=None):
    if logits.shape != f_values.shape:
        raise ValueError("shape")
    p = torch.softmax(logits, -1)
    x = torch.multinomial(p, num_samples, replacement=True, generator=generator)
    return (f_values[x].unsqueeze(-1) * (p - F.one_hot(x, p.shape[-1]).to(p.dtype))).mean(0)
'''),
    ],
    "rewards_to_go": [
        ("forward cumsum: sums the past rewards", '''
def rewards_to_go(rewards, mask, gamma=1.0):
    return (rewards * mask).cumsum(-1) * mask
'''),
        ("gamma the wrong way round: gamma**j from the start", '''
def rewards_to_go(rewards, mask, gamma=1.0):
    m = mask.to(rewards.dtype)
    T = rewards.shape[1]
    disc = gamma ** torch.arange(T, dtype=rewards.dtype)
    r = rewards * m * disc
    return r.flip(-1).cumsum(-1).flip(-1) * m
'''),
        ("no mask: padding rewards leak", '''
def rewards_to_go(rewards, mask, gamma=1.0):
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    return returns
'''),
        ("mask only on the output: padded rewards leak backwards", '''
def rewards_to_go(rewards, mask, gamma=1.0):
    m = mask.to(rewards.dtype)
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    return returns * m
'''),
        ("total return at every step (no reward-to-go)", '''
def rewards_to_go(rewards, mask, gamma=1.0):
    m = mask.to(rewards.dtype)
    return (rewards * m).sum(-1, keepdim=True) * m
'''),
        ("modifies rewards in place", '''
def rewards_to_go(rewards, mask, gamma=1.0):
    if rewards.shape != mask.shape:
        raise ValueError("shape")
    m = mask.to(rewards.dtype)
    rewards *= m
    for t in reversed(range(rewards.shape[1] - 1)):
        rewards[:, t] += gamma * rewards[:, t + 1]
    return rewards * m
'''),
    ],
    "reinforce_loss": [
        ("returns not detached", '''
def reinforce_loss(token_logps, returns, mask):
    if token_logps.shape != returns.shape or token_logps.shape != mask.shape:
        raise ValueError("shape")
    m = mask.to(token_logps.dtype)
    return -(m * returns * token_logps).sum() / token_logps.shape[0]
'''),
        ("mean over real tokens instead of over trajectories", '''
def reinforce_loss(token_logps, returns, mask):
    m = mask.to(token_logps.dtype)
    return -(m * returns.detach() * token_logps).sum() / m.sum()
'''),
        ("missing minus sign", '''
def reinforce_loss(token_logps, returns, mask):
    m = mask.to(token_logps.dtype)
    return (m * returns.detach() * token_logps).sum() / token_logps.shape[0]
'''),
        ("no mask", '''
def reinforce_loss(token_logps, returns, mask):
    return -(returns.detach() * token_logps).sum() / token_logps.shape[0]
'''),
        ("mean over every position", '''
def reinforce_loss(token_logps, returns, mask):
    return -(mask * returns.detach() * token_logps).mean()
'''),
    ],
}
