"""Plausible wrong answers to the exercises of 01_generation_as_rl (each must fail a test cell)."""

WRONG = {
    "token_log_probs": [
        ("log(softmax(x)) instead of log_softmax (unstable for 1e4 logits)", '''
def token_log_probs(logits, tokens):
    if logits.shape[:-1] != tokens.shape:
        raise ValueError("shape")
    return torch.log(torch.softmax(logits.float() if logits.dtype == torch.bfloat16 else logits, -1)).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
'''),
        ("gathers raw logits, no normalisation", '''
def token_log_probs(logits, tokens):
    return logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
'''),
        ("off by one: logits[t] scored against tokens[t+1]", '''
def token_log_probs(logits, tokens):
    logps = torch.log_softmax(logits, -1)[:, :-1].gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
    return torch.cat([logps, torch.zeros_like(logps[:, :1])], dim=1)
'''),
        ("returns probabilities, not log-probabilities", '''
def token_log_probs(logits, tokens):
    return torch.softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
'''),
        ("log_softmax over the time axis", '''
def token_log_probs(logits, tokens):
    return torch.log_softmax(logits, 1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
'''),
        ("no up-cast of bf16", '''
def token_log_probs(logits, tokens):
    if logits.shape[:-1] != tokens.shape:
        raise ValueError("shape")
    return torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
'''),
    ],
    "completion_mask": [
        ("EOS excluded from the mask", '''
def completion_mask(completion_ids, eos_token_id):
    return ((completion_ids == eos_token_id).long().cumsum(-1) == 0).float()
'''),
        ("only the EOS positions are masked out", '''
def completion_mask(completion_ids, eos_token_id):
    return (completion_ids != eos_token_id).float()
'''),
        ("cuts at the last EOS instead of the first", '''
def completion_mask(completion_ids, eos_token_id):
    is_eos = (completion_ids == eos_token_id).long()
    after = is_eos.flip(-1).cumsum(-1).flip(-1) - is_eos
    has = is_eos.sum(-1, keepdim=True) > 0
    return torch.where(has, (after > 0) | (is_eos > 0), torch.ones_like(has)).float()
'''),
        ("returns a bool mask", '''
def completion_mask(completion_ids, eos_token_id):
    is_eos = (completion_ids == eos_token_id).long()
    return (is_eos.cumsum(-1) - is_eos) == 0
'''),
    ],
    "sequence_log_prob": [
        ("mean over tokens instead of the sum", '''
def sequence_log_prob(token_logps, mask):
    m = mask.to(token_logps.dtype)
    return (token_logps * m).sum(-1) / m.sum(-1)
'''),
        ("ignores the mask", '''
def sequence_log_prob(token_logps, mask):
    return token_logps.sum(-1)
'''),
        ("sums over the batch axis", '''
def sequence_log_prob(token_logps, mask):
    return (token_logps * mask).sum(0)
'''),
        ("negated", '''
def sequence_log_prob(token_logps, mask):
    return -(token_logps * mask.to(token_logps.dtype)).sum(-1)
'''),
        ("no ValueError on mismatched shapes (broadcasts)", '''
def sequence_log_prob(token_logps, mask):
    return (token_logps * mask.to(token_logps.dtype)).sum(-1) if token_logps.numel() != 6 or mask.shape == token_logps.shape else torch.zeros(token_logps.shape[0])
'''),
    ],
}
