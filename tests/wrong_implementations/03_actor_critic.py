"""Plausible wrong answers to the exercises of 03_actor_critic (each must fail a test cell)."""

WRONG = {
    "value_loss": [
        ("mean over every position (F.mse_loss style)", '''
def value_loss(values, returns, mask):
    return ((values - returns.detach()) ** 2 * mask).mean()
'''),
        ("mean over real tokens instead of over trajectories", '''
def value_loss(values, returns, mask):
    m = mask.to(values.dtype)
    return (m * (values - returns.detach()) ** 2).sum() / m.sum()
'''),
        ("no mask", '''
def value_loss(values, returns, mask):
    return ((values - returns.detach()) ** 2).sum() / values.shape[0]
'''),
        ("targets not detached", '''
def value_loss(values, returns, mask):
    if values.shape != returns.shape or values.shape != mask.shape:
        raise ValueError("shape")
    m = mask.to(values.dtype)
    return (m * (values - returns) ** 2).sum() / values.shape[0]
'''),
        ("absolute error instead of squared", '''
def value_loss(values, returns, mask):
    m = mask.to(values.dtype)
    return (m * (values - returns.detach()).abs()).sum() / values.shape[0]
'''),
    ],
    "compute_advantages": [
        ("V - G: sign flipped", '''
def compute_advantages(returns, values, mask):
    return (values - returns).detach() * mask
'''),
        ("values not detached", '''
def compute_advantages(returns, values, mask):
    if returns.shape != values.shape or returns.shape != mask.shape:
        raise ValueError("shape")
    return (returns - values) * mask.to(returns.dtype)
'''),
        ("no mask", '''
def compute_advantages(returns, values, mask):
    return (returns - values).detach()
'''),
        ("normalised advantages", '''
def compute_advantages(returns, values, mask):
    if returns.shape != values.shape or returns.shape != mask.shape:
        raise ValueError("shape")
    m = mask.to(returns.dtype)
    a = (returns - values).detach()
    mean = (a * m).sum() / m.sum()
    std = (((a - mean) ** 2 * m).sum() / m.sum()).sqrt()
    return (a - mean) / (std + 1e-8) * m
'''),
    ],
    "actor_critic_loss": [
        ("advantages not detached", '''
def actor_critic_loss(token_logps, advantages, mask):
    if token_logps.shape != advantages.shape or token_logps.shape != mask.shape:
        raise ValueError("shape")
    m = mask.to(token_logps.dtype)
    return -(m * advantages * token_logps).sum() / token_logps.shape[0]
'''),
        ("mean over tokens", '''
def actor_critic_loss(token_logps, advantages, mask):
    m = mask.to(token_logps.dtype)
    return -(m * advantages.detach() * token_logps).sum() / m.sum()
'''),
        ("missing minus sign", '''
def actor_critic_loss(token_logps, advantages, mask):
    m = mask.to(token_logps.dtype)
    return (m * advantages.detach() * token_logps).sum() / token_logps.shape[0]
'''),
        ("no mask", '''
def actor_critic_loss(token_logps, advantages, mask):
    return -(advantages.detach() * token_logps).sum() / token_logps.shape[0]
'''),
    ],
    "gae_advantages": [
        ("returns the TD errors only (no accumulation)", '''
def gae_advantages(rewards, values, mask, gamma=1.0, lam=0.95):
    m = mask.to(rewards.dtype)
    v = values.detach() * m
    next_v = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], 1)
    return (rewards * m + gamma * next_v - v) * m
'''),
        ("bootstraps from the padded value after the last real token", '''
def gae_advantages(rewards, values, mask, gamma=1.0, lam=0.95):
    if rewards.shape != values.shape or rewards.shape != mask.shape:
        raise ValueError("shape")
    m = mask.to(rewards.dtype)
    v = values.detach()
    next_v = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], 1)
    delta = (rewards * m + gamma * next_v - v) * m
    adv = torch.zeros_like(delta)
    running = torch.zeros_like(delta[:, 0])
    for t in reversed(range(delta.shape[1])):
        running = delta[:, t] + gamma * lam * running
        adv[:, t] = running
    return adv * m
'''),
        ("decays with lam only, forgetting gamma", '''
def gae_advantages(rewards, values, mask, gamma=1.0, lam=0.95):
    if rewards.shape != values.shape or rewards.shape != mask.shape:
        raise ValueError("shape")
    m = mask.to(rewards.dtype)
    v = values.detach() * m
    next_v = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], 1)
    delta = (rewards * m + gamma * next_v - v) * m
    adv = torch.zeros_like(delta)
    running = torch.zeros_like(delta[:, 0])
    for t in reversed(range(delta.shape[1])):
        running = delta[:, t] + lam * running
        adv[:, t] = running
    return adv * m
'''),
        ("accumulates forwards in time", '''
def gae_advantages(rewards, values, mask, gamma=1.0, lam=0.95):
    m = mask.to(rewards.dtype)
    v = values.detach() * m
    next_v = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], 1)
    delta = (rewards * m + gamma * next_v - v) * m
    adv = torch.zeros_like(delta)
    running = torch.zeros_like(delta[:, 0])
    for t in range(delta.shape[1]):
        running = delta[:, t] + gamma * lam * running
        adv[:, t] = running
    return adv * m
'''),
        ("values not detached", '''
def gae_advantages(rewards, values, mask, gamma=1.0, lam=0.95):
    if rewards.shape != values.shape or rewards.shape != mask.shape:
        raise ValueError("shape")
    m = mask.to(rewards.dtype)
    v = values * m
    next_v = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], 1)
    delta = (rewards * m + gamma * next_v - v) * m
    adv = []
    running = torch.zeros_like(delta[:, 0])
    for t in reversed(range(delta.shape[1])):
        running = delta[:, t] + gamma * lam * running
        adv.append(running)
    return torch.stack(adv[::-1], 1) * m
'''),
    ],
}
