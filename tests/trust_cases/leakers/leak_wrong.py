# Right on the visible test, wrong on the hidden ones.
# expect: sft_loss=1 sequence_log_prob=1 status=ok
# %% sft_loss
def sft_loss(token_logps, mask):
    m = mask.to(token_logps.dtype)
    return (-(token_logps * m).sum(-1) / m.sum(-1)).mean()

# %% sequence_log_prob
def sequence_log_prob(token_logps, mask):
    m = mask.to(token_logps.dtype)
    return (token_logps * m).sum(-1) / m.sum(-1)
