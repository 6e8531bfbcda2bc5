# %% added before sequence_log_prob
def masked_sum(x, m):
    return (x * m.to(x.dtype)).sum(-1)

# %% sequence_log_prob
def sequence_log_prob(token_logps, mask):
    return masked_sum(token_logps, mask)
