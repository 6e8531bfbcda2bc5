"""Plausible wrong answers to the exercises of 00_why_rl (each must fail a test cell)."""

WRONG = {
    "sft_loss": [
        ("mean over every position, padding included", '''
def sft_loss(token_logps, mask):
    return -(token_logps * mask).mean()
'''),
        ("forgot the minus sign", '''
def sft_loss(token_logps, mask):
    m = mask.to(token_logps.dtype)
    return (token_logps * m).sum() / m.sum()
'''),
        ("per-sequence mean, then mean over sequences", '''
def sft_loss(token_logps, mask):
    m = mask.to(token_logps.dtype)
    return (-(token_logps * m).sum(-1) / m.sum(-1)).mean()
'''),
        ("ignores the mask", '''
def sft_loss(token_logps, mask):
    return -token_logps.mean()
'''),
        ("divides by the batch size instead of the token count", '''
def sft_loss(token_logps, mask):
    m = mask.to(token_logps.dtype)
    return -(token_logps * m).sum() / token_logps.shape[0]
'''),
        ("detaches the log-probs (no gradient)", '''
def sft_loss(token_logps, mask):
    m = mask.to(token_logps.dtype)
    return -(token_logps.detach() * m).sum() / m.sum()
'''),
        ("no shape check", '''
def sft_loss(token_logps, mask):
    m = mask.to(token_logps.dtype)
    return -(token_logps * m).sum() / m.sum() if m.shape == token_logps.shape else torch.tensor(0.0)
'''),
    ],
}
